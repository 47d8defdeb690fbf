//! Encryption at rest through the public API: a store opened with a key is SQLCipher-encrypted,
//! a wrong or missing key is refused without touching the file, a plain store is encrypted in
//! place, the key can be changed, and every file is owner-only.

use std::path::{Path, PathBuf};

use nabij_core::{
    Device, DeviceOptions, Error, StoreKey,
    error::OpenError,
    model::{NewCase, NewNote, NoteKind},
};

fn key(byte: u8) -> StoreKey {
    StoreKey::from_slice(&[byte; 32]).expect("32 bytes")
}

/// Every file of the store at `path` (the database, its WAL and shared memory, leftovers).
fn store_files(path: &Path) -> Vec<PathBuf> {
    let dir = path.parent().expect("dir");
    let name = path.file_name().expect("name").to_string_lossy().into_owned();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&name)))
        .collect();
    files.sort();
    files
}

/// Each file's name, length and a hash of its bytes (not the bytes: a failing comparison
/// must print something readable). Not the WAL index (`-shm`): shared memory SQLite may
/// rebuild on any open, holding no data.
fn snapshot(path: &Path) -> Vec<(PathBuf, usize, u64)> {
    use std::hash::{Hash, Hasher};
    store_files(path)
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with("-shm"))
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            (p, bytes.len(), h.finish())
        })
        .collect()
}

fn write_a_day(d: &Device) -> nabij_core::DocId {
    let case = d
        .create_case(NewCase { subject: "Familie Bakkerstraat".into(), ..NewCase::default() })
        .expect("case");
    d.add_note(
        case,
        NewNote { kind: NoteKind::Observation, text: "Huisbezoek: wasmachine kapot".into() },
    )
    .expect("note");
    case
}

#[test]
fn a_wrong_or_missing_key_is_refused_and_the_files_stay_as_they_were() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live.db");
    let d = Device::open_encrypted(&live, key(1)).expect("create");
    write_a_day(&d);
    // The files as a crash leaves them: the WAL still holds the day's writes, not yet folded
    // into the file (no connection is open to the copy, so a wrong key's connection would be
    // the last to close).
    let path = dir.path().join("phone.db");
    for suffix in ["", "-wal"] {
        std::fs::copy(format!("{}{suffix}", live.display()), format!("{}{suffix}", path.display()))
            .expect("copy");
    }
    drop(d);
    let before = snapshot(&path);
    assert!(before.iter().any(|(p, _, _)| p.to_string_lossy().ends_with("-wal")), "{before:?}");
    for attempt in [Some(key(2)), None] {
        let opened =
            Device::open_with(&path, DeviceOptions { key: attempt, ..DeviceOptions::default() });
        assert!(matches!(opened, Err(Error::Open(OpenError::WrongKey(_)))), "{opened:?}");
        assert_eq!(snapshot(&path), before, "a refused open changed the store's files");
    }
    let d = Device::open_encrypted(&path, key(1)).expect("the right key opens it");
    assert!(d.is_encrypted());
    assert_eq!(d.list_cases(&Default::default()).expect("cases").len(), 1);
}

#[test]
fn a_key_for_a_plain_store_is_refused_with_a_hint_to_encrypt_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    drop(Device::open(&path).expect("plain"));
    let before = snapshot(&path);
    let opened = Device::open_encrypted(&path, key(1));
    assert!(matches!(opened, Err(Error::Open(OpenError::NotEncrypted(_)))), "{opened:?}");
    assert!(opened.unwrap_err().to_string().contains("migrate-encrypt"));
    assert_eq!(snapshot(&path), before);
}

