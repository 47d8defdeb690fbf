//! What sync remembers between sessions: Automerge sync states per peer and document, what a
//! relay holds and where each relay pull stopped, and which networks two devices share.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Result, decode_heads, doc_id_col, encode_heads};
use crate::ids::{DeviceKey, DocId};

/// The saved Automerge sync state for a peer and document.
pub(crate) fn load_sync_state(
    conn: &Connection,
    peer: &DeviceKey,
    doc: DocId,
) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT state FROM sync_states WHERE peer = ?1 AND doc_id = ?2")?
        .query_row(params![peer.as_bytes(), doc.as_bytes()], |r| r.get(0))
        .optional()?)
}

/// Saves the Automerge sync state for a peer and document.
pub(crate) fn save_sync_state(
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
pub(crate) type RelayScope<'a> = (&'a [u8; 32], &'a [u8; 32]);

/// The heads of a document's changes this device knows the relay holds in a network.
pub(crate) fn relay_pushed(
    conn: &Connection,
    at: RelayScope<'_>,
    doc: DocId,
) -> Result<Vec<[u8; 32]>> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached(
            "SELECT heads FROM relay_pushed WHERE relay = ?1 AND network = ?2 AND doc_id = ?3",
        )?
        .query_row(params![&at.0[..], &at.1[..], doc.as_bytes()], |r| r.get(0))
        .optional()?;
    bytes.map_or(Ok(Vec::new()), |b| decode_heads(&b))
}

