//! Documents and their chunks: a snapshot, then one incremental chunk per write, compacted into a
//! fresh snapshot when the increments outgrow it. Bytes are opaque here (no Automerge).

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Result, decode_heads, doc_id_col, encode_heads, parse_col};
use crate::{ids::DocId, model::DocKind};

/// What the store holds of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocState {
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

/// The stored state of a document, if the store has it.
pub(crate) fn doc_state(conn: &Connection, id: DocId) -> Result<Option<DocState>> {
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
pub(crate) fn document_ids(conn: &Connection) -> Result<Vec<(DocId, DocKind)>> {
    let mut stmt = conn.prepare("SELECT doc_id, kind FROM documents ORDER BY doc_id")?;
    let rows = stmt.query_map([], |r| Ok((doc_id_col(r, 0)?, parse_col(r, 1, DocKind::parse)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A document's chunks, snapshot first, concatenated: one buffer Automerge loads in one call.
pub(crate) fn load_bytes(conn: &Connection, id: DocId) -> Result<Vec<u8>> {
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
pub(crate) fn insert_document(
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
pub(crate) fn append_chunk(
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
pub(crate) fn replace_with_snapshot(
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
pub(crate) fn should_compact(state: &DocState) -> bool {
    // Compacting when increments exceed the snapshot makes snapshots grow geometrically, so the
    // cost of compaction stays proportional to what was written. The chunk cap bounds load time.
    (state.incremental_bytes > state.snapshot_bytes.max(4096)) || state.chunk_count > 256
}
