//! The signed membership operations this device has seen, per network, the creators pinned
//! for networks made before signed membership, the invitations the user accepted, and the
//! signed heads that cover each document's changes.
//!
//! Grow-only: nothing here is derived from the current state of a network document alone, so
//! a reindex never clears it, and a member who deletes an operation from the document cannot
//! make this device forget it. Stores operations as bytes; judging them is `membership`'s.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::Result;
use crate::{
    authorship::SignedHead,
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

/// How many operations of `network` this device has seen.
pub(crate) fn network_op_count(conn: &Connection, network: DocId) -> Result<u64> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM network_ops WHERE network_id = ?1")?
        .query_row([network.as_bytes()], |r| r.get::<_, i64>(0))?
        .max(0) as u64)
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

/// Keeps, per device, the signed head with the highest number (an older one is dropped).
pub(crate) fn put_signed_heads(
    tx: &Transaction<'_>,
    doc: DocId,
    heads: &[SignedHead],
) -> Result<()> {
    let mut put = tx.prepare_cached(
        "INSERT INTO doc_signatures (doc_id, actor, seq, hash, signature, proof)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (doc_id, actor) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
             signature = excluded.signature, proof = coalesce(excluded.proof, doc_signatures.proof)
         WHERE excluded.seq > doc_signatures.seq
            OR (excluded.seq = doc_signatures.seq AND doc_signatures.proof IS NULL)",
    )?;
    for h in heads {
        let seq = i64::try_from(h.seq).unwrap_or(i64::MAX);
        // Serialising plain owned data to a Vec cannot fail.
        let proof = h.proof.as_ref().map(|p| postcard::to_stdvec(p).unwrap_or_default());
        put.execute(params![doc.as_bytes(), &h.actor[..], seq, &h.hash[..], h.signature, proof])?;
    }
    Ok(())
}

/// The signed heads held for a document, one per device.
pub(crate) fn signed_heads(conn: &Connection, doc: DocId) -> Result<Vec<SignedHead>> {
    let mut stmt = conn.prepare_cached(
        "SELECT actor, seq, hash, signature, proof FROM doc_signatures WHERE doc_id = ?1
         ORDER BY actor",
    )?;
    let rows = stmt.query_map([doc.as_bytes()], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get(3)?,
            r.get::<_, Option<Vec<u8>>>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (actor, seq, hash, signature, proof) = row?;
        // A proof that no longer decodes (a newer version wrote it) is only not passed on.
        let proof = proof.and_then(|p| postcard::from_bytes(&p).ok());
        let (Ok(actor), Ok(hash)) = (<[u8; 32]>::try_from(actor), <[u8; 32]>::try_from(hash))
        else {
            return Err(super::StoreError::Corrupt("a stored signature's key or hash".into()));
        };
        let seq = u64::try_from(seq).unwrap_or_default();
        out.push(SignedHead { actor, seq, hash, signature, proof });
    }
    Ok(out)
}

/// Whether `device` is, or was before its removal, a device of any of `networks`.
pub(crate) fn device_of_networks(
    conn: &Connection,
    networks: &[DocId],
    device: &DeviceKey,
) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM network_devices WHERE network_id = ?1 AND device = ?2
         UNION ALL SELECT 1 FROM network_removed WHERE network_id = ?1 AND device = ?2 LIMIT 1",
    )?;
    for n in networks {
        if stmt.exists(params![n.as_bytes(), device.as_bytes()])? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether this device holds `network` (its membership rows exist).
pub(crate) fn network_held(conn: &Connection, network: DocId) -> Result<bool> {
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM network_devices WHERE network_id = ?1 LIMIT 1")?;
    Ok(stmt.exists([network.as_bytes()])?)
}

/// Whether `device` is an active device of `network` (as held here).
pub(crate) fn device_active_in(
    conn: &Connection,
    network: DocId,
    device: &DeviceKey,
) -> Result<bool> {
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM network_devices WHERE network_id = ?1 AND device = ?2")?;
    Ok(stmt.exists(params![network.as_bytes(), device.as_bytes()])?)
}

/// The networks, held here, that `device` is or was a device of.
pub(crate) fn networks_of_device(conn: &Connection, device: &DeviceKey) -> Result<Vec<DocId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT network_id FROM network_devices WHERE device = ?1
         UNION SELECT network_id FROM network_removed WHERE device = ?1 ORDER BY 1",
    )?;
    let rows = stmt.query_map([device.as_bytes()], |r| super::doc_id_col(r, 0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The networks a document held here is shared with (from its derived rows).
pub(crate) fn networks_of_doc(conn: &Connection, doc: DocId) -> Result<Vec<DocId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT network_id FROM doc_networks WHERE doc_id = ?1 ORDER BY network_id",
    )?;
    let rows = stmt.query_map([doc.as_bytes()], |r| super::doc_id_col(r, 0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
