//! Deterministic simulation: 3–8 devices in one network write offline, change each other's
//! roles and remove each other's devices (admins, while apart), crash and reopen their
//! stores, and meet in random pairs over a network that loses (0–30%), duplicates and reorders
//! frames and cuts sessions after a random number of frames; a session hit by a fault ends
//! with a typed error and the next one picks up. A device turned malicious now and then forges
//! a change as another device and hands it to a third (the bundle path): it is refused and
//! changes nothing. In some runs that heal by meetings, a member's store is copied onto a
//! second phone (once per run), which writes a note with a number the first may use too and
//! meets someone: two histories of a case, which split into the case and a new one on every
//! device alike, every note kept. A relay node (the relay's own rules
//! over in-memory storage) is there too: devices also sync through it, in random mixes with
//! meetings (how often varies by seed), and connections to it are cut after a random number
//! of answers.
//! After a final round of complete sessions (meetings, or relay syncs only, by seed) every
//! device still in the network holds the same documents with the same heads, the same
//! membership, and shows the same screens, and no write they acknowledged is lost; every removal
//! counts unless every admin that made it was itself revoked concurrently (it then loses its
//! dispute), and every removed device that met a device holding its removal has wiped the
//! network.
//!
//! A failing seed replays exactly, byte for byte:
//! `NABIJ_SIM_SEED=<seed> cargo test -p nabij-tests --test sync_simulation devices_converge`
//! runs that seed alone and prints its trace fingerprint (equal in every run of the seed; add
//! `NABIJ_SIM_DEBUG=1` to see each frame); `NABIJ_SIM_SEEDS=<n>` runs seeds `0..n`.
//!
//! Everything a run depends on comes from the seed: the operations and faults (a SplitMix64
//! stream), every timestamp (one [`StepClock`], which Automerge changes are committed with
//! too), and each device's ids and key ([`DeviceOptions::deterministic_for_tests`], seeded from
//! the simulation seed and the device's index; never the OS random source). The session keeps
//! no hashed collections and the simulation runs on one thread, so nothing else varies between
//! runs; `a_seed_replays_byte_for_byte` runs seeds twice and compares their traces entry by
//! entry.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hasher};

use automerge::{ActorId, ROOT, transaction::Transactable};
use nabij_core::{
    Device, DeviceOptions, DocId, NoteId,
    authorship::{SignedHead, seal_envelope},
    device::DeviceRelay,
    model::{CaseUpdate, Consent, ConsentStatus, NewCase, NewNote, NoteKind, Reason, Role},
    relay::RelaySession,
    sync::Session,
    test_utils::{load_exported, signing_key},
};
use nabij_relay_proto::wire::{self, Request};
use nabij_sync_server::{Limits, Relay, storage::MemoryStorage};
use nabij_tests::{Rng, StepClock, case_ids, screens};

const WORDS: &[&str] = &["wasmachine", "school", "huisarts", "schuld", "buurthuis"];

/// How the network treats one meeting's frames.
#[derive(Debug, Clone, Copy)]
struct Faults {
    /// Connection drops after this many frames.
    cut: Option<usize>,
    /// Per mille of frames lost (the stream then carries garbage for the session).
    loss: u64,
    /// Per mille of frames delivered twice.
    dup: u64,
    /// Per mille of frames swapped with the next one.
    reorder: u64,
}

const CLEAN: Faults = Faults { cut: None, loss: 0, dup: 0, reorder: 0 };

/// What a run did: a fingerprint of every frame delivered (and which way it went), of how each
/// session ended, and of every device's documents and heads at the end. Two runs of one seed
/// must leave equal traces.
#[derive(Debug, Default, PartialEq)]
struct Trace(Vec<u64>);

impl Trace {
    fn record(&mut self, parts: &[&[u8]]) {
        // SipHash with fixed keys: the same in every process of one build, which is all a
        // comparison between two runs needs.
        let mut h = DefaultHasher::new();
        for p in parts {
            h.write_usize(p.len());
            h.write(p);
        }
        self.0.push(h.finish());
    }

    /// All entries in one number, to compare runs in two processes by eye.
    fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        for e in &self.0 {
            h.write_u64(*e);
        }
        h.finish()
    }
}

/// Runs a session between `x` and `y` under `faults`; whether it completed. A fault makes the
/// receiving session fail with a typed error (or stall); either way the connection is dropped.
fn meet(x: &Device, y: &Device, faults: Faults, rng: &mut Rng, trace: &mut Trace) -> bool {
    let completed = meet_inner(x, y, faults, rng, trace);
    trace.record(&[b"end", &[u8::from(completed)]]);
    completed
}

