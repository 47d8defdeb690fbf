//! Writes the seed corpora from valid frames:
//! `cargo +nightly run --example gen_seeds` (from `fuzz/`; no sanitizer needed).
//!
//! Seeds are `[0] ++ stream` (no cut points; see `nabij_fuzz::pieces`).

use std::fs;
use std::path::Path;

use nabij_core::sync::frame::{Message, encode};
use nabij_core::sync::session::PROTOCOL;
use nabij_fuzz::{DOC_A, NETWORK, conversation};

fn write(dir: &Path, name: &str, stream: &[u8]) {
    let mut data = vec![0u8];
    data.extend_from_slice(stream);
    fs::write(dir.join(format!("seed-{name}")), data).expect("write a seed");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let frames = conversation();
    assert!(frames.len() >= 4, "a short conversation: {} frames", frames.len());
    let whole: Vec<u8> = frames.concat();

    // The decoder: one frame of each kind, and a stream of several.
    let dir = root.join("frame_decode");
    fs::create_dir_all(&dir).expect("create the corpus directory");
    let samples = [
        ("hello", Message::Hello { protocol: PROTOCOL, device: [7; 32] }),
        ("digest", Message::Digest { network: NETWORK, digest: [2; 32] }),
        ("inventory", Message::Inventory { network: NETWORK, docs: vec![(DOC_A, vec![[4; 32]])] }),
        ("document", Message::Document { doc: DOC_A, bytes: vec![9; 40], signed: Vec::new() }),
        ("sync", Message::Sync { doc: DOC_A, message: vec![1, 2, 3], signed: Vec::new() }),
        ("done", Message::Done { seen: 300 }),
        ("refused", Message::Refused { doc: DOC_A }),
    ];
    let mut stream = Vec::new();
    for (i, (name, m)) in samples.iter().enumerate() {
        let f = encode(i as u64, m).expect("encode");
        write(&dir, name, &f);
        stream.extend(f);
    }
    write(&dir, "stream", &stream);
    // Cut into pieces: 2 cut points.
    let mut cut = vec![2u8, 0, 3, 0, 50];
    cut.extend_from_slice(&stream);
    fs::write(dir.join("seed-stream-cut"), cut).expect("write a seed");
    write(&dir, "conversation", &whole);
    write(&dir, "too-large", &[0x00, 0x80, 0x00, 0x01, 1, 0]);

    // The session: a real peer's side of a whole exchange, and its first frames.
    let dir = root.join("session_bytes");
    fs::create_dir_all(&dir).expect("create the corpus directory");
    write(&dir, "conversation", &whole);
    for n in [1, 2, 3] {
        write(&dir, &format!("first-{n}"), &frames[..n].concat());
    }
    println!("{} frames in the conversation, {} bytes", frames.len(), whole.len());
}
