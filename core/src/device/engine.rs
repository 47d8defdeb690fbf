//! The write engine behind the façade: the cache of loaded documents, creating, editing and
//! reading a document, merging foreign changes, and persisting each change as a chunk with
//! its derived rows in one transaction. The only code that holds both a document and the
//! store's writer; the kind files (`cases`, `networks`, …) reach documents only through it.

use super::*;

/// A loaded document and the heads the store holds of it: the next chunk is everything after
/// them (`save_after`), because `load` resets Automerge's own incremental cursor.
pub(super) struct Cached {
    pub(super) doc: AutoCommit,
    pub(super) persisted: Vec<ChangeHash>,
}

pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) cache: LruCache<DocId, Cached>,
}

impl Device {
    /// Creates a document: `init` writes its first change into an empty document.
    pub(super) fn create(
        &self,
        kind: DocKind,
        init: impl FnOnce(&mut AutoCommit, DocId, &Author, Timestamp) -> Result<(), DocError>,
    ) -> Result<DocId, Error> {
        self.create_as(kind, DocId::random_from(&self.randomness), init)
    }

    /// Creates a document under an id the caller derived (a network's commits to its genesis).
    pub(super) fn create_as(
        &self,
        kind: DocKind,
        id: DocId,
        init: impl FnOnce(&mut AutoCommit, DocId, &Author, Timestamp) -> Result<(), DocError>,
    ) -> Result<DocId, Error> {
        let mut doc = doc::new_doc(&self.device_key());
        init(&mut doc, id, &self.author(), self.now())?;
        let mut w = self.writer.lock();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let heads = self.insert_new_in(&tx, &mut doc, id, kind)?;
        tx.commit()?;
        w.cache.put(id, Cached { doc, persisted: heads });
        drop(w);
        self.notify(&[id]);
        Ok(id)
    }

    /// Stores a document made here, new to the store, in the caller's transaction: its
    /// sharing checked, signed and indexed. Its heads.
    pub(super) fn insert_new_in(
        &self,
        tx: &Transaction<'_>,
        doc: &mut AutoCommit,
        id: DocId,
        kind: DocKind,
    ) -> Result<Vec<ChangeHash>, Error> {
        if kind != DocKind::Network {
            may_share_into(tx, doc, kind, &[], &self.device_key())?;
        }
        let bytes = doc.save();
        let heads = doc.get_heads();
        store::insert_document(tx, id, kind, &bytes, &heads_bytes(&heads))?;
        sign_own_head(tx, doc, id, self.identity.signing_key(), &[])?;
        index_doc(tx, doc, kind, Notes::All)?;
        Ok(heads)
    }

    /// Changes a stored document: `edit` makes its Automerge change; the chunk, the derived
    /// rows and the COMMIT follow. On any failure the transaction rolls back and the loaded
    /// document is dropped from the cache, so no half-applied edit survives in memory either.
    pub(super) fn edit<R>(
        &self,
        id: DocId,
        kind: DocKind,
        edit: impl FnOnce(&mut AutoCommit, &mut Touched, Timestamp) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let now = self.now();
        let mut w = self.writer.lock();
        let result = guard(|| self.edit_locked(&mut w, id, kind, now, edit));
        if result.is_err() {
            w.cache.pop(&id);
        }
        drop(w);
        let (r, changed) = result?;
        if changed {
            self.notify(&[id]);
        }
        Ok(r)
    }

    pub(super) fn edit_locked<R>(
        &self,
        w: &mut Writer,
        id: DocId,
        kind: DocKind,
        now: Timestamp,
        edit: impl FnOnce(&mut AutoCommit, &mut Touched, Timestamp) -> Result<R, Error>,
    ) -> Result<(R, bool), Error> {
        let Writer { conn, cache } = w;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (r, heads) = self.edit_in(&tx, cache, id, kind, now, edit)?;
        if let Some(heads) = &heads {
            tx.commit()?;
            set_persisted(cache, id, heads);
        }
        Ok((r, heads.is_some()))
    }

