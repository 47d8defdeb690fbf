//! The relay's default storage: one SQLite database in WAL mode with `synchronous=FULL`, so a
//! committed batch of blobs is on disk before any of them is acknowledged.
//!
//! One writer connection behind a mutex (SQLite has one writer anyway; batches amortise the
//! fsync) and a small pool of readers, so pulls never wait for writes. Pulls walk the index
//! `(network, seq)`: their cost follows what is new for the network, not what is stored.
//!
//! Owns the relay's schema and SQL. Knows nothing of the protocol.

use std::path::{Path, PathBuf};

use nabij_relay_proto::{NetworkId, PublicKey, RelayDocId, roster::SignedRoster, wire::PulledBlob};
use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::storage::{NewBlob, PutOutcome, Storage, StorageError, StoredRoster};

/// `PRAGMA application_id` of a relay database ("NBJR").
const APPLICATION_ID: i32 = 0x4E42_4A52;
const SCHEMA_VERSION: u32 = 4;
const READERS: usize = 4;

const SCHEMA: &str = "
CREATE TABLE rosters (
    network BLOB PRIMARY KEY,
    issued_at INTEGER NOT NULL,
    body BLOB NOT NULL,
    signer BLOB NOT NULL,
    signature BLOB NOT NULL,
    ops BLOB NOT NULL DEFAULT x'',
    contributed BLOB NOT NULL DEFAULT x''
) WITHOUT ROWID;
CREATE TABLE roster_devices (
    device BLOB NOT NULL,
    network BLOB NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (device, network)
) WITHOUT ROWID;
CREATE INDEX roster_devices_by_network ON roster_devices (network);
CREATE TABLE blobs (
    seq INTEGER PRIMARY KEY,
    network BLOB NOT NULL,
    doc BLOB NOT NULL,
    id BLOB NOT NULL,
    bytes BLOB NOT NULL
);
CREATE UNIQUE INDEX blobs_by_network ON blobs (network, seq);
CREATE UNIQUE INDEX blobs_by_id ON blobs (network, id);
CREATE INDEX blobs_by_doc ON blobs (network, doc);
CREATE TABLE usage (
    network BLOB PRIMARY KEY,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Schema 3 to 4: a document's blobs found without walking its network's (for deletion).
const ADD_DOC_INDEX: &str = "CREATE INDEX IF NOT EXISTS blobs_by_doc ON blobs (network, doc);";

/// Schema 2 to 3: the contributed rosters.
const ADD_CONTRIBUTED: &str =
    "ALTER TABLE rosters ADD COLUMN contributed BLOB NOT NULL DEFAULT x'';";

/// Contributed rosters as stored: postcard, or nothing for none.
fn decode_contributed(bytes: &[u8]) -> Result<Vec<SignedRoster>, StorageError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    postcard::from_bytes(bytes)
        .map_err(|e| StorageError(format!("corrupt row: contributed rosters: {e}")))
}

/// SQLite storage in a data directory.
#[derive(Debug)]
pub struct SqliteStorage {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Readers>,
    reader_free: Condvar,
}

/// The reader pool: idle connections, and how many exist.
#[derive(Debug, Default)]
struct Readers {
    idle: Vec<Connection>,
    open: usize,
}

fn configure(conn: &Connection) -> Result<(), StorageError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // A deleted document's ciphertext is zeroed in the file, not only unlinked.
    conn.pragma_update(None, "secure_delete", true)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

/// Creates the data folder owner-only (0700): what members stored is ciphertext, but which
/// devices sync how often is the operator's to guard, not every local user's. Narrows a
/// folder made before this rule.
fn owner_only_dir(dir: &Path) -> Result<(), StorageError> {
    let err = |e: std::io::Error| StorageError(format!("cannot create {}: {e}", dir.display()));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir).map_err(err)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// Creates `relay.db` owner-only (0600) before SQLite does, so its WAL and shared memory (which
