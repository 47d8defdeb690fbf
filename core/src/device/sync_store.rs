//! The device's side of a sync session: [`SyncStore`] over the store and the document cache.
//!
//! Owns which documents a peer may see (networks whose roster, as this device holds it, lists
//! both devices) and the checks on what a peer sends before it is committed.

use automerge::{
    AutoCommit,
    sync::{Message as SyncMessage, State, SyncDoc},
};
use rusqlite::TransactionBehavior;

use super::{
    Derived, Device, Notes, Writer, check_changes, check_changes_as_new, check_merged, derive,
    guard, heads_bytes, index_doc, load_cached, mark_persisted, merge_in, persist,
};
use crate::{
    authorship::SignedHead,
    doc::{self, DocError},
    error::Error,
    ids::{DeviceKey, DocId},
    model::DocKind,
    store,
    sync::{
        Refusal, RemovalOutcome, StoreFailure, SyncStore,
        session::{Inventory, Outgoing, Removals},
    },
};

fn storage(e: Error) -> StoreFailure {
    match e {
        // A document this device does not hold can only be named by the peer (a sync message
        // for a document it offered but never sent): the peer's fault, not the disk's.
        Error::Merge(_) | Error::Invalid(_) | Error::Document(_) | Error::NotFound { .. } => {
            StoreFailure::Refused(e.to_string())
        }
        e => StoreFailure::Storage(e.to_string()),
    }
}

/// Whether this device holds `doc` without it being shared with `network` (by its own copy).
fn held_outside(
    conn: &rusqlite::Connection,
    doc: DocId,
    network: DocId,
) -> Result<bool, StoreFailure> {
    let held = store::doc_state(conn, doc).map_err(|e| StoreFailure::Storage(e.to_string()))?;
    Ok(held.is_some()
        && !store::doc_in_network(conn, doc, network)
            .map_err(|e| StoreFailure::Storage(e.to_string()))?)
}

/// Refuses a network this device neither holds nor was invited to and accepted: no one can
/// plant a network on a device (promise 1), whichever path it comes by.
fn refuse_uninvited(
    conn: &rusqlite::Connection,
    doc: DocId,
    kind: DocKind,
) -> Result<(), StoreFailure> {
    let io = |e: store::StoreError| StoreFailure::Storage(e.to_string());
    if kind == DocKind::Network
        && store::doc_state(conn, doc).map_err(io)?.is_none()
        && !store::invitation_accepted(conn, doc).map_err(io)?
    {
        return Err(StoreFailure::Refused(format!(
            "network {doc}: this device was not invited to it, or its user did not accept"
        )));
    }
    Ok(())
}

/// Whether `doc` is shared with `network` (by what the document itself says).
fn belongs_to(doc: &AutoCommit, network: DocId) -> Result<bool, DocError> {
    let h = doc::header(doc)?;
    Ok(match h.kind {
        DocKind::Network => h.id == network,
        DocKind::Case => doc::read_case(doc)?.networks.contains(&network),
        DocKind::LearningPoint => doc::read_learning_point(doc)?.networks.contains(&network),
        DocKind::Meeting => doc::read_meeting(doc)?.network == Some(network),
    })
}

impl Device {
    fn receive_sync(
        &self,
        peer: &DeviceKey,
        id: DocId,
        state: &mut State,
        message: SyncMessage,
        offered: &[SignedHead],
    ) -> Result<bool, Error> {
        let key = self.device_key();
        let mut w = self.writer.lock();
        let result = guard(|| {
            let Writer { conn, cache } = &mut *w;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if store::is_erased(&tx, id)? {
                return Err(Error::Merge(DocError::Erased(id.to_string())));
            }
            let st = store::doc_state(&tx, id)?
                .ok_or(Error::NotFound { kind: "document", id: id.to_string() })?;
            let cached = load_cached(cache, &tx, id, &st, &key)?;
            let before = cached.doc.get_heads();
            cached.doc.sync().receive_sync_message(state, message).map_err(|e| {
                Error::Merge(match e {
                    e @ automerge::AutomergeError::DuplicateSeqNumber(..) => DocError::from(e),
                    e => DocError::Corrupt(e.to_string()),
                })
            })?;
            check_merged(&cached.doc, id, st.kind)?;
            let keep = check_changes(&tx, &mut cached.doc, id, st.kind, &before, offered, &key)?;
            store::put_signed_heads(&tx, id, &keep)?;
            let changed = persist(&tx, id, &st, cached)?;
            if changed {
                index_doc(&tx, &cached.doc, st.kind, Notes::All)?;
            }
            // The state is saved with the changes it describes: one commit for both.
            store::save_sync_state(&tx, peer, id, &state.encode())?;
            tx.commit()?;
            if changed {
                cached.persisted = cached.doc.get_heads();
            }
            Ok(changed)
        });
        if result.is_err() {
            w.cache.pop(&id);
        }
        drop(w);
        let changed = result?;
        if changed {
            self.notify(&[id]);
        }
        Ok(changed)
    }
}

