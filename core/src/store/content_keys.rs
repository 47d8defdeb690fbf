//! Documents' content keys (the keys their relay blobs are encrypted under), each sealed under
//! a network key of an epoch, and which of them each relay holds.
//!
//! They live here, not in the network document: Automerge keeps every value a document ever
//! held, so a key put there could never be erased, and a blob of an erased document that
//! survived somewhere (a relay that missed the deletion) could be opened for ever. A row here
//! is deleted with the document. Knows nothing of what a key opens; the device checks a key
//! (it opens under a network key and is the key its id names) before it is put here.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Result, sync_state::RelayScope};
use crate::crypto::KeyId;

/// A content key as kept: its id, the epoch whose network key seals it, the sealed key.
pub(crate) type StoredContentKey = (KeyId, u32, Vec<u8>);

/// Keeps a content key of the document `doc` (relay ids) sealed under `epoch`'s network key.
pub(crate) fn put_content_key(
    tx: &Transaction<'_>,
    network: &[u8; 32],
    doc: &[u8; 32],
    key: &StoredContentKey,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO content_keys (network, doc, key_id, epoch, sealed)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![&network[..], &doc[..], &key.0[..], key.1, &key.2])?;
    Ok(())
}

/// The content keys kept for `doc` (relay ids), by key id and epoch.
pub(crate) fn content_keys_of(
    conn: &Connection,
    network: &[u8; 32],
    doc: &[u8; 32],
) -> Result<Vec<StoredContentKey>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key_id, epoch, sealed FROM content_keys WHERE network = ?1 AND doc = ?2
         ORDER BY key_id, epoch",
    )?;
    let rows = stmt.query_map(params![&network[..], &doc[..]], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, u32>(1)?, r.get::<_, Vec<u8>>(2)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, epoch, sealed) = row?;
        // A row is only ever written with a key id of the right length.
        if let Ok(id) = KeyId::try_from(id.as_slice()) {
            out.push((id, epoch, sealed));
        }
    }
    Ok(out)
}

/// Deletes the content keys of `doc` (relay ids) and what this device knew of the relays
/// holding them: the document was erased here, or left the network.
pub(crate) fn delete_content_keys(
    tx: &Transaction<'_>,
    network: &[u8; 32],
    doc: &[u8; 32],
) -> Result<()> {
    tx.prepare_cached("DELETE FROM content_keys WHERE network = ?1 AND doc = ?2")?
        .execute(params![&network[..], &doc[..]])?;
    tx.prepare_cached("DELETE FROM relay_keys WHERE network = ?1 AND doc = ?2")?
        .execute(params![&network[..], &doc[..]])?;
    Ok(())
}

/// Whether the relay holds the content key `key` of `doc`.
pub(crate) fn relay_holds_key(
    conn: &Connection,
    at: RelayScope<'_>,
    doc: &[u8; 32],
    key: &KeyId,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM relay_keys WHERE relay = ?1 AND network = ?2 AND doc = ?3 AND key_id = ?4",
        )?
        .query_row(params![&at.0[..], &at.1[..], &doc[..], &key[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Records that the relay holds the content key `key` of `doc`.
pub(crate) fn set_relay_key(
    tx: &Transaction<'_>,
    at: RelayScope<'_>,
    doc: &[u8; 32],
    key: &KeyId,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO relay_keys (relay, network, doc, key_id) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![&at.0[..], &at.1[..], &doc[..], &key[..]])?;
    Ok(())
}

/// Forgets the keys a relay held of `doc`: it deleted the document's blobs.
pub(crate) fn forget_relay_keys(
    tx: &Transaction<'_>,
    at: RelayScope<'_>,
    doc: &[u8; 32],
) -> Result<()> {
    tx.prepare_cached("DELETE FROM relay_keys WHERE relay = ?1 AND network = ?2 AND doc = ?3")?
        .execute(params![&at.0[..], &at.1[..], &doc[..]])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_per_document_and_deleted_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, _, _) = crate::store::open(&dir.path().join("s.db"), None).unwrap();
        let (net, a, b) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let relay = [9u8; 32];
        let tx = conn.transaction().unwrap();
        put_content_key(&tx, &net, &a, &([5; 8], 0, vec![1, 2])).unwrap();
        put_content_key(&tx, &net, &a, &([5; 8], 0, vec![7, 7])).unwrap();
        put_content_key(&tx, &net, &a, &([6; 8], 1, vec![3])).unwrap();
        put_content_key(&tx, &net, &b, &([5; 8], 0, vec![4])).unwrap();
        set_relay_key(&tx, (&relay, &net), &a, &[5; 8]).unwrap();
        tx.commit().unwrap();
        let kept = content_keys_of(&conn, &net, &a).unwrap();
        // The first sealing of a key is kept; another of the same key and epoch is ignored.
        assert_eq!(kept, vec![([5; 8], 0, vec![1, 2]), ([6; 8], 1, vec![3])]);
        assert!(relay_holds_key(&conn, (&relay, &net), &a, &[5; 8]).unwrap());
        assert!(!relay_holds_key(&conn, (&relay, &net), &a, &[6; 8]).unwrap());
        let tx = conn.transaction().unwrap();
        delete_content_keys(&tx, &net, &a).unwrap();
        tx.commit().unwrap();
        assert!(content_keys_of(&conn, &net, &a).unwrap().is_empty());
        assert!(!relay_holds_key(&conn, (&relay, &net), &a, &[5; 8]).unwrap());
        assert_eq!(content_keys_of(&conn, &net, &b).unwrap().len(), 1);
    }
}
