//! The signed membership operations this device has seen, per network, the creators pinned
//! for networks made before signed membership, and the invitations the user accepted.
//!
//! Grow-only: nothing here is derived from the current state of a network document alone, so
//! a reindex never clears it, and a member who deletes an operation from the document cannot
//! make this device forget it. Stores operations as bytes; judging them is `membership`'s.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::Result;
use crate::{
    ids::{DeviceKey, DocId},
    membership::SignedOp,
};

/// Records operations of `network` (those already held are left as they are).
pub(crate) fn put_network_ops(
    tx: &Transaction<'_>,
    network: DocId,
    ops: &[SignedOp],
) -> Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO network_ops (network_id, op_id, bytes) VALUES (?1, ?2, ?3)",
    )?;
    for op in ops {
        ins.execute(params![network.as_bytes(), &op.id()[..], op.bytes()])?;
    }
    Ok(())
}

/// Every operation of `network` this device has seen. One that no longer decodes (written by
/// a newer version, say) is passed over: it cannot count here either way.
pub(crate) fn network_ops(conn: &Connection, network: DocId) -> Result<Vec<SignedOp>> {
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM network_ops WHERE network_id = ?1 ORDER BY op_id")?;
    let rows = stmt.query_map([network.as_bytes()], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for bytes in rows {
        match SignedOp::decode(&bytes?) {
            Ok(op) => out.push(op),
            Err(e) => {
                tracing::warn!(network = %network, error = %e, "a stored membership operation is ignored")
            }
        }
    }
    Ok(out)
}

/// Pins the creator trusted for the genesis of a network made before signed membership (the
/// first pin stays).
pub(crate) fn pin_network_root(
    tx: &Transaction<'_>,
    network: DocId,
    creator: &DeviceKey,
) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO network_roots (network_id, creator) VALUES (?1, ?2)",
        params![network.as_bytes(), creator.as_bytes()],
    )?;
    Ok(())
}

/// The creator pinned for a network made before signed membership, if any.
pub(crate) fn network_root(conn: &Connection, network: DocId) -> Result<Option<DeviceKey>> {
    let key: Option<Vec<u8>> = conn
        .prepare_cached("SELECT creator FROM network_roots WHERE network_id = ?1")?
        .query_row([network.as_bytes()], |r| r.get(0))
        .optional()?;
    Ok(key.and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok()).map(DeviceKey::from_bytes))
}

/// Records an invitation the user accepted (accepting again keeps the first).
pub(crate) fn accept_invitation(
    tx: &Transaction<'_>,
    network: DocId,
    invitation: &str,
    at: i64,
) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO invitations (network_id, invitation, accepted_at) VALUES (?1, ?2, ?3)",
        params![network.as_bytes(), invitation, at],
    )?;
    Ok(())
}

/// Whether the user accepted an invitation into `network`.
pub(crate) fn invitation_accepted(conn: &Connection, network: DocId) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM invitations WHERE network_id = ?1")?
        .query_row([network.as_bytes()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Accepted invitations whose network has not arrived yet, oldest first.
pub(crate) fn pending_invitations(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT invitation FROM invitations i
         WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.doc_id = i.network_id)
         ORDER BY accepted_at, network_id",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
