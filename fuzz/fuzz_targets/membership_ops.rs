//! Arbitrary bytes as membership operations: each chunk (split at fuzzer-chosen points) is
//! decoded, and whatever decodes is resolved together with a real genesis.
//!
//! Checks: no panic on any input; the membership does not depend on the order of the
//! operations; nothing made of the fuzzer's bytes ever adds a device (it cannot sign as the
//! genesis' author, the only admin).
#![no_main]

use std::sync::LazyLock;

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use nabij_core::{
    DocId,
    ids::DeviceKey,
    membership::{self, Change, SignedOp},
};
use nabij_fuzz::pieces;

/// The network's genesis, signed once (signing is most of the cost of an iteration).
static GENESIS: LazyLock<SignedOp> = LazyLock::new(|| {
    SignedOp::sign(
        &SigningKey::from_bytes(&[1; 32]),
        DocId::from_bytes([3; 16]),
        &[],
        Change::Genesis { key_commitment: [0; 32], member: [1; 16], name: "Anna".into() },
    )
    .expect("a genesis signs")
});

fuzz_target!(|data: &[u8]| {
    let network = DocId::from_bytes([3; 16]);
    let creator = SigningKey::from_bytes(&[1; 32]);
    let genesis = GENESIS.clone();
    let mut ops = vec![genesis.clone()];
    for piece in pieces(data) {
        if let Ok(op) = SignedOp::decode(piece) {
            ops.push(op);
        }
    }
    let forward = membership::resolve(network, genesis.id(), &ops);
    ops.reverse();
    let backward = membership::resolve(network, genesis.id(), &ops);
    assert_eq!(forward, backward, "the order of operations changed the membership");
    let creator_key = DeviceKey::from_bytes(creator.verifying_key().to_bytes());
    for (_, m) in &forward.members {
        for d in &m.devices {
            assert!(*d == creator_key, "a device the fuzzer made joined the network");
        }
    }
});
