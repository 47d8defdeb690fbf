//! Fifth attacker pass (`attack-review-5`), over b7e6252: two histories of one document
//! (`device/forks.rs`: splits, rewinds, `lineage`), the `Roster` message, schema 8.
//!
//! Each `attack_` test states the promise as it should hold; each failed on the commit reviewed
//! and passes since its fix. Each `held_` test is an attack the defence held against; the
//! `rule_` test is a cost written down (the review's fourth break: no rule avoids it).

use std::{path::Path, sync::Arc};

use automerge::{ActorId, AutoCommit, ROOT, ReadDoc, transaction::Transactable};
use nabij_core::{
    Device, DocId,
    authorship::{SignedHead, open_envelope, seal_envelope},
    model::CaseFilter,
    test_utils::{load_exported, observation, signing_key},
};
use nabij_tests::{
    attack::{case_in, copy_store, hand, invite, texts},
    meet, open_device,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The subjects of the cases `d` holds, sorted.
fn subjects(d: &Device) -> Vec<String> {
    let mut s: Vec<String> = d
        .list_cases(&CaseFilter::default())
        .expect("cases")
        .into_iter()
        .map(|c| c.subject)
        .collect();
    s.sort();
    s
}

/// Anna in two networks, Oost (with Yara) and West (with Bram), each holding its network.
fn oost_and_west(dir: &Path) -> ([Arc<Device>; 3], DocId, DocId) {
    let [anna, bram, yara] = ["Anna", "Bram", "Yara"].map(|n| open_device(dir, n));
    let oost = anna.create_network("Oost").expect("oost");
    let west = anna.create_network("West").expect("west");
    invite(&anna, oost, &yara);
    invite(&anna, west, &bram);
    hand(&anna, &yara, oost);
    hand(&anna, &bram, west);
    ([anna, bram, yara], oost, west)
}

/// The cast with a case handed to everyone; Yara's copy of it as it was (exported), then her
/// note "Y1: gesprek", which Bram has from a meeting.
fn case_with_yara_s_note(dir: &Path) -> ([Arc<Device>; 4], DocId, DocId, Vec<u8>) {
    let (cast, network) = nabij_tests::attack::two_admins_and_a_member(dir);
    let [anna, bram, xavier, yara] = &cast;
    let case = case_in(anna, vec![network], "Mevrouw B.");
    for d in [bram, xavier, yara] {
        hand(anna, d, case);
    }
    let base = yara.export_document(case).expect("export");
    yara.add_notes(case, vec![observation("Y1: gesprek")]).expect("note");
    meet(yara, bram).expect("meeting");
    (cast, network, case, base)
}

/// `d`'s newest change to `doc` as `holder` holds it: (seq, hash).
fn newest_of(holder: &Device, doc: DocId, d: &Device) -> (u64, automerge::ChangeHash) {
    let mut held = load_exported(&holder.export_document(doc).expect("export"));
    let key = d.device_key();
    held.get_changes_meta(&[])
        .into_iter()
        .filter(|c| c.actor.to_bytes() == key.as_bytes().as_slice())
        .max_by_key(|c| c.seq)
        .map(|c| (c.seq, c.hash))
        .expect("a change of that device")
}

/// A member's modified app copies a document it holds (`exported`, as its device exports it,
/// with every signature it holds) under a new id of its choosing, naming the original as the
/// new one's `lineage`, as a device that moves a forked history does; `edit` changes what it
/// likes on top. Signed by `author` under the new id; every other signature as it came.
fn copy_under_lineage(
    author: &Device,
    exported: &[u8],
    of: DocId,
    new_id: DocId,
    edit: impl FnOnce(&mut AutoCommit),
) -> Vec<u8> {
    let (signed, _) = open_envelope(exported).expect("envelope");
    let mut doc =
        load_exported(exported).with_actor(ActorId::from(author.device_key().as_bytes().to_vec()));
    doc.put(ROOT, "id", new_id.to_string()).expect("id");
    doc.put(ROOT, "lineage", of.to_string()).expect("lineage");
    edit(&mut doc);
    doc.commit();
    let c = doc.get_last_local_change().expect("change").clone();
    let mut signed: Vec<SignedHead> =
        signed.into_iter().filter(|h| h.actor != *author.device_key().as_bytes()).collect();
    signed.push(SignedHead::sign(&signing_key(author), new_id, c.seq(), c.hash().0));
    seal_envelope(&signed, &doc.save())
}

// ---------------------------------------------------------------------------------------------
// 1. `lineage` is read from the document itself
// ---------------------------------------------------------------------------------------------

/// FOUND AND FIXED (promises 2 and 3; the fix of "sharing into a network takes one of its
/// devices").
/// Attacker: a member gone bad (Yara, a device of network Oost only).
///
/// `check_changes` takes a signed head if it verifies under the document's id *or under any id
/// the document's own header lists as its `lineage`*, and the header is written by whoever
/// writes the document. Anna (in Oost and West) shares case X with both networks. Yara copies
/// X's whole history, puts `id = Z` (any id she likes) and `lineage = X` and a subject of her
/// own in one change of hers (signed under Z) and hands it on: Anna's signatures over X
/// verify for Z, so Z's history shows Anna creating it and sharing it into West, and the
/// per-operation sharing check (the operation that put West into the networks is by Anna, a
/// device of West) passes. Through an ordinary meeting with Anna, then Anna's with Bram (West
/// only), a case that no device of West ever shared lands on Bram, content Yara's, history
/// naming Anna. No equivocation was needed at all: any writer can "fork" any case, as often as
/// it likes, into any network a case it holds is shared with.
///
/// Severity: high (a member of one network writes new cases into another network's devices,
/// with forged provenance; a case erased by tombstone can be brought back under a new id the
/// same way, its history still "by" its original writers).
///
/// Fix: never take `lineage` (or a changed `id`) on the document's word. A signature under a
/// lineage id should count only for changes at or before the parting, and only if the
/// document's id is `fork_id(lineage.last, p)` for a change `p` the document holds *and* the
/// move came with proof of the equivocation: two signed heads of one writer under the parent
/// id, same number, different changes (the device that moves can keep and send them, e.g. in
/// the signatures table of the fork). A change that writes `id` or `lineage` without such a
/// proof is refused like any header rewrite.
///
/// Fixed (`forks::check_split_off`): a split-off document new here is taken only if its id is
/// `fork_id(parent, p)` for a change `p` it holds and this device holds the parent with another
/// change of `p`'s writer and number (it sees the two histories itself); a held document's
/// lineage cannot change.
#[test]
fn attack_lineage_lets_a_member_copy_a_case_into_a_network_it_is_not_in() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, yara], oost, west) = oost_and_west(dir.path());
    let x = case_in(&anna, vec![oost, west], "Mevrouw B.");
    anna.add_notes(x, vec![observation("A: eerste gesprek")]).expect("note");
    hand(&anna, &yara, x);
    hand(&anna, &bram, x);
    assert_eq!(subjects(&bram), vec!["Mevrouw B.".to_string()]);

    // Yara's modified app: a copy of X under an id of her choosing, lineage X.
    let z = DocId::from_bytes([0x5a; 16]);
    let forged = copy_under_lineage(&yara, &yara.export_document(x).expect("export"), x, z, |d| {
        d.put(ROOT, "subject", "Meneer K. (verzonnen)").expect("subject");
    });
    // Her own device takes it (a file she imports), and meetings do the rest.
    let _ = yara.merge_document(&forged);
    let _ = meet(&yara, &anna);
    let _ = meet(&anna, &bram);

    assert_eq!(
        subjects(&bram),
        vec!["Mevrouw B.".to_string()],
        "Bram (West) holds only the case a device of West shared with West"
    );
    assert!(anna.case_timeline(z).is_err(), "Anna does not take a copy of X she never made");
}

