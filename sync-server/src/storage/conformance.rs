//! The storage conformance suite: every rule of [`Storage`] that the relay's callers rely on,
//! written once and run against every implementation.
//!
//! An implementation joins with one line in its own tests module:
//! `storage_conformance_tests!(make)`, where `make()` returns either a fresh, empty store or
//! a `(store, guard)` pair whose guard lives as long as the test (a temporary directory, a
//! scratch database to drop). That expands to one `#[test]` per rule below, plus a property
//! test replaying random operation sequences against the implementation and against
//! [`MemoryStorage`] as the model, which must answer alike (sequence numbers compared by
//! their order, not their values). A durable implementation also calls
//! [`committed_state_survives_reopening`] with a function that opens the same store again.
//!
//! Owns the statement of the storage contract as executable checks. Knows nothing of any
//! one implementation: the rules only call the trait. Rules that belong to the protocol
//! (who may register or push, stale rosters, blob sizes) are `service`'s and tested there.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicUsize, Ordering},
};

use nabij_relay_proto::{
    NetworkId, PublicKey, RelayDocId, roster::SignedRoster, wire::PulledBlob, wire::blob_id,
};
use proptest::{
    prelude::*,
    sample::Index,
    test_runner::{Config as ProptestConfig, RngSeed, TestCaseError, TestRunner},
};

use super::{MemoryStorage, NewBlob, PutOutcome, Storage, StoredRoster};

/// One `#[test]` per conformance rule for the store `$make()` returns (see the module doc).
macro_rules! storage_conformance_tests {
    ($make:expr) => {
        $crate::storage::conformance::storage_conformance_tests!(@each $make;
            no_roster_until_one_is_registered,
            a_registered_roster_reads_back_as_registered,
            a_roster_replaces_the_one_before_whatever_its_date,
            rosters_listing_names_each_listing_network_once_in_network_order,
            contributed_rosters_read_back_and_follow_their_networks_roster,
            pushed_blobs_are_stored_in_batch_order_and_pulled_back_as_pushed,
            an_empty_batch_stores_nothing,
            a_blob_pushed_twice_is_stored_once,
            the_same_blob_in_two_networks_is_stored_in_each,
            later_pushes_get_later_sequence_numbers,
            a_push_over_the_quota_is_refused_and_stores_nothing,
            the_quota_judges_a_batch_blob_by_blob_in_order,
            the_quota_is_per_network,
            a_stored_blob_pushed_again_is_acknowledged_even_at_the_quota,
            a_refused_blob_is_stored_once_there_is_room,
            pages_cover_a_network_in_order_without_gaps_or_repeats,
            a_page_stops_before_the_blob_that_would_exceed_its_bytes,
            a_page_holds_at_most_max_count_blobs,
            a_page_holds_at_least_one_blob_whatever_the_budget,
            more_is_false_exactly_when_the_page_reaches_the_end,
            nothing_follows_the_last_blob_or_an_unknown_network,
            a_cursor_taken_before_a_push_finds_exactly_the_pushed_blobs,
            networks_are_isolated,
            concurrent_pushes_never_slip_behind_a_pull,
            a_deleted_documents_blobs_go_and_one_marker_follows_every_blob,
            deleting_what_is_not_stored_changes_nothing,
            a_deleted_document_is_stored_again_when_pushed_again,
            numbers_are_never_reused_after_the_newest_blob_is_deleted,
        );
        #[test]
        fn agrees_with_the_memory_model() {
            $crate::storage::conformance::agrees_with_the_memory_model(|| ($make)());
        }
    };
    (@each $make:expr; $($rule:ident),+ $(,)?) => {
        $(
            #[test]
            fn $rule() {
                let under_test = ($make)();
                $crate::storage::conformance::$rule(
                    $crate::storage::conformance::UnderTest::store(&under_test),
                );
            }
        )+
    };
}
pub(crate) use storage_conformance_tests;

/// What a factory hands the suite: a store, or a store and a guard that must outlive it.
pub(crate) trait UnderTest {
    /// The implementation tested.
    type Store: Storage;
    /// The store to test.
    fn store(&self) -> &Self::Store;
}

impl<S: Storage> UnderTest for S {
    type Store = S;
    fn store(&self) -> &S {
        self
    }
}