impl Device {
    /// Loads a whole document a peer sent and checks that it is `doc` and belongs to
    /// `network` (loaded once; the store keeps the loaded document).
    fn check_import(
        &self,
        network: DocId,
        doc: DocId,
        bytes: &[u8],
    ) -> Result<AutoCommit, StoreFailure> {
        if store::is_erased(&self.reader.lock(), doc).map_err(|e| storage(e.into()))? {
            return Err(StoreFailure::Refused(DocError::Erased(doc.to_string()).to_string()));
        }
        let incoming = doc::load(bytes, &self.device_key())
            .map_err(|e| StoreFailure::Refused(e.to_string()))?;
        let h = doc::header(&incoming).map_err(|e| StoreFailure::Refused(e.to_string()))?;
        if h.id != doc {
            return Err(StoreFailure::Refused(format!("document {} sent as {doc}", h.id)));
        }
        if !belongs_to(&incoming, network).map_err(|e| StoreFailure::Refused(e.to_string()))? {
            return Err(StoreFailure::Refused(format!(
                "document {doc} is not shared with that network"
            )));
        }
        Ok(incoming)
    }
}

/// A whole document received: the network it came through, its id, its bytes, and the
/// signatures that cover its changes.
pub(crate) type Incoming = (DocId, DocId, Vec<u8>, Vec<SignedHead>);

/// A received document, loaded and checked, with its derived rows.
type Prepared = (AutoCommit, Option<Derived>);

