//! SQLite persistence: Automerge document chunks, their compaction into snapshots, the derived
//! tables every app screen reads, and full-text search.
//!
//! Owns the schema, its migrations and every SQL statement. Knows nothing of Automerge: it
//! stores document bytes and change hashes as opaque blobs, and derived rows from
//! [`crate::model`] values. Functions that write take a [`Transaction`], so a write outside a
//! transaction does not compile; readers take a [`Connection`].
//!
//! Durability: WAL with `synchronous=FULL`; a write is acknowledged only after its COMMIT.
//! One writer connection and one reader connection per device (WAL lets readers run while the
//! writer commits).

use std::path::{Path, PathBuf};

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction, params, types::Type,
};
use serde::Serialize;

use crate::{
    ids::{DeviceKey, DocId, MemberId, NoteId},
    model::{
        Case, CaseStatus, DocKind, LearningPoint, LearningPointStatus, Meeting, Network, Note,
        NoteKind, Timestamp,
    },
};

/// The schema version of a fresh store, and the newest this build opens.
pub const SCHEMA_VERSION: u32 = 4;

/// `PRAGMA application_id` of every Nabij store ("NABJ"), so another application's SQLite
/// database is never mistaken for one and migrated.
pub const APPLICATION_ID: i32 = 0x4E41_424A;

const SCHEMA: &str = include_str!("store/schema.sql");
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("store/migrations/001_initial.sql")),
    (2, include_str!("store/migrations/002_status_and_lp_tags.sql")),
    (3, include_str!("store/migrations/003_sync_states.sql")),
    (4, include_str!("store/migrations/004_relay.sql")),
];

/// Why a store could not be opened. The file is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file exists but is not an SQLite database.
    #[error("{0} is not a Nabij store (not an SQLite database)")]
    NotADatabase(PathBuf),
    /// An SQLite database of another application.
    #[error("{0} is another application's database, not a Nabij store")]
    ForeignDatabase(PathBuf),
    /// Written by a newer version of Nabij.
    #[error("store schema version {found} is newer than this version supports ({supported})")]
    NewerSchema {
        /// The store's version.
        found: u32,
        /// The newest this build opens.
        supported: u32,
    },
    /// SQLite reports the database damaged.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// Reading the file failed.
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Another SQLite failure.
    #[error("sqlite: {0}")]
    Sqlite(rusqlite::Error),
    /// The stored device key is damaged.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                OpenError::Corrupt(e.to_string())
            }
            _ => OpenError::Sqlite(e),
        }
    }
}

/// A read or write of the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reports the database damaged, or a stored value is not what was written.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// Another SQLite failure (disk full, I/O error, locked).
    #[error("sqlite: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => match e {
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(e.to_string()),
                e => StoreError::Sqlite(e),
            },
        }
    }
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------------------------
// Opening and migrations

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Checks, without writing anything, that `path` is absent, empty, or an SQLite database.
fn check_file(path: &Path) -> Result<(), OpenError> {
    use std::io::Read;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
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
    if read == 0 || &head == SQLITE_MAGIC {
        Ok(())
    } else {
        Err(OpenError::NotADatabase(path.to_path_buf()))
    }
}

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Opens (creating if absent) the store at `path`: the writer connection and a reader.
///
/// Refuses, leaving the file untouched, a file that is not SQLite and a store from a newer
/// schema. Upgrades an older schema by its numbered migrations in one transaction. Returns
/// whether derived tables must be rebuilt (a migration added one).
pub fn open(path: &Path) -> Result<(Connection, Connection, bool), OpenError> {
    check_file(path)?;
    let writer = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&writer)?;
    // Read the version before anything writes (journal mode changes the file header).
    let version: u32 = writer.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let app: i32 = writer.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let foreign = if version == 0 {
        // A fresh file has no tables; one with tables belongs to someone else.
        writer.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))? > 0
    } else {
        app != APPLICATION_ID
    };
    if foreign {
        return Err(OpenError::ForeignDatabase(path.to_path_buf()));
    }
    if version > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema { found: version, supported: SCHEMA_VERSION });
    }
    let mode: String = writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Sqlite(rusqlite::Error::ExecuteReturnedResults));
    }
    writer.pragma_update(None, "synchronous", "FULL")?;
    let mut writer = writer;
    migrate(&mut writer, version)?;
    let needs_reindex = meta_get(&writer, "needs_reindex").map_err(|e| match e {
        StoreError::Corrupt(m) => OpenError::Corrupt(m),
        StoreError::Sqlite(e) => OpenError::Sqlite(e),
    })?;
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&reader)?;
    Ok((writer, reader, needs_reindex.is_some()))
}

fn migrate(conn: &mut Connection, from: u32) -> Result<(), OpenError> {
    if from == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Another process may have migrated between our read and our lock.
    let version: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        tx.execute_batch(SCHEMA)?;
    } else {
        for (v, sql) in MIGRATIONS {
            if *v > version {
                tx.execute_batch(sql)?;
            }
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.commit()?;
    Ok(())
}

/// Applies the numbered migrations up to `target` only (for the migration test).
#[doc(hidden)]
pub fn migrate_to(conn: &mut Connection, target: u32) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    let version: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (v, sql) in MIGRATIONS {
        if *v > version && *v <= target {
            tx.execute_batch(sql)?;
        }
    }
    tx.pragma_update(None, "user_version", target)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.commit()
}