/// [`relay_pushed`] for every document this device has exchanged with the relay in a network.
pub(crate) fn relay_pushed_all(
    conn: &Connection,
    at: RelayScope<'_>,
) -> Result<HashMap<DocId, Vec<[u8; 32]>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT doc_id, heads FROM relay_pushed WHERE relay = ?1 AND network = ?2",
    )?;
    let rows = stmt.query_map(params![&at.0[..], &at.1[..]], |r| {
        Ok((doc_id_col(r, 0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (id, heads) = row?;
        out.insert(id, decode_heads(&heads)?);
    }
    Ok(out)
}

/// Records the heads of a document's changes the relay holds in a network.
pub(crate) fn set_relay_pushed(
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

/// Forgets what the relay held of a document (its blobs were deleted there): it is pushed whole
/// again, if it is held.
pub(crate) fn forget_relay_pushed(
    tx: &Transaction<'_>,
    at: RelayScope<'_>,
    doc: DocId,
) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM relay_pushed WHERE relay = ?1 AND network = ?2 AND doc_id = ?3",
    )?
    .execute(params![&at.0[..], &at.1[..], doc.as_bytes()])?;
    Ok(())
}

/// Lets go of a document's pulled blobs kept here to open later (the relay deleted it).
pub(crate) fn drop_deferred_of(
    tx: &Transaction<'_>,
    at: RelayScope<'_>,
    doc: &[u8; 32],
) -> Result<()> {
    tx.prepare_cached("DELETE FROM relay_deferred WHERE relay = ?1 AND network = ?2 AND doc = ?3")?
        .execute(params![&at.0[..], &at.1[..], &doc[..]])?;
    Ok(())
}

/// Asks the relays to delete a document's blobs in a network (both by their relay ids), and
/// lets go of its pulled blobs kept here to open later (ciphertext of what is erased).
pub(crate) fn queue_relay_deletion(
    tx: &Transaction<'_>,
    network: &[u8; 32],
    doc: &[u8; 32],
) -> Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO relay_deletions (network, doc) VALUES (?1, ?2)")?
        .execute(params![&network[..], &doc[..]])?;
    tx.prepare_cached("DELETE FROM relay_deferred WHERE network = ?1 AND doc = ?2")?
        .execute(params![&network[..], &doc[..]])?;
    Ok(())
}

/// The documents of a network (relay ids) whose blobs the relays should delete.
pub(crate) fn relay_deletions(conn: &Connection, network: &[u8; 32]) -> Result<Vec<[u8; 32]>> {
    let mut stmt =
        conn.prepare_cached("SELECT doc FROM relay_deletions WHERE network = ?1 ORDER BY doc")?;
    let rows = stmt.query_map([&network[..]], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for row in rows {
        if let Ok(d) = <[u8; 32]>::try_from(row?) {
            out.push(d);
        }
    }
    Ok(out)
}

/// A relay deleted a document's blobs.
pub(crate) fn relay_deletion_done(
    tx: &Transaction<'_>,
    network: &[u8; 32],
    doc: &[u8; 32],
) -> Result<()> {
    tx.prepare_cached("DELETE FROM relay_deletions WHERE network = ?1 AND doc = ?2")?
        .execute(params![&network[..], &doc[..]])?;
    Ok(())
}

/// Most blobs kept per relay and network to open later, and their most bytes: a relay that
/// alters key ids (or keys that never come) costs this much, not more.
pub(crate) const MAX_DEFERRED: (usize, usize) = (256, 32 << 20);

/// A pulled blob kept to open once its key comes: its number, its document (as the relay knows
/// it), its ciphertext.
pub(crate) type DeferredBlob = (u64, [u8; 32], Vec<u8>);

/// Keeps a pulled blob that no key held here opens yet, making room in the network's share
/// ([`MAX_DEFERRED`]) by letting go of the oldest kept blobs: their numbers (empty when there
/// was room). None, and nothing kept, for a blob larger than the whole share.
///
/// The oldest go first, the network document's blobs (`network_doc`, the document as the relay
/// knows it) last: a blob whose key comes at all comes within a few syncs, while garbage a
/// member pushed (made-up key ids: it never opens) stays and ages; and a network document's
/// blob may bring the keys of many others. Letting the newest go
/// instead let a member fill the share once, for good, and every later blob waiting for a new
/// epoch's key was lost (an attacker review). A member who keeps pushing garbage after each
/// blob that waits can still crowd it out: the relay's quota per member bounds that (issue 12).
pub(crate) fn defer_blob(
    tx: &Transaction<'_>,
    at: RelayScope<'_>,
    (seq, doc, bytes): (u64, &[u8; 32], &[u8]),
    network_doc: &[u8; 32],
) -> Result<Option<Vec<u64>>> {
    let (max_count, max_bytes) = MAX_DEFERRED;
    if bytes.len() > max_bytes {
        return Ok(None);
    }
    let mut let_go = Vec::new();
    loop {
        let (count, size): (i64, i64) = tx
            .prepare_cached(
                "SELECT count(*), coalesce(sum(length(bytes)), 0) FROM relay_deferred
                 WHERE relay = ?1 AND network = ?2",
            )?
            .query_row(params![&at.0[..], &at.1[..]], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if (count as usize) < max_count && size as usize + bytes.len() <= max_bytes {
            break;
        }
        let oldest: Option<i64> = tx
            .prepare_cached(
                "SELECT seq FROM relay_deferred WHERE relay = ?1 AND network = ?2
                 ORDER BY doc = ?3, seq LIMIT 1",
            )?
            .query_row(params![&at.0[..], &at.1[..], &network_doc[..]], |r| r.get(0))
            .optional()?;
        let Some(oldest) = oldest else { break };
        drop_deferred(tx, at, oldest as u64)?;
        let_go.push(oldest as u64);
    }
    tx.prepare_cached(
        "INSERT OR IGNORE INTO relay_deferred (relay, network, seq, doc, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![&at.0[..], &at.1[..], seq as i64, &doc[..], bytes])?;
    Ok(Some(let_go))
}

/// The blobs kept to open later, oldest first.
pub(crate) fn deferred_blobs(conn: &Connection, at: RelayScope<'_>) -> Result<Vec<DeferredBlob>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, doc, bytes FROM relay_deferred WHERE relay = ?1 AND network = ?2
         ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![&at.0[..], &at.1[..]], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, Vec<u8>>(2)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, doc, bytes) = row?;
        // Written here, 32 bytes; a row that is not is passed over (it opens nothing).
        if let Ok(doc) = <[u8; 32]>::try_from(doc.as_slice()) {
            out.push((seq as u64, doc, bytes));
        }
    }
    Ok(out)
}

/// Forgets a kept blob (opened, or refused for another reason than a missing key).
pub(crate) fn drop_deferred(tx: &Transaction<'_>, at: RelayScope<'_>, seq: u64) -> Result<()> {
    tx.prepare_cached("DELETE FROM relay_deferred WHERE relay = ?1 AND network = ?2 AND seq = ?3")?
        .execute(params![&at.0[..], &at.1[..], seq as i64])?;
    Ok(())
}

/// Whether a document is shared with a network (or is the network).
pub(crate) fn doc_in_network(conn: &Connection, doc: DocId, network: DocId) -> Result<bool> {
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
pub(crate) fn relay_cursor(conn: &Connection, relay: &[u8; 32], network: &[u8; 32]) -> Result<u64> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM relay_cursors WHERE relay = ?1 AND network = ?2")?
        .query_row(params![&relay[..], &network[..]], |r| r.get(0))
        .optional()?;
    Ok(seq.map_or(0, |s| s.max(0) as u64))
}

/// Records the last blob pulled from the relay for a network.
pub(crate) fn set_relay_cursor(
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
pub(crate) fn shared_networks(
    conn: &Connection,
    me: &DeviceKey,
    peer: &DeviceKey,
) -> Result<Vec<DocId>> {
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
pub(crate) fn network_inventory(
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

/// Networks `me` was removed from (and is not back in), by its own copy of their membership.
pub(crate) fn networks_removed_from(conn: &Connection, me: &DeviceKey) -> Result<Vec<DocId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.network_id FROM network_removed r WHERE r.device = ?1
           AND NOT EXISTS (SELECT 1 FROM network_devices d
                           WHERE d.network_id = r.network_id AND d.device = ?1)
         ORDER BY r.network_id",
    )?;
    let rows = stmt.query_map([me.as_bytes()], |r| doc_id_col(r, 0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Networks this device is in that `peer` was removed from.
pub(crate) fn networks_removing(
    conn: &Connection,
    me: &DeviceKey,
    peer: &DeviceKey,
) -> Result<Vec<DocId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT r.network_id FROM network_removed r
         JOIN network_devices d ON d.network_id = r.network_id
         WHERE d.device = ?1 AND r.device = ?2 ORDER BY r.network_id",
    )?;
    let rows = stmt.query_map(params![me.as_bytes(), peer.as_bytes()], |r| doc_id_col(r, 0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The member name a device key is known by in any network, if any.
pub(crate) fn member_name_for_device(
    conn: &Connection,
    device: &DeviceKey,
) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT member_name FROM network_devices WHERE device = ?1 LIMIT 1")?
        .query_row([device.as_bytes()], |r| r.get(0))
        .optional()?)
}
