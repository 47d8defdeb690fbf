//! The device's side of a sync session: [`SyncStore`] over the store and the document cache.
//!
//! Owns which documents a peer may see (networks whose roster, as this device holds it, lists
//! both devices) and the checks on what a peer sends before it is committed.

use automerge::{
    AutoCommit,
    sync::{Message as SyncMessage, State, SyncDoc},
};
use rusqlite::TransactionBehavior;

use super::{Device, Notes, Writer, check_merged, guard, index_doc, load_cached, persist};
use crate::{
    doc::{self, DocError},
    error::Error,
    ids::{DeviceKey, DocId},
    model::DocKind,
    store,
    sync::{
        StoreFailure, SyncStore,
        session::{Inventory, Outgoing},
    },
};

fn storage(e: Error) -> StoreFailure {
    match e {
        Error::Merge(_) | Error::Invalid(_) | Error::Document(_) => {
            StoreFailure::Refused(e.to_string())
        }
        e => StoreFailure::Storage(e.to_string()),
    }
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
    ) -> Result<bool, Error> {
        let key = self.device_key();
        let mut w = self.writer.lock();
        let result = guard(|| {
            let Writer { conn, cache } = &mut *w;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let st = store::doc_state(&tx, id)?
                .ok_or(Error::NotFound { kind: "document", id: id.to_string() })?;
            let cached = load_cached(cache, &tx, id, &st, &key)?;
            cached
                .doc
                .sync()
                .receive_sync_message(state, message)
                .map_err(|e| Error::Merge(DocError::Corrupt(e.to_string())))?;
            check_merged(&cached.doc, id, st.kind)?;
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

impl SyncStore for &Device {
    fn shared_networks(&mut self, peer: &DeviceKey) -> Result<Vec<DocId>, StoreFailure> {
        store::shared_networks(&self.reader.lock(), &self.device_key(), peer)
            .map_err(|e| StoreFailure::Storage(e.to_string()))
    }

    fn inventory(&mut self, network: DocId) -> Result<Inventory, StoreFailure> {
        store::network_inventory(&self.reader.lock(), network)
            .map_err(|e| StoreFailure::Storage(e.to_string()))
    }

    fn holds(&mut self, doc: DocId) -> Result<bool, StoreFailure> {
        store::doc_state(&self.reader.lock(), doc)
            .map(|s| s.is_some())
            .map_err(|e| StoreFailure::Storage(e.to_string()))
    }

    fn export(&mut self, doc: DocId) -> Result<Vec<u8>, StoreFailure> {
        self.export_document(doc).map_err(storage)
    }

    fn import(&mut self, network: DocId, doc: DocId, bytes: &[u8]) -> Result<(), StoreFailure> {
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
        self.merge_document(bytes).map(|_| ()).map_err(storage)
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
    ) -> Result<bool, StoreFailure> {
        let message =
            SyncMessage::decode(message).map_err(|e| StoreFailure::Refused(e.to_string()))?;
        self.receive_sync(peer, doc, state, message).map_err(storage)
    }
}
