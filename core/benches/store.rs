//! Store benchmarks (a bench binary, not criterion: each figure is a ratio to a floor measured
//! in the same run, interleaved, so machine noise hits both sides alike).
//!
//! `cargo bench -p nabij-core --bench store` (all) or `... -- write|open|search`.
//! Figures go to BENCHMARKS.md.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use automerge::{AutoCommit, ObjType, ROOT, transaction::Transactable};
use nabij_core::{
    Device, DeviceOptions, DocId, StoreKey,
    model::CaseFilter,
    model::{NewCase, NewNote, NoteKind},
    test_utils::{Rng, WORDS, dir_size, key_connection, selected},
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

/// The key the encrypted stores of these benchmarks use (random: nothing depends on it).
fn bench_key() -> StoreKey {
    StoreKey::generate().expect("randomness")
}

/// A bare SQLite table with the store's durability (WAL, synchronous=FULL), keyed like the
/// store it is the floor of.
fn floor_db(path: &Path, key: Option<&StoreKey>) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(path).expect("floor db");
    if let Some(key) = key {
        key_connection(&db, key);
    }
    db.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(())).expect("wal");
    db.pragma_update(None, "synchronous", "FULL").expect("full");
    db.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc BLOB, data BLOB)", [])
        .expect("table");
    db
}

/// One side of the write benchmark: a device with a 1,000-note case, and its floor (a bare
/// Automerge document of the same notes and a bare table on a connection keyed alike).
struct WriteSide {
    device: Device,
    case: DocId,
    doc: AutoCommit,
    notes: automerge::ObjId,
    floor: rusqlite::Connection,
    ours: Vec<Duration>,
    floor_times: Vec<Duration>,
}

impl WriteSide {
    fn new(dir: &Path, name: &str, key: Option<StoreKey>, seed: &[NewNote]) -> Self {
        let options = DeviceOptions { key: key.clone(), ..DeviceOptions::default() };
        let device = Device::open_with(dir.join(format!("{name}.db")), options).expect("open");
        let case = device
            .create_case(NewCase { subject: "Familie K.".into(), ..NewCase::default() })
            .expect("case");
        device.add_notes(case, seed.to_vec()).expect("seed notes");
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
        let floor = floor_db(&dir.join(format!("{name}-floor.db")), key.as_ref());
        Self { device, case, doc, notes, floor, ours: Vec::new(), floor_times: Vec::new() }
    }

    fn round(&mut self, i: usize, text: String) {
        let t = Instant::now();
        let note = self.doc.put_object(&self.notes, format!("x{i}"), ObjType::Map).expect("note");
        self.doc.put(&note, "kind", "observation").expect("kind");
        self.doc.put(&note, "created_at", i as i64).expect("time");
        let tx = self.doc.put_object(&note, "text", ObjType::Text).expect("text");
        self.doc.splice_text(&tx, 0, 0, &text).expect("splice");
        self.doc.commit();
        let bytes = self.doc.save_incremental();
        self.floor
            .execute(
                "INSERT INTO chunks (doc, data) VALUES (?1, ?2)",
                rusqlite::params![b"doc".as_slice(), bytes],
            )
            .expect("insert");
        self.floor_times.push(t.elapsed());

        let t = Instant::now();
        self.device
            .add_note(self.case, NewNote { kind: NoteKind::Observation, text })
            .expect("add note");
        self.ours.push(t.elapsed());
    }
}