// ---------------------------------------------------------------------------------------------
// 2. What a split leaves of the signatures
// ---------------------------------------------------------------------------------------------

/// The cast of a fork: Anna's network with Bram, Xavier and Yara, a case of Anna's everyone
/// holds; Xavier's store copied onto a second phone, each phone writing a note with the same
/// number in his chain, one handed to Bram, the other to Yara. Returns the cast, the network,
/// the case, and which of Bram and Yara holds the history that gives way (its change at the
/// parting has the larger hash) and which the one that keeps the id: `(gives, keeps)`.
struct Forked {
    anna: Arc<Device>,
    bram: Arc<Device>,
    yara: Arc<Device>,
    xavier: Arc<Device>,
    copy: Arc<Device>,
    network: DocId,
    case: DocId,
}

impl Forked {
    fn new(dir: &Path) -> Self {
        let ([anna, bram, xavier, yara], network) =
            nabij_tests::attack::two_admins_and_a_member(dir);
        let case = case_in(&anna, vec![network], "Mevrouw B.");
        for d in [&bram, &xavier, &yara] {
            hand(&anna, d, case);
        }
        drop(xavier);
        let xavier = Arc::new(nabij_tests::reopen(&dir.join("Xavier")));
        let copy = copy_store(dir, "Xavier", "Xavier-copy");
        xavier.add_notes(case, vec![observation("X1: huisbezoek")]).expect("note");
        copy.add_notes(case, vec![observation("X2: belafspraak")]).expect("note");
        meet(&xavier, &yara).expect("Yara gets X1");
        meet(&copy, &bram).expect("Bram gets X2");
        Forked { anna, bram, yara, xavier, copy, network, case }
    }

