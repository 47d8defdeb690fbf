//! Exchange: what sync drivers build on: heads, whole documents, changes since heads, and
//! merging what another device or a relay sent.

use super::*;

impl Device {
    /// A document's current heads.
    pub fn heads(&self, id: DocId) -> Result<Vec<ChangeHash>, Error> {
        let kind = self.kind_of(id)?;
        self.read(id, kind, |d| Ok(d.get_heads()))
    }

    /// A whole document, saved (compressed).
    pub fn export_document(&self, id: DocId) -> Result<Vec<u8>, Error> {
        {
            // A document stored as one snapshot is sent as stored: no load, no save. (Its
            // bytes were loaded and checked when they were written.)
            let w = self.writer.lock();
            let state = store::doc_state(&w.conn, id)?
                .ok_or(Error::NotFound { kind: "document", id: id.to_string() })?;
            if state.chunk_count == 1 {
                return Ok(store::load_bytes(&w.conn, id)?);
            }
        }
        let kind = self.kind_of(id)?;
        self.read(id, kind, |d| Ok(d.save()))
    }

    /// The changes of a document that are not covered by `heads`.
    pub fn changes_since(&self, id: DocId, heads: &[ChangeHash]) -> Result<Vec<u8>, Error> {
        let kind = self.kind_of(id)?;
        self.read(id, kind, |d| Ok(d.save_after(heads)))
    }

    /// Merges a whole document or a set of changes from another device. If the document is
    /// new here, `bytes` must hold it from its first change. The result is checked (schema,
    /// kind, id, shape) before anything is committed; a refusal leaves the store as it was.
    /// Derived tables are updated in the same transaction, exactly as for local edits.
    pub fn merge_document(&self, bytes: &[u8]) -> Result<MergeOutcome, Error> {
        let incoming = doc::load(bytes, &self.device_key()).map_err(Error::Merge)?;
        self.merge_loaded(incoming, bytes)
    }

    /// Merges a whole document already loaded from `bytes` (loaded once: loading is the
    /// expensive part of receiving a document).
    pub(crate) fn merge_loaded(
        &self,
        incoming: AutoCommit,
        bytes: &[u8],
    ) -> Result<MergeOutcome, Error> {
        let header = doc::header(&incoming).map_err(Error::Merge)?;
        self.merge_into(header.id, Some(header.kind), bytes, Some((incoming, None)))
    }

    /// Merges changes into a document this device already holds.
    pub fn merge_changes(&self, id: DocId, bytes: &[u8]) -> Result<MergeOutcome, Error> {
        self.merge_into(id, None, bytes, None)
    }

    /// Merges changes pulled from a relay into documents this device holds, all in one
    /// transaction (all or nothing), and records in it what the relay now holds of each: what
    /// this device knew it held, plus everything the sender had (the heads the blob carried:
    /// the sender pushed all of that or knew the relay held it). So a pulled change is never
    /// pushed back.
    pub(crate) fn merge_from_relay(
        &self,
        at: store::RelayScope<'_>,
        items: &[(DocId, &[u8], Vec<ChangeHash>)],
    ) -> Result<Vec<MergeOutcome>, Error> {
        let key = self.device_key();
        let mut w = self.writer.lock();
        let result = guard(|| {
            let Writer { conn, cache } = &mut *w;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut outcomes = Vec::with_capacity(items.len());
            for (id, bytes, at_relay) in items {
                outcomes.push(merge_in(&tx, cache, &key, *id, None, bytes, None)?);
                let known = store::relay_pushed(&tx, at, *id)?;
                let Some(cached) = cache.get_mut(id) else { continue };
                let doc = &mut cached.doc;
                if at_relay.iter().all(|h| doc.get_change_by_hash(h).is_some()) {
                    let mut held: Vec<ChangeHash> = known
                        .iter()
                        .map(|h| ChangeHash(*h))
                        .chain(at_relay.iter().copied())
                        .collect();
                    held.sort();
                    held.dedup();
                    // Everything here is at the relay: its heads say it exactly. Otherwise
                    // the union stands (not minimal, still exact for `save_after`).
                    if doc.get_changes_meta(&held).is_empty() {
                        held = doc.get_heads();
                    }
                    store::set_relay_pushed(&tx, at, *id, &heads_bytes(&held))?;
                }
            }
            tx.commit()?;
            for (id, _, _) in items {
                mark_persisted(cache, *id);
            }
            Ok(outcomes)
        });
        if result.is_err() {
            for (id, _, _) in items {
                w.cache.pop(id);
            }
        }
        drop(w);
        let outcomes = result?;
        let changed: Vec<DocId> = outcomes.iter().filter(|o| o.changed).map(|o| o.doc_id).collect();
        self.notify(&changed);
        Ok(outcomes)
    }
}
