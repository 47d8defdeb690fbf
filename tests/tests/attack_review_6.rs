//! Sixth attacker pass (`attack-pass`), over 8e598d2: whole copies of documents held outside the
//! network they came through judged "as if not held" (`check_as_new`), write-once sealed key
//! entries (`check_write_once`), live meeting changes.
//!
//! Each `attack_` test states the promise as it should hold; the four failed on the commit
//! reviewed (findings), and pass with their fixes: a live session drops a network whose
//! membership no longer holds the peer (`Session::recheck_networks`), a whole copy is judged
//! against the first network the peer named it in whether held here or not, and a key entry
//! of another shape than `epoch.device.sealer` (or one naming no sealer, made after the
//! network had signed operations) is refused on every path. Each `held_` test is an attack the
//! defence held against, kept where it adds coverage beyond the earlier files.

use std::sync::Arc;

use automerge::{ActorId, ROOT, ReadDoc, ScalarValue, transaction::Transactable};
use nabij_core::{
    Device, DocId,
    authorship::{open_envelope, seal_envelope},
    model::Reason,
    sync::{Event, Message, Session},
    test_utils::{load_exported, observation, sign_fork},
};
use nabij_tests::{
    RawPeer,
    attack::{case_in, hand, hop, invite, removed_on, texts},
    meet, open_device, pump,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn drain(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Anna's network with Vera and Mallory, each holding its document; Vera's case in it with a
/// note; a live meeting between Vera and Mallory that has run to quiescence (Mallory holds the
/// case). `(dir, anna, vera, mallory, network, case, vera's session, mallory's session)`.
#[allow(clippy::type_complexity)]
fn live_meeting()
-> (tempfile::TempDir, Arc<Device>, Arc<Device>, Arc<Device>, DocId, DocId, Session, Session) {
    let dir = tempfile::tempdir().expect("tempdir");
    let anna = open_device(dir.path(), "Anna");
    let vera = open_device(dir.path(), "Vera");
    let mallory = open_device(dir.path(), "Mallory");
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    for d in [&vera, &mallory] {
        invite(&anna, network, d);
    }
    for d in [&vera, &mallory] {
        hand(&anna, d, network);
    }
    let case = case_in(&vera, vec![network], "Mevrouw B.");
    vera.add_note(case, observation("Eerste gesprek: schulden.")).expect("note");
    let mut sv = Session::new(vera.device_key(), mallory.device_key(), 0);
    let mut sm = Session::new(mallory.device_key(), vera.device_key(), 0);
    {
        let (mut dv, mut dm) = (&*vera, &*mallory);
        sv.start(&mut dv).expect("start");
        pump(&mut sv, &mut dv, &mut sm, &mut dm).expect("the first round");
    }
    assert_eq!(texts(&mallory, case), vec!["Eerste gesprek: schulden.".to_string()]);
    drain(&mut sv);
    drain(&mut sm);
    (dir, anna, vera, mallory, network, case, sv, sm)
}

// ---------------------------------------------------------------------------------------------
// Promise 5: removal takes effect, in a live meeting
// ---------------------------------------------------------------------------------------------

/// A live meeting (the listener keeps pushing its device's changes while the peer is
/// connected) between Vera and Mallory. Anna removes Mallory (phone reported lost); the removal
/// reaches Vera (another guest's session, a file: here `hop`), and the driver tells Vera's
/// sessions of the changed network document, as it does for every change. Vera then writes a new
/// note in the case. Promised: refused at every meeting as soon as the removal reaches the
/// device, nothing written after the removal readable by the removed device.
#[test]
fn attack_a_live_meeting_keeps_pushing_new_notes_to_a_device_whose_removal_reached_the_victim() {
    let (_dir, anna, vera, mallory, network, case, mut sv, mut sm) = live_meeting();
    anna.remove_member(network, mallory.member_id(), Reason::Compromised).expect("remove");
    hop(&anna, &vera, network).expect("Vera holds the removal");
    assert!(removed_on(&vera, network, &mallory.device_key()), "the removal reached Vera");
    let (mut dv, mut dm) = (&*vera, &*mallory);
    // The driver hears of the network document's change (the merge notified) ...
    sv.local_change(&mut dv, network).expect("live");
    // ... and of the note Vera writes after the removal.
    vera.add_note(case, observation("Na de verwijdering: nieuw adres in de opvang.")).expect("n");
    sv.local_change(&mut dv, case).expect("live");
    // What Vera's session sends now, read before Mallory gets it: a compromised phone would
    // not wipe on the removal it is handed, so the note must not be in it at all.
    let mut decoder = nabij_core::sync::FrameDecoder::new();
    let mut frames = Vec::new();
    let mut said = Vec::new();
    while let Some(f) = sv.poll_transmit() {
        said.extend(decoder.feed(&f).expect("frames decode").into_iter().map(|(_, m)| m));
        frames.push(f);
    }
    assert!(
        said.iter()
            .any(|m| matches!(m, Message::Removed { network: n, .. } if n == network.as_bytes())),
        "the removed device was not handed its removal"
    );
    assert!(
        !said.iter().any(|m| matches!(m,
            Message::Sync { doc, .. } | Message::Document { doc, .. } if doc == case.as_bytes())),
        "the session sent the case to a device whose removal reached the victim"
    );
    for f in frames {
        sm.handle_bytes(&mut dm, 0, &f).expect("Mallory takes her removal");
    }
    pump(&mut sv, &mut dv, &mut sm, &mut dm).expect("the session goes on");
    let got = texts(&mallory, case);
    assert!(
        !got.iter().any(|t| t.contains("nieuw adres")),
        "the removed device received a note written after its removal reached the victim: {got:?}"
    );
}

/// The same live meeting, the other way: Mallory writes a note after her removal reached Vera and
/// pushes it live. The store takes changes of a device that "is or was" in the network (a change
/// relayed by a colleague may predate the removal), and the open session does not end: Vera
/// takes a note straight from a device she knows removed. Promised: refused at every meeting as
/// soon as the removal reaches the device.
#[test]
fn attack_a_removed_devices_live_changes_are_taken_after_its_removal_reached_the_victim() {
    let (_dir, anna, vera, mallory, network, case, mut sv, mut sm) = live_meeting();
    anna.remove_member(network, mallory.member_id(), Reason::Compromised).expect("remove");
    hop(&anna, &vera, network).expect("Vera holds the removal");
    let (mut dv, mut dm) = (&*vera, &*mallory);
    // The driver hears of the network document's change (the merge notified), as it does of
    // every change, and tells Vera's sessions.
    sv.local_change(&mut dv, network).expect("live");
    mallory.add_note(case, observation("Door Mallory, na haar verwijdering.")).expect("note");
    sm.local_change(&mut dm, case).expect("live");
    pump(&mut sv, &mut dv, &mut sm, &mut dm).expect("refused, not ended");
    assert!(
        !texts(&vera, case).iter().any(|t| t.contains("Mallory")),
        "the victim took a note by a device it knows removed"
    );
    assert!(
        drain(&mut sv)
            .iter()
            .any(|e| matches!(e, Event::DocumentRefused { doc, .. } if *doc == case)),
        "refused aloud"
    );
}

// ---------------------------------------------------------------------------------------------
// Promise 2: a member of A cannot tell whether the victim holds a case of B
// ---------------------------------------------------------------------------------------------

/// What a victim answers Mallory naming `doc` in `first`'s inventory, then in `second`'s, then
/// sending `bytes` whole as `doc`: the answers with `doc` written `X`, and the verdicts.
fn probe_two(
    victim: &Device,
    mallory: &Device,
    first: DocId,
    second: DocId,
    doc: DocId,
    bytes: &[u8],
    signed: &[nabij_core::authorship::SignedHead],
) -> (String, Vec<bool>) {
    let mut attack = RawPeer::new(victim, mallory.device_key());
    let id = *doc.as_bytes();
    let verdicts = [
        attack.send(Message::Inventory { network: *first.as_bytes(), docs: vec![(id, vec![])] }),
        attack.send(Message::Inventory { network: *second.as_bytes(), docs: vec![(id, vec![])] }),
        attack.send(Message::Document { doc: id, bytes: bytes.to_vec(), signed: signed.to_vec() }),
        attack.send(Message::Done { seen: 0 }),
    ];
    let said = attack.summary().replace(&doc.to_string(), "X");
    (said, verdicts.iter().map(Result::is_ok).collect())
}

/// Mallory is in networks A1 and A2 with Vera and Wim; Vera also works on a case of B (Mallory
/// is not in B; she learnt the case's id from a learning point citing it). Wim does not hold the
/// case. Mallory names the case's id first in the inventory of the network with the higher id,
/// then in the other's, and sends a document of her own making under that id, shared with the
/// first one only. Vera (holds the case) judges the copy by the network first named: it passes,
/// and she passes it over in silence. Wim (does not hold it) judges it by the network of lowest
/// id that named it: "not shared with that network", refused aloud. One meeting tells Mallory
/// who works on the case, and unlike the documented residual nothing is planted on Wim's phone.
#[test]
fn attack_a_member_of_two_networks_tells_who_holds_a_case_of_b_by_the_order_she_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let anna = open_device(dir.path(), "Anna");
    let vera = open_device(dir.path(), "Vera");
    let wim = open_device(dir.path(), "Wim");
    let mallory = open_device(dir.path(), "Mallory");
    let n1 = anna.create_network("Wijknetwerk Oost").expect("network");
    let n2 = anna.create_network("Jeugdteam").expect("network");
    let b = anna.create_network("Veilig Thuis").expect("network");
    let (lo, hi) = if n1.as_bytes() < n2.as_bytes() { (n1, n2) } else { (n2, n1) };
    for d in [&vera, &wim, &mallory] {
        for n in [lo, hi] {
            invite(&anna, n, d);
        }
    }
    for d in [&vera, &wim, &mallory] {
        for n in [lo, hi] {
            hand(&anna, d, n);
        }
    }
    invite(&anna, b, &vera);
    hand(&anna, &vera, b);
    let secret = case_in(&vera, vec![b], "Mevrouw B.");
    vera.add_note(secret, observation("Melding huiselijk geweld.")).expect("note");
    assert!(wim.case(secret).is_err(), "Wim does not hold the case");

    // Mallory's modified app: a case of her own in `hi`, its id changed to the case's, signed.
    let own = case_in(&mallory, vec![hi], "Eigen casus");
    let exported = mallory.export_document(own).expect("export");
    let (mut signed, _) = open_envelope(&exported).expect("envelope");
    let mut fork = load_exported(&exported)
        .with_actor(ActorId::from(mallory.device_key().as_bytes().to_vec()));
    fork.put(ROOT, "id", secret.to_string()).expect("put");
    fork.commit();
    signed.retain(|_| false);
    signed.extend(sign_fork(&mallory, secret, &mut fork));
    let bytes = fork.save();

    let at_vera = probe_two(&vera, &mallory, hi, lo, secret, &bytes, &signed);
    let at_wim = probe_two(&wim, &mallory, hi, lo, secret, &bytes, &signed);
    assert_eq!(vera.case(secret).expect("case").subject, "Mevrouw B.");
    assert_eq!(at_vera, at_wim, "the answers tell the phone that holds the case from the other");
}

// ---------------------------------------------------------------------------------------------
// Promise 4: write-once key entries, whole document vs changes
// ---------------------------------------------------------------------------------------------

/// Jan was invited to Anna's network and accepted; his first copy of the network document comes
/// whole from Mallory (a meeting where she is the first colleague he meets, or a file). Her
/// modified app added a key entry that is not `epoch.device.sealer` (the shape every device
/// refuses as a change): `check_write_once` lets entries naming no sealer in when the document
/// comes whole. Jan's copy then carries a change every other device refuses: his network
/// document never merges with Anna's again (each meeting refuses it), so what he writes into it
/// (content keys for the relay, key entries as an admin) never reaches the others. Promised: no
/// member can poison a shared structure so that others' sync fails.
#[test]
fn attack_a_member_plants_a_key_entry_in_a_joiners_whole_network_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let anna = open_device(dir.path(), "Anna");
    let mallory = open_device(dir.path(), "Mallory");
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &mallory);
    hand(&anna, &mallory, network);
    // The shapes every device refuses as a change: more parts (read as sealed by Anna), no
    // sealer (as written before entries named one), another sealer than the writer, an epoch
    // that is no number.
    let shapes = |jan: &Device| {
        let (j, a, m) = (jan.device_key(), anna.device_key(), mallory.device_key());
        [format!("0.{j}.x.{a}"), format!("1.{j}"), format!("1.{j}.{a}"), format!("e.{j}.{m}")]
    };
    for i in 0..4 {
        let jan = open_device(dir.path(), &format!("Jan{i}"));
        invite(&anna, network, &jan);
        hand(&anna, &mallory, network);
        let entry = shapes(&jan)[i].clone();
        let exported = mallory.export_document(network).expect("export");
        let (mut signed, _) = open_envelope(&exported).expect("envelope");
        let mut fork = load_exported(&exported)
            .with_actor(ActorId::from(mallory.device_key().as_bytes().to_vec()));
        let keys = fork.get(ROOT, "keys").expect("get").expect("a key map").1;
        fork.put(&keys, entry.as_str(), ScalarValue::Bytes(vec![0xAB; 80])).expect("put");
        fork.commit();
        signed.retain(|h| h.actor != *mallory.device_key().as_bytes());
        signed.extend(sign_fork(&mallory, network, &mut fork));
        let planted = jan.merge_document(&seal_envelope(&signed, &fork.save()));
        assert!(planted.is_err(), "{entry}: a whole copy carried what every device refuses");
        // Jan still joins, from Anna, and his copy merges with hers.
        let _ = meet(&anna, &jan);
        let _ = meet(&jan, &anna);
        let mut hj: Vec<_> = jan.heads(network).expect("heads").iter().map(|h| h.0).collect();
        let mut ha: Vec<_> = anna.heads(network).expect("heads").iter().map(|h| h.0).collect();
        hj.sort();
        ha.sort();
        assert_eq!(hj, ha, "{entry}: the joiner's network document is apart from the admin's");
    }
}

