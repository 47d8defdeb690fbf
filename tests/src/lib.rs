//! Cross-crate scenarios for Nabij: several devices exchanging documents, crashes, bad input.
//!
//! This library holds the helpers the scenarios share: a deterministic clock and a way to
//! compare what two devices show, beside those they share with the benchmarks
//! (`nabij_core::test_utils`, feature `test-utils`: a seeded random source, note text). The
//! scenarios themselves are in `tests/`.

pub mod attack;
pub mod proxy;
pub mod relay;

// These live in `nabij_core::test_utils` with the benchmarks' helpers; re-exported because the
// scenarios name them from this crate.
pub use nabij_core::test_utils::{Rng, observation};

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use automerge::sync::{State, SyncDoc};
use nabij_core::{
    Clock, Device, DeviceKey, DeviceOptions, DocId,
    authorship::SignedHead,
    model::{CaseFilter, CaseSummary, LearningPointSummary},
    sync::{
        Event, Refusal, RemovalOutcome, Session, StoreFailure, SyncStore,
        session::{Inventory, Outgoing, Removals},
    },
    test_utils::shared_case,
};

/// A clock that advances one millisecond each time it is read: deterministic timestamps.
#[derive(Debug)]
pub struct StepClock(AtomicI64);

impl StepClock {
    /// A clock starting at `start` milliseconds.
    pub fn new(start: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(start)))
    }

    /// Moves the clock on by `ms` (a phone left in a drawer for a month).
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for StepClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// Device options with a stepping clock.
pub fn options(clock: Arc<StepClock>) -> DeviceOptions {
    DeviceOptions { clock, key: Some(store_key()), ..DeviceOptions::default() }
}

/// The key every scenario test's store is encrypted with, as apps' stores are (one key for all,
/// so that a copied store opens like the original). Derived from a fixed text: never for a
/// real device.
pub fn store_key() -> nabij_core::StoreKey {
    let text: &[u8; 32] = b"nabij scenario tests: store key!";
    nabij_core::StoreKey::from_slice(text).expect("32 bytes")
}

/// Opens the encrypted test store at `path` (see [`store_key`]) with default options.
pub fn reopen(path: &std::path::Path) -> Device {
    Device::open_with(path, DeviceOptions { key: Some(store_key()), ..DeviceOptions::default() })
        .expect("open the store")
}

/// Everything the app's screens show, for comparing devices.
#[derive(Debug, PartialEq)]
pub struct Screens {
    /// The case list.
    pub cases: Vec<CaseSummary>,
    /// Each case's timeline and the learning points citing it.
    pub per_case: Vec<(DocId, Vec<nabij_core::model::Note>, Vec<LearningPointSummary>)>,
    /// Each case as read from its document.
    pub case_docs: Vec<nabij_core::model::Case>,
    /// Learning points.
    pub learning_points: Vec<LearningPointSummary>,
    /// Search results (kind, doc, note) for a few words, as sets.
    pub searches: Vec<Vec<String>>,
}

/// Reads every screen of a device.
pub fn screens(d: &Device, words: &[&str]) -> Screens {
    let all = CaseFilter { limit: Some(10_000), ..CaseFilter::default() };
    let cases = d.list_cases(&all).expect("list cases");
    let mut per_case = Vec::new();
    let mut case_docs = Vec::new();
    for c in &cases {
        per_case.push((
            c.id,
            d.case_timeline(c.id).expect("timeline"),
            d.learning_points_citing(c.id).expect("citing"),
        ));
        case_docs.push(d.case(c.id).expect("case"));
    }
    let searches = words
        .iter()
        .map(|w| {
            let mut hits: Vec<String> = d
                .search(w, 500)
                .expect("search")
                .into_iter()
                .map(|h| format!("{:?} {} {:?}", h.kind, h.doc_id, h.note_id))
                .collect();
            hits.sort();
            hits
        })
        .collect();
    Screens {
        cases,
        per_case,
        case_docs,
        learning_points: d.list_learning_points(None, None).expect("lps"),
        searches,
    }
}

