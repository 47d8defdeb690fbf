//! Child process for the crash test: writes notes in a loop and prints `ack <n> <case> <note>`
//! after each write the API acknowledged, until it is killed. With `encrypt STORE` it encrypts
//! the plain store instead and prints `done`.
//!
//! Usage: `crash_writer STORE CASE FIRST_N` or `crash_writer encrypt STORE`. The store key, if
//! any, comes from `NABIJ_STORE_KEY` (64 hex digits), as the CLI takes it.

use std::io::Write;

use nabij_core::{
    Device, DeviceOptions, DocId, StoreKey,
    model::{NewCase, NewNote, NoteKind},
};

/// The text of note `n`: long enough to span pages, with its number at both ends so a torn
/// write would show.
pub fn note_text(n: u64) -> String {
    format!(
        "begin {n} {} end {n}",
        "Michelle wast haar shirts liever niet; ".repeat(1 + (n % 40) as usize)
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let key = match std::env::var("NABIJ_STORE_KEY") {
        Ok(hex) => match StoreKey::from_hex(&hex) {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("key: {e}");
                std::process::exit(2);
            }
        },
        Err(_) => None,
    };
    if let (Some("encrypt"), Some(store), Some(key)) =
        (args.get(1).map(String::as_str), args.get(2), key.as_ref())
    {
        match Device::encrypt_store(store, key) {
            Ok(()) => println!("done"),
            Err(e) => {
                eprintln!("encrypt: {e}");
                std::process::exit(6);
            }
        }
        return;
    }
    let (Some(store), Some(case), Some(first)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: crash_writer STORE CASE FIRST_N");
        std::process::exit(2);
    };
    let (Ok(case), Ok(first)) = (case.parse::<DocId>(), first.parse::<u64>()) else {
        eprintln!("bad arguments");
        std::process::exit(2);
    };
    let device = match Device::open_with(store, DeviceOptions { key, ..DeviceOptions::default() }) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("open: {e}");
            std::process::exit(3);
        }
    };
    let mut out = std::io::stdout().lock();
    let mut case = case;
    for n in first.. {
        // Now and then start a new case too, so document creation is also cut by kills.
        if n % 25 == 24 {
            match device.create_case(NewCase { subject: format!("case {n}"), ..NewCase::default() })
            {
                Ok(c) => case = c,
                Err(e) => {
                    eprintln!("create: {e}");
                    std::process::exit(4);
                }
            }
            if writeln!(out, "case {n} {case}").and_then(|_| out.flush()).is_err() {
                return;
            }
        }
        match device.add_note(case, NewNote { kind: NoteKind::Observation, text: note_text(n) }) {
            Ok(id) => {
                if writeln!(out, "ack {n} {case} {id}").and_then(|_| out.flush()).is_err() {
                    return;
                }
            }
            Err(e) => {
                eprintln!("write: {e}");
                std::process::exit(5);
            }
        }
    }
}
