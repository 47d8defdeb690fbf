//! Bad input gets a typed error and leaves stored data intact: invalid fields, unknown ids,
//! wrong document kinds, foreign files, newer schemas, corrupt chunks, garbage to merge.

use nabij_core::{
    Device, DocId, Error, NoteId,
    error::{DocError, OpenError, StoreError},
    model::{
        CaseFilter, CaseItem, CaseUpdate, NewCase, NewLearningPoint, NewMeeting, ValidationError,
    },
    test_utils::observation as note,
};

fn device(dir: &tempfile::TempDir, name: &str) -> Device {
    Device::open(dir.path().join(name)).expect("open")
}

fn case(d: &Device, subject: &str) -> DocId {
    d.create_case(NewCase { subject: subject.into(), ..NewCase::default() }).expect("case")
}

/// A case `a` shares with a network `b` is in too (a device takes changes to a document only
/// from devices of a network it is shared with).
fn shared_case(a: &Device, b: &Device, subject: &str) -> DocId {
    let net = a.create_network("Wijknetwerk").expect("network");
    let invitation = a.invite(net, b.member_id(), "B", b.device_key()).expect("invite");
    b.join(&invitation).expect("join");
    b.merge_document(&a.export_document(net).expect("export")).expect("network");
    let new = NewCase { subject: subject.into(), networks: vec![net], ..NewCase::default() };
    a.create_case(new).expect("case")
}

#[test]
fn invalid_input_is_refused_with_the_field_named_and_nothing_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = device(&dir, "a.db");
    let c = case(&d, "Familie K.");
    let before = d.list_cases(&CaseFilter::default()).expect("list");

    let e = d.create_case(NewCase { subject: "   ".into(), ..NewCase::default() });
    assert!(matches!(e, Err(Error::Invalid(ValidationError::Required("subject")))), "{e:?}");
    let e = d.create_case(NewCase { subject: "x".repeat(201), ..NewCase::default() });
    assert!(
        matches!(e, Err(Error::Invalid(ValidationError::TooLong { field: "subject", .. }))),
        "{e:?}"
    );
    let e = d.add_note(c, note(""));
    assert!(matches!(e, Err(Error::Invalid(ValidationError::Required("note text")))), "{e:?}");
    let e = d.add_note(c, note(&"x".repeat(200 * 1024)));
    assert!(matches!(e, Err(Error::Invalid(ValidationError::TooLong { .. }))), "{e:?}");
    let e = d.add_case_item(
        c,
        CaseItem::Agreement {
            text: "Bellen".into(),
            owner: "Anna".into(),
            due: Some("2026-02-30".into()),
        },
    );
    assert!(
        matches!(e, Err(Error::Invalid(ValidationError::Invalid { field: "due date", .. }))),
        "{e:?}"
    );
    let e = d.update_case(
        c,
        CaseUpdate { caimer: vec![("gevoel".into(), "x".into())], ..CaseUpdate::default() },
    );
    assert!(matches!(e, Err(Error::Invalid(ValidationError::Invalid { .. }))), "{e:?}");
    let e = d.create_meeting(NewMeeting { date: "morgen".into(), ..NewMeeting::default() });
    assert!(matches!(e, Err(Error::Invalid(_))), "{e:?}");
    let e = d.update_case(c, CaseUpdate { add_tags: vec!["".into()], ..CaseUpdate::default() });
    assert!(matches!(e, Err(Error::Invalid(ValidationError::Required("tag")))), "{e:?}");
    let e = "not-an-id".parse::<DocId>().map_err(Error::from);
    assert!(matches!(e, Err(Error::Invalid(ValidationError::Id(_)))));

    assert_eq!(d.list_cases(&CaseFilter::default()).expect("list"), before);
    assert_eq!(d.history(c).expect("history").len(), 1, "no change was recorded");
}