/// Control for the attack above: the same joiner given Mallory's copy of the network document
/// as her honest app holds it converges with Anna at their meeting.
#[test]
fn held_control_a_joiner_given_an_honest_whole_network_document_converges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let anna = open_device(dir.path(), "Anna");
    let mallory = open_device(dir.path(), "Mallory");
    let jan = open_device(dir.path(), "Jan");
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &mallory);
    invite(&anna, network, &jan);
    hand(&anna, &mallory, network);
    jan.merge_document(&mallory.export_document(network).expect("export")).expect("merge");
    let _ = meet(&jan, &anna);
    let _ = meet(&anna, &jan);
    let mut hj: Vec<_> = jan.heads(network).expect("heads").iter().map(|h| h.0).collect();
    let mut ha: Vec<_> = anna.heads(network).expect("heads").iter().map(|h| h.0).collect();
    hj.sort();
    ha.sort();
    assert_eq!(hj, ha);
}

/// Found by review of the fix above: a live session rechecks the peer's membership whenever a
/// network document changes, and a network the peer is bringing this device (an invitation it
/// accepted, the network not held yet) is not shared by the store's word: it was dropped, and
/// the peer's documents for it then ended the session ("a document that was not offered"). Only
/// networks shared when the session started are rechecked.
#[test]
fn held_a_network_being_joined_survives_a_recheck_during_the_meeting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let anna = open_device(dir.path(), "Anna");
    let jan = open_device(dir.path(), "Jan");
    let kees = open_device(dir.path(), "Kees");
    let a = anna.create_network("Wijknetwerk Oost").expect("network A");
    invite(&anna, a, &jan);
    hand(&anna, &jan, a);
    let n = anna.create_network("Jeugdteam").expect("network N");
    invite(&anna, n, &jan);
    let case = case_in(&anna, vec![n], "Familie K.");
    assert!(jan.case(case).is_err(), "Jan holds nothing of N yet");
    let mut sa = Session::new(anna.device_key(), jan.device_key(), 0);
    let mut sj = Session::new(jan.device_key(), anna.device_key(), 0);
    let (mut da, mut dj) = (&*anna, &*jan);
    sa.start(&mut da).expect("start");
    // Anna's hello and digests reach Jan, who answers them (N among them, as accepted).
    while let Some(f) = sa.poll_transmit() {
        sj.handle_bytes(&mut dj, 0, &f).expect("Jan");
    }
    // Meanwhile A's document changes on Jan's phone (Anna adds Kees; it reaches Jan by another
    // session), and the driver tells this session.
    invite(&anna, a, &kees);
    hop(&anna, &jan, a).expect("A's change");
    sj.local_change(&mut dj, a).expect("live");
    pump(&mut sa, &mut da, &mut sj, &mut dj).expect("the meeting goes on");
    assert_eq!(jan.case(case).expect("Jan got N's case").subject, "Familie K.");
}