/// The schema as SQLite sees it, normalised, for comparing two stores.
#[doc(hidden)]
pub fn schema_dump(conn: &Connection) -> Result<Vec<String>, rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )?;
    let rows = stmt.query_map([], |r| {
        let sql: Option<String> = r.get(3)?;
        let sql = sql.unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(format!(
            "{} {} {} {}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            sql
        ))
    })?;
    rows.collect()
}

// ---------------------------------------------------------------------------------------------
// Meta

/// A value from the meta table.
pub fn meta_get(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            // Stored as a blob, or as an integer flag by a migration.
            match r.get_ref(0)? {
                rusqlite::types::ValueRef::Blob(b) => Ok(b.to_vec()),
                rusqlite::types::ValueRef::Text(t) => Ok(t.to_vec()),
                rusqlite::types::ValueRef::Integer(i) => Ok(i.to_le_bytes().to_vec()),
                _ => Ok(Vec::new()),
            }
        })
        .optional()?)
}

/// Sets a value in the meta table.
pub fn meta_put(tx: &Transaction<'_>, key: &str, value: &[u8]) -> Result<()> {
    tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", params![key, value])?;
    Ok(())
}

/// Removes a value from the meta table.
pub fn meta_delete(tx: &Transaction<'_>, key: &str) -> Result<()> {
    tx.execute("DELETE FROM meta WHERE key = ?1", [key])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Documents and chunks

/// What the store holds of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocState {
    /// Its kind.
    pub kind: DocKind,
    /// The change hashes persisted, sorted.
    pub heads: Vec<[u8; 32]>,
    /// Bytes of the snapshot chunk.
    pub snapshot_bytes: i64,
    /// Bytes of incremental chunks after it.
    pub incremental_bytes: i64,
    /// Number of chunks.
    pub chunk_count: i64,
    next_seq: i64,
}

fn encode_heads(heads: &[[u8; 32]]) -> Vec<u8> {
    let mut sorted = heads.to_vec();
    sorted.sort();
    sorted.concat()
}

fn decode_heads(bytes: &[u8]) -> Result<Vec<[u8; 32]>> {
    if !bytes.len().is_multiple_of(32) {
        return Err(StoreError::Corrupt(format!("stored heads are {} bytes", bytes.len())));
    }
    Ok(bytes.chunks_exact(32).filter_map(|c| <[u8; 32]>::try_from(c).ok()).collect())
}

fn doc_id_col(r: &Row<'_>, i: usize) -> rusqlite::Result<DocId> {
    let b: Vec<u8> = r.get(i)?;
    DocId::from_slice(&b)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Blob, Box::new(e)))
}

fn note_id_col(r: &Row<'_>, i: usize) -> rusqlite::Result<NoteId> {
    let b: Vec<u8> = r.get(i)?;
    NoteId::from_slice(&b)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Blob, Box::new(e)))
}

fn parse_col<T>(
    r: &Row<'_>,
    i: usize,
    parse: impl Fn(&str) -> Result<T, crate::model::ValidationError>,
) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    parse(&s).map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
}

