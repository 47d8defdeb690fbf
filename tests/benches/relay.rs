//! Relay benchmarks on loopback (a bench binary: each figure is a median of interleaved
//! repetitions, printed for BENCHMARKS.md).
//!
//! `cargo bench -p nabij-tests --bench relay` (all) or `... -- catchup|flat`.
//! - `catchup`: one device pushes `NABIJ_BENCH_DOCS` documents (default 1000: cases with two
//!   notes), then `NABIJ_BENCH_DEVICES` devices (default 50) catch up from the relay at once.
//!   The relay runs as its own process (the `relay_node` binary) so its peak RSS is its own.
//! - `flat`: a device pulls 10 new changes from a relay that also holds 1k, 10k and 100k other
//!   blobs (`NABIJ_BENCH_FILL`, comma-separated; half in the device's own network, behind its
//!   cursor, half in 100 other networks): time and bytes per size.
//! - `removal`: a network of `NABIJ_BENCH_DOCS` documents (default 1000) at the relay; an
//!   admin removes a lost phone: the removal and its new key epoch, the admin's relay sync
//!   that registers the new roster, the phone's next relay sync (refused, wiped), a colleague
//!   still syncing, and a later write's push under the new epoch. Medians of
//!   `NABIJ_BENCH_REPS` (default 5) fresh setups.

use std::{path::Path, sync::Arc, time::Instant};

use nabij_core::{
    Device, DocId,
    net::{self, RelaySyncOptions},
    test_utils::{
        RELAY_SENTENCES, dir_size, env_usize, median, ms, observation, rss_kib, runtime, selected,
        sentence_note, shared_case,
    },
};
use nabij_sync_server::{
    Limits,
    sqlite::SqliteStorage,
    storage::{NewBlob, Storage},
};
use nabij_tests::relay::{ChildRelay, InProcessRelay};

const RELAY: &str = env!("CARGO_BIN_EXE_relay_node");

fn write_cases(d: &Device, network: DocId, n: usize) -> Vec<DocId> {
    (0..n)
        .map(|i| {
            let case = shared_case(d, network, &format!("Gezin {i}"));
            let notes = (0..2)
                .map(|k| sentence_note(&RELAY_SENTENCES, i + k, format_args!("{i}.{k}")))
                .collect();
            d.add_notes(case, notes).expect("notes");
            case
        })
        .collect()
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15: indexes 11 and 12 after the state.
    (ticks(11) + ticks(12)) / 100.0
}

fn catchup() {
    let devices = env_usize("NABIJ_BENCH_DEVICES", 50);
    let docs = env_usize("NABIJ_BENCH_DOCS", 1000);
    let dir = tempfile::tempdir().expect("dir");
    let mut relay =
        ChildRelay::start(RELAY, &dir.path().join("relay"), &dir.path().join("relay.log"), 0);
    let (address, key) = (relay.address.clone(), relay.key);
    let rt = runtime();

    let seeder = Arc::new(Device::open(dir.path().join("seeder.db")).expect("open"));
    let network = seeder.create_network("Wijknetwerk Oost").expect("network");
    let phones: Vec<Arc<Device>> = (0..devices)
        .map(|i| Arc::new(Device::open(dir.path().join(format!("p{i}.db"))).expect("open")))
        .collect();
    for (i, p) in phones.iter().enumerate() {
        p.join(
            &seeder
                .invite(network, p.member_id(), &format!("Werker {i}"), p.device_key())
                .expect("invite"),
        )
        .expect("member");
    }
    write_cases(&seeder, network, docs);
    let t = Instant::now();
    let pushed = rt
        .block_on(net::sync_with_relay(seeder.clone(), &address, key, RelaySyncOptions::default()))
        .expect("push");
    let push_time = t.elapsed();
    let stored = dir_size(&dir.path().join("relay"));
    println!(
        "catchup: seeder pushed {} blobs ({:.1} MB) in {:.0} ms; relay RSS after push {} KiB",
        pushed.report.blobs_pushed,
        pushed.report.bytes_pushed as f64 / 1e6,
        ms(push_time),
        rss_kib(relay.child.id()).1
    );

    let cpu_before = cpu_seconds(relay.child.id());
    let t = Instant::now();
    let reports = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for p in &phones {
            let (p, address) = (p.clone(), address.clone());
            tasks.spawn(async move {
                let t = Instant::now();
                let r = net::sync_with_relay(p, &address, key, RelaySyncOptions::default()).await;
                (r, t.elapsed())
            });
        }
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            out.push(r.expect("task"));
        }
        out
    });
    let total = t.elapsed();
    let (peak, now) = rss_kib(relay.child.id());
    let relay_cpu = cpu_seconds(relay.child.id()) - cpu_before;
    let mut per_device = Vec::new();
    let mut bytes = 0u64;
    for (r, took) in &reports {
        let r = r.as_ref().expect("catch-up");
        assert_eq!(r.report.documents_changed, docs + 1, "every document arrived: {r:?}");
        assert!(r.report.rejected.is_empty());
        bytes += r.report.bytes_pulled;
        per_device.push(ms(*took));
    }
    for p in &phones {
        assert_eq!(p.document_ids().expect("ids").len(), docs + 1);
    }
    println!(
        "catchup: {devices} devices × {} documents at once: {:.1} s total; per device median {:.1} s, max {:.1} s; {:.0} documents/s, {:.1} MB/s of blobs; relay peak RSS {:.1} MiB (now {:.1} MiB), relay CPU {:.1} s; relay data {:.1} MB",
        docs + 1,
        total.as_secs_f64(),
        median(per_device.clone()) / 1e3,
        per_device.iter().copied().fold(0.0, f64::max) / 1e3,
        (devices * (docs + 1)) as f64 / total.as_secs_f64(),
        bytes as f64 / 1e6 / total.as_secs_f64(),
        peak as f64 / 1024.0,
        now as f64 / 1024.0,
        relay_cpu,
        stored as f64 / 1e6,
    );
    assert!(relay.terminate().success());
}

