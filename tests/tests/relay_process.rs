//! The relay as a real process: killed with SIGKILL in the middle of uploads and restarted
//! (every acknowledged blob survives), and a day of work synced through it, after which its
//! whole data directory (database, WAL, logs) holds none of the plaintext.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use nabij_core::{
    Device, DocId,
    model::{NewCase, NewLearningPoint, NewMeeting},
    net::{self, NetError, RelayProgress, RelayProgressFn, RelaySyncOptions, RelaySyncReport},
    test_utils::{contains, observation as note},
};
use nabij_tests::{doc_heads, relay::ChildRelay};

const BOUND: Duration = Duration::from_secs(120);
const RELAY: &str = env!("CARGO_BIN_EXE_relay_node");

fn open(dir: &Path, name: &str) -> Arc<Device> {
    let path = dir.join(format!("{name}.db"));
    // Sanne's phone keeps a plain store: the control that a byte scan sees plaintext where it
    // is (the others are encrypted, as apps' are).
    let d = if name.starts_with("Sanne") {
        Device::open(&path).expect("open")
    } else {
        nabij_tests::reopen(&path)
    };
    d.set_display_name(name).expect("name");
    Arc::new(d)
}

async fn relay_sync(
    d: &Arc<Device>,
    relay: (&str, [u8; 32]),
    progress: Option<RelayProgressFn>,
) -> Result<RelaySyncReport, NetError> {
    let options = RelaySyncOptions { progress, connect_timeout: Some(Duration::from_secs(10)) };
    tokio::time::timeout(BOUND, net::sync_with_relay(d.clone(), relay.0, relay.1, options))
        .await
        .expect("relay sync did not finish in time")
}

