//! Documents forked by one of their writers: a device that wrote two different changes with
//! one number in its chain of a document (a modified app, a thief with its key, or one store
//! copied onto two phones). Automerge holds one change per writer and number, so once each
//! history has spread to some devices, neither can take in the other, and every change made
//! on top of either (honest ones included) stays on its side for good.
//!
//! The rule, the same on every device: where the two histories part (the first change that
//! differs, by writer and number, with nothing before it that differs), the history whose
//! change there has the smaller hash keeps the document's id; the other gives way and goes on
//! as a new document, [`fork_id`] of the id and its parting change, which every device that holds it
//! computes alike. A device that holds the history that moves marks it so (the header names
//! the new id and the ids it went on from, in one change of its own), stores it under the new
//! id and lets the old id go; the kept history comes to it whole at the next exchange, as any
//! document it lacks. Both documents then sync everywhere as any other: every note written on
//! either side reaches every device, in one of the two.
//!
//! Only a parting proven by the writer's own signature moves anything: the arriving change
//! there must be covered by a signed head of its writer that came with it. A member cannot make
//! a device move a document by sending a change in another's name.
//!
//! A network's document cannot move (its id is the network's). Its content is entries of
//! write-once maps that each prove themselves (signed operations, sealed keys), so the device
//! whose history gives way takes the document back to where the two part, takes the other
//! history, and writes back, as its own change, the entries only its history held. (Meetings
//! also hand over signed operations whenever a network's document is refused, `Roster`, so
//! the membership converges even if this cannot run.)
//!
//! Owns the rule and the move; the merge paths call [`Device::split_fork`] when a merge failed
//! as forked.

use std::collections::{HashMap, HashSet};

use automerge::{AutoCommit, Change, ChangeHash};
use rusqlite::TransactionBehavior;

use super::{
    Device,
    engine::{Writer, as_merge_error, guard, load_cached, mark_persisted, merge_in},
    heads_bytes,
    projection::{Notes, index_doc},
};
use crate::{
    authorship::SignedHead,
    doc::{self, DocError},
    error::Error,
    ids::DocId,
    model::DocKind,
    store,
};

/// The id the history that moves goes on under: from the document's id and the change where
/// it parted from the history that keeps the id.
pub(crate) fn fork_id(doc: DocId, parting: &ChangeHash) -> DocId {
    let mut h = blake3::Hasher::new();
    h.update(b"nabij fork v1\0");
    h.update(doc.as_bytes());
    h.update(&parting.0);
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize().as_bytes()[..16]);
    DocId::from_bytes(id)
}

/// Where a held document and changes that arrived for it part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Parting {
    /// The writer (its actor id) and the number both its changes carry.
    pub actor: Vec<u8>,
    pub seq: u64,
    /// The held change there, and the arrived one.
    pub held: ChangeHash,
    pub arrived: ChangeHash,
}

/// What [`Device::split_fork`] did to the held history, which gave way.
#[derive(Debug)]
pub(super) enum Split {
    /// It went on under the fork's id; the document went back to where the histories part.
    Moved,
    /// A network's document went back to where the histories part (its id cannot change);
    /// the entries of its write-once maps that only the history that gave way held, to write
    /// back once the other history is in.
    Rewound(Vec<doc::WriteOnceEntry>),
}

/// Where `held` and the `arrived` changes part: among the arrived changes whose writer and
/// number the held document has as another change, those with no such change before them
/// (the partings' later consequences, such as an honest device's next change on each side,
/// are not partings); the first by writer and number if there are several. `None` if they do
/// not part.
pub(super) fn parting(held: &mut AutoCommit, arrived: &[Change]) -> Option<Parting> {
    let by_number: HashMap<(Vec<u8>, u64), ChangeHash> = held
        .get_changes_meta(&[])
        .into_iter()
        .map(|c| ((c.actor.to_bytes().to_vec(), c.seq), c.hash))
        .collect();
    let differing: HashMap<ChangeHash, ChangeHash> = arrived
        .iter()
        .filter_map(|c| {
            let mine = by_number.get(&(c.actor_id().to_bytes().to_vec(), c.seq()))?;
            (*mine != c.hash()).then_some((c.hash(), *mine))
        })
        .collect();
    let by_hash: HashMap<ChangeHash, &Change> = arrived.iter().map(|c| (c.hash(), c)).collect();
    differing
        .iter()
        .filter(|(a, _)| !earlier_among(**a, &by_hash, |h| differing.contains_key(h)))
        .filter_map(|(a, mine)| {
            let c = by_hash.get(a)?;
            Some(Parting {
                actor: c.actor_id().to_bytes().to_vec(),
                seq: c.seq(),
                held: *mine,
                arrived: *a,
            })
        })
        .min_by(|x, y| (&x.actor, x.seq).cmp(&(&y.actor, y.seq)))
}

