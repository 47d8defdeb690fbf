//! Shared pieces of the fuzz targets: how an input is cut into pieces, an in-memory
//! [`SyncStore`], and a harness that drives a [`Session`] and checks what it does.

use std::collections::{BTreeMap, HashMap};

use automerge::sync::{Message as SyncMessage, State, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, LoadOptions, OnPartialLoad, ROOT, TextEncoding};
use nabij_core::sync::frame::{FrameDecoder, Message};
use nabij_core::sync::session::{Event, Inventory, Outgoing, PROTOCOL, Removals};
use nabij_core::sync::{RemovalOutcome, Session, StoreFailure, SyncError, SyncStore};
use nabij_core::{DeviceKey, DocId, authorship::SignedHead};

/// This device, in the session targets.
pub const ME: [u8; 32] = [0x11; 32];
/// The peer the transport authenticated.
pub const PEER: [u8; 32] = [0x22; 32];
/// The one network both devices share.
pub const NETWORK: [u8; 16] = [0xA0; 16];
/// Held by both devices, with different heads (edited by the peer).
pub const DOC_A: [u8; 16] = [0xA1; 16];
/// Held by this device only.
pub const DOC_B: [u8; 16] = [0xA2; 16];
/// Held by the peer only.
pub const DOC_C: [u8; 16] = [0xB1; 16];

/// Cuts a fuzz input into the pieces a transport might deliver.
///
/// Byte 0 gives the number of cut points (mod 16), the next two bytes per cut point give its
/// offset (big-endian, mod the stream length + 1), and the rest is the byte stream. A seed of
/// `[0] ++ stream` feeds the stream whole.
pub fn pieces(data: &[u8]) -> Vec<&[u8]> {
    let Some((&k, rest)) = data.split_first() else {
        return Vec::new();
    };
    let k = usize::from(k % 16);
    let header = (2 * k).min(rest.len());
    let (cuts, stream) = rest.split_at(header);
    let mut at: Vec<usize> = cuts
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    at.push(0);
    at.push(stream.len());
    at.sort_unstable();
    at.windows(2).map(|w| &stream[w[0]..w[1]]).collect()
}

fn id(bytes: [u8; 16]) -> DocId {
    DocId::from_bytes(bytes)
}

const ENCODING: TextEncoding = TextEncoding::UnicodeCodePoint;

/// A small document written by `actor`, deterministic (fixed actor, time 0).
pub fn new_doc(actor: &[u8; 32], title: &str) -> AutoCommit {
    let mut doc = AutoCommit::new_with_encoding(ENCODING).with_actor(ActorId::from(&actor[..]));
    doc.put(ROOT, "title", title).expect("put on a fresh document");
    doc.commit_with(CommitOptions::default().with_time(0));
    doc
}

fn load(bytes: &[u8]) -> Result<AutoCommit, String> {
    // As the device's store loads a document (`nabij_core::doc::load`).
    let options = LoadOptions::new().on_partial_load(OnPartialLoad::Error).text_encoding(ENCODING);
    AutoCommit::load_with_options(bytes, options).map_err(|e| e.to_string())
}

/// An in-memory [`SyncStore`]: one shared network and a few Automerge documents.
#[derive(Clone)]
pub struct MemStore {
    /// Networks shared with the peer.
    shared: Vec<DocId>,
    /// Networks this device holds, with their documents (most urgent first).
    networks: BTreeMap<DocId, Vec<DocId>>,
    docs: HashMap<DocId, AutoCommit>,
}

thread_local! {
    // Built once per process: a fresh one per input costs more than the rest of a run.
    static LOCAL: MemStore = MemStore::build_local();
    static PEER_STORE: MemStore = MemStore::build_peer();
}

impl MemStore {
    /// This device: `NETWORK` with `DOC_A` and `DOC_B`.
    pub fn local() -> Self {
        LOCAL.with(Clone::clone)
    }

    /// The peer: `NETWORK` with `DOC_A` (edited further by the peer) and `DOC_C`.
    pub fn peer() -> Self {
        PEER_STORE.with(Clone::clone)
    }

