//! What the relay keeps: each network's registered roster and its blobs in arrival order,
//! behind [`Storage`] so a server database can replace SQLite for large deployments.
//!
//! Contract every implementation keeps: [`Storage::put_blobs`] returns only once the blobs are
//! durable (a crash after it returned loses none of them); sequence numbers only grow, and a
//! blob becomes visible to pulls in sequence order, never behind one already pulled; a blob
//! pushed twice to one network is stored once. The methods' docs say the rest; `conformance`
//! (tests only) checks all of it, and every implementation runs it.
//!
//! Owns the storage contract and an in-memory implementation for tests and simulations.
//! Knows nothing of the protocol's checks (`service`) or of sockets.

use std::collections::{BTreeMap, HashMap};

use nabij_relay_proto::{
    BlobId, NetworkId, PublicKey, RelayDocId, roster::SignedRoster, wire::PulledBlob,
};
use parking_lot::Mutex;

/// A storage failure. The request is refused as `Unavailable`; nothing half-written remains.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
    }
}

/// A roster as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoster {
    /// As the device signed it.
    pub signed: SignedRoster,
    /// Its time of issue.
    pub issued_at: i64,
    /// The devices the network's membership names, active or removed, sorted and each once:
    /// those that find the roster when they ask.
    pub devices: Vec<PublicKey>,
    /// Those of `devices` that are active in the membership: they may push, pull and register.
    pub active: Vec<PublicKey>,
    /// Every signed membership operation the relay was given for the network (without names),
    /// in the order it took them, the network's genesis first.
    pub ops: Vec<Vec<u8>>,
    /// The latest roster of each other active device whose registration was taken for its
    /// operations only (the registered roster's signer being an admin), sorted by signer:
    /// listed after the registered one, so that the keys it seals still reach the others (a
    /// new key epoch started by an admin demoted since) and so do its operations.
    pub contributed: Vec<SignedRoster>,
}

/// A blob to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlob {
    /// Its network.
    pub network: NetworkId,
    /// Its document (relay id).
    pub doc: RelayDocId,
    /// BLAKE3 of `bytes`.
    pub id: BlobId,
    /// Ciphertext.
    pub bytes: Vec<u8>,
}

/// What became of one blob of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Durable, at this sequence number (an earlier one if it was already stored).
    Stored(u64),
    /// Not stored: the network's quota would be exceeded.
    OverQuota,
}

/// A relay's storage.
pub trait Storage: Send + Sync + 'static {
    /// The network's registered roster, exactly as registered.
    fn roster(&self, network: &NetworkId) -> Result<Option<StoredRoster>, StorageError>;
    /// Registers `roster` as the network's, replacing any other (whether it is newer is the
    /// caller's rule).
    fn put_roster(&self, network: &NetworkId, roster: &StoredRoster) -> Result<(), StorageError>;
    /// Every registered roster that lists `device`, ordered by network id, each followed by the
    /// network's contributed rosters ([`StoredRoster::contributed`]).
    fn rosters_listing(&self, device: &PublicKey) -> Result<Vec<SignedRoster>, StorageError>;
    /// Stores blobs, each network's within `quota` bytes, durably, before returning; one
    /// outcome per blob, in order. Sequence numbers are above 0 and grow in batch order. A blob
    /// its network already stores (same id, this batch included) keeps its number and counts
    /// once, even over the quota. Otherwise each blob, in order, is refused if it would take
    /// its network's stored bytes over `quota`; a refused blob stores and counts nothing.
    fn put_blobs(&self, blobs: &[NewBlob], quota: u64) -> Result<Vec<PutOutcome>, StorageError>;
    /// The network's blobs after `after`, oldest first, while they fit `max_bytes` and
    /// `max_count` (stopping at the first that does not), but at least one whatever the
    /// budgets; and whether more follow (never with an empty page).
    fn blobs_after(
        &self,
        network: &NetworkId,
        after: u64,
        max_bytes: u64,
        max_count: usize,
    ) -> Result<(Vec<PulledBlob>, bool), StorageError>;
    /// Bytes of blobs the network stores.
    fn usage(&self, network: &NetworkId) -> Result<u64, StorageError>;
    /// Deletes every blob of `doc` in `network`, durably, before returning, and frees their
    /// bytes from the network's usage. If any blob went, replaces the document's deletion
    /// marker (if an earlier deletion left one) by one at the next sequence number: a blob with
    /// no bytes and the id [`deletion_marker_id`], which counts nothing against the quota. If
    /// none went, changes nothing. Returns how many blobs went (the marker not counted).
    fn delete_doc(&self, network: &NetworkId, doc: &RelayDocId) -> Result<u64, StorageError>;
}

pub use nabij_relay_proto::wire::deletion_marker_id;

#[cfg(test)]
pub(crate) mod conformance;

