//! Promise 8 of `THREAT-MODEL.md`: erasure is real. A case erased by its worker (or an admin)
//! is gone from every device after one round of meetings: a byte scan of every store file
//! finds none of its words and not its id; a stale phone that comes back a month later does
//! not bring it back, and loses its own copy; no merge path takes it again; a member who may
//! not erase it cannot.
//!
//! The stores here are plain, not encrypted: on an encrypted store a byte scan finds nothing
//! whatever was deleted, so only a plain one shows that the text left the file (free pages
//! zeroed, the search index merged, the WAL folded in).

use std::{path::Path, sync::Arc};

use nabij_core::{
    Device, DocId, Error,
    error::DocError,
    model::{NewNote, NoteKind},
    test_utils::{
        contains, content_keys_in_history, content_keys_kept, plant_tombstone_entry, shared_case,
        signed_tombstone,
    },
};
use nabij_tests::{StepClock, meet};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn open(dir: &Path, name: &str, clock: &Arc<StepClock>) -> Device {
    nabij_tests::plain_device(dir, name, clock)
}

/// Anna (admin, the case's worker), Bram and Cor in one network; Anna's case with two notes
/// reaches both by meetings.
fn a_network(dir: &Path, clock: &Arc<StepClock>) -> ([Device; 3], DocId, DocId) {
    let [anna, bram, cor] = ["anna", "bram", "cor"].map(|n| open(dir, n, clock));
    let network = anna.create_network("Wijknetwerk Zeeheldenbuurt").expect("network");
    for d in [&bram, &cor] {
        let inv = anna.invite(network, d.member_id(), &d.display_name(), d.device_key());
        d.join(&inv.expect("invite")).expect("join");
    }
    let case = shared_case(&anna, network, "Familie Oudeweg-Smits");
    for text in [
        "Mevrouw Oudeweg vertelt over de deurwaarder en de huurachterstand.",
        "Zoon Kees verzuimt school; afspraak met de leerplichtambtenaar.",
    ] {
        anna.add_note(case, NewNote { kind: NoteKind::Observation, text: text.into() })
            .expect("note");
    }
    meet(&anna, &bram).expect("meet");
    meet(&anna, &cor).expect("meet");
    assert!(bram.case(case).is_ok() && cor.case(case).is_ok(), "everyone holds the case");
    (([anna, bram, cor]), network, case)
}

fn needles(case: DocId) -> Vec<(String, Vec<u8>)> {
    let mut n: Vec<(String, Vec<u8>)> =
        ["Oudeweg", "deurwaarder", "leerplichtambtenaar", "huurachterstand"]
            .into_iter()
            .map(|w| (w.to_string(), w.as_bytes().to_vec()))
            .collect();
    n.push(("the case id".into(), case.to_string().into_bytes()));
    n.push(("the case id (bytes)".into(), case.as_bytes().to_vec()));
    n
}

/// Which needles each file in `dir` holds.
fn scan(dir: &Path, needles: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        for (what, n) in needles {
            if contains(&bytes, n) {
                found.push(format!("{what} in {}", path.display()));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn promise_8_an_erased_case_is_gone_from_every_store_file_after_one_round() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, cor], _network, case) = a_network(dir.path(), &clock);
    let needles = needles(case);
    // The control: before erasure the scan finds the case in every store.
    let before = scan(dir.path(), &needles);
    for name in ["anna", "bram", "cor"] {
        assert!(
            before.iter().any(|f| f.contains(name)),
            "{name}'s store shows the case: {before:?}"
        );
    }

    anna.erase(case, "De cliënt vroeg om verwijdering (AVG art. 17)").expect("erase");
    assert!(matches!(anna.case(case), Err(Error::NotFound { .. })));
    // One round: Anna meets each colleague once.
    meet(&anna, &bram).expect("meet");
    meet(&anna, &cor).expect("meet");
    for d in [&anna, &bram, &cor] {
        assert!(
            matches!(d.case(case), Err(Error::NotFound { .. })),
            "{} holds it",
            d.display_name()
        );
        assert!(d.search("deurwaarder", 10).expect("search").is_empty());
        assert!(d.check_integrity().expect("check").is_empty());
    }
    // Open (WALs as they are) and closed.
    assert_eq!(scan(dir.path(), &needles), Vec::<String>::new(), "open stores");
    drop((anna, bram, cor));
    assert_eq!(scan(dir.path(), &needles), Vec::<String>::new(), "closed stores");
}