/// What a device recorded as durable at a relay: document → heads.
fn acknowledged(store: &Path) -> Vec<(DocId, Vec<[u8; 32]>)> {
    let db =
        rusqlite::Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("store");
    if !store.to_string_lossy().contains("Sanne") {
        nabij_core::test_utils::key_connection(&db, &nabij_tests::store_key());
    }
    let mut stmt = db.prepare("SELECT doc_id, heads FROM relay_pushed").expect("query");
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .expect("rows");
    rows.map(|r| {
        let (id, heads) = r.expect("row");
        let id = DocId::from_bytes(id.try_into().expect("16 bytes"));
        let mut heads: Vec<[u8; 32]> =
            heads.chunks(32).map(|h| h.try_into().expect("32")).collect();
        heads.sort();
        (id, heads)
    })
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// SIGKILL: nothing gets to finish.
    Kill,
    /// SIGTERM: the relay finishes the batches it is storing, answers them, and exits.
    Term,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: starts, kills and restarts the relay as a process (--include-ignored)"]
async fn sigkill_during_uploads_loses_no_acknowledged_blob() {
    stopped_during_uploads(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: starts, kills and restarts the relay as a process (--include-ignored)"]
async fn sigterm_during_uploads_finishes_in_flight_writes_and_exits_cleanly() {
    stopped_during_uploads(Stop::Term).await;
}

async fn stopped_during_uploads(how: Stop) {
    let dir = tempfile::tempdir().expect("dir");
    let relay_dir = dir.path().join("relay");
    let log = dir.path().join("relay.log");
    let relay = Arc::new(Mutex::new(ChildRelay::start(RELAY, &relay_dir, &log, 0)));
    let (address, key) = {
        let r = relay.lock().expect("relay");
        (r.address.clone(), r.key)
    };

    let sanne = open(dir.path(), "Sanne");
    let youssef = open(dir.path(), "Youssef");
    let network = sanne.create_network("Wijknetwerk Oost").expect("network");
    youssef
        .join(
            &sanne
                .invite(network, youssef.member_id(), "Youssef", youssef.device_key())
                .expect("invite"),
        )
        .expect("member");
    const CASES: usize = 240;
    for i in 0..CASES {
        let case = sanne
            .create_case(NewCase {
                subject: format!("Gezin {i}"),
                networks: vec![network],
                ..NewCase::default()
            })
            .expect("case");
        let notes = (0..3)
            .map(|n| note(&format!("Gezin {i}, bezoek {n}: {}", "afspraken ".repeat(40))))
            .collect();
        sanne.add_notes(case, notes).expect("notes");
    }

    // Stop the relay once Sanne has had 60 blobs acknowledged: the rest are in flight.
    let killer = relay.clone();
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let k = killed.clone();
    let progress: RelayProgressFn = Arc::new(move |p: &RelayProgress| {
        if p.docs_done >= 60 && !k.swap(true, std::sync::atomic::Ordering::SeqCst) {
            match how {
                Stop::Kill => killer.lock().expect("relay").kill(),
                Stop::Term => killer.lock().expect("relay").ask_to_stop(),
            }
        }
    });
    let cut = relay_sync(&sanne, (&address, key), Some(progress)).await;
    assert!(killed.load(std::sync::atomic::Ordering::SeqCst), "the relay was stopped mid-upload");
    assert!(cut.is_err(), "the sync cannot finish without its relay: {cut:?}");
    if how == Stop::Term {
        let status = relay.lock().expect("relay").child.wait().expect("wait");
        assert!(status.success(), "SIGTERM stops the relay cleanly: {status:?}");
    }
    let acked = acknowledged(&dir.path().join("Sanne.db"));
    assert!(acked.len() >= 60 && acked.len() < CASES + 1, "{} acknowledged", acked.len());

    // Restart on the same data; Youssef pulls before Sanne comes back.
    *relay.lock().expect("relay") = ChildRelay::start(RELAY, &relay_dir, &log, 0);
    let address = relay.lock().expect("relay").address.clone();
    relay_sync(&youssef, (&address, key), None).await.expect("Youssef pulls");
    for (doc, heads) in &acked {
        let mut his: Vec<[u8; 32]> = youssef
            .heads(*doc)
            .unwrap_or_else(|e| panic!("acknowledged document {doc} lost: {e}"))
            .iter()
            .map(|h| h.0)
            .collect();
        his.sort();
        assert_eq!(&his, heads, "acknowledged document {doc} at the acknowledged heads");
    }

    // Everything durable at the relay reached Youssef: the acknowledged blobs, and any stored
    // whose acknowledgement the kill cut off.
    let at_relay = youssef.document_ids().expect("ids").len();
    assert!(at_relay >= acked.len());

    // Sanne finishes: she pulls first, so only what the relay does not hold goes up again.
    let rest = relay_sync(&sanne, (&address, key), None).await.expect("Sanne resumes");
    assert_eq!(rest.report.blobs_pushed + at_relay, CASES + 1, "{rest:?}");
    relay_sync(&youssef, (&address, key), None).await.expect("Youssef pulls the rest");
    assert_eq!(doc_heads(&sanne), doc_heads(&youssef));
    let status = relay.lock().expect("relay").terminate();
    assert!(status.success(), "SIGTERM stops the relay cleanly: {status:?}");
}

/// Every file under `dir`, as bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).expect("read")));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: starts, kills and restarts the relay as a process (--include-ignored)"]
async fn a_day_through_the_relay_leaves_no_plaintext_in_its_data_directory() {
    let dir = tempfile::tempdir().expect("dir");
    let relay_dir = dir.path().join("relay");
    // The relay's log (debug level) is kept in its data directory and scanned with it.
    std::fs::create_dir_all(&relay_dir).expect("relay dir");
    let log = relay_dir.join("relay.log");
    let mut relay = ChildRelay::start(RELAY, &relay_dir, &log, 0);
    let at = (relay.address.clone(), relay.key);

    let names = ["Sanne de Vries", "Youssef El Amrani", "Fatima Bakker"];
    let phones: Vec<Arc<Device>> = names.iter().map(|n| open(dir.path(), n)).collect();
    let network = phones[0].create_network("Wijknetwerk Oost-Lindenholt").expect("network");
    for p in &phones[1..] {
        p.join(
            &phones[0]
                .invite(network, p.member_id(), &p.display_name(), p.device_key())
                .expect("invite"),
        )
        .expect("member");
    }
    let mut secrets: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    secrets.push("Wijknetwerk Oost-Lindenholt".into());
    let mut ids: Vec<DocId> = vec![network];
    // Morning: everyone writes offline; noon and evening: everyone syncs through the relay.
    for round in 0..3 {
        for (i, p) in phones.iter().enumerate() {
            let subject = format!("Familie Jansen-{round}{i} Kerkstraat");
            let case = p
                .create_case(NewCase {
                    subject: subject.clone(),
                    networks: vec![network],
                    ..NewCase::default()
                })
                .expect("case");
            let text = format!(
                "Moeder vertelt over de schuldhulp en de huur, ronde {round} van {}",
                names[i]
            );
            p.add_note(case, note(&text)).expect("note");
            secrets.extend([subject, text]);
            ids.push(case);
            if round == 1 {
                let insight = format!("Vroeg signaleren werkt bij huurachterstand {i}");
                let lp = p
                    .create_learning_point(NewLearningPoint {
                        title: insight.clone(),
                        insight: "Samen met de woningcorporatie het gesprek voeren".into(),
                        networks: vec![network],
                        ..NewLearningPoint::default()
                    })
                    .expect("learning point");
                secrets.push(insight);
                secrets.push("Samen met de woningcorporatie het gesprek voeren".into());
                ids.push(lp);
            }
        }
        if round == 2 {
            let m = phones[0]
                .create_meeting(NewMeeting {
                    network: Some(network),
                    date: "2026-11-29".into(),
                    place: "Buurthuis Casusbespreking Lindenholt".into(),
                    participants: names.iter().map(|n| n.to_string()).collect(),
                    agenda: ids[1..3].to_vec(),
                })
                .expect("meeting");
            secrets.push("Buurthuis Casusbespreking Lindenholt".into());
            ids.push(m);
        }
        for p in &phones {
            let r = relay_sync(p, (&at.0, at.1), None).await.expect("sync");
            assert!(r.report.rejected.is_empty() && r.report.refusals.is_empty(), "{r:?}");
        }
    }
    for p in &phones {
        relay_sync(p, (&at.0, at.1), None).await.expect("last sync");
    }
    assert_eq!(doc_heads(&phones[0]), doc_heads(&phones[1]));
    assert_eq!(doc_heads(&phones[0]), doc_heads(&phones[2]));

    let scan = |files: &[(String, Vec<u8>)]| -> Vec<String> {
        let mut found = Vec::new();
        for s in &secrets {
            for (name, bytes) in files {
                if contains(bytes, s.as_bytes()) {
                    found.push(format!("{s:?} in {name}"));
                }
            }
        }
        for id in &ids {
            for (name, bytes) in files {
                if contains(bytes, id.as_bytes()) || contains(bytes, id.to_string().as_bytes()) {
                    found.push(format!("document id {id} in {name}"));
                }
            }
        }
        found
    };
    // The scan finds plaintext where it is: in a phone's own store.
    let phone_files =
        files(dir.path()).into_iter().filter(|(n, _)| n.contains("Sanne")).collect::<Vec<_>>();
    assert!(!scan(&phone_files).is_empty(), "the scan would see plaintext");
    // And none in the relay's directory, with the WAL still holding the day's writes…
    let relay_files = files(&relay_dir);
    assert!(relay_files.iter().any(|(n, _)| n.ends_with("relay.db")));
    assert!(relay_files.iter().any(|(n, b)| n.ends_with("relay.log") && !b.is_empty()));
    assert_eq!(scan(&relay_files), Vec::<String>::new());
    // …nor after a clean shutdown.
    assert!(relay.terminate().success());
    assert_eq!(scan(&files(&relay_dir)), Vec::<String>::new());
}
