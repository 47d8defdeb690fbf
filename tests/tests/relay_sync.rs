//! Devices that never meet, syncing through a relay over QUIC on loopback: convergence, no
//! re-uploads, rosters that decide who sees what, tampered blobs, bad frames.

use std::sync::Arc;

use nabij_core::{
    Device, DocId,
    model::NewCase,
    net::{NetError, RelaySyncReport},
};
use nabij_relay_proto::wire::{self, Refusal, Request, Response};
use nabij_sync_server::Limits;
use nabij_tests::{
    case_with_notes, doc_heads, observation, open_device,
    relay::{InProcessRelay, RawClient},
    screens,
};

fn open(dir: &tempfile::TempDir, name: &str) -> Arc<Device> {
    open_device(dir.path(), name)
}

async fn relay_sync(d: &Arc<Device>, relay: &InProcessRelay) -> Result<RelaySyncReport, NetError> {
    nabij_tests::relay::sync_once(d, relay).await
}

/// A network of Sanne and Youssef, made by Sanne; Youssef added by his card, never met.
fn network_of_two(dir: &tempfile::TempDir) -> (Arc<Device>, Arc<Device>, DocId) {
    let sanne = open(dir, "Sanne");
    let youssef = open(dir, "Youssef");
    let network = sanne.create_network("Wijknetwerk Oost").expect("network");
    youssef
        .join(
            &sanne
                .invite(network, youssef.member_id(), "Youssef", youssef.device_key())
                .expect("invite"),
        )
        .expect("member");
    (sanne, youssef, network)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_that_never_meet_converge_through_the_relay() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let (sanne, youssef, network) = network_of_two(&dir);
    let cases: Vec<DocId> =
        (0..3).map(|i| case_with_notes(&sanne, network, &format!("Gezin {i}"), 4)).collect();
    let private =
        sanne.create_case(NewCase { subject: "Alleen van Sanne".into(), ..NewCase::default() });
    let private = private.expect("private case");

    let first = relay_sync(&sanne, &relay).await.expect("Sanne's first sync");
    assert_eq!(first.report.rosters_registered, 1, "{first:?}");
    assert_eq!(first.report.blobs_pushed, 4, "the network and three cases: {first:?}");
    assert!(first.report.refusals.is_empty() && first.report.rejected.is_empty(), "{first:?}");

    // Youssef has never met anyone: the relay's roster tells him his network and key.
    let got = relay_sync(&youssef, &relay).await.expect("Youssef's first sync");
    assert_eq!(got.report.documents_changed, 4, "{got:?}");
    assert_eq!(got.report.blobs_pushed, 0, "nothing of his to push: {got:?}");
    assert!(youssef.kind_of(private).is_err(), "a case shared with no network stayed home");
    for c in &cases {
        assert_eq!(youssef.heads(*c).expect("case"), sanne.heads(*c).expect("case"));
    }

    // He writes; she pulls.
    youssef.add_note(cases[1], observation("Dochter L. gaat weer naar school")).expect("note");
    let his = case_with_notes(&youssef, network, "Meneer K.", 2);
    let pushed = relay_sync(&youssef, &relay).await.expect("Youssef pushes");
    assert_eq!(
        pushed.report.blobs_pushed, 2,
        "his case (carrying its new content key) and the changed case; the network document does not change: {pushed:?}"
    );
    let pulled = relay_sync(&sanne, &relay).await.expect("Sanne pulls");
    assert_eq!(pulled.report.documents_changed, 2, "his case and the changed one: {pulled:?}");
    assert_eq!(pulled.report.blobs_pushed, 0, "pulled changes are never pushed back: {pulled:?}");
    assert!(sanne.kind_of(his).is_ok());

    let words = ["school", "schulden", "Gezin"];
    let again = relay_sync(&youssef, &relay).await.expect("Youssef again");
    assert_eq!(again.report.blobs_pushed, 0, "{again:?}");
    assert_eq!(again.report.documents_changed, 0, "{again:?}");
    let mut hers = doc_heads(&sanne);
    hers.retain(|(id, _)| *id != private);
    assert_eq!(hers, doc_heads(&youssef));
    let mut a = screens(&sanne, &words);
    let b = screens(&youssef, &words);
    a.cases.retain(|c| c.id != private);
    assert_eq!(a.cases, b.cases);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rosters_decide_who_sees_what() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let (sanne, _youssef, network) = network_of_two(&dir);
    case_with_notes(&sanne, network, "Moeder R.", 3);
    relay_sync(&sanne, &relay).await.expect("Sanne syncs");

    // A device of another network sees only its own.
    let other = open(&dir, "Pieter");
    let theirs = other.create_network("Wijknetwerk West").expect("network");
    case_with_notes(&other, theirs, "Buurman T.", 1);
    let report = relay_sync(&other, &relay).await.expect("Pieter syncs");
    assert_eq!(report.report.networks, 1, "{report:?}");
    assert_eq!(report.report.documents_changed, 0, "{report:?}");
    assert!(other.kind_of(network).is_err());

    // A stranger on no roster gets nothing, and is refused when it asks for the network.
    let stranger = open(&dir, "Onbekend");
    let report = relay_sync(&stranger, &relay).await.expect("stranger syncs");
    assert_eq!(report.report.networks, 0);
    assert!(stranger.document_ids().expect("ids").is_empty());
    let mut raw = RawClient::connect(&relay.address, relay.key, [77; 32]).await;
    let net_id = sanne.relay_network_id(network).expect("read").expect("Sanne holds the key");
    for r in [
        Request::Pull { network: net_id, after: 0, max_bytes: 1 << 20 },
        Request::Push { network: net_id, doc: [1; 32], blob: vec![1; 64] },
    ] {
        raw.send_raw(&wire::encode(&r, wire::DEFAULT_MAX_FRAME).expect("frame")).await;
    }
    let answers = raw.answers(2).await;
    assert_eq!(answers.len(), 2, "{answers:?}");
    for a in answers {
        assert!(matches!(a, Response::Refused { reason: Refusal::NotOnRoster, .. }), "{a:?}");
    }
    raw.close();
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_in_a_stored_blob_is_reported_not_applied() {
    let dir = tempfile::tempdir().expect("dir");
    let relay_dir = dir.path().join("relay");
    let relay = InProcessRelay::start(&relay_dir, Limits::default()).await;
    let (sanne, youssef, network) = network_of_two(&dir);
    let cases: Vec<DocId> =
        (0..4).map(|i| case_with_notes(&sanne, network, &format!("Gezin {i}"), 2)).collect();
    relay_sync(&sanne, &relay).await.expect("Sanne syncs");

    // Flip one bit (a different place in each) of two case blobs, as a faulty disk or a
    // curious operator would.
    let db = rusqlite::Connection::open(relay_dir.join("relay.db")).expect("relay db");
    let blobs: Vec<(i64, Vec<u8>)> = db
        .prepare("SELECT seq, bytes FROM blobs ORDER BY seq")
        .expect("query")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("blobs");
    assert_eq!(blobs.len(), 5);
    let mut flipped = Vec::new();
    for (i, (seq, bytes)) in blobs.iter().enumerate().skip(2).step_by(2) {
        let mut b = bytes.clone();
        let bit = (i * 7919) % (b.len() * 8);
        b[bit / 8] ^= 1 << (bit % 8);
        db.execute("UPDATE blobs SET bytes = ?1 WHERE seq = ?2", rusqlite::params![b, seq])
            .expect("flip");
        flipped.push(*seq as u64);
    }
    drop(db);

    let got = relay_sync(&youssef, &relay).await.expect("Youssef syncs");
    let rejected: Vec<u64> = got.report.rejected.iter().map(|r| r.seq).collect();
    assert_eq!(rejected, flipped, "{got:?}");
    // A flip in the ciphertext fails authentication; one in the key id names no key.
    let detected = |r: &str| r.contains("authentication") || r.contains("no key");
    assert!(got.report.rejected.iter().all(|r| detected(&r.reason)), "{got:?}");
    assert_eq!(got.report.documents_changed, 3, "the network and the two intact cases: {got:?}");
    let held = cases.iter().filter(|c| youssef.kind_of(**c).is_ok()).count();
    assert_eq!(held, 2, "tampered cases were not applied");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_oversized_frames_get_typed_refusals_and_the_relay_serves_on() {
    let dir = tempfile::tempdir().expect("dir");
    let limits = Limits {
        max_frame_bytes: 256 * 1024,
        max_blob_bytes: 128 * 1024,
        pull_max_bytes: 128 * 1024,
        ..Limits::default()
    };
    let relay = InProcessRelay::start(&dir.path().join("relay"), limits).await;

    let mut raw = RawClient::connect(&relay.address, relay.key, [5; 32]).await;
    raw.send_raw(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await;
    let a = raw.answers(1).await;
    assert!(matches!(a[..], [Response::Refused { reason: Refusal::Malformed, .. }]), "{a:?}");
    raw.close();

    let mut raw = RawClient::connect(&relay.address, relay.key, [6; 32]).await;
    raw.send_raw(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
    let a = raw.answers(1).await;
    assert!(matches!(a[..], [Response::Refused { reason: Refusal::TooLarge, .. }]), "{a:?}");
    raw.close();

    // Random bytes, seeded: a whole frame of garbage is refused as malformed, a garbage length
    // as too large (or, under the limit, as a frame that never completes: no answer when the
    // stream ends); never a crash.
    let mut rng = nabij_tests::Rng::new(11);
    for i in 0..16 {
        let mut raw = RawClient::connect(&relay.address, relay.key, [7; 32]).await;
        let len = 1 + rng.below(300) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        let whole_frame = i % 2 == 0;
        if whole_frame {
            junk.splice(0..0, (len as u32).to_be_bytes());
        }
        raw.send_raw(&junk).await;
        raw.finish();
        let answers = raw.answers(1).await;
        let claimed =
            u32::from_be_bytes([junk[0], junk[1], junk[2], junk.get(3).copied().unwrap_or(0)]);
        if whole_frame {
            assert_eq!(answers.len(), 1, "{answers:?}");
            // A garbage body may, rarely, be a valid request; it is then answered as one.
            if wire::decode::<Request>(&junk[4..]).is_err() {
                assert!(matches!(answers[0], Response::Refused { reason: Refusal::Malformed, .. }));
            }
        } else if junk.len() >= 4 && claimed as usize > 256 * 1024 {
            assert!(
                matches!(answers[..], [Response::Refused { reason: Refusal::TooLarge, .. }]),
                "{answers:?}"
            );
        } else {
            assert!(answers.is_empty(), "an unfinished frame is not answered: {answers:?}");
        }
        raw.close();
    }

    // And the relay still serves devices.
    let (sanne, youssef, network) = network_of_two(&dir);
    case_with_notes(&sanne, network, "Moeder R.", 2);
    relay_sync(&sanne, &relay).await.expect("Sanne syncs");
    let got = relay_sync(&youssef, &relay).await.expect("Youssef syncs");
    assert_eq!(got.report.documents_changed, 2, "{got:?}");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_shared_with_two_networks_reaches_both_through_the_relay() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let sanne = open(&dir, "Sanne");
    let (youssef, pieter) = (open(&dir, "Youssef"), open(&dir, "Pieter"));
    let east = sanne.create_network("Wijknetwerk Oost").expect("network");
    let west = sanne.create_network("Wijknetwerk West").expect("network");
    youssef
        .join(
            &sanne
                .invite(east, youssef.member_id(), "Youssef", youssef.device_key())
                .expect("invite"),
        )
        .expect("member");
    pieter
        .join(
            &sanne.invite(west, pieter.member_id(), "Pieter", pieter.device_key()).expect("invite"),
        )
        .expect("member");
    let case = sanne
        .create_case(NewCase {
            subject: "Familie B.".into(),
            networks: vec![east, west],
            ..NewCase::default()
        })
        .expect("case");
    relay_sync(&sanne, &relay).await.expect("Sanne pushes to both networks");
    relay_sync(&youssef, &relay).await.expect("Youssef");
    relay_sync(&pieter, &relay).await.expect("Pieter");
    assert!(youssef.kind_of(case).is_ok() && pieter.kind_of(case).is_ok());
    assert!(youssef.kind_of(west).is_err() && pieter.kind_of(east).is_err(), "one network each");

    // Pieter writes in West; Sanne, in both, carries it to East; Youssef reads it there.
    pieter.add_note(case, observation("Vader heeft werk gevonden")).expect("note");
    relay_sync(&pieter, &relay).await.expect("Pieter pushes");
    relay_sync(&sanne, &relay).await.expect("Sanne pulls West, pushes East");
    let got = relay_sync(&youssef, &relay).await.expect("Youssef pulls East");
    assert_eq!(got.report.documents_changed, 1, "{got:?}");
    assert_eq!(youssef.heads(case).expect("case"), pieter.heads(case).expect("case"));
    assert_eq!(youssef.heads(case).expect("case"), sanne.heads(case).expect("case"));
    relay.stop().await;
}
