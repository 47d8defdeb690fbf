//! A device that writes two histories of one document: two different changes with one number in
//! its chain (one store copied onto two phones, a modified app, a thief with its key). Each
//! history spreads to some devices; Automerge can hold only one of them per document.
//!
//! What users rely on: nothing written on either side is lost, and every device ends up with
//! the same documents (the history whose parting change has the smaller hash keeps the case's
//! id; the other goes on as a new case, on every device alike); and no one can make a device
//! move a document without the writer's own signature over the other history.

use std::sync::Arc;

use automerge::{ActorId, ROOT, transaction::Transactable};
use nabij_core::{
    Device, DocId,
    authorship::{SignedHead, seal_envelope},
    model::CaseFilter,
    test_utils::{load_exported, observation, signing_key},
};
use nabij_sync_server::Limits;
use nabij_tests::{
    attack::{case_in, copy_store, hand, invite, texts, two_admins_and_a_member},
    doc_heads, meet, open_device,
    relay::{InProcessRelay, sync_once},
};

/// The notes of every case with `subject` that `d` holds, sorted, and how many such cases.
fn notes_about(d: &Device, subject: &str) -> (usize, Vec<String>) {
    let cases = d.list_cases(&CaseFilter::default()).expect("cases");
    let mine: Vec<DocId> = cases.iter().filter(|c| c.subject == subject).map(|c| c.id).collect();
    let mut all: Vec<String> = mine.iter().flat_map(|c| texts(d, *c)).collect();
    all.sort();
    (mine.len(), all)
}

/// Meetings among `devices`, every pair both ways, until every device holds the same documents
/// at the same heads (at most `rounds` rounds). Whether they did.
fn meet_until_converged(devices: &[&Device], rounds: usize) -> bool {
    for _ in 0..rounds {
        for a in devices {
            for b in devices {
                if a.device_key() != b.device_key() {
                    meet(a, b).expect("meeting");
                }
            }
        }
        let first = doc_heads(devices[0]);
        if devices.iter().all(|d| doc_heads(d) == first) {
            return true;
        }
    }
    false
}

/// Xavier's store is copied onto a second phone. Each phone writes a note to the same case
/// (the same number in Xavier's chain, two changes) and meets one half of the network; each
/// half writes on top. Once the halves meet, every device holds the case and its fork, with
/// every note written on either side, at the same heads.
#[test]
fn two_histories_of_a_case_become_two_cases_with_every_note_on_every_device() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, xavier, yara], network) = two_admins_and_a_member(dir.path());
    let case = case_in(&anna, vec![network], "Mevrouw B.");
    for d in [&bram, &xavier, &yara] {
        hand(&anna, d, case);
    }
    drop(xavier);
    let xavier = Arc::new(nabij_tests::reopen(&dir.path().join("Xavier")));
    let copy = copy_store(dir.path(), "Xavier", "Xavier-copy");
    assert_eq!(copy.device_key(), xavier.device_key());

    xavier.add_notes(case, vec![observation("X1: huisbezoek, post ongeopend")]).expect("note");
    copy.add_notes(case, vec![observation("X2: belafspraak met de school")]).expect("note");
    meet(&xavier, &yara).expect("Yara gets X1");
    meet(&copy, &bram).expect("Bram gets X2");
    yara.add_notes(case, vec![observation("Y: samen naar het wijkteam")]).expect("note");
    bram.add_notes(case, vec![observation("B: schuldhulp aangevraagd")]).expect("note");

    // Across the halves, the side whose history keeps the case refuses the other's, typed; the
    // other side moves its own and takes the one that keeps the id.
    for (from, to) in [(&bram, &yara), (&yara, &bram)] {
        if let Err(e) = nabij_tests::attack::hop(from, to, case) {
            assert!(e.to_string().contains("two different histories"), "{e}");
        }
    }

    assert!(
        meet_until_converged(&[&anna, &bram, &yara], 4),
        "Anna, Bram and Yara hold the same documents at the same heads"
    );
    let want = {
        let mut w: Vec<String> = [
            "X1: huisbezoek, post ongeopend",
            "X2: belafspraak met de school",
            "Y: samen naar het wijkteam",
            "B: schuldhulp aangevraagd",
        ]
        .map(String::from)
        .to_vec();
        w.sort();
        w
    };
    for d in [&anna, &bram, &yara] {
        let (cases, notes) = notes_about(d, "Mevrouw B.");
        assert_eq!(cases, 2, "{}: the case and its fork", d.display_name());
        for n in &want {
            assert!(notes.contains(n), "{}: {n} is kept (has {notes:?})", d.display_name());
        }
        // Each history is whole in one of them: nothing is written twice.
        assert_eq!(notes.iter().filter(|n| n.starts_with("X1")).count(), 1);
        assert_eq!(notes.iter().filter(|n| n.starts_with("X2")).count(), 1);
    }
    // The case keeps its id on every device (one of the histories stays under it).
    for d in [&anna, &bram, &yara] {
        assert!(d.case_timeline(case).is_ok(), "{} holds the case under its id", d.display_name());
    }
    // Each of them hands both documents on whole, signatures and all: a new member who meets
    // only one of them (whichever history gave way there) ends with what everyone holds.
    for (i, d) in [&anna, &bram, &yara].into_iter().enumerate() {
        let newcomer = open_device(dir.path(), &format!("Nieuw {i}"));
        invite(&anna, network, &newcomer);
        hand(&anna, &newcomer, network);
        if i > 0 {
            meet(&anna, d).expect("the roster that lists the newcomer");
        }
        // Two meetings: a split-off document that comes before the one it split from (they
        // come in the order of the giver's list) is taken at the next meeting.
        meet(d, &newcomer).expect("meeting");
        meet(d, &newcomer).expect("meeting");
        assert_eq!(doc_heads(&newcomer), doc_heads(d), "{} hands on everything", d.display_name());
    }
}