impl<S: Storage, G> UnderTest for (S, G) {
    type Store = S;
    fn store(&self) -> &S {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures. Networks, documents and devices are 32 copies of a small number, so failures read.

fn net(n: u8) -> NetworkId {
    [n; 32]
}

fn doc(n: u8) -> RelayDocId {
    [n; 32]
}

fn device(n: u8) -> PublicKey {
    [n; 32]
}

/// A blob of `len` bytes all `fill`: distinct `(fill, len)` give distinct ids.
fn blob(network: u8, document: u8, fill: u8, len: usize) -> NewBlob {
    let bytes = vec![fill; len];
    NewBlob { network: net(network), doc: doc(document), id: blob_id(&bytes), bytes }
}

/// A roster listing `devices` (sorted and each once, as on every verified roster), all but the
/// last active, with a few membership operations whose order must survive. The signature is
/// not checked by storage, so any bytes do; they differ with the date so a replaced roster
/// cannot be mistaken for its successor.
fn roster(issued_at: i64, devices: &[u8]) -> StoredRoster {
    let mut body = issued_at.to_be_bytes().to_vec();
    body.extend_from_slice(devices);
    StoredRoster {
        signed: SignedRoster {
            body,
            signer: device(devices.first().copied().unwrap_or(0)),
            signature: vec![issued_at.to_le_bytes()[0]; 64],
        },
        issued_at,
        devices: devices.iter().map(|&d| device(d)).collect(),
        active: devices[..devices.len().saturating_sub(1)].iter().map(|&d| device(d)).collect(),
        ops: vec![vec![9; 70], issued_at.to_le_bytes().to_vec(), vec![1; 200], Vec::new()],
        contributed: Vec::new(),
    }
}

/// The sequence numbers of a batch that must have been stored whole.
fn all_stored(outcomes: &[PutOutcome]) -> Vec<u64> {
    outcomes
        .iter()
        .map(|o| match o {
            PutOutcome::Stored(seq) => *seq,
            PutOutcome::OverQuota => panic!("refused over quota: {outcomes:?}"),
        })
        .collect()
}

fn put<S: Storage>(store: &S, blobs: &[NewBlob]) -> Vec<u64> {
    let outcomes = store.put_blobs(blobs, u64::MAX).expect("put_blobs");
    assert_eq!(outcomes.len(), blobs.len(), "one outcome per blob");
    all_stored(&outcomes)
}

fn pulled(b: &NewBlob, seq: u64) -> PulledBlob {
    PulledBlob { seq, doc: b.doc, bytes: b.bytes.clone() }
}

fn size(blobs: &[PulledBlob]) -> u64 {
    blobs.iter().map(|b| b.bytes.len() as u64).sum()
}

/// Pages through `network` from `after` with these budgets, checking what every page
/// promises (what a device checks before it moves its cursor), and returns the pages.
fn pages<S: Storage>(
    store: &S,
    network: &NetworkId,
    after: u64,
    max_bytes: u64,
    max_count: usize,
) -> Vec<Vec<PulledBlob>> {
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let (page, more) =
            store.blobs_after(network, cursor, max_bytes, max_count).expect("blobs_after");
        assert!(!(more && page.is_empty()), "more follow, yet the page is empty");
        assert!(page.iter().all(|b| b.seq > cursor), "a blob at or before the cursor");
        assert!(page.windows(2).all(|w| w[0].seq < w[1].seq), "a page out of order");
        if page.len() > 1 {
            assert!(size(&page) <= max_bytes, "{} bytes over {max_bytes}", size(&page));
            assert!(page.len() <= max_count, "{} blobs over {max_count}", page.len());
        }
        cursor = page.last().map_or(cursor, |b| b.seq);
        out.push(page);
        if !more {
            return out;
        }
        assert!(out.len() < 10_000, "paging goes nowhere");
    }
}

fn everything<S: Storage>(store: &S, network: &NetworkId) -> Vec<PulledBlob> {
    let (page, more) = store.blobs_after(network, 0, u64::MAX, usize::MAX).expect("blobs_after");
    assert!(!more);
    page
}

// ---------------------------------------------------------------------------------------------
// Rosters: the service authorises every push and pull by `roster`, and a device added by card
// learns its networks from `rosters_listing`.

/// A network without a registered roster has none, and lists no device.
pub(crate) fn no_roster_until_one_is_registered<S: Storage>(store: &S) {
    assert_eq!(store.roster(&net(1)).expect("roster"), None);
    assert!(store.rosters_listing(&device(1)).expect("listing").is_empty());
}

/// `roster` returns the registered roster exactly (the signed bytes are served to devices,
/// which verify them), and `rosters_listing` serves it to each device it lists and no other.
pub(crate) fn a_registered_roster_reads_back_as_registered<S: Storage>(store: &S) {
    // Dates at the ends of the range: storage keeps them as they are.
    for (n, at) in [(1, 1_700_000_000_000), (2, i64::MIN), (3, i64::MAX), (4, 0)] {
        let r = roster(at, &[2, 5, 9]);
        store.put_roster(&net(n), &r).expect("put_roster");
        assert_eq!(store.roster(&net(n)).expect("roster"), Some(r));
    }
    let expected: Vec<SignedRoster> =
        (1..=4).map(|n| store.roster(&net(n)).expect("roster").expect("some").signed).collect();
    for d in [2, 5, 9] {
        assert_eq!(store.rosters_listing(&device(d)).expect("listing"), expected);
    }
    assert!(store.rosters_listing(&device(3)).expect("listing").is_empty());
    // A roster listing no device is still the network's roster.
    store.put_roster(&net(7), &roster(1, &[])).expect("put_roster");
    assert_eq!(store.roster(&net(7)).expect("roster"), Some(roster(1, &[])));
}

/// `put_roster` replaces the network's roster, devices included: a device dropped from it no
/// longer finds the network, one added does. Whether the new roster is newer is the service's
/// rule, not storage's: an older date replaces too.
pub(crate) fn a_roster_replaces_the_one_before_whatever_its_date<S: Storage>(store: &S) {
    let first = roster(10, &[1, 2]);
    let second = roster(20, &[2, 3]);
    store.put_roster(&net(1), &first).expect("put_roster");
    store.put_roster(&net(1), &second).expect("put_roster");
    assert_eq!(store.roster(&net(1)).expect("roster"), Some(second.clone()));
    assert!(store.rosters_listing(&device(1)).expect("listing").is_empty());
    assert_eq!(store.rosters_listing(&device(2)).expect("listing"), vec![second.signed.clone()]);
    assert_eq!(store.rosters_listing(&device(3)).expect("listing"), vec![second.signed]);

    let older = roster(5, &[4]);
    store.put_roster(&net(1), &older).expect("put_roster");
    assert_eq!(store.roster(&net(1)).expect("roster"), Some(older.clone()));
    for gone in [1, 2, 3] {
        assert!(store.rosters_listing(&device(gone)).expect("listing").is_empty());
    }
    assert_eq!(store.rosters_listing(&device(4)).expect("listing"), vec![older.signed]);
}

/// Contributed rosters read back as put, in their order, and the listing serves each right
/// after its network's registered roster; replacing the roster replaces them too.
pub(crate) fn contributed_rosters_read_back_and_follow_their_networks_roster<S: Storage>(
    store: &S,
) {
    let signed =
        |n: u8| SignedRoster { body: vec![n; 40], signer: device(n), signature: vec![n; 64] };
    let mut first = roster(1, &[1, 2, 3]);
    first.contributed = vec![signed(2), signed(3)];
    let other = roster(2, &[1]);
    store.put_roster(&net(5), &first).expect("put_roster");
    store.put_roster(&net(2), &other).expect("put_roster");
    assert_eq!(store.roster(&net(5)).expect("roster"), Some(first.clone()));
    assert_eq!(
        store.rosters_listing(&device(1)).expect("listing"),
        vec![other.signed.clone(), first.signed.clone(), signed(2), signed(3)]
    );
    assert_eq!(
        store.rosters_listing(&device(2)).expect("listing"),
        vec![first.signed.clone(), signed(2), signed(3)]
    );
    let mut second = roster(2, &[1, 2]);
    second.contributed = vec![signed(1)];
    store.put_roster(&net(5), &second).expect("put_roster");
    assert_eq!(store.roster(&net(5)).expect("roster"), Some(second.clone()));
    assert_eq!(
        store.rosters_listing(&device(2)).expect("listing"),
        vec![second.signed.clone(), signed(1)]
    );
}

/// `rosters_listing` names every network whose roster lists the device, each once, ordered by
/// network id whatever the order of registration (so answers, and simulations, replay
/// exactly).
pub(crate) fn rosters_listing_names_each_listing_network_once_in_network_order<S: Storage>(
    store: &S,
) {
    let registered = [(9, roster(1, &[1, 2])), (3, roster(2, &[2])), (6, roster(3, &[1, 2, 3]))];
    for (n, r) in &registered {
        store.put_roster(&net(*n), r).expect("put_roster");
    }
    let signed = |n: u8| {
        registered.iter().find(|(m, _)| *m == n).map(|(_, r)| r.signed.clone()).expect("known")
    };
    assert_eq!(store.rosters_listing(&device(1)).expect("listing"), vec![signed(6), signed(9)]);
    assert_eq!(
        store.rosters_listing(&device(2)).expect("listing"),
        vec![signed(3), signed(6), signed(9)]
    );
    assert_eq!(store.rosters_listing(&device(3)).expect("listing"), vec![signed(6)]);
}

// ---------------------------------------------------------------------------------------------
// Pushes: the service stores consecutive pushes as one batch and answers each with its
// outcome, in order, only after `put_blobs` returned.

/// Each blob of a batch gets its own outcome, in batch order, with growing sequence numbers
/// (never 0: a cursor of 0 means "from the start"); once `put_blobs` returns, pulls and usage
/// already see the blobs (a device told "stored" may tell others to pull).
pub(crate) fn pushed_blobs_are_stored_in_batch_order_and_pulled_back_as_pushed<S: Storage>(
    store: &S,
) {
    let batch = [blob(1, 1, 1, 10), blob(1, 2, 2, 20), blob(1, 1, 3, 30)];
    let seqs = put(store, &batch);
    assert!(seqs[0] > 0, "sequence numbers start above the initial cursor");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "batch order is sequence order: {seqs:?}");
    let expected: Vec<PulledBlob> = batch.iter().zip(&seqs).map(|(b, &s)| pulled(b, s)).collect();
    assert_eq!(everything(store, &net(1)), expected);
    assert_eq!(store.usage(&net(1)).expect("usage"), 60);
}

