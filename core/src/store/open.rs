//! Opening a store: the file checks that refuse what is not ours, the schema, and the numbered
//! migrations that bring an older store up to date in one transaction.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{
    APPLICATION_ID, OpenError, SCHEMA_VERSION, StoreError,
    cipher::{
        FileState, StoreKey, apply_key, connect, could_be_encrypted, create_owner_only, file_state,
        narrow_to_owner, probe,
    },
    meta::{meta_delete, meta_get},
    search::refold_search,
};

const SCHEMA: &str = include_str!("schema.sql");
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("migrations/001_initial.sql")),
    (2, include_str!("migrations/002_status_and_lp_tags.sql")),
    (3, include_str!("migrations/003_sync_states.sql")),
    (4, include_str!("migrations/004_relay.sql")),
    (5, include_str!("migrations/005_folded_search.sql")),
    (6, include_str!("migrations/006_signed_membership.sql")),
    (7, include_str!("migrations/007_relay_deferred.sql")),
    (8, include_str!("migrations/008_notes_by_case.sql")),
    (9, include_str!("migrations/009_erased.sql")),
    (10, include_str!("migrations/010_relay_deletions.sql")),
    (11, include_str!("migrations/011_content_keys.sql")),
];

/// Keys a new connection and reads its first page: a wrong key fails here, before anything
/// is written.
fn configure(conn: &Connection, path: &Path, key: Option<&StoreKey>) -> Result<(), OpenError> {
    // Not SQL, so allowed before the key: the first read may wait for another connection.
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    apply_key(conn, key)?;
    probe(conn, path, key.is_some())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Refuses, before SQLite sees the file, what cannot be opened with `key`: a plain store with a
/// key, an encrypted one without, and what is neither. Creates a new store's file owner-only.
fn check_file(path: &Path, key: Option<&StoreKey>) -> Result<(), OpenError> {
    super::cipher::recover(path)?;
    match (file_state(path)?, key) {
        (FileState::Plain, Some(_)) => return Err(OpenError::NotEncrypted(path.to_path_buf())),
        (FileState::Opaque, _) if !could_be_encrypted(path)? => {
            return Err(OpenError::NotADatabase(path.to_path_buf()));
        }
        (FileState::Opaque, None) => return Err(OpenError::WrongKey(path.to_path_buf())),
        (FileState::Opaque, Some(_)) => {
            super::cipher::try_key(path, key)?;
        }
        _ => {}
    }
    create_owner_only(path)
}

/// Opens (creating if absent) the store at `path`: the writer connection and a reader.
///
/// Refuses, leaving the file untouched, a file that is not SQLite and a store from a newer
/// schema. Upgrades an older schema by its numbered migrations in one transaction. Returns
/// whether derived tables must be rebuilt (a migration added one).
pub(crate) fn open(
    path: &Path,
    key: Option<&StoreKey>,
) -> Result<(Connection, Connection, bool), OpenError> {
    check_file(path, key)?;
    let writer = connect(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&writer, path, key)?;
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
    // Every delete zeroes what it frees, not only an erasure's: an erased case's text must not
    // survive in a page freed earlier, when the case was live (an old chunk replaced by a
    // snapshot, a row moved as its page split). Costs P1 nothing measurable (BENCHMARKS.md).
    writer.pragma_update(None, "secure_delete", true)?;
    let mut writer = writer;
    migrate(&mut writer, version)?;
    if version == 0 {
        // Made with `secure_delete` on from its first page: nothing freed holds old bytes.
        writer.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('free_pages_zeroed', 1)",
            [],
        )?;
    }
    narrow_to_owner(path)?;
    let as_open = |e| match e {
        StoreError::Corrupt(m) => OpenError::Corrupt(m),
        StoreError::Sqlite(e) => OpenError::Sqlite(e),
    };
    if meta_get(&writer, "refold_search").map_err(as_open)?.is_some() {
        // Version 5 folds search words in Rust: refill the index from the text the store
        // already holds (no document is loaded, so a damaged one cannot hold this up).
        let tx = writer.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        refold_search(&tx).map_err(as_open)?;
        meta_delete(&tx, "refold_search").map_err(as_open)?;
        tx.commit()?;
    }
    let needs_reindex = meta_get(&writer, "needs_reindex").map_err(as_open)?;
    let reader = open_reader(path, key)?;
    Ok((writer, reader, needs_reindex.is_some()))
}

/// A read-only connection to a store that [`open`] has opened (and migrated) before.
pub(crate) fn open_reader(path: &Path, key: Option<&StoreKey>) -> Result<Connection, OpenError> {
    let reader = connect(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    configure(&reader, path, key)?;
    Ok(reader)
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
#[cfg(test)]
pub(crate) fn migrate_to(conn: &mut Connection, target: u32) -> Result<(), rusqlite::Error> {
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
#[cfg(test)]
pub(crate) fn schema_dump(conn: &Connection) -> Result<Vec<String>, rusqlite::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrated_schema_equals_fresh_schema() {
        let dir = tempfile::tempdir().unwrap();
        let (fresh, _, _) = open(&dir.path().join("fresh.db"), None).unwrap();
        let mut old = Connection::open(dir.path().join("old.db")).unwrap();
        migrate_to(&mut old, 1).unwrap();
        drop(old);
        let (upgraded, _, needs_reindex) = open(&dir.path().join("old.db"), None).unwrap();
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
        assert!(matches!(open(&newer, None), Err(OpenError::NewerSchema { found: 99, .. })));
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
        assert!(matches!(open(&other, None), Err(OpenError::ForeignDatabase(_))));
        assert_eq!(std::fs::read(&other).unwrap(), before);

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "boodschappenlijst: melk, brood").unwrap();
        assert!(matches!(open(&text, None), Err(OpenError::NotADatabase(_))));
        assert_eq!(std::fs::read_to_string(&text).unwrap(), "boodschappenlijst: melk, brood");
    }
}
