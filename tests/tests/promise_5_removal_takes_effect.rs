//! Promise 5 of the threat model, in part, and the roster part of promise 4: after an admin
//! removes a device, the relay refuses it as soon as an admin's device registers the new
//! roster, and it cannot decrypt anything written after the removal even when it gets the
//! blobs (the relay operator handing them over): the removal starts a new key epoch. A member
//! cannot take the relay's roster over or freeze it by dating one into the future.

use std::sync::Arc;

use nabij_core::{
    Device, DocId,
    model::Reason,
    relay::{Refusal, RelayStore},
};
use nabij_relay_proto::{
    roster::RosterDevice,
    wire::{self, Request, Response},
};
use nabij_sync_server::Limits;
use nabij_tests::{
    case_with_notes, observation, open_device,
    relay::{InProcessRelay, RawClient, sync_once},
};

const AFTER: &str = "Na de verwijdering: mevrouw B. verhuist naar de Lindenstraat";

struct World {
    _dir: tempfile::TempDir,
    relay: InProcessRelay,
    admin: Arc<Device>,
    colleague: Arc<Device>,
    lost: Arc<Device>,
    network: DocId,
    case: DocId,
}

/// Anna (admin), Bram and a phone soon lost, all syncing through one relay.
async fn world() -> World {
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let admin = open_device(dir.path(), "Anna");
    let colleague = open_device(dir.path(), "Bram");
    let lost = open_device(dir.path(), "Kees");
    let network = admin.create_network("Wijknetwerk Oost").expect("network");
    for d in [&colleague, &lost] {
        d.join(
            &admin
                .invite(network, d.member_id(), &d.display_name(), d.device_key())
                .expect("invite"),
        )
        .expect("add");
    }
    let case = case_with_notes(&admin, network, "Mevrouw B.", 2);
    sync_once(&admin, &relay).await.expect("admin");
    for d in [&colleague, &lost] {
        sync_once(d, &relay).await.expect("member");
        assert!(d.case(case).is_ok(), "{} holds the case", d.display_name());
    }
    World { _dir: dir, relay, admin, colleague, lost, network, case }
}