/// An empty batch is answered with no outcomes and changes nothing.
pub(crate) fn an_empty_batch_stores_nothing<S: Storage>(store: &S) {
    assert!(store.put_blobs(&[], 0).expect("put_blobs").is_empty());
    assert!(everything(store, &net(1)).is_empty());
    assert_eq!(store.usage(&net(1)).expect("usage"), 0);
}

/// A blob already stored in its network (same id), in an earlier batch or earlier in the same
/// one, is acknowledged at its first sequence number and neither stored nor counted again: a
/// device whose acknowledgement was lost pushes it again.
pub(crate) fn a_blob_pushed_twice_is_stored_once<S: Storage>(store: &S) {
    let (a, b) = (blob(1, 1, 1, 100), blob(1, 1, 2, 100));
    let first = put(store, std::slice::from_ref(&a));
    let again = put(store, &[b.clone(), a.clone(), b.clone()]);
    assert_eq!(again[1], first[0], "the earlier batch's blob keeps its number");
    assert_eq!(again[2], again[0], "a blob twice in one batch is stored once");
    assert!(again[0] > first[0]);
    assert_eq!(everything(store, &net(1)), vec![pulled(&a, first[0]), pulled(&b, again[0])]);
    assert_eq!(store.usage(&net(1)).expect("usage"), 200);
}

/// Dedup is per network: the same bytes pushed to two networks are stored (and counted) in
/// each, so each network's members pull them.
pub(crate) fn the_same_blob_in_two_networks_is_stored_in_each<S: Storage>(store: &S) {
    let (in1, in2) = (blob(1, 1, 7, 50), blob(2, 1, 7, 50));
    let seqs = put(store, &[in1.clone(), in2.clone()]);
    assert_ne!(seqs[0], seqs[1]);
    assert_eq!(everything(store, &net(1)), vec![pulled(&in1, seqs[0])]);
    assert_eq!(everything(store, &net(2)), vec![pulled(&in2, seqs[1])]);
    assert_eq!(store.usage(&net(1)).expect("usage"), 50);
    assert_eq!(store.usage(&net(2)).expect("usage"), 50);
}

/// A blob stored later in a network gets a later sequence number than every blob stored
/// before it there, even with other networks' pushes in between: a device's cursor never
/// hides a newer blob.
pub(crate) fn later_pushes_get_later_sequence_numbers<S: Storage>(store: &S) {
    let mut last = 0;
    for round in 0..5u8 {
        let seqs = put(store, &[blob(2, 1, round, 5), blob(1, 1, round, 5), blob(3, 1, round, 5)]);
        assert!(seqs[1] > last, "round {round}: {} after {last}", seqs[1]);
        last = seqs[1];
    }
}

// ---------------------------------------------------------------------------------------------
// Quota: enforced inside the storing transaction, so concurrent batches cannot together
// exceed it.

