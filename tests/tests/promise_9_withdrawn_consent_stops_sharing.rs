//! Promise 9 of `THREAT-MODEL.md`: withdrawn consent stops sharing. When the person withdraws
//! consent (or narrows it so that it leaves a network out), the case is unshared from those
//! networks: the colleagues' copies are deleted at their next sync, a worker who joins
//! afterwards never receives it, the worker responsible keeps it, and the consent change is in
//! the case's history with who and when. Only that worker (the case's creator) or an admin may
//! unshare; a member's forged unsharing deletes nothing.
//!
//! Plain stores, so that a byte scan shows the text left the files (see promise 8).

use std::{path::Path, sync::Arc};

use nabij_core::{
    Device, DocId, Error,
    model::{CaseUpdate, Consent, ConsentStatus, NewNote, NoteKind},
    test_utils::{contains, plant_tombstone_entry, shared_case, signed_unshare_tombstone},
};
use nabij_tests::{StepClock, meet};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn open(dir: &Path, name: &str, clock: &Arc<StepClock>) -> Device {
    nabij_tests::plain_device(dir, name, clock)
}

use nabij_tests::admit as join;

fn consent(status: ConsentStatus) -> CaseUpdate {
    CaseUpdate {
        consent: Some(Consent {
            status,
            scope: "Wijknetwerk Zeeheldenbuurt, casusbespreking".into(),
            date: Some("2026-11-30".into()),
        }),
        ..CaseUpdate::default()
    }
}

/// Anna (admin), Bram (the case's worker, no admin) and Cor in one network; Bram's case, with
/// consent given and a note, reaches everyone by meetings.
fn a_network(dir: &Path, clock: &Arc<StepClock>) -> ([Device; 3], DocId, DocId) {
    let [anna, bram, cor] = ["anna", "bram", "cor"].map(|n| open(dir, n, clock));
    let network = anna.create_network("Wijknetwerk Zeeheldenbuurt").expect("network");
    join(&anna, network, &bram);
    join(&anna, network, &cor);
    meet(&anna, &bram).expect("meet");
    let case = shared_case(&bram, network, "Familie Oudeweg-Smits");
    bram.update_case(case, consent(ConsentStatus::Given)).expect("consent given");
    bram.add_note(
        case,
        NewNote {
            kind: NoteKind::Observation,
            text: "Mevrouw Oudeweg vertelt over de deurwaarder en de huurachterstand.".into(),
        },
    )
    .expect("note");
    meet(&bram, &anna).expect("meet");
    meet(&anna, &cor).expect("meet");
    assert!(anna.case(case).is_ok() && cor.case(case).is_ok(), "everyone holds the case");
    ([anna, bram, cor], network, case)
}

fn scan(dir: &Path, stores: &[&str], case: DocId) -> Vec<String> {
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("Oudeweg", b"Oudeweg".to_vec()),
        ("deurwaarder", b"deurwaarder".to_vec()),
        ("the case id", case.to_string().into_bytes()),
        ("the case id (bytes)", case.as_bytes().to_vec()),
    ];
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if !stores.iter().any(|s| name.starts_with(&format!("{s}.db"))) {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        for (what, n) in &needles {
            if contains(&bytes, n) {
                found.push(format!("{what} in {name}"));
            }
        }
    }
    found.sort();
    found
}

fn gone(d: &Device, case: DocId) -> bool {
    matches!(d.case(case), Err(Error::NotFound { .. }))
}

#[test]
fn promise_9_withdrawn_consent_deletes_the_colleagues_copies_and_never_reaches_a_new_worker() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, cor], network, case) = a_network(dir.path(), &clock);
    assert!(!scan(dir.path(), &["anna", "cor"], case).is_empty(), "the control scan finds it");

    clock.advance(DAY_MS);
    bram.update_case(case, consent(ConsentStatus::Withdrawn)).expect("withdrawn");
    // Bram keeps the case, shared with no network, and its history says who withdrew when.
    let kept = bram.case(case).expect("the worker keeps the case");
    assert_eq!(kept.consent.status, ConsentStatus::Withdrawn);
    assert!(kept.networks.is_empty(), "{:?}", kept.networks);
    let history = bram.history(case).expect("history");
    let last = history.last().expect("a change");
    assert!(last.summary.contains("consent"), "{}", last.summary);
    assert_eq!(last.device, Some(bram.device_key()));
    // The test clock steps a millisecond at each reading.
    assert!((0..1_000).contains(&(last.time - (1_700_000_000_000 + DAY_MS))), "{}", last.time);

    // One round: Bram meets Anna, Anna meets Cor (who never meets Bram).
    meet(&bram, &anna).expect("meet");
    meet(&anna, &cor).expect("meet");
    for d in [&anna, &cor] {
        assert!(gone(d, case), "{} still holds it", d.display_name());
        assert!(d.search("deurwaarder", 10).expect("search").is_empty());
        assert!(d.check_integrity().expect("check").is_empty());
    }
    assert!(bram.case(case).is_ok(), "the responsible worker keeps it");
    assert_eq!(scan(dir.path(), &["anna", "cor"], case), Vec::<String>::new());

    // Dirk joins afterwards and meets everyone: the case never reaches him.
    let dirk = open(dir.path(), "dirk", &clock);
    join(&anna, network, &dirk);
    for d in [&anna, &bram, &cor] {
        meet(d, &dirk).expect("meet");
    }
    assert!(gone(&dirk, case), "the new worker received a case whose consent was withdrawn");
    assert!(dirk.list_cases(&Default::default()).expect("list").is_empty());
    assert_eq!(scan(dir.path(), &["dirk"], case), Vec::<String>::new());
}