/// Fills a relay's storage with `n` blobs of 600 random-looking bytes: half in `own` (the
/// devices' network, before their first sync), half spread over 100 other networks.
fn fill(dir: &Path, n: usize, own: [u8; 32]) {
    let storage = SqliteStorage::open(dir).expect("storage");
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        *blake3::hash(&seq.to_le_bytes()).as_bytes()
    };
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let blobs: Vec<NewBlob> = chunk
            .iter()
            .map(|i| {
                let mut bytes = Vec::with_capacity(600);
                while bytes.len() < 600 {
                    bytes.extend_from_slice(&next());
                }
                let network = if i % 2 == 0 { own } else { [(*i % 100) as u8; 32] };
                NewBlob { network, doc: next(), id: *blake3::hash(&bytes).as_bytes(), bytes }
            })
            .collect();
        storage.put_blobs(&blobs, u64::MAX).expect("fill");
    }
}

fn flat() {
    let sizes: Vec<usize> = std::env::var("NABIJ_BENCH_FILL")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000]);
    let reps = env_usize("NABIJ_BENCH_REPS", 5);
    let rt = runtime();
    for n in sizes {
        let dir = tempfile::tempdir().expect("dir");
        let relay_dir = dir.path().join("relay");
        let a = Arc::new(Device::open(dir.path().join("a.db")).expect("open"));
        let b = Arc::new(Device::open(dir.path().join("b.db")).expect("open"));
        let network = a.create_network("Wijknetwerk Oost").expect("network");
        b.join(&a.invite(network, b.member_id(), "B", b.device_key()).expect("invite"))
            .expect("member");
        fill(&relay_dir, n, a.relay_network_id(network).expect("read").expect("key"));
        let relay = rt.block_on(InProcessRelay::start(&relay_dir, Limits::default()));
        let sync = |d: &Arc<Device>| {
            rt.block_on(net::sync_with_relay(
                d.clone(),
                &relay.address,
                relay.key,
                RelaySyncOptions::default(),
            ))
            .expect("sync")
        };
        let cases = write_cases(&a, network, 20);
        sync(&a);
        // B's first sync walks past the filler of its network (blobs no key opens: reported).
        let first = sync(&b);
        assert_eq!(first.report.rejected.len(), n.div_ceil(2), "the filler is not applied");
        let (mut times, mut bytes, mut pulled) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..reps {
            for (i, c) in cases.iter().take(10).enumerate() {
                a.add_note(*c, observation(&format!("Nieuw {rep}.{i}"))).expect("note");
            }
            assert_eq!(sync(&a).report.blobs_pushed, 10);
            let t = Instant::now();
            let r = sync(&b);
            times.push(ms(t.elapsed()));
            assert_eq!(r.report.documents_changed, 10);
            bytes.push((r.bytes_sent + r.bytes_received) as f64);
            pulled.push(r.report.blobs_pulled as f64);
        }
        println!(
            "flat: relay holding {n} other blobs (half in the device's network, before its cursor): pull of 10 changes median {:.1} ms, {:.0} protocol bytes, {} blobs pulled",
            median(times),
            median(bytes),
            median(pulled)
        );
        rt.block_on(relay.stop());
    }
}

