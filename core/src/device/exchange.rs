//! Exchange: what sync drivers build on: heads, whole documents, changes since heads, and
//! merging what another device or a relay sent.

use std::collections::BTreeMap;

use super::*;

/// Changes pulled from a relay for one document: its id, the Automerge bytes, the heads the
/// sender had, and the signatures that cover the changes.
pub(crate) type RelayMerge<'a> = (DocId, &'a [u8], Vec<ChangeHash>, Vec<SignedHead>);

impl Device {
    /// The signed heads to send with a document's changes. For a document shared with several
    /// networks, each comes with proof that its device is in one of them (the receiver may not
    /// hold that network; see [`authorship::MembershipProof`]).
    pub(crate) fn signed_heads_to_send(&self, doc: DocId) -> Result<Vec<SignedHead>, Error> {
        let r = self.reader.lock();
        let mut heads = store::signed_heads(&r, doc)?;
        let networks = store::networks_of_doc(&r, doc)?;
        if networks.len() < 2 {
            return Ok(heads);
        }
        let mut proofs: BTreeMap<DocId, authorship::MembershipProof> = BTreeMap::new();
        for h in &mut heads {
            let theirs = store::networks_of_device(&r, &h.device())?;
            // Otherwise the proof it came with (if any) is passed on as it came.
            let Some(n) = theirs.into_iter().find(|n| networks.contains(n)) else { continue };
            let proof = match proofs.entry(n) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    // Without names: the receiver is not in that network, and needs only to
                    // know who its devices are.
                    let ops = store::network_ops(&r, n)?;
                    let ops = ops.iter().map(|o| o.blinded().to_vec()).collect();
                    e.insert(authorship::MembershipProof { network: *n.as_bytes(), ops })
                }
            };
            h.proof = Some(proof.clone());
        }
        Ok(heads)
    }

    /// A document's current heads.
    pub fn heads(&self, id: DocId) -> Result<Vec<ChangeHash>, Error> {
        let kind = self.kind_of(id)?;
        self.read(id, kind, |d| Ok(d.get_heads()))
    }

    /// A whole document, saved (compressed), with the signatures that cover its changes (see
    /// [`crate::authorship`]): what [`Device::merge_document`] takes on another device.
    pub fn export_document(&self, id: DocId) -> Result<Vec<u8>, Error> {
        let bytes = self.save_document(id)?;
        let signed = self.signed_heads_to_send(id)?;
        Ok(authorship::seal_envelope(&signed, &bytes))
    }

    /// A whole document, saved: Automerge bytes only.
    pub(crate) fn save_document(&self, id: DocId) -> Result<Vec<u8>, Error> {
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

    /// The changes of a document that are not covered by `heads`, with the signatures that
    /// cover them.
    pub fn changes_since(&self, id: DocId, heads: &[ChangeHash]) -> Result<Vec<u8>, Error> {
        let kind = self.kind_of(id)?;
        let bytes = self.read(id, kind, |d| Ok(d.save_after(heads)))?;
        let signed = self.signed_heads_to_send(id)?;
        Ok(authorship::seal_envelope(&signed, &bytes))
    }

    /// Merges a whole document from another device, as [`Device::export_document`] gave it.
    /// If the document is new here, `bytes` must hold it from its first change. Every change
    /// must be signed by the device it claims to be by, a device of a network the document is
    /// shared with; the result is checked (schema, kind, id, shape) before anything is
    /// committed; a refusal leaves the store as it was. Derived tables are updated in the same
    /// transaction, exactly as for local edits.
    pub fn merge_document(&self, bytes: &[u8]) -> Result<MergeOutcome, Error> {
        let (signed, bytes) =
            authorship::open_envelope(bytes).map_err(|e| Error::Merge(DocError::Corrupt(e)))?;
        let incoming = doc::load(bytes, &self.device_key()).map_err(Error::Merge)?;
        let header = doc::header(&incoming).map_err(Error::Merge)?;
        self.merge_into(header.id, Some(header.kind), bytes, Some((incoming, None)), &signed)
    }

    /// Merges changes, as [`Device::changes_since`] gave them, into a document this device
    /// already holds (checked as [`Device::merge_document`] checks).
    pub fn merge_changes(&self, id: DocId, bytes: &[u8]) -> Result<MergeOutcome, Error> {
        let (signed, bytes) =
            authorship::open_envelope(bytes).map_err(|e| Error::Merge(DocError::Corrupt(e)))?;
        self.merge_into(id, None, bytes, None, &signed)
    }

    /// Merges changes pulled from a relay into documents this device holds, all in one
    /// transaction (all or nothing), and records in it what the relay now holds of each: what
    /// this device knew it held, plus everything the sender had (the heads the blob carried:
    /// the sender pushed all of that or knew the relay held it). So a pulled change is never
    /// pushed back.
    pub(crate) fn merge_from_relay(
        &self,
        at: store::RelayScope<'_>,
        items: &[RelayMerge<'_>],
    ) -> Result<Vec<MergeOutcome>, Error> {
        let key = self.device_key();
        let mut w = self.writer.lock();
        let result = guard(|| {
            let Writer { conn, cache } = &mut *w;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut outcomes = Vec::with_capacity(items.len());
            for (id, bytes, at_relay, signed) in items {
                outcomes.push(merge_in(&tx, cache, &key, *id, None, bytes, None, signed)?);
                let known = store::relay_pushed(&tx, at, *id)?;
                let Some(cached) = cache.get_mut(id) else { continue };
                let doc = &mut cached.doc;
                if at_relay.iter().all(|h| doc.get_change_by_hash(h).is_some())
                    && carried_what_it_claims(doc, &known, at_relay, bytes)?
                {
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
            for (id, ..) in items {
                mark_persisted(cache, *id);
            }
            Ok(outcomes)
        });
        if result.is_err() {
            for (id, ..) in items {
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

/// Whether a pulled blob carried every change its sender's heads (`at_relay`) cover that this
/// device did not know the relay held (`known`). The heads are the sender's word that the relay
/// holds all they cover: a member could otherwise claim a colleague's note it got at a meeting
/// and never pushed, and this device, believing the relay held it, would never push it either
/// (an attacker review). Where the word does not hold, what the relay holds stays as known
/// here, and this device pushes the rest (at worst again).
fn carried_what_it_claims(
    doc: &mut automerge::AutoCommit,
    known: &[[u8; 32]],
    at_relay: &[ChangeHash],
    bytes: &[u8],
) -> Result<bool, Error> {
    let known: Vec<ChangeHash> = known.iter().map(|h| ChangeHash(*h)).collect();
    let beyond: std::collections::HashSet<ChangeHash> =
        doc.get_changes_meta(at_relay).into_iter().map(|c| c.hash).collect();
    let claimed: Vec<ChangeHash> = doc
        .get_changes_meta(&known)
        .into_iter()
        .map(|c| c.hash)
        .filter(|h| !beyond.contains(h))
        .collect();
    if claimed.is_empty() {
        return Ok(true);
    }
    let sent: std::collections::HashSet<ChangeHash> =
        doc::changes_in(bytes).map_err(Error::Merge)?.iter().map(|c| c.hash()).collect();
    Ok(claimed.iter().all(|h| sent.contains(h)))
}