/// Sends every document of `from` to `to` (whole documents, as a first sync would): networks
/// first, as a session does, since what is shared with them is checked against them.
pub fn send_all(from: &Device, to: &Device) {
    let mut ids = from.document_ids().expect("ids");
    ids.sort_by_key(|(id, kind)| (*kind != nabij_core::model::DocKind::Network, *id));
    for (id, _) in ids {
        let bytes = from.export_document(id).expect("export");
        to.merge_document(&bytes).expect("merge");
    }
}

/// Every document a device holds with its heads, sorted: equal means converged.
pub fn doc_heads(d: &Device) -> Vec<(DocId, Vec<[u8; 32]>)> {
    let mut out: Vec<(DocId, Vec<[u8; 32]>)> = d
        .document_ids()
        .expect("ids")
        .into_iter()
        .map(|(id, _)| {
            let mut h: Vec<[u8; 32]> = d.heads(id).expect("heads").iter().map(|h| h.0).collect();
            h.sort();
            (id, h)
        })
        .collect();
    out.sort();
    out
}

/// The cases a device holds.
pub fn case_ids(d: &Device) -> Vec<DocId> {
    d.document_ids()
        .expect("ids")
        .into_iter()
        .filter(|(_, k)| *k == nabij_core::model::DocKind::Case)
        .map(|(id, _)| id)
        .collect()
}

/// Opens a device on `dir/name` with `name` as its display name.
pub fn open_device(dir: &std::path::Path, name: &str) -> Arc<Device> {
    let d = reopen(&dir.join(name));
    d.set_display_name(name).expect("name");
    Arc::new(d)
}

/// A device on a *plain* store `dir/<name>.db` with `name` as its display name and `clock`'s
/// time: for the byte scans of the erasure and consent tests (on an encrypted store a scan
/// finds nothing whatever was deleted).
pub fn plain_device(dir: &std::path::Path, name: &str, clock: &Arc<StepClock>) -> Device {
    let options = DeviceOptions { clock: clock.clone(), ..DeviceOptions::default() };
    let d = Device::open_with(dir.join(format!("{name}.db")), options).expect("open");
    d.set_display_name(name).expect("name");
    d
}

/// `admin` invites `d` into `network` as its own member, and `d` accepts.
pub fn admit(admin: &Device, network: DocId, d: &Device) {
    let inv = admin.invite(network, d.member_id(), &d.display_name(), d.device_key());
    d.join(&inv.expect("invite")).expect("join");
}

/// Devices opened on `dir` under `names`, the first of which creates a network and invites the
/// others (each joins as its own member): the devices and the network. Nothing is exchanged
/// yet.
pub fn network_of<const N: usize>(
    dir: &std::path::Path,
    names: [&str; N],
) -> ([Arc<Device>; N], DocId) {
    invite_all(names.map(|n| open_device(dir, n)))
}

/// [`network_of`] with devices whose keys, ids and clocks come from `seed`: the same run each
/// time for one seed.
pub fn seeded_network_of<const N: usize>(
    dir: &std::path::Path,
    names: [&str; N],
    seed: u64,
) -> ([Arc<Device>; N], DocId) {
    let clock = StepClock::new(1_700_000_000_000);
    let mut i = 0;
    invite_all(names.map(|n| {
        i += 1;
        let opts = DeviceOptions {
            key: Some(store_key()),
            ..DeviceOptions::deterministic_for_tests(clock.clone(), seed * 16 + i)
        };
        let d = Device::open_with(dir.join(n), opts).expect("open");
        d.set_display_name(n).expect("name");
        Arc::new(d)
    }))
}

fn invite_all<const N: usize>(devices: [Arc<Device>; N]) -> ([Arc<Device>; N], DocId) {
    let network = devices[0].create_network("Wijknetwerk Oost").expect("network");
    for d in &devices[1..] {
        let inv = devices[0].invite(network, d.member_id(), &d.display_name(), d.device_key());
        d.join(&inv.expect("invite")).expect("join");
    }
    (devices, network)
}

/// A case shared with `network`, with `notes` notes about debts and school.
pub fn case_with_notes(d: &Device, network: DocId, subject: &str, notes: usize) -> DocId {
    let case = shared_case(d, network, subject);
    let batch = (0..notes)
        .map(|i| observation(&format!("{subject}: gesprek {i}, afspraken over schulden en school")))
        .collect();
    d.add_notes(case, batch).expect("notes");
    case
}