    /// One document's edit inside the caller's transaction, so that several documents change
    /// together (a case unshared and the tombstones that say so). Returns the document's new
    /// heads if it changed; once the transaction commits, the caller marks them persisted in
    /// the cache ([`set_persisted`]), and on failure drops the document from the cache.
    pub(super) fn edit_in<R>(
        &self,
        tx: &Transaction<'_>,
        cache: &mut LruCache<DocId, Cached>,
        id: DocId,
        kind: DocKind,
        now: Timestamp,
        edit: impl FnOnce(&mut AutoCommit, &mut Touched, Timestamp) -> Result<R, Error>,
    ) -> Result<(R, Option<Vec<ChangeHash>>), Error> {
        let state = stored_state(tx, id, kind)?;
        let cached = load_cached(cache, tx, id, &state, &self.device_key())?;
        let mut touched = Touched::default();
        let r = edit(&mut cached.doc, &mut touched, now)?;
        if kind != DocKind::Network {
            let before = store::networks_of_doc(tx, id)?;
            may_share_into(tx, &cached.doc, kind, &before, &self.device_key())?;
        }
        if !persist(tx, id, &state, cached)? {
            return Ok((r, None));
        }
        let key = self.identity.signing_key();
        sign_own_head(tx, &mut cached.doc, id, key, &cached.persisted)?;
        index_doc(tx, &cached.doc, kind, Notes::Some(touched))?;
        Ok((r, Some(cached.doc.get_heads())))
    }

    /// Reads a stored document.
    pub(super) fn read<R>(
        &self,
        id: DocId,
        kind: DocKind,
        read: impl FnOnce(&mut AutoCommit) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut w = self.writer.lock();
        let Writer { conn, cache } = &mut *w;
        // One read transaction: another process may write or compact between the statements.
        let tx = conn.transaction()?;
        let state = stored_state(&tx, id, kind)?;
        let cached = load_cached(cache, &tx, id, &state, &self.device_key())?;
        read(&mut cached.doc)
    }

    /// Marks an agreement of a case or meeting done or open.
    pub(super) fn set_agreement_done_in(
        &self,
        id: DocId,
        kind: DocKind,
        agreement: ItemId,
        done: bool,
    ) -> Result<(), Error> {
        self.edit(id, kind, |d, _, now| {
            if doc::set_agreement_done(d, agreement, done, now)? {
                Ok(())
            } else {
                Err(Error::NotFound { kind: "agreement", id: agreement.to_string() })
            }
        })
    }

    pub(super) fn merge_into(
        &self,
        id: DocId,
        kind: Option<DocKind>,
        bytes: &[u8],
        preloaded: Option<(AutoCommit, Option<Derived>)>,
        offered: &[SignedHead],
    ) -> Result<MergeOutcome, Error> {
        let mut w = self.writer.lock();
        let mut result = guard(|| self.merge_locked(&mut w, id, kind, bytes, preloaded, offered));
        if result.is_err() {
            w.cache.pop(&id);
        }
        drop(w);
        // Two histories of the document: if the one held here gave way, what arrived went in
        // with it; the merge runs again to say so.
        if let Err(e) = &result
            && self.after_refusal(id, e, bytes, offered)
        {
            let mut w = self.writer.lock();
            result = guard(|| self.merge_locked(&mut w, id, kind, bytes, None, offered));
            if result.is_err() {
                w.cache.pop(&id);
            }
        }
        let outcome = result?;
        if outcome.changed {
            self.notify(&[id]);
        }
        Ok(outcome)
    }

    pub(super) fn merge_locked(
        &self,
        w: &mut Writer,
        id: DocId,
        kind: Option<DocKind>,
        bytes: &[u8],
        preloaded: Option<(AutoCommit, Option<Derived>)>,
        offered: &[SignedHead],
    ) -> Result<MergeOutcome, Error> {
        let key = self.device_key();
        let Writer { conn, cache } = w;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcome = merge_in(&tx, cache, &key, id, kind, bytes, preloaded, offered)?;
        if outcome.changed {
            tx.commit()?;
            mark_persisted(cache, id);
        }
        Ok(outcome)
    }
}

