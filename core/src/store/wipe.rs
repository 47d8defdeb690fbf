//! Wiping what a device holds of a network it was removed from, and erasing documents:
//! documents, chunks, derived rows, search entries, sync states, signatures and relay state, in
//! the caller's transaction; the erased list; scrubbing what deleting leaves in the file.

use rusqlite::{OptionalExtension, Transaction, params};

use super::Result;
use crate::ids::DocId;

/// The documents to wipe with `network`: the network document, and every document shared with
/// it and with no other network this device holds.
pub(crate) fn documents_only_in(tx: &Transaction<'_>, network: DocId) -> Result<Vec<DocId>> {
    let mut stmt = tx.prepare_cached(
        "SELECT d.doc_id FROM doc_networks d WHERE d.network_id = ?1
           AND NOT EXISTS (SELECT 1 FROM doc_networks o JOIN documents n ON n.doc_id = o.network_id
                           WHERE o.doc_id = d.doc_id AND o.network_id != ?1)
         ORDER BY d.doc_id",
    )?;
    let rows = stmt.query_map([network.as_bytes()], |r| super::doc_id_col(r, 0))?;
    let mut out: Vec<DocId> = rows.collect::<rusqlite::Result<_>>()?;
    out.push(network);
    Ok(out)
}

/// Deletes documents and everything derived from or kept about them.
pub(crate) fn delete_documents(tx: &Transaction<'_>, docs: &[DocId]) -> Result<()> {
    for doc in docs {
        let id = doc.as_bytes();
        let items: Vec<i64> = tx
            .prepare_cached("SELECT id FROM search_items WHERE doc_id = ?1")?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for item in items {
            tx.prepare_cached("DELETE FROM search_fts WHERE rowid = ?1")?.execute([item])?;
        }
        for sql in [
            "DELETE FROM search_items WHERE doc_id = ?1",
            "DELETE FROM doc_chunks WHERE doc_id = ?1",
            "DELETE FROM documents WHERE doc_id = ?1",
            "DELETE FROM cases WHERE doc_id = ?1",
            "DELETE FROM case_tags WHERE case_id = ?1",
            "DELETE FROM notes WHERE case_id = ?1",
            "DELETE FROM doc_networks WHERE doc_id = ?1",
            "DELETE FROM learning_points WHERE doc_id = ?1",
            "DELETE FROM learning_point_cases WHERE lp_id = ?1",
            "DELETE FROM learning_point_tags WHERE lp_id = ?1",
            "DELETE FROM meetings WHERE doc_id = ?1",
            "DELETE FROM meeting_items WHERE meeting_id = ?1",
            "DELETE FROM sync_states WHERE doc_id = ?1",
            "DELETE FROM doc_signatures WHERE doc_id = ?1",
            "DELETE FROM relay_pushed WHERE doc_id = ?1",
        ] {
            tx.prepare_cached(sql)?.execute([id])?;
        }
    }
    Ok(())
}

/// Records that the document tagged `tag` was erased here (through `network`'s tombstone),
/// refused until `until`.
pub(crate) fn mark_erased(
    tx: &Transaction<'_>,
    tag: &[u8; 32],
    network: DocId,
    at: i64,
    until: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO erased (tag, network_id, erased_at, until_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tag) DO UPDATE SET until_ms = max(until_ms, excluded.until_ms)",
    )?
    .execute(params![tag, network.as_bytes(), at, until])?;
    Ok(())
}

/// Records that the document tagged `tag` was replaced here by `by` (a new history without
/// redacted words), until `until`.
pub(crate) fn mark_replaced(
    tx: &Transaction<'_>,
    tag: &[u8; 32],
    by: DocId,
    until: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO replaced (tag, by_doc, until_ms) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![tag, by.as_bytes(), until])?;
    Ok(())
}

