//! The meta table: small per-store values (the device key, display name, flags such as
//! `needs_reindex`).

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::Result;

/// A value from the meta table.
pub(crate) fn meta_get(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
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
pub(crate) fn meta_put(tx: &Transaction<'_>, key: &str, value: &[u8]) -> Result<()> {
    tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", params![key, value])?;
    Ok(())
}

/// Removes a value from the meta table.
pub(crate) fn meta_delete(tx: &Transaction<'_>, key: &str) -> Result<()> {
    tx.execute("DELETE FROM meta WHERE key = ?1", [key])?;
    Ok(())
}
