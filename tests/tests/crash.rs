//! Kill a writing process with SIGKILL at random moments, many times; after reopening, every
//! acknowledged note is there, the database is sound, and nothing half-written is visible.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use std::path::Path;

use nabij_core::{
    Device, DeviceOptions, DocId, NoteId, StoreKey,
    model::{NewCase, NewNote, NoteKind},
};
use nabij_tests::Rng;

fn note_text(n: u64) -> String {
    format!(
        "begin {n} {} end {n}",
        "Michelle wast haar shirts liever niet; ".repeat(1 + (n % 40) as usize)
    )
}

/// The everyday run: a few kills, so `cargo test` exercises the crash path.
#[test]
fn acknowledged_notes_survive_a_few_sigkills() {
    sigkill_rounds(3, Some(test_key()));
}

#[test]
#[ignore = "slow: the full run's 40 SIGKILL rounds (--include-ignored)"]
fn acknowledged_notes_survive_sigkill() {
    sigkill_rounds(40, Some(test_key()));
}

/// Stores made before encryption at rest are still written to until they are encrypted.
#[test]
fn acknowledged_notes_survive_a_few_sigkills_on_a_plain_store() {
    sigkill_rounds(3, None);
}

fn test_key() -> StoreKey {
    StoreKey::from_slice(&[0x42; 32]).expect("32 bytes")
}

fn open(store: &Path, key: &Option<StoreKey>) -> Device {
    Device::open_with(store, DeviceOptions { key: key.clone(), ..DeviceOptions::default() })
        .expect("open")
}

/// `rounds` kills (`NABIJ_CRASH_ROUNDS` overrides), each at a random point inside a write, on
/// a store encrypted with `key` (or a plain one).
fn sigkill_rounds(rounds: u64, key: Option<StoreKey>) {
    let rounds: u64 =
        std::env::var("NABIJ_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(rounds);
    let seed: u64 =
        std::env::var("NABIJ_CRASH_SEED").ok().and_then(|r| r.parse().ok()).unwrap_or(0x5eed);
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("phone.db");
    let first_case = {
        let d = open(&store, &key);
        d.create_case(NewCase { subject: "Joke en Michelle".into(), ..NewCase::default() })
            .expect("case")
    };

    let mut acked: Vec<(u64, DocId, NoteId)> = Vec::new();
    let mut next = 0u64;
    let mut case = first_case;
    for round in 0..rounds {
        let mut command = Command::new(env!("CARGO_BIN_EXE_crash_writer"));
        if let Some(key) = &key {
            command.env("NABIJ_STORE_KEY", key.to_hex().as_str());
        }
        let mut child = command
            .args([store.to_str().expect("utf-8 path"), &case.to_string(), &next.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let it open the store and write a random number of notes, then kill it mid-stream.
        let writes_before_kill = 1 + rng.below(12);
        let mut lines = Vec::new();
        let mut seen = 0;
        while seen < writes_before_kill {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    seen += u64::from(line.starts_with("ack"));
                    lines.push(line);
                }
                Err(e) => panic!("round {round}: writer stalled: {e}"),
            }
        }
        // A random extra delay so the kill lands anywhere inside the next write.
        let spin = rng.below(4_000);
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_micros(spin) {
            std::hint::spin_loop();
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "round {round}: the writer should have been killed");
        reader.join().expect("reader");
        lines.extend(rx.try_iter());
        for line in lines {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["ack", n, c, id] => {
                    let n: u64 = n.parse().expect("n");
                    acked.push((n, c.parse().expect("case"), id.parse().expect("note")));
                    next = next.max(n + 1);
                }
                ["case", n, c] => {
                    case = c.parse().expect("case");
                    next = next.max(n.parse::<u64>().expect("n"));
                }
                _ => panic!("unexpected line {line}"),
            }
        }

        // Reopen after every kill, as the phone would.
        let d = open(&store, &key);
        let problems = d.check_integrity().expect("integrity");
        assert!(problems.is_empty(), "round {round}: {problems:?}");
        for (n, c, id) in &acked {
            let note = d
                .note(*c, *id)
                .unwrap_or_else(|e| panic!("round {round}: acknowledged note {n} lost: {e}"));
            assert_eq!(note.text, note_text(*n), "round {round}: note {n} damaged");
        }
        // Nothing half-written: every note in the derived tables is whole and in its document.
        for (cid, _) in d.document_ids().expect("ids") {
            for note in d.case_timeline(cid).expect("timeline") {
                let n: u64 = note
                    .text
                    .split(' ')
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .expect("numbered note");
                assert_eq!(note.text, note_text(n), "round {round}: half-written note visible");
                assert_eq!(d.note(cid, note.id).expect("in document").text, note.text);
            }
        }
    }
    assert!(acked.len() as u64 >= rounds, "every round acknowledged at least one write");
}