/// Yara's modified app writes a change "by Xavier" with the number Xavier's latest change to
/// the case carries (no signature of his covers it: hers, over her own key, is all it has) and
/// grinds it until its hash is below Xavier's, which would make Bram's history the one to move.
/// Bram refuses it and moves nothing: the case stays under its id with its notes, and no new
/// document appears.
#[test]
fn a_second_history_in_anothers_name_moves_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, xavier, yara], network) = two_admins_and_a_member(dir.path());
    let case = case_in(&anna, vec![network], "Mevrouw B.");
    for d in [&bram, &xavier, &yara] {
        hand(&anna, d, case);
    }
    xavier.add_notes(case, vec![observation("X1: huisbezoek")]).expect("note");
    meet(&xavier, &bram).expect("Bram gets X1");
    let held_docs = doc_heads(&bram);
    let exported = bram.export_document(case).expect("export");
    let mut held = load_exported(&exported);
    let theirs = xavier.device_key();
    let x1 = held
        .get_changes_meta(&[])
        .into_iter()
        .filter(|c| c.actor.to_bytes() == theirs.as_bytes().as_slice())
        .max_by_key(|c| c.seq)
        .expect("Xavier's change");
    let (seq, x1_hash) = (x1.seq, x1.hash);
    // Yara's copy from before Xavier's note: the forged change gets his next number there... the
    // number his note has.
    let mut base = load_exported(&yara.export_document(case).expect("export"));
    let before = base.get_heads();
    let forged = (0..256)
        .find_map(|i| {
            let mut fork = base.clone().with_actor(ActorId::from(theirs.as_bytes().to_vec()));
            fork.put(ROOT, "subject", format!("vervalst {i}")).expect("put");
            fork.commit();
            let c = fork.get_changes_meta(&before).into_iter().next().expect("change");
            (c.seq == seq && c.hash < x1_hash).then(|| fork.save_after(&before))
        })
        .expect("a ground change below Xavier's");
    let signed = vec![SignedHead::sign(&signing_key(&yara), case, seq, [0; 32])];
    let refused = bram.merge_changes(case, &seal_envelope(&signed, &forged));
    assert!(refused.is_err(), "the forged history is refused");
    assert_eq!(doc_heads(&bram), held_docs, "Bram's documents are as they were: nothing moved");
    assert_eq!(texts(&bram, case), vec!["X1: huisbezoek".to_string()]);
    let _ = anna;
}

/// The same two histories through the relay alone: both phones with Xavier's store upload their
/// note; every device pulls both, in the relay's order. Whoever holds the history that moves
/// moves it (and takes the other in the same pull); the moved one goes up as a new document.
/// After a few syncs every device holds both documents at the same heads, every note once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_histories_through_the_relay_alone_end_the_same_everywhere() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let ([anna, bram, xavier, yara], network) = two_admins_and_a_member(dir.path());
    let case = case_in(&anna, vec![network], "Mevrouw B.");
    for d in [&anna, &bram, &xavier, &yara] {
        sync_once(d, &relay).await.expect("first sync");
    }
    for d in [&anna, &bram, &xavier, &yara] {
        sync_once(d, &relay).await.expect("everyone holds the case");
    }
    xavier.case_timeline(case).expect("Xavier holds the case");
    drop(xavier);
    let xavier = Arc::new(nabij_tests::reopen(&dir.path().join("Xavier")));
    let copy = copy_store(dir.path(), "Xavier", "Xavier-copy");

    xavier.add_notes(case, vec![observation("X1: huisbezoek, post ongeopend")]).expect("note");
    copy.add_notes(case, vec![observation("X2: belafspraak met de school")]).expect("note");
    sync_once(&xavier, &relay).await.expect("X1 up");
    sync_once(&copy, &relay).await.expect("X2 up");
    yara.add_notes(case, vec![observation("Y: samen naar het wijkteam")]).expect("note");

    let all = [&anna, &bram, &yara, &xavier, &copy];
    let mut converged = false;
    for _ in 0..4 {
        for d in all {
            let r = sync_once(d, &relay).await.expect("sync");
            assert!(r.report.refusals.is_empty(), "{r:?}");
        }
        let first = doc_heads(all[0]);
        if all.iter().all(|d| doc_heads(d) == first) {
            converged = true;
            break;
        }
    }
    assert!(converged, "every device holds the same documents at the same heads");
    for d in all {
        let (cases, notes) = notes_about(d, "Mevrouw B.");
        assert_eq!(cases, 2, "the case and its fork: {notes:?}");
        for n in ["X1: huisbezoek, post ongeopend", "X2: belafspraak met de school"] {
            assert_eq!(notes.iter().filter(|x| *x == n).count(), 1, "{n} once: {notes:?}");
        }
        assert!(notes.iter().any(|x| x.starts_with("Y: ")), "Yara's note is kept: {notes:?}");
    }
}
