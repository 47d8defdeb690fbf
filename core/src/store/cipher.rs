//! Encryption at rest: the store key, keying a connection (SQLCipher), telling a plain store
//! from an encrypted one, owner-only files, and the two operations that rewrite a whole file
//! under a key: encrypting a plain store and changing the key.
//!
//! Owns every SQLCipher pragma and every rename of a store file. Knows nothing of documents:
//! it moves pages, never rows it understands.
//!
//! Why a raw key: the app keeps 32 random bytes in the Android Keystore or iOS Keychain, so
//! SQLCipher's passphrase derivation (256,000 rounds of PBKDF2, ~0.1 s per connection) would
//! only slow every open without making the key harder to guess.
//!
//! Crash safety of a rewrite: the new file is written beside the store under a temporary name,
//! checked, synced, and only then renamed over the store (one `rename`, atomic on POSIX file
//! systems), and the directory synced. A crash before the rename leaves the old store as it
//! was and a temporary file that the next open deletes; a crash after it leaves the new store.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use rusqlite::{Connection, ErrorCode, OpenFlags};
use zeroize::Zeroizing;

use super::OpenError;

/// The 32-byte key a store is encrypted with. The app keeps it in the platform keystore; the
/// core holds it only in memory, wiped when dropped, and never prints it.
#[derive(Clone)]
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(…)")
    }
}

/// A store key that is not 32 bytes (or 64 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a store key is 32 bytes (64 hex digits); this one is {0}")]
pub struct InvalidStoreKey(String);

impl StoreKey {
    /// The key from its 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, InvalidStoreKey> {
        let arr: [u8; 32] =
            bytes.try_into().map_err(|_| InvalidStoreKey(format!("{} bytes", bytes.len())))?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// The key from 64 hex digits (surrounding white space ignored), as the CLI reads it from
    /// a key file or the environment.
    pub fn from_hex(text: &str) -> Result<Self, InvalidStoreKey> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; 32]);
        if text.len() != 64 || hex::decode_to_slice(text, bytes.as_mut()).is_err() {
            // Never echo the text: it may be a key with one digit wrong.
            return Err(InvalidStoreKey(format!(
                "{} characters{}",
                text.len(),
                if text.len() == 64 { ", not all hex digits" } else { "" }
            )));
        }
        Ok(Self(bytes))
    }

    /// A new random key from the operating system.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())?;
        Ok(Self(bytes))
    }

    /// The key's bytes, to hand to the platform keystore.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as 64 hex digits (to write a new key file); wiped when dropped.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }

    /// The key as SQLCipher's raw-key literal `x'…'`, wiped when dropped.
    fn literal(&self) -> Zeroizing<String> {
        let hex = self.to_hex();
        let mut s = String::with_capacity(67);
        s.push_str("x'");
        s.push_str(&hex);
        s.push('\'');
        Zeroizing::new(s)
    }
}

/// The page authentication every store uses, set on every connection (and every attached
/// rewrite) right after its key: HMAC-SHA256 rather than SQLCipher 4's default SHA-512.
/// SHA-256 is in the ARMv8 crypto extensions phones have (and SHA-NI here), SHA-512 mostly
/// not: authenticating a 4 KiB page took ~4× longer with SHA-512, and a note's write touches
/// ~20 pages (BENCHMARKS.md). A 256-bit tag is ample for page integrity.
fn cipher_settings(schema: &str) -> String {
    format!(
        "PRAGMA {schema}cipher_hmac_algorithm = HMAC_SHA256; \
         PRAGMA {schema}cipher_kdf_algorithm = PBKDF2_HMAC_SHA256;"
    )
}

/// Whether SQLCipher's one-time set-up is known to be done in this process (it is never undone
/// while the process runs).
static SQLCIPHER_READY: AtomicBool = AtomicBool::new(false);

