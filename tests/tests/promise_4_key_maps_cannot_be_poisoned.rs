//! Promise 4 of the threat model, in part: no member can poison the shared key maps so that
//! the others' sync fails. The poisoner is a member whose modified app writes entries of its
//! own into the network document's content-key map (entries that do not open, sorted before
//! the real ones, of the wrong type, with ids that are not hex); the honest devices merge that
//! change at a meeting, as they would, and must go on syncing through the relay.

use std::sync::Arc;

use automerge::{
    AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue, Value, transaction::Transactable,
};
use nabij_core::{
    Device, DocId,
    authorship::seal_envelope,
    model::Reason,
    net::{NetError, RelaySyncReport},
    test_utils::{key_epochs, load_exported, sign_fork},
};
use nabij_sync_server::Limits;
use nabij_tests::{
    ForgingStore, case_with_notes, meet, meet_stores, network_of, observation, open_device,
    relay::InProcessRelay,
};

async fn relay_sync(d: &Arc<Device>, relay: &InProcessRelay) -> Result<RelaySyncReport, NetError> {
    nabij_tests::relay::sync_once(d, relay).await
}

/// The poisoner's change to the network document: for every content-key entry, entries that
/// sort first and do not open, one that is not bytes, one whose id is not hex.
fn poison(poisoner: &Device, network: DocId) -> Vec<u8> {
    let mut doc = load_exported(&poisoner.export_document(network).expect("export"))
        .with_actor(automerge::ActorId::from(poisoner.device_key().as_bytes().to_vec()));
    let before = doc.get_heads();
    let map = match doc.get(ROOT, "content_keys").expect("get") {
        Some((Value::Object(ObjType::Map), id)) => id,
        other => panic!("no content key map: {other:?}"),
    };
    let keys: Vec<String> = doc.keys(&map).collect();
    assert!(!keys.is_empty(), "the network has content keys to poison");
    for k in keys {
        let (doc_part, _) = k.rsplit_once('.').expect("<doc>.<id>");
        doc.put(&map, format!("{doc_part}.0000000000000000"), ScalarValue::Bytes(vec![0xab; 72]))
            .expect("garbage");
        doc.put(&map, format!("{doc_part}.0000000000000001"), "not bytes").expect("string");
        doc.put(&map, format!("{doc_part}.zz"), ScalarValue::Bytes(vec![1; 72])).expect("bad id");
    }
    doc.commit();
    // Signed by the poisoner, as its own change: authorship is not what stops it.
    seal_envelope(&sign_fork(poisoner, network, &mut doc), &doc.save_after(&before))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_4_a_poisoned_content_key_map_does_not_stop_relay_sync() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let sanne = open_device(dir.path(), "Sanne");
    let youssef = open_device(dir.path(), "Youssef");
    let mallory = open_device(dir.path(), "Mallory");
    let network = sanne.create_network("Wijknetwerk Oost").expect("network");
    for d in [&youssef, &mallory] {
        d.join(&sanne.invite(network, d.member_id(), "Lid", d.device_key()).expect("invite"))
            .expect("member");
    }
    let case = case_with_notes(&sanne, network, "Gezin K.", 2);
    relay_sync(&sanne, &relay).await.expect("Sanne's first sync");
    relay_sync(&youssef, &relay).await.expect("Youssef's first sync");
    relay_sync(&mallory, &relay).await.expect("Mallory's first sync");

    // At a meeting, Sanne and Youssef merge Mallory's change to the network document.
    let poisoned = poison(&mallory, network);
    for d in [&sanne, &youssef] {
        assert!(d.merge_changes(network, &poisoned).expect("merge").changed);
    }

    // Both go on writing and syncing through the relay, and still converge.
    sanne.add_note(case, observation("Na de vergadering: huur betaald.")).expect("note");
    let pushed = relay_sync(&sanne, &relay).await.expect("Sanne syncs after the poisoning");
    assert!(pushed.report.rejected.is_empty(), "{pushed:?}");
    let pulled = relay_sync(&youssef, &relay).await.expect("Youssef syncs after the poisoning");
    assert!(pulled.report.rejected.is_empty(), "{pulled:?}");
    assert_eq!(youssef.heads(case).expect("case"), sanne.heads(case).expect("case"));
    let new_case = case_with_notes(&youssef, network, "Meneer J.", 1);
    relay_sync(&youssef, &relay).await.expect("Youssef pushes a new case");
    relay_sync(&sanne, &relay).await.expect("Sanne pulls it");
    assert_eq!(sanne.heads(new_case).expect("new case"), youssef.heads(new_case).expect("case"));
    relay.stop().await;
}

