//! Documents forked by one of their writers: a device that wrote two different changes with
//! one number in its chain of a document (a modified app, a thief with its key, or one store
//! copied onto two phones). Automerge holds one change per writer and number, so once each
//! history has spread to some devices, neither can take in the other, and every change made
//! on top of either (honest ones included) stays on its side for good.
//!
//! The rule, the same on every device: where the two histories part (the first change that
//! differs, by writer and number, with nothing before it that differs), the history whose
//! change there has the smaller hash keeps the document's id; the other gives way and goes on
//! as a new document, [`fork_id`] of the id and its parting change, which every device that
//! holds it computes alike. A device that holds the history that gives way, in one
//! transaction: marks it so (the header names the new id and the ids it went on from, in one
//! change of its own) and stores it under the new id, takes the document back to where the two
//! part, and merges the other history into it; if that does not go in, nothing changes. Both
//! documents then sync everywhere as any other: every note written on either side reaches every
//! device, in one of the two. A device that keeps its history sends it whole to a peer whose
//! history gives way (the session's `TwoHistories` refusal), so that the peer can take it.
//!
//! A split-off document new here is taken only if this device sees the two histories itself
//! (it holds the document split from, with the other change there: [`check_split_off`]), so no
//! member can put a document's history, signatures and all, under an id of its choosing.
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
    engine::{
        Writer, as_merge_error, check_changes, check_merged, guard, load_cached, mark_persisted,
        merge_in,
    },
    heads_bytes,
    projection::{Notes, index_doc},
};
use crate::{
    authorship::SignedHead,
    doc::{self, DocError},
    error::Error,
    ids::{DeviceKey, DocId},
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

/// Checks a split-off document new here (one whose header names ids it went on from): its id
/// must be [`fork_id`] of the document it split from and one of its own changes, and this
/// device must hold that document with another change of the same writer and number there
/// (the other history). Otherwise a member could put any document's history, signatures and
/// all, under an id of its choosing: a copy that shows its authors sharing it where they never
/// did. A device that does not hold the other history yet takes the split once it does.
pub(super) fn check_split_off(
    tx: &rusqlite::Transaction<'_>,
    doc: &mut AutoCommit,
    id: DocId,
    lineage: &[DocId],
    me: &DeviceKey,
) -> Result<(), Error> {
    let refuse = |why: &str| Err(Error::Merge(DocError::Unauthorized(why.into())));
    let Some(parent) = lineage.last().copied() else { return Ok(()) };
    let Some(parting) = doc
        .get_changes_meta(&[])
        .into_iter()
        .find(|c| fork_id(parent, &c.hash) == id)
        .map(|c| (c.actor.to_bytes().to_vec(), c.seq, c.hash))
    else {
        return refuse("a split-off document whose id is not its split's");
    };
    if store::doc_state(tx, parent)?.is_none() {
        return refuse("a split-off document whose other history is not held here");
    }
    let bytes = store::load_bytes(tx, parent)?;
    let mut other = doc::load(&bytes, me)
        .map_err(|source| Error::StoredDocument { id: parent.to_string(), source })?;
    let two = other.get_changes_meta(&[]).into_iter().any(|c| {
        c.actor.to_bytes() == parting.0.as_slice() && c.seq == parting.1 && c.hash != parting.2
    });
    if !two {
        return refuse("a split-off document whose other history is not held here");
    }
    Ok(())
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
    /// the one that gives way (see the module doc), in one transaction: moves it under its
    /// fork's id (a network's document: keeps what only it held of the write-once maps), takes
    /// the document back to where the two histories part, merges what arrived
    /// (`arrived_bytes`, whole documents or changes), and for a network's document writes the
    /// kept entries back on top. All of it or nothing: if what arrived does not go in after
    /// all, nothing changes. Whether it did. Nothing changes either when the held history
    /// keeps the id or when the parting is not proven. (A writer removed here splits a document
    /// as any other: refusing to would leave the halves apart for good; the split keeps both
    /// histories, the thief's under the id if its change there has the smaller hash.)
    pub(super) fn split_fork(
        &self,
        id: DocId,
        arrived: &[Change],
        arrived_bytes: &[u8],
        offered: &[SignedHead],
    ) -> Result<bool, Error> {
        let key = self.device_key();
        let signing = self.identity.signing_key();
        let me = signing.verifying_key().to_bytes();
        let now = self.now();
        let mut w = self.writer.lock();
        let mut fork = None;
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
            let stored = store::signed_heads(&tx, id)?;
            let (kept_heads, moved) = from_parting(&mut held, p.held);
            let mut kept = held
                .fork_at(&kept_heads)
                .map_err(|e| Error::Merge(e.into()))?
                .with_actor(automerge::ActorId::from(me.to_vec()));

            // What arrived goes on top of what is kept, checked as on any merge (against what
            // is stored: the signatures and networks held here). If it does not go in, nothing
            // of this stays.
            let mut merged = kept.clone();
            doc::apply_chunks(&mut merged, arrived_bytes).map_err(Error::Merge)?;
            let missing = merged.get_missing_deps(&[]).len();
            if missing > 0 {
                return Err(Error::Merge(DocError::MissingDependencies(missing)));
            }
            // A split-off document parting again before the change that made it one: if what
            // arrived does not make it this document again, this device does (the same header
            // values, written again), under its own signature.
            let mut mine_offered = offered.to_vec();
            if !doc::header(&merged).is_ok_and(|h| h.id == id) {
                let before = merged.get_heads();
                let earlier = &lineage[..lineage.len() - 1];
                doc::mark_fork(&mut merged, id, earlier, now).map_err(Error::Merge)?;
                if let Some(c) =
                    merged.get_changes_meta(&before).into_iter().find(|c| c.actor.to_bytes() == me)
                {
                    mine_offered.push(SignedHead::sign(signing, id, c.seq, c.hash.0));
                }
            }
            check_merged(&merged, id, state.kind)?;
            let taken = check_changes(
                &tx,
                &mut merged,
                id,
                state.kind,
                &kept.get_heads(),
                &mine_offered,
                &key,
            )?;

            let write_back = if state.kind == DocKind::Network {
                // What only the history that gives way held of the write-once maps
                // (operations, sealed keys): written back once the other is in.
                let in_kept: HashSet<(&str, String)> = doc::write_once_entries(&kept)
                    .map_err(Error::Merge)?
                    .into_iter()
                    .map(|(m, k, _)| (m, k))
                    .collect();
                let mut only_here = doc::write_once_entries(&held).map_err(Error::Merge)?;
                only_here.retain(|(m, k, _)| !in_kept.contains(&(*m, k.clone())));
                // A sealed key only its sealer writes (the others refuse it from anyone else):
                // this device writes back its own; the other sealers write back theirs when
                // their history gives way, and an admin seals again what a device lacks.
                let mine = format!(".{}", DeviceKey::from_bytes(me));
                only_here.retain(|(m, k, _)| *m != "keys" || k.ends_with(&mine));
                only_here
            } else {
                // The held history goes on under the fork's id, with the signatures over its
                // changes (valid under the ids it went on from) and this device's own over
                // the change that marks it.
                let to = fork_id(id, &p.held);
                let before = held.get_heads();
                doc::mark_fork(&mut held, to, &lineage, now).map_err(Error::Merge)?;
                let mut signed = stored.clone();
                let mine =
                    held.get_changes_meta(&before).into_iter().find(|c| c.actor.to_bytes() == me);
                if let Some(c) = mine {
                    signed.retain(|h| h.actor != me);
                    signed.push(SignedHead::sign(signing, to, c.seq, c.hash.0));
                }
                if store::doc_state(&tx, to)?.is_some() {
                    // Moved here before (this history came back under the old id since).
                    merge_in(&tx, cache, &key, to, Some(state.kind), &held.save(), None, &signed)?;
                } else {
                    // This device's own history, checked when it came: stored as it is (the
                    // check of a split-off document new here asks for the other history, which
                    // this device does not hold yet).
                    let heads = held.get_heads();
                    store::insert_document(
                        &tx,
                        to,
                        state.kind,
                        &held.save(),
                        &heads_bytes(&heads),
                    )?;
                    store::put_signed_heads(&tx, to, &signed)?;
                    index_doc(&tx, &held, state.kind, Notes::All).map_err(as_merge_error)?;
                }
                fork = Some(to);
                Vec::new()
            };

            // A network's document: the entries only the history that gave way held, written
            // back on top by this device.
            if !write_back.is_empty() {
                let n = doc::restore_entries(&mut merged, &write_back).map_err(Error::Merge)?;
                let message = format!("Wrote back {n} entries of a history that gave way");
                doc::commit_pending(&mut merged, message, now).map_err(Error::Merge)?;
            }

            // The document is now what is kept and what arrived: stored whole, with the
            // signatures over what is left, those that came with what arrived, and this
            // device's own over its newest change (its latest may have moved).
            cache.pop(&id);
            store::delete_documents(&tx, &[id])?;
            let mut signed: Vec<SignedHead> =
                stored.into_iter().filter(|h| !moved.contains(&ChangeHash(h.hash))).collect();
            signed.extend(taken);
            // A device whose newest change moved has its signature over what is left only in
            // what arrived (the other side's copy of it).
            for h in offered {
                if signed.iter().any(|s| s.actor == h.actor) {
                    continue;
                }
                let held = merged.get_change_by_hash(&ChangeHash(h.hash)).is_some_and(|c| {
                    c.actor_id().to_bytes() == h.actor.as_slice() && c.seq() == h.seq
                });
                if held && lineage.iter().any(|l| h.verify(*l)) {
                    signed.push(h.clone());
                }
            }
            signed.retain(|h| h.actor != me);
            let newest_mine = merged
                .get_changes_meta(&[])
                .into_iter()
                .filter(|c| c.actor.to_bytes() == me)
                .max_by_key(|c| c.seq)
                .map(|c| (c.seq, c.hash));
            if let Some((seq, hash)) = newest_mine {
                signed.push(SignedHead::sign(signing, id, seq, hash.0));
            }
            let heads = merged.get_heads();
            store::insert_document(&tx, id, state.kind, &merged.save(), &heads_bytes(&heads))?;
            store::put_signed_heads(&tx, id, &signed)?;
            index_doc(&tx, &merged, state.kind, Notes::All).map_err(as_merge_error)?;
            tx.commit()?;
            if let Some(to) = fork {
                mark_persisted(cache, to);
            }
            Ok(Some(()))
        });
        if result.is_err() {
            w.cache.pop(&id);
            if let Some(to) = fork {
                w.cache.pop(&to);
            }
        }
        drop(w);
        if result?.is_none() {
            return Ok(false);
        }
        match fork {
            Some(to) => {
                tracing::warn!(
                    doc = %id,
                    fork = %to,
                    "a writer made two histories of a document: the one held here goes on as a \
                     new document"
                );
                self.notify(&[id, to]);
            }
            None => {
                tracing::warn!(
                    network = %id,
                    "a writer made two histories of a network's document: the one held here \
                     gives way"
                );
                self.notify(&[id]);
            }
        }
        Ok(true)
    }

    /// What every merge path does with a refusal: a merge into `id` refused as forked may split
    /// the held history off and take what arrived ([`Device::split_fork`]). Whether it did
    /// (the caller may then run its merge again, which finds the changes in).
    pub(super) fn after_refusal(
        &self,
        id: DocId,
        error: &Error,
        arrived_bytes: &[u8],
        offered: &[SignedHead],
    ) -> bool {
        if !matches!(error, Error::Merge(DocError::Forked { .. })) {
            return false;
        }
        self.take_other_history(id, arrived_bytes, offered)
    }

    /// [`Device::split_fork`] for whole documents or changes, `arrived_bytes`, refused as
    /// another history of `id`. Whether the held history gave way and they went in.
    pub(super) fn take_other_history(
        &self,
        id: DocId,
        arrived_bytes: &[u8],
        offered: &[SignedHead],
    ) -> bool {
        let split = doc::changes_in(arrived_bytes)
            .map_err(Error::Merge)
            .and_then(|c| self.split_fork(id, &c, arrived_bytes, offered));
        match split {
            Ok(done) => done,
            Err(e) => {
                tracing::info!(doc = %id, error = %e, "a document with two histories stays so");
                false
            }
        }
    }
}