fn meet_inner(x: &Device, y: &Device, faults: Faults, rng: &mut Rng, trace: &mut Trace) -> bool {
    let mut sx = Session::new(x.device_key(), y.device_key(), 0);
    let mut sy = Session::new(y.device_key(), x.device_key(), 0);
    let (mut xs, mut ys) = (x, y);
    // The QUIC driver sends digests behind the hello; a driver may also leave them to follow
    // the peer's hello. Both paths, chosen per meeting by the seed.
    if rng.below(2) == 0 {
        let started = sx.start(&mut xs).and_then(|()| sy.start(&mut ys));
        if started.is_err() {
            return false;
        }
    }
    let mut frames = 0;
    for _ in 0..10_000 {
        let mut batch_xy = Vec::new();
        while let Some(f) = sx.poll_transmit() {
            batch_xy.push(f);
        }
        let mut batch_yx = Vec::new();
        while let Some(f) = sy.poll_transmit() {
            batch_yx.push(f);
        }
        if batch_xy.is_empty() && batch_yx.is_empty() {
            return sx.is_complete() && sy.is_complete();
        }
        for (batch, to, store) in [(batch_xy, &mut sy, &mut ys), (batch_yx, &mut sx, &mut xs)] {
            let mut delivered = Vec::new();
            for f in batch {
                frames += 1;
                if faults.cut.is_some_and(|c| frames > c) {
                    return false;
                }
                if rng.below(1000) < faults.loss {
                    continue;
                }
                if rng.below(1000) < faults.dup {
                    delivered.push(f.clone());
                }
                delivered.push(f);
                let n = delivered.len();
                if n >= 2 && rng.below(1000) < faults.reorder {
                    delivered.swap(n - 1, n - 2);
                }
            }
            for f in delivered {
                trace.record(&[to.peer().as_bytes(), &f]);
                if std::env::var("NABIJ_SIM_DEBUG").is_ok()
                    && let Ok((_, m)) = nabij_core::sync::frame::decode_body(&f[4..])
                {
                    {
                        let short = match &m {
                            nabij_core::sync::Message::Sync { doc, message, .. } => {
                                format!("Sync {} {}B", DocId::from_bytes(*doc), message.len())
                            }
                            nabij_core::sync::Message::Document { doc, .. } => {
                                format!("Document {}", DocId::from_bytes(*doc))
                            }
                            nabij_core::sync::Message::Inventory { docs, .. } => {
                                format!("Inventory {}", docs.len())
                            }
                            other => format!("{other:?}").chars().take(30).collect(),
                        };
                        eprintln!("  -> {} {short}", to.peer().short());
                    }
                }
                if let Err(e) = to.handle_bytes(store, 0, &f) {
                    if std::env::var("NABIJ_SIM_DEBUG").is_ok()
                        && faults.loss == 0
                        && faults.dup == 0
                    {
                        eprintln!("  error {e}");
                    }
                    return false;
                }
            }
        }
    }
    false
}

/// The relay's key, as devices pin it (the simulation needs no TLS, only a stable name).
const RELAY_KEY: [u8; 32] = [0x52; 32];

/// A relay sync of `d`, answered by the relay's rules in process. The relay answers every
/// request sent so far at once (as its driver does for what one read brought); `cut` drops the
/// connection after that many answers have reached the device (the relay has already acted on
/// the rest: stored, but the acknowledgement lost). Whether the sync completed.
fn relay_sync(
    d: &Device,
    relay: &Relay<MemoryStorage>,
    cut: Option<usize>,
    removed: bool,
    copied: bool,
    erased_or_unshared: bool,
    trace: &mut Trace,
) -> bool {
    let mut session = RelaySession::new(DeviceRelay::new(d, RELAY_KEY));
    let mut pending: Vec<Request> = session.start();
    let mut answered = 0;
    let me = *d.device_key().as_bytes();
    let mut completed = true;
    'exchange: while !session.is_done() {
        // Neither side fails here (no tampering, no bad storage): a stall or an error is a bug.
        assert!(!pending.is_empty(), "the relay session stalled: {:?}", session.report());
        for r in &pending {
            trace.record(&[b"to relay", &me, &wire::encode(r, usize::MAX).expect("encode")]);
        }
        let answers = relay.handle(&me, std::mem::take(&mut pending));
        for a in answers {
            if cut == Some(answered) {
                trace.record(&[b"relay cut"]);
                completed = false;
                break 'exchange;
            }
            answered += 1;
            trace.record(&[b"from relay", &me, &wire::encode(&a, usize::MAX).expect("encode")]);
            let next = session.handle(a).unwrap_or_else(|e| panic!("relay session failed: {e}"));
            pending.extend(next);
        }
    }
    // Cut or not, nothing pulled was tampered with. (A removed device cannot open what was
    // written after its removal, and the relay refuses it once it knows. A device that is an
    // admin in its own view may find the relay's membership says otherwise, or its roster
    // already replaced: a register refusal, not a failure. And with removals while apart, a
    // device can pull a blob sealed under a new epoch's key before that key reaches it: the
    // blob is kept and opened at a later sync (`deferred`, `opened_later`), not refused.)
    let report = session.report();
    if std::env::var("NABIJ_SIM_DEBUG").is_ok() {
        eprintln!("relay sync of {}: {report:?}", d.device_key().short());
    }
    if !removed {
        // With two histories of a document (a copied store), the side whose history keeps the
        // id refuses the other's blobs, and what depends on them, until their holders give way.
        let two_histories = |r: &str| {
            copied
                && (r.contains("two different histories")
                    || r.contains("does not have")
                    || r.contains("other history is not held"))
        };
        assert!(
            report.rejected.iter().all(|r| r.reason.contains("does not open")
                || two_histories(&r.reason)
                // A blob of an erased (or redacted) case, or of one unshared since (a stale
                // copy's note), refused by a device that knows it.
                || (erased_or_unshared
                    && (r.reason.contains("was erased")
                        || r.reason.contains("not a document of this network")))),
            "nothing tampered: {report:?}"
        );
        assert!(
            report.refusals.iter().all(|r| r.request == "register"),
            "the relay refused nothing but a roster: {report:?}"
        );
    }
    MOVED.set(
        MOVED.get()
            || report.blobs_pushed > 0
            || report.documents_changed > 0
            || report.opened_later > 0
            || report.rosters_registered > 0,
    );
    completed
}

