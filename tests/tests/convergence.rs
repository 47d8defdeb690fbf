//! Several devices edit their own copies offline, exchange documents in random orders, and must
//! end with identical documents and identical screens; reopening a store changes nothing.

use nabij_core::{
    Device, DocId, NoteId,
    model::{
        CaseItem, CaseStatus, CaseUpdate, LearningPointStatus, LearningPointUpdate, NewCase,
        NewLearningPoint, NewNote, NoteKind,
    },
};
use nabij_tests::{StepClock, case_ids, options, screens, send_all};
use proptest::prelude::*;

const WORDS: &[&str] = &["wasmachine", "school", "huisarts", "schuld", "buurthuis", "Joke"];

#[derive(Debug, Clone)]
enum Op {
    AddNote { dev: usize, case: usize, word: usize, kind: usize },
    EditNote { dev: usize, note: usize, word: usize, at_start: bool },
    SpliceNote { dev: usize, note: usize, pos: u32, delete: u32, word: usize },
    SetSubject { dev: usize, case: usize, word: usize },
    SetStatus { dev: usize, case: usize, closed: bool },
    Tag { dev: usize, case: usize, word: usize, remove: bool },
    AddAgreement { dev: usize, case: usize, word: usize },
    NewCase { dev: usize, word: usize },
    CiteCase { dev: usize, case: usize },
    LpStatus { dev: usize, status: usize },
    Sync { from: usize, to: usize },
    SyncChanges { from: usize, to: usize, twice: bool },
}

fn op(devices: usize) -> impl Strategy<Value = Op> {
    let d = 0..devices;
    let w = 0..WORDS.len();
    prop_oneof![
        4 => (d.clone(), 0..8usize, w.clone(), 0..4usize).prop_map(|(dev, case, word, kind)| Op::AddNote { dev, case, word, kind }),
        3 => (d.clone(), 0..16usize, w.clone(), any::<bool>()).prop_map(|(dev, note, word, at_start)| Op::EditNote { dev, note, word, at_start }),
        2 => (d.clone(), 0..16usize, 0..40u32, 0..6u32, w.clone()).prop_map(|(dev, note, pos, delete, word)| Op::SpliceNote { dev, note, pos, delete, word }),
        1 => (d.clone(), 0..8usize, w.clone()).prop_map(|(dev, case, word)| Op::SetSubject { dev, case, word }),
        1 => (d.clone(), 0..8usize, any::<bool>()).prop_map(|(dev, case, closed)| Op::SetStatus { dev, case, closed }),
        1 => (d.clone(), 0..8usize, w.clone(), any::<bool>()).prop_map(|(dev, case, word, remove)| Op::Tag { dev, case, word, remove }),
        1 => (d.clone(), 0..8usize, w.clone()).prop_map(|(dev, case, word)| Op::AddAgreement { dev, case, word }),
        1 => (d.clone(), w.clone()).prop_map(|(dev, word)| Op::NewCase { dev, word }),
        1 => (d.clone(), 0..8usize).prop_map(|(dev, case)| Op::CiteCase { dev, case }),
        1 => (d.clone(), 0..4usize).prop_map(|(dev, status)| Op::LpStatus { dev, status }),
        2 => (d.clone(), d.clone()).prop_map(|(from, to)| Op::Sync { from, to }),
        2 => (d.clone(), d, any::<bool>()).prop_map(|(from, to, twice)| Op::SyncChanges { from, to, twice }),
    ]
}

struct World {
    _dir: tempfile::TempDir,
    paths: Vec<std::path::PathBuf>,
    devices: Vec<Device>,
    lp: DocId,
    /// The network every device is in: what they write is shared with it (a device takes
    /// changes only from devices of a network the document is shared with).
    network: DocId,
}

impl World {
    fn new(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = StepClock::new(1_700_000_000_000);
        let paths: Vec<_> = (0..n).map(|i| dir.path().join(format!("device{i}.db"))).collect();
        let devices: Vec<Device> = paths
            .iter()
            .map(|p| Device::open_with(p, options(clock.clone())).expect("open"))
            .collect();
        for (i, d) in devices.iter().enumerate() {
            d.set_display_name(&format!("werker {i}")).expect("name");
        }
        let network = devices[0].create_network("Wijknetwerk").expect("network");
        for d in &devices[1..] {
            let name = d.display_name();
            let invitation =
                devices[0].invite(network, d.member_id(), &name, d.device_key()).expect("invite");
            d.join(&invitation).expect("join");
        }
        let first = devices[0]
            .create_case(NewCase {
                subject: "Joke en Michelle".into(),
                tags: vec!["wonen".into()],
                networks: vec![network],
                ..NewCase::default()
            })
            .expect("case");
        let lp = devices[0]
            .create_learning_point(NewLearningPoint {
                title: "Vraag eerst hoe het thuis gaat".into(),
                cases: vec![first],
                networks: vec![network],
                ..NewLearningPoint::default()
            })
            .expect("lp");
        for d in &devices[1..] {
            send_all(&devices[0], d);
        }
        Self { _dir: dir, paths, devices, lp, network }
    }

