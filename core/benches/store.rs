//! Store benchmarks (a bench binary, not criterion: each figure is a ratio to a floor measured
//! in the same run, interleaved, so machine noise hits both sides alike).
//!
//! `cargo bench -p nabij-core --bench store` (all) or `... -- write|open|search`.
//! Figures go to BENCHMARKS.md.

use std::time::{Duration, Instant};

use automerge::{AutoCommit, ObjType, ROOT, transaction::Transactable};
use nabij_core::{
    Device, DocId,
    model::CaseFilter,
    model::{NewCase, NewNote, NoteKind},
    test_utils::{Rng, WORDS, dir_size, selected},
};

/// The upper of the two middle values for an even count: how this benchmark's figures in
/// BENCHMARKS.md were taken (`test_utils::median` averages the two instead).
fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len() as u32
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Adding a note to a case that already holds 1,000 notes, against the floor: a bare Automerge
/// change on a document of the same size, `save_incremental`, and one SQLite insert of those
/// bytes committed with the same durability (WAL, synchronous=FULL).
fn write_bench() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(1);
    let device = Device::open(dir.path().join("device.db")).expect("open");
    let case = device
        .create_case(NewCase { subject: "Familie K.".into(), ..NewCase::default() })
        .expect("case");
    let seed: Vec<NewNote> = (0..1_000)
        .map(|_| NewNote { kind: NoteKind::Observation, text: rng.sentence(40) })
        .collect();
    device.add_notes(case, seed.clone()).expect("seed notes");

    // The floor: the same 1,000 notes in a bare document, and a bare table.
    let mut doc = AutoCommit::new();
    let notes = doc.put_object(ROOT, "notes", ObjType::Map).expect("map");
    for (i, n) in seed.iter().enumerate() {
        let note = doc.put_object(&notes, format!("n{i}"), ObjType::Map).expect("note");
        doc.put(&note, "kind", "observation").expect("kind");
        doc.put(&note, "created_at", i as i64).expect("time");
        let t = doc.put_object(&note, "text", ObjType::Text).expect("text");
        doc.splice_text(&t, 0, 0, &n.text).expect("splice");
    }
    doc.commit();
    doc.save_incremental();
    let floor_db = rusqlite::Connection::open(dir.path().join("floor.db")).expect("floor db");
    floor_db.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(())).expect("wal");
    floor_db.pragma_update(None, "synchronous", "FULL").expect("full");
    floor_db
        .execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc BLOB, data BLOB)", [])
        .expect("table");

    let rounds = 300;
    let (mut ours, mut floor) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for i in 0..rounds {
        let text = rng.sentence(40);
        // Interleave so drift and noise hit both alike.
        let t = Instant::now();
        let note = doc.put_object(&notes, format!("x{i}"), ObjType::Map).expect("note");
        doc.put(&note, "kind", "observation").expect("kind");
        doc.put(&note, "created_at", i as i64).expect("time");
        let tx = doc.put_object(&note, "text", ObjType::Text).expect("text");
        doc.splice_text(&tx, 0, 0, &text).expect("splice");
        doc.commit();
        let bytes = doc.save_incremental();
        floor_db
            .execute(
                "INSERT INTO chunks (doc, data) VALUES (?1, ?2)",
                rusqlite::params![b"doc".as_slice(), bytes],
            )
            .expect("insert");
        floor.push(t.elapsed());

        let t = Instant::now();
        device.add_note(case, NewNote { kind: NoteKind::Observation, text }).expect("add note");
        ours.push(t.elapsed());
    }
    let (m_ours, m_floor) = (median(&mut ours), median(&mut floor));
    let (a_ours, a_floor) = (mean(&ours), mean(&floor));
    println!("## write: add a note to a case with 1,000 notes ({rounds} writes each, interleaved)");
    println!("| | median | mean (incl. compactions) |");
    println!("|---|---|---|");
    println!("| Device::add_note | {} | {} |", ms(m_ours), ms(a_ours));
    println!(
        "| floor: change + save_incremental + INSERT (WAL, FULL) | {} | {} |",
        ms(m_floor),
        ms(a_floor)
    );
    println!(
        "| ratio | **{:.2}×** | {:.2}× |",
        m_ours.as_secs_f64() / m_floor.as_secs_f64(),
        a_ours.as_secs_f64() / a_floor.as_secs_f64()
    );
    println!();
}

