//! Arbitrary bytes from the peer, cut at fuzzer-chosen points, into `Session::handle_bytes`
//! of a session over an in-memory store (`nabij_fuzz::MemStore`).
//!
//! Checks: no panic; every call returns `Ok` or a typed `SyncError`, an error closes the
//! session (no frame queued after it, `Closed` for any later bytes); what the session sends
//! is well-formed frames in sequence; progress and byte counts stay consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nabij_fuzz::{Harness, pieces};

fuzz_target!(|data: &[u8]| {
    let mut h = Harness::new();
    for piece in pieces(data) {
        h.feed(piece);
    }
    // Once closed, it stays closed.
    if h.error.is_some() {
        h.feed(&[0, 0, 0, 1, 1]);
    }
});
