//! One sync session between two devices, as a state machine without IO.
//!
//! Inputs: bytes received (in any pieces), time, local-change notices. Outputs: frames to send
//! ([`Session::poll_transmit`]) and events ([`Session::poll_event`]). Documents are reached
//! through [`SyncStore`], which the driver implements over the device's store; the session
//! itself holds no document, socket or clock.
//!
//! The exchange, symmetric on both sides:
//! 1. `Hello` (protocol version, device key). The key must be the one the transport
//!    authenticated.
//! 2. For each network both devices belong to (each side decides from its own roster; a
//!    network the other does not share is never named): one `Digest` over all (document id,
//!    heads). Equal digests end the exchange for that network.
//! 3. Otherwise each side sends its `Inventory`; documents the peer lacks go whole
//!    (`Document`), documents both hold with different heads run Automerge's sync protocol
//!    (`Sync`), at most [`WINDOW`] documents at a time, in the store's priority order.
//! 4. `Done` when a side has nothing to send; the session is complete when both have said so
//!    after their last message. Local changes restart the per-document sync (live mode).
//!
//! Any malformed, oversized or out-of-order frame ends the session with a typed error, and so
//! does anything the peer may not do at all (a document it did not offer, a sync message for a
//! document not shared): an honest peer never does those, so the peer is broken or hostile.
//! Data the store refuses for one document (a change without its author's signature, by a
//! device that is not a member, overwriting a network's key map; a document that does not
//! load or is not what it says) refuses that document alone: nothing of it is stored, the
//! event [`Event::DocumentRefused`] says why, the peer is told which (`Refused`, with the id
//! it named and nothing else) and neither side exchanges anything more about it in this
//! session. The other documents go on, and the session completes: one bad document, forged or
//! merely from a peer with a bug, must not keep a meeting's every other document from
//! syncing.

// Ordered collections only: what a session sends must depend on its inputs alone, never on a
// hasher's per-process seed, so that a simulation seed replays byte for byte.
use std::collections::{BTreeMap, BTreeSet, VecDeque, btree_map};

use automerge::sync::State;

use super::frame::{self, FrameDecoder, FrameError, Message, WireDocId, WireHash};
use crate::{
    authorship::SignedHead,
    ids::{DeviceKey, DocId},
};

/// The sync protocol version this build speaks. 3: the `Refused` message (a peer of version 2
/// cannot decode it, and would wait for an answer about the refused document). 4: `Roster`.
pub const PROTOCOL: u16 = 4;

/// Most documents in Automerge sync at once.
pub const WINDOW: usize = 32;

/// Milliseconds without hearing from the peer before the session gives up.
pub const IDLE_TIMEOUT_MS: u64 = 30_000;

/// A network's documents with their heads (32-byte change hashes), most urgent first.
pub type Inventory = Vec<(DocId, Vec<[u8; 32]>)>;

/// Networks a peer was removed from, each with its signed removals.
pub type Removals = Vec<(DocId, Vec<Vec<u8>>)>;

/// What a device did with a removal a peer handed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemovalOutcome {
    /// It removes this device: the network is wiped here.
    Wiped,
    /// It does not (resolved with what this device holds): the peer took this device for
    /// removed, so their views of the membership differ. The peer is answered with the
    /// operations that count here, and with both the two agree.
    Answer(Vec<Vec<u8>>),
    /// Nothing to do: a network not held here, or a peer that was never in it.
    Ignored,
}

/// Why the store could not do what the session asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreFailure {
    /// The peer's data was refused (malformed, wrong document, not of this network, changes
    /// no signature covers, by a device that may not write). From [`SyncStore::receive`] and
    /// [`SyncStore::import_many`], about one document: that document alone is refused. From
    /// anything else: a protocol error by the peer, which ends the session.
    Refused(String),
    /// The peer's changes to a document are another history of one of its writers (two
    /// changes with one number in the writer's chain), and this side keeps its own: refused as
    /// [`StoreFailure::Refused`], and this side's document goes to the peer whole, so that the
    /// peer, whose history gives way, can take it (`device/forks.rs`). From
    /// [`SyncStore::receive`] only.
    TwoHistories(String),
    /// A local storage failure.
    Storage(String),
}

/// A document whose data the store refused, and why (for this device's log and app only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The document, as the peer named it.
    pub doc: DocId,
    /// Why, in detail: never sent to the peer.
    pub reason: String,
}

/// A sync message the store generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The encoded Automerge sync message.
    pub message: Vec<u8>,
    /// Whether it carries changes (not only heads and bloom filters).
    pub has_changes: bool,
}