    /// `(gives, keeps)`: who holds the history that gives way, and who the one that keeps the id.
    fn sides(&self) -> (&Arc<Device>, &Arc<Device>) {
        let at_yara = newest_of(&self.yara, self.case, &self.xavier).1;
        let at_bram = newest_of(&self.bram, self.case, &self.xavier).1;
        if at_bram > at_yara { (&self.bram, &self.yara) } else { (&self.yara, &self.bram) }
    }
}

/// FOUND AND FIXED (convergence: every device ends with the same documents; a new member gets the
/// network's cases). Attacker: none needed beyond the fork itself (one store restored onto two
/// phones), though a member gone bad can cause it at will in any case it writes.
///
/// When a device's history gives way, `split_fork` takes the case back to the parting and
/// keeps only the stored signed heads whose change it kept (`left`). A signed head is one per
/// device: the head of a third device (Anna) whose newest change was on the side that gave way
/// is dropped, and nothing brings one over her earlier changes back (`check_changes` keeps
/// offered heads only over changes new to the device). The device now holds Anna's earlier
/// changes with no signature of hers covering them. Every device that does not hold the case
/// yet (a new colleague, a reinstalled phone) refuses it from this device for good
/// ("carry no valid signature"), until Anna happens to write in the case again.
///
/// Severity: medium (a case silently stops reaching new devices through every device that
/// gave way; in a small team that can be all of them).
///
/// Fix: when going back to the parting, keep for every device a signature over its newest
/// kept change: take it from what arrived (accept offered heads over changes the device
/// already holds when it holds no head for that device), or keep the signatures over each
/// device's changes before the parting (e.g. keep the history of heads per device, not one).
///
/// Fixed (`check_changes`): offered heads over changes held here are kept for devices this
/// device holds none for.
#[test]
fn attack_a_split_leaves_a_case_no_new_device_will_take() {
    let dir = tempfile::tempdir().expect("dir");
    let f = Forked::new(dir.path());
    let carla = open_device(dir.path(), "Carla");
    invite(&f.anna, f.network, &carla);
    hand(&f.anna, &carla, f.network);
    let (gives, keeps) = f.sides();
    // Anna writes on the side that gives way.
    meet(gives, &f.anna).expect("meeting");
    f.anna.add_notes(f.case, vec![observation("A2: schuldhulp")]).expect("note");
    meet(&f.anna, gives).expect("meeting");
    // The halves meet: `gives` goes back to the parting and takes the other history.
    for _ in 0..2 {
        let _ = meet(keeps, gives);
        let _ = meet(gives, keeps);
    }
    assert_eq!(gives.heads(f.case).expect("heads"), keeps.heads(f.case).expect("heads"));
    // The same case at the same heads from the side that kept it goes to a new device.
    let dirk = open_device(dir.path(), "Dirk");
    invite(&f.anna, f.network, &dirk);
    hand(&f.anna, &dirk, f.network);
    let m = meet(&dirk, keeps);
    let direct = dirk.merge_document(&keeps.export_document(f.case).expect("export"));
    assert!(
        dirk.case_timeline(f.case).is_ok(),
        "Dirk takes the case from the side that kept it: {m:?} {direct:?}"
    );
    // Carla, new, meets the device that gave way.
    let _ = meet(&carla, gives);
    let _ = meet(gives, &carla);
    let direct = carla.merge_document(&gives.export_document(f.case).expect("export"));
    assert!(
        carla.case_timeline(f.case).is_ok(),
        "Carla takes the case from {} (it holds it at the heads everyone has): {direct:?}",
        gives.display_name()
    );
    let _ = (&f.xavier, &f.copy);
}

