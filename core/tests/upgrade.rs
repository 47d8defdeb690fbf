//! A store written by an earlier version (schema 4: search fed by triggers, words folded by
//! SQLite only) opens, migrates and searches like a new one, with nothing of it lost.

use nabij_core::{
    Device,
    model::{NewCase, NewNote, NoteKind},
};

/// Turns a fresh store's search tables back into what schema 4 had.
const BACK_TO_SCHEMA_4: &str = "
    DROP TABLE search_fts;
    CREATE VIRTUAL TABLE search_fts USING fts5 (
        title, body,
        content = 'search_items', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER search_items_ai AFTER INSERT ON search_items BEGIN
        INSERT INTO search_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
    END;
    CREATE TRIGGER search_items_ad AFTER DELETE ON search_items BEGIN
        INSERT INTO search_fts (search_fts, rowid, title, body)
            VALUES ('delete', old.id, old.title, old.body);
    END;
    CREATE TRIGGER search_items_au AFTER UPDATE ON search_items BEGIN
        INSERT INTO search_fts (search_fts, rowid, title, body)
            VALUES ('delete', old.id, old.title, old.body);
        INSERT INTO search_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
    END;
    INSERT INTO search_fts (search_fts) VALUES ('rebuild');
    DROP TABLE replaced;
    DROP TABLE relay_keys;
    DROP TABLE content_keys;
    DROP TABLE relay_deletions;
    DROP TABLE erased;
    DROP TABLE relay_deferred;
    DROP TABLE network_ops;
    DROP TABLE network_roots;
    DROP TABLE invitations;
    DROP TABLE doc_signatures;
    DROP TABLE network_removed;
    DROP TABLE network_devices;
    CREATE TABLE network_devices (
        network_id BLOB NOT NULL,
        member_id BLOB NOT NULL,
        device BLOB NOT NULL,
        member_name TEXT NOT NULL,
        PRIMARY KEY (network_id, member_id, device)
    ) WITHOUT ROWID;
    CREATE INDEX network_devices_by_device ON network_devices (device);
    PRAGMA user_version = 4;
";

#[test]
fn a_schema_4_store_migrates_and_finds_what_it_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let (case, note, damaged) = {
        let d = Device::open(&path).expect("open");
        let damaged = d
            .create_case(NewCase { subject: "Meneer V.".into(), ..NewCase::default() })
            .expect("case");
        let case = d
            .create_case(NewCase { subject: "Familie Ødegaard".into(), ..NewCase::default() })
            .expect("case");
        let text = "De wasmachine is kapot; mevrouw Ødegaard belt de verhuurder.".to_string();
        let note = d.add_note(case, NewNote { kind: NoteKind::Observation, text }).expect("note");
        (case, note, damaged)
    };
    {
        let c = rusqlite::Connection::open(&path).expect("raw");
        c.execute_batch(BACK_TO_SCHEMA_4).expect("downgrade");
        // One document is damaged on disk: it must not take the others' search down with it.
        c.execute(
            "UPDATE doc_chunks SET data = zeroblob(length(data)) WHERE doc_id = ?1",
            [damaged.as_bytes()],
        )
        .expect("damage");
        // What version 4 could do: the accent-free spelling finds nothing.
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM search_fts WHERE search_fts MATCH 'odegaard'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(n, 0);
    }
    let d = Device::open(&path).expect("open migrates");
    let problems = d.check_integrity().expect("check");
    assert_eq!(problems.len(), 1, "only the damaged document: {problems:?}");
    assert!(problems[0].contains(&damaged.to_string()), "{problems:?}");
    assert!(!d.search("Meneer", 10).expect("search").is_empty(), "its search entry stays");
    let hits = d.search("odegaard", 10).expect("search");
    assert!(hits.iter().any(|h| h.doc_id == case && h.note_id == Some(note)), "{hits:?}");
    assert!(hits.iter().any(|h| h.doc_id == case && h.note_id.is_none()), "{hits:?}");
    assert_eq!(d.case_timeline(case).expect("timeline").len(), 1);
    // Writes after the upgrade reach the new index, and deletions of old rows work.
    d.edit_note(case, note, "De wasmachine doet het weer.").expect("edit");
    assert!(d.search("verhuurder", 10).expect("search").is_empty());
    assert_eq!(d.search("weer", 10).expect("search").len(), 1);
    drop(d);
    // The refill ran once: a second open finds the index as the first left it.
    let d = Device::open(&path).expect("reopen");
    assert_eq!(d.search("weer", 10).expect("search").len(), 1);
    assert!(d.search("verhuurder", 10).expect("search").is_empty());
}

/// A store made before every delete zeroed what it freed may hold a case's words in pages
/// freed while the case lived: its first erasure vacuums it once, so they go too.
#[test]
fn the_first_erasure_in_an_older_store_clears_pages_freed_before() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("oud.db");
    let d = Device::open(&path).expect("open");
    let case = d
        .create_case(NewCase { subject: "Familie Vermeulen".into(), ..NewCase::default() })
        .expect("case");
    drop(d);
    // What an older version left: a row deleted with `secure_delete` off (as its pages were
    // then), and no mark that freed pages are zeroed.
    let c = rusqlite::Connection::open(&path).expect("raw");
    c.execute_batch(
        "PRAGMA secure_delete = OFF;
         CREATE TABLE oud (t TEXT);
         INSERT INTO oud VALUES ('Vermeulen woonde op de Lindengracht ' || hex(randomblob(900)));
         DROP TABLE oud;
         DELETE FROM meta WHERE key = 'free_pages_zeroed';
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .expect("an older store's leftovers");
    drop(c);
    let holds = |needle: &[u8]| {
        std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
            .any(|b| b.windows(needle.len()).any(|w| w == needle))
    };
    assert!(holds(b"Lindengracht"), "the control: the freed page holds the words");
    let d = Device::open(&path).expect("reopen");
    d.erase(case, "De cliënt vroeg erom").expect("erase");
    drop(d);
    assert!(!holds(b"Lindengracht"), "a page freed before the erasure kept its words");
    assert!(!holds(b"Vermeulen"));
    // Only once: the mark is set.
    let c = rusqlite::Connection::open(&path).expect("raw");
    let n: i64 = c
        .query_row("SELECT count(*) FROM meta WHERE key = 'free_pages_zeroed'", [], |r| r.get(0))
        .expect("meta");
    assert_eq!(n, 1);
}
