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

/// Sends every document of `from` to `to` (whole documents, as a first sync would).
pub fn send_all(from: &Device, to: &Device) {
    for (id, _) in from.document_ids().expect("ids") {
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