#[test]
fn unknown_ids_and_wrong_kinds_are_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = device(&dir, "a.db");
    let c = case(&d, "Familie K.");
    let lp = d
        .create_learning_point(NewLearningPoint {
            title: "Nabij blijven".into(),
            ..NewLearningPoint::default()
        })
        .expect("lp");

    assert!(matches!(d.case(DocId::random()), Err(Error::NotFound { kind: "case", .. })));
    assert!(matches!(d.case_timeline(DocId::random()), Err(Error::NotFound { .. })));
    let e = d.note(c, NoteId::random());
    assert!(matches!(e, Err(Error::NotFound { kind: "note", .. })), "{e:?}");
    assert!(matches!(
        d.edit_note(c, NoteId::random(), "x"),
        Err(Error::NotFound { kind: "note", .. })
    ));
    assert!(matches!(d.meeting_contents(DocId::random()), Err(Error::NotFound { .. })));
    let e = d.add_note(lp, note("Dit hoort bij een casus."));
    assert!(matches!(e, Err(Error::Document(DocError::WrongKind { .. }))), "{e:?}");
    let n = d.add_note(c, note("Eerste gesprek.")).expect("note");
    let e = d.splice_note(c, n, 10, 50, "x");
    assert!(matches!(e, Err(Error::Document(DocError::TextRange { .. }))), "{e:?}");
    assert_eq!(d.note(c, n).expect("note").text, "Eerste gesprek.", "refused edit left no trace");
}

#[test]
fn foreign_files_and_newer_stores_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("boodschappen.txt");
    std::fs::write(&text, "melk, brood, koffie").expect("write");
    assert!(matches!(Device::open(&text), Err(Error::Open(OpenError::NotADatabase(_)))));
    assert_eq!(std::fs::read_to_string(&text).expect("read"), "melk, brood, koffie");

    let path = dir.path().join("newer.db");
    drop(device(&dir, "newer.db"));
    {
        let c = rusqlite::Connection::open(&path).expect("sqlite");
        c.pragma_update(None, "user_version", 999).expect("bump");
    }
    let before = std::fs::read(&path).expect("read");
    assert!(matches!(
        Device::open(&path),
        Err(Error::Open(OpenError::NewerSchema { found: 999, .. }))
    ));
    assert_eq!(std::fs::read(&path).expect("read"), before);

    // A file with SQLite's header but garbage after it.
    let torn = dir.path().join("torn.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend(std::iter::repeat_n(0xA5u8, 4096));
    std::fs::write(&torn, &bytes).expect("write");
    let e = Device::open(&torn);
    assert!(matches!(e, Err(Error::Open(OpenError::Corrupt(_)))), "{e:?}");
    assert_eq!(std::fs::read(&torn).expect("read"), bytes);
}

#[test]
fn a_corrupt_chunk_is_reported_not_a_panic_and_other_documents_still_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.db");
    let (broken, fine) = {
        let d = Device::open(&path).expect("open");
        let broken = case(&d, "Familie K.");
        d.add_note(broken, note("Gesprek aan de keukentafel.")).expect("note");
        let fine = case(&d, "Meneer De V.");
        (broken, fine)
    };
    for (what, mangle) in [
        (
            "truncated",
            Box::new(|b: &mut Vec<u8>| b.truncate(b.len() / 2)) as Box<dyn Fn(&mut Vec<u8>)>,
        ),
        (
            "garbage",
            Box::new(|b: &mut Vec<u8>| {
                b.iter_mut().skip(8).for_each(|x| *x = x.wrapping_mul(31).wrapping_add(7))
            }),
        ),
    ] {
        {
            let c = rusqlite::Connection::open(&path).expect("sqlite");
            let mut data: Vec<u8> = c
                .query_row(
                    "SELECT data FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq LIMIT 1",
                    [broken.as_bytes()],
                    |r| r.get(0),
                )
                .expect("chunk");
            mangle(&mut data);
            c.execute("UPDATE doc_chunks SET data = ?2 WHERE doc_id = ?1 AND seq = (SELECT min(seq) FROM doc_chunks WHERE doc_id = ?1)", rusqlite::params![broken.as_bytes(), data])
                .expect("mangle");
        }
        let d = Device::open(&path).expect("the store itself still opens");
        let e = d.case(broken);
        assert!(matches!(e, Err(Error::StoredDocument { .. })), "{what}: {e:?}");
        let e = d.add_note(broken, note("Nog een notitie."));
        assert!(matches!(e, Err(Error::StoredDocument { .. })), "{what}: {e:?}");
        assert_eq!(d.case(fine).expect("other case").subject, "Meneer De V.");
        assert_eq!(
            d.list_cases(&CaseFilter::default()).expect("list").len(),
            2,
            "screens still work"
        );
        let problems = d.check_integrity().expect("check");
        assert!(problems.iter().any(|p| p.contains(&broken.to_string())), "{what}: {problems:?}");
        assert!(matches!(d.reindex(), Err(Error::StoredDocument { .. })), "reindex reports it too");
        assert_eq!(
            d.case_timeline(broken).expect("derived rows kept").len(),
            1,
            "a failed reindex changes nothing"
        );
    }
}