/// SQLite creates with the database's mode) are too; narrows files made before this rule.
fn owner_only_file(path: &Path) -> Result<(), StorageError> {
    let err = |p: &Path, e: std::io::Error| StorageError(format!("{}: {e}", p.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(path, e)),
    }
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::metadata(&p) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| err(&p, e))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(&p, e)),
        }
    }
    Ok(())
}

impl SqliteStorage {
    /// Opens (or creates) `relay.db` in `dir`. Refuses a database of another application or a
    /// newer schema.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        owner_only_dir(dir)?;
        let path = dir.join("relay.db");
        owner_only_file(&path)?;
        let mut writer = Connection::open(&path)?;
        configure(&writer)?;
        let app: i32 = writer.pragma_query_value(None, "application_id", |r| r.get(0))?;
        let version: u32 = writer.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match (app, version) {
            (0, 0) => {
                let tx = writer.transaction_with_behavior(TransactionBehavior::Exclusive)?;
                tx.execute_batch(SCHEMA)?;
                tx.pragma_update(None, "application_id", APPLICATION_ID)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tx.commit()?;
            }
            (APPLICATION_ID, SCHEMA_VERSION) => {}
            (APPLICATION_ID, 3) => {
                let tx = writer.transaction_with_behavior(TransactionBehavior::Exclusive)?;
                tx.execute_batch(ADD_DOC_INDEX)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tx.commit()?;
            }
            // Schema 2 kept no contributed rosters: none, until devices register again.
            (APPLICATION_ID, 2) => {
                let tx = writer.transaction_with_behavior(TransactionBehavior::Exclusive)?;
                tx.execute_batch(ADD_CONTRIBUTED)?;
                tx.execute_batch(ADD_DOC_INDEX)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tx.commit()?;
            }
            // Schema 1 kept no membership operations: its rosters stay as registered, their
            // devices admitted as each roster said, until an admin registers one with them.
            (APPLICATION_ID, 1) => {
                let tx = writer.transaction_with_behavior(TransactionBehavior::Exclusive)?;
                tx.execute_batch(
                    "ALTER TABLE rosters ADD COLUMN ops BLOB NOT NULL DEFAULT x'';
                     ALTER TABLE roster_devices ADD COLUMN active INTEGER NOT NULL DEFAULT 1;",
                )?;
                tx.execute_batch(ADD_CONTRIBUTED)?;
                tx.execute_batch(ADD_DOC_INDEX)?;
                let rosters: Vec<(Vec<u8>, SignedRoster)> = {
                    let mut stmt =
                        tx.prepare("SELECT network, body, signer, signature FROM rosters")?;
                    let rows = stmt.query_map([], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get::<_, Vec<u8>>(2)?, r.get(3)?))
                    })?;
                    let mut out = Vec::new();
                    for row in rows {
                        let (network, body, signer, signature) = row?;
                        out.push((
                            network,
                            SignedRoster { body, signer: key32(signer)?, signature },
                        ));
                    }
                    out
                };
                for (network, signed) in rosters {
                    let roster = signed.verify().ok();
                    let mut stmt =
                        tx.prepare("SELECT device FROM roster_devices WHERE network = ?1")?;
                    let devices = stmt
                        .query_map([&network], |r| r.get::<_, Vec<u8>>(0))?
                        .collect::<Result<Vec<_>, _>>()?;
                    for d in devices {
                        let active = match (&roster, <[u8; 32]>::try_from(d.as_slice())) {
                            (Some(r), Ok(k)) => r.lists_active(&k),
                            _ => false,
                        };
                        tx.execute(
                            "UPDATE roster_devices SET active = ?1 WHERE network = ?2 AND device = ?3",
                            params![active, &network, &d],
                        )?;
                    }
                }
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tx.commit()?;
            }
            (APPLICATION_ID, v) => {
                return Err(StorageError(format!(
                    "relay database schema {v} is not {SCHEMA_VERSION}; use a matching relay"
                )));
            }
            _ => {
                return Err(StorageError(format!(
                    "{} is not a Nabij relay database",
                    path.display()
                )));
            }
        }
        Ok(Self {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Readers::default()),
            reader_free: Condvar::new(),
        })
    }

    /// Runs `f` on a reader connection. At most [`READERS`] exist: each holds its own page
    /// cache, so fifty devices pulling at once wait their turn instead of opening fifty.
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let conn = {
            let mut pool = self.readers.lock();
            loop {
                if let Some(c) = pool.idle.pop() {
                    break c;
                }
                if pool.open < READERS {
                    pool.open += 1;
                    drop(pool);
                    let opened = Connection::open_with_flags(
                        &self.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .and_then(|c| c.busy_timeout(std::time::Duration::from_secs(10)).map(|()| c));
                    match opened {
                        Ok(c) => break c,
                        Err(e) => {
                            self.readers.lock().open -= 1;
                            self.reader_free.notify_one();
                            return Err(e.into());
                        }
                    }
                }
                self.reader_free.wait(&mut pool);
            }
        };
        let result = f(&conn);
        self.readers.lock().idle.push(conn);
        self.reader_free.notify_one();
        result
    }
}