/// Opening a store with 10,000 cases and listing the first screen, without loading documents.
fn open_bench() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("device.db");
    let mut rng = Rng::new(2);
    let t = Instant::now();
    {
        let device = Device::open(&path).expect("open");
        for i in 0..10_000 {
            let case = device
                .create_case(NewCase {
                    subject: format!("Casus {i}"),
                    tags: vec![WORDS[i % WORDS.len()].to_string()],
                    at_stake: rng.sentence(25),
                    ..NewCase::default()
                })
                .expect("case");
            let notes = (0..3)
                .map(|_| NewNote { kind: NoteKind::Observation, text: rng.sentence(40) })
                .collect();
            device.add_notes(case, notes).expect("notes");
        }
    }
    let seeded = t.elapsed();
    let size = dir_size(dir.path());
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let device = Device::open(&path).expect("open");
        let first = device
            .list_cases(&CaseFilter { limit: Some(50), ..CaseFilter::default() })
            .expect("list");
        times.push(t.elapsed());
        assert_eq!(first.len(), 50);
        assert!(first.windows(2).all(|w| w[0].last_activity >= w[1].last_activity));
    }
    let mut list_only = Vec::new();
    let device = Device::open(&path).expect("open");
    for i in 0..50 {
        let t = Instant::now();
        let f = CaseFilter {
            limit: Some(50),
            tag: Some(WORDS[i % 8].to_string()),
            ..CaseFilter::default()
        };
        let rows = device.list_cases(&f).expect("list");
        list_only.push(t.elapsed());
        assert!(!rows.is_empty());
    }
    println!(
        "## open: 10,000 cases (3 notes each), open the store and list the first 50 by activity"
    );
    println!("| | figure |");
    println!("|---|---|");
    println!("| open + first screen, median of 15 | **{}** |", ms(median(&mut times)));
    println!(
        "| first screen filtered by tag (store open), median of 50 | {} |",
        ms(median(&mut list_only))
    );
    println!(
        "| store on disk (db + wal) | {:.1} MiB, {:.0} bytes per case |",
        size as f64 / 1048576.0,
        size as f64 / 10_000.0
    );
    println!(
        "| seeding (10,000 creates + 10,000 note batches, each committed) | {:.1} s |",
        seeded.as_secs_f64()
    );
    println!();
}

/// Full-text search over 100,000 notes.
fn search_bench() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = Device::open(dir.path().join("device.db")).expect("open");
    let mut rng = Rng::new(3);
    let mut cases: Vec<DocId> = Vec::new();
    for i in 0..1_000 {
        let case = device
            .create_case(NewCase { subject: format!("Casus {i}"), ..NewCase::default() })
            .expect("case");
        let notes = (0..100)
            .map(|_| NewNote { kind: NoteKind::Observation, text: rng.sentence(30) })
            .collect();
        device.add_notes(case, notes).expect("notes");
        cases.push(case);
    }
    let queries = [
        "wasmachine",
        "huisarts schuld",
        "buurt",
        "vertrouwen keukentafel",
        "presentie nabijheid relatie",
        "ervaringsk",
    ];
    let mut times = Vec::new();
    let mut hits = 0;
    for _ in 0..20 {
        for q in queries {
            let t = Instant::now();
            let r = device.search(q, 20).expect("search");
            times.push(t.elapsed());
            hits += r.len();
        }
    }
    assert!(hits > 0);
    println!("## search: 100,000 notes in 1,000 cases, top 20 ranked hits with snippets");
    println!("| | figure |");
    println!("|---|---|");
    println!(
        "| median query ({} queries, 1–3 words, last word as prefix) | **{}** |",
        times.len(),
        ms(median(&mut times))
    );
    println!("| slowest query | {} |", ms(*times.iter().max().expect("some")));
    println!("| store on disk | {:.1} MiB |", dir_size(dir.path()) as f64 / 1048576.0);
    println!();
}

fn main() {
    if selected("write") {
        write_bench();
    }
    if selected("open") {
        open_bench();
    }
    if selected("search") {
        search_bench();
    }
}