/// The poisoner overwrites real entries instead: a content key, a sealed network key and a
/// membership operation replaced with garbage, one deleted, and a map replaced by an empty
/// one. Devices that had not pulled the real entries yet would lose them for good; so no
/// device takes such a change, by any path (the check sits where every path merges: whole
/// documents, changes, sync messages and relay blobs; here, merged changes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_4_a_member_cannot_overwrite_or_delete_key_and_membership_entries() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let sanne = open_device(dir.path(), "Sanne");
    let mallory = open_device(dir.path(), "Mallory");
    let late = open_device(dir.path(), "Laat");
    let network = sanne.create_network("Wijknetwerk Oost").expect("network");
    for d in [&mallory, &late] {
        d.join(&sanne.invite(network, d.member_id(), "Lid", d.device_key()).expect("invite"))
            .expect("member");
    }
    let case = case_with_notes(&sanne, network, "Gezin K.", 2);
    relay_sync(&sanne, &relay).await.expect("Sanne's first sync");
    relay_sync(&mallory, &relay).await.expect("Mallory's first sync");

    let attacks: [(&str, Attack); 5] = [
        ("overwrite a content key", |d| overwrite_first(d, "content_keys")),
        ("overwrite a sealed network key", |d| overwrite_first(d, "keys")),
        ("overwrite a membership operation", |d| overwrite_first(d, "ops")),
        ("delete a content key", |d| {
            let map = map_of(d, "content_keys");
            let k = d.keys(&map).next().expect("an entry");
            d.delete(&map, k).expect("delete");
        }),
        ("replace the content key map", |d| {
            d.put_object(ROOT, "content_keys", ObjType::Map).expect("replace");
        }),
    ];
    for (what, attack) in attacks {
        let mut doc = load_exported(&mallory.export_document(network).expect("export"))
            .with_actor(automerge::ActorId::from(mallory.device_key().as_bytes().to_vec()));
        let before = doc.get_heads();
        attack(&mut doc);
        doc.commit();
        let change =
            seal_envelope(&sign_fork(&mallory, network, &mut doc), &doc.save_after(&before));
        let refused = sanne.merge_changes(network, &change);
        assert!(refused.is_err(), "{what}: taken");
    }
    // Whatever Mallory's own device holds, the late member still gets every real key: it
    // pulls through the relay and reads the case.
    relay_sync(&late, &relay).await.expect("the late member's sync");
    assert_eq!(late.heads(case).expect("case"), sanne.heads(case).expect("case"));
    relay.stop().await;
}

/// A change the poisoner makes to its copy of the network document.
type Attack = fn(&mut AutoCommit);

fn map_of(d: &AutoCommit, name: &str) -> automerge::ObjId {
    match d.get(ROOT, name).expect("get") {
        Some((Value::Object(ObjType::Map), id)) => id,
        other => panic!("no {name} map: {other:?}"),
    }
}

fn overwrite_first(d: &mut AutoCommit, name: &str) {
    let map = map_of(d, name);
    let k = d.keys(&map).next().expect("an entry");
    d.put(&map, k, ScalarValue::Bytes(vec![0xab; 72])).expect("overwrite");
}