/// A peer with a modified app in a meeting session with `victim`: it sends whatever frames it
/// likes through the victim's real session and store, and keeps everything the victim answers.
pub struct RawPeer<'a> {
    victim: &'a Device,
    session: nabij_core::sync::Session,
    seq: u64,
    decoder: nabij_core::sync::FrameDecoder,
    /// What the victim sent back.
    pub answers: Vec<nabij_core::sync::Message>,
}

impl<'a> RawPeer<'a> {
    /// A session of `victim` with the device `me` (the transport authenticated it), after its
    /// hello.
    pub fn new(victim: &'a Device, me: nabij_core::DeviceKey) -> Self {
        let session = nabij_core::sync::Session::new(victim.device_key(), me, 0);
        let mut peer = RawPeer {
            victim,
            session,
            seq: 0,
            decoder: nabij_core::sync::FrameDecoder::new(),
            answers: vec![],
        };
        peer.send(nabij_core::sync::Message::Hello {
            protocol: nabij_core::sync::session::PROTOCOL,
            device: *me.as_bytes(),
        })
        .expect("hello");
        peer
    }

    /// Sends one message; the victim's session's verdict on it.
    pub fn send(
        &mut self,
        m: nabij_core::sync::Message,
    ) -> Result<(), nabij_core::sync::SyncError> {
        let mut store = self.victim;
        let frame = nabij_core::sync::frame::encode(self.seq, &m).expect("encode");
        self.seq += 1;
        let result = self.session.handle_bytes(&mut store, 0, &frame);
        while let Some(out) = self.session.poll_transmit() {
            for (_, m) in self.decoder.feed(&out).expect("the victim's frames decode") {
                self.answers.push(m);
            }
        }
        result
    }

    /// The victim's session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The events the victim's session raised since the last call.
    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    /// The answers, by kind and document, for a failure message.
    pub fn summary(&self) -> String {
        use nabij_core::sync::Message;
        let short = |d: &[u8; 16]| DocId::from_bytes(*d).to_string();
        let parts: Vec<String> = self
            .answers
            .iter()
            .map(|m| match m {
                Message::Inventory { docs, .. } => {
                    format!(
                        "inventory[{}]",
                        docs.iter().map(|(d, _)| short(d)).collect::<Vec<_>>().join(",")
                    )
                }
                Message::Document { doc, .. } => format!("document {}", short(doc)),
                Message::Sync { doc, .. } => format!("sync {}", short(doc)),
                Message::Hello { .. } => "hello".into(),
                Message::Digest { .. } => "digest".into(),
                Message::Removed { network, .. } => format!("removed {}", short(network)),
                Message::Roster { network, ops } => {
                    format!("roster {} ({} ops)", short(network), ops.len())
                }
                Message::Done { .. } => "done".into(),
                Message::Ack { .. } => "ack".into(),
                Message::Refused { doc } => format!("refused {}", short(doc)),
            })
            .collect();
        parts.join("; ")
    }

    /// Whether any answer listed the document, carried it or carried changes to it (a refusal
    /// names only what the peer sent, and does not count).
    pub fn sent_about(&self, doc: DocId) -> bool {
        use nabij_core::sync::Message;
        self.answers.iter().any(|m| match m {
            Message::Inventory { docs, .. } => docs.iter().any(|(d, _)| d == doc.as_bytes()),
            Message::Document { doc: d, .. } | Message::Sync { doc: d, .. } => d == doc.as_bytes(),
            _ => false,
        })
    }

    /// Whether any answer named the document, carried it, carried changes to it or refused it.
    pub fn named(&self, doc: DocId) -> bool {
        use nabij_core::sync::Message;
        self.answers.iter().any(|m| match m {
            Message::Inventory { docs, .. } => docs.iter().any(|(d, _)| d == doc.as_bytes()),
            // A refusal names only what the peer sent, but it still says the victim looked at
            // it: where the victim must say nothing, it must not refuse aloud either.
            Message::Document { doc: d, .. }
            | Message::Sync { doc: d, .. }
            | Message::Refused { doc: d } => d == doc.as_bytes(),
            _ => false,
        })
    }
}