/// Adding a note to a case that already holds 1,000 notes, against the floor: a bare Automerge
/// change on a document of the same size, `save_incremental`, and one SQLite insert of those
/// bytes committed with the same durability (WAL, synchronous=FULL) on a connection keyed like
/// the store. Plain and encrypted stores in one run, interleaved.
fn write_bench() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::new(1);
    let seed: Vec<NewNote> = (0..1_000)
        .map(|_| NewNote { kind: NoteKind::Observation, text: rng.sentence(40) })
        .collect();
    let mut plain = WriteSide::new(dir.path(), "plain", None, &seed);
    let mut encrypted = WriteSide::new(dir.path(), "encrypted", Some(bench_key()), &seed);

    let rounds = 300;
    for i in 0..rounds {
        // Interleave so drift and noise hit every side alike.
        let text = rng.sentence(40);
        encrypted.round(i, text.clone());
        plain.round(i, text);
    }
    println!("## write: add a note to a case with 1,000 notes ({rounds} writes each, interleaved)");
    println!("| | median | mean (incl. compactions) |");
    println!("|---|---|---|");
    let mut rows = Vec::new();
    for (name, side) in [("encrypted", &mut encrypted), ("plain", &mut plain)] {
        let (m_ours, m_floor) = (median(&mut side.ours), median(&mut side.floor_times));
        let (a_ours, a_floor) = (mean(&side.ours), mean(&side.floor_times));
        println!("| Device::add_note, {name} store | {} | {} |", ms(m_ours), ms(a_ours));
        println!(
            "| floor: change + save_incremental + INSERT (WAL, FULL), {name} connection | {} | {} |",
            ms(m_floor),
            ms(a_floor)
        );
        println!(
            "| ratio, {name} | **{:.2}×** | {:.2}× |",
            m_ours.as_secs_f64() / m_floor.as_secs_f64(),
            a_ours.as_secs_f64() / a_floor.as_secs_f64()
        );
        rows.push((m_ours, a_ours));
    }
    println!(
        "| cost of encryption: add_note encrypted / plain | {:.2}× | {:.2}× |",
        rows[0].0.as_secs_f64() / rows[1].0.as_secs_f64(),
        rows[0].1.as_secs_f64() / rows[1].1.as_secs_f64()
    );
    println!();
}