/// The poisoner brings its overwrite to a meeting instead, in the same session as honest work:
/// the network document is refused alone (nothing of it applied), everything else is taken
/// both ways, and both sessions complete.
#[test]
fn promise_4_an_overwrite_brought_to_a_meeting_stops_nothing_else() {
    let dir = tempfile::tempdir().expect("dir");
    let sanne = open_device(dir.path(), "Sanne");
    let mallory = open_device(dir.path(), "Mallory");
    let network = sanne.create_network("Wijknetwerk Oost").expect("network");
    mallory
        .join(
            &sanne
                .invite(network, mallory.member_id(), "Lid", mallory.device_key())
                .expect("invite"),
        )
        .expect("member");
    let case = case_with_notes(&sanne, network, "Gezin K.", 1);
    for id in [network, case] {
        mallory.merge_document(&sanne.export_document(id).expect("export")).expect("merge");
    }
    mallory.add_note(case, observation("Mallory: huisbezoek gedaan.")).expect("note");
    sanne.add_note(case, observation("Sanne: de school gebeld.")).expect("note");
    let new = case_with_notes(&mallory, network, "Meneer J.", 1);
    let roster = sanne.heads(network).expect("heads");

    let mut fork = load_exported(&mallory.export_document(network).expect("export"))
        .with_actor(automerge::ActorId::from(mallory.device_key().as_bytes().to_vec()));
    overwrite_first(&mut fork, "ops");
    fork.commit();
    let signed = sign_fork(&mallory, network, &mut fork);
    let mut forger = ForgingStore::new(&mallory, network, fork, signed);
    let mut at_sanne = &*sanne;
    let (at_mallory, at_sanne) =
        meet_stores((mallory.device_key(), &mut forger), (sanne.device_key(), &mut at_sanne))
            .expect("the meeting goes on past the network document");

    assert!(at_sanne.is_complete() && at_mallory.is_complete());
    assert_eq!((at_sanne.documents_refused(), at_mallory.documents_refused_by_peer()), (1, 1));
    assert_eq!(sanne.heads(network).expect("heads"), roster, "nothing of the overwrite taken");
    assert_eq!(sanne.heads(case).expect("case"), mallory.heads(case).expect("case"));
    assert_eq!(sanne.heads(new).expect("new case"), mallory.heads(new).expect("new case"));
    // Sanne goes on meeting honest members: the roster she holds is whole.
    assert!(sanne.shares_network_with(&mallory.device_key()).expect("check"));
}

/// A sealed network key names its sealer, and an admin's entry counts as the device served: a
/// member that writes garbage for a device under an admin's name, for the next epoch, would
/// lock that device out of it (the admin seals nowhere it finds its own name). Found by the
/// review of session 20 and seen working: the admin took the entry, and after a removal the
/// device had no key of the new epoch. Only the sealer may write its entries now.
#[test]
fn promise_4_a_member_cannot_seal_in_an_admins_name() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, kees, lost], network) =
        network_of(dir.path(), ["Anna", "Bram", "Kees", "Lost"]);
    for d in [&bram, &kees, &lost] {
        meet(&anna, d).expect("meet");
    }
    assert_eq!(key_epochs(&kees, network), vec![0]);
    // Bram's modified app writes garbage sealed to Kees for epoch 1, in Anna's name.
    let mut doc = load_exported(&bram.export_document(network).expect("export"))
        .with_actor(automerge::ActorId::from(bram.device_key().as_bytes().to_vec()));
    let base = doc.get_heads();
    let keys = match doc.get(ROOT, "keys").expect("get") {
        Some((Value::Object(ObjType::Map), id)) => id,
        other => panic!("no key map: {other:?}"),
    };
    let entry = format!("1.{}.{}", kees.device_key(), anna.device_key());
    doc.put(&keys, entry.as_str(), ScalarValue::Bytes(vec![7; 120])).expect("put");
    doc.commit();
    let signed = sign_fork(&bram, network, &mut doc);
    let heads = anna.heads(network).expect("heads");
    let merged = anna.merge_changes(network, &seal_envelope(&signed, &doc.save_after(&base)));
    assert!(merged.is_err(), "Anna took an entry in her name that Bram wrote: {merged:?}");
    assert_eq!(anna.heads(network).expect("heads"), heads, "nothing of it stored");
    // The next epoch reaches Kees.
    anna.remove_device(network, lost.device_key(), Reason::Lost).expect("remove");
    meet(&anna, &kees).expect("meet");
    assert_eq!(key_epochs(&kees, network), vec![0, 1], "Kees holds the new epoch's key");
}