/// An honest meeting between two devices through their real sessions (no transport), until
/// neither has anything to say.
pub fn meet(x: &Device, y: &Device) -> Result<(), nabij_core::sync::SyncError> {
    let (mut dx, mut dy) = (x, y);
    meet_stores((x.device_key(), &mut dx), (y.device_key(), &mut dy)).map(|_| ())
}

/// A meeting between two devices' stores (either may be a modified app's, such as
/// [`ForgingStore`]) through their real sessions, no transport: `x` starts, frames go both ways
/// until neither side has anything to say. Both sessions, to check how they ended and what they
/// report (their events are left queued).
pub fn meet_stores(
    x: (nabij_core::DeviceKey, &mut impl SyncStore),
    y: (nabij_core::DeviceKey, &mut impl SyncStore),
) -> Result<(Session, Session), nabij_core::sync::SyncError> {
    let ((kx, dx), (ky, dy)) = (x, y);
    let mut sx = Session::new(kx, ky, 0);
    let mut sy = Session::new(ky, kx, 0);
    sx.start(dx)?;
    exchange((&mut sx, dx), (&mut sy, dy))?;
    Ok((sx, sy))
}

/// Delivers frames both ways between two real sessions until neither says anything (a test
/// helper: panics if they do not fall quiet within [`exchange`]'s bound).
pub fn pump(
    sx: &mut Session,
    dx: &mut impl SyncStore,
    sy: &mut Session,
    dy: &mut impl SyncStore,
) -> Result<(), nabij_core::sync::SyncError> {
    assert!(exchange((sx, dx), (sy, dy))?, "no quiescence");
    Ok(())
}

