//! The relay's side: arbitrary bytes, cut at fuzzer-chosen points, read as frames of requests
//! from one of three devices, and answered by the relay's rules over in-memory storage (one
//! network whose signed membership has two of the devices is registered first).
//!
//! Checks: no panic; bytes that are not frames of requests get a typed error from the reader
//! or the decoder, never a partial request; every request gets exactly one answer, and every
//! answer encodes within the frame limit; the unlisted device is refused for the network and
//! sees none of it; what a pull returns lies after its cursor, in order, within the network.
#![no_main]

use std::sync::LazyLock;

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use nabij_fuzz::pieces;
use nabij_relay_proto::{
    membership::{self, Change, Role, SignedOp},
    roster::{Roster, RosterDevice},
    wire::{self, FrameReader, Refusal, Request, Response},
};
use nabij_sync_server::{Limits, Relay, storage::MemoryStorage};

const COMMITMENT: [u8; 32] = [0xAA; 32];

/// The network's relay id and membership, signed once (signing is most of the cost of an
/// iteration): the first device founds it and adds the second; the third is no device of it.
static NET: LazyLock<([u8; 32], Vec<Vec<u8>>)> = LazyLock::new(|| {
    let founder = SigningKey::from_bytes(&[1; 32]);
    let (me, them) = ([1; 16], [2; 16]);
    let id = membership::genesis_network_id(&founder, &COMMITMENT, &me, "Anna");
    let sign = |parents: &[membership::OpId], change| {
        SignedOp::sign(&founder, id, parents, change).expect("an operation signs")
    };
    let g =
        sign(&[], Change::Genesis { key_commitment: COMMITMENT, member: me, name: "Anna".into() });
    let add = sign(
        &[g.id()],
        Change::AddMember { member: them, name: "Bram".into(), role: Role::Member },
    );
    let device = SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes();
    let dev = sign(&[add.id()], Change::AddDevice { member: them, device });
    let relay_id = membership::relay_id_of(&g).expect("a genesis");
    (relay_id, [g, add, dev].iter().map(|o| o.blinded().to_vec()).collect())
});
const MAX_FRAME: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let (net_id, ops) = (NET.0, NET.1.clone());
    let Some((&who, rest)) = data.split_first() else { return };
    let keys: Vec<SigningKey> = (1..=3u8).map(|n| SigningKey::from_bytes(&[n; 32])).collect();
    let devices: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    let limits =
        Limits { max_frame_bytes: MAX_FRAME, max_blob_bytes: MAX_FRAME / 2, ..Limits::default() };
    let relay = Relay::new(MemoryStorage::new(), limits);
    let roster = Roster {
        network: net_id,
        issued_at: 1,
        devices: devices[..2]
            .iter()
            .map(|d| RosterDevice { key: *d, sealed: vec![1; 80], admin: true, removed: false })
            .collect(),
        removals: Vec::new(),
        ops,
    }
    .sign(&keys[0])
    .expect("sign");
    let registered = relay.handle(&devices[0], vec![Request::Register { roster }]);
    assert!(matches!(registered[..], [Response::Registered { .. }]));
    relay.handle(
        &devices[0],
        vec![Request::Push { network: net_id, doc: [1; 32], blob: vec![9; 40] }],
    );

    let device = devices[usize::from(who % 3)];
    let listed = who % 3 != 2;
    let mut reader = FrameReader::new(MAX_FRAME);
    for piece in pieces(rest) {
        let (bodies, error) = reader.feed(piece);
        let mut requests = Vec::new();
        for body in &bodies {
            match wire::decode::<Request>(body) {
                Ok(r) => requests.push(r),
                Err(_) => return,
            }
        }
        let stop = error.is_some();
        let answers = relay.handle(&device, requests.clone());
        assert_eq!(answers.len(), requests.len(), "one answer per request");
        for (q, a) in requests.iter().zip(&answers) {
            let frame = wire::encode(a, usize::MAX).expect("answers encode");
            assert!(frame.len() <= MAX_FRAME + 4 || matches!(a, Response::Blobs { .. }));
            match (q, a) {
                (
                    Request::Pull { network, after, .. },
                    Response::Blobs { network: n, blobs, next, .. },
                ) => {
                    assert_eq!(network, n);
                    assert!(blobs.windows(2).all(|w| w[0].seq < w[1].seq), "in order");
                    assert!(blobs.iter().all(|b| b.seq > *after), "after the cursor");
                    assert!(blobs.last().is_none_or(|b| b.seq == *next));
                    assert!(listed || *network != net_id, "the unlisted device read the network");
                }
                (Request::Push { network, .. } | Request::Pull { network, .. }, _)
                    if *network == net_id && !listed =>
                {
                    assert!(
                        matches!(a, Response::Refused { reason: Refusal::NotOnRoster, .. }),
                        "the unlisted device was not refused: {a:?}"
                    );
                }
                (Request::Networks, Response::Networks { rosters }) => {
                    for r in rosters {
                        let roster = r.verify().expect("only valid rosters are served");
                        assert!(roster.lists(&device), "a roster that does not list the device");
                    }
                }
                _ => {}
            }
        }
        if stop {
            return;
        }
    }
});