/// A case written note by note is compacted while it lives (its chunks replaced by a
/// snapshot), so pages holding its words were freed long before the erasure: those must not
/// keep them either.
#[test]
fn promise_8_an_erased_case_leaves_nothing_in_pages_freed_while_it_lived() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, cor], _network, case) = a_network(dir.path(), &clock);
    for i in 0..60 {
        let text = format!("Bezoek {i}: de deurwaarder belde opnieuw over de huurachterstand.");
        anna.add_note(case, NewNote { kind: NoteKind::Observation, text }).expect("note");
        if i % 20 == 19 {
            meet(&anna, &bram).expect("meet");
        }
    }
    anna.erase(case, "De cliënt vroeg erom").expect("erase");
    meet(&anna, &bram).expect("meet");
    meet(&anna, &cor).expect("meet");
    assert_eq!(scan(dir.path(), &needles(case)), Vec::<String>::new());
    drop((anna, bram, cor));
    assert_eq!(scan(dir.path(), &needles(case)), Vec::<String>::new(), "closed stores");
}

#[test]
fn promise_8_a_stale_phone_back_a_month_later_does_not_bring_an_erased_case_back() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, cor], _network, case) = a_network(dir.path(), &clock);
    // Cor's phone is in a drawer; Anna erases, and Bram learns it.
    let exported = cor.export_document(case).expect("export");
    anna.erase(case, "Bewaartermijn verstreken").expect("erase");
    meet(&anna, &bram).expect("meet");
    assert!(bram.case(case).is_err());
    clock.advance(30 * DAY_MS);
    // A month later Cor writes in the case and meets Bram: Bram does not take it back, and
    // Cor's copy goes (Bram's network document carries the tombstone).
    cor.add_note(case, NewNote { kind: NoteKind::Observation, text: "Nog een bezoek".into() })
        .expect("Cor's note, offline");
    meet(&bram, &cor).expect("meet");
    assert!(matches!(bram.case(case), Err(Error::NotFound { .. })), "Bram took it back");
    assert!(matches!(cor.case(case), Err(Error::NotFound { .. })), "Cor kept it");
    // Nor does any other path take it: a merge of the old copy, on any device.
    for d in [&anna, &bram, &cor] {
        let merged = d.merge_document(&exported);
        assert!(
            matches!(merged, Err(Error::Merge(DocError::Erased(_)))),
            "{}: {merged:?}",
            d.display_name()
        );
    }
}

#[test]
fn promise_8_only_the_cases_worker_or_an_admin_may_erase_it() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, _cor], network, case) = a_network(dir.path(), &clock);
    let refused = bram.erase(case, "weg ermee");
    assert!(matches!(refused, Err(Error::NotAllowed(_))), "{refused:?}");
    assert!(bram.case(case).is_ok(), "a refused erasure deleted nothing");
    // Bram's own case: he may erase it, though he is no admin.
    let own = shared_case(&bram, network, "Familie Zandvoort");
    meet(&anna, &bram).expect("meet");
    assert!(anna.case(own).is_ok());
    bram.erase(own, "Dubbel aangemaakt").expect("his own case");
    meet(&anna, &bram).expect("meet");
    assert!(matches!(anna.case(own), Err(Error::NotFound { .. })), "the creator's tombstone holds");
    assert!(
        anna.case(case).is_ok() && bram.case(case).is_ok(),
        "the refused erasure left the case"
    );
}