#[test]
fn promise_9_narrowed_consent_unshares_one_network_and_keeps_the_other() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, cor], north, case) = a_network(dir.path(), &clock);
    // A second network, South: Bram and Cor; Anna is not in it.
    let south = bram.create_network("Wijknetwerk Zuid").expect("network");
    join(&bram, south, &cor);
    bram.update_case(case, CaseUpdate { share_with: vec![south], ..CaseUpdate::default() })
        .expect("shared with South too");
    meet(&bram, &cor).expect("meet");
    // The person agrees to North only: South's copies go, North's stay.
    bram.update_case(case, CaseUpdate { unshare_from: vec![south], ..CaseUpdate::default() })
        .expect("narrowed");
    meet(&bram, &cor).expect("meet");
    meet(&bram, &anna).expect("meet");
    assert!(cor.case(case).is_ok(), "Cor is in North too: his copy stays");
    assert!(anna.case(case).is_ok(), "Anna (North) keeps it");
    assert_eq!(bram.case(case).expect("case").networks, vec![north]);
    // A worker in South only loses it.
    let eva = open(dir.path(), "eva", &clock);
    join(&bram, south, &eva);
    meet(&bram, &eva).expect("meet");
    assert!(gone(&eva, case), "a South-only worker received it");
}

#[test]
fn promise_9_a_stale_phone_with_the_case_loses_it_and_passes_it_to_no_one() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, cor], network, case) = a_network(dir.path(), &clock);
    // Cor's phone is in a drawer; Bram withdraws, and Anna learns it.
    bram.update_case(case, consent(ConsentStatus::Withdrawn)).expect("withdrawn");
    meet(&bram, &anna).expect("meet");
    assert!(gone(&anna, case));
    clock.advance(30 * DAY_MS);
    // A month later Cor writes in it and meets Dirk, who just joined (by Anna's document).
    cor.add_note(case, NewNote { kind: NoteKind::Observation, text: "Nog een bezoek".into() })
        .expect("Cor's note, offline");
    let dirk = open(dir.path(), "dirk", &clock);
    join(&anna, network, &dirk);
    meet(&anna, &dirk).expect("meet");
    meet(&cor, &dirk).expect("meet");
    assert!(gone(&dirk, case), "the stale copy reached the new worker");
    // Cor meets Anna: Anna does not take it back, and Cor's copy goes.
    meet(&cor, &anna).expect("meet");
    assert!(gone(&anna, case), "Anna took it back");
    assert!(gone(&cor, case), "the stale phone kept its copy");
    meet(&cor, &dirk).expect("meet");
    assert!(gone(&dirk, case));
}

#[test]
fn promise_9_consent_given_again_shares_again() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, _cor], network, case) = a_network(dir.path(), &clock);
    bram.update_case(case, consent(ConsentStatus::Withdrawn)).expect("withdrawn");
    // While consent is withdrawn the case cannot be shared.
    let refused =
        bram.update_case(case, CaseUpdate { share_with: vec![network], ..CaseUpdate::default() });
    assert!(matches!(refused, Err(Error::NotAllowed(_))), "{refused:?}");
    meet(&bram, &anna).expect("meet");
    assert!(gone(&anna, case));
    // The person agrees again: shared again, and the old unsharing does not delete it.
    let mut again = consent(ConsentStatus::Given);
    again.share_with = vec![network];
    bram.update_case(case, again).expect("given again");
    meet(&bram, &anna).expect("meet");
    meet(&bram, &anna).expect("meet");
    assert_eq!(anna.case(case).expect("shared again").consent.status, ConsentStatus::Given);
    // Withdrawn a second time: a second unsharing, and it goes again.
    bram.update_case(case, consent(ConsentStatus::Withdrawn)).expect("withdrawn again");
    meet(&bram, &anna).expect("meet");
    assert!(gone(&anna, case));
}