/// A blob that would take its network over `quota` bytes is refused, and nothing of it is
/// stored or counted; a network may fill its quota exactly.
pub(crate) fn a_push_over_the_quota_is_refused_and_stores_nothing<S: Storage>(store: &S) {
    let batch = [blob(1, 1, 1, 100), blob(1, 1, 2, 100), blob(1, 1, 3, 100)];
    let outcomes = store.put_blobs(&batch, 250).expect("put_blobs");
    assert!(matches!(outcomes[..], [PutOutcome::Stored(_), PutOutcome::Stored(_), _]));
    assert_eq!(outcomes[2], PutOutcome::OverQuota);
    assert_eq!(store.usage(&net(1)).expect("usage"), 200);
    assert_eq!(everything(store, &net(1)).len(), 2);

    // 50 more bytes reach the quota exactly; then not one byte more.
    let fits = store.put_blobs(&[blob(1, 1, 4, 50)], 250).expect("put_blobs");
    assert!(matches!(fits[..], [PutOutcome::Stored(_)]));
    let over = store.put_blobs(&[blob(1, 1, 5, 1)], 250).expect("put_blobs");
    assert_eq!(over, vec![PutOutcome::OverQuota]);
    assert_eq!(store.usage(&net(1)).expect("usage"), 250);
    let bytes: Vec<u8> = everything(store, &net(1)).iter().map(|b| b.bytes[0]).collect();
    assert_eq!(bytes, vec![1, 2, 4]);
}

/// A batch is judged blob by blob, in order, against what the network holds at that point,
/// earlier blobs of the batch included: a refused blob takes no room, so a smaller one after
/// it may still fit.
pub(crate) fn the_quota_judges_a_batch_blob_by_blob_in_order<S: Storage>(store: &S) {
    let batch = [blob(1, 1, 1, 100), blob(1, 1, 2, 150), blob(1, 1, 3, 50), blob(1, 1, 4, 51)];
    let outcomes = store.put_blobs(&batch, 200).expect("put_blobs");
    assert!(matches!(
        outcomes[..],
        [
            PutOutcome::Stored(_),
            PutOutcome::OverQuota,
            PutOutcome::Stored(_),
            PutOutcome::OverQuota
        ]
    ));
    assert_eq!(store.usage(&net(1)).expect("usage"), 150);
    let bytes: Vec<u8> = everything(store, &net(1)).iter().map(|b| b.bytes[0]).collect();
    assert_eq!(bytes, vec![1, 3]);
}

/// Each network has its own quota: a full network does not block another, in the same batch.
pub(crate) fn the_quota_is_per_network<S: Storage>(store: &S) {
    let batch = [blob(1, 1, 1, 100), blob(2, 1, 1, 100), blob(1, 1, 2, 1), blob(2, 1, 2, 100)];
    let outcomes = store.put_blobs(&batch, 200).expect("put_blobs");
    assert!(matches!(
        outcomes[..],
        [
            PutOutcome::Stored(_),
            PutOutcome::Stored(_),
            PutOutcome::Stored(_),
            PutOutcome::Stored(_)
        ]
    ));
    let outcomes = store.put_blobs(&[blob(1, 1, 3, 99), blob(2, 1, 3, 1)], 200).expect("put");
    assert!(matches!(outcomes[..], [PutOutcome::Stored(_), PutOutcome::OverQuota]));
    assert_eq!(store.usage(&net(1)).expect("usage"), 200);
    assert_eq!(store.usage(&net(2)).expect("usage"), 200);
    assert_eq!(store.usage(&net(3)).expect("usage"), 0);
}

/// A blob the network already stores is acknowledged even when the network is full (or the
/// quota was lowered since): otherwise a device whose acknowledgement was lost would be
/// refused that blob forever.
pub(crate) fn a_stored_blob_pushed_again_is_acknowledged_even_at_the_quota<S: Storage>(store: &S) {
    let a = blob(1, 1, 1, 100);
    let first = store.put_blobs(std::slice::from_ref(&a), 100).expect("put_blobs");
    let again = store.put_blobs(std::slice::from_ref(&a), 100).expect("put_blobs");
    assert_eq!(again, first);
    let lowered = store.put_blobs(&[a], 10).expect("put_blobs");
    assert_eq!(lowered, first);
    assert_eq!(store.usage(&net(1)).expect("usage"), 100);
}

/// A refused blob left no trace: pushed again once there is room (or with a larger quota),
/// it is stored as new, after everything stored before; twice in a refused batch, it is
/// refused twice.
pub(crate) fn a_refused_blob_is_stored_once_there_is_room<S: Storage>(store: &S) {
    let (a, b) = (blob(1, 1, 1, 100), blob(1, 1, 2, 100));
    let before = put(store, std::slice::from_ref(&a));
    let refused = store.put_blobs(&[b.clone(), b.clone()], 150).expect("put_blobs");
    assert_eq!(refused, vec![PutOutcome::OverQuota; 2]);
    assert!(everything(store, &net(1)).iter().all(|p| p.bytes != b.bytes));
    let later = store.put_blobs(std::slice::from_ref(&b), 200).expect("put_blobs");
    let [PutOutcome::Stored(seq)] = later[..] else { panic!("{later:?}") };
    assert!(seq > before[0]);
    assert_eq!(everything(store, &net(1)), vec![pulled(&a, before[0]), pulled(&b, seq)]);
}

// ---------------------------------------------------------------------------------------------
// Pulls: a device pulls `blobs_after` its cursor, moves the cursor to the last blob, and asks
// again while `more`; it refuses a page out of order or one with `more` and no blob.

/// Paged with any budget, a network's blobs come in sequence order, each exactly once, none
/// missing, and only the network's; pages respect their budgets (a page of one excepted).
pub(crate) fn pages_cover_a_network_in_order_without_gaps_or_repeats<S: Storage>(store: &S) {
    // Sizes vary so byte budgets cut pages in different places; another network's blobs sit
    // between this one's.
    let mut mine = Vec::new();
    for round in 0..4u8 {
        let batch: Vec<NewBlob> = (0..6u8)
            .flat_map(|i| {
                let len = 1 + usize::from((round * 6 + i) * 7 % 40);
                [blob(1, i % 3, round * 6 + i, len), blob(2, 0, round * 6 + i, len)]
            })
            .collect();
        let seqs = put(store, &batch);
        mine.extend(batch.iter().zip(seqs).step_by(2).map(|(b, s)| pulled(b, s)));
    }
    for max_bytes in [0, 1, 15, 40, 41, 100, 1000, u64::MAX] {
        for max_count in [0, 1, 2, 5, 24, 25, usize::MAX] {
            let got: Vec<PulledBlob> =
                pages(store, &net(1), 0, max_bytes, max_count).into_iter().flatten().collect();
            assert_eq!(got, mine, "max_bytes {max_bytes}, max_count {max_count}");
        }
    }
    // Starting from any cursor gives exactly what follows it.
    for (i, b) in mine.iter().enumerate() {
        let got: Vec<PulledBlob> =
            pages(store, &net(1), b.seq, 60, 4).into_iter().flatten().collect();
        assert_eq!(got, mine[i + 1..]);
    }
}