impl Device {
    /// Stores whole documents a peer sent, in one transaction (one fsync and one full-text
    /// index flush for the lot). Loading, checking and reading each document's rows is pure
    /// CPU and most of the cost: worker threads do it while this thread writes the documents
    /// already prepared, so both cores work. All or nothing: one refused document refuses the
    /// batch.
    ///
    /// With `relay`, the documents came from that relay: what it holds of each (all of it) is
    /// recorded in the same transaction.
    pub(crate) fn import_batch(
        &self,
        docs: &[Incoming],
        relay: Option<store::RelayScope<'_>>,
    ) -> Result<(), StoreFailure> {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        let key = self.device_key();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut written: Vec<DocId> = Vec::with_capacity(docs.len());
        let mut w = self.writer.lock();
        let result = std::thread::scope(|scope| {
            let (tx, rx) =
                std::sync::mpsc::sync_channel::<(usize, Result<Prepared, StoreFailure>)>(16);
            for _ in 0..workers {
                let (tx, next) = (tx.clone(), &next);
                scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((network, doc, bytes, _)) = docs.get(i) else { break };
                        // A closed channel means the writer gave up: stop.
                        if tx.send((i, self.prepare_import(*network, *doc, bytes))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let Writer { conn, cache } = &mut *w;
            let txn = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| StoreFailure::Storage(e.to_string()))?;
            let mut outcomes = Vec::with_capacity(docs.len());
            let mut from_relay: Vec<(DocId, Vec<[u8; 32]>)> = Vec::new();
            // Stored in the order they came (a network before what is shared with it: its
            // roster is what the others' authors are checked against), whichever worker
            // prepared them first.
            let mut ready: std::collections::BTreeMap<usize, Result<Prepared, StoreFailure>> =
                std::collections::BTreeMap::new();
            let mut received = rx.iter().take(docs.len());
            for (i, incoming) in docs.iter().enumerate() {
                while !ready.contains_key(&i) {
                    match received.next() {
                        Some((j, p)) => {
                            ready.insert(j, p);
                        }
                        None => break,
                    }
                }
                let Some(prepared) = ready.remove(&i) else { break };
                let (mut doc, derived) = prepared?;
                // What came from the relay is what the relay holds (not whatever else a merge
                // into an existing copy adds).
                from_relay.push((incoming.1, heads_bytes(&doc.get_heads())));
                let bytes = incoming.2.as_slice();
                let (id, kind) = (
                    incoming.1,
                    doc::header(&doc).map_err(|e| StoreFailure::Refused(e.to_string()))?.kind,
                );
                written.push(id);
                refuse_uninvited(&txn, id, kind)?;
                // A whole document merges into a copy held here only if that copy is shared
                // with the network it came through (promise 2; the session checks this too).
                if held_outside(&txn, id, incoming.0)? {
                    return Err(StoreFailure::Refused(format!(
                        "document {id} is not shared with that network here"
                    )));
                }
                let signed = incoming.3.as_slice();
                let outcome = guard(|| {
                    merge_in(&txn, cache, &key, id, Some(kind), bytes, Some((doc, derived)), signed)
                })
                .map_err(|e| match e {
                    Error::Merge(DocError::Forked { .. }) => {
                        StoreFailure::TwoHistories(e.to_string())
                    }
                    e => storage(e),
                })?;
                outcomes.push(outcome);
            }
            if outcomes.len() != docs.len() {
                return Err(StoreFailure::Storage("a document loader stopped early".into()));
            }
            if let Some(at) = relay {
                for (id, heads) in &from_relay {
                    store::set_relay_pushed(&txn, at, *id, heads)
                        .map_err(|e| StoreFailure::Storage(e.to_string()))?;
                }
            }
            txn.commit().map_err(|e| StoreFailure::Storage(e.to_string()))?;
            for o in &outcomes {
                mark_persisted(cache, o.doc_id);
            }
            Ok(outcomes)
        });
        if result.is_err() {
            for id in &written {
                w.cache.pop(id);
            }
        }
        drop(w);
        let changed: Vec<DocId> = result?.iter().filter(|o| o.changed).map(|o| o.doc_id).collect();
        self.notify(&changed);
        Ok(())
    }

    fn prepare_import(
        &self,
        network: DocId,
        doc: DocId,
        bytes: &[u8],
    ) -> Result<Prepared, StoreFailure> {
        let loaded = self.check_import(network, doc, bytes)?;
        let kind = doc::header(&loaded).map_err(|e| StoreFailure::Refused(e.to_string()))?.kind;
        // Rows that cannot be read make the merge refuse the document later, with its error.
        let derived = derive(&loaded, kind).ok();
        Ok((loaded, derived))
    }
}

impl SyncStore for &Device {
    fn shared_networks(&mut self, peer: &DeviceKey) -> Result<Vec<DocId>, StoreFailure> {
        // A removal that reached this device by ordinary sync takes effect at its next
        // meeting, before anything is offered.
        self.wipe_removed_networks().map_err(storage)?;
        self.apply_tombstones().map_err(storage)?;
        self.renew_keys().map_err(storage)?;
        store::shared_networks(&self.reader.lock(), &self.device_key(), peer)
            .map_err(|e| StoreFailure::Storage(e.to_string()))
    }

    fn settled(&mut self) -> Result<Vec<DocId>, StoreFailure> {
        self.apply_tombstones().map_err(storage)
    }

    fn shared_now(&mut self, peer: &DeviceKey) -> Result<Vec<DocId>, StoreFailure> {
        store::shared_networks(&self.reader.lock(), &self.device_key(), peer)
            .map_err(|e| StoreFailure::Storage(e.to_string()))
    }

    fn inventory(&mut self, network: DocId) -> Result<Inventory, StoreFailure> {
        store::network_inventory(&self.reader.lock(), network)
            .map_err(|e| StoreFailure::Storage(e.to_string()))
    }