/// The document that replaced `doc` here, if it was replaced (its window not ended).
pub(crate) fn replacement_of(conn: &rusqlite::Connection, doc: DocId) -> Result<Option<DocId>> {
    let tag = crate::erasure::erased_tag(doc);
    conn.prepare_cached("SELECT by_doc FROM replaced WHERE tag = ?1")?
        .query_row([&tag[..]], |r| super::doc_id_col(r, 0))
        .optional()
        .map_err(Into::into)
}

/// Whether `doc` was erased here (and its window has not ended).
pub(crate) fn is_erased(conn: &rusqlite::Connection, doc: DocId) -> Result<bool> {
    is_tag_erased(conn, &crate::erasure::erased_tag(doc))
}

/// Whether the document tagged `tag` was erased here.
pub(crate) fn is_tag_erased(conn: &rusqlite::Connection, tag: &[u8; 32]) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM erased WHERE tag = ?1")?
        .query_row([tag], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Forgets erasures whose window ended before `now`: a copy of one is taken again (the
/// tombstone in the network document still names it, so it is erased again when seen there).
pub(crate) fn forget_erased_before(tx: &Transaction<'_>, now: i64) -> Result<usize> {
    tx.prepare_cached("DELETE FROM replaced WHERE until_ms < ?1")?.execute([now])?;
    Ok(tx.prepare_cached("DELETE FROM erased WHERE until_ms < ?1")?.execute([now])?)
}

/// After deleting documents for good: merges the full-text index into one segment, so no
/// word of theirs stays in an older segment (FTS5 only marks rows deleted), then folds the
/// WAL into the store and truncates it, so no frame of the freed pages stays in it. The
/// writer runs with `secure_delete` on, so freed pages are zeroed; a store made before it was
/// may hold old bytes in pages freed earlier, and is vacuumed once, here. Outside any
/// transaction. False if another connection's read kept the checkpoint from finishing (the
/// WAL then keeps freed frames until the next checkpoint).
pub(crate) fn scrub(conn: &rusqlite::Connection) -> Result<bool> {
    if super::meta_get(conn, "free_pages_zeroed")?.is_none() {
        conn.execute_batch("VACUUM")?;
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('free_pages_zeroed', 1)",
            [],
        )?;
    }
    conn.execute("INSERT INTO search_fts (search_fts) VALUES ('optimize')", [])?;
    // (busy, frames in the WAL, frames checkpointed): busy when another connection reads.
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    Ok(busy == 0)
}

/// Deletes what this device kept about a network itself: its roster rows, operations, pinned
/// creator, invitation, its relay cursors and its documents' content keys (`relay_id`: its id
/// at relays).
pub(crate) fn forget_network(
    tx: &Transaction<'_>,
    network: DocId,
    relay_id: Option<&[u8; 32]>,
) -> Result<()> {
    let id = network.as_bytes();
    for sql in [
        "DELETE FROM networks WHERE doc_id = ?1",
        "DELETE FROM network_devices WHERE network_id = ?1",
        "DELETE FROM network_removed WHERE network_id = ?1",
        "DELETE FROM network_ops WHERE network_id = ?1",
        "DELETE FROM network_roots WHERE network_id = ?1",
        "DELETE FROM invitations WHERE network_id = ?1",
        "DELETE FROM doc_networks WHERE network_id = ?1",
    ] {
        tx.prepare_cached(sql)?.execute([id])?;
    }
    if let Some(r) = relay_id {
        tx.execute("DELETE FROM relay_cursors WHERE network = ?1", params![&r[..]])?;
        tx.execute("DELETE FROM relay_pushed WHERE network = ?1", params![&r[..]])?;
        tx.execute("DELETE FROM relay_deferred WHERE network = ?1", params![&r[..]])?;
        tx.execute("DELETE FROM relay_keys WHERE network = ?1", params![&r[..]])?;
        tx.execute("DELETE FROM content_keys WHERE network = ?1", params![&r[..]])?;
    }
    Ok(())
}
