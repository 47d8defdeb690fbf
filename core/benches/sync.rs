//! Meeting-sync benchmarks over real QUIC on loopback (a bench binary, not criterion: each
//! figure is compared with a floor measured in the same run, and repetitions are interleaved).
//!
//! `cargo bench -p nabij-core --bench sync` (all) or `... -- catchup|reconnect|meeting`.
//! Sizes: `NABIJ_BENCH_CASES` (catch-up, default 1000), `NABIJ_BENCH_DOCS` (reconnect, default
//! 10000), `NABIJ_BENCH_REPS` (default 3). Figures go to BENCHMARKS.md.
//!
//! The meeting benchmark runs each device in its own process (this binary, re-executed with
//! `__peer …`) so that peak RSS is per device.

use std::{
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use automerge::{
    AutoCommit,
    sync::{State, SyncDoc},
};
use nabij_core::{
    Device, DocId,
    model::{NewCase, NewNote},
    net::{self, SyncOptions, Ticket},
    sync::Session,
    test_utils::{
        SENTENCES, env_usize, loopback, median, ms, rss_kib, runtime, selected, sentence_note,
        shared_case, wait_for_file,
    },
};

/// Note `i` of the host's cases: the sentences in turn, numbered.
fn note(i: usize) -> NewNote {
    sentence_note(&SENTENCES, i, i)
}

/// A host with a network that lists `guests`, and `cases` cases of `notes` notes each.
fn host_with(dir: &Path, guests: &[&Device], cases: usize, notes: usize) -> (Device, DocId) {
    let host = Device::open(dir.join("host.db")).expect("host");
    let network = host.create_network("Wijknetwerk Oost").expect("network");
    for g in guests {
        g.join(&host.invite(network, g.member_id(), "gast", g.device_key()).expect("invite"))
            .expect("member");
    }
    for c in 0..cases {
        let case = host
            .create_case(NewCase {
                subject: format!("Casus {c}"),
                at_stake: "Wonen blijven waar hij woont.".into(),
                networks: vec![network],
                ..NewCase::default()
            })
            .expect("case");
        if notes > 0 {
            host.add_notes(case, (0..notes).map(|i| note(c * notes + i)).collect()).expect("notes");
        }
    }
    (host, network)
}

/// In-memory Automerge sync of one document into an empty one: (messages' bytes, rounds).
fn automerge_sync(source: &mut AutoCommit) -> (usize, usize) {
    let mut target = AutoCommit::new();
    let (mut s1, mut s2) = (State::new(), State::new());
    let (mut bytes, mut rounds) = (0, 0);
    loop {
        let mut moved = false;
        if let Some(m) = source.sync().generate_sync_message(&mut s1) {
            let enc = m.encode();
            bytes += enc.len();
            let m = automerge::sync::Message::decode(&enc).expect("decode");
            target.sync().receive_sync_message(&mut s2, m).expect("receive");
            moved = true;
        }
        if let Some(m) = target.sync().generate_sync_message(&mut s2) {
            let enc = m.encode();
            bytes += enc.len();
            let m = automerge::sync::Message::decode(&enc).expect("decode");
            source.sync().receive_sync_message(&mut s1, m).expect("receive");
            moved = true;
        }
        if !moved {
            return (bytes, rounds);
        }
        rounds += 1;
    }
}

fn catchup_bench() {
    let cases = env_usize("NABIJ_BENCH_CASES", 1000);
    let reps = env_usize("NABIJ_BENCH_REPS", 3);
    println!("\n## catch-up: a fresh device gets {cases} cases x 20 notes from one peer");
    let dir = tempfile::tempdir().expect("dir");
    // Guests are made first so the roster lists them; each rep uses a fresh one.
    let guests: Vec<Device> =
        (0..reps).map(|i| Device::open(dir.path().join(format!("g{i}.db"))).expect("g")).collect();
    let refs: Vec<&Device> = guests.iter().collect();
    let t = Instant::now();
    let (host, network) = host_with(dir.path(), &refs, cases, 20);
    println!("(built the host in {:.1} s)", t.elapsed().as_secs_f64());
    let ids: Vec<DocId> = host.document_ids().expect("ids").into_iter().map(|(id, _)| id).collect();
    let t = Instant::now();
    let exported: Vec<Vec<u8>> =
        ids.iter().map(|id| host.export_document(*id).expect("export")).collect();
    // Each comes with the signatures that cover it: the Automerge bytes are what is timed.
    let parts: Vec<(Vec<nabij_core::authorship::SignedHead>, Vec<u8>)> = exported
        .iter()
        .map(|e| {
            let (signed, bytes) = nabij_core::authorship::open_envelope(e).expect("envelope");
            (signed, bytes.to_vec())
        })
        .collect();
    let saved: Vec<Vec<u8>> = parts.iter().map(|(_, b)| b.clone()).collect();
    let saved_size: usize = saved.iter().map(Vec::len).sum();
    println!("(parts: exporting every document on the host {:.0} ms;", ms(t.elapsed()));
    {
        use nabij_core::sync::SyncStore;
        let probe = Device::open(dir.path().join("probe.db")).expect("probe");
        probe
            .merge_document(&exported[ids.iter().position(|i| *i == network).expect("net")])
            .expect("network");
        let mut store = &probe;
        let t = Instant::now();
        for chunk in
            ids.iter().zip(&parts).filter(|(i, _)| **i != network).collect::<Vec<_>>().chunks(27)
        {
            let batch =
                chunk.iter().map(|(i, (s, b))| (network, **i, b.to_vec(), s.clone())).collect();
            store.import_many(batch).expect("import");
        }
        println!(" storing them on a fresh device in batches of 27 {:.0} ms;", ms(t.elapsed()));
        let t = Instant::now();
        let mut loaded: Vec<AutoCommit> =
            saved.iter().map(|b| AutoCommit::load(b).expect("load")).collect();
        println!(" Automerge load of each {:.0} ms;", ms(t.elapsed()));
        // (Reading the typed values out of each document is timed inside the store's
        // receive path, which the catch-up above measures; the layout is crate-private.)
        let t = Instant::now();
        let n: usize = loaded.iter_mut().map(|d| d.save().len()).sum();
        println!(" Automerge save of each {:.0} ms ({n} bytes))", ms(t.elapsed()));
    }
    drop(guests);
    let host = Arc::new(host);
    let rt = runtime();
    let listener = rt.block_on(net::listen(host.clone(), loopback())).expect("listen");
    let ticket = listener.ticket().clone();

    let (mut ours_ms, mut floor_ms, mut wire, mut proto, mut am_bytes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0usize);
    for rep in 0..reps {
        // Floor: Automerge's own sync protocol, in memory, documents already loaded.
        let mut docs: Vec<AutoCommit> =
            saved.iter().map(|b| AutoCommit::load(b).expect("load")).collect();
        let t = Instant::now();
        let mut bytes = 0;
        for d in &mut docs {
            bytes += automerge_sync(d).0;
        }
        floor_ms.push(ms(t.elapsed()));
        am_bytes = bytes;
        drop(docs);

        let guest = Arc::new(Device::open(dir.path().join(format!("g{rep}.db"))).expect("g"));
        let t = Instant::now();
        let r = rt
            .block_on(net::sync_with(guest.clone(), &ticket, SyncOptions::default()))
            .expect("sync");
        ours_ms.push(ms(t.elapsed()));
        assert_eq!(guest.document_ids().expect("ids").len(), ids.len(), "caught up");
        wire.push((r.wire_bytes_received + r.wire_bytes_sent) as f64);
        proto.push((r.bytes_received + r.bytes_sent) as f64);
        println!(
            "rep {rep}: ours {:.0} ms, in-memory Automerge sync {:.0} ms; {} documents received",
            ours_ms[rep], floor_ms[rep], r.documents_received
        );
    }
    let (o, f) = (median(ours_ms), median(floor_ms));
    let (w, p) = (median(wire), median(proto));
    println!("documents: {}, saved size {:.2} MB", ids.len(), saved_size as f64 / 1e6);
    println!("time: ours {o:.0} ms, in-memory sync {f:.0} ms: **{:.2}x** (target <= 2x)", o / f);
    println!(
        "bytes: sync protocol {:.2} MB = **{:.3}x** saved size; on the wire (UDP, QUIC+TLS) {:.2} MB = {:.3}x; in-memory Automerge sync sends {:.2} MB = {:.2}x",
        p / 1e6,
        p / saved_size as f64,
        w / 1e6,
        w / saved_size as f64,
        am_bytes as f64 / 1e6,
        am_bytes as f64 / saved_size as f64
    );
    rt.block_on(listener.close());
}

/// Sans-IO rounds and bytes between two in-sync devices.
fn sans_io_reconnect(a: &Device, b: &Device) -> (usize, usize) {
    let mut sa = Session::new(a.device_key(), b.device_key(), 0);
    let mut sb = Session::new(b.device_key(), a.device_key(), 0);
    let (mut st_a, mut st_b) = (a, b);
    sa.start(&mut st_a).expect("start a");
    sb.start(&mut st_b).expect("start b");
    let mut bytes = 0;
    for round in 0..100 {
        let mut moved = false;
        let from_a: Vec<Vec<u8>> = std::iter::from_fn(|| sa.poll_transmit()).collect();
        let from_b: Vec<Vec<u8>> = std::iter::from_fn(|| sb.poll_transmit()).collect();
        for f in from_a {
            bytes += f.len();
            sb.handle_bytes(&mut st_b, 1, &f).expect("b");
            moved = true;
        }
        for f in from_b {
            bytes += f.len();
            sa.handle_bytes(&mut st_a, 1, &f).expect("a");
            moved = true;
        }
        if !moved {
            assert!(sa.is_complete() && sb.is_complete());
            return (round, bytes);
        }
    }
    panic!("no quiescence");
}

fn reconnect_bench() {
    let docs = env_usize("NABIJ_BENCH_DOCS", 10_000);
    let reps = env_usize("NABIJ_BENCH_REPS", 3);
    println!("\n## reconnect: two in-sync devices holding {docs} documents");
    let dir = tempfile::tempdir().expect("dir");
    let guest = Device::open(dir.path().join("guest.db")).expect("guest");
    let t = Instant::now();
    let (host, _) = host_with(dir.path(), &[&guest], docs - 1, 0);
    let (host, guest) = (Arc::new(host), Arc::new(guest));
    let rt = runtime();
    let listener = rt.block_on(net::listen(host.clone(), loopback())).expect("listen");
    let ticket = listener.ticket().clone();
    rt.block_on(net::sync_with(guest.clone(), &ticket, SyncOptions::default())).expect("first");
    println!("(built and synced in {:.1} s)", t.elapsed().as_secs_f64());

    let (rounds, bytes) = sans_io_reconnect(&host, &guest);
    println!(
        "sync protocol: **{rounds} round trips, {bytes} bytes** (targets <= 2 round trips, <= 2 KiB)"
    );
    let (mut times, mut wire) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        let r = rt
            .block_on(net::sync_with(guest.clone(), &ticket, SyncOptions::default()))
            .expect("reconnect");
        times.push(ms(t.elapsed()));
        wire.push((r.wire_bytes_sent + r.wire_bytes_received) as f64);
        assert_eq!(r.documents_received + r.documents_sent, 0);
    }
    println!(
        "over QUIC on loopback: median {:.1} ms per reconnect including the handshake; {:.0} bytes on the wire (UDP, QUIC+TLS)",
        median(times),
        median(wire)
    );
    rt.block_on(listener.close());
}