    fn removals_for(&mut self, peer: &DeviceKey) -> Result<Removals, StoreFailure> {
        let networks = store::networks_removing(&self.reader.lock(), &self.device_key(), peer)
            .map_err(|e| StoreFailure::Storage(e.to_string()))?;
        let mut out = Vec::new();
        for n in networks {
            out.push((n, self.removal_ops(n).map_err(storage)?));
        }
        Ok(out)
    }

    fn apply_removal(
        &mut self,
        network: DocId,
        peer: &DeviceKey,
        ops: &[Vec<u8>],
    ) -> Result<RemovalOutcome, StoreFailure> {
        if self.removed_by(network, ops).map_err(storage)? {
            self.wipe_network(network).map_err(storage)?;
            return Ok(RemovalOutcome::Wiped);
        }
        self.learn_ops(network, Some(peer), ops).map_err(storage)?;
        if !self.was_in(network, peer).map_err(storage)? {
            return Ok(RemovalOutcome::Ignored);
        }
        Ok(RemovalOutcome::Answer(self.removal_ops(network).map_err(storage)?))
    }

    fn roster(&mut self, network: DocId) -> Result<Vec<Vec<u8>>, StoreFailure> {
        let ops =
            store::network_ops(&self.reader.lock(), network).map_err(|e| storage(e.into()))?;
        Ok(ops.iter().map(|o| o.bytes().to_vec()).collect())
    }

    fn learn_roster(
        &mut self,
        network: DocId,
        peer: &DeviceKey,
        ops: &[Vec<u8>],
    ) -> Result<bool, StoreFailure> {
        self.learn_ops(network, Some(peer), ops).map_err(storage)
    }

    fn accepted(&mut self, network: DocId) -> Result<bool, StoreFailure> {
        store::invitation_accepted(&self.reader.lock(), network)
            .map_err(|e| StoreFailure::Storage(e.to_string()))
    }

    fn holds(&mut self, doc: DocId) -> Result<bool, StoreFailure> {
        store::doc_state(&self.reader.lock(), doc)
            .map(|s| s.is_some())
            .map_err(|e| StoreFailure::Storage(e.to_string()))
    }

    fn export(&mut self, doc: DocId) -> Result<Vec<u8>, StoreFailure> {
        self.save_document(doc).map_err(storage)
    }

    fn signed_heads(&mut self, doc: DocId) -> Result<Vec<SignedHead>, StoreFailure> {
        self.signed_heads_to_send(doc).map_err(storage)
    }

    fn import(
        &mut self,
        network: DocId,
        doc: DocId,
        bytes: &[u8],
        signed: &[SignedHead],
    ) -> Result<(), StoreFailure> {
        if held_outside(&self.reader.lock(), doc, network)? {
            return Err(StoreFailure::Refused(format!(
                "document {doc} is not shared with that network here"
            )));
        }
        let incoming = self.check_import(network, doc, bytes)?;
        let kind = doc::header(&incoming).map_err(|e| StoreFailure::Refused(e.to_string()))?.kind;
        refuse_uninvited(&self.reader.lock(), doc, kind)?;
        self.merge_into(doc, Some(kind), bytes, Some((incoming, None)), signed)
            .map(|_| ())
            .map_err(storage)
    }

    fn check_as_new(
        &mut self,
        network: DocId,
        doc: DocId,
        bytes: &[u8],
        signed: &[SignedHead],
    ) -> Result<(), StoreFailure> {
        // The checks a whole document new here goes through before it is stored, in the same
        // order (`import_batch`, `merge_in`), with nothing written: a read transaction, rolled
        // back when dropped.
        let (mut loaded, derived) = self.prepare_import(network, doc, bytes)?;
        let kind = doc::header(&loaded).map_err(|e| StoreFailure::Refused(e.to_string()))?.kind;
        let conn = self.reader.lock();
        if kind == DocKind::Network
            && !store::invitation_accepted(&conn, doc)
                .map_err(|e| StoreFailure::Storage(e.to_string()))?
        {
            return Err(StoreFailure::Refused(format!(
                "network {doc}: this device was not invited to it, or its user did not accept"
            )));
        }
        let tx = conn.unchecked_transaction().map_err(|e| StoreFailure::Storage(e.to_string()))?;
        check_merged(&loaded, doc, kind).map_err(storage)?;
        check_changes_as_new(&tx, &mut loaded, doc, kind, signed, &self.device_key())
            .map_err(storage)?;
        // Rows that cannot be read refuse a new document when it is indexed.
        if derived.is_none() {
            derive(&loaded, kind).map_err(|e| StoreFailure::Refused(e.to_string()))?;
        }
        Ok(())
    }

