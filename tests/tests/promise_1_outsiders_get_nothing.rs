//! Promise 1 of the threat model: an outsider cannot make a device upload anything under a key
//! the outsider chose, nor plant a network on it. The outsider has what a ticket, a device card and the
//! relay's public address give away: the network's id, a member device's public key, the
//! relay's address and key; and keys of its own.

use std::sync::Arc;

use nabij_core::{
    Device,
    crypto::{self, SecretKey},
    ids::{DeviceKey, Randomness},
    net::{NetError, RelaySyncReport},
};
use nabij_relay_proto::{
    roster::{Roster, RosterDevice},
    wire::{self, Request, Response},
};
use nabij_sync_server::Limits;
use nabij_tests::{case_with_notes, open_device, relay::InProcessRelay, relay::RawClient};

async fn relay_sync(d: &Arc<Device>, relay: &InProcessRelay) -> Result<RelaySyncReport, NetError> {
    nabij_tests::relay::sync_once(d, relay).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_1_an_outsider_cannot_make_a_member_upload_under_its_key() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let victim = open_device(dir.path(), "Sanne");
    let network = victim.create_network("Wijknetwerk Oost").expect("network");
    case_with_notes(&victim, network, "Mevrouw B.", 3);

    // The outsider's own network key, sealed to the victim for the victim's network, in a
    // roster the outsider signs and registers first (listing itself and the victim).
    let rng = Randomness::os();
    let outsider_secret = [42u8; 32];
    let outsider = ed25519_dalek::SigningKey::from_bytes(&outsider_secret);
    let outsider_key = DeviceKey::from_bytes(outsider.verifying_key().to_bytes());
    let key = SecretKey::generate(&rng).expect("key");
    let commitment = crypto::relay_network_id(&key);
    // A roster entry holds a device's network keys by epoch.
    let sealed = |to: &DeviceKey| {
        let one = crypto::seal_network_key(&rng, &key, network, 0, to).expect("seal");
        postcard::to_stdvec(&vec![(0u32, one.as_bytes().to_vec())]).expect("bundle")
    };
    // The relay goes by signed membership: the outsider founds a network of its own with that
    // key (the relay id derives from the genesis) and signs the victim in as an admin.
    let (relay_id, ops) = {
        use nabij_core::membership::{Change, Role, SignedOp, genesis_network_id};
        let me = [42u8; 16];
        let x = genesis_network_id(&outsider, &commitment, &me, "Onbekend");
        let genesis = SignedOp::sign(
            &outsider,
            x,
            &[],
            Change::Genesis { key_commitment: commitment, member: me, name: "Onbekend".into() },
        )
        .expect("genesis");
        let them = *victim.member_id().as_bytes();
        let add = SignedOp::sign(
            &outsider,
            x,
            &[genesis.id()],
            Change::AddMember { member: them, name: "Sanne".into(), role: Role::Admin },
        )
        .expect("add");
        let device = SignedOp::sign(
            &outsider,
            x,
            &[add.id()],
            Change::AddDevice { member: them, device: *victim.device_key().as_bytes() },
        )
        .expect("device");
        let relay_id = nabij_core::membership::relay_id_of(&genesis).expect("a genesis");
        (
            relay_id,
            vec![genesis.blinded().to_vec(), add.blinded().to_vec(), device.blinded().to_vec()],
        )
    };
    let roster = Roster {
        network: relay_id,
        issued_at: 1,
        devices: vec![
            RosterDevice {
                key: *victim.device_key().as_bytes(),
                sealed: sealed(&victim.device_key()),
                admin: true,
                removed: false,
            },
            RosterDevice {
                key: *outsider_key.as_bytes(),
                sealed: sealed(&outsider_key),
                admin: true,
                removed: false,
            },
        ],
        removals: Vec::new(),
        ops,
    }
    .sign(&outsider)
    .expect("sign");
    let mut raw = RawClient::connect(&relay.address, relay.key, outsider_secret).await;
    raw.send_raw(&wire::encode(&Request::Register { roster }, 1 << 24).expect("frame")).await;
    let a = raw.answers(1).await;
    assert!(matches!(a[..], [Response::Registered { .. }]), "the relay took the roster: {a:?}");
    raw.close();

    // The victim syncs with the relay as it does every day.
    relay_sync(&victim, &relay).await.expect("the victim's relay sync");

    // The outsider asks for everything under its key: there must be nothing.
    let mut raw = RawClient::connect(&relay.address, relay.key, outsider_secret).await;
    let pull = Request::Pull { network: relay_id, after: 0, max_bytes: 1 << 20 };
    raw.send_raw(&wire::encode(&pull, 1 << 24).expect("frame")).await;
    let a = raw.answers(1).await;
    match &a[..] {
        [Response::Blobs { blobs, .. }] => {
            assert!(
                blobs.is_empty(),
                "the victim uploaded {} blobs under the outsider's key",
                blobs.len()
            )
        }
        other => panic!("unexpected answer {other:?}"),
    }
    raw.close();
    relay.stop().await;
}

/// The planter: an outsider starts a network of its own, puts the victim's device on its roster
/// (a card is public), and offers it at a meeting the victim joins and through the relay. The
/// victim never accepted an invitation: it takes nothing, and its listener still refuses the
/// outsider afterwards (a planted roster would have widened who passes its TLS check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_1_an_outsider_cannot_plant_a_network_on_a_device() {
    use nabij_core::{
        net::{self, SyncOptions},
        test_utils::loopback,
    };
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let victim = open_device(dir.path(), "Sanne");
    let own = victim.create_network("Wijknetwerk Oost").expect("network");
    let outsider = open_device(dir.path(), "Onbekend");
    let planted = outsider.create_network("Wijknetwerk Oost").expect("look-alike");
    outsider
        .add_member(planted, victim.member_id(), "Sanne", victim.device_key())
        .expect("the outsider lists the victim on its own network");
    case_with_notes(&outsider, planted, "Nep-casus", 1);

    // At a meeting: the victim scans the outsider's ticket.
    let mut listener = net::listen(outsider.clone(), loopback()).await.expect("listen");
    let ticket = listener.ticket().clone();
    let report = net::sync_with(victim.clone(), &ticket, SyncOptions::default()).await;
    let _ = listener.next_session().await;
    let received = report.map(|r| r.documents_received).unwrap_or_default();
    assert_eq!(received, 0, "the victim took documents it was never invited to");
    // Through the relay: the outsider registers its roster (listing the victim, with keys
    // sealed to it) and pushes; the victim syncs as it does every day.
    relay_sync(&outsider, &relay).await.expect("the outsider's relay sync");
    relay_sync(&victim, &relay).await.expect("the victim's relay sync");

    let held: Vec<_> = victim.document_ids().expect("ids").into_iter().map(|(id, _)| id).collect();
    assert_eq!(held, vec![own], "only its own network");
    assert!(!victim.shares_network_with(&outsider.device_key()).expect("check"));
    // The victim's listener refuses the outsider.
    let listener = net::listen(victim.clone(), loopback()).await.expect("listen");
    let ticket = listener.ticket().clone();
    let refused = net::sync_with(outsider.clone(), &ticket, SyncOptions::default()).await;
    assert!(matches!(refused, Err(NetError::Connect(_))), "{refused:?}");
    relay.stop().await;
}