fn notes_text(d: &Device, case: DocId) -> String {
    d.case_timeline(case)
        .expect("timeline")
        .into_iter()
        .map(|n| n.text)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_5_a_removed_phone_is_refused_by_the_relay_and_cannot_read_what_comes_after() {
    let w = world().await;
    w.admin.remove_device(w.network, w.lost.device_key(), Reason::Lost).expect("remove");
    w.admin.add_note(w.case, observation(AFTER)).expect("note");
    let report = sync_once(&w.admin, &w.relay).await.expect("admin");
    assert_eq!(report.report.rosters_registered, 1, "the new roster: {:?}", report.report);

    // The colleague reads the new note.
    sync_once(&w.colleague, &w.relay).await.expect("colleague");
    assert!(notes_text(&w.colleague, w.case).contains(AFTER));

    // The relay operator hands the lost phone every blob (pulled with the colleague's key):
    // it opens nothing written after the removal.
    let secret = nabij_core::test_utils::signing_key(&w.colleague).to_bytes();
    let mut raw = RawClient::connect(&w.relay.address, w.relay.key, secret).await;
    let relay_id = w.colleague.relay_network_id(w.network).expect("id").expect("held");
    let pull = Request::Pull { network: relay_id, after: 0, max_bytes: 1 << 24 };
    raw.send_raw(&wire::encode(&pull, 1 << 24).expect("frame")).await;
    let (blobs, next) = match raw.answers(1).await.pop() {
        Some(Response::Blobs { blobs, next, .. }) => (blobs, next),
        other => panic!("unexpected answer {other:?}"),
    };
    raw.close();
    {
        let mut store = nabij_core::DeviceRelay::new(&w.lost, w.relay.key);
        let nets = store.local_networks().expect("the lost phone's own view");
        let (access, _) = nets.into_iter().find(|(a, _)| a.network == w.network).expect("network");
        let applied = store.apply(&access, blobs, next).expect("apply");
        // Not opened: passed over, or kept in case their key comes (it never will).
        assert!(
            applied.rejected.len() + applied.deferred.len() > 0,
            "blobs of the new epoch do not open: {applied:?}"
        );
        assert!(!notes_text(&w.lost, w.case).contains(AFTER), "the lost phone read the new note");
    }

    // At its next relay sync the lost phone finds its signed removal on the roster and wipes
    // the network: its documents, rows and keys. What it holds of no other network goes; its
    // own private case stays.
    let private = w.lost.create_case(nabij_core::model::NewCase {
        subject: "Eigen aantekeningen".into(),
        ..Default::default()
    });
    let private = private.expect("private case");
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let _sub = {
        let heard = heard.clone();
        w.lost.subscribe(move |ids| heard.lock().expect("lock").extend_from_slice(ids))
    };
    let report = sync_once(&w.lost, &w.relay).await.expect("the lost phone's sync");
    assert_eq!(report.report.wiped, vec![w.network], "{:?}", report.report);
    let held: Vec<DocId> =
        w.lost.document_ids().expect("ids").into_iter().map(|(id, _)| id).collect();
    assert_eq!(held, vec![private], "only its private case is left");
    assert!(w.lost.search("Mevrouw", 10).expect("search").is_empty(), "no search entry left");
    assert!(w.lost.list_networks().expect("networks").is_empty());
    assert!(w.lost.relay_network_id(w.network).is_err(), "no key left");
    let heard = heard.lock().expect("lock").clone();
    assert!(heard.contains(&w.network) && heard.contains(&w.case), "the app was told: {heard:?}");
    assert!(w.lost.check_integrity().expect("check").is_empty());
    w.relay.stop().await;
}

/// Wipe on contact at a meeting: a removed phone that meets a member who holds the removal is
/// admitted only to be handed it, wipes the network, and gets nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_5_a_removed_phone_that_meets_a_member_wipes_the_network() {
    use nabij_core::{
        net::{self, SyncOptions},
        test_utils::loopback,
    };
    let w = world().await;
    w.admin.remove_device(w.network, w.lost.device_key(), Reason::Compromised).expect("remove");
    w.admin.add_note(w.case, observation(AFTER)).expect("note");
    sync_once(&w.admin, &w.relay).await.expect("admin");
    sync_once(&w.colleague, &w.relay).await.expect("colleague learns of the removal");
    let mut listener = net::listen(w.colleague.clone(), loopback()).await.expect("listen");
    let ticket = listener.ticket().clone();
    let report = net::sync_with(w.lost.clone(), &ticket, SyncOptions::default()).await;
    let report = report.expect("the meeting ends normally");
    assert_eq!(report.documents_received, 0, "{report:?}");
    let _ = listener.next_session().await;
    assert!(w.lost.document_ids().expect("ids").is_empty(), "wiped");
    assert!(!notes_text(&w.colleague, w.case).is_empty(), "the colleague keeps everything");
    w.relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_4_a_member_cannot_freeze_the_relay_roster() {
    let w = world().await;
    // Bram, a member, registers a roster from far in the future listing only himself, as an
    // admin, with the network's real operations.
    let relay_id = w.colleague.relay_network_id(w.network).expect("id").expect("held");
    let secret = nabij_core::test_utils::signing_key(&w.colleague);
    let mut store = nabij_core::DeviceRelay::new(&w.colleague, w.relay.key);
    let (_, mut roster) = store
        .local_networks()
        .expect("his view")
        .into_iter()
        .find(|(a, _)| a.relay_id == relay_id)
        .expect("network");
    roster.issued_at = i64::MAX;
    roster.devices = vec![RosterDevice {
        key: *w.colleague.device_key().as_bytes(),
        sealed: Vec::new(),
        admin: true,
        removed: false,
    }];
    let roster = roster.sign(&secret).expect("sign");
    let mut raw = RawClient::connect(&w.relay.address, w.relay.key, secret.to_bytes()).await;
    raw.send_raw(&wire::encode(&Request::Register { roster }, 1 << 24).expect("frame")).await;
    let a = raw.answers(1).await;
    // Its operations are taken (they are the network's own), its roster is not: the admin's
    // stays registered, with its number.
    assert!(
        matches!(a[..], [Response::Registered { issued_at, .. }] if issued_at != i64::MAX),
        "a member's roster was taken: {a:?}"
    );
    raw.close();
    // Everyone still syncs, and the admin's next change reaches the others.
    w.admin.add_note(w.case, observation(AFTER)).expect("note");
    sync_once(&w.admin, &w.relay).await.expect("admin");
    for d in [&w.colleague, &w.lost] {
        let r = sync_once(d, &w.relay).await.expect("member");
        assert!(r.report.refusals.is_empty(), "{:?}", r.report);
        assert!(notes_text(d, w.case).contains(AFTER));
    }
    w.relay.stop().await;
}

/// Found by an attacker review: an admin gone bad (soon to be removed) registers a roster
/// numbered far ahead, so that the honest admin can never replace it and the removed device
/// keeps its place at the relay. Rosters are numbered in line: the jump is refused; and once
/// the honest admin registers the roster without it, the removed admin can register nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_4_an_admin_cannot_freeze_the_relay_roster_before_removal() {
    let w = world().await;
    w.admin
        .set_role(w.network, w.lost.member_id(), nabij_core::model::Role::Admin)
        .expect("promote");
    sync_once(&w.admin, &w.relay).await.expect("admin");
    sync_once(&w.lost, &w.relay).await.expect("the soon-bad admin");
    let relay_id = w.lost.relay_network_id(w.network).expect("id").expect("held");
    let mut store = nabij_core::DeviceRelay::new(&w.lost, w.relay.key);
    let (_, mut roster) = store
        .local_networks()
        .expect("its view")
        .into_iter()
        .find(|(a, _)| a.relay_id == relay_id)
        .expect("network");
    let secret = nabij_core::test_utils::signing_key(&w.lost);
    let mut raw = RawClient::connect(&w.relay.address, w.relay.key, secret.to_bytes()).await;
    roster.issued_at = i64::MAX;
    let frozen = roster.clone().sign(&secret).expect("sign");
    raw.send_raw(&wire::encode(&Request::Register { roster: frozen }, 1 << 24).expect("frame"))
        .await;
    let a = raw.answers(1).await;
    assert!(
        matches!(a[..], [Response::Refused { reason: Refusal::BadRoster, .. }]),
        "a roster numbered far ahead was taken: {a:?}"
    );
    raw.close();

    // Removed, it is off the next roster the honest admin registers, and stays off.
    w.admin.remove_device(w.network, w.lost.device_key(), Reason::Compromised).expect("remove");
    let r = sync_once(&w.admin, &w.relay).await.expect("admin");
    assert_eq!(r.report.rosters_registered, 1, "{:?}", r.report);
    let mut raw = RawClient::connect(&w.relay.address, w.relay.key, secret.to_bytes()).await;
    roster.issued_at = 4;
    let back = roster.sign(&secret).expect("sign");
    raw.send_raw(&wire::encode(&Request::Register { roster: back }, 1 << 24).expect("frame")).await;
    let a = raw.answers(1).await;
    assert!(
        matches!(a[..], [Response::Refused { reason: Refusal::NotOnRoster, .. }]),
        "the removed admin registered a roster: {a:?}"
    );
    raw.close();
    w.relay.stop().await;
}