    fn import_many(&mut self, docs: Vec<Incoming>) -> Result<Vec<Refusal>, StoreFailure> {
        match self.import_batch(&docs, None) {
            Ok(()) => return Ok(Vec::new()),
            Err(StoreFailure::Refused(_) | StoreFailure::TwoHistories(_)) => {}
            Err(e) => return Err(e),
        }
        // One refused document refuses the batch: the others are stored one by one, in the
        // order they came (a network before what is shared with it), as the relay pull does.
        // It costs a transaction each, only when a peer sent something refused.
        // Refused documents get one more try after the others: a document split off another
        // is taken only once the other's history is held here, and it may have come later in
        // the same batch.
        let mut refused: Vec<(&Incoming, String)> = Vec::new();
        for pass in 0..2 {
            let todo: Vec<&Incoming> = if pass == 0 {
                docs.iter().collect()
            } else {
                std::mem::take(&mut refused).into_iter().map(|(d, _)| d).collect()
            };
            for d in todo {
                match self.import_batch(std::slice::from_ref(d), None) {
                    Ok(()) => {}
                    Err(StoreFailure::Refused(reason)) => refused.push((d, reason)),
                    // Another history of a document held here: it goes in if the one held
                    // here gives way (`forks`).
                    Err(StoreFailure::TwoHistories(reason)) => {
                        if !self.take_other_history(d.1, &d.2, &d.3) {
                            refused.push((d, reason));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(refused.into_iter().map(|(d, reason)| Refusal { doc: d.1, reason }).collect())
    }

    fn generate(
        &mut self,
        doc: DocId,
        state: &mut State,
    ) -> Result<Option<Outgoing>, StoreFailure> {
        let kind = self.kind_of(doc).map_err(storage)?;
        self.read(doc, kind, |d| {
            Ok(d.sync()
                .generate_sync_message(state)
                .map(|m| Outgoing { has_changes: !m.changes.is_empty(), message: m.encode() }))
        })
        .map_err(storage)
    }

    fn load_state(&mut self, peer: &DeviceKey, doc: DocId) -> Result<Option<State>, StoreFailure> {
        let saved = store::load_sync_state(&self.reader.lock(), peer, doc)
            .map_err(|e| StoreFailure::Storage(e.to_string()))?;
        // A damaged saved state costs a slower sync, not a failed one.
        Ok(saved.and_then(|b| State::decode(&b).ok()))
    }

    fn receive(
        &mut self,
        peer: &DeviceKey,
        doc: DocId,
        state: &mut State,
        message: &[u8],
        signed: &[SignedHead],
    ) -> Result<bool, StoreFailure> {
        let decode =
            || SyncMessage::decode(message).map_err(|e| StoreFailure::Refused(e.to_string()));
        let mut received = self.receive_sync(peer, doc, state, decode()?, signed);
        // Two histories of the document: if the one held here gave way, what arrived went in
        // with it; the message is taken again (it brings nothing new now) for the sync state.
        if let Err(e) = &received {
            let m = decode()?;
            let arrived: Vec<u8> = m.changes.iter().flatten().copied().collect();
            if self.after_refusal(doc, e, &arrived, signed) {
                received = self.receive_sync(peer, doc, state, decode()?, signed);
            }
        }
        received.map_err(|e| match e {
            Error::Merge(DocError::Forked { .. }) => StoreFailure::TwoHistories(e.to_string()),
            e => storage(e),
        })
    }
}