fn removal() {
    let docs = env_usize("NABIJ_BENCH_DOCS", 1000);
    let reps = env_usize("NABIJ_BENCH_REPS", 5);
    let rt = runtime();
    let mut rekey = Vec::new();
    let mut admin_sync = Vec::new();
    let mut admin_bytes = Vec::new();
    let mut wipe = Vec::new();
    let mut wiped_docs = Vec::new();
    let mut colleague_sync = Vec::new();
    let mut push_after = Vec::new();
    for _ in 0..reps {
        let dir = tempfile::tempdir().expect("dir");
        let relay =
            rt.block_on(InProcessRelay::start(&dir.path().join("relay"), Limits::default()));
        let open = |name: &str| Arc::new(Device::open(dir.path().join(name)).expect("open"));
        let (admin, colleague, lost) = (open("admin.db"), open("colleague.db"), open("lost.db"));
        let network = admin.create_network("Wijknetwerk Oost").expect("network");
        for d in [&colleague, &lost] {
            let inv = admin.invite(network, d.member_id(), "Lid", d.device_key()).expect("invite");
            d.join(&inv).expect("join");
        }
        let cases = write_cases(&admin, network, docs);
        let sync = |d: &Arc<Device>| {
            rt.block_on(net::sync_with_relay(
                d.clone(),
                &relay.address,
                relay.key,
                RelaySyncOptions::default(),
            ))
            .expect("sync")
        };
        for d in [&admin, &colleague, &lost] {
            sync(d);
        }
        // The admin's next sync pulls back what it pushed (issue 12): not the removal's cost.
        sync(&admin);
        let t = Instant::now();
        admin
            .remove_device(network, lost.device_key(), nabij_core::model::Reason::Lost)
            .expect("remove");
        rekey.push(ms(t.elapsed()));
        let t = Instant::now();
        let r = sync(&admin);
        admin_sync.push(ms(t.elapsed()));
        admin_bytes.push((r.bytes_sent + r.bytes_received) as f64);
        assert_eq!(r.report.rosters_registered, 1);
        let t = Instant::now();
        let r = sync(&lost);
        wipe.push(ms(t.elapsed()));
        assert_eq!(r.report.wiped, vec![network], "{:?}", r.report);
        wiped_docs.push(docs as f64 + 1.0 - lost.document_ids().expect("ids").len() as f64);
        let t = Instant::now();
        let r = sync(&colleague);
        colleague_sync.push(ms(t.elapsed()));
        assert!(r.report.refusals.is_empty());
        admin.add_note(cases[0], observation("Na de verwijdering.")).expect("note");
        let t = Instant::now();
        let r = sync(&admin);
        push_after.push(ms(t.elapsed()));
        assert_eq!(r.report.blobs_pushed, 2, "the note and the network's new content key");
        rt.block_on(relay.stop());
    }
    println!("## removal: an admin removes a lost phone from a network of {docs} documents");
    println!("| step | median |");
    println!("|---|---|");
    println!(
        "| remove_device (signed removal + new key epoch, sealed to the rest) | {:.1} ms |",
        median(rekey)
    );
    println!(
        "| the admin's relay sync registering the new roster | {:.1} ms, {:.0} protocol bytes |",
        median(admin_sync),
        median(admin_bytes)
    );
    println!(
        "| the lost phone's next relay sync: refused, removal found, network wiped | {:.1} ms ({:.0} documents wiped) |",
        median(wipe),
        median(wiped_docs)
    );
    println!("| a colleague's next relay sync | {:.1} ms |", median(colleague_sync));
    println!("| a later note pushed under the new epoch | {:.1} ms |", median(push_after));
}

fn main() {
    if selected("catchup") {
        catchup();
    }
    if selected("flat") {
        flat();
    }
    if selected("removal") {
        removal();
    }
}