/// What every device (the second phones too) holds: each document with its heads, and the
/// membership as it resolves there.
fn held_state(devices: &[Device], copies: &[(usize, Device)]) -> Vec<String> {
    devices
        .iter()
        .chain(copies.iter().map(|(_, d)| d))
        .map(|d| {
            let docs: Vec<_> = d
                .document_ids()
                .expect("ids")
                .into_iter()
                .map(|(id, _)| {
                    let mut heads = d.heads(id).expect("heads");
                    heads.sort();
                    (id, heads)
                })
                .collect();
            let networks: Vec<_> =
                d.list_networks().expect("networks").iter().map(|n| d.network(n.id).ok()).collect();
            format!("{docs:?} {networks:?}")
        })
        .collect()
}

thread_local! {
    /// Whether a relay sync on this thread pushed, changed, opened or registered anything since
    /// it was last cleared: the relay heal goes on until a round in which nothing did.
    static MOVED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether `d` is an admin of `network` in its own view.
fn is_admin_here(d: &Device, network: DocId) -> bool {
    let me = d.device_key();
    d.network(network)
        .map(|x| x.members.iter().any(|m| m.devices.contains(&me) && m.role == Role::Admin))
        .unwrap_or(false)
}

fn simulate(seed: u64) -> Trace {
    let mut rng = Rng::new(seed);
    let mut trace = Trace::default();
    // Thousands of seeds: keep the stores in memory-backed tmpfs where there is one (fsync
    // costs nothing there; durability is the crash test's business, not this one's).
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }
        .expect("tempdir");
    let clock = StepClock::new(1_700_000_000_000);
    let count = 3 + rng.below(6) as usize;
    let paths: Vec<_> = (0..count).map(|i| dir.path().join(format!("d{i}.db"))).collect();
    // One options value per device, cloned for every open: its ids continue one stream across
    // crashes instead of starting over (which would hand out the same ids again).
    let opts: Vec<DeviceOptions> = (0..count)
        .map(|i| {
            let device_seed = seed.wrapping_mul(16).wrapping_add(i as u64);
            DeviceOptions {
                key: Some(nabij_tests::store_key()),
                ..DeviceOptions::deterministic_for_tests(clock.clone(), device_seed)
            }
        })
        .collect();
    let open = |i: usize| Device::open_with(&paths[i], opts[i].clone()).expect("open");
    let mut devices: Vec<Device> = (0..count).map(open).collect();
    let n = devices[0].create_network("Wijknetwerk Oost").expect("network");
    for i in 1..count {
        let (m, name, key) =
            (devices[i].member_id(), devices[i].display_name(), devices[i].device_key());
        let invitation = devices[0].invite(n, m, &name, key).expect("invite");
        devices[i].join(&invitation).expect("join");
    }
    let faults =
        Faults { cut: None, loss: rng.below(300), dup: rng.below(200), reorder: rng.below(200) };
    // Every seed has a relay; how often devices use it instead of meeting varies by seed, and
    // half the seeds heal through it alone.
    let relay = Relay::new(MemoryStorage::new(), Limits::default());
    let relay_often = rng.below(2) == 0;
    let heal_by_relay = rng.below(2) == 0;
    // Acknowledged notes, by writer: a removed device's may be wiped with it.
    let mut acked: Vec<(usize, DocId, NoteId, String)> = Vec::new();
    // Devices an admin removed, with the devices that removed them.
    let mut removed: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    // The choices of copied stores, from a stream of their own.
    let mut copy_rng = Rng::new(seed ^ 0xc0b1_ed57_0e00_0000);
    // Whether a store was copied onto a second phone (two histories of a case), and the
    // copies, with whose store they copied.
    let mut copied = false;
    let mut copies: Vec<(usize, Device)> = Vec::new();
    // Erasures, from a stream of their own too: in some runs a case is erased once, by its
    // worker or an admin, while the others write on, crash and meet through faults.
    let mut erase_rng = Rng::new(seed ^ 0xe4a5_ed00_0000_0000);
    let mut erased: BTreeMap<DocId, usize> = BTreeMap::new();
    // Consent withdrawn, from a stream of its own: in some other runs a case is unshared from
    // the network by its worker or an admin; only that device keeps it.
    let mut consent_rng = Rng::new(seed ^ 0xc0_5e47_0000_0000);
    let mut withdrawn: Option<(DocId, usize)> = None;
    // A note redacted, from a stream of its own: in some runs a case goes on under a new id
    // without a note's old words, by its worker or an admin, while the others write on the
    // old history; their notes come over. The old case, the new one and the redacting device.
    let mut redact_rng = Rng::new(seed ^ 0x4ed4_c700_0000_0000);
    let mut redacted: Option<(DocId, DocId, usize)> = None;
    for step in 0..40 {
        let who = rng.below(count as u64) as usize;
        let cases = case_ids(&devices[who]);
        let op = rng.below(11);
        if std::env::var("NABIJ_SIM_DEBUG").is_ok() {
            eprintln!("step {step}: device {who}, operation {op}, removed {removed:?}");
        }
        // Now and then (a stream of choices of its own, so that the runs otherwise go as they
        // did): a member's store is copied onto a second phone, once per run, in runs that heal
        // by meetings. Several copies of one writer's store, each writing on, part a case many
        // times over, and splits of splits took more rounds than a bound the run can state;
        // two phones with one key healing through the relay alone did not always converge
        // (ARCHITECTURE.md, "Two histories of one document": both open).
        if copy_rng.below(40) == 0
            && !cases.is_empty()
            && count > 2
            && copies.is_empty()
            && erased.is_empty()
            && redacted.is_none()
            && !heal_by_relay
            && !is_admin_here(&devices[who], n)
        {
            // The phone's store is copied onto a second phone (a restore from a backup, or a
            // thief's copy): the copy writes a note with the next number of the phone's chain,
            // which the phone may write too, and meets someone. Its note was acknowledged: it
            // must survive, in the case or in the case's split.
            let c = cases[copy_rng.below(cases.len() as u64) as usize];
            let copy_path = dir.path().join(format!("copy{step}.db"));
            nabij_tests::attack::copy_store_files(&paths[who], &copy_path);
            let copy_seed = seed.wrapping_mul(16).wrapping_add(1000 + step);
            let copy = Device::open_with(
                &copy_path,
                DeviceOptions {
                    key: Some(nabij_tests::store_key()),
                    ..DeviceOptions::deterministic_for_tests(clock.clone(), copy_seed)
                },
            )
            .expect("open the copy");
            let text = format!("Kopie {step} over {}", WORDS[copy_rng.below(5) as usize]);
            if copy.kind_of(c).is_ok() {
                let id = copy
                    .add_note(c, NewNote { kind: NoteKind::Observation, text: text.clone() })
                    .expect("note");
                acked.push((who, c, id, text));
                copied = true;
                let other = (who + 1 + copy_rng.below(count as u64 - 1) as usize) % count;
                meet(&copy, &devices[other], CLEAN, &mut copy_rng, &mut trace);
                trace.record(&[b"copied", c.as_bytes()]);
                // The second phone stays around: it meets again when everyone heals.
                copies.push((who, copy));
            }
        }
        // A case erased (never in a run with a copied store: a case split by two histories
        // is two documents, and erasing one leaves the other; ARCHITECTURE.md says so).
        if erase_rng.below(25) == 0
            && !cases.is_empty()
            && copies.is_empty()
            && erased.is_empty()
            && withdrawn.is_none()
            && redacted.is_none()
        {
            let c = cases[erase_rng.below(cases.len() as u64) as usize];
            if devices[who].erase(c, "De cliënt vroeg erom").is_ok() {
                erased.insert(c, who);
                trace.record(&[b"erased", c.as_bytes()]);
                if std::env::var("NABIJ_SIM_DEBUG").is_ok() {
                    let admin = is_admin_here(&devices[who], n);
                    eprintln!("step {step}: device {who} (admin here: {admin}) erased {c}");
                }
                // The step's other operation would name what was listed before.
                continue;
            }
        }
        if redact_rng.below(50) == 0
            && !cases.is_empty()
            && copies.is_empty()
            && erased.is_empty()
            && withdrawn.is_none()
            && redacted.is_none()
        {
            let c = cases[redact_rng.below(cases.len() as u64) as usize];
            let notes = devices[who].case_timeline(c).unwrap_or_default();
            if !notes.is_empty() {
                let note = notes[redact_rng.below(notes.len() as u64) as usize].id;
                let text = format!("Geredigeerd {step}");
                if let Ok(new) = devices[who].redact_note(c, note, &text, "Naam per ongeluk") {
                    redacted = Some((c, new, who));
                    // The note reads as redacted from now on.
                    for a in acked.iter_mut().filter(|a| a.2 == note) {
                        a.3 = text.clone();
                    }
                    trace.record(&[b"redacted", c.as_bytes(), new.as_bytes()]);
                    if std::env::var("NABIJ_SIM_DEBUG").is_ok() {
                        eprintln!("step {step}: device {who} redacted a note of {c}: now {new}");
                    }
                    continue;
                }
            }
        }
        // By a case's worker (the device that made it), who keeps it; an admin's withdrawal,
        // after which the worker keeps it too, is promise 9's tests' business.
        let made_here: Vec<DocId> = cases
            .iter()
            .filter(|c| {
                devices[who].history(**c).ok().and_then(|h| h.first().and_then(|e| e.device))
                    == Some(devices[who].device_key())
            })
            .copied()
            .collect();
        if consent_rng.below(12) == 0
            && !made_here.is_empty()
            && copies.is_empty()
            && erased.is_empty()
            && withdrawn.is_none()
            && redacted.is_none()
        {
            let c = made_here[consent_rng.below(made_here.len() as u64) as usize];
            let update = CaseUpdate {
                consent: Some(Consent {
                    status: ConsentStatus::Withdrawn,
                    scope: String::new(),
                    date: None,
                }),
                ..CaseUpdate::default()
            };
            if devices[who].update_case(c, update).is_ok() {
                withdrawn = Some((c, who));
                trace.record(&[b"withdrawn", c.as_bytes()]);
                if std::env::var("NABIJ_SIM_DEBUG").is_ok() {
                    eprintln!("step {step}: device {who} withdrew consent for {c}");
                }
                continue;
            }
        }
        match op {
            0 if devices[who].kind_of(n).is_ok() => {
                devices[who]
                    .create_case(NewCase {
                        subject: format!("Casus {step}"),
                        networks: vec![n],
                        ..NewCase::default()
                    })
                    .expect("case");
            }
            1 | 2 if !cases.is_empty() => {
                let c = cases[rng.below(cases.len() as u64) as usize];
                let text = format!("Notitie {step} over {}", WORDS[rng.below(5) as usize]);
                let id = devices[who]
                    .add_note(c, NewNote { kind: NoteKind::Observation, text: text.clone() })
                    .expect("note");
                acked.push((who, c, id, text));
            }
            3 if !cases.is_empty() => {
                let c = cases[rng.below(cases.len() as u64) as usize];
                if let Some(note) = devices[who].case_timeline(c).expect("timeline").first() {
                    let text = format!("{} ({})", note.text, WORDS[rng.below(5) as usize]);
                    devices[who].edit_note(c, note.id, &text).expect("edit");
                }
            }
            4 => {
                // The phone dies and comes back: everything acknowledged must still be there.
                devices[who] = open(who);
            }
            5 => {
                let cut = if rng.below(2) == 0 { Some(rng.below(30) as usize) } else { None };
                relay_sync(
                    &devices[who],
                    &relay,
                    cut,
                    removed.contains_key(&who),
                    copied,
                    !erased.is_empty() || withdrawn.is_some() || redacted.is_some(),
                    &mut trace,
                );
            }
            6 if relay_often => {
                relay_sync(
                    &devices[who],
                    &relay,
                    None,
                    removed.contains_key(&who),
                    copied,
                    !erased.is_empty() || withdrawn.is_some() || redacted.is_some(),
                    &mut trace,
                );
            }
            7 => {
                // Membership changes while apart: an admin (as its own device sees it) makes
                // another member admin or member again; concurrent ones must resolve alike.
                let members = devices[who].network(n).map(|x| x.members).unwrap_or_default();
                let me = devices[who].device_key();
                let admin =
                    members.iter().any(|m| m.devices.contains(&me) && m.role == Role::Admin);
                if admin && members.len() > 1 {
                    let m = &members[rng.below(members.len() as u64) as usize];
                    let role = if rng.below(2) == 0 { Role::Admin } else { Role::Member };
                    // The last admin may not step down: refused, nothing written.
                    let _ = devices[who].set_role(n, m.id, role);
                }
            }
            9 => {
                // An admin (in its own view) removes another device, while apart. Device 0 stays
                // (it is the meeting hub of the final round); the last admin may not go.
                let members = devices[who].network(n).map(|x| x.members).unwrap_or_default();
                let me = devices[who].device_key();
                let admin =
                    members.iter().any(|m| m.devices.contains(&me) && m.role == Role::Admin);
                let target = 1 + rng.below(count as u64 - 1) as usize;
                let reason =
                    [Reason::Lost, Reason::Left, Reason::Compromised][rng.below(3) as usize];
                if admin
                    && target != who
                    && devices[who].remove_device(n, devices[target].device_key(), reason).is_ok()
                {
                    removed.entry(target).or_default().insert(who);
                }
            }
            10 if count > 2 => {
                // A device gone bad forges a change to a case as another device (its actor,
                // its own signature) and hands it to a third: refused, nothing changes.
                let victim = (who + 1) % count;
                let to = (who + 2) % count;
                if let Some(&c) = cases.first()
                    && devices[to].kind_of(c).is_ok()
                {
                    let before = devices[to].heads(c).expect("heads");
                    let mut fork = load_exported(&devices[who].export_document(c).expect("export"))
                        .with_actor(ActorId::from(
                            devices[victim].device_key().as_bytes().to_vec(),
                        ));
                    let base = fork.get_heads();
                    fork.put(ROOT, "subject", format!("Vervalst {step}")).expect("put");
                    fork.commit();
                    let key = signing_key(&devices[who]);
                    let signed: Vec<SignedHead> = fork
                        .get_last_local_change()
                        .map(|ch| SignedHead::sign(&key, c, ch.seq(), ch.hash().0))
                        .into_iter()
                        .collect();
                    let bundle = seal_envelope(&signed, &fork.save_after(&base));
                    assert!(
                        devices[to].merge_changes(c, &bundle).is_err(),
                        "seed {seed}: a forged change was taken"
                    );
                    assert_eq!(devices[to].heads(c).expect("heads"), before, "seed {seed}");
                    trace.record(&[b"forged", c.as_bytes()]);
                }
            }
            _ => {
                let other = (who + 1 + rng.below(count as u64 - 1) as usize) % count;
                let mut f = faults;
                f.cut = if rng.below(2) == 0 { Some(1 + rng.below(12) as usize) } else { None };
                meet(&devices[who], &devices[other], f, &mut rng, &mut trace);
            }
        }
    }
    // Heal: the faults stop; everyone syncs through the relay, twice round, and twice more for
    // each store copied onto a second phone (two histories of a case: a split-off document is
    // made during a round, on the devices whose history gives way, and reaches the others in
    // the next two; a split can part again, when a copy's second history lies in it)…
    let rounds = 2 + 2 * copies.len();
    // Through the relay, until a round moves nothing, within four rounds more: with key epochs
    // started while apart (two admins removing one device each on its own), a roster carrying
    // a new epoch's key is registered in one round, opens what the others kept in the next,
    // whose own rosters then carry it on in the one after (seed 3731 settles in the fifth).
    if heal_by_relay {
        let mut settled = false;
        for _ in 0..rounds + 4 {
            MOVED.set(false);
            for (i, d) in devices.iter().enumerate() {
                assert!(
                    relay_sync(
                        d,
                        &relay,
                        None,
                        removed.contains_key(&i),
                        copied,
                        !erased.is_empty() || withdrawn.is_some() || redacted.is_some(),
                        &mut trace,
                    ),
                    "seed {seed}: relay sync of {i} incomplete"
                );
            }
            for (i, d) in &copies {
                relay_sync(
                    d,
                    &relay,
                    None,
                    removed.contains_key(i),
                    copied,
                    !erased.is_empty() || withdrawn.is_some() || redacted.is_some(),
                    &mut trace,
                );
            }
            if !MOVED.get() {
                settled = true;
                break;
            }
        }
        assert!(settled, "seed {seed}: the relay heal did not settle in {} rounds", rounds + 4);
    }
    // …or device 0 meets everyone, round after round, until a round changes nothing, within
    // four rounds more: each admin seals a new epoch's key to the devices that lack it at its
    // next meeting, so two admins that started epochs apart answer each other's sealing in
    // turn, a round apart (seed 5181 settles in the third).
    let mut settled = heal_by_relay;
    for _ in 0..if heal_by_relay { 0 } else { rounds + 4 } {
        let before = held_state(&devices, &copies);
        // The second phone first, with every device but the one it copied (some may have been
        // removed since).
        for (i, d) in &copies {
            for (j, other) in devices.iter().enumerate().filter(|(j, _)| j != i) {
                let _ = j;
                meet(other, d, CLEAN, &mut rng, &mut trace);
            }
        }
        for i in 1..count {
            assert!(
                meet(&devices[0], &devices[i], CLEAN, &mut rng, &mut trace),
                "seed {seed}: clean session to {i} incomplete"
            );
            if std::env::var("NABIJ_SIM_DEBUG").is_ok() {
                for (id, k) in devices[0].document_ids().expect("ids") {
                    let (mut x, mut y) = (
                        devices[0].heads(id).expect("h"),
                        devices[i].heads(id).unwrap_or_default(),
                    );
                    x.sort();
                    y.sort();
                    if x != y {
                        eprintln!(
                            "after clean session 0<->{i}: {k:?} {id} differs: {x:?} vs {y:?}"
                        );
                    }
                }
            }
        }
        if held_state(&devices, &copies) == before {
            settled = true;
            break;
        }
    }
    assert!(settled, "seed {seed}: the meeting heal did not settle in {} rounds", rounds + 4);
    // Every removal counts, unless each admin that made it was itself demoted or removed
    // concurrently (then it loses its dispute: ARCHITECTURE.md, "Revocations concurrent with
    // their author's revocation"); a removed device that met device 0 (which holds every
    // removal after the first round) has wiped the network.
    let roster = devices[0].network(n).expect("network");
    let gone: BTreeSet<_> = roster.removed.iter().map(|r| r.device).collect();
    let is_admin = |i: usize| {
        let key = devices[i].device_key();
        roster.members.iter().any(|m| m.devices.contains(&key) && m.role == Role::Admin)
    };
    for (i, by) in &removed {
        if !gone.contains(&devices[*i].device_key()) {
            assert!(
                by.iter().all(|r| !is_admin(*r)),
                "seed {seed}: removal of {i} lost, yet an admin that made it is an admin still"
            );
            continue;
        }
        if !heal_by_relay {
            // (A case it withdrew consent for is its own, shared with no network: a removal
            // wipes the network's documents, not that one.)
            let own = withdrawn.filter(|(_, by)| by == i).map(|(c, _)| c);
            assert!(
                devices[*i].document_ids().expect("ids").iter().all(|(id, _)| Some(*id) == own),
                "seed {seed}: removed device {i} was not wiped"
            );
        }
    }
    // Everyone still in agrees on the membership, roles and removals included. (A device whose
    // removal counted on a device it met, then lost its dispute, wiped the network then; it
    // holds nothing until invited again.)
    let staying: Vec<&Device> = devices
        .iter()
        .enumerate()
        .filter(|(i, d)| {
            !gone.contains(&d.device_key()) && (!removed.contains_key(i) || d.kind_of(n).is_ok())
        })
        .map(|(_, d)| d)
        .collect();
    for (i, d) in staying.iter().enumerate().skip(1) {
        assert_eq!(d.network(n).expect("network"), roster, "seed {seed}: device {i} membership");
    }
    // A case whose consent was withdrawn stays with the device that withdrew it (unless that
    // device was removed: then its unsharing may have reached no one, as an erasure's) and
    // with no one else; the others agree on everything else.
    let keeper = withdrawn
        .filter(|(_, by)| !removed.contains_key(by))
        .map(|(c, by)| (c, devices[by].device_key()));
    let staying: Vec<&Device> = match keeper {
        Some((c, key)) => {
            for (i, d) in staying.iter().enumerate() {
                let holds = d.kind_of(c).is_ok();
                if d.device_key() == key {
                    assert!(holds, "seed {seed}: the worker lost the case it withdrew consent for");
                } else {
                    assert!(
                        !holds,
                        "seed {seed}: device {i} holds a case whose consent was withdrawn"
                    );
                }
            }
            staying.into_iter().filter(|d| d.device_key() != key).collect()
        }
        None => staying,
    };
    let Some(first) = staying.first() else { return trace };
    let reference = screens(first, WORDS);
    let ids = first.document_ids().expect("ids");
    for (i, d) in staying.iter().enumerate().skip(1) {
        assert_eq!(d.document_ids().expect("ids"), ids, "seed {seed}: device {i} documents");
        for (id, _) in &ids {
            let (mut x, mut y) = (first.heads(*id).expect("heads"), d.heads(*id).expect("heads"));
            x.sort();
            y.sort();
            assert_eq!(x, y, "seed {seed}: device {i} heads of {id}");
        }
        assert_eq!(screens(d, WORDS), reference, "seed {seed}: device {i} screens");
    }
    // An erased case is gone from every device still in, and nothing of it came back; unless
    // the device that erased it was removed (a removal it had not seen yet): then its
    // tombstone reached no one (peers and the relay refuse a removed device) and the case,
    // with every acknowledged note, stays on the others.
    let erased: BTreeSet<DocId> =
        erased.into_iter().filter(|(_, by)| !removed.contains_key(by)).map(|(c, _)| c).collect();
    for c in &erased {
        for (i, d) in staying.iter().enumerate() {
            assert!(d.kind_of(*c).is_err(), "seed {seed}: device {i} holds the erased case {c}");
        }
    }
    // A redacted case's old history is gone from every device still in (the same proviso), and
    // its notes, carried over, are checked below wherever they are.
    if let Some((old, new, _)) = redacted.filter(|(_, _, by)| !removed.contains_key(by)) {
        for (i, d) in staying.iter().enumerate() {
            assert!(d.kind_of(old).is_err(), "seed {seed}: device {i} holds a redacted history");
            assert!(d.kind_of(new).is_ok(), "seed {seed}: device {i} lacks the redacted case");
        }
    }
    // Notes in a case whose consent was withdrawn went with the colleagues' copies (that is
    // what withdrawal asks); the worker's own stay in its copy, checked above by holding it.
    let unshared = keeper.map(|(c, _)| c);
    for (w, c, id, text) in acked.iter().filter(|(w, c, ..)| {
        !removed.contains_key(w) && !erased.contains(c) && Some(*c) != unshared
    }) {
        // A second phone's note reaches the others through a device that is not the one it
        // copied (two phones with one key do not meet): when every device still in is that
        // one, nothing could carry it.
        let by_copy = text.starts_with("Kopie");
        let key = devices[*w].device_key();
        if by_copy && staying.iter().all(|d| d.device_key() == key) {
            continue;
        }
        for d in &staying {
            // In its case, or in the case's split (a copied store wrote a second history).
            let note = d
                .note(*c, *id)
                .ok()
                .or_else(|| case_ids(d).into_iter().find_map(|other| d.note(other, *id).ok()));
            let note =
                note.unwrap_or_else(|| panic!("seed {seed}: acknowledged note lost: {text}"));
            assert!(note.text.starts_with(text.as_str()), "seed {seed}: note text lost its start");
        }
    }
    for d in &devices {
        trace.record(&[b"device", d.device_key().as_bytes(), d.member_id().as_bytes()]);
        for (id, _) in d.document_ids().expect("ids") {
            let mut heads = d.heads(id).expect("heads");
            heads.sort();
            let heads: Vec<u8> = heads.iter().flat_map(|h| h.0).collect();
            trace.record(&[id.as_bytes(), &heads, &d.export_document(id).expect("export")]);
        }
    }
    trace
}