#[test]
fn garbage_and_foreign_merges_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = device(&dir, "a.db");
    let b = device(&dir, "b.db");
    let c = shared_case(&a, &b, "Familie K.");
    a.add_note(c, note("Joke wast alles op tachtig graden.")).expect("note");
    b.merge_document(&a.export_document(c).expect("export")).expect("merge");
    let other = case(&b, "Meneer De V.");
    let ids = b.document_ids().expect("ids");
    let heads = b.heads(c).expect("heads");

    // Nothing to merge is not an error.
    assert!(!b.merge_changes(c, &[]).expect("empty").changed);
    assert!(matches!(b.merge_document(&[]), Err(Error::Merge(_))));
    for garbage in [vec![0u8; 10], b"\x85\x6f\x4a\x83garbage".to_vec(), vec![0xFF; 5000]] {
        assert!(matches!(b.merge_document(&garbage), Err(Error::Merge(_))));
        assert!(b.merge_changes(c, &garbage).is_err());
    }
    // A whole document cut short.
    let whole = a.export_document(c).expect("export");
    assert!(matches!(b.merge_document(&whole[..whole.len() - 3]), Err(Error::Merge(_))));
    // Another document's changes offered as this one's.
    let foreign = b.export_document(other).expect("export");
    let e = b.merge_changes(c, &foreign);
    assert!(matches!(e, Err(Error::Merge(DocError::Malformed(_)))), "{e:?}");

    assert_eq!(b.document_ids().expect("ids"), ids);
    assert_eq!(b.heads(c).expect("heads"), heads);
    assert_eq!(b.case(c).expect("case").subject, "Familie K.");
    assert!(b.check_integrity().expect("check").is_empty());
}

#[test]
fn merged_changes_update_screens_like_local_edits_and_notify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = device(&dir, "a.db");
    let b = device(&dir, "b.db");
    let c = shared_case(&a, &b, "Familie K.");
    b.merge_document(&a.export_document(c).expect("export")).expect("first merge");
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sub = {
        let heard = heard.clone();
        b.subscribe(move |ids| heard.lock().expect("lock").extend_from_slice(ids))
    };
    let base = b.heads(c).expect("heads");
    a.add_note(c, note("Michelle draagt haar lievelingsshirt ongewassen.")).expect("note");
    let changes = a.changes_since(c, &base).expect("changes");
    assert!(b.merge_changes(c, &changes).expect("merge").changed);
    assert_eq!(b.case_timeline(c).expect("timeline").len(), 1);
    assert_eq!(b.search("lievelingsshirt", 10).expect("search").len(), 1);
    assert_eq!(*heard.lock().expect("lock"), vec![c]);
    // The same changes again: nothing new, no notification.
    assert!(!b.merge_changes(c, &changes).expect("merge").changed);
    drop(sub);
    b.add_note(c, note("Na het afmelden hoort niemand dit.")).expect("note");
    assert_eq!(heard.lock().expect("lock").len(), 1, "a dropped subscription hears nothing");
}