    fn build_local() -> Self {
        let mut docs = HashMap::new();
        docs.insert(id(DOC_A), new_doc(&ME, "a"));
        docs.insert(id(DOC_B), new_doc(&ME, "b"));
        let networks = BTreeMap::from([(id(NETWORK), vec![id(DOC_A), id(DOC_B)])]);
        Self { shared: vec![id(NETWORK)], networks, docs }
    }

    fn build_peer() -> Self {
        let mut a = new_doc(&ME, "a").with_actor(ActorId::from(&PEER[..]));
        a.put(ROOT, "title", "a, edited").expect("put");
        a.commit_with(CommitOptions::default().with_time(0));
        let mut docs = HashMap::new();
        docs.insert(id(DOC_A), a);
        docs.insert(id(DOC_C), new_doc(&PEER, "c"));
        let networks = BTreeMap::from([(id(NETWORK), vec![id(DOC_A), id(DOC_C)])]);
        Self { shared: vec![id(NETWORK)], networks, docs }
    }

    /// `doc` saved, if held.
    pub fn save(&mut self, doc: DocId) -> Option<Vec<u8>> {
        self.docs.get_mut(&doc).map(AutoCommit::save)
    }

    /// The heads of `doc`, if held.
    pub fn heads(&mut self, doc: DocId) -> Option<Vec<[u8; 32]>> {
        self.docs.get_mut(&doc).map(|d| d.get_heads().into_iter().map(|h| h.0).collect())
    }

    /// A first sync message for `doc` (fresh state), if held.
    pub fn first_sync(&mut self, doc: DocId) -> Option<Vec<u8>> {
        let d = self.docs.get_mut(&doc)?;
        d.sync().generate_sync_message(&mut State::new()).map(SyncMessage::encode)
    }

    /// A local edit to `doc`, if held.
    pub fn edit(&mut self, doc: DocId, value: u64) {
        if let Some(d) = self.docs.get_mut(&doc) {
            d.put(ROOT, "edits", value).expect("put");
            d.commit_with(CommitOptions::default().with_time(0));
        }
    }

    /// This store's inventory of `NETWORK`.
    pub fn network_inventory(&mut self) -> Inventory {
        self.inventory(id(NETWORK)).unwrap_or_default()
    }
}

impl SyncStore for MemStore {
    fn shared_networks(&mut self, _peer: &DeviceKey) -> Result<Vec<DocId>, StoreFailure> {
        Ok(self.shared.clone())
    }

    fn shared_now(&mut self, _peer: &DeviceKey) -> Result<Vec<DocId>, StoreFailure> {
        Ok(self.shared.clone())
    }

    fn inventory(&mut self, network: DocId) -> Result<Inventory, StoreFailure> {
        let ids = self.networks.get(&network).cloned().unwrap_or_default();
        Ok(ids.into_iter().filter_map(|d| Some((d, self.heads(d)?))).collect())
    }

    fn holds(&mut self, doc: DocId) -> Result<bool, StoreFailure> {
        Ok(self.docs.contains_key(&doc) || self.networks.contains_key(&doc))
    }

    fn removals_for(&mut self, _peer: &DeviceKey) -> Result<Removals, StoreFailure> {
        Ok(Vec::new())
    }

    // Fuzzed removals are the membership rule's to judge (fuzzed there); this store never
    // takes them, so the session's handling of the message is what gets fuzzed.
    fn apply_removal(
        &mut self,
        _network: DocId,
        _peer: &DeviceKey,
        _ops: &[Vec<u8>],
    ) -> Result<RemovalOutcome, StoreFailure> {
        Ok(RemovalOutcome::Ignored)
    }

    fn roster(&mut self, _network: DocId) -> Result<Vec<Vec<u8>>, StoreFailure> {
        Ok(Vec::new())
    }

    // As removals: fuzzed rosters are the membership rule's to judge.
    fn learn_roster(
        &mut self,
        _network: DocId,
        _peer: &DeviceKey,
        _ops: &[Vec<u8>],
    ) -> Result<bool, StoreFailure> {
        Ok(false)
    }