/// The stored state of a document, if the store has it.
pub fn doc_state(conn: &Connection, id: DocId) -> Result<Option<DocState>> {
    let row = conn
        .prepare_cached(
            "SELECT kind, heads, snapshot_bytes, incremental_bytes, chunk_count, next_seq
             FROM documents WHERE doc_id = ?1",
        )?
        .query_row([id.as_bytes()], |r| {
            Ok((
                parse_col(r, 0, DocKind::parse)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()?;
    row.map(|(kind, heads, snapshot_bytes, incremental_bytes, chunk_count, next_seq)| {
        Ok(DocState {
            kind,
            heads: decode_heads(&heads)?,
            snapshot_bytes,
            incremental_bytes,
            chunk_count,
            next_seq,
        })
    })
    .transpose()
}

/// Every document id the store holds, with its kind.
pub fn document_ids(conn: &Connection) -> Result<Vec<(DocId, DocKind)>> {
    let mut stmt = conn.prepare("SELECT doc_id, kind FROM documents ORDER BY doc_id")?;
    let rows = stmt.query_map([], |r| Ok((doc_id_col(r, 0)?, parse_col(r, 1, DocKind::parse)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A document's chunks, snapshot first, concatenated: one buffer Automerge loads in one call.
pub fn load_bytes(conn: &Connection, id: DocId) -> Result<Vec<u8>> {
    let mut stmt =
        conn.prepare_cached("SELECT data FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
    let mut rows = stmt.query([id.as_bytes()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.extend_from_slice(r.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?);
    }
    Ok(out)
}

/// Records a new document with its first bytes as the snapshot.
pub fn insert_document(
    tx: &Transaction<'_>,
    id: DocId,
    kind: DocKind,
    bytes: &[u8],
    heads: &[[u8; 32]],
) -> Result<()> {
    tx.execute(
        "INSERT INTO documents (doc_id, kind, heads, snapshot_bytes, incremental_bytes, chunk_count, next_seq)
         VALUES (?1, ?2, ?3, ?4, 0, 1, 1)",
        params![id.as_bytes(), kind.as_str(), encode_heads(heads), bytes.len() as i64],
    )?;
    tx.execute(
        "INSERT INTO doc_chunks (doc_id, seq, snapshot, data) VALUES (?1, 0, 1, ?2)",
        params![id.as_bytes(), bytes],
    )?;
    Ok(())
}

/// Appends an incremental chunk and records the new heads. Returns the updated state.
pub fn append_chunk(
    tx: &Transaction<'_>,
    id: DocId,
    state: &DocState,
    bytes: &[u8],
    heads: &[[u8; 32]],
) -> Result<DocState> {
    tx.prepare_cached(
        "INSERT INTO doc_chunks (doc_id, seq, snapshot, data) VALUES (?1, ?2, 0, ?3)",
    )?
    .execute(params![id.as_bytes(), state.next_seq, bytes])?;
    let next = DocState {
        kind: state.kind,
        heads: heads.to_vec(),
        snapshot_bytes: state.snapshot_bytes,
        incremental_bytes: state.incremental_bytes + bytes.len() as i64,
        chunk_count: state.chunk_count + 1,
        next_seq: state.next_seq + 1,
    };
    tx.prepare_cached(
        "UPDATE documents SET heads = ?2, incremental_bytes = ?3, chunk_count = ?4, next_seq = ?5
         WHERE doc_id = ?1",
    )?
    .execute(params![
        id.as_bytes(),
        encode_heads(heads),
        next.incremental_bytes,
        next.chunk_count,
        next.next_seq
    ])?;
    Ok(next)
}

/// Replaces all of a document's chunks by one snapshot, in the caller's transaction: a crash
/// leaves either the old chunks or the snapshot, never neither.
pub fn replace_with_snapshot(
    tx: &Transaction<'_>,
    id: DocId,
    state: &DocState,
    bytes: &[u8],
    heads: &[[u8; 32]],
) -> Result<DocState> {
    tx.execute("DELETE FROM doc_chunks WHERE doc_id = ?1", [id.as_bytes()])?;
    tx.execute(
        "INSERT INTO doc_chunks (doc_id, seq, snapshot, data) VALUES (?1, ?2, 1, ?3)",
        params![id.as_bytes(), state.next_seq, bytes],
    )?;
    let next = DocState {
        kind: state.kind,
        heads: heads.to_vec(),
        snapshot_bytes: bytes.len() as i64,
        incremental_bytes: 0,
        chunk_count: 1,
        next_seq: state.next_seq + 1,
    };
    tx.execute(
        "UPDATE documents SET heads = ?2, snapshot_bytes = ?3, incremental_bytes = 0, chunk_count = 1, next_seq = ?4
         WHERE doc_id = ?1",
        params![id.as_bytes(), encode_heads(heads), next.snapshot_bytes, next.next_seq],
    )?;
    Ok(next)
}

/// Whether a document's increments have outgrown its snapshot and should be compacted.
pub fn should_compact(state: &DocState) -> bool {
    // Compacting when increments exceed the snapshot makes snapshots grow geometrically, so the
    // cost of compaction stays proportional to what was written. The chunk cap bounds load time.
    (state.incremental_bytes > state.snapshot_bytes.max(4096)) || state.chunk_count > 256
}

// ---------------------------------------------------------------------------------------------
// Derived tables

/// Removes every derived row (for `reindex`).
pub fn clear_index(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(
        "DELETE FROM cases; DELETE FROM case_tags; DELETE FROM doc_networks; DELETE FROM notes;
         DELETE FROM learning_points; DELETE FROM learning_point_cases; DELETE FROM learning_point_tags;
         DELETE FROM meetings; DELETE FROM meeting_items; DELETE FROM networks;
         DELETE FROM network_devices; DELETE FROM search_items;
         INSERT INTO search_fts (search_fts) VALUES ('rebuild');",
    )?;
    Ok(())
}

fn put_search(
    tx: &Transaction<'_>,
    kind: &str,
    doc: DocId,
    item: &[u8],
    title: &str,
    body: &str,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO search_items (kind, doc_id, item_id, title, body) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (doc_id, item_id) DO UPDATE SET title = excluded.title, body = excluded.body
         WHERE title IS NOT excluded.title OR body IS NOT excluded.body",
    )?
    .execute(params![kind, doc.as_bytes(), item, title, body])?;
    Ok(())
}

fn set_networks(tx: &Transaction<'_>, doc: DocId, networks: &[DocId]) -> Result<()> {
    tx.prepare_cached("DELETE FROM doc_networks WHERE doc_id = ?1")?.execute([doc.as_bytes()])?;
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO doc_networks (network_id, doc_id) VALUES (?1, ?2)",
    )?;
    for n in networks {
        ins.execute(params![n.as_bytes(), doc.as_bytes()])?;
    }
    Ok(())
}

/// Writes a case's own rows (not its notes).
pub fn index_case(tx: &Transaction<'_>, case: &Case) -> Result<()> {
    let id = case.id.as_bytes();
    tx.prepare_cached(
        "INSERT INTO cases (doc_id, subject, status, created_at, last_activity, has_conflicts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (doc_id) DO UPDATE SET subject = excluded.subject, status = excluded.status,
             last_activity = excluded.last_activity, has_conflicts = excluded.has_conflicts",
    )?
    .execute(params![
        id,
        case.subject,
        case.status.as_str(),
        case.created_at,
        case.updated_at,
        !case.conflicts.is_empty()
    ])?;
    tx.prepare_cached("DELETE FROM case_tags WHERE case_id = ?1")?.execute([id])?;
    let mut ins =
        tx.prepare_cached("INSERT OR IGNORE INTO case_tags (tag, case_id) VALUES (?1, ?2)")?;
    for t in &case.tags {
        ins.execute(params![t, id])?;
    }
    set_networks(tx, case.id, &case.networks)?;
    let mut body = vec![case.at_stake.as_str(), case.client_voice.as_str()];
    body.extend(case.opgaven.iter().map(|o| o.text.as_str()));
    body.extend(case.turning_points.iter().map(|t| t.description.as_str()));
    body.extend(case.agreements.iter().map(|a| a.text.as_str()));
    body.extend([
        case.caimer.context.as_str(),
        case.caimer.actors.as_str(),
        case.caimer.interventions.as_str(),
        case.caimer.mechanisms.as_str(),
        case.caimer.results.as_str(),
    ]);
    body.extend(case.tags.iter().map(String::as_str));
    let body: Vec<&str> = body.into_iter().filter(|s| !s.is_empty()).collect();
    put_search(tx, "case", case.id, id, &case.subject, &body.join("\n"))
}

/// Moves a case's last activity (after a note write, which changes nothing else of its row).
pub fn touch_case(tx: &Transaction<'_>, case: DocId, last_activity: Timestamp) -> Result<()> {
    tx.prepare_cached("UPDATE cases SET last_activity = ?2 WHERE doc_id = ?1")?
        .execute(params![case.as_bytes(), last_activity])?;
    Ok(())
}

/// Writes (or rewrites) note rows.
pub fn index_notes(tx: &Transaction<'_>, notes: &[Note]) -> Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO notes (note_id, case_id, created_at, edited_at, kind, author_member, author_name, author_device, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (note_id) DO UPDATE SET edited_at = excluded.edited_at, kind = excluded.kind, text = excluded.text",
    )?;
    for n in notes {
        ins.execute(params![
            n.id.as_bytes(),
            n.case_id.as_bytes(),
            n.created_at,
            n.edited_at,
            n.kind.as_str(),
            n.author.member.as_bytes(),
            n.author.name,
            n.author.device.as_bytes(),
            n.text
        ])?;
        put_search(tx, "note", n.case_id, n.id.as_bytes(), "", &n.text)?;
    }
    Ok(())
}

/// Removes note rows of a case that are not in `keep` (after a merge removed them).
pub fn remove_other_notes(tx: &Transaction<'_>, case: DocId, keep: &[NoteId]) -> Result<()> {
    let mut stmt = tx.prepare_cached("SELECT note_id FROM notes WHERE case_id = ?1")?;
    let existing: Vec<NoteId> = stmt
        .query_map([case.as_bytes()], |r| note_id_col(r, 0))?
        .collect::<rusqlite::Result<_>>()?;
    for n in existing.into_iter().filter(|n| !keep.contains(n)) {
        tx.execute("DELETE FROM notes WHERE note_id = ?1", [n.as_bytes()])?;
        tx.execute(
            "DELETE FROM search_items WHERE doc_id = ?1 AND item_id = ?2",
            params![case.as_bytes(), n.as_bytes()],
        )?;
    }
    Ok(())
}

/// Writes a learning point's rows.
pub fn index_learning_point(tx: &Transaction<'_>, lp: &LearningPoint) -> Result<()> {
    let id = lp.id.as_bytes();
    tx.execute(
        "INSERT OR REPLACE INTO learning_points (doc_id, title, status, meeting_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, lp.title, lp.status.as_str(), lp.meeting.map(|m| m.as_bytes().to_vec()), lp.created_at, lp.updated_at],
    )?;
    tx.execute("DELETE FROM learning_point_cases WHERE lp_id = ?1", [id])?;
    for c in &lp.cases {
        tx.execute(
            "INSERT OR IGNORE INTO learning_point_cases (case_id, lp_id) VALUES (?1, ?2)",
            params![c.as_bytes(), id],
        )?;
    }
    tx.execute("DELETE FROM learning_point_tags WHERE lp_id = ?1", [id])?;
    for t in &lp.tags {
        tx.execute(
            "INSERT OR IGNORE INTO learning_point_tags (tag, lp_id) VALUES (?1, ?2)",
            params![t, id],
        )?;
    }
    set_networks(tx, lp.id, &lp.networks)?;
    let mut body = vec![lp.insight.clone()];
    body.extend(lp.perspectives.iter().map(|p| format!("{}: {}", p.who, p.text)));
    body.extend(lp.sources.iter().map(|s| s.text.clone()));
    body.extend(lp.tags.iter().cloned());
    put_search(tx, "learning_point", lp.id, id, &lp.title, &body.join("\n"))
}

/// Writes a meeting's rows.
pub fn index_meeting(tx: &Transaction<'_>, m: &Meeting) -> Result<()> {
    let id = m.id.as_bytes();
    tx.execute(
        "INSERT OR REPLACE INTO meetings (doc_id, network_id, date, place, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id,
            m.network.map(|n| n.as_bytes().to_vec()),
            m.date,
            m.place,
            m.created_at,
            m.updated_at
        ],
    )?;
    tx.execute("DELETE FROM meeting_items WHERE meeting_id = ?1", [id])?;
    let items = m
        .agenda
        .iter()
        .map(|c| ("case", c))
        .chain(m.learning_points.iter().map(|l| ("learning_point", l)));
    for (pos, (kind, item)) in items.enumerate() {
        tx.execute(
            "INSERT OR IGNORE INTO meeting_items (meeting_id, item_kind, item_id, position) VALUES (?1, ?2, ?3, ?4)",
            params![id, kind, item.as_bytes(), pos as i64],
        )?;
    }
    set_networks(tx, m.id, &m.network.into_iter().collect::<Vec<_>>())?;
    let mut body = vec![m.minutes.clone(), m.participants.join(", ")];
    body.extend(m.agreements.iter().map(|a| a.text.clone()));
    put_search(tx, "meeting", m.id, id, &format!("{} {}", m.date, m.place), &body.join("\n"))
}

/// Writes a network's rows.
pub fn index_network(tx: &Transaction<'_>, n: &Network) -> Result<()> {
    let id = n.id.as_bytes();
    tx.execute(
        "INSERT OR REPLACE INTO networks (doc_id, name) VALUES (?1, ?2)",
        params![id, n.name],
    )?;
    tx.execute("DELETE FROM network_devices WHERE network_id = ?1", [id])?;
    for m in &n.members {
        for d in &m.devices {
            tx.execute(
                "INSERT OR IGNORE INTO network_devices (network_id, member_id, device, member_name) VALUES (?1, ?2, ?3, ?4)",
                params![id, m.id.as_bytes(), d.as_bytes(), m.name],
            )?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Queries for the app's screens: derived tables only, never an Automerge document.

/// A case in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseSummary {
    /// The case.
    pub id: DocId,
    /// Subject label.
    pub subject: String,
    /// Status.
    pub status: CaseStatus,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Newest activity on the case or its notes.
    pub last_activity: Timestamp,
    /// Number of notes.
    pub note_count: u32,
    /// Whether a field holds concurrent values.
    pub has_conflicts: bool,
}

/// Which cases to list.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only cases shared with this network.
    pub network: Option<DocId>,
    /// Only cases with this status.
    pub status: Option<CaseStatus>,
    /// Only cases with this tag.
    pub tag: Option<String>,
    /// At most this many (default 50).
    pub limit: Option<u32>,
    /// Skip this many.
    pub offset: u32,
}

const CASE_COLUMNS: &str = "c.doc_id, c.subject, c.status, c.last_activity, c.has_conflicts,
    (SELECT count(*) FROM notes n WHERE n.case_id = c.doc_id),
    (SELECT group_concat(tag, char(31)) FROM (SELECT tag FROM case_tags t WHERE t.case_id = c.doc_id ORDER BY tag))";

fn case_summary_row(r: &Row<'_>) -> rusqlite::Result<CaseSummary> {
    let tags: Option<String> = r.get(6)?;
    Ok(CaseSummary {
        id: doc_id_col(r, 0)?,
        subject: r.get(1)?,
        status: parse_col(r, 2, CaseStatus::parse)?,
        last_activity: r.get(3)?,
        has_conflicts: r.get(4)?,
        note_count: r.get(5)?,
        tags: tags.map(|t| t.split('\u{1f}').map(str::to_string).collect()).unwrap_or_default(),
    })
}

/// Cases, newest activity first.
pub fn list_cases(conn: &Connection, f: &CaseFilter) -> Result<Vec<CaseSummary>> {
    let sql = format!(
        "SELECT {CASE_COLUMNS} FROM cases c
         WHERE (?1 IS NULL OR c.status = ?1)
           AND (?2 IS NULL OR EXISTS (SELECT 1 FROM case_tags t WHERE t.case_id = c.doc_id AND t.tag = ?2))
           AND (?3 IS NULL OR EXISTS (SELECT 1 FROM doc_networks d WHERE d.doc_id = c.doc_id AND d.network_id = ?3))
         ORDER BY c.last_activity DESC, c.doc_id LIMIT ?4 OFFSET ?5"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let tag = f.tag.as_ref().map(|t| t.trim().to_lowercase());
    let rows = stmt.query_map(
        params![
            f.status.map(|s| s.as_str()),
            tag,
            f.network.map(|n| n.as_bytes().to_vec()),
            f.limit.unwrap_or(50),
            f.offset
        ],
        case_summary_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One case's summary.
pub fn case_summary(conn: &Connection, id: DocId) -> Result<Option<CaseSummary>> {
    let sql = format!("SELECT {CASE_COLUMNS} FROM cases c WHERE c.doc_id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id.as_bytes()], case_summary_row).optional()?)
}

/// A case's notes, oldest first.
pub fn timeline(conn: &Connection, case: DocId) -> Result<Vec<Note>> {
    let mut stmt = conn.prepare_cached(
        "SELECT note_id, case_id, created_at, edited_at, kind, author_member, author_name, author_device, text
         FROM notes WHERE case_id = ?1 ORDER BY created_at, note_id",
    )?;
    let rows = stmt.query_map([case.as_bytes()], |r| {
        let member: Vec<u8> = r.get(5)?;
        let device: Vec<u8> = r.get(7)?;
        let bad = |i| rusqlite::Error::InvalidColumnType(i, "id".into(), Type::Blob);
        Ok(Note {
            id: note_id_col(r, 0)?,
            case_id: doc_id_col(r, 1)?,
            created_at: r.get(2)?,
            edited_at: r.get(3)?,
            kind: parse_col(r, 4, NoteKind::parse)?,
            author: crate::model::Author {
                member: MemberId::from_slice(&member).map_err(|_| bad(5))?,
                name: r.get(6)?,
                device: DeviceKey::from_slice(&device).ok_or_else(|| bad(7))?,
            },
            text: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A learning point in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LearningPointSummary {
    /// The learning point.
    pub id: DocId,
    /// Title.
    pub title: String,
    /// Status.
    pub status: LearningPointStatus,
    /// Last change.
    pub updated_at: Timestamp,
    /// Number of cases it cites.
    pub case_count: u32,
}

const LP_COLUMNS: &str = "l.doc_id, l.title, l.status, l.updated_at,
    (SELECT count(*) FROM learning_point_cases x WHERE x.lp_id = l.doc_id)";

fn lp_row(r: &Row<'_>) -> rusqlite::Result<LearningPointSummary> {
    Ok(LearningPointSummary {
        id: doc_id_col(r, 0)?,
        title: r.get(1)?,
        status: parse_col(r, 2, LearningPointStatus::parse)?,
        updated_at: r.get(3)?,
        case_count: r.get(4)?,
    })
}

/// Learning points that cite a case, newest first.
pub fn learning_points_citing(conn: &Connection, case: DocId) -> Result<Vec<LearningPointSummary>> {
    let sql = format!(
        "SELECT {LP_COLUMNS} FROM learning_point_cases c JOIN learning_points l ON l.doc_id = c.lp_id
         WHERE c.case_id = ?1 ORDER BY l.updated_at DESC, l.doc_id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([case.as_bytes()], lp_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Learning points, optionally with one status or tag, newest first.
pub fn list_learning_points(
    conn: &Connection,
    status: Option<LearningPointStatus>,
    tag: Option<&str>,
) -> Result<Vec<LearningPointSummary>> {
    let sql = format!(
        "SELECT {LP_COLUMNS} FROM learning_points l
         WHERE (?1 IS NULL OR l.status = ?1)
           AND (?2 IS NULL OR EXISTS (SELECT 1 FROM learning_point_tags t WHERE t.lp_id = l.doc_id AND t.tag = ?2))
         ORDER BY l.updated_at DESC, l.doc_id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![status.map(|s| s.as_str()), tag.map(|t| t.trim().to_lowercase())],
        lp_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A meeting in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeetingSummary {
    /// The meeting.
    pub id: DocId,
    /// Network.
    pub network: Option<DocId>,
    /// Date.
    pub date: String,
    /// Place.
    pub place: String,
    /// Last change.
    pub updated_at: Timestamp,
}

fn meeting_row(r: &Row<'_>) -> rusqlite::Result<MeetingSummary> {
    let network: Option<Vec<u8>> = r.get(1)?;
    Ok(MeetingSummary {
        id: doc_id_col(r, 0)?,
        network: network.and_then(|n| DocId::from_slice(&n).ok()),
        date: r.get(2)?,
        place: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

/// Meetings, newest date first.
pub fn list_meetings(conn: &Connection) -> Result<Vec<MeetingSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT doc_id, network_id, date, place, updated_at FROM meetings ORDER BY date DESC, doc_id",
    )?;
    let rows = stmt.query_map([], meeting_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Everything discussed in a meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeetingContents {
    /// The meeting.
    pub meeting: MeetingSummary,
    /// Cases on the agenda, in order (those this device holds).
    pub agenda: Vec<CaseSummary>,
    /// Learning points captured, in order (those this device holds).
    pub learning_points: Vec<LearningPointSummary>,
}

/// A meeting's contents.
pub fn meeting_contents(conn: &Connection, id: DocId) -> Result<Option<MeetingContents>> {
    let Some(meeting) = conn
        .prepare_cached(
            "SELECT doc_id, network_id, date, place, updated_at FROM meetings WHERE doc_id = ?1",
        )?
        .query_row([id.as_bytes()], meeting_row)
        .optional()?
    else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {CASE_COLUMNS} FROM meeting_items i JOIN cases c ON c.doc_id = i.item_id
         WHERE i.meeting_id = ?1 AND i.item_kind = 'case' ORDER BY i.position"
    );
    let agenda = conn
        .prepare_cached(&sql)?
        .query_map([id.as_bytes()], case_summary_row)?
        .collect::<rusqlite::Result<_>>()?;
    let sql = format!(
        "SELECT {LP_COLUMNS} FROM meeting_items i JOIN learning_points l ON l.doc_id = i.item_id
         WHERE i.meeting_id = ?1 AND i.item_kind = 'learning_point' ORDER BY i.position"
    );
    let learning_points = conn
        .prepare_cached(&sql)?
        .query_map([id.as_bytes()], lp_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(MeetingContents { meeting, agenda, learning_points }))
}

/// A network in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkSummary {
    /// The network.
    pub id: DocId,
    /// Name.
    pub name: String,
    /// Number of members.
    pub member_count: u32,
}

/// Networks this device holds.
pub fn list_networks(conn: &Connection) -> Result<Vec<NetworkSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT n.doc_id, n.name, (SELECT count(DISTINCT member_id) FROM network_devices d WHERE d.network_id = n.doc_id)
         FROM networks n ORDER BY n.name, n.doc_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(NetworkSummary { id: doc_id_col(r, 0)?, name: r.get(1)?, member_count: r.get(2)? })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The saved Automerge sync state for a peer and document.
pub fn load_sync_state(conn: &Connection, peer: &DeviceKey, doc: DocId) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT state FROM sync_states WHERE peer = ?1 AND doc_id = ?2")?
        .query_row(params![peer.as_bytes(), doc.as_bytes()], |r| r.get(0))
        .optional()?)
}

/// Saves the Automerge sync state for a peer and document.
pub fn save_sync_state(
    tx: &Transaction<'_>,
    peer: &DeviceKey,
    doc: DocId,
    state: &[u8],
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO sync_states (peer, doc_id, state) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![peer.as_bytes(), doc.as_bytes(), state])?;
    Ok(())
}

/// Where a relay holds a document: the relay's key and the network's relay id.
pub type RelayScope<'a> = (&'a [u8; 32], &'a [u8; 32]);

/// The heads of a document's changes this device knows the relay holds in a network.
pub fn relay_pushed(conn: &Connection, at: RelayScope<'_>, doc: DocId) -> Result<Vec<[u8; 32]>> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached(
            "SELECT heads FROM relay_pushed WHERE relay = ?1 AND network = ?2 AND doc_id = ?3",
        )?
        .query_row(params![&at.0[..], &at.1[..], doc.as_bytes()], |r| r.get(0))
        .optional()?;
    bytes.map_or(Ok(Vec::new()), |b| decode_heads(&b))
}

/// [`relay_pushed`] for every document this device has exchanged with the relay in a network.
pub fn relay_pushed_all(
    conn: &Connection,
    at: RelayScope<'_>,
) -> Result<std::collections::HashMap<DocId, Vec<[u8; 32]>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT doc_id, heads FROM relay_pushed WHERE relay = ?1 AND network = ?2",
    )?;
    let rows = stmt.query_map(params![&at.0[..], &at.1[..]], |r| {
        Ok((doc_id_col(r, 0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = std::collections::HashMap::new();
    for row in rows {
        let (id, heads) = row?;
        out.insert(id, decode_heads(&heads)?);
    }
    Ok(out)
}

/// Records the heads of a document's changes the relay holds in a network.
pub fn set_relay_pushed(
    tx: &Transaction<'_>,
    at: RelayScope<'_>,
    doc: DocId,
    heads: &[[u8; 32]],
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO relay_pushed (relay, network, doc_id, heads)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![&at.0[..], &at.1[..], doc.as_bytes(), encode_heads(heads)])?;
    Ok(())
}

/// Whether a document is shared with a network (or is the network).
pub fn doc_in_network(conn: &Connection, doc: DocId, network: DocId) -> Result<bool> {
    if doc == network {
        return Ok(true);
    }
    Ok(conn
        .prepare_cached("SELECT 1 FROM doc_networks WHERE doc_id = ?1 AND network_id = ?2")?
        .query_row(params![doc.as_bytes(), network.as_bytes()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The last blob pulled from the relay for a network (0: none).
pub fn relay_cursor(conn: &Connection, relay: &[u8; 32], network: &[u8; 32]) -> Result<u64> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM relay_cursors WHERE relay = ?1 AND network = ?2")?
        .query_row(params![&relay[..], &network[..]], |r| r.get(0))
        .optional()?;
    Ok(seq.map_or(0, |s| s.max(0) as u64))
}

/// Records the last blob pulled from the relay for a network.
pub fn set_relay_cursor(
    tx: &Transaction<'_>,
    relay: &[u8; 32],
    network: &[u8; 32],
    seq: u64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO relay_cursors (relay, network, seq) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![&relay[..], &network[..], i64::try_from(seq).unwrap_or(i64::MAX)])?;
    Ok(())
}

/// Networks whose roster lists both devices.
pub fn shared_networks(conn: &Connection, me: &DeviceKey, peer: &DeviceKey) -> Result<Vec<DocId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT a.network_id FROM network_devices a
         JOIN network_devices b ON b.network_id = a.network_id
         WHERE a.device = ?1 AND b.device = ?2 ORDER BY a.network_id",
    )?;
    let rows = stmt.query_map(params![me.as_bytes(), peer.as_bytes()], |r| doc_id_col(r, 0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A network's documents (the network itself, and everything shared with it) with their
/// heads, most urgent first: the roster, learning points, meetings, then cases by activity.
pub fn network_inventory(
    conn: &Connection,
    network: DocId,
) -> Result<crate::sync::session::Inventory> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.doc_id, d.heads FROM documents d
         WHERE d.doc_id = ?1 OR d.doc_id IN (SELECT doc_id FROM doc_networks WHERE network_id = ?1)
         ORDER BY CASE d.kind WHEN 'network' THEN 0 WHEN 'learning_point' THEN 1
                              WHEN 'meeting' THEN 2 ELSE 3 END,
                  (SELECT last_activity FROM cases c WHERE c.doc_id = d.doc_id) DESC, d.doc_id",
    )?;
    let rows =
        stmt.query_map([network.as_bytes()], |r| Ok((doc_id_col(r, 0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, heads) = row?;
        out.push((id, decode_heads(&heads)?));
    }
    Ok(out)
}

/// The member name a device key is known by in any network, if any.
pub fn member_name_for_device(conn: &Connection, device: &DeviceKey) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT member_name FROM network_devices WHERE device = ?1 LIMIT 1")?
        .query_row([device.as_bytes()], |r| r.get(0))
        .optional()?)
}

/// What a search hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    /// A case's own fields.
    Case,
    /// A note.
    Note,
    /// A learning point.
    LearningPoint,
    /// A meeting.
    Meeting,
}

/// One full-text search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// What matched.
    pub kind: HitKind,
    /// The document.
    pub doc_id: DocId,
    /// The note, for note hits.
    pub note_id: Option<NoteId>,
    /// The case subject, learning point title, or meeting date and place.
    pub title: String,
    /// The matching passage, matches in `[` `]`.
    pub snippet: String,
    /// Relevance (higher is better).
    pub score: f64,
}

/// Turns what a user typed into an FTS5 query that cannot be a syntax error: each word quoted,
/// all words required, the last one as a prefix (search as you type).
pub fn fts_query(input: &str) -> Option<String> {
    let words: Vec<String> = input
        .split(|c: char| c.is_whitespace() || c == '"')
        .filter(|w| w.chars().any(|c| c.is_alphanumeric()))
        .take(16)
        .map(|w| format!("\"{w}\""))
        .collect();
    if words.is_empty() {
        return None;
    }
    let mut q = words.join(" ");
    q.push('*');
    Some(q)
}

/// Ranked full-text search over cases, notes, learning points and meetings.
pub fn search(conn: &Connection, input: &str, limit: u32) -> Result<Vec<SearchHit>> {
    let Some(q) = fts_query(input) else {
        return Ok(Vec::new());
    };
    // Rank first, then build snippets for the top rows only: snippet() over every match of a
    // common word would cost far more than the ranking itself.
    let mut stmt = conn.prepare_cached(
        "WITH top AS (
             SELECT rowid AS id, bm25(search_fts, 5.0, 1.0) AS rank FROM search_fts
             WHERE search_fts MATCH ?1 ORDER BY rank LIMIT ?2
         )
         SELECT s.kind, s.doc_id, s.item_id,
                CASE s.kind WHEN 'note' THEN coalesce((SELECT subject FROM cases WHERE doc_id = s.doc_id), '')
                            ELSE s.title END,
                snippet(search_fts, 1, '[', ']', '…', 16), top.rank
         FROM top
         JOIN search_fts ON search_fts.rowid = top.id AND search_fts MATCH ?1
         JOIN search_items s ON s.id = top.id
         ORDER BY top.rank, top.id",
    )?;
    let rows = stmt.query_map(params![q, limit], |r| {
        let kind: String = r.get(0)?;
        let kind = match kind.as_str() {
            "case" => HitKind::Case,
            "note" => HitKind::Note,
            "learning_point" => HitKind::LearningPoint,
            _ => HitKind::Meeting,
        };
        let item: Vec<u8> = r.get(2)?;
        let snippet: String = r.get(4)?;
        let title: String = r.get(3)?;
        Ok(SearchHit {
            kind,
            doc_id: doc_id_col(r, 1)?,
            note_id: if kind == HitKind::Note { NoteId::from_slice(&item).ok() } else { None },
            // A match only in the title gives an empty body snippet: show the title then.
            snippet: if snippet.is_empty() { title.clone() } else { snippet },
            title,
            score: -r.get::<_, f64>(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_query_never_passes_syntax_through() {
        assert_eq!(fts_query("was machine"), Some("\"was\" \"machine\"*".into()));
        assert_eq!(fts_query("NEAR( \"x OR"), Some("\"NEAR(\" \"x\" \"OR\"*".into()));
        assert_eq!(fts_query("  ) * - "), None);
    }

    #[test]
    fn migrated_schema_equals_fresh_schema() {
        let dir = tempfile::tempdir().unwrap();
        let (fresh, _, _) = open(&dir.path().join("fresh.db")).unwrap();
        let mut old = Connection::open(dir.path().join("old.db")).unwrap();
        migrate_to(&mut old, 1).unwrap();
        drop(old);
        let (upgraded, _, needs_reindex) = open(&dir.path().join("old.db")).unwrap();
        assert!(needs_reindex, "migration 2 adds a derived table, so it asks for a reindex");
        assert_eq!(schema_dump(&fresh).unwrap(), schema_dump(&upgraded).unwrap());
        let v: u32 = upgraded.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn newer_schema_and_foreign_files_are_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let newer = dir.path().join("newer.db");
        {
            let c = Connection::open(&newer).unwrap();
            c.execute_batch("CREATE TABLE x (y); PRAGMA user_version = 99;").unwrap();
            c.pragma_update(None, "application_id", APPLICATION_ID).unwrap();
        }
        let before = std::fs::read(&newer).unwrap();
        assert!(matches!(open(&newer), Err(OpenError::NewerSchema { found: 99, .. })));
        assert_eq!(std::fs::read(&newer).unwrap(), before);
        assert!(!dir.path().join("newer.db-wal").exists());

        let other = dir.path().join("other-app.db");
        {
            let c = Connection::open(&other).unwrap();
            c.execute_batch(
                "CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('Joke');",
            )
            .unwrap();
        }
        let before = std::fs::read(&other).unwrap();
        assert!(matches!(open(&other), Err(OpenError::ForeignDatabase(_))));
        assert_eq!(std::fs::read(&other).unwrap(), before);

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "boodschappenlijst: melk, brood").unwrap();
        assert!(matches!(open(&text), Err(OpenError::NotADatabase(_))));
        assert_eq!(std::fs::read_to_string(&text).unwrap(), "boodschappenlijst: melk, brood");
    }
}