/// Opening a store with 10,000 cases and listing the first screen, without loading documents:
/// a plain store and the same store encrypted (by `Device::encrypt_store`, timed too).
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
    let enc_dir = tempfile::tempdir().expect("tempdir");
    let enc_path = enc_dir.path().join("device.db");
    std::fs::copy(&path, &enc_path).expect("copy");
    let key = bench_key();
    let t = Instant::now();
    Device::encrypt_store(&enc_path, &key).expect("encrypt");
    let encrypting = t.elapsed();
    let enc_size = dir_size(enc_dir.path());

    let open = |p: &Path, key: Option<&StoreKey>| {
        let options = DeviceOptions { key: key.cloned(), ..DeviceOptions::default() };
        Device::open_with(p, options).expect("open")
    };
    let first_screen = |device: &Device| {
        let first = device
            .list_cases(&CaseFilter { limit: Some(50), ..CaseFilter::default() })
            .expect("list");
        assert_eq!(first.len(), 50);
        assert!(first.windows(2).all(|w| w[0].last_activity >= w[1].last_activity));
    };
    let (mut times, mut enc_times) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let t = Instant::now();
        first_screen(&open(&enc_path, Some(&key)));
        enc_times.push(t.elapsed());
        let t = Instant::now();
        first_screen(&open(&path, None));
        times.push(t.elapsed());
    }
    let (mut list_only, mut enc_list_only) = (Vec::new(), Vec::new());
    let (device, enc_device) = (open(&path, None), open(&enc_path, Some(&key)));
    for i in 0..50 {
        let f = CaseFilter {
            limit: Some(50),
            tag: Some(WORDS[i % 8].to_string()),
            ..CaseFilter::default()
        };
        for (d, times) in [(&enc_device, &mut enc_list_only), (&device, &mut list_only)] {
            let t = Instant::now();
            let rows = d.list_cases(&f).expect("list");
            times.push(t.elapsed());
            assert!(!rows.is_empty());
        }
    }
    println!(
        "## open: 10,000 cases (3 notes each), open the store and list the first 50 by activity"
    );
    println!("| | encrypted | plain | encrypted / plain |");
    println!("|---|---|---|---|");
    let (e, p) = (median(&mut enc_times), median(&mut times));
    println!(
        "| open + first screen, median of 15 | **{}** | {} | {:.2}× |",
        ms(e),
        ms(p),
        e.as_secs_f64() / p.as_secs_f64()
    );
    let (e, p) = (median(&mut enc_list_only), median(&mut list_only));
    println!(
        "| first screen filtered by tag (store open), median of 50 | {} | {} | {:.2}× |",
        ms(e),
        ms(p),
        e.as_secs_f64() / p.as_secs_f64()
    );
    println!(
        "| store on disk | {:.1} MiB | {:.1} MiB ({:.0} bytes per case) | |",
        enc_size as f64 / 1048576.0,
        size as f64 / 1048576.0,
        size as f64 / 10_000.0
    );
    println!(
        "| seeding (10,000 creates + 10,000 note batches, each committed, plain) | | {:.1} s | |",
        seeded.as_secs_f64()
    );
    println!(
        "| encrypting the plain store (`Device::encrypt_store`) | {:.2} s | | |",
        encrypting.as_secs_f64()
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

/// Erasing a case from a store of 1,000 cases × 20 notes: the deletion with freed pages
/// zeroed, the full-text index merged into one segment, the WAL folded in and truncated; and
/// redacting a note (a new history of its case, the old one erased).
fn erase_bench() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = DeviceOptions { key: Some(bench_key()), ..DeviceOptions::default() };
    let device = Device::open_with(dir.path().join("device.db"), options).expect("open");
    let mut rng = Rng::new(4);
    let mut cases = Vec::new();
    for i in 0..1_000 {
        let case = device
            .create_case(NewCase { subject: format!("Casus {i}"), ..NewCase::default() })
            .expect("case");
        let notes = (0..20)
            .map(|_| NewNote { kind: NoteKind::Observation, text: rng.sentence(20) })
            .collect();
        device.add_notes(case, notes).expect("notes");
        cases.push(case);
    }
    let mut times = Vec::new();
    for case in cases.iter().step_by(100) {
        let t = Instant::now();
        device.erase(*case, "bench").expect("erase");
        times.push(t.elapsed());
    }
    // Redaction: a note's words out of the case's history (a new history of the case, the old
    // one erased). Each case first gets a note edited twice, as a worker corrects a name.
    let mut redactions = Vec::new();
    let mut sizes = Vec::new();
    for case in cases.iter().skip(50).step_by(100) {
        let timeline = device.case_timeline(*case).expect("timeline");
        let note = timeline[timeline.len() / 2].id;
        device.edit_note(*case, note, "Meneer Vrijthoff belde over de huur.").expect("edit");
        device
            .edit_note(*case, note, "Meneer Vrijthoff belde over de huur, twee keer.")
            .expect("edit");
        let before = device.export_document(*case).expect("export").len();
        let t = Instant::now();
        let new = device
            .redact_note(*case, note, "De buurman belde over de huur, twee keer.", "bench")
            .expect("redact");
        redactions.push(t.elapsed());
        sizes.push((before, device.export_document(new).expect("export").len()));
    }
    let (old, new): (Vec<usize>, Vec<usize>) = sizes.into_iter().unzip();
    println!("## erase: a case (20 notes) from an encrypted store of 1,000 cases × 20 notes");
    println!("| | figure |");
    println!("|---|---|");
    println!("| erase, median of {} | **{}** |", times.len(), ms(median(&mut times)));
    println!("| slowest | {} |", ms(*times.iter().max().expect("some")));
    println!(
        "| redact a note (the case copied into a new history, the old one erased), median of {} | **{}** |",
        redactions.len(),
        ms(median(&mut redactions))
    );
    println!("| slowest redaction | {} |", ms(*redactions.iter().max().expect("some")));
    println!(
        "| the case's exported size before / after redaction (mean, bytes) | {} / {} |",
        old.iter().sum::<usize>() / old.len(),
        new.iter().sum::<usize>() / new.len()
    );
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
    if selected("erase") {
        erase_bench();
    }
}