/// Runs a write so that a panic inside it (a bug, or in a dependency) becomes an error: the
/// transaction rolls back when unwinding drops it, and the caller evicts the document.
pub(super) fn guard<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            Err(Error::Internal(what))
        }
    }
}

/// After a commit: the document cached for `id` (if it still is) now matches the store at
/// `heads`.
pub(super) fn set_persisted(cache: &mut LruCache<DocId, Cached>, id: DocId, heads: &[ChangeHash]) {
    if let Some(c) = cache.peek_mut(&id) {
        c.persisted = heads.to_vec();
    }
}

/// What the store holds of a document the caller expects to be of `kind`.
fn stored_state(conn: &Connection, id: DocId, kind: DocKind) -> Result<DocState, Error> {
    let state = store::doc_state(conn, id)?
        .ok_or(Error::NotFound { kind: kind_name(kind), id: id.to_string() })?;
    if state.kind != kind {
        return Err(Error::Document(DocError::WrongKind {
            id: id.to_string(),
            found: state.kind,
            expected: kind,
        }));
    }
    Ok(state)
}

pub(super) fn kind_name(kind: DocKind) -> &'static str {
    match kind {
        DocKind::Case => "case",
        DocKind::LearningPoint => "learning point",
        DocKind::Meeting => "meeting",
        DocKind::Network => "network",
    }
}

pub(super) fn as_merge_error(e: Error) -> Error {
    match e {
        Error::Document(d) => Error::Merge(d),
        e => e,
    }
}

/// A merged document must still be the same document, of the same kind, readable by us.
/// After a commit: the cached document's state is what the store now holds.
pub(super) fn mark_persisted(cache: &mut LruCache<DocId, Cached>, id: DocId) {
    if let Some(c) = cache.get_mut(&id) {
        c.persisted = c.doc.get_heads();
    }
}

/// Merges `bytes` (whole document or changes) into document `id` inside `tx`, without
/// committing. The caller commits and then calls [`mark_persisted`], or drops the cache entry
/// on error.
// The engine's three (transaction, cache, key), the document's id and kind, and what arrived
// (bytes, maybe loaded already, and the signatures that came with them).
#[allow(clippy::too_many_arguments)]
pub(super) fn merge_in(
    tx: &Transaction<'_>,
    cache: &mut LruCache<DocId, Cached>,
    key: &DeviceKey,
    id: DocId,
    kind: Option<DocKind>,
    bytes: &[u8],
    preloaded: Option<(AutoCommit, Option<Derived>)>,
    offered: &[SignedHead],
) -> Result<MergeOutcome, Error> {
    // Before anything is loaded: changes to an erased document are refused as that, not as
    // changes whose history is missing (it was deleted).
    if store::is_erased(tx, id)? {
        return Err(Error::Merge(DocError::Erased(id.to_string())));
    }
    let state = store::doc_state(tx, id)?;
    let (cached, state, before) = match state {
        Some(state) => {
            if kind.is_some_and(|k| k != state.kind) {
                return Err(Error::Merge(DocError::WrongKind {
                    id: id.to_string(),
                    found: kind.unwrap_or(state.kind),
                    expected: state.kind,
                }));
            }
            let cached = load_cached(cache, tx, id, &state, key)?;
            if bytes.is_empty() {
                return Ok(MergeOutcome { doc_id: id, kind: state.kind, changed: false });
            }
            let before = cached.doc.get_heads();
            doc::apply_chunks(&mut cached.doc, bytes).map_err(Error::Merge)?;
            // Changes whose predecessors are missing would wait in Automerge's queue, in
            // memory only: refuse them so the sender knows they did not land.
            let missing = cached.doc.get_missing_deps(&[]).len();
            if missing > 0 {
                return Err(Error::Merge(DocError::MissingDependencies(missing)));
            }
            (cached, state, before)
        }
        None => {
            let kind = kind.ok_or(Error::NotFound { kind: "document", id: id.to_string() })?;
            let (mut doc, derived) = match preloaded {
                Some(d) => d,
                None => (doc::load(bytes, key).map_err(Error::Merge)?, None),
            };
            check_merged(&doc, id, kind)?;
            let keep = check_changes(tx, &mut doc, id, kind, &[], offered, key)?;
            store::put_signed_heads(tx, id, &keep)?;
            let heads = doc.get_heads();
            // The bytes loaded whole (a partial load is an error), so they are the document:
            // stored as they came, without saving it again.
            store::insert_document(tx, id, kind, bytes, &heads_bytes(&heads))?;
            match derived {
                Some(d) => write_derived(tx, &d).map_err(as_merge_error)?,
                None => index_doc(tx, &doc, kind, Notes::All).map_err(as_merge_error)?,
            }
            cache.put(id, Cached { doc, persisted: heads });
            return Ok(MergeOutcome { doc_id: id, kind, changed: true });
        }
    };
    check_merged(&cached.doc, id, state.kind)?;
    let keep = check_changes(tx, &mut cached.doc, id, state.kind, &before, offered, key)?;
    store::put_signed_heads(tx, id, &keep)?;
    let changed = persist(tx, id, &state, cached)?;
    if changed {
        index_doc(tx, &cached.doc, state.kind, Notes::All).map_err(as_merge_error)?;
    }
    Ok(MergeOutcome { doc_id: id, kind: state.kind, changed })
}