/// What the session needs from the device's store.
pub trait SyncStore {
    /// Networks whose roster, as this device holds it, lists both this device and `peer`.
    fn shared_networks(&mut self, peer: &DeviceKey) -> Result<Vec<DocId>, StoreFailure>;
    /// The same, as the store holds it now, and nothing else done (during a session: the
    /// removals and re-keying `shared_networks` sees to wait for the next).
    fn shared_now(&mut self, peer: &DeviceKey) -> Result<Vec<DocId>, StoreFailure>;
    /// The documents of a network with their heads, most urgent first.
    fn inventory(&mut self, network: DocId) -> Result<Inventory, StoreFailure>;
    /// Whether this device holds `doc` at all.
    fn holds(&mut self, doc: DocId) -> Result<bool, StoreFailure>;
    /// Whether this device's user accepted an invitation into `network`.
    fn accepted(&mut self, network: DocId) -> Result<bool, StoreFailure>;
    /// Networks this device is in that `peer` was removed from, with their signed removals (to
    /// hand the peer, which then wipes them).
    fn removals_for(&mut self, peer: &DeviceKey) -> Result<Removals, StoreFailure>;
    /// The signed membership operations of `network` held here, as signed (handed to a peer
    /// when the network's document does not merge between the two).
    fn roster(&mut self, network: DocId) -> Result<Vec<Vec<u8>>, StoreFailure>;
    /// Takes in the membership operations of `network` that `peer` handed over, those that
    /// could count; whether any was new.
    fn learn_roster(
        &mut self,
        network: DocId,
        peer: &DeviceKey,
        ops: &[Vec<u8>],
    ) -> Result<bool, StoreFailure>;
    /// Checks removals `peer` handed over; if one removes this device from `network`, wipes
    /// the network here; otherwise keeps those of its operations that could count, and gives
    /// the answer for the peer.
    fn apply_removal(
        &mut self,
        network: DocId,
        peer: &DeviceKey,
        ops: &[Vec<u8>],
    ) -> Result<RemovalOutcome, StoreFailure>;
    /// A whole document, saved.
    fn export(&mut self, doc: DocId) -> Result<Vec<u8>, StoreFailure>;
    /// The signed heads that cover a document's changes (sent with them).
    fn signed_heads(&mut self, doc: DocId) -> Result<Vec<SignedHead>, StoreFailure>;
    /// Stores a whole document the peer sent, if it is `doc`, belongs to `network`, and its
    /// changes are covered by signatures of devices that may write it (`signed`, or held).
    fn import(
        &mut self,
        network: DocId,
        doc: DocId,
        bytes: &[u8],
        signed: &[SignedHead],
    ) -> Result<(), StoreFailure>;
    /// Checks a whole document the peer sent as [`SyncStore::import`] would if this device did
    /// not hold `doc`, storing nothing. For a document held here outside `network`: refused
    /// where a device that lacks it would refuse it, so the peer cannot tell the two apart
    /// (promise 2).
    fn check_as_new(
        &mut self,
        network: DocId,
        doc: DocId,
        bytes: &[u8],
        signed: &[SignedHead],
    ) -> Result<(), StoreFailure>;
    /// Both sides have nothing more to send: the store applies what the exchange brought that
    /// takes effect on its own (erasures in network documents that arrived), and returns the
    /// documents it deleted; the session syncs them no more.
    fn settled(&mut self) -> Result<Vec<DocId>, StoreFailure> {
        Ok(Vec::new())
    }
    /// Stores several whole documents (network, document, bytes, signatures), each checked as
    /// [`SyncStore::import`] does, ideally in one transaction. A document refused is left out,
    /// nothing of it stored, and returned with why; the others are stored. An error only for
    /// what is no one document's fault (local storage).
    fn import_many(
        &mut self,
        docs: Vec<(DocId, DocId, Vec<u8>, Vec<SignedHead>)>,
    ) -> Result<Vec<Refusal>, StoreFailure> {
        let mut refused = Vec::new();
        for (network, doc, bytes, signed) in docs {
            match self.import(network, doc, &bytes, &signed) {
                Ok(()) => {}
                Err(StoreFailure::Refused(reason)) => refused.push(Refusal { doc, reason }),
                Err(e) => return Err(e),
            }
        }
        Ok(refused)
    }
    /// The next Automerge sync message for `doc`, if any.
    fn generate(&mut self, doc: DocId, state: &mut State)
    -> Result<Option<Outgoing>, StoreFailure>;
    /// The sync state saved for `peer` and `doc` by an earlier session, if any.
    fn load_state(&mut self, peer: &DeviceKey, doc: DocId) -> Result<Option<State>, StoreFailure>;
    /// Applies an Automerge sync message from `peer` to `doc` and saves the sync state with it,
    /// atomically, so a cut session resumes where it was; whether the document changed. Its
    /// changes must be covered by signatures (`signed`, or held), as for [`SyncStore::import`].
    fn receive(
        &mut self,
        peer: &DeviceKey,
        doc: DocId,
        state: &mut State,
        message: &[u8],
        signed: &[SignedHead],
    ) -> Result<bool, StoreFailure>;
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
// Not `non_exhaustive`: nabij-ffi maps every variant by name, so a new one fails its build
// until it is given a kind apps can act on.
pub enum SyncError {
    /// A frame could not be decoded.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer speaks another protocol version.
    #[error("peer speaks sync protocol {0}, this device {PROTOCOL}")]
    Version(u16),
    /// The peer's hello names another device than the one authenticated.
    #[error("peer introduced itself with another device key than it authenticated with")]
    WrongPeer,
    /// A message at the wrong moment, or about a document the peer may not name.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The store refused the peer's data.
    #[error("peer sent data that was refused: {0}")]
    Refused(String),
    /// Local storage failed.
    #[error("storage failed: {0}")]
    Storage(String),
    /// Nothing heard from the peer for too long.
    #[error("peer silent for {0} ms")]
    Timeout(u64),
    /// The session already ended.
    #[error("session closed")]
    Closed,
}

impl From<StoreFailure> for SyncError {
    fn from(f: StoreFailure) -> Self {
        match f {
            StoreFailure::Refused(m) | StoreFailure::TwoHistories(m) => SyncError::Refused(m),
            StoreFailure::Storage(m) => SyncError::Storage(m),
        }
    }
}

/// What happened, for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Documents and bytes done and to do.
    Progress {
        /// Documents whose exchange finished.
        docs_done: usize,
        /// Documents known to need an exchange.
        docs_total: usize,
        /// Bytes sent so far.
        bytes_sent: u64,
        /// Bytes received so far.
        bytes_received: u64,
    },
    /// A document changed because of the peer.
    DocumentUpdated(DocId),
    /// The peer handed this device its removal from a network: the network was wiped here.
    NetworkWiped(DocId),
    /// The peer's data for a document was refused: nothing of it was stored, the peer was told
    /// (the id only), and the document is not synced again in this session.
    DocumentRefused {
        /// The document, as the peer named it.
        doc: DocId,
        /// Why, in detail, for this device's log: the peer is not told.
        reason: String,
    },
    /// The peer refused this device's data for a document: the document is not synced again
    /// with it in this session (its reason stays on the peer).
    DocumentRefusedByPeer(DocId),
    /// Both sides have nothing more to send (for now).
    PeerDone,
    /// The session ended with an error.
    PeerError(SyncError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    Running,
    Closed,
}

/// One session with one peer.
pub struct Session {
    peer: DeviceKey,
    phase: Phase,
    decoder: FrameDecoder,
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    /// Shared networks and this device's inventory of each, as sent.
    mine: BTreeMap<DocId, Inventory>,
    /// Networks whose inventory we sent.
    sent_inventory: BTreeSet<DocId>,
    /// The peer's inventories, as received.
    theirs: BTreeMap<DocId, BTreeMap<DocId, Vec<[u8; 32]>>>,
    /// Documents the peer may name, with their network.
    allowed: BTreeMap<DocId, DocId>,
    /// Networks whose documents the peer has told us of (its digest matched ours, or its
    /// inventory came): only then do we know which of ours it holds.
    answered: BTreeSet<DocId>,
    /// Documents changed here (live) before the peer told us of their network: synced once it
    /// has, as a sync message could name a document the peer does not hold.
    early: BTreeSet<DocId>,
    /// Documents the peer named in a network (the first it named them in) that this device
    /// holds but did not list there (the peer's copy is shared with that network, ours not yet;
    /// or the peer is probing): whole copies of them are never stored or merged. They sync
    /// through another network if shared with the peer at all.
    held_unlisted: BTreeMap<DocId, DocId>,
    /// Documents the peer named in a network that this device does not hold, with the first
    /// network it named them in: a whole copy is judged against that one, as a copy of a
    /// document held here is against the first network it was named in (`held_unlisted`), so
    /// the order in which a peer names a document tells it nothing (promise 2).
    named_in: BTreeMap<DocId, DocId>,
    /// Networks shared with the peer when the session started (`shared_networks`), and those
    /// of them dropped since because their membership no longer holds the peer.
    started_with: BTreeSet<DocId>,
    dropped: BTreeSet<DocId>,
    /// Documents the peer sent whole that this device holds and does not share with it, and
    /// would have taken had it not held them: passed over in silence, and so are the peer's
    /// sync messages for them (it cannot know).
    passed_over: BTreeSet<DocId>,
    /// Automerge sync state per document.
    states: BTreeMap<DocId, State>,
    /// Documents waiting to generate a sync message, in priority order.
    pending: VecDeque<DocId>,
    queued: BTreeSet<DocId>,
    /// Documents with a sync message sent and no answer yet.
    in_flight: BTreeMap<DocId, u64>,
    /// Documents that needed an exchange, and those finished.
    needed: BTreeSet<DocId>,
    finished: BTreeSet<DocId>,
    /// Sequence number of the next frame sent, and of the next frame expected.
    send_seq: u64,
    recv_seq: u64,
    sent_done: bool,
    /// Networks whose operations this side handed the peer (a removal, or an answer to one).
    told: BTreeSet<DocId>,
    /// Networks whose roster this side handed the peer (their document did not merge).
    rostered: BTreeSet<DocId>,
    /// Documents this side kept its own history of against the peer's and sent whole; those
    /// the peer sent so.
    histories_sent: BTreeSet<DocId>,
    histories_taken: BTreeSet<DocId>,
    peer_done: bool,
    /// Sequence number of the last frame we sent that was not `Done` (the hello at least).
    last_said: u64,
    /// Whether this round of input made us send anything (if not, we are done).
    round_sent: bool,
    /// Whether this round of input had anything but `Done` and `Ack` in it.
    round_heard: bool,
    last_heard: u64,
    bytes_sent: u64,
    bytes_received: u64,
    /// Documents this side sent whole or sent changes of; documents the peer changed here.
    sent_docs: BTreeSet<DocId>,
    updated_docs: BTreeSet<DocId>,
    /// Whole documents received in this round, not stored yet: (network, document, bytes,
    /// signatures).
    incoming: Vec<(DocId, DocId, Vec<u8>, Vec<SignedHead>)>,
    /// Documents whose data from the peer this side refused, and those whose data the peer
    /// refused: nothing more about them is sent, asked or applied in this session.
    refused: BTreeSet<DocId>,
    refused_by_peer: BTreeSet<DocId>,
    /// Whether our digests went out (with the hello, or after the peer's).
    digests_sent: bool,
}

fn doc_id(w: &WireDocId) -> DocId {
    DocId::from_bytes(*w)
}

/// Digest of an inventory: order-independent over documents and heads.
pub fn digest(inventory: &[(DocId, Vec<[u8; 32]>)]) -> [u8; 32] {
    let mut sorted: Vec<(DocId, Vec<[u8; 32]>)> = inventory.to_vec();
    for (_, h) in &mut sorted {
        h.sort();
    }
    sorted.sort();
    let mut hasher = blake3::Hasher::new();
    for (id, heads) in &sorted {
        hasher.update(id.as_bytes());
        hasher.update(&(heads.len() as u32).to_le_bytes());
        for h in heads {
            hasher.update(h);
        }
    }
    *hasher.finalize().as_bytes()
}

impl Session {
    /// A session with `peer`, whose key the transport authenticated; sends our hello.
    pub fn new(me: DeviceKey, peer: DeviceKey, now: u64) -> Self {
        let mut s = Self {
            peer,
            phase: Phase::AwaitHello,
            decoder: FrameDecoder::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            mine: BTreeMap::new(),
            sent_inventory: BTreeSet::new(),
            theirs: BTreeMap::new(),
            allowed: BTreeMap::new(),
            answered: BTreeSet::new(),
            early: BTreeSet::new(),
            held_unlisted: BTreeMap::new(),
            named_in: BTreeMap::new(),
            started_with: BTreeSet::new(),
            dropped: BTreeSet::new(),
            passed_over: BTreeSet::new(),
            states: BTreeMap::new(),
            pending: VecDeque::new(),
            queued: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            needed: BTreeSet::new(),
            finished: BTreeSet::new(),
            send_seq: 0,
            recv_seq: 0,
            sent_done: false,
            told: BTreeSet::new(),
            rostered: BTreeSet::new(),
            histories_sent: BTreeSet::new(),
            histories_taken: BTreeSet::new(),
            peer_done: false,
            last_said: 0,
            round_sent: false,
            round_heard: false,
            last_heard: now,
            bytes_sent: 0,
            bytes_received: 0,
            sent_docs: BTreeSet::new(),
            updated_docs: BTreeSet::new(),
            incoming: Vec::new(),
            refused: BTreeSet::new(),
            refused_by_peer: BTreeSet::new(),
            digests_sent: false,
        };
        s.send(&Message::Hello { protocol: PROTOCOL, device: *me.as_bytes() });
        s
    }

