//! Promise 4 of the threat model, in part: no member can poison the shared keys so that the
//! others' sync fails. Content keys travel in the blobs they open (the first blob under a key
//! carries it, sealed under the network key); a poisoner's modified app pushes blobs that
//! carry keys of its own making (keys that do not open, sealed for another document, not the
//! key the blob is under, cut short, or a real key with garbage under it). The network
//! document's key and operation maps are write-once: no change may overwrite, delete or
//! replace an entry, by any path.

use std::sync::Arc;

use automerge::{
    AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue, Value, transaction::Transactable,
};
use nabij_core::{
    Device, DocId,
    authorship::seal_envelope,
    crypto::{BlobContext, SecretKey, carry_key, encrypt_blob},
    ids::Randomness,
    model::Reason,
    net::{NetError, RelaySyncReport},
    test_utils::{
        content_keys_in_history, content_keys_kept, key_epochs, legacy_content_key_blob,
        load_exported, network_key, relay_doc_id, sign_fork,
    },
};
use nabij_relay_proto::wire::Request;
use nabij_sync_server::{Limits, Relay, storage::MemoryStorage};
use nabij_tests::{
    ForgingStore, case_with_notes, meet, meet_stores, network_of, observation, open_device,
    relay::InProcessRelay,
};

async fn relay_sync(d: &Arc<Device>, relay: &InProcessRelay) -> Result<RelaySyncReport, NetError> {
    nabij_tests::relay::sync_once(d, relay).await
}

const RELAY_KEY: [u8; 32] = [7; 32];

fn sync(d: &Device, relay: &Relay<MemoryStorage>) -> nabij_core::relay::RelayReport {
    nabij_tests::relay::sync_in_memory(d, relay, RELAY_KEY, |_| {})
}

/// Blobs for `case`'s place at the relay that carry keys of the poisoner's making.
fn poisoned_blobs(mallory: &Device, network: DocId, case: DocId) -> Vec<Vec<u8>> {
    let rng = Randomness::os();
    let epoch = *key_epochs(mallory, network).last().expect("an epoch");
    let network_key = network_key(mallory, network, epoch);
    let relay_network = mallory.relay_network_id(network).expect("id").expect("genesis");
    let doc = relay_doc_id(mallory, network, case);
    let ctx = BlobContext { network: relay_network, doc, epoch };
    let other_doc = BlobContext { doc: [0x42; 32], ..ctx };
    let (hers, another) =
        (SecretKey::generate(&rng).expect("key"), SecretKey::generate(&rng).expect("key"));
    let garbage = encrypt_blob(&rng, &hers, &ctx, b"not a payload").expect("blob").bytes;
    let under_another = encrypt_blob(&rng, &another, &ctx, b"not a payload").expect("blob").bytes;
    // A key that does not open: the carried-key header with garbage where the sealed key goes.
    let mut not_opening = vec![0u8; 8];
    not_opening.extend_from_slice(&epoch.to_le_bytes());
    not_opening.extend_from_slice(&hers.id());
    not_opening.extend_from_slice(&[0xab; 72]);
    not_opening.extend_from_slice(&garbage);
    vec![
        not_opening,
        // Sealed for another document: it does not open in this one's place.
        carry_key(&rng, &network_key, &other_doc, &hers, &garbage).expect("carry"),
        // Carries one key, is encrypted under another.
        carry_key(&rng, &network_key, &ctx, &hers, &under_another).expect("carry"),
        // Cut short.
        vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3],
        // A real key of hers (she is a member), with garbage under it.
        carry_key(&rng, &network_key, &ctx, &hers, &garbage).expect("carry"),
    ]
}