/// The relay's blobs as stored: (document as the relay knows it, bytes), marker rows
/// included (no bytes).
fn relay_blobs(dir: &Path) -> Vec<([u8; 32], Vec<u8>)> {
    let c = rusqlite::Connection::open_with_flags(
        dir.join("relay.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("relay db");
    let mut stmt = c.prepare("SELECT doc, bytes FROM blobs ORDER BY seq").expect("select");
    stmt.query_map([], |r| {
        let doc: Vec<u8> = r.get(0)?;
        Ok((doc.try_into().unwrap_or([0; 32]), r.get(1)?))
    })
    .expect("rows")
    .collect::<Result<_, _>>()
    .expect("blobs")
}

/// A relay in `dir`; Anna (admin, the case's worker) and Bram in one network, no sync yet;
/// Anna's case.
async fn relay_pair(
    dir: &Path,
) -> (nabij_tests::relay::InProcessRelay, Arc<Device>, Arc<Device>, DocId, DocId) {
    let limits = nabij_sync_server::Limits::default();
    let relay = nabij_tests::relay::InProcessRelay::start(&dir.join("relay"), limits).await;
    let clock = StepClock::new(1_700_000_000_000);
    let anna = Arc::new(open(dir, "anna", &clock));
    let bram = Arc::new(open(dir, "bram", &clock));
    let network = anna.create_network("Wijknetwerk Zeeheldenbuurt").expect("network");
    let inv = anna.invite(network, bram.member_id(), "bram", bram.device_key());
    bram.join(&inv.expect("invite")).expect("join");
    let case = shared_case(&anna, network, "Familie Oudeweg-Smits");
    (relay, anna, bram, network, case)
}

/// Through the relay alone: the tombstone travels in the network document's blob, and a
/// colleague's device that never meets the eraser deletes the case at its next relay sync.
/// The eraser asks the relay to delete the case's blobs: none of their bytes stays in the
/// relay's files, and a later sync takes nothing back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_8_an_erasure_reaches_a_colleague_through_the_relay() {
    use nabij_tests::relay::sync_once;
    let dir = tempfile::tempdir().expect("dir");
    let (relay, anna, bram, network, case) = relay_pair(dir.path()).await;
    anna.add_note(case, NewNote { kind: NoteKind::Observation, text: "De deurwaarder".into() })
        .expect("note");
    sync_once(&anna, &relay).await.expect("sync");
    sync_once(&bram, &relay).await.expect("sync");
    assert!(bram.case(case).is_ok(), "the case reached Bram by the relay");
    // The case's content key is kept on both devices, outside the network document: no state
    // of that document's history ever held a content key.
    for d in [&anna, &bram] {
        assert_eq!(content_keys_kept(d, network, case), 1, "{}", d.display_name());
        assert_eq!(content_keys_in_history(d, network), 0, "{}", d.display_name());
    }

    let before = relay_blobs(&relay.dir);
    assert!(before.iter().all(|(_, b)| !b.is_empty()), "no marker yet");

    anna.erase(case, "De cliënt vroeg erom").expect("erase");
    let erasing = sync_once(&anna, &relay).await.expect("sync");
    let report = sync_once(&bram, &relay).await.expect("sync");
    assert!(matches!(bram.case(case), Err(Error::NotFound { .. })), "{report:?}");
    assert!(bram.search("deurwaarder", 10).expect("search").is_empty());
    // No device keeps a key that opens the case's blobs (were one left somewhere), and no
    // network document's history ever held one.
    for d in [&anna, &bram] {
        assert_eq!(content_keys_kept(d, network, case), 0, "{}", d.display_name());
        assert_eq!(content_keys_in_history(d, network), 0, "{}", d.display_name());
    }
    // The case's blobs are gone from the relay (the key they carried with them): one marker
    // stands where they were.
    let after = relay_blobs(&relay.dir);
    let markers: Vec<[u8; 32]> =
        after.iter().filter(|(_, b)| b.is_empty()).map(|(d, _)| *d).collect();
    assert_eq!(markers.len(), 1, "one marker: {} rows", after.len());
    let deleted: Vec<&Vec<u8>> =
        before.iter().filter(|(d, _)| *d == markers[0]).map(|(_, b)| b).collect();
    assert!(!deleted.is_empty());
    assert_eq!(erasing.report.blobs_deleted, deleted.len() as u64, "{erasing:?}");
    assert!(after.iter().all(|(d, b)| *d != markers[0] || b.is_empty()));
    // Not in any of the relay's files either (freed pages zeroed, the WAL folded in).
    for entry in std::fs::read_dir(&relay.dir).expect("relay dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        for blob in &deleted {
            let window = &blob[blob.len() / 2..blob.len() / 2 + 48];
            assert!(!contains(&bytes, window), "a deleted blob's bytes in {}", path.display());
        }
    }
    // Again: nothing is taken back, nothing pushed back.
    sync_once(&bram, &relay).await.expect("sync");
    sync_once(&anna, &relay).await.expect("sync");
    assert!(matches!(bram.case(case), Err(Error::NotFound { .. })));
    assert_eq!(relay_blobs(&relay.dir).iter().filter(|(d, _)| *d == markers[0]).count(), 1);
}