    /// The peer.
    pub fn peer(&self) -> DeviceKey {
        self.peer
    }

    /// Whether both sides have nothing more to send.
    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Running && self.sent_done && self.peer_done && self.outbox.is_empty()
    }

    /// Documents this side sent whole or sent changes of, so far.
    pub fn documents_sent(&self) -> usize {
        self.sent_docs.len()
    }

    /// Documents the peer's data changed on this device, so far.
    pub fn documents_received(&self) -> usize {
        self.updated_docs.len()
    }

    /// Documents whose data from the peer this side refused, so far.
    pub fn documents_refused(&self) -> usize {
        self.refused.len()
    }

    /// Documents whose data from this side the peer refused, so far.
    pub fn documents_refused_by_peer(&self) -> usize {
        self.refused_by_peer.len()
    }

    /// Frame bytes sent and received, so far.
    pub fn bytes(&self) -> (u64, u64) {
        (self.bytes_sent, self.bytes_received)
    }

    /// Whether the session ended (by error).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn send(&mut self, m: &Message) {
        match frame::encode(self.send_seq, m) {
            Ok(bytes) => {
                if !matches!(m, Message::Done { .. } | Message::Ack { .. }) {
                    self.sent_done = false;
                    self.round_sent = true;
                    self.last_said = self.send_seq;
                }
                self.send_seq += 1;
                self.bytes_sent += bytes.len() as u64;
                self.outbox.push_back(bytes);
            }
            // Only a document over the frame limit gets here; it is skipped, not fatal.
            Err(e) => tracing::warn!(error = %e, "message not sent"),
        }
    }

    fn fail(&mut self, e: SyncError) -> SyncError {
        self.phase = Phase::Closed;
        self.outbox.clear();
        self.events.push_back(Event::PeerError(e.clone()));
        e
    }

    /// Feeds bytes received from the peer. On error the session is closed: drop the connection.
    pub fn handle_bytes(
        &mut self,
        store: &mut impl SyncStore,
        now: u64,
        bytes: &[u8],
    ) -> Result<(), SyncError> {
        if self.phase == Phase::Closed {
            return Err(SyncError::Closed);
        }
        self.last_heard = now;
        self.round_sent = false;
        self.bytes_received += bytes.len() as u64;
        let messages = match self.decoder.feed(bytes) {
            Ok(m) => m,
            Err(e) => return Err(self.fail(e.into())),
        };
        for (seq, m) in messages {
            if seq != self.recv_seq {
                let e = SyncError::Protocol(format!("frame {seq} where {} was due", self.recv_seq));
                return Err(self.fail(e));
            }
            self.recv_seq += 1;
            // Whole documents arriving together are stored together; anything else is
            // handled after them (a sync message may be about one of them).
            if !matches!(m, Message::Document { .. })
                && let Err(e) = self.flush_documents(store)
            {
                return Err(self.fail(e));
            }
            if let Err(e) = self.handle(store, m) {
                return Err(self.fail(e));
            }
        }
        if let Err(e) = self.flush_documents(store) {
            return Err(self.fail(e));
        }
        if let Err(e) = self.pump(store) {
            return Err(self.fail(e));
        }
        Ok(())
    }

    /// Checks for a silent peer.
    pub fn handle_timeout(&mut self, now: u64) -> Result<(), SyncError> {
        if self.phase != Phase::Closed && now.saturating_sub(self.last_heard) > IDLE_TIMEOUT_MS {
            return Err(self.fail(SyncError::Timeout(now - self.last_heard)));
        }
        Ok(())
    }

    /// When the session next needs [`Session::handle_timeout`].
    pub fn next_timeout(&self) -> u64 {
        self.last_heard + IDLE_TIMEOUT_MS
    }

    /// A local change to `doc`: sync it with the peer if the peer may see it (live mode).
    pub fn local_change(
        &mut self,
        store: &mut impl SyncStore,
        doc: DocId,
    ) -> Result<(), SyncError> {
        if self.phase != Phase::Running {
            return Ok(());
        }
        // A network's document changed here: its membership may no longer hold the peer.
        if self.mine.contains_key(&doc)
            && let Err(e) = self.recheck_networks(store)
        {
            return Err(self.fail(e));
        }
        if self.stopped(doc) || !self.allowed.contains_key(&doc) {
            return Ok(());
        }
        // Listed in networks of ours of which the peer has not said what it holds: it waits
        // for the first such answer (one answered network that lists it is enough). A document
        // not listed in any (it came whole from the peer) the peer holds.
        let listed_in: Vec<DocId> = self.networks_listing(doc).collect();
        if !listed_in.is_empty() && !listed_in.iter().any(|n| self.answered.contains(n)) {
            self.early.insert(doc);
            return Ok(());
        }
        self.round_sent = false;
        self.enqueue(doc);
        if let Err(e) = self.pump(store) {
            return Err(self.fail(e));
        }
        Ok(())
    }

    /// Sends the digests of the networks shared with the peer right behind the hello, so two
    /// devices already in sync finish in two round trips (hello + digests, then done) instead
    /// of three. Optional: without it the digests follow the peer's hello.
    pub fn start(&mut self, store: &mut impl SyncStore) -> Result<(), SyncError> {
        if self.phase == Phase::Closed {
            return Err(SyncError::Closed);
        }
        if let Err(e) = self.send_digests(store) {
            return Err(self.fail(e));
        }
        Ok(())
    }

    fn send_digests(&mut self, store: &mut impl SyncStore) -> Result<(), SyncError> {
        if self.digests_sent {
            return Ok(());
        }
        self.digests_sent = true;
        // A removed peer is told, and learns nothing else about those networks.
        for (network, ops) in store.removals_for(&self.peer)? {
            self.told.insert(network);
            self.send(&Message::Removed { network: *network.as_bytes(), ops });
        }
        for network in store.shared_networks(&self.peer)? {
            self.started_with.insert(network);
            let inv = store.inventory(network)?;
            for (doc, _) in &inv {
                self.allowed.insert(*doc, network);
            }
            let digest = digest(&inv);
            self.mine.insert(network, inv);
            self.send(&Message::Digest { network: *network.as_bytes(), digest });
        }
        Ok(())
    }

    /// Drops the networks shared with the peer at the start that it is no longer a device of
    /// here (a removal of it, or of this device, reached this device during the session, by
    /// another session, the relay or this device's own admin): the peer is handed its removal,
    /// and every document this session would sync only through those networks is refused from
    /// now on, both ways, so a removed device neither receives what is written after its
    /// removal nor writes into what it was removed from (promise 5).
    ///
    /// Only networks shared at the start count (one the peer is bringing this device, joining,
    /// is not held yet, and not shared by the store's word). What the peer sends about a
    /// dropped network afterwards (it may be on its way) is passed over in silence.
    fn recheck_networks(&mut self, store: &mut impl SyncStore) -> Result<(), SyncError> {
        let now: BTreeSet<DocId> = store.shared_now(&self.peer)?.into_iter().collect();
        let gone: BTreeSet<DocId> = self
            .mine
            .keys()
            .filter(|n| self.started_with.contains(n) && !now.contains(n))
            .copied()
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        self.dropped.extend(gone.iter().copied());
        for (network, ops) in store.removals_for(&self.peer)? {
            if gone.contains(&network) && self.told.insert(network) {
                self.send(&Message::Removed { network: *network.as_bytes(), ops });
            }
        }
        for n in &gone {
            self.mine.remove(n);
            self.theirs.remove(n);
            self.answered.remove(n);
        }
        self.incoming.retain(|(n, ..)| !gone.contains(n));
        // Documents the peer named there that it was to send whole: they will not be taken.
        let named: Vec<DocId> = self
            .named_in
            .iter()
            .chain(self.held_unlisted.iter())
            .filter(|(_, n)| gone.contains(n))
            .map(|(d, _)| *d)
            .collect();
        self.finished.extend(named);
        let through: Vec<(DocId, DocId)> =
            self.allowed.iter().filter(|(_, n)| gone.contains(n)).map(|(d, n)| (*d, *n)).collect();
        for (doc, network) in through {
            let other = self.networks_listing(doc).next();
            if let Some(other) = other {
                self.allowed.insert(doc, other);
                continue;
            }
            self.allowed.remove(&doc);
            self.early.remove(&doc);
            let why = format!("the peer is no longer a device of network {network} here");
            self.refuse(doc, why, false);
        }
        Ok(())
    }

    fn send_inventory(&mut self, network: DocId) {
        if !self.sent_inventory.insert(network) {
            return;
        }
        let docs: Vec<(WireDocId, Vec<WireHash>)> = self
            .mine
            .get(&network)
            .map(|inv| inv.iter().map(|(d, h)| (*d.as_bytes(), h.clone())).collect())
            .unwrap_or_default();
        self.send(&Message::Inventory { network: *network.as_bytes(), docs });
    }

    fn enqueue(&mut self, doc: DocId) {
        if self.stopped(doc) {
            return;
        }
        if self.queued.insert(doc) {
            self.pending.push_back(doc);
        }
        self.needed.insert(doc);
        self.finished.remove(&doc);
    }

    fn handle(&mut self, store: &mut impl SyncStore, m: Message) -> Result<(), SyncError> {
        if !matches!(m, Message::Done { .. } | Message::Ack { .. }) {
            self.round_heard = true;
            // The peer said something after its `Done`, and is owed one after we handled it,
            // even if we answer nothing else (a live change we already had, say): otherwise
            // it would wait for an answer that never comes.
            self.peer_done = false;
            self.sent_done = false;
        }
        match (self.phase, m) {
            (Phase::AwaitHello, Message::Hello { protocol, device }) => {
                if protocol != PROTOCOL {
                    return Err(SyncError::Version(protocol));
                }
                if &device != self.peer.as_bytes() {
                    return Err(SyncError::WrongPeer);
                }
                self.phase = Phase::Running;
                self.send_digests(store)
            }
            (Phase::AwaitHello, other) => {
                Err(SyncError::Protocol(format!("{} before hello", name(&other))))
            }
            (Phase::Running, Message::Hello { .. }) => {
                Err(SyncError::Protocol("second hello".into()))
            }
            (Phase::Running, Message::Digest { network, digest: theirs }) => {
                let network = doc_id(&network);
                if let btree_map::Entry::Vacant(entry) = self.mine.entry(network) {
                    // A network whose roster we hold but which lacks the peer: not answered,
                    // not named. One whose roster we do not hold: the peer is bringing us a
                    // network we were invited to and accepted (joining), or an earlier session
                    // was cut before the roster arrived; we answer with whatever we hold of it
                    // (often nothing), so that our own changes to its documents reach the peer
                    // too. Any other network is someone planting one (promise 1): not answered.
                    if store.holds(network)? || !store.accepted(network)? {
                        return Ok(());
                    }
                    // Without its roster this device cannot tell that the peer is in that
                    // network, so it names none of its own documents (promise 2: a peer that
                    // names a network learns nothing about what is linked to it here); the
                    // peer may still send its documents whole, each checked to belong.
                    entry.insert(Vec::new());
                }
                if self.mine.get(&network).is_some_and(|inv| digest(inv) != theirs) {
                    self.send_inventory(network);
                } else {
                    // The peer holds what we hold of this network, as we held it.
                    self.answered.insert(network);
                    self.sync_early(network, |_| true);
                }
                Ok(())
            }
            (Phase::Running, Message::Inventory { network, docs }) => {
                let network = doc_id(&network);
                let Some(mine) = self.mine.get(&network).cloned() else {
                    return Ok(());
                };
                // What the peer names is taken only where this device agrees: documents it lists
                // in the same network, or does not hold at all (those can come only whole, each
                // checked to belong to the network). A document held here but not shared with
                // that network is passed over in silence: never sent, synced or overwritten.
                let listed: BTreeSet<DocId> = mine.iter().map(|(d, _)| *d).collect();
                let mut theirs: BTreeMap<DocId, Vec<[u8; 32]>> = BTreeMap::new();
                for (d, h) in docs {
                    let doc = doc_id(&d);
                    if listed.contains(&doc) || !store.holds(doc)? {
                        theirs.insert(doc, h);
                    } else {
                        self.held_unlisted.entry(doc).or_insert(network);
                    }
                }
                // The peer accepts whole documents only when offered in our inventory first.
                self.send_inventory(network);
                for (doc, heads) in &mine {
                    // Refused by either side already (listed in another network too).
                    if self.stopped(*doc) {
                        continue;
                    }
                    match theirs.get(doc) {
                        None => {
                            let bytes = store.export(*doc)?;
                            let signed = store.signed_heads(*doc)?;
                            self.needed.insert(*doc);
                            self.finished.insert(*doc);
                            self.sent_docs.insert(*doc);
                            self.send(&Message::Document { doc: *doc.as_bytes(), bytes, signed });
                        }
                        Some(h) => {
                            let (mut a, mut b) = (heads.clone(), h.clone());
                            a.sort();
                            b.sort();
                            if a != b {
                                self.enqueue(*doc);
                            }
                        }
                    }
                }
                for doc in theirs.keys().filter(|d| !listed.contains(d)) {
                    self.needed.insert(*doc);
                    self.named_in.entry(*doc).or_insert(network);
                }
                // Changed here since our inventory: what the peer holds too gets the change as
                // a sync message; what it lacks went whole just now, change included.
                self.answered.insert(network);
                self.sync_early(network, |d| theirs.contains_key(d));
                self.theirs.insert(network, theirs);
                Ok(())
            }
            (Phase::Running, Message::Document { doc, bytes, signed }) => {
                let doc = doc_id(&doc);
                // The peer refused our history of a document both hold, keeping its own, and
                // sends that whole (once): taken as any whole document, checked by the store,
                // which lets this side's history give way if it is the one to.
                if self.refused_by_peer.contains(&doc)
                    && let Some(network) = self.allowed.get(&doc).copied()
                {
                    if !self.histories_taken.insert(doc) {
                        return Err(SyncError::Protocol("a document sent whole twice".into()));
                    }
                    self.incoming.push((network, doc, bytes, signed));
                    return Ok(());
                }
                // Refused already (the same document offered in two networks' inventories, say):
                // not looked at again.
                if self.stopped(doc) {
                    return Ok(());
                }
                // Held here, not listed in the network the peer named it in: never merged.
                // Shared with the peer through another network, it syncs there; otherwise it
                // is judged with the round's other whole documents as if it were not held
                // (`flush_documents`).
                // Named in a network dropped since (its membership no longer holds the peer):
                // what was on its way is passed over.
                if self
                    .held_unlisted
                    .get(&doc)
                    .or_else(|| self.named_in.get(&doc))
                    .is_some_and(|n| self.dropped.contains(n))
                    && !self.allowed.contains_key(&doc)
                {
                    return Ok(());
                }
                if let Some(network) = self.held_unlisted.get(&doc).copied() {
                    if !self.allowed.contains_key(&doc) {
                        self.incoming.push((network, doc, bytes, signed));
                    }
                    return Ok(());
                }
                let network =
                    self.named_in.get(&doc).copied().ok_or_else(|| {
                        SyncError::Protocol("a document that was not offered".into())
                    })?;
                // (Named when this device did not hold it and held since, by another session or
                // the relay: judged as above, never merged, in `flush_documents`.)
                self.incoming.push((network, doc, bytes, signed));
                Ok(())
            }
            (Phase::Running, Message::Sync { doc, message, signed }) => {
                let doc = doc_id(&doc);
                // A document either side refused: what the peer sent before it heard of the
                // refusal (or keeps sending) is dropped unread, never applied and never answered,
                // so the peer cannot set the two sides going round; it still gets its `Done`.
                // (A document refused whole is not in `allowed`: checked first.)
                if self.stopped(doc) {
                    return Ok(());
                }
                if !self.allowed.contains_key(&doc) {
                    // A document the peer sent whole that we passed over: its live changes too,
                    // and as silently (an honest peer sends them; it cannot know).
                    if self.passed_over.contains(&doc) {
                        return Ok(());
                    }
                    // Naming a document this side did not agree to sync is no honest peer's
                    // doing (promise 2): the session ends, whatever else it would have brought.
                    return Err(SyncError::Protocol("sync for a document not shared".into()));
                }
                let peer = self.peer;
                let state = state_for(&mut self.states, store, &peer, doc)?;
                match store.receive(&peer, doc, state, &message, &signed) {
                    Ok(true) => {
                        self.updated_docs.insert(doc);
                        self.events.push_back(Event::DocumentUpdated(doc));
                        if self.mine.contains_key(&doc) {
                            self.recheck_networks(store)?;
                            if self.stopped(doc) {
                                return Ok(());
                            }
                        }
                    }
                    Ok(false) => {}
                    // This document's data did not pass the store's checks (nothing of it was
                    // stored): that document alone is refused. The peer may have a bug or a
                    // forged change it was handed, and the other documents are no less good.
                    // It is a document both sides listed in a network they share, so telling
                    // the peer says nothing it did not know.
                    Err(StoreFailure::Refused(reason)) => {
                        self.refuse(doc, reason, true);
                        return self.send_roster(store, doc);
                    }
                    // The peer's history gives way to ours: it gets ours whole (once), as its
                    // Automerge sync messages would not bring it now that the document is
                    // refused both ways.
                    Err(StoreFailure::TwoHistories(reason)) => {
                        self.refuse(doc, reason, true);
                        if self.histories_sent.insert(doc) {
                            let bytes = store.export(doc)?;
                            let signed = store.signed_heads(doc)?;
                            self.send(&Message::Document { doc: *doc.as_bytes(), bytes, signed });
                        }
                        return self.send_roster(store, doc);
                    }
                    Err(e) => return Err(e.into()),
                }
                self.in_flight.remove(&doc);
                self.enqueue(doc);
                Ok(())
            }
            (Phase::Running, Message::Refused { doc }) => {
                let doc = doc_id(&doc);
                // Only data this side sent can be refused, and it sends data only about documents
                // it agreed to sync: a notice about any other is no honest peer's doing.
                if !self.allowed.contains_key(&doc) && !self.sent_docs.contains(&doc) {
                    return Err(SyncError::Protocol("refusal of a document never sent".into()));
                }
                if self.refused_by_peer.insert(doc) {
                    self.stop(doc);
                    self.events.push_back(Event::DocumentRefusedByPeer(doc));
                }
                self.send_roster(store, doc)
            }
            (Phase::Running, Message::Removed { network, ops }) => {
                let network = doc_id(&network);
                match store.apply_removal(network, &self.peer, &ops)? {
                    RemovalOutcome::Wiped => {
                        // Nothing of it is held any more: forget what the session knew of it.
                        self.mine.remove(&network);
                        self.theirs.remove(&network);
                        self.allowed.retain(|_, n| *n != network);
                        self.events.push_back(Event::NetworkWiped(network));
                    }
                    // Once per network and session, and never to a removal this side sent
                    // (so two devices answer each other at most once).
                    RemovalOutcome::Answer(ops) => {
                        if self.told.insert(network) {
                            self.send(&Message::Removed { network: *network.as_bytes(), ops });
                        }
                    }
                    RemovalOutcome::Ignored => {}
                }
                Ok(())
            }
            (Phase::Running, Message::Roster { network, ops }) => {
                let network = doc_id(&network);
                // Only about a network both sides share, and only once its document was
                // refused one way or the other: otherwise the document carries the operations,
                // and an honest peer does not send them twice.
                if !self.mine.contains_key(&network)
                    || !(self.refused.contains(&network) || self.refused_by_peer.contains(&network))
                {
                    return Err(SyncError::Protocol("a roster not called for".into()));
                }
                if store.learn_roster(network, &self.peer, &ops)? {
                    self.events.push_back(Event::DocumentUpdated(network));
                }
                self.send_roster(store, network)
            }
            (Phase::Running, Message::Done { seen }) => {
                if seen > self.send_seq {
                    return Err(SyncError::Protocol(format!(
                        "done after {seen} frames, only {} sent",
                        self.send_seq
                    )));
                }
                // A `Done` sent before the peer saw our latest message answers nothing.
                if seen <= self.last_said {
                    return Ok(());
                }
                self.peer_done = true;
                // The peer has seen everything we sent and has nothing more to say.
                self.in_flight.retain(|_, sent| *sent >= seen);
                if self.sent_done && self.pending.is_empty() {
                    self.settle(store)?;
                }
                Ok(())
            }
            (Phase::Running, Message::Ack { seen }) => {
                if seen > self.send_seq {
                    return Err(SyncError::Protocol(format!(
                        "ack of {seen} frames, only {} sent",
                        self.send_seq
                    )));
                }
                // Replies to what it saw came before the ack: the rest needed none.
                self.in_flight.retain(|_, sent| *sent >= seen);
                Ok(())
            }
            (Phase::Closed, _) => Err(SyncError::Closed),
        }
    }

    /// Stores the whole documents received so far in this round, together.
    fn flush_documents(&mut self, store: &mut impl SyncStore) -> Result<(), SyncError> {
        if self.incoming.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.incoming);
        // One copy of each document (a peer sends one per network inventory that lists it):
        // the first is checked, so a document refused is not stored from a second copy.
        let mut seen = BTreeSet::new();
        batch.retain(|(_, doc, ..)| seen.insert(*doc));
        // A document held here that the peer may not sync (not listed in the network it came
        // through, and shared with the peer through no other) is never stored or merged, and
        // the peer must not learn that it is held (promise 2): it is judged as if it were not.
        // What a device that lacks it would refuse is refused aloud all the same; what it would
        // take is passed over in silence. Such a device would tell the peer too.
        let order: BTreeMap<DocId, usize> =
            batch.iter().enumerate().map(|(i, (_, d, ..))| (*d, i)).collect();
        let mut held = Vec::new();
        let mut new = Vec::with_capacity(batch.len());
        for d in batch {
            if !self.allowed.contains_key(&d.1) && store.holds(d.1)? {
                held.push(d);
            } else {
                new.push(d);
            }
        }
        let ids: Vec<(DocId, DocId)> = new.iter().map(|(n, d, ..)| (*d, *n)).collect();
        let mut refused = store.import_many(new)?;
        for (network, doc, bytes, signed) in held {
            match store.check_as_new(network, doc, &bytes, &signed) {
                Ok(()) => {
                    self.passed_over.insert(doc);
                    self.finished.insert(doc);
                }
                Err(StoreFailure::Refused(reason) | StoreFailure::TwoHistories(reason)) => {
                    refused.push(Refusal { doc, reason });
                }
                Err(e) => return Err(e.into()),
            }
        }
        // In the order the documents came, whichever were held.
        refused.sort_by_key(|r| order.get(&r.doc).copied().unwrap_or(usize::MAX));
        for Refusal { doc, reason } in refused {
            // About the bytes the peer sent (they do not load, are another document, are not
            // shared with that network, carry changes no signature covers): telling it reveals
            // nothing of this device. Not fatal: an honest peer sends a document not shared
            // with the network it offered it in when its user unshared it between the peer's
            // inventory and its sending it.
            self.refuse(doc, reason, true);
        }
        for (doc, network) in ids {
            if self.refused.contains(&doc) {
                continue;
            }
            // Stored, so checked to belong to the network: from now on it may be synced.
            self.allowed.insert(doc, network);
            self.finished.insert(doc);
            self.updated_docs.insert(doc);
            self.events.push_back(Event::DocumentUpdated(doc));
        }
        self.progress();
        Ok(())
    }

    /// The networks whose inventory of ours (as sent) lists `doc`.
    fn networks_listing(&self, doc: DocId) -> impl Iterator<Item = DocId> + '_ {
        self.mine.iter().filter(move |(_, inv)| inv.iter().any(|(d, _)| *d == doc)).map(|(n, _)| *n)
    }

    /// Queues the documents of `network` changed here before the peer told us of it, those
    /// that `peer_holds`.
    fn sync_early(&mut self, network: DocId, peer_holds: impl Fn(&DocId) -> bool) {
        let listed =
            |d: &DocId| self.mine.get(&network).is_some_and(|inv| inv.iter().any(|(x, _)| x == d));
        let ready: Vec<DocId> = self.early.iter().filter(|d| listed(d)).copied().collect();
        for doc in ready {
            self.early.remove(&doc);
            if peer_holds(&doc) {
                self.enqueue(doc);
            }
        }
    }

    /// Whether either side refused `doc`'s data in this session: nothing more about it is
    /// exchanged.
    fn stopped(&self, doc: DocId) -> bool {
        self.refused.contains(&doc) || self.refused_by_peer.contains(&doc)
    }

    /// Refuses the peer's data for `doc` (the store stored none of it): says why to the app,
    /// tells the peer which document (if `tell`) and syncs it no more in this session.
    fn refuse(&mut self, doc: DocId, reason: String, tell: bool) {
        if !self.refused.insert(doc) {
            return;
        }
        self.stop(doc);
        self.events.push_back(Event::DocumentRefused { doc, reason });
        if tell {
            self.send(&Message::Refused { doc: *doc.as_bytes() });
        }
    }

    /// When `doc` is the document of a network both sides share and it did not merge one way
    /// or the other: hands the peer this side's membership operations of it, once per session.
    fn send_roster(&mut self, store: &mut impl SyncStore, doc: DocId) -> Result<(), SyncError> {
        if !self.mine.contains_key(&doc) || !self.rostered.insert(doc) {
            return Ok(());
        }
        let ops = store.roster(doc)?;
        self.send(&Message::Roster { network: *doc.as_bytes(), ops });
        Ok(())
    }

    /// Ends the exchange about `doc`: nothing waits for it, nothing more is sent of it. Its
    /// exchange counts as finished (for progress: it will not get further in this session).
    /// Both sides are done: the store applies what took effect, and the peer is told so.
    fn settle(&mut self, store: &mut impl SyncStore) -> Result<(), SyncError> {
        for doc in store.settled()? {
            self.stop(doc);
        }
        self.events.push_back(Event::PeerDone);
        Ok(())
    }

    fn stop(&mut self, doc: DocId) {
        // The sync state may have taken in what was refused; the saved one did not (it is
        // saved with the changes it describes), and the next session starts from that.
        self.states.remove(&doc);
        self.in_flight.remove(&doc);
        self.pending.retain(|d| *d != doc);
        self.queued.remove(&doc);
        self.needed.insert(doc);
        self.finished.insert(doc);
    }

    /// Generates sync messages for pending documents, within the window; says `Done` when
    /// there is nothing left to send.
    fn pump(&mut self, store: &mut impl SyncStore) -> Result<(), SyncError> {
        if self.phase != Phase::Running {
            return Ok(());
        }
        let mut deferred = VecDeque::new();
        while let Some(doc) = self.pending.pop_front() {
            if self.in_flight.len() >= WINDOW && !self.in_flight.contains_key(&doc) {
                deferred.push_back(doc);
                continue;
            }
            self.queued.remove(&doc);
            let peer = self.peer;
            let state = state_for(&mut self.states, store, &peer, doc)?;
            match store.generate(doc, state)? {
                Some(Outgoing { message, has_changes }) => {
                    // Changes go with the signatures that cover them.
                    let signed = if has_changes {
                        self.sent_docs.insert(doc);
                        store.signed_heads(doc)?
                    } else {
                        Vec::new()
                    };
                    // Remember which frame carried it: an `Ack` or `Done` that saw this frame
                    // without answering it means the peer had nothing to say about `doc`.
                    self.in_flight.insert(doc, self.send_seq);
                    self.send(&Message::Sync { doc: *doc.as_bytes(), message, signed });
                }
                None => {
                    self.finished.insert(doc);
                }
            }
        }
        for doc in deferred {
            self.queued.insert(doc);
            self.pending.push_back(doc);
        }
        self.progress();
        if !self.round_sent && self.pending.is_empty() && !self.sent_done {
            self.send(&Message::Done { seen: self.recv_seq });
            self.sent_done = true;
            if self.peer_done {
                self.settle(store)?;
            }
        } else if self.round_heard && !self.sent_done {
            // Not done, but the peer's window must not wait on sync messages of its that
            // needed no answer: both sides' windows full of those, each waiting for the
            // other, would stall the session (found on QUIC with two large catch-ups).
            self.send(&Message::Ack { seen: self.recv_seq });
        }
        self.round_heard = false;
        Ok(())
    }

    fn progress(&mut self) {
        self.events.push_back(Event::Progress {
            docs_done: self.finished.intersection(&self.needed).count(),
            docs_total: self.needed.len(),
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
        });
    }
}

/// The sync state for `doc`: in memory, else as an earlier session with this peer left it.
fn state_for<'a>(
    states: &'a mut BTreeMap<DocId, State>,
    store: &mut impl SyncStore,
    peer: &DeviceKey,
    doc: DocId,
) -> Result<&'a mut State, SyncError> {
    if let btree_map::Entry::Vacant(e) = states.entry(doc) {
        e.insert(store.load_state(peer, doc)?.unwrap_or_default());
    }
    states.get_mut(&doc).ok_or_else(|| SyncError::Storage("sync state vanished".into()))
}

fn name(m: &Message) -> &'static str {
    match m {
        Message::Hello { .. } => "hello",
        Message::Digest { .. } => "digest",
        Message::Removed { .. } => "removed",
        Message::Inventory { .. } => "inventory",
        Message::Document { .. } => "document",
        Message::Sync { .. } => "sync",
        Message::Done { .. } => "done",
        Message::Ack { .. } => "ack",
        Message::Refused { .. } => "refused",
        Message::Roster { .. } => "roster",
    }
}