/// A page takes blobs in order while they fit `max_bytes` (inclusive), and stops at the
/// first that does not: it never skips a large blob to take a smaller one after it.
pub(crate) fn a_page_stops_before_the_blob_that_would_exceed_its_bytes<S: Storage>(store: &S) {
    let seqs = put(store, &[blob(1, 1, 1, 100), blob(1, 1, 2, 100), blob(1, 1, 3, 100)]);
    let page = |max_bytes| {
        let (p, more) = store.blobs_after(&net(1), 0, max_bytes, 10).expect("blobs_after");
        (p.iter().map(|b| b.seq).collect::<Vec<_>>(), more)
    };
    assert_eq!(page(199), (seqs[..1].to_vec(), true));
    assert_eq!(page(200), (seqs[..2].to_vec(), true));
    assert_eq!(page(299), (seqs[..2].to_vec(), true));
    assert_eq!(page(300), (seqs.clone(), false));

    let more = put(store, &[blob(1, 1, 4, 500), blob(1, 1, 5, 10)]);
    let (p, more_follow) = store.blobs_after(&net(1), seqs[2], 150, 10).expect("blobs_after");
    assert_eq!(p.iter().map(|b| b.seq).collect::<Vec<_>>(), vec![more[0]]);
    assert!(more_follow);
    let (p, _) = store.blobs_after(&net(1), seqs[1], 150, 10).expect("blobs_after");
    assert_eq!(p.iter().map(|b| b.seq).collect::<Vec<_>>(), vec![seqs[2]], "no skipping");
}

/// A page holds at most `max_count` blobs, and says more follow when they do.
pub(crate) fn a_page_holds_at_most_max_count_blobs<S: Storage>(store: &S) {
    let seqs = put(store, &(1..=5).map(|i| blob(1, 1, i, 1)).collect::<Vec<_>>());
    for count in 1..=6 {
        let (p, more) = store.blobs_after(&net(1), 0, u64::MAX, count).expect("blobs_after");
        let got: Vec<u64> = p.iter().map(|b| b.seq).collect();
        assert_eq!(got, seqs[..count.min(5)], "max_count {count}");
        assert_eq!(more, count < 5, "max_count {count}");
    }
}

/// A page is never empty while blobs follow the cursor, whatever the budget (a zero byte or
/// count budget, a blob larger than the byte budget): every pull makes progress.
pub(crate) fn a_page_holds_at_least_one_blob_whatever_the_budget<S: Storage>(store: &S) {
    let seqs = put(store, &[blob(1, 1, 1, 1000), blob(1, 1, 2, 1000)]);
    for (max_bytes, max_count) in [(0, 0), (0, 10), (10, 0), (999, 10), (u64::MAX, 0)] {
        let (p, more) = store.blobs_after(&net(1), 0, max_bytes, max_count).expect("blobs_after");
        let got: Vec<u64> = p.iter().map(|b| b.seq).collect();
        assert_eq!(got, seqs[..1], "max_bytes {max_bytes}, max_count {max_count}");
        assert!(more, "max_bytes {max_bytes}, max_count {max_count}: the second blob follows");
        let (p, more) =
            store.blobs_after(&net(1), seqs[0], max_bytes, max_count).expect("blobs_after");
        let got: Vec<u64> = p.iter().map(|b| b.seq).collect();
        assert_eq!(got, seqs[1..], "max_bytes {max_bytes}, max_count {max_count}");
        assert!(!more, "max_bytes {max_bytes}, max_count {max_count}: nothing follows");
    }
}

/// `more` is true exactly when blobs follow the page: a page that ends with the network's
/// last blob says none follow, even when it fills its budgets exactly.
pub(crate) fn more_is_false_exactly_when_the_page_reaches_the_end<S: Storage>(store: &S) {
    let seqs = put(store, &[blob(1, 1, 1, 10), blob(1, 1, 2, 10), blob(1, 1, 3, 10)]);
    // Exactly the remaining bytes, exactly the remaining count.
    assert!(!store.blobs_after(&net(1), 0, 30, 10).expect("blobs_after").1);
    assert!(!store.blobs_after(&net(1), 0, u64::MAX, 3).expect("blobs_after").1);
    assert!(!store.blobs_after(&net(1), seqs[1], 10, 1).expect("blobs_after").1);
    assert!(store.blobs_after(&net(1), 0, 29, 10).expect("blobs_after").1);
    assert!(store.blobs_after(&net(1), 0, u64::MAX, 2).expect("blobs_after").1);
    // Another network's later blob does not follow this network's page.
    put(store, &[blob(2, 1, 4, 10)]);
    assert!(!store.blobs_after(&net(1), seqs[1], 10, 1).expect("blobs_after").1);
}

/// After the last blob, after any number beyond it, or for a network with no blobs, a pull
/// is empty and says nothing follows.
pub(crate) fn nothing_follows_the_last_blob_or_an_unknown_network<S: Storage>(store: &S) {
    let seqs = put(store, &[blob(1, 1, 1, 10), blob(1, 1, 2, 10)]);
    let nothing = (Vec::new(), false);
    for after in [seqs[1], seqs[1] + 1, i64::MAX as u64, u64::MAX] {
        assert_eq!(store.blobs_after(&net(1), after, 100, 10).expect("blobs_after"), nothing);
    }
    for after in [0, seqs[0], u64::MAX] {
        assert_eq!(store.blobs_after(&net(9), after, 100, 10).expect("blobs_after"), nothing);
    }
    assert_eq!(store.usage(&net(9)).expect("usage"), 0);
}