fn key32(v: Vec<u8>) -> Result<[u8; 32], StorageError> {
    v.try_into().map_err(|_| StorageError("corrupt row: key is not 32 bytes".into()))
}

fn seq_of(v: i64) -> Result<u64, StorageError> {
    u64::try_from(v).map_err(|_| StorageError("corrupt row: negative sequence".into()))
}

impl Storage for SqliteStorage {
    fn roster(&self, network: &NetworkId) -> Result<Option<StoredRoster>, StorageError> {
        self.with_reader(|c| {
            let row = c
                .prepare_cached(
                    "SELECT issued_at, body, signer, signature, ops, contributed FROM rosters
                     WHERE network = ?1",
                )?
                .query_row([&network[..]], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                    ))
                })
                .optional()?;
            let Some((issued_at, body, signer, signature, ops, contributed)) = row else {
                return Ok(None);
            };
            let contributed = decode_contributed(&contributed)?;
            let ops: Vec<Vec<u8>> = if ops.is_empty() {
                Vec::new()
            } else {
                postcard::from_bytes(&ops)
                    .map_err(|e| StorageError(format!("corrupt row: membership operations: {e}")))?
            };
            // Sorted, as the roster lists them: it reads back as registered.
            let mut stmt = c.prepare_cached(
                "SELECT device, active FROM roster_devices WHERE network = ?1 ORDER BY device",
            )?;
            let rows = stmt
                .query_map([&network[..]], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, bool>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let (mut devices, mut active) = (Vec::new(), Vec::new());
            for (d, is_active) in rows {
                let d = key32(d)?;
                devices.push(d);
                if is_active {
                    active.push(d);
                }
            }
            let signed = SignedRoster { body, signer: key32(signer)?, signature };
            Ok(Some(StoredRoster { signed, issued_at, devices, active, ops, contributed }))
        })
    }

    fn put_roster(&self, network: &NetworkId, roster: &StoredRoster) -> Result<(), StorageError> {
        let ops = postcard::to_stdvec(&roster.ops)
            .map_err(|e| StorageError(format!("encoding membership operations: {e}")))?;
        let contributed = if roster.contributed.is_empty() {
            Vec::new()
        } else {
            postcard::to_stdvec(&roster.contributed)
                .map_err(|e| StorageError(format!("encoding contributed rosters: {e}")))?
        };
        let mut w = self.writer.lock();
        let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR REPLACE INTO rosters
             (network, issued_at, body, signer, signature, ops, contributed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                &network[..],
                roster.issued_at,
                roster.signed.body,
                &roster.signed.signer[..],
                roster.signed.signature,
                ops,
                contributed
            ],
        )?;
        tx.execute("DELETE FROM roster_devices WHERE network = ?1", [&network[..]])?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO roster_devices (device, network, active) VALUES (?1, ?2, ?3)",
            )?;
            for d in &roster.devices {
                let active = roster.active.binary_search(d).is_ok();
                ins.execute(params![&d[..], &network[..], active])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn rosters_listing(&self, device: &PublicKey) -> Result<Vec<SignedRoster>, StorageError> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT r.body, r.signer, r.signature, r.contributed FROM roster_devices d
                 JOIN rosters r ON r.network = d.network
                 WHERE d.device = ?1 ORDER BY d.network",
            )?;
            let rows = stmt.query_map([&device[..]], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (body, signer, signature, contributed) = row?;
                out.push(SignedRoster { body, signer: key32(signer)?, signature });
                out.extend(decode_contributed(&contributed)?);
            }
            Ok(out)
        })
    }

    fn put_blobs(&self, blobs: &[NewBlob], quota: u64) -> Result<Vec<PutOutcome>, StorageError> {
        let mut w = self.writer.lock();
        let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(blobs.len());
        {
            let mut existing =
                tx.prepare_cached("SELECT seq FROM blobs WHERE network = ?1 AND id = ?2")?;
            let mut used = tx.prepare_cached("SELECT bytes FROM usage WHERE network = ?1")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO blobs (network, doc, id, bytes) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut add = tx.prepare_cached(
                "INSERT INTO usage (network, bytes) VALUES (?1, ?2)
                 ON CONFLICT (network) DO UPDATE SET bytes = bytes + excluded.bytes",
            )?;
            for b in blobs {
                let found: Option<i64> = existing
                    .query_row(params![&b.network[..], &b.id[..]], |r| r.get(0))
                    .optional()?;
                if let Some(seq) = found {
                    out.push(PutOutcome::Stored(seq_of(seq)?));
                    continue;
                }
                let now: i64 =
                    used.query_row([&b.network[..]], |r| r.get(0)).optional()?.unwrap_or(0);
                let size = b.bytes.len() as i64;
                if now.saturating_add(size) as u64 > quota {
                    out.push(PutOutcome::OverQuota);
                    continue;
                }
                insert.execute(params![&b.network[..], &b.doc[..], &b.id[..], b.bytes])?;
                let seq = tx.last_insert_rowid();
                add.execute(params![&b.network[..], size])?;
                out.push(PutOutcome::Stored(seq_of(seq)?));
            }
        }
        // synchronous=FULL: the commit returns after the WAL is fsynced.
        tx.commit()?;
        Ok(out)
    }

    fn blobs_after(
        &self,
        network: &NetworkId,
        after: u64,
        max_bytes: u64,
        max_count: usize,
    ) -> Result<(Vec<PulledBlob>, bool), StorageError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, doc, bytes FROM blobs WHERE network = ?1 AND seq > ?2
                 ORDER BY seq LIMIT ?3",
            )?;
            // One row beyond the page tells whether more follow. A page holds at least one
            // blob whatever `max_count`, so with 0 the row beyond is the second (reading only
            // one said "nothing follows" while blobs did).
            let limit = i64::try_from(max_count.max(1).saturating_add(1)).unwrap_or(i64::MAX);
            let mut rows = stmt.query(params![&network[..], after, limit])?;
            let mut out = Vec::new();
            let mut bytes = 0u64;
            while let Some(r) = rows.next()? {
                let blob: Vec<u8> = r.get(2)?;
                if !out.is_empty()
                    && (out.len() >= max_count || bytes + blob.len() as u64 > max_bytes)
                {
                    return Ok((out, true));
                }
                bytes += blob.len() as u64;
                out.push(PulledBlob {
                    seq: seq_of(r.get(0)?)?,
                    doc: key32(r.get(1)?)?,
                    bytes: blob,
                });
            }
            Ok((out, false))
        })
    }

    fn usage(&self, network: &NetworkId) -> Result<u64, StorageError> {
        self.with_reader(|c| {
            let v: Option<i64> = c
                .prepare_cached("SELECT bytes FROM usage WHERE network = ?1")?
                .query_row([&network[..]], |r| r.get(0))
                .optional()?;
            Ok(v.unwrap_or(0).max(0) as u64)
        })
    }

    fn delete_doc(&self, network: &NetworkId, doc: &RelayDocId) -> Result<u64, StorageError> {
        let mut w = self.writer.lock();
        let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (count, bytes): (i64, i64) = tx.query_row(
            "SELECT count(*), coalesce(sum(length(bytes)), 0) FROM blobs
              WHERE network = ?1 AND doc = ?2 AND length(bytes) > 0",
            params![&network[..], &doc[..]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if count > 0 {
            // The marker's number is taken before anything goes: a rowid table numbers a new
            // row after the largest left, so with the newest blob deleted first, the marker
            // (and the pushes after it) would reuse numbers devices have pulled past.
            let next: i64 =
                tx.query_row("SELECT coalesce(max(seq), 0) + 1 FROM blobs", [], |r| r.get(0))?;
            // The blobs and an earlier marker: one marker, the newest, stays.
            tx.execute(
                "DELETE FROM blobs WHERE network = ?1 AND doc = ?2",
                params![&network[..], &doc[..]],
            )?;
            tx.execute(
                "UPDATE usage SET bytes = max(bytes - ?2, 0) WHERE network = ?1",
                params![&network[..], bytes],
            )?;
            tx.execute(
                "INSERT INTO blobs (seq, network, doc, id, bytes) VALUES (?1, ?2, ?3, ?4, x'')",
                params![next, &network[..], &doc[..], &crate::storage::deletion_marker_id(doc)[..]],
            )?;
        }
        tx.commit()?;
        // Freed pages are zeroed (`secure_delete`); fold the WAL's copies in too. Best effort:
        // a reader in the middle of a pull keeps them until the next checkpoint.
        if count > 0 {
            let _busy: i64 = w.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        }
        Ok(count.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;
    use crate::storage::conformance::{self, storage_conformance_tests};

    /// A fresh database in its own directory, removed when the test ends.
    fn temporary() -> (SqliteStorage, TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStorage::open(dir.path()).expect("open");
        (store, dir)
    }

    storage_conformance_tests!(temporary);

    #[test]
    fn committed_state_survives_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        conformance::committed_state_survives_reopening(|| {
            SqliteStorage::open(dir.path()).expect("open")
        });
    }

    /// The data folder and every database file are the operator's alone.
    #[cfg(unix)]
    #[test]
    fn the_data_folder_and_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("data");
        let storage = SqliteStorage::open(&dir).expect("open");
        assert_eq!(mode(&dir), 0o700);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.to_string_lossy().contains("relay.db"))
            .collect();
        assert!(files.iter().any(|p| p.to_string_lossy().ends_with("-wal")), "{files:?}");
        for f in &files {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        drop(storage);
        // A database made before this rule is narrowed when the relay next opens it.
        let db = dir.join("relay.db");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        drop(SqliteStorage::open(&dir).expect("reopen"));
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dir), 0o700, "a folder made before the rule is narrowed");
    }

    /// A relay database of schema 1 (rosters without membership operations) opens: its rosters
    /// stay, a device its roster listed as removed is not admitted, the others are.
    #[test]
    fn a_schema_1_database_is_upgraded_in_place() {
        use ed25519_dalek::SigningKey;
        use nabij_relay_proto::roster::{Roster, RosterDevice};
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, gone) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        let entry = |k: &SigningKey, removed: bool| RosterDevice {
            key: k.verifying_key().to_bytes(),
            sealed: Vec::new(),
            admin: !removed,
            removed,
        };
        let signed = Roster {
            network: [4; 32],
            issued_at: 3,
            devices: vec![entry(&a, false), entry(&gone, true)],
            removals: Vec::new(),
            ops: Vec::new(),
        }
        .sign(&a)
        .expect("sign");
        {
            let c = Connection::open(dir.path().join("relay.db")).expect("open");
            c.execute_batch(
                "CREATE TABLE rosters (network BLOB PRIMARY KEY, issued_at INTEGER NOT NULL,
                     body BLOB NOT NULL, signer BLOB NOT NULL, signature BLOB NOT NULL) WITHOUT ROWID;
                 CREATE TABLE roster_devices (device BLOB NOT NULL, network BLOB NOT NULL,
                     PRIMARY KEY (device, network)) WITHOUT ROWID;
                 CREATE TABLE blobs (seq INTEGER PRIMARY KEY, network BLOB NOT NULL,
                     doc BLOB NOT NULL, id BLOB NOT NULL, bytes BLOB NOT NULL);
                 CREATE TABLE usage (network BLOB PRIMARY KEY, bytes INTEGER NOT NULL) WITHOUT ROWID;
                 PRAGMA application_id = 1312967250; PRAGMA user_version = 1;",
            )
            .expect("schema 1");
            c.execute(
                "INSERT INTO rosters VALUES (?1, 3, ?2, ?3, ?4)",
                params![&[4u8; 32][..], signed.body, &signed.signer[..], signed.signature],
            )
            .expect("roster");
            for k in [&a, &gone] {
                c.execute(
                    "INSERT INTO roster_devices VALUES (?1, ?2)",
                    params![&k.verifying_key().to_bytes()[..], &[4u8; 32][..]],
                )
                .expect("device");
            }
        }
        let store = SqliteStorage::open(dir.path()).expect("upgraded");
        let r = store.roster(&[4; 32]).expect("read").expect("kept");
        assert_eq!(r.signed, signed);
        assert_eq!(r.issued_at, 3);
        assert_eq!(r.active, vec![a.verifying_key().to_bytes()]);
        assert_eq!(r.devices.len(), 2);
        assert!(r.ops.is_empty() && r.contributed.is_empty());
        drop(store);
        SqliteStorage::open(dir.path()).expect("opens again at schema 3");
    }

    /// A relay database of schema 2 (no contributed rosters) opens with its rosters as they
    /// were, none contributed, and takes contributed rosters from then on.
    #[test]
    fn a_schema_2_database_is_upgraded_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let roster = |contributed| StoredRoster {
            signed: SignedRoster { body: vec![1; 30], signer: [2; 32], signature: vec![3; 64] },
            issued_at: 4,
            devices: vec![[2; 32], [5; 32]],
            active: vec![[2; 32]],
            ops: vec![vec![7; 90]],
            contributed,
        };
        {
            let store = SqliteStorage::open(dir.path()).expect("open");
            store.put_roster(&[4; 32], &roster(Vec::new())).expect("put");
            let w = store.writer.lock();
            // Back to schema 2: without the column, as a relay of before wrote it.
            w.execute_batch(
                "ALTER TABLE rosters DROP COLUMN contributed; PRAGMA user_version = 2;",
            )
            .expect("schema 2");
        }
        let store = SqliteStorage::open(dir.path()).expect("upgraded");
        assert_eq!(store.roster(&[4; 32]).expect("read"), Some(roster(Vec::new())));
        let with = roster(vec![SignedRoster {
            body: vec![8; 10],
            signer: [5; 32],
            signature: vec![9; 64],
        }]);
        store.put_roster(&[4; 32], &with).expect("put");
        drop(store);
        let store = SqliteStorage::open(dir.path()).expect("opens again at schema 3");
        assert_eq!(store.roster(&[4; 32]).expect("read"), Some(with));
    }

    /// What makes an acknowledgement mean "on disk": WAL with a full fsync at each commit.
    #[test]
    fn the_writer_commits_durably() {
        let (store, _dir) = temporary();
        let w = store.writer.lock();
        let mode: String = w.pragma_query_value(None, "journal_mode", |r| r.get(0)).expect("mode");
        let sync: i64 = w.pragma_query_value(None, "synchronous", |r| r.get(0)).expect("sync");
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[test]
    fn another_database_or_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("relay.db");
        {
            let c = Connection::open(&path).expect("open");
            c.execute_batch("CREATE TABLE t (x); PRAGMA application_id = 7;").expect("foreign");
        }
        let e = SqliteStorage::open(dir.path()).expect_err("foreign database");
        assert!(e.0.contains("not a Nabij relay database"), "{e}");

        std::fs::remove_file(&path).expect("remove");
        drop(SqliteStorage::open(dir.path()).expect("create"));
        {
            let c = Connection::open(&path).expect("open");
            c.pragma_update(None, "user_version", SCHEMA_VERSION + 1).expect("bump");
        }
        let e = SqliteStorage::open(dir.path()).expect_err("newer schema");
        assert!(e.0.contains("schema"), "{e}");
    }
}