    fn accepted(&mut self, network: DocId) -> Result<bool, StoreFailure> {
        // A fuzzed peer may name any network: take it as if invited, so the session's joining
        // path gets fuzzed too.
        Ok(!self.networks.contains_key(&network))
    }

    fn export(&mut self, doc: DocId) -> Result<Vec<u8>, StoreFailure> {
        self.save(doc).ok_or_else(|| StoreFailure::Storage(format!("no document {doc}")))
    }

    // The fuzzed sessions exercise the protocol's state machine; signatures are the device
    // store's check (tested in `nabij-tests`), so this store takes changes unsigned.
    fn signed_heads(&mut self, _doc: DocId) -> Result<Vec<SignedHead>, StoreFailure> {
        Ok(Vec::new())
    }

    fn import(
        &mut self,
        network: DocId,
        doc: DocId,
        bytes: &[u8],
        _signed: &[SignedHead],
    ) -> Result<(), StoreFailure> {
        let mut incoming = load(bytes).map_err(StoreFailure::Refused)?;
        match self.docs.get_mut(&doc) {
            Some(held) => {
                held.merge(&mut incoming).map_err(|e| StoreFailure::Refused(e.to_string()))?;
            }
            None => {
                self.docs.insert(doc, incoming);
            }
        }
        let members = self.networks.entry(network).or_default();
        if !members.contains(&doc) {
            members.push(doc);
        }
        Ok(())
    }

    fn check_as_new(
        &mut self,
        _network: DocId,
        _doc: DocId,
        bytes: &[u8],
        _signed: &[SignedHead],
    ) -> Result<(), StoreFailure> {
        load(bytes).map(|_| ()).map_err(StoreFailure::Refused)
    }

    fn generate(
        &mut self,
        doc: DocId,
        state: &mut State,
    ) -> Result<Option<Outgoing>, StoreFailure> {
        // Like the device's store, a document not held is a storage error.
        let d = self
            .docs
            .get_mut(&doc)
            .ok_or_else(|| StoreFailure::Storage(format!("no document {doc}")))?;
        Ok(d.sync()
            .generate_sync_message(state)
            .map(|m| Outgoing { has_changes: !m.changes.is_empty(), message: m.encode() }))
    }

    fn load_state(
        &mut self,
        _peer: &DeviceKey,
        _doc: DocId,
    ) -> Result<Option<State>, StoreFailure> {
        Ok(None)
    }

    fn receive(
        &mut self,
        _peer: &DeviceKey,
        doc: DocId,
        state: &mut State,
        message: &[u8],
        _signed: &[SignedHead],
    ) -> Result<bool, StoreFailure> {
        let message =
            SyncMessage::decode(message).map_err(|e| StoreFailure::Refused(e.to_string()))?;
        let d = self
            .docs
            .get_mut(&doc)
            .ok_or_else(|| StoreFailure::Storage(format!("no document {doc}")))?;
        let before = d.get_heads();
        d.sync()
            .receive_sync_message(state, message)
            .map_err(|e| StoreFailure::Refused(e.to_string()))?;
        Ok(d.get_heads() != before)
    }
}

/// Drives this device's [`Session`] with what a (possibly hostile) peer sends, and checks it.
pub struct Harness {
    /// The session under test.
    pub session: Session,
    /// Its store.
    pub store: MemStore,
    /// The time, in ms.
    pub now: u64,
    /// Decodes what the session sends.
    out: FrameDecoder,
    /// Frames the session sent so far (all decoded).
    pub sent: u64,
    /// Bytes handed to `handle_bytes` while the session was open.
    received: u64,
    /// The error the session ended with.
    pub error: Option<SyncError>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A fresh session of `ME` with `PEER` over [`MemStore::local`].
    pub fn new() -> Self {
        let mut h = Self {
            session: Session::new(DeviceKey::from_bytes(ME), DeviceKey::from_bytes(PEER), 0),
            store: MemStore::local(),
            now: 0,
            out: FrameDecoder::new(),
            sent: 0,
            received: 0,
            error: None,
        };
        h.drain();
        h
    }