/// The everyday run: a few seeds (`NABIJ_SIM_SEEDS` for more, `NABIJ_SIM_SEED` for one), so
/// `cargo test` exercises every fault the simulation knows. They follow the 1,000 seeds of the
/// full run below, so CI tests each seed once.
#[test]
fn devices_converge_through_faults_and_crashes() {
    if let Some(seed) = env_seed() {
        let trace = simulate(seed);
        eprintln!("seed {seed}: trace {:016x} ({} entries)", trace.fingerprint(), trace.0.len());
        return;
    }
    let seeds: u64 =
        std::env::var("NABIJ_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(24);
    run_seeds(FULL_RUN_SEEDS..FULL_RUN_SEEDS + seeds);
}

/// Seeds beyond the full run that failed when seeds 1,024 to 5,023 were run (2026-11): relay
/// healing with key epochs started by an admin demoted since, or registered over by an admin
/// that did not hold them yet (ARCHITECTURE.md, "Keys that reach the relay late"); and when
/// seeds 5,024 to 7,023 were run, healing by meetings with two admins sealing each other's new
/// epochs in turn, past the rounds the heal then ran (5181); and when seeds 7,024 to 9,023 were
/// run, the same through the relay, each relay sync answering the other admin's epoch only at
/// its next (8247; ARCHITECTURE.md, "A relay sync goes round twice when the membership
/// moved"). Replayed in every run.
const FOUND_BEYOND: [u64; 8] = [1298, 1399, 3371, 3619, 3731, 3940, 5181, 8247];

#[test]
fn seeds_found_failing_beyond_the_full_run() {
    for seed in FOUND_BEYOND {
        run_seeds(seed..seed + 1);
    }
}

fn run_seeds(seeds: std::ops::Range<u64>) {
    for seed in seeds {
        let t = std::time::Instant::now();
        if let Err(e) = std::panic::catch_unwind(|| simulate(seed)) {
            eprintln!("seed {seed} failed: replay it with NABIJ_SIM_SEED={seed}");
            std::panic::resume_unwind(e);
        }
        if std::env::var("NABIJ_SIM_DEBUG").is_ok() {
            eprintln!("seed {seed}: {:?}", t.elapsed());
        }
    }
}

/// Seeds of the full run (CI and the README's test command), in eight test functions so a
/// test runner spreads them over the cores and a failure names its range.
const FULL_RUN_SEEDS: u64 = 1_000;

macro_rules! full_run {
    ($($name:ident: $from:literal),* $(,)?) => {$(
        #[test]
        #[ignore = "slow: one eighth of the full run's 1,000 seeds (--include-ignored)"]
        fn $name() {
            run_seeds($from..$from + FULL_RUN_SEEDS / 8);
        }
    )*};
}

full_run! {
    seeds_000_to_124: 0,
    seeds_125_to_249: 125,
    seeds_250_to_374: 250,
    seeds_375_to_499: 375,
    seeds_500_to_624: 500,
    seeds_625_to_749: 625,
    seeds_750_to_874: 750,
    seeds_875_to_999: 875,
}

fn env_seed() -> Option<u64> {
    std::env::var("NABIJ_SIM_SEED").ok().and_then(|s| s.parse().ok())
}

/// The replay promise itself: the same seed twice, in one process (so with fresh hasher seeds
/// for any hashed collection, and another temporary directory), gives the same frames in the
/// same order and the same documents, byte for byte.
#[test]
fn a_seed_replays_byte_for_byte() {
    let seeds: Vec<u64> = match env_seed() {
        Some(seed) => vec![seed],
        None => vec![0, 1, 7, 42, 999],
    };
    for seed in seeds {
        let (a, b) = (simulate(seed), simulate(seed));
        if let Some(i) = a.0.iter().zip(&b.0).position(|(x, y)| x != y) {
            panic!("seed {seed}: runs diverge at trace entry {i} of {}", a.0.len());
        }
        assert_eq!(a.0.len(), b.0.len(), "seed {seed}: one run went on longer");
        assert!(a.0.len() > 10, "seed {seed}: the trace recorded next to nothing");
    }
}