/// Storage in memory: for tests and deterministic simulations. Not durable, by definition.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    rosters: HashMap<NetworkId, StoredRoster>,
    blobs: BTreeMap<u64, NewBlob>,
    by_network: HashMap<NetworkId, BTreeMap<u64, ()>>,
    ids: HashMap<(NetworkId, BlobId), u64>,
    usage: HashMap<NetworkId, u64>,
    next: u64,
}

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Storage for MemoryStorage {
    fn roster(&self, network: &NetworkId) -> Result<Option<StoredRoster>, StorageError> {
        Ok(self.inner.lock().rosters.get(network).cloned())
    }

    fn put_roster(&self, network: &NetworkId, roster: &StoredRoster) -> Result<(), StorageError> {
        self.inner.lock().rosters.insert(*network, roster.clone());
        Ok(())
    }

    fn rosters_listing(&self, device: &PublicKey) -> Result<Vec<SignedRoster>, StorageError> {
        let m = self.inner.lock();
        let mut found: Vec<(&NetworkId, &StoredRoster)> =
            m.rosters.iter().filter(|(_, r)| r.devices.contains(device)).collect();
        found.sort_by_key(|(n, _)| **n);
        Ok(found
            .into_iter()
            .flat_map(|(_, r)| std::iter::once(&r.signed).chain(&r.contributed).cloned())
            .collect())
    }

    fn put_blobs(&self, blobs: &[NewBlob], quota: u64) -> Result<Vec<PutOutcome>, StorageError> {
        let mut m = self.inner.lock();
        let mut out = Vec::with_capacity(blobs.len());
        for b in blobs {
            if let Some(&seq) = m.ids.get(&(b.network, b.id)) {
                out.push(PutOutcome::Stored(seq));
                continue;
            }
            let used = m.usage.get(&b.network).copied().unwrap_or(0);
            if used + b.bytes.len() as u64 > quota {
                out.push(PutOutcome::OverQuota);
                continue;
            }
            m.next += 1;
            let seq = m.next;
            m.ids.insert((b.network, b.id), seq);
            *m.usage.entry(b.network).or_default() += b.bytes.len() as u64;
            m.by_network.entry(b.network).or_default().insert(seq, ());
            m.blobs.insert(seq, b.clone());
            out.push(PutOutcome::Stored(seq));
        }
        Ok(out)
    }

    fn blobs_after(
        &self,
        network: &NetworkId,
        after: u64,
        max_bytes: u64,
        max_count: usize,
    ) -> Result<(Vec<PulledBlob>, bool), StorageError> {
        let m = self.inner.lock();
        let Some(seqs) = m.by_network.get(network) else { return Ok((Vec::new(), false)) };
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for (&seq, ()) in seqs.range(after.saturating_add(1)..) {
            let b = &m.blobs[&seq];
            if !out.is_empty()
                && (out.len() >= max_count || bytes + b.bytes.len() as u64 > max_bytes)
            {
                return Ok((out, true));
            }
            bytes += b.bytes.len() as u64;
            out.push(PulledBlob { seq, doc: b.doc, bytes: b.bytes.clone() });
        }
        Ok((out, false))
    }

    fn usage(&self, network: &NetworkId) -> Result<u64, StorageError> {
        Ok(self.inner.lock().usage.get(network).copied().unwrap_or(0))
    }

    fn delete_doc(&self, network: &NetworkId, doc: &RelayDocId) -> Result<u64, StorageError> {
        let mut guard = self.inner.lock();
        let m = &mut *guard;
        let Some(seqs) = m.by_network.get_mut(network) else { return Ok(0) };
        let gone: Vec<u64> = seqs
            .keys()
            .copied()
            .filter(|s| m.blobs.get(s).is_some_and(|b| b.doc == *doc))
            .collect();
        if !gone.iter().any(|s| m.blobs.get(s).is_some_and(|b| !b.bytes.is_empty())) {
            return Ok(0);
        }
        let mut count = 0;
        for seq in &gone {
            seqs.remove(seq);
            if let Some(b) = m.blobs.remove(seq) {
                m.ids.remove(&(b.network, b.id));
                if !b.bytes.is_empty() {
                    count += 1;
                    if let Some(u) = m.usage.get_mut(network) {
                        *u = u.saturating_sub(b.bytes.len() as u64);
                    }
                }
            }
        }
        if count > 0 {
            m.next += 1;
            let seq = m.next;
            let marker = NewBlob {
                network: *network,
                doc: *doc,
                id: deletion_marker_id(doc),
                bytes: Vec::new(),
            };
            m.ids.insert((*network, marker.id), seq);
            seqs.insert(seq, ());
            m.blobs.insert(seq, marker);
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStorage;

    super::conformance::storage_conformance_tests!(MemoryStorage::new);
}
