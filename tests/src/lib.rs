//! Cross-crate scenarios for Nabij: several devices exchanging documents, crashes, bad input.
//!
//! This library holds the helpers the scenarios share: a deterministic clock and a way to
//! compare what two devices show, beside those they share with the benchmarks
//! (`nabij_core::test_utils`, feature `test-utils`: a seeded random source, note text). The
//! scenarios themselves are in `tests/`.

pub mod proxy;
pub mod relay;

// These live in `nabij_core::test_utils` with the benchmarks' helpers; re-exported because the
// scenarios name them from this crate.
pub use nabij_core::test_utils::{Rng, observation};

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use nabij_core::{
    Clock, Device, DeviceOptions, DocId,
    model::{CaseFilter, CaseSummary, LearningPointSummary},
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
}

impl Clock for StepClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// Device options with a stepping clock.
pub fn options(clock: Arc<StepClock>) -> DeviceOptions {
    DeviceOptions { clock, ..DeviceOptions::default() }
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
    let d = Device::open(dir.join(name)).expect("open");
    d.set_display_name(name).expect("name");
    Arc::new(d)
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
                Message::Done { .. } => "done".into(),
                Message::Ack { .. } => "ack".into(),
            })
            .collect();
        parts.join("; ")
    }

    /// Whether any answer named the document, carried it, or carried changes to it.
    pub fn named(&self, doc: DocId) -> bool {
        use nabij_core::sync::Message;
        self.answers.iter().any(|m| match m {
            Message::Inventory { docs, .. } => docs.iter().any(|(d, _)| d == doc.as_bytes()),
            Message::Document { doc: d, .. } | Message::Sync { doc: d, .. } => d == doc.as_bytes(),
            _ => false,
        })
    }
}

/// An honest meeting between two devices through their real sessions (no transport), until
/// neither has anything to say.
pub fn meet(x: &Device, y: &Device) -> Result<(), nabij_core::sync::SyncError> {
    use nabij_core::sync::Session;
    let mut sx = Session::new(x.device_key(), y.device_key(), 0);
    let mut sy = Session::new(y.device_key(), x.device_key(), 0);
    let (mut dx, mut dy) = (x, y);
    sx.start(&mut dx)?;
    for _ in 0..200 {
        let mut moved = false;
        while let Some(f) = sx.poll_transmit() {
            sy.handle_bytes(&mut dy, 0, &f)?;
            moved = true;
        }
        while let Some(f) = sy.poll_transmit() {
            sx.handle_bytes(&mut dx, 0, &f)?;
            moved = true;
        }
        if !moved {
            break;
        }
    }
    Ok(())
}