/// A member deletes a colleague's case's blobs at the relay without erasing it (a modified app
/// sends the request): the holders learn it from the marker and push the case again, so a
/// colleague who syncs only with the relay still receives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_8_a_members_deletion_at_the_relay_loses_nothing() {
    use nabij_tests::relay::{InProcessRelay, sync_once};
    let dir = tempfile::tempdir().expect("dir");
    let relay =
        InProcessRelay::start(&dir.path().join("relay"), nabij_sync_server::Limits::default())
            .await;
    let clock = StepClock::new(1_700_000_000_000);
    let [anna, bram, cor] = ["anna", "bram", "cor"].map(|n| Arc::new(open(dir.path(), n, &clock)));
    let network = anna.create_network("Wijknetwerk Zeeheldenbuurt").expect("network");
    for d in [&bram, &cor] {
        let inv = anna.invite(network, d.member_id(), &d.display_name(), d.device_key());
        d.join(&inv.expect("invite")).expect("join");
    }
    let case = shared_case(&anna, network, "Familie Oudeweg-Smits");
    sync_once(&anna, &relay).await.expect("sync");
    sync_once(&bram, &relay).await.expect("sync");
    // Bram's modified app deletes every blob of the network, the network document's too.
    let before = relay_blobs(&relay.dir);
    let relay_network = bram.relay_network_id(network).expect("id").expect("held");
    let docs: std::collections::BTreeSet<[u8; 32]> = before.iter().map(|(d, _)| *d).collect();
    assert_eq!(docs.len(), 2, "the network document and the case");
    let secret = nabij_core::test_utils::signing_key(&bram).to_bytes();
    let mut c = nabij_tests::relay::RawClient::connect(&relay.address, relay.key, secret).await;
    for d in &docs {
        let request = nabij_relay_proto::wire::Request::Delete { network: relay_network, doc: *d };
        c.send_raw(&nabij_relay_proto::wire::encode(&request, 1 << 20).expect("frame")).await;
    }
    let answers = c.answers(docs.len()).await;
    assert_eq!(answers.len(), docs.len());
    for answer in &answers {
        assert!(
            matches!(answer, nabij_relay_proto::wire::Response::Deleted { blobs: 1.., .. }),
            "{answer:?}"
        );
    }
    c.close();
    assert!(relay_blobs(&relay.dir).iter().all(|(_, b)| b.is_empty()), "everything deleted");
    // Anna's next sync pushes both again; Cor, who syncs only with the relay, gets the case.
    let pushed = sync_once(&anna, &relay).await.expect("sync");
    assert!(pushed.report.blobs_pushed >= 2, "{pushed:?}");
    sync_once(&cor, &relay).await.expect("sync");
    assert!(cor.case(case).is_ok(), "the case reached Cor");
}

#[test]
fn promise_8_a_learning_point_that_cited_an_erased_case_keeps_its_insight() {
    use nabij_core::model::NewLearningPoint;
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, _cor], network, case) = a_network(dir.path(), &clock);
    let lp = anna
        .create_learning_point(NewLearningPoint {
            title: "Samen met de woningcorporatie".into(),
            insight: "Vroeg bellen voorkomt een ontruiming.".into(),
            cases: vec![case],
            networks: vec![network],
            ..NewLearningPoint::default()
        })
        .expect("learning point");
    meet(&anna, &bram).expect("meet");
    anna.erase(case, "De cliënt vroeg erom").expect("erase");
    meet(&anna, &bram).expect("meet");
    for d in [&anna, &bram] {
        let read = d.learning_point(lp).expect("the learning point stays");
        assert_eq!(read.insight, "Vroeg bellen voorkomt een ontruiming.");
        assert_eq!(read.erased_cases, vec![case], "{}: the link reads erased", d.display_name());
    }
}