#[test]
fn a_damaged_device_key_another_apps_database_and_damaged_rows_are_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.db");
    let c = {
        let d = Device::open(&path).expect("open");
        let (mode, sync) = d.durability().expect("pragmas");
        assert_eq!((mode.as_str(), sync), ("wal", 2), "acknowledged writes need WAL + FULL");
        case(&d, "Familie K.")
    };
    // Damaged derived bookkeeping: heads that are not whole hashes.
    {
        let db = rusqlite::Connection::open(&path).expect("sqlite");
        db.execute("UPDATE documents SET heads = x'0102' WHERE doc_id = ?1", [c.as_bytes()])
            .expect("damage");
    }
    let d = Device::open(&path).expect("open");
    let e = d.case(c);
    assert!(matches!(e, Err(Error::Store(StoreError::Corrupt(_)))), "{e:?}");
    drop(d);
    // A device key that is not 32 bytes.
    {
        let db = rusqlite::Connection::open(&path).expect("sqlite");
        db.execute("UPDATE meta SET value = x'010203' WHERE key = 'device_secret'", [])
            .expect("damage");
    }
    let e = Device::open(&path);
    assert!(matches!(e, Err(Error::Open(OpenError::Identity(_)))), "{e:?}");

    // Another application's SQLite database is refused and left as it was.
    let other = dir.path().join("contacts.db");
    {
        let db = rusqlite::Connection::open(&other).expect("sqlite");
        db.execute_batch(
            "CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('Joke');",
        )
        .expect("other app");
    }
    let before = std::fs::read(&other).expect("read");
    assert!(matches!(Device::open(&other), Err(Error::Open(OpenError::ForeignDatabase(_)))));
    assert_eq!(std::fs::read(&other).expect("read"), before);
}

#[test]
fn documents_from_a_newer_schema_or_with_missing_history_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = device(&dir, "a.db");
    let b = device(&dir, "b.db");
    let c = shared_case(&a, &b, "Familie K.");

    // A newer schema, as a newer app version would write it.
    let mut newer = nabij_core::test_utils::load_exported(&a.export_document(c).expect("export"));
    {
        use automerge::transaction::Transactable;
        newer.put(automerge::ROOT, "schema", automerge::ScalarValue::Uint(99)).expect("put");
        newer.commit();
    }
    let e = b.merge_document(&newer.save());
    assert!(matches!(e, Err(Error::Merge(DocError::NewerSchema { found: 99, .. }))), "{e:?}");
    assert!(b.kind_of(c).is_err(), "nothing of it was stored");

    // Changes whose predecessors never arrived.
    b.merge_document(&a.export_document(c).expect("export")).expect("merge");
    let base = a.heads(c).expect("heads");
    a.add_note(c, note("Eerste.")).expect("note");
    let middle = a.heads(c).expect("heads");
    a.add_note(c, note("Tweede.")).expect("note");
    let tail = a.changes_since(c, &middle).expect("changes");
    let heads = b.heads(c).expect("heads");
    let e = b.merge_changes(c, &tail);
    assert!(matches!(e, Err(Error::Merge(DocError::MissingDependencies(1)))), "{e:?}");
    assert_eq!(b.heads(c).expect("heads"), heads);
    assert!(b.case_timeline(c).expect("timeline").is_empty());
    // In order, they land.
    b.merge_changes(c, &a.changes_since(c, &base).expect("changes")).expect("merge");
    assert_eq!(b.case_timeline(c).expect("timeline").len(), 2);
}

#[test]
fn concurrent_agreement_done_is_shown_as_a_conflict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = device(&dir, "a.db");
    let b = device(&dir, "b.db");
    let c = shared_case(&a, &b, "Familie K.");
    let item = a
        .add_case_item(
            c,
            CaseItem::Agreement {
                text: "Bellen met school".into(),
                owner: "Anna".into(),
                due: None,
            },
        )
        .expect("agreement");
    b.merge_document(&a.export_document(c).expect("export")).expect("merge");
    a.set_case_agreement_done(c, item, true).expect("done");
    b.set_case_agreement_done(c, item, true).expect("done");
    b.set_case_agreement_done(c, item, false).expect("undone");
    a.merge_document(&b.export_document(c).expect("export")).expect("merge");
    let conflicts = a.case(c).expect("case").conflicts;
    assert!(
        conflicts
            .iter()
            .any(|x| x.field == format!("agreements.{item}.done") && x.values.len() == 2),
        "{conflicts:?}"
    );
    // Marking it as it already is writes nothing.
    let before = b.history(c).expect("history").len();
    b.set_case_agreement_done(c, item, false).expect("again");
    assert_eq!(b.history(c).expect("history").len(), before);
}