#[test]
fn promise_4_poisoned_carried_content_keys_do_not_stop_relay_sync() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = Relay::new(MemoryStorage::new(), Limits::default());
    let ([sanne, youssef, mallory, late], network) =
        network_of(dir.path(), ["Sanne", "Youssef", "Mallory", "Laat"]);
    for d in [&sanne, &youssef, &mallory, &sanne] {
        sync(d, &relay);
    }
    let case = case_with_notes(&sanne, network, "Gezin K.", 2);
    for d in [&sanne, &youssef, &mallory] {
        sync(d, &relay);
    }
    assert_eq!(content_keys_kept(&youssef, network, case), 1, "the case's key came with it");

    // Mallory's modified app pushes her blobs into the case's place at the relay.
    let relay_network = mallory.relay_network_id(network).expect("id").expect("genesis");
    let doc = relay_doc_id(&mallory, network, case);
    let pushes: Vec<Request> = poisoned_blobs(&mallory, network, case)
        .into_iter()
        .map(|blob| Request::Push { network: relay_network, doc, blob })
        .collect();
    let answers = relay.handle(mallory.device_key().as_bytes(), pushes);
    assert_eq!(answers.len(), 5, "{answers:?}");

    // Sanne and Youssef go on writing and syncing, and still converge.
    sanne.add_note(case, observation("Na de vergadering: huur betaald.")).expect("note");
    sync(&sanne, &relay);
    let pulled = sync(&youssef, &relay);
    // Passed over, or (a key that does not open here: its epoch's key may not have come)
    // kept to open later, within the network's share of kept blobs.
    assert_eq!(pulled.rejected.len() + pulled.deferred, 5, "{pulled:?}");
    assert_eq!(youssef.heads(case).expect("case"), sanne.heads(case).expect("case"));
    // None of her keys is kept: a carried key is kept only once it opened its blob and the
    // blob named the document.
    assert_eq!(content_keys_kept(&youssef, network, case), 1);
    let new_case = case_with_notes(&youssef, network, "Meneer J.", 1);
    sync(&youssef, &relay);
    sync(&sanne, &relay);
    assert_eq!(sanne.heads(new_case).expect("new case"), youssef.heads(new_case).expect("case"));
    // A member who syncs for the first time now gets every real key and every note.
    sync(&late, &relay);
    assert_eq!(late.heads(case).expect("case"), sanne.heads(case).expect("case"));
    assert_eq!(late.heads(new_case).expect("case"), youssef.heads(new_case).expect("case"));
}

/// The poisoner overwrites real entries instead: a sealed network key and a membership
/// operation replaced with garbage, a key deleted, a map replaced by an empty one or by a
/// value. Devices that had not pulled the real entries yet would lose them for good; so no
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
        ("overwrite a sealed network key", |d| overwrite_first(d, "keys")),
        ("overwrite a membership operation", |d| overwrite_first(d, "ops")),
        ("delete a sealed network key", |d| {
            let map = map_of(d, "keys");
            let k = d.keys(&map).next().expect("an entry");
            d.delete(&map, k).expect("delete");
        }),
        ("replace the key map", |d| {
            d.put_object(ROOT, "keys", ObjType::Map).expect("replace");
        }),
        ("put a value where a write-once map goes", |d| {
            d.put(ROOT, "tombstones", "not a map").expect("value");
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

/// A network made before content keys left the network document holds them in the document's
/// `content_keys` map: a blob pushed under such a key (carrying none) still opens, for the
/// device that pushed it and for a colleague who pulls it; nothing new is written there.
#[test]
fn a_blob_under_a_key_in_a_networks_old_content_key_map_still_opens() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = Relay::new(MemoryStorage::new(), Limits::default());
    let ([sanne, youssef], network) = network_of(dir.path(), ["Sanne", "Youssef"]);
    for d in [&sanne, &youssef, &sanne] {
        sync(d, &relay);
    }
    let case = case_with_notes(&sanne, network, "Gezin K.", 2);
    let (doc, blob) = legacy_content_key_blob(&sanne, network, case);
    let relay_network = sanne.relay_network_id(network).expect("id").expect("genesis");
    let push = Request::Push { network: relay_network, doc, blob };
    assert_eq!(relay.handle(sanne.device_key().as_bytes(), vec![push]).len(), 1);
    let own = sync(&sanne, &relay);
    assert!(own.rejected.is_empty() && own.deferred == 0, "{own:?}");
    let pulled = sync(&youssef, &relay);
    assert!(pulled.rejected.is_empty() && pulled.deferred == 0, "{pulled:?}");
    assert_eq!(youssef.heads(case).expect("case"), sanne.heads(case).expect("case"));
    assert_eq!(content_keys_kept(&youssef, network, case), 0, "its key stays in the map");
    assert_eq!(content_keys_in_history(&youssef, network), 1);
}