/// A member gone bad (neither the case's worker nor an admin) signs a tombstone for a
/// colleague's case and writes it into the network document past the app's own check: every
/// other device ignores it, and the case stays everywhere.
#[test]
fn promise_8_a_members_own_tombstone_for_a_colleagues_case_erases_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, cor], network, case) = a_network(dir.path(), &clock);
    let (key, bytes) = signed_tombstone(&bram, network, case);
    plant_tombstone_entry(&bram, network, &key, bytes).expect("planted");
    meet(&anna, &bram).expect("meet");
    meet(&bram, &cor).expect("meet");
    meet(&anna, &cor).expect("meet");
    for d in [&anna, &bram, &cor] {
        assert!(d.case(case).is_ok(), "{} lost the case to a member's tombstone", d.display_name());
    }
}

/// A member squats the place of an admin's future tombstone (garbage under the entry the admin
/// would write): the other devices refuse that change, and the admin's erasure still reaches
/// everyone.
#[test]
fn promise_8_a_member_cannot_squat_the_place_of_an_erasure() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, cor], network, case) = a_network(dir.path(), &clock);
    let (annas_entry, _) = signed_tombstone(&anna, network, case);
    plant_tombstone_entry(&bram, network, &annas_entry, b"bezet".to_vec()).expect("planted");
    let _ = meet(&anna, &bram);
    let _ = meet(&bram, &cor);
    anna.erase(case, "De cliënt vroeg erom").expect("erase");
    meet(&anna, &cor).expect("meet");
    let _ = meet(&anna, &bram);
    for d in [&anna, &cor] {
        assert!(matches!(d.case(case), Err(Error::NotFound { .. })), "{}", d.display_name());
    }
}

/// A name written by mistake is redacted from a note: the case goes on under a new id without
/// the name anywhere in its history, the old case is erased on every device after one round,
/// a note a colleague wrote on the old case while apart is carried over, stale copies of the
/// old history are refused, and a learning point that cited the case leads to the new one.
#[test]
fn promise_8_a_redacted_name_leaves_every_store_and_no_note_is_lost() {
    use nabij_core::model::NewLearningPoint;
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, cor], network, case) = a_network(dir.path(), &clock);
    let text = "De buurman, meneer Vrijthoff, hoorde ruzie in de nacht.";
    let note = anna
        .add_note(case, NewNote { kind: NoteKind::Observation, text: text.into() })
        .expect("note");
    let lp = anna
        .create_learning_point(NewLearningPoint {
            title: "Buren als bron".into(),
            insight: "Buren merken spanningen vaak eerder op.".into(),
            cases: vec![case],
            networks: vec![network],
            ..NewLearningPoint::default()
        })
        .expect("learning point");
    meet(&anna, &bram).expect("meet");
    meet(&anna, &cor).expect("meet");
    let name = [("the name".to_string(), b"Vrijthoff".to_vec())];
    assert_eq!(scan(dir.path(), &name).len(), 3, "the control: every store holds the name");
    // Bram, apart, writes on the case as he holds it; his copy of its history is kept too.
    let brams = bram
        .add_note(case, NewNote { kind: NoteKind::Observation, text: "De huisarts gebeld.".into() })
        .expect("note");
    let stale = bram.export_document(case).expect("export");

    // Bram is neither the case's worker nor an admin.
    assert!(matches!(
        bram.redact_note(case, note, "De buurman hoorde ruzie.", "Naam"),
        Err(Error::NotAllowed(_))
    ));
    let redacted = "De buurman hoorde ruzie in de nacht.";
    let new =
        anna.redact_note(case, note, redacted, "Naam van een buurman per ongeluk").expect("redact");
    assert_ne!(new, case);
    assert!(matches!(anna.case(case), Err(Error::NotFound { .. })));
    let timeline = anna.case_timeline(new).expect("the case goes on");
    let kept = timeline.iter().find(|n| n.id == note).expect("the note keeps its id");
    assert_eq!((kept.text.as_str(), kept.author.name.as_str()), (redacted, "anna"));
    assert_eq!(anna.case(new).expect("case").subject, "Familie Oudeweg-Smits");

    // One round: every copy of the old case goes; Bram's note moves to the new case.
    meet(&anna, &bram).expect("meet");
    meet(&anna, &cor).expect("meet");
    for d in [&anna, &bram, &cor] {
        assert!(matches!(d.case(case), Err(Error::NotFound { .. })), "{}", d.display_name());
        assert!(d.case(new).is_ok(), "{} holds the new case", d.display_name());
        assert_eq!(
            d.learning_point(lp).expect("learning point").cases,
            vec![new],
            "{}: the link leads to the new case",
            d.display_name()
        );
    }
    assert!(bram.case_timeline(new).expect("timeline").iter().any(|n| n.id == brams));
    // The next round brings Bram's carried note to everyone.
    meet(&anna, &bram).expect("meet");
    meet(&anna, &cor).expect("meet");
    for d in [&anna, &cor] {
        assert_eq!(d.heads(new).expect("heads"), bram.heads(new).expect("heads"));
    }
    // The old history is refused by every merge path.
    assert!(anna.merge_document(&stale).is_err());
    assert!(matches!(anna.case(case), Err(Error::NotFound { .. })));
    assert_eq!(scan(dir.path(), &name), Vec::<String>::new(), "open stores");
    drop((anna, bram, cor));
    assert_eq!(scan(dir.path(), &name), Vec::<String>::new(), "closed stores");
}