pub(super) fn check_merged(doc: &AutoCommit, id: DocId, kind: DocKind) -> Result<(), Error> {
    let h = doc::header(doc).map_err(Error::Merge)?;
    if h.id != id {
        return Err(Error::Merge(DocError::Malformed(format!(
            "document says it is {}, not {id}",
            h.id
        ))));
    }
    if h.kind != kind {
        return Err(Error::Merge(DocError::WrongKind {
            id: id.to_string(),
            found: h.kind,
            expected: kind,
        }));
    }
    Ok(())
}

/// Checks what the changes since `before` (everything, for a document new here) are and do,
/// before they are stored, on every merge path (whole documents, changes, sync messages, relay
/// blobs): each is covered by a signature of the device it claims to be by (the stored signed
/// heads, or those `offered` with it), that device is or was in a network the document is
/// shared with, and a network document's write-once maps stay as they were. Returns the
/// offered signed heads to keep.
pub(super) fn check_changes(
    tx: &Transaction<'_>,
    doc: &mut AutoCommit,
    id: DocId,
    kind: DocKind,
    before: &[ChangeHash],
    offered: &[SignedHead],
    me: &DeviceKey,
) -> Result<Vec<SignedHead>, Error> {
    check_changes_over(tx, doc, id, kind, before, offered, me, || Ok(store::signed_heads(tx, id)?))
}

/// [`check_changes`] for a whole document, as if this device did not hold it (none of its
/// stored signatures count): what a device that lacks the document would refuse of it.
pub(super) fn check_changes_as_new(
    tx: &Transaction<'_>,
    doc: &mut AutoCommit,
    id: DocId,
    kind: DocKind,
    offered: &[SignedHead],
    me: &DeviceKey,
) -> Result<Vec<SignedHead>, Error> {
    check_changes_over(tx, doc, id, kind, &[], offered, me, || Ok(Vec::new()))
}

