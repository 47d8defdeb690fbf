//! Kill a writing process with SIGKILL at random moments, many times; after reopening, every
//! acknowledged note is there, the database is sound, and nothing half-written is visible.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use nabij_core::{Device, DocId, NoteId, model::NewCase};
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
    sigkill_rounds(3);
}

#[test]
#[ignore = "slow: the full run's 40 SIGKILL rounds (--include-ignored)"]
fn acknowledged_notes_survive_sigkill() {
    sigkill_rounds(40);
}

/// `rounds` kills (`NABIJ_CRASH_ROUNDS` overrides), each at a random point inside a write.
fn sigkill_rounds(rounds: u64) {
    let rounds: u64 =
        std::env::var("NABIJ_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(rounds);
    let seed: u64 =
        std::env::var("NABIJ_CRASH_SEED").ok().and_then(|r| r.parse().ok()).unwrap_or(0x5eed);
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("phone.db");
    let first_case = {
        let d = Device::open(&store).expect("open");
        d.create_case(NewCase { subject: "Joke en Michelle".into(), ..NewCase::default() })
            .expect("case")
    };

    let mut acked: Vec<(u64, DocId, NoteId)> = Vec::new();
    let mut next = 0u64;
    let mut case = first_case;
    for round in 0..rounds {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
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
        let d = Device::open(&store).expect("reopen after kill");
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
