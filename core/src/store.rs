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
//!
//! # Layout
//! - `open`: file checks, the schema and its numbered migrations.
//! - `cipher`: the store key, SQLCipher, owner-only files, encrypting and rekeying a store.
//! - `membership`: the signed membership operations seen, grow-only.
//! - `meta`: small per-store values (device key, display name, flags).
//! - `chunks`: documents and their chunks, compaction into snapshots.
//! - `index`: derived rows for every screen, written with the chunk they derive from.
//! - `queries`: the screens' reads, from derived rows only.
//! - `search`: the full-text index, queries and snippets.
//! - `sync_state`: sync states per peer, relay cursors and heads, shared networks.
//! - `wipe`: deleting what a device holds of a network it was removed from.

use std::path::PathBuf;

use rusqlite::{ErrorCode, Row, types::Type};

use crate::ids::{DocId, NoteId};

/// The schema version of a fresh store, and the newest this build opens.
pub(crate) const SCHEMA_VERSION: u32 = 11;

/// `PRAGMA application_id` of every Nabij store ("NABJ"), so another application's SQLite
/// database is never mistaken for one and migrated.
pub(crate) const APPLICATION_ID: i32 = 0x4E41_424A;

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
    /// The store is encrypted and the key given is not its key, or no key was given. Nothing
    /// was written.
    #[error("{0} is encrypted and this is not its key (or no key was given)")]
    WrongKey(PathBuf),
    /// A key was given for a store that is not encrypted: encrypt it first
    /// (`Device::encrypt_store`, `nabij migrate-encrypt`).
    #[error("{0} is not encrypted: encrypt it first (migrate-encrypt), then open it with the key")]
    NotEncrypted(PathBuf),
    /// There is no store at the path (for operations that need one).
    #[error("there is no store at {0}")]
    NoStore(PathBuf),
    /// Another connection has the store open, so it cannot be rewritten now.
    #[error("{0} is open elsewhere: close the other app or process and try again")]
    InUse(PathBuf),
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

mod chunks;
mod cipher;
mod content_keys;
mod index;
mod membership;
mod meta;
mod open;
mod queries;
mod search;
mod sync_state;
mod wipe;

#[cfg(feature = "test-utils")]
pub(crate) use self::cipher::apply_key;
pub use self::cipher::{InvalidStoreKey, StoreKey};
pub(crate) use self::{
    chunks::*,
    cipher::{FileState, could_be_encrypted, encrypt_store, file_state, rekey_store},
    content_keys::*,
    index::*,
    membership::*,
    meta::*,
    open::*,
    queries::*,
    search::*,
    sync_state::*,
    wipe::*,
};

// ---------------------------------------------------------------------------------------------
// Column helpers shared by the submodules: a stored value that does not parse is corruption.

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