/// [`check_changes`], with the signed heads held here for the document read by `held`.
#[allow(clippy::too_many_arguments)]
fn check_changes_over(
    tx: &Transaction<'_>,
    doc: &mut AutoCommit,
    id: DocId,
    kind: DocKind,
    before: &[ChangeHash],
    offered: &[SignedHead],
    me: &DeviceKey,
    held: impl FnOnce() -> Result<Vec<SignedHead>, Error>,
) -> Result<Vec<SignedHead>, Error> {
    // An erased document is taken again by no path (meeting, relay, merge call): the one check
    // they all pass through.
    if store::is_erased(tx, id)? {
        return Err(Error::Merge(DocError::Erased(id.to_string())));
    }
    let refuse = |why: String| Error::Merge(DocError::Unauthorized(why));
    // The newest change number of each device among the new changes: a signature over a later
    // (or that) change of the same device covers it, through the hash chain.
    let mut newest: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    // The new changes by hash: a signed head counts only for one of them, of that device and
    // number. (A device's earlier changes were here before; their numbers are lower than any
    // new change of the same device, so heads held here never cover a new change.)
    let mut new_changes: std::collections::HashMap<[u8; 32], ([u8; 32], u64)> =
        std::collections::HashMap::new();
    // A document has one beginning: its first change, by the device that made it, which
    // decides who may erase it. A second change without dependencies (Automerge takes one)
    // would let its writer pass for the document's maker on a device that lists it first.
    let mut roots = 0;
    for c in doc.get_changes_meta(before) {
        roots += usize::from(c.deps.is_empty());
        if roots > usize::from(before.is_empty()) {
            return Err(refuse("a second first change: a document has one beginning".into()));
        }
        let actor = <[u8; 32]>::try_from(c.actor.to_bytes())
            .map_err(|_| refuse("a change by an actor that is not a device key".into()))?;
        let n = newest.entry(actor).or_default();
        *n = (*n).max(c.seq);
        new_changes.insert(c.hash.0, (actor, c.seq));
    }
    if newest.is_empty() {
        return Ok(Vec::new());
    }
    let stored = held()?;
    // A forked document's changes from before the fork were signed under the ids its history
    // went on from (`forks`): taken only from a split this device can see for itself.
    let lineage = doc::lineage(doc).map_err(Error::Merge)?;
    if before.is_empty() {
        if !lineage.is_empty() {
            super::forks::check_split_off(tx, doc, id, &lineage, me)?;
        }
    } else if doc::lineage_at(doc, before).map_err(Error::Merge)? != lineage
        // (A document taken back to before the change that split it off another, by a split
        // of its own, takes that change again from what arrives: `forks`.)
        && doc::header_at(doc, before).is_ok_and(|h| h.id == id)
    {
        return Err(refuse("a change to the ids a document went on from".into()));
    }
    let keep: Vec<SignedHead> = offered
        .iter()
        .filter(|h| {
            new_changes.get(&h.hash) == Some(&(h.actor, h.seq))
                && (h.verify(id) || lineage.iter().any(|l| h.verify(*l)))
        })
        .cloned()
        .collect();
    // Signatures over changes held here, of devices this device holds none for: a document
    // taken back to where two histories part (`forks`) lost the heads that covered its
    // devices' changes from the history that gave way; the other side's cover what is left,
    // and this device needs them to hand the document on whole.
    let unsigned_here: Vec<&SignedHead> = offered
        .iter()
        .filter(|h| !newest.contains_key(&h.actor) && !stored.iter().any(|s| s.actor == h.actor))
        .collect();
    let mut refreshed: Vec<SignedHead> = Vec::new();
    for h in unsigned_here {
        let held = doc
            .get_change_by_hash(&ChangeHash(h.hash))
            .is_some_and(|c| c.actor_id().to_bytes() == h.actor.as_slice() && c.seq() == h.seq);
        if held
            && (h.verify(id) || lineage.iter().any(|l| h.verify(*l)))
            && !refreshed.iter().any(|r| r.actor == h.actor)
        {
            refreshed.push(h.clone());
        }
    }
    // Who may write is judged by the networks the document was shared with before these
    // changes (what this device stored), not by what they say: a change must not bring the
    // network that then lets it in. A document new here: the networks it says it is shared
    // with (the session or relay it came through checked that one of them is shared).
    let networks = if before.is_empty() {
        doc::shared_with(doc, kind).map_err(Error::Merge)?
    } else {
        store::networks_of_doc(tx, id)?
    };
    // A document new here must be shared with a network this device holds: a device waiting
    // for a network it accepted (not held yet) takes no document under it from anyone until
    // the network itself has come (the meeting and the relay bring it first), so no one can
    // plant a document on it with the network's id and a network of their own.
    if before.is_empty() && kind != DocKind::Network {
        let mut held = false;
        for n in &networks {
            held |= store::network_held(tx, *n)?;
        }
        if !held {
            return Err(refuse("a document shared with no network held here".into()));
        }
    }
    let roster = match kind {
        DocKind::Network => {
            let nd = doc::read_network(doc).map_err(Error::Merge)?;
            let (m, network) = super::networks::resolve_network(tx, &nd)?;
            check_new_ops(tx, id, &nd, &m)?;
            Some(network)
        }
        _ => None,
    };
    // Sharing into a network takes a device of that network: every operation that put a
    // network this device holds into the document's networks (and is new here) is by a device
    // of that network. A member of one network (or a device it made up, proven by a network of
    // its own) cannot put a document before another network's members, nor ride on a change
    // one of them made to the document. Networks not held here are judged by their own
    // devices.
    if kind != DocKind::Network {
        let was = if before.is_empty() { Vec::new() } else { networks.clone() };
        for n in doc::shared_with(doc, kind).map_err(Error::Merge)? {
            if was.contains(&n) || !store::network_held(tx, n)? {
                continue;
            }
            for actor in doc::sharers(doc, kind, n).map_err(Error::Merge)? {
                let ok = match DeviceKey::from_slice(actor.to_bytes()) {
                    Some(a) => a == *me || store::device_of_networks(tx, &[n], &a)?,
                    None => false,
                };
                if !ok {
                    return Err(refuse(format!(
                        "shared with network {n} by a device not of that network"
                    )));
                }
            }
        }
    }
    for (actor, seq) in newest {
        let covered = |h: &&SignedHead| h.actor == actor && h.seq >= seq;
        let signed = keep.iter().any(|h| covered(&h));
        let device = DeviceKey::from_bytes(actor);
        if !signed {
            return Err(refuse(format!(
                "changes by device {} carry no valid signature of that device",
                device.short()
            )));
        }
        let may_write = device == *me
            || match &roster {
                Some(n) => {
                    n.members.iter().any(|m| m.devices.contains(&device))
                        || n.removed.iter().any(|r| r.device == device)
                }
                None => store::device_of_networks(tx, &networks, &device)?,
            }
            // A device of a network the document is shared with that this device does not
            // hold: the proof that came with its signature shows it, from the network's own
            // signed operations.
            // (A proof held here for this device's earlier changes counts too.)
            // Only for a network not held here: a held network's own operations say who its
            // devices are (a proof resolved on its own would believe a removed admin's
            // operations backdated before its removal).
            || keep.iter().chain(stored.iter()).filter(|h| h.actor == actor).filter_map(|h| h.proof.as_ref()).any(|p| {
                let n = DocId::from_bytes(p.network);
                networks.contains(&n)
                    && !store::network_held(tx, n).unwrap_or(true)
                    && p.devices().is_some_and(|d| d.contains(&device))
            });
        if !may_write {
            return Err(refuse(format!(
                "device {} is not in a network the document is shared with",
                device.short()
            )));
        }
    }
    if kind == DocKind::Network {
        doc::check_write_once(doc, before).map_err(Error::Merge)?;
    }
    Ok(keep.into_iter().chain(refreshed).collect())
}