/// Waits until SQLCipher's one-time set-up in this process is done, doing it if no one has.
///
/// SQLite runs SQLCipher's set-up (`sqlcipher_extra_init`, its `SQLITE_EXTRA_INIT` hook) only
/// after it has marked itself initialised and left its own init mutex. A thread whose first
/// connection opens in that window gets through `sqlite3_initialize` at once, and keying that
/// connection before the first thread's set-up is done fails: "An error occurred with PRAGMA
/// key or rekey" (SQLCipher logs "sqlcipherCodecAttach: sqlcipher not initialized"). It takes
/// two threads opening the process's first connections at once and the first one preempted in
/// that window of a few instructions: rare, and only under load (a test binary's threads).
///
/// So the first connection nabij opens is opened here, one thread at a time: opening it runs
/// SQLite's set-up, SQLCipher's included, to its end before it returns, and every other thread
/// waits for that. Keying an in-memory database checks that SQLCipher is ready. If something
/// else in the process (a plain rusqlite connection on another thread) started SQLite's set-up
/// first, this can still meet the window: then it waits for that thread's set-up to end, a
/// millisecond at a time, for at most 2 s (the set-up itself takes well under a millisecond).
fn sqlcipher_ready() -> rusqlite::Result<()> {
    static FIRST: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    if SQLCIPHER_READY.load(Ordering::Acquire) {
        return Ok(());
    }
    let _first = FIRST.lock();
    if SQLCIPHER_READY.load(Ordering::Acquire) {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let conn = Connection::open_in_memory()?;
        match conn.execute_batch("PRAGMA key = 'sqlcipher set-up check';") {
            Ok(()) => break,
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::Unknown)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
    SQLCIPHER_READY.store(true, Ordering::Release);
    Ok(())
}

/// Opens a connection to a store file. Every store connection is opened here, after
/// SQLCipher's one-time set-up is done (see [`sqlcipher_ready`]).
pub(crate) fn connect(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    sqlcipher_ready()?;
    Connection::open_with_flags(path, flags)
}

/// Keys `conn` (the first statement on a new connection must be this) and keeps temporary
/// tables and indices in memory, so no temporary file is written at all.
pub(crate) fn apply_key(conn: &Connection, key: Option<&StoreKey>) -> rusqlite::Result<()> {
    if let Some(key) = key {
        // A connection opened elsewhere than `connect` (a test's raw one) waits here too.
        sqlcipher_ready()?;
        // SQLCipher's own log (stderr, logcat) would print a line for every wrong key tried;
        // the typed error says it instead. The setting is per process.
        conn.query_row("PRAGMA cipher_log_level = NONE", [], |_| Ok(()))?;
        let mut sql = Zeroizing::new(String::with_capacity(90));
        sql.push_str("PRAGMA key = \"");
        sql.push_str(&key.literal());
        sql.push_str("\";");
        conn.execute_batch(&sql)?;
        conn.execute_batch(&cipher_settings(""))?;
    }
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Reads the first page through `conn`, keyed or not: with a key, a wrong one shows here (as
/// "not a database"); without, a damaged file does.
pub(crate) fn probe(conn: &Connection, path: &Path, keyed: bool) -> Result<(), OpenError> {
    match conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => Ok(()),
        Err(e) if keyed && e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            Err(OpenError::WrongKey(path.to_path_buf()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Tries `key` on the encrypted store at `path` before a connection that may write opens it:
/// a read-write connection would, on close, fold a WAL left by a crash into the file even when
/// the key is wrong, so a read-only one goes first. One thing a read-only connection cannot
/// get past is a hot rollback journal (a crash while the store changed journal mode, say):
/// that journal must be played back before anyone reads, key or not, and playing it back
/// restores the pages as they were, byte for byte (SQLite copies them; nothing is decrypted).
/// Only then does a read-write connection try the key.
pub(crate) fn try_key(path: &Path, key: Option<&StoreKey>) -> Result<(), OpenError> {
    let attempt = |flags: OpenFlags| -> Result<(), OpenError> {
        let conn = connect(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        apply_key(&conn, key)?;
        probe(&conn, path, true)
    };
    match attempt(OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Err(OpenError::Sqlite(e)) if e.sqlite_error_code() == Some(ErrorCode::ReadOnly) => {
            attempt(OpenFlags::SQLITE_OPEN_READ_WRITE)
        }
        other => other,
    }
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// What is at a store's path, read without writing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileState {
    /// Nothing yet, or an empty file: a new store.
    Fresh,
    /// A plain SQLite database.
    Plain,
    /// Neither: an encrypted store (its first bytes are a random salt) or something else.
    Opaque,
}

pub(crate) fn file_state(path: &Path) -> Result<FileState, OpenError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::Fresh),
        Err(e) => return Err(OpenError::Io(path.to_path_buf(), e)),
    };
    let mut head = [0u8; 16];
    let mut read = 0;
    while read < head.len() {
        match f.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(OpenError::Io(path.to_path_buf(), e)),
        }
    }
    Ok(match (read, &head == SQLITE_MAGIC) {
        (0, _) => FileState::Fresh,
        (_, true) => FileState::Plain,
        _ => FileState::Opaque,
    })
}

/// Whether an opaque file could be an encrypted store: SQLCipher writes whole pages (512 bytes
/// at the least). Anything else is refused as not a store, key or no key.
pub(crate) fn could_be_encrypted(path: &Path) -> Result<bool, OpenError> {
    let len = fs::metadata(path).map_err(|e| OpenError::Io(path.to_path_buf(), e))?.len();
    Ok(len >= 512 && len.is_multiple_of(512))
}

/// Creates the store file empty and owner-only (0600) if it is absent, so that the WAL and
/// journal SQLite creates beside it (with the store's mode) are owner-only too.
pub(crate) fn create_owner_only(path: &Path) -> Result<(), OpenError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(OpenError::Io(path.to_path_buf(), e)),
    }
}

/// Narrows a store made before this rule, and its WAL and shared-memory files, to owner-only.
pub(crate) fn narrow_to_owner(path: &Path) -> Result<(), OpenError> {
    #[cfg(unix)]
    for p in [path.to_path_buf(), sidecar(path, "-wal"), sidecar(path, "-shm")] {
        use std::os::unix::fs::PermissionsExt;
        let io = |e| OpenError::Io(p.clone(), e);
        match fs::metadata(&p) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).map_err(io)?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// `path` with `suffix` appended to its file name (`store.db` → `store.db-wal`).
pub(crate) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The new file a rewrite writes before it is renamed over the store.
fn rewrite_path(path: &Path) -> PathBuf {
    sidecar(path, ".rewrite")
}

/// The old plain store, kept (as a second name of the same file) only until it is overwritten.
fn plain_old_path(path: &Path) -> PathBuf {
    sidecar(path, ".plain-old")
}

/// Clears what a rewrite interrupted by a crash left beside the store: the half-written new
/// file (ciphertext, useless), and the old plain store's second name, which is overwritten
/// before it is deleted (unless it is still the store itself: the crash came before the rename).
pub(crate) fn recover(path: &Path) -> Result<(), OpenError> {
    let io = |p: &Path, e| OpenError::Io(p.to_path_buf(), e);
    let rewrite = rewrite_path(path);
    for p in [rewrite.clone(), sidecar(&rewrite, "-journal"), sidecar(&rewrite, "-wal")] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&p, e)),
        }
    }
    let old = plain_old_path(path);
    match fs::metadata(&old) {
        Ok(_) => {
            if !same_file(&old, path) {
                scrub(&old).map_err(|e| io(&old, e))?;
            }
            fs::remove_file(&old).map_err(|e| io(&old, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&old, e)),
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (fs::metadata(a), fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            // If in doubt, do not overwrite.
            _ => true,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        true
    }
}

/// Overwrites a file's bytes with zeros and syncs it. On a journaling file system this
/// overwrites the blocks in place; flash storage may keep old copies below the file system
/// (ARCHITECTURE.md, "At rest", says so).
fn scrub(path: &Path) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    let len = f.metadata()?.len();
    let zeros = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Where a test may stop a rewrite, as a crash would (`NABIJ_CRASH_AT` in the crash test's
/// child process). Read only in builds with the `test-utils` feature.
fn crash_point(_at: &str) {
    #[cfg(feature = "test-utils")]
    if std::env::var("NABIJ_CRASH_AT").is_ok_and(|v| v == _at) {
        std::process::abort();
    }
}

/// Writes everything `from` holds into a new file at `path`'s rewrite name, encrypted with
/// `key`, and renames it over the store (see the module comment). `from` must have been
/// opened on `path`, be the only connection to it, and stay in rollback-journal mode while
/// this runs, so the rename cannot leave a WAL of the old file beside the new one.
pub(crate) fn rewrite(from: &Connection, path: &Path, key: &StoreKey) -> Result<(), OpenError> {
    recover(path)?;
    let target = rewrite_path(path);
    let io = |p: &Path, e| OpenError::Io(p.to_path_buf(), e);
    create_owner_only(&target)?;
    let version: u32 = from.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let app: i32 = from.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let target_str = target.to_str().ok_or_else(|| {
        OpenError::Io(
            target.clone(),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8"),
        )
    })?;
    from.execute("ATTACH DATABASE ?1 AS rewrite KEY ?2", [target_str, key.literal().as_str()])?;
    let exported = (|| {
        from.execute_batch(&cipher_settings("rewrite."))?;
        from.query_row("SELECT sqlcipher_export('rewrite')", [], |_| Ok(()))?;
        from.pragma_update(Some("rewrite"), "user_version", version)?;
        from.pragma_update(Some("rewrite"), "application_id", app)
    })();
    from.execute_batch("DETACH DATABASE rewrite")?;
    exported?;
    crash_point("rewrite-written");
    // Read the new file back with the key before it replaces anything.
    {
        let check =
            connect(&target, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        apply_key(&check, Some(key))?;
        probe(&check, &target, true)?;
        let ok: String = check.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if ok != "ok" {
            return Err(OpenError::Corrupt(format!("the rewritten store fails its check: {ok}")));
        }
        let tables = |c: &Connection| -> rusqlite::Result<Vec<(String, i64)>> {
            let names: Vec<String> = c
                .prepare(
                    "SELECT name FROM sqlite_schema WHERE type = 'table' AND rootpage > 0
                     AND name NOT LIKE 'sqlite_%' ORDER BY name",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            names
                .into_iter()
                .map(|n| {
                    let count = c.query_row(
                        &format!("SELECT count(*) FROM \"{}\"", n.replace('"', "\"\"")),
                        [],
                        |r| r.get(0),
                    )?;
                    Ok((n, count))
                })
                .collect()
        };
        if tables(&check)? != tables(from)? {
            return Err(OpenError::Corrupt(
                "the rewritten store does not hold what the store holds".into(),
            ));
        }
    }
    // The new store goes in in WAL mode: the first open after the rename need not change the
    // journal mode (a crash in that change leaves a hot journal behind).
    {
        let conn =
            connect(&target, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        apply_key(&conn, Some(key))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenError::Corrupt(format!("the rewritten store stays in {mode} mode")));
        }
    }
    File::open(&target).and_then(|f| f.sync_all()).map_err(|e| io(&target, e))?;
    // A second name for the old file, so that its plaintext can be overwritten once the store
    // is the new file (the rename alone would only unlink it).
    let old = plain_old_path(path);
    let plain_before = file_state(path)? == FileState::Plain;
    if plain_before {
        #[cfg(unix)]
        fs::hard_link(path, &old).map_err(|e| io(&old, e))?;
    }
    crash_point("before-rename");
    fs::rename(&target, path).map_err(|e| io(path, e))?;
    // From here the store is the new file, under the new key: nothing after the rename may
    // report the rewrite failed (the caller would go on with the old key). What is left
    // undone is finished by the next open.
    if let Err(e) = sync_dir(path) {
        tracing::warn!(error = %e, "syncing the store's folder after the rename failed");
    }
    crash_point("after-rename");
    if let Err(e) = recover(path) {
        tracing::warn!(error = %e, "clearing what the rewrite left is left to the next open");
    }
    Ok(())
}

/// Encrypts the plain store at `path` with `key` (see [`rewrite`]). Nothing else may have the
/// store open. Idempotent: a store already encrypted with `key` is left as it is.
pub(crate) fn encrypt_store(path: &Path, key: &StoreKey) -> Result<(), OpenError> {
    recover(path)?;
    match file_state(path)? {
        FileState::Fresh => return Err(OpenError::NoStore(path.to_path_buf())),
        FileState::Opaque => {
            // Already encrypted with this key (a retry after a crash after the rename)?
            if !could_be_encrypted(path)? {
                return Err(OpenError::NotADatabase(path.to_path_buf()));
            }
            return try_key(path, Some(key));
        }
        FileState::Plain => {}
    }
    // Bring the store up to date first (its own checks refuse a foreign or newer file).
    let (writer, reader, _) = super::open(path, None).map_err(|e| in_use(e, path))?;
    drop(reader);
    leave_wal(&writer, path)?;
    rewrite(&writer, path, key)
}

/// Changes the key of the encrypted store `conn` has open (with its current key) to `new`.
/// The connection must be the only one to the store; it is closed afterwards.
pub(crate) fn rekey_store(conn: Connection, path: &Path, new: &StoreKey) -> Result<(), OpenError> {
    leave_wal(&conn, path)?;
    let done = rewrite(&conn, path, new);
    drop(conn);
    done
}

/// Leaves WAL mode: the checkpoint folds every committed write into the file, and in rollback
/// mode nothing is left beside it that could be read with the new file. Only the last
/// connection to a store may; with another open this is [`OpenError::InUse`].
fn leave_wal(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))
        .map_err(|e| in_use(e.into(), path))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(OpenError::InUse(path.to_path_buf()));
    }
    Ok(())
}

/// A busy or locked store, as another connection leaves it, is [`OpenError::InUse`].
fn in_use(e: OpenError, path: &Path) -> OpenError {
    match &e {
        OpenError::Sqlite(s)
            if matches!(
                s.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ) =>
        {
            OpenError::InUse(path.to_path_buf())
        }
        _ => e,
    }
}
