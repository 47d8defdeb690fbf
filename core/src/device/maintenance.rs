//! Maintenance: rebuilding the derived tables, durability settings, the integrity check.

use super::*;

impl Device {
    /// Rebuilds every derived table from the stored document chunks alone.
    pub fn reindex(&self) -> Result<usize, Error> {
        let key = self.device_key();
        let mut w = self.writer.lock();
        w.cache.clear();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        store::clear_index(&tx)?;
        let ids = store::document_ids(&tx)?;
        for (id, kind) in &ids {
            let bytes = store::load_bytes(&tx, *id)?;
            let doc = doc::load(&bytes, &key)
                .map_err(|source| Error::StoredDocument { id: id.to_string(), source })?;
            index_doc(&tx, &doc, *kind, Notes::All)?;
        }
        store::meta_delete(&tx, "needs_reindex")?;
        tx.commit()?;
        Ok(ids.len())
    }

    /// The writer connection's journal mode and `synchronous` level (for tests and support:
    /// acknowledged writes survive power loss only with `wal` and 2 = FULL).
    pub fn durability(&self) -> Result<(String, i64), Error> {
        let w = self.writer.lock();
        let mode: String = w.conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let sync: i64 = w.conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        Ok((mode, sync))
    }

    /// Runs SQLite's integrity check and loads every document: the problems found, if any.
    pub fn check_integrity(&self) -> Result<Vec<String>, Error> {
        let mut problems = Vec::new();
        // A connection of its own, in one read transaction: FTS5 caches its index structure
        // per connection, and the long-lived reader's cache can predate the writer's segment
        // merges, so checking through it reported blobs the writer had merged away as
        // corruption of a healthy index.
        let mut conn = store::open_reader(&self.path)?;
        let r = conn.transaction()?;
        let mut stmt = r.prepare("PRAGMA integrity_check")?;
        for row in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let row = row?;
            if row != "ok" {
                problems.push(row);
            }
        }
        problems.extend(store::check_search(&r)?);
        for (id, _) in store::document_ids(&r)? {
            let bytes = store::load_bytes(&r, id)?;
            if let Err(e) = doc::load(&bytes, &self.device_key()).and_then(|d| doc::header(&d)) {
                problems.push(format!("document {id}: {e}"));
            }
        }
        Ok(problems)
    }
}