/// A device that pulled to the end and pulls again later finds exactly what was stored in
/// between, in order.
pub(crate) fn a_cursor_taken_before_a_push_finds_exactly_the_pushed_blobs<S: Storage>(store: &S) {
    put(store, &[blob(1, 1, 1, 10), blob(1, 1, 2, 10)]);
    let cursor = everything(store, &net(1)).last().expect("a blob").seq;
    let batch = [blob(2, 1, 3, 10), blob(1, 2, 4, 10), blob(1, 1, 1, 10), blob(1, 1, 5, 10)];
    let seqs = put(store, &batch);
    let got: Vec<PulledBlob> = pages(store, &net(1), cursor, 10, 1).into_iter().flatten().collect();
    // The re-pushed blob (fill 1) was already behind the cursor and does not come again.
    assert_eq!(got, vec![pulled(&batch[1], seqs[1]), pulled(&batch[3], seqs[3])]);
}

/// Networks share nothing: not rosters, blobs, usage, nor quota; a cursor taken in one
/// network used in another still returns only that other network's blobs.
pub(crate) fn networks_are_isolated<S: Storage>(store: &S) {
    store.put_roster(&net(1), &roster(1, &[1])).expect("put_roster");
    assert_eq!(store.roster(&net(2)).expect("roster"), None);
    let s1 = put(store, &[blob(1, 1, 1, 10), blob(1, 1, 2, 10)]);
    let s2 = put(store, &[blob(2, 1, 3, 20)]);
    let s1b = put(store, &[blob(1, 1, 4, 10)]);
    assert_eq!(
        everything(store, &net(1)).iter().map(|b| b.seq).collect::<Vec<_>>(),
        vec![s1[0], s1[1], s1b[0]]
    );
    let (p, more) = store.blobs_after(&net(2), s1[0], u64::MAX, 10).expect("blobs_after");
    assert_eq!(p, vec![pulled(&blob(2, 1, 3, 20), s2[0])]);
    assert!(!more);
    let (p, more) = store.blobs_after(&net(1), s2[0], u64::MAX, 10).expect("blobs_after");
    assert_eq!(p, vec![pulled(&blob(1, 1, 4, 10), s1b[0])]);
    assert!(!more);
    assert_eq!(store.usage(&net(1)).expect("usage"), 30);
    assert_eq!(store.usage(&net(2)).expect("usage"), 20);
    assert_eq!(store.roster(&net(1)).expect("roster"), Some(roster(1, &[1])));
}

/// Batches stored from several threads while another pulls: the puller, moving its cursor
/// as a device does, sees every acknowledged blob exactly once and in order. A blob that
/// became visible behind a cursor already past it (a later sequence number committed first)
/// would be missed for good.
pub(crate) fn concurrent_pushes_never_slip_behind_a_pull<S: Storage>(store: &S) {
    const WRITERS: u8 = 3;
    const BATCHES: usize = 6;
    const PER_BATCH: usize = 4;
    let finished = AtomicUsize::new(0);
    let (acknowledged, seen) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let finished = &finished;
                s.spawn(move || {
                    let mut seqs = Vec::new();
                    for b in 0..BATCHES {
                        let batch: Vec<NewBlob> =
                            (0..PER_BATCH).map(|i| blob(1, w, w, 1 + b * PER_BATCH + i)).collect();
                        seqs.extend(put(store, &batch));
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                    seqs
                })
            })
            .collect();
        let puller = s.spawn(|| {
            let mut cursor = 0;
            let mut seen = Vec::new();
            loop {
                // Read before pulling: once every writer had finished, this pull sees all.
                let all_done = finished.load(Ordering::SeqCst) == usize::from(WRITERS);
                let (page, more) = store.blobs_after(&net(1), cursor, 64, 3).expect("blobs_after");
                assert!(page.iter().all(|b| b.seq > cursor), "a blob behind the cursor");
                assert!(page.windows(2).all(|w| w[0].seq < w[1].seq));
                cursor = page.last().map_or(cursor, |b| b.seq);
                let empty = page.is_empty();
                seen.extend(page.into_iter().map(|b| b.seq));
                if all_done && !more {
                    return seen;
                }
                if empty {
                    std::thread::yield_now();
                }
            }
        });
        let mut acknowledged: Vec<u64> =
            writers.into_iter().flat_map(|w| w.join().expect("writer")).collect();
        acknowledged.sort_unstable();
        (acknowledged, puller.join().expect("puller"))
    });
    assert_eq!(acknowledged.len(), usize::from(WRITERS) * BATCHES * PER_BATCH);
    assert_eq!(seen, acknowledged, "the puller saw every acknowledged blob once, in order");
}

// ---------------------------------------------------------------------------------------------
// Durability.

/// What `put_roster` and `put_blobs` acknowledged is there when the store is opened again
/// (`open` opens the same durable store each time): alongside the first opening (another
/// process), and after it is gone. Sequence numbers, dedup and quota usage carry on from
/// where they were.
pub(crate) fn committed_state_survives_reopening<S: Storage>(open: impl Fn() -> S) {
    let r = roster(42, &[1, 2]);
    let batch = [blob(1, 1, 1, 100), blob(1, 2, 2, 50), blob(2, 1, 3, 10)];
    let first = open();
    first.put_roster(&net(1), &r).expect("put_roster");
    let seqs = put(&first, &batch);
    let expected = vec![pulled(&batch[0], seqs[0]), pulled(&batch[1], seqs[1])];
    {
        let second = open();
        assert_eq!(second.roster(&net(1)).expect("roster"), Some(r.clone()));
        assert_eq!(everything(&second, &net(1)), expected);
    }
    drop(first);

    let reopened = open();
    assert_eq!(reopened.roster(&net(1)).expect("roster"), Some(r.clone()));
    assert_eq!(reopened.rosters_listing(&device(2)).expect("listing"), vec![r.signed]);
    assert_eq!(everything(&reopened, &net(1)), expected);
    assert_eq!(reopened.usage(&net(1)).expect("usage"), 150);
    assert_eq!(reopened.usage(&net(2)).expect("usage"), 10);
    // Pushed again: acknowledged at the number it had.
    assert_eq!(put(&reopened, &batch[..1]), seqs[..1]);
    // New blobs come after everything stored before, and the quota counts what was stored.
    let outcomes = reopened.put_blobs(&[blob(1, 1, 4, 50), blob(1, 1, 5, 1)], 200).expect("put");
    let [PutOutcome::Stored(seq), PutOutcome::OverQuota] = outcomes[..] else {
        panic!("{outcomes:?}")
    };
    assert!(seqs.iter().all(|&s| s < seq));
}