/// Delivers frames both ways between two sessions already going, each with its store, until
/// neither has anything to say (within 200 rounds): whether they fell quiet.
pub fn exchange(
    x: (&mut Session, &mut impl SyncStore),
    y: (&mut Session, &mut impl SyncStore),
) -> Result<bool, nabij_core::sync::SyncError> {
    let ((sx, dx), (sy, dy)) = (x, y);
    for _ in 0..200 {
        let mut moved = false;
        while let Some(f) = sx.poll_transmit() {
            sy.handle_bytes(dy, 0, &f)?;
            moved = true;
        }
        while let Some(f) = sy.poll_transmit() {
            sx.handle_bytes(dx, 0, &f)?;
            moved = true;
        }
        if !moved {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A member's modified app at a meeting: its device's real store, except for one document, of
/// which it syncs a fork of its own making (changes its own store would refuse: written as
/// another device, overwriting a network's key map) with the signatures it chooses. The
/// Automerge exchange for that document runs on the fork, in memory, so the victim's session
/// sees exactly what a real peer would send.
pub struct ForgingStore<'a> {
    device: &'a Device,
    doc: DocId,
    fork: automerge::AutoCommit,
    signed: Vec<SignedHead>,
}

impl<'a> ForgingStore<'a> {
    /// `device`'s store, with `fork` standing in for its copy of `doc`, sent with `signed`
    /// (besides the signatures the device holds for the document).
    pub fn new(
        device: &'a Device,
        doc: DocId,
        fork: automerge::AutoCommit,
        signed: Vec<SignedHead>,
    ) -> Self {
        Self { device, doc, fork, signed }
    }
}

fn heads_of(doc: &mut automerge::AutoCommit) -> Vec<[u8; 32]> {
    doc.get_heads().iter().map(|h| h.0).collect()
}

impl SyncStore for ForgingStore<'_> {
    fn shared_networks(&mut self, peer: &DeviceKey) -> Result<Vec<DocId>, StoreFailure> {
        SyncStore::shared_networks(&mut self.device, peer)
    }

    fn shared_now(&mut self, peer: &DeviceKey) -> Result<Vec<DocId>, StoreFailure> {
        SyncStore::shared_now(&mut self.device, peer)
    }

    fn inventory(&mut self, network: DocId) -> Result<Inventory, StoreFailure> {
        let mut inv = SyncStore::inventory(&mut self.device, network)?;
        // The fork's heads, so that the digests differ and the document is synced.
        for (d, heads) in &mut inv {
            if *d == self.doc {
                *heads = heads_of(&mut self.fork);
            }
        }
        Ok(inv)
    }

    fn holds(&mut self, doc: DocId) -> Result<bool, StoreFailure> {
        SyncStore::holds(&mut self.device, doc)
    }

    fn accepted(&mut self, network: DocId) -> Result<bool, StoreFailure> {
        SyncStore::accepted(&mut self.device, network)
    }

    fn removals_for(&mut self, peer: &DeviceKey) -> Result<Removals, StoreFailure> {
        SyncStore::removals_for(&mut self.device, peer)
    }

    fn apply_removal(
        &mut self,
        network: DocId,
        peer: &DeviceKey,
        ops: &[Vec<u8>],
    ) -> Result<RemovalOutcome, StoreFailure> {
        SyncStore::apply_removal(&mut self.device, network, peer, ops)
    }

    fn roster(&mut self, network: DocId) -> Result<Vec<Vec<u8>>, StoreFailure> {
        SyncStore::roster(&mut self.device, network)
    }

    fn learn_roster(
        &mut self,
        network: DocId,
        peer: &DeviceKey,
        ops: &[Vec<u8>],
    ) -> Result<bool, StoreFailure> {
        SyncStore::learn_roster(&mut self.device, network, peer, ops)
    }

    fn export(&mut self, doc: DocId) -> Result<Vec<u8>, StoreFailure> {
        if doc == self.doc {
            return Ok(self.fork.save());
        }
        SyncStore::export(&mut self.device, doc)
    }

    fn signed_heads(&mut self, doc: DocId) -> Result<Vec<SignedHead>, StoreFailure> {
        let mut held = SyncStore::signed_heads(&mut self.device, doc)?;
        if doc == self.doc {
            held.extend(self.signed.iter().cloned());
        }
        Ok(held)
    }

    fn import(
        &mut self,
        network: DocId,
        doc: DocId,
        bytes: &[u8],
        signed: &[SignedHead],
    ) -> Result<(), StoreFailure> {
        SyncStore::import(&mut self.device, network, doc, bytes, signed)
    }

    fn import_many(
        &mut self,
        docs: Vec<(DocId, DocId, Vec<u8>, Vec<SignedHead>)>,
    ) -> Result<Vec<Refusal>, StoreFailure> {
        SyncStore::import_many(&mut self.device, docs)
    }

    fn check_as_new(
        &mut self,
        network: DocId,
        doc: DocId,
        bytes: &[u8],
        signed: &[SignedHead],
    ) -> Result<(), StoreFailure> {
        SyncStore::check_as_new(&mut self.device, network, doc, bytes, signed)
    }

    fn generate(
        &mut self,
        doc: DocId,
        state: &mut State,
    ) -> Result<Option<Outgoing>, StoreFailure> {
        if doc != self.doc {
            return SyncStore::generate(&mut self.device, doc, state);
        }
        Ok(self
            .fork
            .sync()
            .generate_sync_message(state)
            .map(|m| Outgoing { has_changes: !m.changes.is_empty(), message: m.encode() }))
    }

    fn load_state(&mut self, peer: &DeviceKey, doc: DocId) -> Result<Option<State>, StoreFailure> {
        if doc == self.doc {
            return Ok(None);
        }
        SyncStore::load_state(&mut self.device, peer, doc)
    }

    fn receive(
        &mut self,
        peer: &DeviceKey,
        doc: DocId,
        state: &mut State,
        message: &[u8],
        signed: &[SignedHead],
    ) -> Result<bool, StoreFailure> {
        if doc != self.doc {
            return SyncStore::receive(&mut self.device, peer, doc, state, message, signed);
        }
        let message = automerge::sync::Message::decode(message)
            .map_err(|e| StoreFailure::Refused(e.to_string()))?;
        let before = self.fork.get_heads();
        self.fork
            .sync()
            .receive_sync_message(state, message)
            .map_err(|e| StoreFailure::Refused(e.to_string()))?;
        Ok(self.fork.get_heads() != before)
    }
}