    /// Cases and notes a device knows, in a stable order.
    fn cases(&self, dev: usize) -> Vec<DocId> {
        // document_ids() is ordered by id already.
        case_ids(&self.devices[dev])
    }

    fn notes(&self, dev: usize) -> Vec<(DocId, NoteId)> {
        let mut out = Vec::new();
        for c in self.cases(dev) {
            for n in self.devices[dev].case_timeline(c).expect("timeline") {
                out.push((c, n.id));
            }
        }
        out
    }

    fn apply(&self, op: &Op) {
        let pick = |v: &[DocId], i: usize| v.get(i % v.len().max(1)).copied();
        match *op {
            Op::AddNote { dev, case, word, kind } => {
                if let Some(c) = pick(&self.cases(dev), case) {
                    let kind = [
                        NoteKind::Observation,
                        NoteKind::Reflection,
                        NoteKind::Agreement,
                        NoteKind::Question,
                    ][kind];
                    let text = format!("Gesprek over {} met de buurman.", WORDS[word]);
                    self.devices[dev].add_note(c, NewNote { kind, text }).expect("add note");
                }
            }
            Op::EditNote { dev, note, word, at_start } => {
                let notes = self.notes(dev);
                if let Some((c, n)) = notes.get(note % notes.len().max(1)).copied() {
                    let old = self.devices[dev].note(c, n).expect("note").text;
                    let new = if at_start {
                        format!("{} {old}", WORDS[word])
                    } else {
                        format!("{old} {}", WORDS[word])
                    };
                    self.devices[dev].edit_note(c, n, &new).expect("edit");
                }
            }
            Op::SpliceNote { dev, note, pos, delete, word } => {
                let notes = self.notes(dev);
                if let Some((c, n)) = notes.get(note % notes.len().max(1)).copied() {
                    let len =
                        self.devices[dev].note(c, n).expect("note").text.chars().count() as u32;
                    let pos = pos.min(len);
                    let delete = delete.min(len - pos);
                    self.devices[dev].splice_note(c, n, pos, delete, WORDS[word]).expect("splice");
                }
            }
            Op::SetSubject { dev, case, word } => {
                if let Some(c) = pick(&self.cases(dev), case) {
                    let u = CaseUpdate {
                        subject: Some(format!("Casus {}", WORDS[word])),
                        ..CaseUpdate::default()
                    };
                    self.devices[dev].update_case(c, u).expect("subject");
                }
            }
            Op::SetStatus { dev, case, closed } => {
                if let Some(c) = pick(&self.cases(dev), case) {
                    let status = if closed { CaseStatus::Closed } else { CaseStatus::Open };
                    self.devices[dev]
                        .update_case(
                            c,
                            CaseUpdate { status: Some(status), ..CaseUpdate::default() },
                        )
                        .expect("status");
                }
            }
            Op::Tag { dev, case, word, remove } => {
                if let Some(c) = pick(&self.cases(dev), case) {
                    let t = vec![WORDS[word].to_string()];
                    let u = if remove {
                        CaseUpdate { remove_tags: t, ..CaseUpdate::default() }
                    } else {
                        CaseUpdate { add_tags: t, ..CaseUpdate::default() }
                    };
                    self.devices[dev].update_case(c, u).expect("tag");
                }
            }
            Op::AddAgreement { dev, case, word } => {
                if let Some(c) = pick(&self.cases(dev), case) {
                    let item = CaseItem::Agreement {
                        text: format!("Bellen over {}", WORDS[word]),
                        owner: "wijkwerker".into(),
                        due: Some("2026-12-01".into()),
                    };
                    self.devices[dev].add_case_item(c, item).expect("agreement");
                }
            }
            Op::NewCase { dev, word } => {
                self.devices[dev]
                    .create_case(NewCase {
                        subject: format!("Casus {}", WORDS[word]),
                        networks: vec![self.network],
                        ..NewCase::default()
                    })
                    .expect("new case");
            }
            Op::CiteCase { dev, case } => {
                if let Some(c) = pick(&self.cases(dev), case) {
                    let u = LearningPointUpdate {
                        add_cases: vec![c],
                        ..LearningPointUpdate::default()
                    };
                    self.devices[dev].update_learning_point(self.lp, u).expect("cite");
                }
            }
            Op::LpStatus { dev, status } => {
                let s = [
                    LearningPointStatus::Proposed,
                    LearningPointStatus::Discussed,
                    LearningPointStatus::Adopted,
                    LearningPointStatus::SetAside,
                ][status];
                let u = LearningPointUpdate { status: Some(s), ..LearningPointUpdate::default() };
                self.devices[dev].update_learning_point(self.lp, u).expect("lp status");
            }
            Op::SyncChanges { from, to, twice } => {
                // What a sync driver sends: only the changes the receiver lacks (by its heads).
                if from != to {
                    let (a, b) = (&self.devices[from], &self.devices[to]);
                    for (id, _) in a.document_ids().expect("ids") {
                        match b.heads(id) {
                            Ok(heads) => {
                                let changes = a.changes_since(id, &heads).expect("changes");
                                b.merge_changes(id, &changes).expect("merge changes");
                                if twice {
                                    let again = b.merge_changes(id, &changes).expect("duplicate");
                                    assert!(!again.changed, "a duplicate delivery changes nothing");
                                }
                            }
                            Err(_) => {
                                b.merge_document(&a.export_document(id).expect("export"))
                                    .expect("merge");
                            }
                        }
                    }
                }
            }
            Op::Sync { from, to } => {
                if from != to {
                    send_all(&self.devices[from], &self.devices[to]);
                }
            }
        }
    }