/// Child mode: `__peer listen STORE TICKET_FILE SESSIONS` or `__peer sync STORE TICKET`.
fn peer(args: &[String]) {
    let device = Arc::new(Device::open(&args[2]).expect("open"));
    let rt = runtime();
    match args[1].as_str() {
        "listen" => rt.block_on(async {
            let mut l = net::listen(device, loopback()).await.expect("listen");
            let tmp = format!("{}.tmp", args[3]);
            std::fs::write(&tmp, l.ticket().encode()).expect("ticket");
            std::fs::rename(&tmp, &args[3]).expect("ticket");
            let sessions: usize = args[4].parse().expect("count");
            for _ in 0..sessions {
                let s = l.next_session().await.expect("session");
                s.result.expect("served");
            }
            l.close().await;
        }),
        _ => {
            let ticket = Ticket::parse(&args[3]).expect("ticket");
            rt.block_on(net::sync_with(device, &ticket, SyncOptions::default())).expect("sync");
        }
    }
    println!("rss_kib {}", rss_kib(std::process::id()).0);
}

fn meeting_bench() {
    const DEVICES: usize = 8;
    const CHANGES: usize = 200;
    println!(
        "\n## meeting: {DEVICES} devices with {CHANGES} offline changes each, through one host"
    );
    let dir = tempfile::tempdir().expect("dir");
    let guests: Vec<Device> = (0..DEVICES)
        .map(|i| Device::open(dir.path().join(format!("d{i}.db"))).expect("d"))
        .collect();
    let refs: Vec<&Device> = guests.iter().collect();
    let (host, network) = host_with(dir.path(), &refs, 0, 0);
    // Everyone holds the roster (an earlier meeting), then works offline: 20 cases, each
    // created and given 9 notes one by one: 200 Automerge changes per device.
    for g in &guests {
        g.merge_document(&host.export_document(network).expect("export")).expect("merge");
        for c in 0..20 {
            let case = shared_case(g, network, &format!("Casus {c}"));
            for n in 0..9 {
                g.add_note(case, note(c * 9 + n)).expect("note");
            }
        }
    }
    drop(guests);
    drop(host);
    let exe = std::env::current_exe().expect("exe");
    let ticket_file = dir.path().join("ticket");
    let host_proc = Command::new(&exe)
        .args(["__peer", "listen"])
        .arg(dir.path().join("host.db"))
        .arg(&ticket_file)
        .arg((2 * DEVICES).to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("host");
    let ticket = wait_for_file(&ticket_file, Duration::from_secs(30), Duration::from_millis(10));
    let started = Instant::now();
    let mut rss = Vec::new();
    // Everyone at once; then once more, so those who finished first get what the last brought.
    for _round in 0..2 {
        let kids: Vec<_> = (0..DEVICES)
            .map(|i| {
                Command::new(&exe)
                    .args(["__peer", "sync"])
                    .arg(dir.path().join(format!("d{i}.db")))
                    .arg(ticket.trim())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("peer")
            })
            .collect();
        for k in kids {
            let out = k.wait_with_output().expect("peer");
            assert!(out.status.success());
            rss.push(rss_of(&out.stdout));
        }
    }
    let took = started.elapsed();
    let host_out = host_proc.wait_with_output().expect("host");
    assert!(host_out.status.success());
    let host_rss = rss_of(&host_out.stdout);
    // Converged?
    let host = Device::open(dir.path().join("host.db")).expect("host");
    let want = fingerprint(&host);
    for i in 0..DEVICES {
        let d = Device::open(dir.path().join(format!("d{i}.db"))).expect("d");
        assert_eq!(fingerprint(&d), want, "device {i} converged");
    }
    let max_rss = rss.iter().copied().max().unwrap_or(0);
    println!(
        "all {DEVICES} converged ({} documents each) in **{:.0} ms** (two rounds of 8 concurrent syncs, process start included)",
        want.0,
        ms(took)
    );
    println!(
        "peak RSS: devices median {:.1} MiB, max {:.1} MiB; host {:.1} MiB",
        median(rss.iter().map(|k| *k as f64 / 1024.0).collect()),
        max_rss as f64 / 1024.0,
        host_rss as f64 / 1024.0
    );
}

fn rss_of(stdout: &[u8]) -> u64 {
    String::from_utf8_lossy(stdout)
        .lines()
        .find_map(|l| l.strip_prefix("rss_kib ").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

fn fingerprint(d: &Device) -> (usize, [u8; 32]) {
    let inv: Vec<(DocId, Vec<[u8; 32]>)> = d
        .document_ids()
        .expect("ids")
        .into_iter()
        .map(|(id, _)| (id, d.heads(id).expect("heads").iter().map(|h| h.0).collect()))
        .collect();
    (inv.len(), nabij_core::sync::session::digest(&inv))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__peer") {
        return peer(&args[1..]);
    }
    if selected("catchup") {
        catchup_bench();
    }
    if selected("reconnect") {
        reconnect_bench();
    }
    if selected("meeting") {
        meeting_bench();
    }
}