/// Refuses to share a document into a network this device is not an active device of: the
/// networks' other devices would refuse it (see [`check_changes`]), and a member of one network
/// has no say over what another network's members see.
fn may_share_into(
    tx: &Transaction<'_>,
    doc: &AutoCommit,
    kind: DocKind,
    before: &[DocId],
    me: &DeviceKey,
) -> Result<(), Error> {
    for n in doc::shared_with(doc, kind)?.into_iter().filter(|n| !before.contains(n)) {
        // A device that accepted its invitation to a network is one of its devices (the
        // inviting admin signed it in) before the network document reaches it.
        if !store::device_active_in(tx, n, me)? && !store::invitation_accepted(tx, n)? {
            return Err(Error::NotAllowed(format!(
                "this device is not in network {n}: only its members share documents with it"
            )));
        }
    }
    Ok(())
}

/// Most membership operations one network keeps.
pub(super) const MAX_NETWORK_OPS: usize = crate::membership::MAX_OPS;

/// Refuses membership operations a change brings that can never count: not made by an admin of
/// what its author had seen (a plain member, an outsider), so no one but an admin can make every
/// device store and resolve more operations (the rule's cost grows with their number); and any
/// beyond [`MAX_NETWORK_OPS`].
fn check_new_ops(
    tx: &Transaction<'_>,
    id: DocId,
    nd: &doc::NetworkDoc,
    m: &crate::membership::Membership,
) -> Result<(), Error> {
    let refuse = |why: String| Error::Merge(DocError::Unauthorized(why));
    let stored = store::network_ops(tx, id)?;
    let seen: std::collections::BTreeSet<_> = stored.iter().map(|o| o.id()).collect();
    let new: Vec<&crate::membership::SignedOp> =
        nd.ops.iter().filter(|o| !seen.contains(&o.id())).collect();
    if new.is_empty() {
        return Ok(());
    }
    if !crate::membership::within_cap(stored.iter().chain(new.iter().copied())) {
        return Err(refuse(format!("more than {MAX_NETWORK_OPS} membership operations")));
    }
    // One that does not count now may still have been made by an admin of its own past (and be
    // excluded by a concurrent revocation): that is what `authorized` holds, the same on every
    // device, so every device takes or refuses the same operations.
    for op in new {
        // Members are shown by name: an operation that names someone without the name (the
        // relay's copy, say) has no place in the network document.
        if !op.is_disclosed() {
            return Err(refuse(format!(
                "a membership operation by device {} without the name it commits to",
                op.author().short()
            )));
        }
        if !m.authorized.contains(&op.id()) {
            return Err(refuse(format!(
                "a membership operation by device {} that cannot count (not signed by it, or it \
                 was not an admin where it was made)",
                op.author().short()
            )));
        }
    }
    Ok(())
}