// ---------------------------------------------------------------------------------------------
// 3. A second history that never goes in
// ---------------------------------------------------------------------------------------------

/// Yara's modified app: a second change with the number of her newest change in `doc` as
/// `victim` holds it (made on `base`, her copy from before that change), ground below it, signed
/// by her under `signed_as`, followed by a change of a made-up device that no signature covers
/// (so the batch can never go in). What she hands `victim`'s merge call.
fn second_history_that_fails(
    yara: &Device,
    victim: &Device,
    doc: DocId,
    base: &[u8],
    signed_as: DocId,
    round: u32,
) -> Vec<u8> {
    second_history(yara, victim, doc, base, signed_as, round, true)
}

/// As [`second_history_that_fails`]; `fail`: whether the made-up device's change follows.
fn second_history(
    yara: &Device,
    victim: &Device,
    doc: DocId,
    base: &[u8],
    signed_as: DocId,
    round: u32,
    fail: bool,
) -> Vec<u8> {
    let (seq, held) = newest_of(victim, doc, yara);
    let mut base = load_exported(base);
    let before = base.get_heads();
    for i in 0..512 {
        let mut fork =
            base.clone().with_actor(ActorId::from(yara.device_key().as_bytes().to_vec()));
        fork.put(ROOT, "subject", format!("Mevrouw B. ({round}.{i})")).expect("put");
        fork.commit();
        let c = fork.get_last_local_change().expect("change").clone();
        if c.seq() != seq || c.hash() >= held {
            continue;
        }
        let head = SignedHead::sign(&signing_key(yara), signed_as, c.seq(), c.hash().0);
        if !fail {
            return seal_envelope(&[head], &fork.save_after(&before));
        }
        let mut bad = fork.with_actor(ActorId::from(vec![0x42; 32]));
        bad.put(ROOT, "subject", "niet ondertekend").expect("put");
        bad.commit();
        return seal_envelope(&[head], &bad.save_after(&before));
    }
    panic!("no change ground below the held one");
}

/// FOUND AND FIXED (convergence, bounded cost; the promise that only a proven second history moves
/// anything). Attacker: a member gone bad (Yara), a writer of the case.
///
/// `split_fork` moves the held history to a fork and takes the case back to the parting
/// *before* it knows whether what arrived goes in; when the retry fails, `drop_parted` lets the
/// case go, and it comes back whole from the next device met. Yara hands Bram a second change
/// with the number of her last note (ground below it, signed by her), followed by a change no
/// signature covers. Bram refuses the batch in the end, yet he has moved his whole history to a
/// new case and dropped the original; at the next meeting Anna takes the new case and Bram
/// takes the original back. The second history is on no device, but every device now holds a
/// copy of the case. Each further message of Yara's against the newest copy (its id differs,
/// its lineage names the case, so her signature under the case's id still proves the parting)
/// adds one more copy on every device: here three messages, three extra copies of a case
/// about a vulnerable person, each with every note, on every device.
///
/// Severity: medium (unbounded duplication of any case by any writer of it, without ever
/// getting anything accepted; storage and the case list grow per message; workers cannot tell
/// which copy to write in).
///
/// Fix: do the split, the retry and the move in one transaction and undo all of it when the
/// retry fails (move nothing unless the other history goes in); and take at most one split
/// per writer and number (a writer proven to have equivocated gets no further changes taken in
/// that document's line until an admin acts).
///
/// Fixed (`forks::split_fork`): the split, the rollback and the merge of what arrived are one
/// transaction; nothing moves unless the other history goes in. (A writer that keeps making
/// second histories that do go in makes one split each: bounded by its reach, named in every
/// refusal, removed by an admin.)
#[test]
fn attack_a_second_history_that_never_goes_in_still_copies_the_case_every_time() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, _xavier, yara], _network, case, base) = case_with_yara_s_note(dir.path());
    meet(&yara, &anna).expect("meeting");
    anna.add_notes(case, vec![observation("A1: dossier")]).expect("note");
    meet(&anna, &bram).expect("meeting");

    let mut target = case;
    for round in 0..3 {
        let bytes = second_history_that_fails(&yara, &bram, target, &base, case, round);
        let refused = bram.merge_changes(target, &bytes);
        assert!(refused.is_err(), "the batch is refused");
        let _ = meet(&anna, &bram);
        let _ = meet(&bram, &anna);
        // The newest copy, to aim the next message at.
        let cases = nabij_tests::case_ids(&bram);
        if let Some(newest) = cases.iter().find(|c| **c != case && **c != target) {
            target = *newest;
        }
    }
    let (at_anna, at_bram) = (subjects(&anna), subjects(&bram));
    assert_eq!(
        (at_anna.len(), at_bram.len()),
        (1, 1),
        "a second history that went in nowhere leaves one case: Anna {at_anna:?}, Bram {at_bram:?}"
    );
    assert_eq!(texts(&bram, case).len(), 2, "the case keeps its notes under its id");
}