// ---------------------------------------------------------------------------------------------
// Deletion: an erased (or unshared) document's blobs go, and devices that pushed it learn so
// from a marker in the sequence.

/// `delete_doc` removes every blob of the document in that network and nothing else, frees
/// their bytes, and puts one marker (no bytes, the document) after every blob stored.
pub(crate) fn a_deleted_documents_blobs_go_and_one_marker_follows_every_blob<S: Storage>(
    store: &S,
) {
    let (a1, a2, b1, other) =
        (blob(1, 1, 1, 100), blob(1, 1, 2, 50), blob(1, 2, 3, 70), blob(2, 1, 4, 30));
    put(store, &[a1.clone(), b1.clone(), a2, other.clone()]);
    assert_eq!(store.delete_doc(&net(1), &doc(1)).expect("delete"), 2);
    let left = everything(store, &net(1));
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!((left[0].doc, &left[0].bytes), (b1.doc, &b1.bytes));
    assert!(left[1].is_deletion() && left[1].doc == doc(1), "{left:?}");
    assert!(left[1].seq > left[0].seq);
    assert_eq!(store.usage(&net(1)).expect("usage"), 70);
    // Another network's blob of the same document stays.
    assert_eq!(everything(store, &net(2)), vec![pulled(&other, everything(store, &net(2))[0].seq)]);
    // A device whose cursor was past the deleted blobs finds the marker after it.
    let (page, _) = store.blobs_after(&net(1), left[0].seq, u64::MAX, 10).expect("pull");
    assert_eq!(page.len(), 1);
    assert!(page[0].is_deletion());
    // Deleting again (another device that erased it asks too): nothing changes, the marker
    // stays for devices that have not pulled it.
    assert_eq!(store.delete_doc(&net(1), &doc(1)).expect("delete"), 0);
    assert_eq!(everything(store, &net(1)), left);
}

/// A document the network does not store: nothing changes, no marker.
pub(crate) fn deleting_what_is_not_stored_changes_nothing<S: Storage>(store: &S) {
    let b = blob(1, 2, 3, 70);
    let seqs = put(store, std::slice::from_ref(&b));
    assert_eq!(store.delete_doc(&net(1), &doc(9)).expect("delete"), 0);
    assert_eq!(store.delete_doc(&net(7), &doc(2)).expect("delete"), 0);
    assert_eq!(everything(store, &net(1)), vec![pulled(&b, seqs[0])]);
    assert_eq!(store.usage(&net(1)).expect("usage"), 70);
}

/// After deletion the document's blob is not "already stored": pushed again (a holder that
/// learned of the deletion), it is stored at a new number, with its bytes counted against the
/// quota that the deletion freed.
pub(crate) fn a_deleted_document_is_stored_again_when_pushed_again<S: Storage>(store: &S) {
    let a = blob(1, 1, 1, 100);
    let first = put(store, std::slice::from_ref(&a))[0];
    let full = store.put_blobs(&[blob(1, 2, 2, 50)], 120).expect("put");
    assert_eq!(full, vec![PutOutcome::OverQuota]);
    store.delete_doc(&net(1), &doc(1)).expect("delete");
    let fits = store.put_blobs(&[blob(1, 2, 2, 50)], 120).expect("put");
    assert!(matches!(fits[..], [PutOutcome::Stored(_)]), "{fits:?}");
    let again = put(store, std::slice::from_ref(&a))[0];
    assert!(again > first);
    assert_eq!(store.usage(&net(1)).expect("usage"), 150);
    let all = everything(store, &net(1));
    assert_eq!(all.iter().filter(|b| b.is_deletion()).count(), 1);
    assert_eq!(all.last().map(|b| b.seq), Some(again));
}

/// The newest blob's document deleted: the marker and every later push come after every
/// number handed out before, so a device whose cursor is at the old newest finds them.
pub(crate) fn numbers_are_never_reused_after_the_newest_blob_is_deleted<S: Storage>(store: &S) {
    let seqs = put(store, &[blob(1, 2, 1, 40), blob(1, 1, 2, 50), blob(1, 1, 3, 60)]);
    let newest = seqs[2];
    assert_eq!(store.delete_doc(&net(1), &doc(1)).expect("delete"), 2);
    let again = put(store, &[blob(1, 3, 4, 70)])[0];
    assert!(again > newest, "number {again} reused (newest was {newest})");
    let (page, _) = store.blobs_after(&net(1), newest, u64::MAX, 10).expect("pull");
    let found: Vec<(u8, bool)> = page.iter().map(|b| (b.doc[0], b.is_deletion())).collect();
    assert_eq!(found, vec![(1, true), (3, false)], "after the old newest: the marker, the push");
    // Deleted again, with the marker the newest: still no number comes back.
    put(store, &[blob(1, 1, 5, 20)]);
    let top = everything(store, &net(1)).last().map(|b| b.seq).expect("blobs");
    store.delete_doc(&net(1), &doc(1)).expect("delete");
    let last = put(store, &[blob(1, 3, 6, 30)])[0];
    assert!(last > top + 1, "the marker takes the next number, the push the one after");
}

// ---------------------------------------------------------------------------------------------
// The model: random operation sequences, the same on the implementation and on
// `MemoryStorage`, must be answered alike.

