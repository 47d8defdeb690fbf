//! Erasure: a document erased here by its creator or an admin, with a signed tombstone into
//! every network document it is shared with; tombstones that arrive applied; the erased list
//! that keeps stale copies out. See ARCHITECTURE.md, "Erasure and consent".

use super::*;
use crate::erasure::{Tombstone, erased_tag};

/// How long an erased document is refused here by default: longer than any phone stays
/// offline.
pub const DEFAULT_ERASURE_WINDOW_MS: i64 = 365 * 24 * 3600 * 1000;

impl Device {
    /// The member who created a case, learning point or meeting, as its document says.
    fn creator_of(&self, id: DocId, kind: DocKind) -> Result<MemberId, Error> {
        Ok(match kind {
            DocKind::Case => self.case(id)?.created_by.member,
            DocKind::LearningPoint => self.learning_point(id)?.created_by.member,
            DocKind::Meeting => self.meeting(id)?.created_by.member,
            DocKind::Network => {
                return Err(Error::Invalid(ValidationError::Invalid {
                    field: "document",
                    reason: "a network is left or removed, not erased".into(),
                }));
            }
        })
    }

    /// Erases a case (with its notes), learning point or meeting, on this device and, by a
    /// signed tombstone in every network document it is shared with, on every device that
    /// syncs afterwards. Only the member who created it or an admin of a network it is shared
    /// with may. The document, its derived rows, search entries, sync states and signatures
    /// are deleted with freed pages zeroed and the WAL folded in, so its text is gone from
    /// the store's files; for the erasure window no path takes a copy of it again.
    pub fn erase(&self, id: DocId, reason: &str) -> Result<(), Error> {
        let reason = model::required_short("reason", reason)?;
        let kind = self.kind_of(id)?;
        let creator = self.creator_of(id, kind)?;
        let me = self.device_key();
        let networks = store::networks_of_doc(&self.reader.lock(), id)?;
        let mut admin_somewhere = false;
        for n in &networks {
            if self.membership(*n).is_ok_and(|(m, _)| m.is_admin(&me)) {
                admin_somewhere = true;
            }
        }
        if creator != self.member && !admin_somewhere {
            return Err(Error::NotAllowed(
                "only the worker who created it or an admin of its network can erase it".into(),
            ));
        }
        let now = self.now();
        let tag = erased_tag(id);
        for n in &networks {
            let tombstone = Tombstone { tag, network: *n, by: me, at: now, reason: reason.clone() }
                .sign(self.identity.signing_key());
            self.edit(*n, DocKind::Network, |d, _, _| {
                if !doc::put_tombstone(d, &tag, &tombstone)? {
                    if doc::network_creator(d)? != Some(me) {
                        return Err(Error::NotAllowed(
                            "this network was made before erasure existed: its creator's \
                             device must erase (it adds what the network lacks)"
                                .into(),
                        ));
                    }
                    doc::ensure_key_maps(d)?;
                    doc::put_tombstone(d, &tag, &tombstone)?;
                }
                Ok(format!("Erased a document: {reason}"))
            })?;
        }
        let network = networks.first().copied().unwrap_or(id);
        self.erase_here(&[(tag, Some(id), network, now)])?;
        Ok(())
    }

    /// Deletes erased documents held here for good and records every one as erased (by tag,
    /// with the document held, if it is, and the network and time of the tombstone), then
    /// scrubs the file.
    fn erase_here(
        &self,
        docs: &[([u8; 32], Option<DocId>, DocId, Timestamp)],
    ) -> Result<Vec<DocId>, Error> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let until = self.now().saturating_add(self.erasure_window_ms);
        let ids: Vec<DocId> = docs.iter().filter_map(|(_, d, _, _)| *d).collect();
        let mut w = self.writer.lock();
        w.conn.pragma_update(None, "secure_delete", true)?;
        let done = (|| -> Result<(), Error> {
            let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            store::delete_documents(&tx, &ids)?;
            for (tag, _, network, at) in docs {
                store::mark_erased(&tx, tag, *network, *at, until)?;
            }
            tx.commit()?;
            store::scrub(&w.conn)?;
            Ok(())
        })();
        let off = w.conn.pragma_update(None, "secure_delete", false);
        for d in &ids {
            w.cache.pop(d);
        }
        drop(w);
        done?;
        off?;
        tracing::info!(documents = ids.len(), "erased");
        self.notify(&ids);
        Ok(ids)
    }

    /// Applies the tombstones of every network held here: a document a valid tombstone names
    /// is erased here. Valid: signed by an admin device of the network, or by a device of the
    /// member who created the document (checked only where the document is held; a document
    /// not held here is recorded as erased only on an admin's word), for a document shared
    /// with that network. Returns the documents deleted.
    pub(crate) fn apply_tombstones(&self) -> Result<Vec<DocId>, Error> {
        let now = self.now();
        {
            let mut w = self.writer.lock();
            let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            store::forget_erased_before(&tx, now)?;
            tx.commit()?;
        }
        // What is held here, by tag: a tombstone names a document by its tag only.
        let held: std::collections::HashMap<[u8; 32], (DocId, DocKind)> = self
            .document_ids()?
            .into_iter()
            .map(|(id, kind)| (erased_tag(id), (id, kind)))
            .collect();
        let mut todo: Vec<([u8; 32], Option<DocId>, DocId, Timestamp)> = Vec::new();
        let mut networks: Vec<DocId> =
            held.values().filter(|(_, k)| *k == DocKind::Network).map(|(id, _)| *id).collect();
        // In a fixed order, so that a simulation replays.
        networks.sort();
        for network in networks {
            // Each entry with the membership operations the network held where it was
            // written: a tombstone is judged by the membership it was made under, the same on
            // every device whenever it arrives (a removal that came later does not undo an
            // erasure some devices already applied; one that came before voids it everywhere).
            let entries = self.read(network, DocKind::Network, |d| {
                let mut out = Vec::new();
                for (key, bytes, at) in doc::tombstone_entries(d)? {
                    let Some(at) = at else { continue };
                    out.push((key, bytes, doc::ops_at(d, &[at])?));
                }
                Ok(out)
            })?;
            if entries.is_empty() {
                continue;
            }
            let root = store::network_root(&self.reader.lock(), network)?;
            for (key, bytes, ops) in entries {
                let m = crate::membership::resolve_network(network, root.as_ref(), &ops);
                let Ok(t) = Tombstone::open(&bytes) else {
                    tracing::debug!(%network, "a tombstone that does not open is ignored");
                    continue;
                };
                if hex::encode(t.tag) != key || t.network != network {
                    continue;
                }
                if todo.iter().any(|(tag, _, _, _)| *tag == t.tag)
                    || store::is_tag_erased(&self.reader.lock(), &t.tag)?
                {
                    continue;
                }
                let admin = m.is_admin(&t.by);
                let (valid, doc) = match held.get(&t.tag) {
                    Some((_, DocKind::Network)) => (false, None),
                    Some((id, kind)) => {
                        let shared =
                            store::networks_of_doc(&self.reader.lock(), *id)?.contains(&network);
                        let creator = self.creator_of(*id, *kind).ok();
                        let signer = m.member_of(&t.by).map(|(member, _)| member);
                        (shared && (admin || (creator.is_some() && creator == signer)), Some(*id))
                    }
                    None => (admin, None),
                };
                if valid {
                    todo.push((t.tag, doc, network, t.at));
                } else {
                    tracing::debug!(%network, "a tombstone by a device that may not erase is ignored");
                }
            }
        }
        self.erase_here(&todo)
    }
}