#[test]
fn promise_9_only_the_cases_worker_or_an_admin_may_withdraw_and_a_forged_unsharing_deletes_nothing()
{
    let dir = tempfile::tempdir().expect("dir");
    let clock = StepClock::new(1_700_000_000_000);
    let ([anna, bram, cor], network, case) = a_network(dir.path(), &clock);
    let refused = cor.update_case(case, consent(ConsentStatus::Withdrawn));
    assert!(matches!(refused, Err(Error::NotAllowed(_))), "{refused:?}");
    let refused =
        cor.update_case(case, CaseUpdate { unshare_from: vec![network], ..CaseUpdate::default() });
    assert!(matches!(refused, Err(Error::NotAllowed(_))), "{refused:?}");
    let c = cor.case(case).expect("a refused withdrawal changed nothing");
    assert_eq!((c.consent.status, c.networks), (ConsentStatus::Given, vec![network]));

    // Cor signs an unsharing past the app's check, naming heads no copy holds (so every copy
    // would look stale): no one deletes anything.
    let (key, bytes) = signed_unshare_tombstone(&cor, network, case, vec![[9; 32]]);
    plant_tombstone_entry(&cor, network, &key, bytes).expect("planted");
    meet(&cor, &anna).expect("meet");
    meet(&anna, &bram).expect("meet");
    meet(&anna, &cor).expect("meet");
    for d in [&anna, &bram, &cor] {
        assert!(d.case(case).is_ok(), "{} lost the case to a forged unsharing", d.display_name());
    }

    // An admin may: Anna unshares Bram's case from her network. Cor's copy goes, and so does
    // Anna's own (she is not the case's worker); Bram, its worker, keeps it.
    anna.update_case(case, CaseUpdate { unshare_from: vec![network], ..CaseUpdate::default() })
        .expect("the admin unshares");
    meet(&anna, &cor).expect("meet");
    meet(&anna, &bram).expect("meet");
    assert!(gone(&cor, case));
    assert!(gone(&anna, case), "the admin's own copy of a case she unshared stays");
    let kept = bram.case(case).expect("the worker keeps the case an admin unshared");
    assert!(kept.networks.is_empty(), "{:?}", kept.networks);
}

/// Through the relay alone: Bram withdraws and syncs; Anna's next relay sync deletes her copy,
/// and Dirk, who joins afterwards and syncs only with the relay, ends without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_9_withdrawn_consent_reaches_a_colleague_through_the_relay() {
    use nabij_tests::relay::{InProcessRelay, sync_once};
    let dir = tempfile::tempdir().expect("dir");
    let relay =
        InProcessRelay::start(&dir.path().join("relay"), nabij_sync_server::Limits::default())
            .await;
    let clock = StepClock::new(1_700_000_000_000);
    let anna = Arc::new(open(dir.path(), "anna", &clock));
    let bram = Arc::new(open(dir.path(), "bram", &clock));
    let network = anna.create_network("Wijknetwerk Zeeheldenbuurt").expect("network");
    join(&anna, network, &bram);
    sync_once(&anna, &relay).await.expect("sync");
    sync_once(&bram, &relay).await.expect("sync");
    let case = shared_case(&bram, network, "Familie Oudeweg-Smits");
    bram.add_note(case, NewNote { kind: NoteKind::Observation, text: "De deurwaarder".into() })
        .expect("note");
    sync_once(&bram, &relay).await.expect("sync");
    sync_once(&anna, &relay).await.expect("sync");
    assert!(anna.case(case).is_ok(), "the case reached Anna by the relay");

    bram.update_case(case, consent(ConsentStatus::Withdrawn)).expect("withdrawn");
    let unsharing = sync_once(&bram, &relay).await.expect("sync");
    // Bram asked the relay to delete the case's blobs in the network.
    assert!(unsharing.report.blobs_deleted >= 1, "{unsharing:?}");
    let report = sync_once(&anna, &relay).await.expect("sync");
    assert!(gone(&anna, case), "{report:?}");
    assert!(anna.search("deurwaarder", 10).expect("search").is_empty());

    let dirk = Arc::new(open(dir.path(), "dirk", &clock));
    join(&anna, network, &dirk);
    sync_once(&anna, &relay).await.expect("sync");
    sync_once(&dirk, &relay).await.expect("sync");
    sync_once(&dirk, &relay).await.expect("sync");
    assert!(dirk.network(network).is_ok(), "Dirk is in the network");
    assert!(gone(&dirk, case), "the new worker kept a case whose consent was withdrawn");
    assert!(
        !dirk.history(network).expect("history").is_empty()
            && dirk.search("deurwaarder", 10).expect("search").is_empty()
    );
    assert!(bram.case(case).is_ok());
}