    fn heal(&self) {
        // Everyone to device 0, then device 0 to everyone: all hold everything.
        for d in &self.devices[1..] {
            send_all(d, &self.devices[0]);
        }
        for d in &self.devices[1..] {
            send_all(&self.devices[0], d);
        }
    }
}

fn check(ops: Vec<Op>, n: usize) {
    let world = World::new(n);
    for op in &ops {
        world.apply(op);
    }
    world.heal();
    let reference = screens(&world.devices[0], WORDS);
    let ids = world.devices[0].document_ids().expect("ids");
    for (i, d) in world.devices.iter().enumerate().skip(1) {
        assert_eq!(d.document_ids().expect("ids"), ids, "device {i} holds other documents");
        for (id, _) in &ids {
            let mut a = world.devices[0].heads(*id).expect("heads");
            let mut b = d.heads(*id).expect("heads");
            a.sort();
            b.sort();
            assert_eq!(a, b, "device {i}: heads of {id} differ");
        }
        assert_eq!(screens(d, WORDS), reference, "device {i} shows something else");
    }
    // Reopening a store, and rebuilding its derived tables, shows exactly the same.
    let World { devices, paths, _dir, .. } = world;
    drop(devices);
    for p in &paths {
        let d = nabij_tests::reopen(p);
        assert_eq!(screens(&d, WORDS), reference, "reopened {} differs", p.display());
        d.reindex().expect("reindex");
        assert_eq!(screens(&d, WORDS), reference, "reindexed {} differs", p.display());
        assert!(d.check_integrity().expect("check").is_empty());
    }
}

/// Cases per property: a few in the everyday run, 32 in the full run; `PROPTEST_CASES=N` on
/// demand.
fn config(full: bool) -> ProptestConfig {
    let default = if full { 32 } else { 4 };
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

fn run(devices: usize, max_ops: usize, full: bool) {
    proptest::test_runner::TestRunner::new(config(full))
        .run(&proptest::collection::vec(op(devices), 1..max_ops), |ops| {
            check(ops, devices);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{devices} devices: {e}"));
}

#[test]
fn two_devices_converge() {
    run(2, 40, false);
}

#[test]
fn three_devices_converge() {
    run(3, 50, false);
}

#[test]
#[ignore = "slow: the full run's 32 cases (--include-ignored)"]
fn two_devices_converge_full() {
    run(2, 40, true);
}

#[test]
#[ignore = "slow: the full run's 32 cases (--include-ignored)"]
fn three_devices_converge_full() {
    run(3, 50, true);
}