    /// Feeds bytes from the peer; checks the outcome. Returns whether the session is open.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        self.now += 1;
        let was_closed = self.session.is_closed();
        let result = self.session.handle_bytes(&mut self.store, self.now, bytes);
        if was_closed {
            assert_eq!(result, Err(SyncError::Closed), "a closed session must refuse bytes");
        } else {
            self.received += bytes.len() as u64;
        }
        self.settle(result)
    }

    /// A local change to `doc`.
    pub fn local_change(&mut self, doc: DocId) -> bool {
        let was_closed = self.session.is_closed();
        let result = self.session.local_change(&mut self.store, doc);
        if was_closed {
            assert_eq!(result, Ok(()), "a local change on a closed session is a no-op");
        }
        self.settle(result)
    }

    /// Time passes.
    pub fn advance(&mut self, ms: u64) -> bool {
        self.now += ms;
        let result = self.session.handle_timeout(self.now);
        self.settle(result)
    }

    fn settle(&mut self, result: Result<(), SyncError>) -> bool {
        match result {
            Ok(()) => {
                if self.error.is_none() {
                    assert!(!self.session.is_closed(), "Ok from a closed session");
                }
            }
            Err(SyncError::Closed) => {
                assert!(self.session.is_closed(), "Closed from an open session");
            }
            Err(e) => {
                assert!(self.error.is_none(), "a second error after {:?}: {e:?}", self.error);
                assert!(self.session.is_closed(), "an error must close the session: {e:?}");
                assert_eq!(self.session.poll_transmit(), None, "frames queued after an error");
                self.error = Some(e);
            }
        }
        self.drain();
        !self.session.is_closed()
    }

    /// Takes every frame and event; every frame must decode, in sequence.
    fn drain(&mut self) {
        while let Some(frame) = self.session.poll_transmit() {
            let messages = self.out.feed(&frame).expect("the session sent a malformed frame");
            assert_eq!(messages.len(), 1, "one frame, one message");
            assert_eq!(self.out.buffered(), 0, "a frame with trailing bytes");
            for (seq, m) in messages {
                assert_eq!(seq, self.sent, "frames out of sequence");
                if seq == 0 {
                    assert_eq!(m, Message::Hello { protocol: PROTOCOL, device: ME });
                } else {
                    assert!(!matches!(m, Message::Hello { .. }), "a second hello");
                }
                self.sent += 1;
            }
        }
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Progress { docs_done, docs_total, bytes_received, .. } => {
                    assert!(docs_done <= docs_total, "{docs_done} of {docs_total} done");
                    assert!(bytes_received <= self.received);
                }
                Event::PeerError(e) => {
                    assert!(self.session.is_closed(), "an error event from an open session: {e:?}");
                }
                Event::DocumentUpdated(_)
                | Event::PeerDone
                | Event::NetworkWiped(_)
                | Event::DocumentRefused { .. }
                | Event::DocumentRefusedByPeer(_) => {}
            }
        }
        let (_, received) = self.session.bytes();
        assert_eq!(received, self.received, "bytes received miscounted");
    }
}

/// A whole, well-behaved exchange: the frames a real peer (over [`MemStore::peer`]) sends to
/// this device (over [`MemStore::local`]), in order, as the two sessions talk to completion.
pub fn conversation() -> Vec<Vec<u8>> {
    let me = DeviceKey::from_bytes(ME);
    let peer = DeviceKey::from_bytes(PEER);
    let mut ours = Session::new(me, peer, 0);
    let mut theirs = Session::new(peer, me, 0);
    let (mut our_store, mut their_store) = (MemStore::local(), MemStore::peer());
    let mut recorded = Vec::new();
    for now in 1..64 {
        let mut quiet = true;
        while let Some(f) = ours.poll_transmit() {
            quiet = false;
            theirs.handle_bytes(&mut their_store, now, &f).expect("the peer accepts our frames");
        }
        while let Some(f) = theirs.poll_transmit() {
            quiet = false;
            ours.handle_bytes(&mut our_store, now, &f).expect("we accept the peer's frames");
            recorded.push(f);
        }
        if quiet && ours.is_complete() && theirs.is_complete() {
            break;
        }
    }
    recorded
}