/// The lock-out the relay could not see before it checked the membership itself: an admin
/// gone bad registers the next roster in line (a legitimate number) listing only itself, as
/// the only admin. The relay admits and refuses by the signed membership, not by the roster's
/// word: the others keep syncing, the honest admin registers the next roster, and once it
/// removes the bad admin, that one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_4_an_admin_cannot_lock_the_others_out_of_the_relay() {
    let w = world().await;
    w.admin
        .set_role(w.network, w.lost.member_id(), nabij_core::model::Role::Admin)
        .expect("promote");
    sync_once(&w.admin, &w.relay).await.expect("admin");
    sync_once(&w.lost, &w.relay).await.expect("the soon-bad admin");
    let relay_id = w.lost.relay_network_id(w.network).expect("id").expect("held");
    let secret = nabij_core::test_utils::signing_key(&w.lost);
    let mut raw = RawClient::connect(&w.relay.address, w.relay.key, secret.to_bytes()).await;
    raw.send_raw(&wire::encode(&Request::Networks, 1 << 24).expect("frame")).await;
    let at_relay = match &raw.answers(1).await[..] {
        [Response::Networks { rosters }] => rosters
            .iter()
            .filter_map(|r| r.verify().ok())
            .find(|r| r.network == relay_id)
            .expect("the network's roster"),
        other => panic!("{other:?}"),
    };
    let mut store = nabij_core::DeviceRelay::new(&w.lost, w.relay.key);
    let (_, mut roster) = store
        .local_networks()
        .expect("its view")
        .into_iter()
        .find(|(a, _)| a.relay_id == relay_id)
        .expect("network");
    roster.issued_at = at_relay.issued_at + 1;
    roster.devices.retain(|d| d.key == *w.lost.device_key().as_bytes());
    roster.ops.truncate(1);
    let only_me = roster.sign(&secret).expect("sign");
    raw.send_raw(&wire::encode(&Request::Register { roster: only_me }, 1 << 24).expect("frame"))
        .await;
    let a = raw.answers(1).await;
    assert!(matches!(a[..], [Response::Registered { .. }]), "an admin registers: {a:?}");
    raw.close();

    // Nobody is locked out: the colleague and the admin sync without a refusal, and the admin's
    // next roster (the removal) is taken.
    w.admin.add_note(w.case, observation(AFTER)).expect("note");
    let r = sync_once(&w.admin, &w.relay).await.expect("admin");
    assert!(r.report.refusals.is_empty(), "{:?}", r.report);
    let r = sync_once(&w.colleague, &w.relay).await.expect("colleague");
    assert!(r.report.refusals.is_empty(), "{:?}", r.report);
    assert!(notes_text(&w.colleague, w.case).contains(AFTER));
    w.admin.remove_device(w.network, w.lost.device_key(), Reason::Compromised).expect("remove");
    let r = sync_once(&w.admin, &w.relay).await.expect("admin");
    assert_eq!(r.report.rosters_registered, 1, "{:?}", r.report);
    assert!(r.report.refusals.is_empty(), "{:?}", r.report);
    let mut raw = RawClient::connect(&w.relay.address, w.relay.key, secret.to_bytes()).await;
    raw.send_raw(
        &wire::encode(&Request::Pull { network: relay_id, after: 0, max_bytes: 1 << 20 }, 1 << 24)
            .expect("frame"),
    )
    .await;
    let a = raw.answers(1).await;
    assert!(
        matches!(a[..], [Response::Refused { reason: Refusal::NotOnRoster, .. }]),
        "the removed admin still pulls: {a:?}"
    );
    raw.close();
    w.relay.stop().await;
}

/// Found by a review: the removed phone receives its own removal by ordinary sync (a
/// colleague who holds it pushes the network document before the admin registers the new
/// roster, say) and is then no longer "on" the network anywhere. Its own copy of the
/// membership says it was removed: it wipes at its next contact, before anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_5_a_phone_that_learnt_its_removal_by_sync_wipes_at_its_next_contact() {
    let w = world().await;
    w.admin.remove_device(w.network, w.lost.device_key(), Reason::Lost).expect("remove");
    // The removal reaches the phone as a plain change to the network document.
    let heads = w.lost.heads(w.network).expect("heads");
    let change = w.admin.changes_since(w.network, &heads).expect("changes");
    w.lost.merge_changes(w.network, &change).expect("the phone merges its removal");
    assert!(w.lost.case(w.case).is_ok(), "still there until its next contact");
    let r = sync_once(&w.lost, &w.relay).await.expect("its next relay sync");
    assert!(r.report.blobs_pushed == 0, "nothing pushed: {:?}", r.report);
    assert!(w.lost.document_ids().expect("ids").is_empty(), "wiped");
    w.relay.stop().await;
}