/// Signs this device's newest change to a document and keeps the signature, in the
/// transaction that stores the change.
pub(super) fn sign_own_head(
    tx: &Transaction<'_>,
    doc: &mut AutoCommit,
    id: DocId,
    key: &ed25519_dalek::SigningKey,
    since: &[ChangeHash],
) -> Result<(), Error> {
    // The changes since what the store held (only metadata: no change is re-encoded).
    let me = key.verifying_key().to_bytes();
    let newest = doc
        .get_changes_meta(since)
        .into_iter()
        .filter(|c| c.actor.to_bytes() == me.as_slice())
        .map(|c| (c.seq, c.hash))
        .max_by_key(|(seq, _)| *seq);
    if let Some((seq, hash)) = newest {
        store::put_signed_heads(tx, id, &[SignedHead::sign(key, id, seq, hash.0)])?;
    }
    Ok(())
}

/// The loaded document, reloaded from the store if another process (or a failed write)
/// changed what the store holds since it was cached.
pub(super) fn load_cached<'a>(
    cache: &'a mut LruCache<DocId, Cached>,
    conn: &Connection,
    id: DocId,
    state: &DocState,
    key: &DeviceKey,
) -> Result<&'a mut Cached, Error> {
    let fresh = cache.get(&id).is_some_and(|c| same_heads(&c.persisted, &state.heads));
    if !fresh {
        let bytes = store::load_bytes(conn, id)?;
        let stored = |source| Error::StoredDocument { id: id.to_string(), source };
        let mut doc = doc::load(&bytes, key).map_err(stored)?;
        let h = doc::header(&doc).map_err(stored)?;
        let persisted = doc.get_heads();
        if h.id != id || h.kind != state.kind || !same_heads(&persisted, &state.heads) {
            return Err(stored(DocError::Corrupt(
                "stored chunks do not match the document's record".into(),
            )));
        }
        cache.put(id, Cached { doc, persisted });
    }
    cache.get_mut(&id).ok_or(Error::NotFound { kind: "document", id: id.to_string() })
}

/// Appends what changed since the persisted heads as one chunk; compacts when due.
pub(super) fn persist(
    tx: &Transaction<'_>,
    id: DocId,
    state: &DocState,
    cached: &mut Cached,
) -> Result<bool, Error> {
    let heads = cached.doc.get_heads();
    if same_heads(&heads, &state.heads) {
        return Ok(false);
    }
    let bytes = cached.doc.save_after(&cached.persisted);
    let hb = heads_bytes(&heads);
    let next = store::append_chunk(tx, id, state, &bytes, &hb)?;
    if store::should_compact(&next) {
        let snapshot = cached.doc.save();
        store::replace_with_snapshot(tx, id, &next, &snapshot, &hb)?;
    }
    Ok(true)
}
