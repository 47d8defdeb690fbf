//! The first connections a process opens, from several threads at once: every store must open
//! and every key must take. SQLite runs SQLCipher's one-time set-up only after it has marked
//! itself initialised and left its init mutex, so a thread whose first connection opened in
//! between was keyed before SQLCipher was ready ("An error occurred with PRAGMA key or rekey",
//! `store::cipher::sqlcipher_ready`). Only a process's first connections can meet that window,
//! so this file holds one test and opens nothing before it; the window is narrow, so a run
//! rarely failed without the fix (8 in 1,000 runs on two cores), and every run did with the
//! window held open (an `LD_PRELOAD` shim sleeping in `sqlite3_initialize`).

use std::sync::{Arc, Barrier};

use nabij_core::{Device, DeviceOptions, test_utils::key_connection};

#[test]
fn the_first_connections_opened_at_once_from_several_threads_all_key() {
    let dir = tempfile::tempdir().expect("dir");
    let threads = 8;
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let path = dir.path().join(format!("d{i}"));
            let start = start.clone();
            std::thread::spawn(move || {
                let key = nabij_tests::store_key();
                start.wait();
                if i % 2 == 0 {
                    // A device's store, as an app opens it.
                    Device::open_with(&path, DeviceOptions { key: Some(key), ..Default::default() })
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                } else {
                    // A raw connection keyed as the store keys its own (it panics if the key
                    // fails): SQLite's set-up may start here, outside the store's code.
                    let conn = rusqlite::Connection::open(&path).map_err(|e| e.to_string())?;
                    key_connection(&conn, &key);
                    conn.execute_batch("CREATE TABLE t (x)").map_err(|e| e.to_string())
                }
            })
        })
        .collect();
    let failed: Vec<String> = handles
        .into_iter()
        .filter_map(|h| match h.join() {
            Ok(r) => r.err(),
            Err(_) => Some("a raw connection's key failed (see its panic)".into()),
        })
        .collect();
    assert!(failed.is_empty(), "{} of {threads} first opens failed: {failed:?}", failed.len());
}