/// Whether a change before `from` (following dependencies through `changes` only) is one that
/// `wanted` picks.
fn earlier_among(
    from: ChangeHash,
    changes: &HashMap<ChangeHash, &Change>,
    wanted: impl Fn(&ChangeHash) -> bool,
) -> bool {
    let mut seen = HashSet::new();
    let mut stack: Vec<ChangeHash> =
        changes.get(&from).map(|c| c.deps().to_vec()).unwrap_or_default();
    while let Some(h) = stack.pop() {
        if !seen.insert(h) {
            continue;
        }
        if wanted(&h) {
            return true;
        }
        if let Some(c) = changes.get(&h) {
            stack.extend_from_slice(c.deps());
        }
    }
    false
}

/// Whether the arrived change at the parting is its writer's, proven by a signed head of that
/// writer (valid under one of `ids`) that came with it and covers it: the head is that change
/// or a later one whose history, among the arrived changes, holds it.
pub(super) fn proven(
    p: &Parting,
    arrived: &[Change],
    offered: &[SignedHead],
    ids: &[DocId],
) -> bool {
    let by_hash: HashMap<ChangeHash, &Change> = arrived.iter().map(|c| (c.hash(), c)).collect();
    offered.iter().any(|h| {
        let head = ChangeHash(h.hash);
        h.actor.as_slice() == p.actor.as_slice()
            && by_hash
                .get(&head)
                .is_some_and(|c| c.actor_id().to_bytes() == h.actor.as_slice() && c.seq() == h.seq)
            && ids.iter().any(|id| h.verify(*id))
            && (head == p.arrived || earlier_among(head, &by_hash, |x| *x == p.arrived))
    })
}

/// The changes of `doc` at or after `parting` (it and everything that depends on it).
fn from_parting(
    doc: &mut AutoCommit,
    parting: ChangeHash,
) -> (Vec<ChangeHash>, HashSet<ChangeHash>) {
    let all: Vec<(ChangeHash, Vec<ChangeHash>)> =
        doc.get_changes_meta(&[]).into_iter().map(|c| (c.hash, c.deps)).collect();
    let mut lost = HashSet::from([parting]);
    // Changes come in causal order; one more pass finds nothing new if they did not.
    loop {
        let before = lost.len();
        for (h, deps) in &all {
            if deps.iter().any(|d| lost.contains(d)) {
                lost.insert(*h);
            }
        }
        if lost.len() == before {
            break;
        }
    }
    // The heads of what is left: kept changes no kept change depends on.
    let depended: HashSet<ChangeHash> = all
        .iter()
        .filter(|(h, _)| !lost.contains(h))
        .flat_map(|(_, deps)| deps.iter().copied())
        .collect();
    let heads = all
        .iter()
        .map(|(h, _)| *h)
        .filter(|h| !lost.contains(h) && !depended.contains(h))
        .collect();
    (heads, lost)
}