// ---------------------------------------------------------------------------------------------
// 4. A removed phone's second history
// ---------------------------------------------------------------------------------------------

/// RULE (a cost written down; was the review's fourth break). Attacker: a thief with a removed
/// phone (Yara's, reported lost and removed by Anna), its key and its copy of a case.
///
/// The thief hands Bram, who holds the removal, a second change with the number of the phone's
/// last note, ground below it and signed by the phone. `check_changes` takes a removed device's
/// changes (as made "before the removal": nothing tells them apart), so the thief's history
/// takes the case's id wherever the split rule says it keeps it, and Bram's goes on as the
/// split. The review proposed to refuse the split when the writer is removed; but then the
/// holders of the removal keep one history and those without it the other, apart for good
/// (the original break). So the split stands, and what it costs is bounded: nothing is lost
/// (Bram's history, Yara's note in it, is whole in the split, on every device), and the
/// removed phone's text is marked as its own in the history.
#[test]
fn rule_a_removed_phone_s_second_history_splits_a_case_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, _xavier, yara], network, case, base) = case_with_yara_s_note(dir.path());
    anna.remove_device(network, yara.device_key(), nabij_core::model::Reason::Lost)
        .expect("remove");
    meet(&anna, &bram).expect("Bram gets the removal");
    assert!(nabij_tests::attack::removed_on(&bram, network, &yara.device_key()));

    let bytes = second_history(&yara, &bram, case, &base, case, 0, false);
    let _ = bram.merge_changes(case, &bytes);
    let cases = bram.list_cases(&CaseFilter::default()).expect("cases");
    assert!(cases.iter().any(|c| c.subject == "Mevrouw B."), "Bram's history is kept");
    let notes: Vec<String> = cases.iter().flat_map(|c| texts(&bram, c.id)).collect();
    assert!(notes.iter().any(|n| n == "Y1: gesprek"), "nothing is lost: {notes:?}");
    meet(&bram, &anna).expect("meeting");
    meet(&anna, &bram).expect("meeting");
    assert_eq!(doc_heads_of(&anna), doc_heads_of(&bram), "Anna holds the same, split and all");
}

fn doc_heads_of(d: &Device) -> Vec<(DocId, Vec<[u8; 32]>)> {
    nabij_tests::doc_heads(d)
}

// ---------------------------------------------------------------------------------------------
// Held
// ---------------------------------------------------------------------------------------------

/// HELD (promise 2). A member of Oost only copies an Oost-only case under `lineage` and puts
/// West into the copy's networks herself: the per-operation sharing check judges that
/// operation (hers, and she is no device of West), whatever the lineage lets verify; Anna
/// (in both) refuses the copy at the meeting and by a merge call, and Bram never sees it.
#[test]
fn held_a_copy_under_lineage_cannot_be_shared_into_another_network_by_its_copier() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, yara], oost, west) = oost_and_west(dir.path());
    let x = case_in(&anna, vec![oost], "Mevrouw B.");
    hand(&anna, &yara, x);
    let z = DocId::from_bytes([0x5b; 16]);
    let forged = copy_under_lineage(&yara, &yara.export_document(x).expect("export"), x, z, |d| {
        let nets = d.get(ROOT, "networks").expect("get").expect("networks").1;
        d.put(&nets, west.to_string(), true).expect("share");
    });
    assert!(anna.merge_document(&forged).is_err(), "Anna refuses the copy shared into West");
    let _ = yara.merge_document(&forged);
    let _ = meet(&yara, &anna);
    let _ = meet(&anna, &bram);
    assert!(anna.case_timeline(z).is_err());
    assert!(bram.case_timeline(z).is_err());
    assert!(subjects(&bram).is_empty());
}