/// Redaction through the relay: the new case, the tombstone and the deletion of the old
/// case's blobs (with their content keys) reach a colleague who syncs only with the relay, and
/// the note the colleague wrote on the old case while apart comes over to the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_8_a_redaction_reaches_a_colleague_through_the_relay() {
    use nabij_tests::relay::sync_once;
    let dir = tempfile::tempdir().expect("dir");
    let (relay, anna, bram, network, case) = relay_pair(dir.path()).await;
    let text = "Meneer Vrijthoff van nummer 12 belde.";
    let note = anna
        .add_note(case, NewNote { kind: NoteKind::Observation, text: text.into() })
        .expect("note");
    sync_once(&anna, &relay).await.expect("sync");
    sync_once(&bram, &relay).await.expect("sync");
    let brams = bram
        .add_note(
            case,
            NewNote { kind: NoteKind::Observation, text: "Bram: langs geweest.".into() },
        )
        .expect("note");

    let new =
        anna.redact_note(case, note, "De buurman belde.", "Naam van een buurman").expect("redact");
    let redacting = sync_once(&anna, &relay).await.expect("sync");
    assert!(redacting.report.blobs_deleted > 0, "{redacting:?}");
    sync_once(&bram, &relay).await.expect("sync");
    assert!(matches!(bram.case(case), Err(Error::NotFound { .. })));
    assert_eq!(content_keys_kept(&bram, network, case), 0);
    let texts: Vec<String> =
        bram.case_timeline(new).expect("timeline").into_iter().map(|n| n.text).collect();
    assert!(texts.contains(&"De buurman belde.".to_string()), "{texts:?}");
    assert!(bram.case_timeline(new).expect("timeline").iter().any(|n| n.id == brams));
    // Bram's carried note reaches Anna at her next sync; both hold the same case.
    sync_once(&bram, &relay).await.expect("sync");
    sync_once(&anna, &relay).await.expect("sync");
    assert_eq!(anna.heads(new).expect("heads"), bram.heads(new).expect("heads"));
    assert!(anna.search("Vrijthoff", 10).expect("search").is_empty());
    assert!(bram.search("Vrijthoff", 10).expect("search").is_empty());
    relay.stop().await;
}