impl Device {
    /// After a merge into `id` failed as forked ([`DocError::Forked`]): if the held history is
    /// the one that gives way (see the module doc), in one transaction, moves it under its
    /// fork's id (a network's document: keeps what only it held of the write-once maps) and
    /// takes the document back to where the two histories part. The caller then merges what
    /// arrived again, and calls [`Device::after_retry`]. Nothing changes when the held history
    /// keeps the id or when the parting is not proven.
    pub(super) fn split_fork(
        &self,
        id: DocId,
        arrived: &[Change],
        offered: &[SignedHead],
    ) -> Result<Option<Split>, Error> {
        let key = self.device_key();
        let signing = self.identity.signing_key();
        let me = signing.verifying_key().to_bytes();
        let now = self.now();
        let mut w = self.writer.lock();
        let result = guard(|| {
            let Writer { conn, cache } = &mut *w;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(state) = store::doc_state(&tx, id)? else { return Ok(None) };
            let mut held = load_cached(cache, &tx, id, &state, &key)?.doc.clone();
            let Some(p) = parting(&mut held, arrived) else { return Ok(None) };
            if p.held < p.arrived {
                return Ok(None);
            }
            let mut lineage = doc::lineage(&held).map_err(Error::Merge)?;
            lineage.push(id);
            if !proven(&p, arrived, offered, &lineage) {
                return Ok(None);
            }
            let fork = fork_id(id, &p.held);
            let stored = store::signed_heads(&tx, id)?;
            let (kept_heads, moved) = from_parting(&mut held, p.held);
            let mut kept = held.fork_at(&kept_heads).map_err(|e| Error::Merge(e.into()))?;

            let split = if state.kind == DocKind::Network {
                // What only the history that gives way held of the write-once maps
                // (operations, sealed keys): written back once the other is in.
                let in_kept: HashSet<(&str, String)> = doc::write_once_entries(&kept)
                    .map_err(Error::Merge)?
                    .into_iter()
                    .map(|(m, k, _)| (m, k))
                    .collect();
                let mut only_here = doc::write_once_entries(&held).map_err(Error::Merge)?;
                only_here.retain(|(m, k, _)| !in_kept.contains(&(*m, k.clone())));
                Split::Rewound(only_here)
            } else {
                // The held history goes on under the fork's id, with the signatures over its
                // changes (valid under the ids it went on from) and this device's own over
                // the change that marks it.
                let before = held.get_heads();
                doc::mark_fork(&mut held, fork, &lineage, now).map_err(Error::Merge)?;
                let mut signed = stored.clone();
                let mine =
                    held.get_changes_meta(&before).into_iter().find(|c| c.actor.to_bytes() == me);
                if let Some(c) = mine {
                    signed.retain(|h| h.actor != me);
                    signed.push(SignedHead::sign(signing, fork, c.seq, c.hash.0));
                }
                merge_in(&tx, cache, &key, fork, Some(state.kind), &held.save(), None, &signed)?;
                mark_persisted(cache, fork);
                Split::Moved
            };

            // The document itself goes back to where the histories part, keeping the
            // signatures over what is left (this device's own signed again: its latest change
            // may have moved).
            cache.pop(&id);
            store::delete_documents(&tx, &[id])?;
            let mut left: Vec<SignedHead> =
                stored.into_iter().filter(|h| !moved.contains(&ChangeHash(h.hash))).collect();
            let newest_mine = kept
                .get_changes_meta(&[])
                .into_iter()
                .filter(|c| c.actor.to_bytes() == me)
                .max_by_key(|c| c.seq)
                .map(|c| (c.seq, c.hash));
            left.retain(|h| h.actor != me);
            if let Some((seq, hash)) = newest_mine {
                left.push(SignedHead::sign(signing, id, seq, hash.0));
            }
            let heads = kept.get_heads();
            store::insert_document(&tx, id, state.kind, &kept.save(), &heads_bytes(&heads))?;
            store::put_signed_heads(&tx, id, &left)?;
            index_doc(&tx, &kept, state.kind, Notes::All).map_err(as_merge_error)?;
            tx.commit()?;
            Ok(Some((split, fork)))
        });
        if result.is_err() {
            w.cache.pop(&id);
        }
        drop(w);
        let Some((split, fork)) = result? else { return Ok(None) };
        match &split {
            Split::Moved => {
                tracing::warn!(
                    doc = %id,
                    fork = %fork,
                    "a writer made two histories of a document: the one held here goes on as a \
                     new document"
                );
                self.notify(&[id, fork]);
            }
            Split::Rewound(_) => {
                tracing::warn!(
                    network = %id,
                    "a writer made two histories of a network's document: the one held here \
                     gives way"
                );
                self.notify(&[id]);
            }
        }
        Ok(Some(split))
    }

    /// What every merge path does with a refusal: a merge into `id` refused as forked may split
    /// the held history off ([`Device::split_fork`]); if it did, the caller merges what arrived
    /// again and calls [`Device::after_retry`].
    pub(super) fn after_refusal(
        &self,
        id: DocId,
        error: &Error,
        arrived: impl FnOnce() -> Result<Vec<Change>, DocError>,
        offered: &[SignedHead],
    ) -> Option<Split> {
        if !matches!(error, Error::Merge(DocError::Forked { .. })) {
            return None;
        }
        match arrived().map_err(Error::Merge).and_then(|c| self.split_fork(id, &c, offered)) {
            Ok(split) => split,
            Err(e) => {
                tracing::warn!(doc = %id, error = %e, "a forked document could not be split");
                None
            }
        }
    }

    /// After a split and the merge of what arrived, tried again (`merged`: whether it went
    /// in): a moved document whose other history did not go in after all is let go
    /// ([`Device::drop_parted`]); a network's document gets back the entries only its own
    /// history held, written by this device on top of the other history (or, if that did not
    /// go in, on what is left).
    pub(super) fn after_retry(&self, id: DocId, split: Split, merged: bool) {
        match split {
            Split::Moved if !merged => self.drop_parted(id),
            Split::Moved => {}
            Split::Rewound(entries) if entries.is_empty() => {}
            Split::Rewound(entries) => {
                let restored = self.edit(id, DocKind::Network, |d, _, now| {
                    let n = doc::restore_entries(d, &entries).map_err(Error::Document)?;
                    let message = format!("Wrote back {n} entries of a history that gave way");
                    doc::commit_pending(d, message, now).map_err(Error::Document)?;
                    Ok(n)
                });
                if let Err(e) = restored {
                    tracing::warn!(
                        network = %id,
                        error = %e,
                        "entries of a network's history that gave way were not written back"
                    );
                }
            }
        }
    }

    /// A document taken back to where two histories part, whose other history then did not
    /// merge after all: let go whole (it comes whole at the next exchange), so that nothing is
    /// written into it that the other history's holders would take for a second history of
    /// this device's own.
    pub(super) fn drop_parted(&self, id: DocId) {
        let mut w = self.writer.lock();
        let result = guard(|| {
            let Writer { conn, cache } = &mut *w;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            cache.pop(&id);
            store::delete_documents(&tx, &[id])?;
            tx.commit()?;
            Ok(())
        });
        drop(w);
        match result {
            Ok(()) => self.notify(&[id]),
            Err(e) => {
                tracing::warn!(doc = %id, error = %e, "a parted document could not be let go")
            }
        }
    }
}