/// Encrypting a plain store (the migration) killed at a random moment, or stopped at each
/// step a crash could fall between: afterwards either the plain store or the encrypted one
/// opens, with every note, and running the migration again finishes it.
#[test]
fn encrypting_a_store_survives_being_killed_at_any_point() {
    let key = test_key();
    let mut rng = Rng::new(0xe4c7);
    let steps = ["rewrite-written", "before-rename", "after-rename"];
    let rounds = steps.len() + 8;
    // How many rounds left the plain store, and how many the encrypted one.
    let mut outcomes = (0, 0);
    for round in 0..rounds {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("phone.db");
        let (case, texts) = {
            let d = open(&store, &None);
            let case = d
                .create_case(NewCase { subject: "Joke en Michelle".into(), ..NewCase::default() })
                .expect("case");
            let texts: Vec<String> = (0..150).map(note_text).collect();
            let notes =
                texts.iter().map(|t| NewNote { kind: NoteKind::Observation, text: t.clone() });
            d.add_notes(case, notes.collect()).expect("notes");
            (case, texts)
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_crash_writer"));
        command
            .env("NABIJ_STORE_KEY", key.to_hex().as_str())
            .args(["encrypt", store.to_str().expect("utf-8 path")])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = if let Some(step) = steps.get(round) {
            let status = command.env("NABIJ_CRASH_AT", step).status().expect("run");
            assert!(!status.success(), "round {round}: the crash at {step} did not happen");
            status
        } else {
            let mut child = command.spawn().expect("spawn");
            let t = std::time::Instant::now();
            let wait = Duration::from_micros(rng.below(60_000));
            while t.elapsed() < wait {
                std::hint::spin_loop();
            }
            let _ = child.kill();
            child.wait().expect("wait")
        };
        let plain = Device::open(&store);
        let encrypted = Device::open_with(
            &store,
            DeviceOptions { key: Some(key.clone()), ..DeviceOptions::default() },
        );
        let what = format!("round {round} ({status})");
        let d = match (plain, encrypted) {
            (Ok(d), Err(_)) => {
                outcomes.0 += 1;
                d
            }
            (Err(_), Ok(d)) => {
                outcomes.1 += 1;
                d
            }
            (Ok(_), Ok(_)) => panic!("{what}: both opened"),
            (Err(a), Err(b)) => panic!("{what}: neither opens: {a}; {b}"),
        };
        let got: Vec<String> =
            d.case_timeline(case).expect("timeline").into_iter().map(|n| n.text).collect();
        assert_eq!(got.len(), texts.len(), "{what}");
        assert!(d.check_integrity().expect("check").is_empty(), "{what}");
        drop(d);
        Device::encrypt_store(&store, &key).unwrap_or_else(|e| panic!("{what}: again: {e}"));
        let d = open(&store, &Some(key.clone()));
        assert_eq!(d.case_timeline(case).expect("timeline").len(), texts.len(), "{what}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".rewrite") || n.contains(".plain-old"))
            .collect();
        assert!(left.is_empty(), "{what}: left behind: {left:?}");
    }
    assert!(outcomes.0 >= 2 && outcomes.1 >= 1, "both sides of the rename were hit: {outcomes:?}");
}