#[test]
fn a_plain_store_is_encrypted_in_place_with_everything_it_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let (case, device_key, notes) = {
        let d = Device::open(&path).expect("plain");
        let case = write_a_day(&d);
        (case, d.device_key(), d.case_timeline(case).expect("notes"))
    };
    Device::encrypt_store(&path, &key(7)).expect("encrypt");
    // Again, as after a crash that came after the rename: nothing to do.
    Device::encrypt_store(&path, &key(7)).expect("encrypt again");
    assert!(matches!(Device::open(&path), Err(Error::Open(OpenError::WrongKey(_)))));
    let d = Device::open_encrypted(&path, key(7)).expect("open encrypted");
    assert_eq!(d.device_key(), device_key, "the device keeps its identity");
    assert_eq!(d.case_timeline(case).expect("notes"), notes);
    assert_eq!(d.search("wasmachine", 10).expect("search").len(), 1);
    assert_eq!(d.check_integrity().expect("check"), Vec::<String>::new());
    d.add_note(case, NewNote { kind: NoteKind::Observation, text: "Nog een bezoek".into() })
        .expect("writes go on");
    assert_eq!(
        store_files(&path).iter().filter(|p| p.to_string_lossy().contains(".plain-old")).count(),
        0,
        "the old plain file is gone"
    );
}

#[test]
fn encrypting_a_store_that_is_open_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let d = Device::open(&path).expect("plain");
    let case = write_a_day(&d);
    let refused = Device::encrypt_store(&path, &key(3));
    assert!(refused.is_err(), "the store is open: {refused:?}");
    assert_eq!(d.case_timeline(case).expect("still readable").len(), 1);
    d.add_note(case, NewNote { kind: NoteKind::Observation, text: "Nog één".into() })
        .expect("still writable");
}

#[test]
fn changing_the_key_keeps_the_data_and_retires_the_old_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("phone.db");
    let d = Device::open_encrypted(&path, key(1)).expect("create");
    let case = write_a_day(&d);
    d.change_store_key(&key(2)).expect("rekey");
    // The open device goes on reading and writing under the new key.
    d.add_note(case, NewNote { kind: NoteKind::Observation, text: "Na de sleutelwissel".into() })
        .expect("write after rekey");
    assert_eq!(d.case_timeline(case).expect("notes").len(), 2);
    assert_eq!(d.check_integrity().expect("check"), Vec::<String>::new());
    drop(d);
    assert!(matches!(
        Device::open_encrypted(&path, key(1)),
        Err(Error::Open(OpenError::WrongKey(_)))
    ));
    let d = Device::open_encrypted(&path, key(2)).expect("new key");
    assert_eq!(d.case_timeline(case).expect("notes").len(), 2);

    let plain = Device::open(dir.path().join("plain.db")).expect("plain");
    assert!(matches!(
        plain.change_store_key(&key(3)),
        Err(Error::Open(OpenError::NotEncrypted(_)))
    ));
}

#[cfg(unix)]
#[test]
fn every_store_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, k) in [("enc.db", Some(key(1))), ("plain.db", None)] {
        let path = dir.path().join(name);
        let d = Device::open_with(&path, DeviceOptions { key: k, ..DeviceOptions::default() })
            .expect("open");
        write_a_day(&d);
        let files = store_files(&path);
        assert!(files.len() >= 2, "the database and its WAL: {files:?}");
        for f in files {
            let mode = std::fs::metadata(&f).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", f.display());
        }
    }
    // A store made before this rule is narrowed when it is next opened.
    let old = dir.path().join("plain.db");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    drop(Device::open(&old).expect("reopen"));
    let mode = std::fs::metadata(&old).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn store_keys_parse_only_from_32_bytes_or_64_hex_digits() {
    assert!(StoreKey::from_slice(&[0; 31]).is_err());
    assert!(StoreKey::from_hex(&"ab".repeat(31)).is_err());
    let bad = StoreKey::from_hex(&format!("{}zz", "ab".repeat(31))).unwrap_err().to_string();
    assert!(!bad.contains("abab"), "the message must not echo the key: {bad}");
    let k = StoreKey::from_hex(&format!(" {}\n", "0f".repeat(32))).expect("hex");
    assert_eq!(k.to_hex().as_str(), "0f".repeat(32));
    assert_eq!(format!("{k:?}"), "StoreKey(…)");
    assert_ne!(
        StoreKey::generate().expect("random").to_hex(),
        StoreKey::generate().expect("random").to_hex()
    );
}