/// Networks, documents, devices and blob contents come from small pools, so rosters get
/// replaced, blobs repeat and quotas fill.
#[derive(Debug, Clone)]
enum Op {
    PutRoster { network: u8, issued_at: i64, devices: u8 },
    Roster { network: u8 },
    Listing { device: u8 },
    Put { blobs: Vec<(u8, u8, u8)>, quota: u64 },
    Pull { network: u8, after: Index, max_bytes: u64, max_count: usize },
    Usage { network: u8 },
    Delete { network: u8, document: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    let network = 0..3u8;
    prop_oneof![
        1 => (network.clone(), -3..3i64, any::<u8>()).prop_map(|(network, issued_at, devices)| {
            Op::PutRoster { network, issued_at, devices: devices & 0xF }
        }),
        1 => network.clone().prop_map(|network| Op::Roster { network }),
        1 => (0..4u8).prop_map(|device| Op::Listing { device }),
        3 => (
            prop::collection::vec((network.clone(), 0..3u8, 0..16u8), 0..6),
            prop::sample::select(vec![0, 100, 300, 1000, u64::MAX]),
        )
            .prop_map(|(blobs, quota)| Op::Put { blobs, quota }),
        3 => (
            network.clone(),
            any::<Index>(),
            prop::sample::select(vec![0, 40, 150, 1000, u64::MAX]),
            prop::sample::select(vec![0, 1, 3, usize::MAX]),
        )
            .prop_map(|(network, after, max_bytes, max_count)| Op::Pull {
                network,
                after,
                max_bytes,
                max_count,
            }),
        1 => network.clone().prop_map(|network| Op::Usage { network }),
        1 => (network, 0..3u8).prop_map(|(network, document)| Op::Delete { network, document }),
    ]
}

/// Content `c` is `c` repeated a length that depends on `c` alone, so equal contents are the
/// same blob.
fn pooled(network: u8, document: u8, content: u8) -> NewBlob {
    blob(network, document, content, 1 + usize::from(content) * 29 % 97)
}

fn pooled_roster(issued_at: i64, devices: u8) -> StoredRoster {
    let listed: Vec<u8> = (0..4).filter(|d| devices & (1 << d) != 0).collect();
    roster(issued_at, &listed)
}

/// A store's sequence numbers by the order in which they were first acknowledged: two
/// implementations may number differently (a server database's sequence may skip), but must
/// store the same blobs in the same order.
#[derive(Default)]
struct Numbering {
    rank: HashMap<u64, usize>,
    by_rank: Vec<u64>,
}

impl Numbering {
    fn rank(&mut self, seq: u64) -> usize {
        *self.rank.entry(seq).or_insert_with(|| {
            self.by_rank.push(seq);
            self.by_rank.len() - 1
        })
    }

    /// Cursor `i`: 0 for the start, the `i`th blob, or beyond every sequence number.
    fn cursor(&self, i: &Index) -> u64 {
        let i = i.index(self.by_rank.len() + 2);
        match i {
            0 => 0,
            i if i <= self.by_rank.len() => self.by_rank[i - 1],
            _ => u64::MAX,
        }
    }
}

/// An answer, with sequence numbers replaced by their ranks.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Roster(Option<StoredRoster>),
    Listing(Vec<SignedRoster>),
    Put(Vec<Option<usize>>),
    Pull(Vec<(Option<usize>, RelayDocId, Vec<u8>)>, bool),
    Usage(u64),
    Deleted(u64),
}

fn answer<S: Storage>(store: &S, numbering: &mut Numbering, op: &Op) -> Answer {
    match op {
        Op::PutRoster { network, issued_at, devices } => {
            store.put_roster(&net(*network), &pooled_roster(*issued_at, *devices)).expect("put");
            Answer::Roster(store.roster(&net(*network)).expect("roster"))
        }
        Op::Roster { network } => Answer::Roster(store.roster(&net(*network)).expect("roster")),
        Op::Listing { device: d } => {
            Answer::Listing(store.rosters_listing(&device(*d)).expect("listing"))
        }
        Op::Put { blobs, quota } => {
            let batch: Vec<NewBlob> = blobs.iter().map(|&(n, d, c)| pooled(n, d, c)).collect();
            let outcomes = store.put_blobs(&batch, *quota).expect("put_blobs");
            Answer::Put(
                outcomes
                    .into_iter()
                    .map(|o| match o {
                        PutOutcome::Stored(seq) => Some(numbering.rank(seq)),
                        PutOutcome::OverQuota => None,
                    })
                    .collect(),
            )
        }
        Op::Pull { network, after, max_bytes, max_count } => {
            let after = numbering.cursor(after);
            let (page, more) =
                store.blobs_after(&net(*network), after, *max_bytes, *max_count).expect("pull");
            // A sequence number never acknowledged has no rank: `None` shows it.
            let page = page
                .into_iter()
                .map(|b| (numbering.rank.get(&b.seq).copied(), b.doc, b.bytes))
                .collect();
            Answer::Pull(page, more)
        }
        Op::Usage { network } => Answer::Usage(store.usage(&net(*network)).expect("usage")),
        Op::Delete { network, document } => {
            Answer::Deleted(store.delete_doc(&net(*network), &doc(*document)).expect("delete"))
        }
    }
}

/// Runs random operation sequences on fresh stores from `make` and on the model; every
/// answer must agree. The seed is fixed so a run replays; `PROPTEST_CASES` runs more.
pub(crate) fn agrees_with_the_memory_model<F: UnderTest>(make: impl Fn() -> F) {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x4E42_4A52),
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&prop::collection::vec(op(), 1..30), |ops| {
        let under_test = make();
        let model = MemoryStorage::new();
        let (mut ours, mut theirs) = (Numbering::default(), Numbering::default());
        for (i, op) in ops.iter().enumerate() {
            let expected = answer(&model, &mut theirs, op);
            let got = answer(under_test.store(), &mut ours, op);
            if got != expected {
                return Err(TestCaseError::fail(format!(
                    "operation {i} {op:?}: got {got:?}, the model answers {expected:?}"
                )));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
