//! `check_integrity` tells the truth about a healthy store: a worker is told her data is damaged
//! only when it is.

use nabij_core::{
    Device,
    model::{NewCase, NewNote, NoteKind},
};

#[test]
fn a_healthy_store_passes_the_integrity_check_after_every_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Device::open(dir.path().join("phone.db")).expect("open");
    let case = d
        .create_case(NewCase { subject: "Joke en Michelle".into(), ..NewCase::default() })
        .expect("case");
    assert_eq!(d.check_integrity().expect("check"), Vec::<String>::new());
    for i in 0..60 {
        let text =
            format!("Bezoek {i}: Michelle draagt haar lievelingsshirt ongewassen; wasmachine {i}.");
        d.add_note(case, NewNote { kind: NoteKind::Observation, text }).expect("note");
        let problems = d.check_integrity().expect("check");
        assert!(problems.is_empty(), "after note {i}: {problems:?}");
    }
}

#[test]
fn a_damaged_search_index_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let d = Device::open(&path).expect("open");
    let case = d
        .create_case(NewCase { subject: "Familie K.".into(), ..NewCase::default() })
        .expect("case");
    for i in 0..5 {
        let text = format!("Gesprek {i} over de schuldhulp en de wasmachine.");
        d.add_note(case, NewNote { kind: NoteKind::Observation, text }).expect("note");
    }
    assert!(d.check_integrity().expect("check").is_empty());
    {
        // Another program scribbles over the index's leaf pages (not the documents).
        let c = rusqlite::Connection::open(&path).expect("open raw");
        let n = c
            .execute("UPDATE search_fts_data SET block = zeroblob(length(block)) WHERE id > 10", [])
            .expect("scribble");
        assert!(n > 0, "the index has leaf pages to damage");
    }
    let problems = d.check_integrity().expect("check");
    assert!(problems.iter().any(|p| p.contains("search_fts")), "{problems:?}");
}

#[test]
fn a_search_index_out_of_step_with_its_items_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let d = Device::open(&path).expect("open");
    let case = d
        .create_case(NewCase { subject: "Familie K.".into(), ..NewCase::default() })
        .expect("case");
    d.add_note(case, NewNote { kind: NoteKind::Observation, text: "Over de huur.".into() })
        .expect("note");
    assert!(d.check_integrity().expect("check").is_empty());
    {
        // Another program drops an index entry but leaves its item.
        let c = rusqlite::Connection::open(&path).expect("open raw");
        c.execute("DELETE FROM search_fts WHERE rowid = (SELECT max(id) FROM search_items)", [])
            .expect("drop entry");
    }
    let problems = d.check_integrity().expect("check");
    assert!(problems.iter().any(|p| p.contains("missing from the index")), "{problems:?}");
    d.reindex().expect("reindex");
    assert!(d.check_integrity().expect("check").is_empty());
}
