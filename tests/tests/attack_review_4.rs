//! Fourth attacker pass (`attack-review-4`), over 6f1b020: member-granularity answers,
//! `could_count` judged in each operation's own past, the epoch bound, `MAX_PARENTS`, learnt
//! operations and automatic key renewal.
//!
//! Each `attack_` test states the promise as it should hold; each failed on the commit reviewed
//! (6302b0d on that branch) and passes since its fix. Each `held_` test is an attack the
//! defence held against. The last break (two histories of the network document) was fixed a
//! session later; documents other than networks forked so are `forked_documents.rs`'.

use nabij_core::{
    Device, DocId,
    membership::{self, Change, OpId, SignedOp},
    model::{Reason, Role},
    test_utils::{observation, signing_key},
};
use nabij_tests::{
    attack::{case_in, decoded, hand, inject_ops, removed_on, texts, two_admins_and_a_member},
    meet,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn heads_of(d: &Device, network: DocId) -> Vec<OpId> {
    membership::resolve_network(network, None, &decoded(d, network)).heads
}

/// `count` operations signed by `thief` on `parents`, each with an id below `below` (ground:
/// an id is a hash the signer chooses by varying the content), so that they sort first among
/// any device's heads. Each adds a made-up member (the cheapest act an admin may sign).
fn small_heads(
    thief: &Device,
    network: DocId,
    parents: &[OpId],
    below: OpId,
    count: usize,
) -> Vec<SignedOp> {
    let key = signing_key(thief);
    let mut out = Vec::new();
    let mut n: u64 = 0;
    while out.len() < count {
        n += 1;
        let mut member = [0u8; 16];
        member[..8].copy_from_slice(&n.to_le_bytes());
        member[8] = 0xee;
        let op = SignedOp::sign(
            &key,
            network,
            parents,
            Change::AddMember { member, name: format!("p{n}"), role: Role::Member },
        )
        .expect("sign");
        if op.id() < below {
            out.push(op);
        }
        assert!(n < 1_000_000, "grinding");
    }
    out
}

/// Anna (creator), Bram and Xavier admins, Yara a member; everyone holds the network and a case.
fn network_of_four(dir: &std::path::Path) -> ([std::sync::Arc<Device>; 4], DocId, DocId) {
    let (cast, network) = two_admins_and_a_member(dir);
    let case = case_in(&cast[0], vec![network], "Mevrouw B.");
    for d in &cast[1..] {
        hand(&cast[0], d, case);
    }
    (cast, network, case)
}

// ---------------------------------------------------------------------------------------------
// 1. MAX_PARENTS: parents are the 64 smallest heads by id
// ---------------------------------------------------------------------------------------------

/// FOUND AND FIXED (promises 4 and 5). Attacker: a thief with a removed admin's phone (Xavier's).
///
/// `change_membership` signs on the heads sorted by id and truncated to `MAX_PARENTS` (64).
/// Ids are hashes the signer grinds. The thief signs, "from before" its removal (on the heads
/// the phone held), `q = RemoveDevice(Bram)` and 64 `AddMember`s on `q` whose ids are below
/// every honest head. Globally `q` loses its dispute with Anna's removal of the phone `r`
/// (Bram stays an admin). But every operation Bram's device now signs names only those 64
/// heads as parents: its own past holds `q` and not `r`, so there `q` is undisputed, Bram is
/// removed, and `could_count` (judged in the operation's own past) says it cannot count. Bram
/// can no longer remove anyone, demote, re-key (nor renew a key through `renew_keys`): frozen
/// for good (the thief's heads stay the smallest). One such `q` per admin freezes them all.
///
/// Steps: Anna removes Xavier's phone; Bram gets it at a meeting. The thief hands `q` and
/// the 64 ground heads to Yara (who had not met anyone since; or any carrier); Yara meets
/// Bram. Yara's phone is lost: Bram's `remove_device(Yara)` fails "would not count".
///
/// Severity: high (no honest admin can act; no later removal can take effect, promise 5;
/// everyone takes the thief's operations, promise 4 "no member can poison shared structures").
/// Fix: never truncate away heads that matter: always name every head that is a revocation
/// (and this device's own latest operation), truncate only the rest; or name, instead of 64
/// heads, a chain: sign an empty "merge" (or fold heads in batches of 64 over several own
/// operations) so the new operation's past holds every head; or judge `authorized` with the
/// revocations that lose their dispute *anywhere in what the signer held* left out.
#[test]
fn attack_ground_small_heads_freeze_an_honest_admin() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, xavier, yara], network, _case) = network_of_four(dir.path());
    let held = heads_of(&xavier, network);

    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    meet(&anna, &bram).expect("Bram gets the removal");
    assert!(removed_on(&bram, network, &xavier.device_key()));
    let honest_min = *heads_of(&bram, network).iter().min().expect("heads");

    // The thief, with the phone's key, "from before": Bram removed, then 64 small heads on it.
    let q = SignedOp::sign(
        &signing_key(&xavier),
        network,
        &held,
        Change::RemoveDevice { device: *bram.device_key().as_bytes(), reason: Reason::Compromised },
    )
    .expect("sign");
    let mut ops = vec![q.clone()];
    ops.extend(small_heads(&xavier, network, &[q.id()], honest_min, membership::MAX_PARENTS));
    inject_ops(&xavier, &yara, network, &ops).expect("Yara takes them");
    meet(&yara, &bram).expect("meeting");
    assert!(!removed_on(&bram, network, &bram.device_key()), "Bram stays (q lost its dispute)");
    assert!(removed_on(&bram, network, &xavier.device_key()), "the phone stays out");

    // Yara's phone is lost next: Bram removes it.
    let r = bram.remove_device(network, yara.device_key(), Reason::Lost);
    assert!(
        r.is_ok() && removed_on(&bram, network, &yara.device_key()),
        "an honest admin can still remove a device: {r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. `authorized` had no rule 3: a puppet made "from before" froze every later past
// ---------------------------------------------------------------------------------------------

/// The thief's operations: with the phone's key on the heads it held, a puppet admin (member
/// and device), and with the puppet's key the removal of each of `victims`.
fn puppet_revocations(
    thief: &Device,
    network: DocId,
    held: &[OpId],
    victims: &[&Device],
) -> Vec<SignedOp> {
    let puppet = ed25519_dalek::SigningKey::from_bytes(&[66; 32]);
    let member = [66u8; 16];
    let key = signing_key(thief);
    let add = SignedOp::sign(
        &key,
        network,
        held,
        Change::AddMember { member, name: "Beheer".into(), role: Role::Admin },
    )
    .expect("sign");
    let dev = SignedOp::sign(
        &key,
        network,
        &[add.id()],
        Change::AddDevice { member, device: puppet.verifying_key().to_bytes() },
    )
    .expect("sign");
    let mut out = vec![add, dev.clone()];
    for v in victims {
        out.push(
            SignedOp::sign(
                &puppet,
                network,
                &[dev.id()],
                Change::RemoveDevice {
                    device: *v.device_key().as_bytes(),
                    reason: Reason::Compromised,
                },
            )
            .expect("sign"),
        );
    }
    out
}

/// FOUND AND FIXED (promises 4 and 5). Attacker: a thief with a removed admin's phone.
///
/// `resolve` voids a puppet admin the phone made "from before" its removal (rule 3 runs before
/// the disputes: `a_removed_admin_cannot_dispute_its_removal_through_an_admin_it_makes`). But
/// `could_count`, which decides `authorized` (what every device takes, and whether an admin's
/// own new operation "would count"), judges each operation in its own past by rule 2 and the
/// disputes only: no rule 3. There the puppet is an admin, its `RemoveDevice(Anna)` disputes
/// Anna's removal of the phone (which does not answer it: the puppet is another member), and
/// nothing disputes it. So in the past of every operation signed after these arrive, the
/// phone's removal is "out", the puppet's removals of Anna and Bram count, and neither can
/// sign anything again: no removal, no demotion, no re-key (`renew_keys` fails too), for good,
/// whatever the heads. Globally the membership looks right (the puppet is void), which hides it.
///
/// Steps: Anna removes Xavier's phone; Bram gets it. The thief signs with the phone's key, on
/// the heads it held, `AddMember(puppet, Admin)`, `AddDevice(puppet)`; with the puppet's key
/// `RemoveDevice(Anna)` and `RemoveDevice(Bram)`; hands them to Yara (any carrier); Yara meets
/// Bram and Anna. Yara's phone is lost: neither admin can remove it.
///
/// Severity: critical (every admin frozen by one removed phone with four operations; no later
/// removal can take effect; promise 4's "no member can poison shared structures").
/// Fix: run rule 3 in `could_count` too (an act of an author whose revocation is in the same
/// past and concurrent with it is left out before the disputes, as `resolve` does); or judge
/// `authorized` for an operation with the valid set of its own past as `resolve` computes it.
#[test]
fn attack_a_puppet_made_before_the_removal_freezes_every_admin() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, xavier, yara], network, _case) = network_of_four(dir.path());
    let held = heads_of(&xavier, network);
    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    meet(&anna, &bram).expect("Bram gets the removal");

    let ops = puppet_revocations(&xavier, network, &held, &[&anna, &bram]);
    inject_ops(&xavier, &yara, network, &ops).expect("Yara takes them");
    meet(&yara, &bram).expect("meeting");
    meet(&yara, &anna).expect("meeting");
    for d in [&anna, &bram] {
        assert!(!removed_on(d, network, &anna.device_key()), "Anna stays (the puppet is void)");
        assert!(removed_on(d, network, &xavier.device_key()), "the phone stays out");
    }
    let by_bram = bram.remove_device(network, yara.device_key(), Reason::Lost);
    let by_anna = anna.remove_device(network, yara.device_key(), Reason::Lost);
    assert!(
        by_bram.is_ok() && by_anna.is_ok(),
        "honest admins can still remove a device: Bram {by_bram:?}, Anna {by_anna:?}"
    );
}

/// FOUND AND FIXED (promise 5: a removed device cannot decrypt what is written after its removal).
/// Attacker: a thief with a removed admin's phone. The freeze above, plus the documented
/// answer.
///
/// The phone's answer `RemoveDevice(Anna)` "from before" voids Anna's re-key that followed her
/// removal of the phone (documented: the epoch falls back to one the phone holds "until another
/// admin's device renews it at its next contact"). `renew_key` says so on Bram, and
/// `renew_keys` runs at his next contact, but the puppet's removals freeze him: his re-key
/// "would not count" (a warning in the log), at this contact and every later one. Everything
/// sealed for the network from now on is under a key the phone holds.
///
/// Steps: as above, the thief also hands the answer; Yara meets Bram (Bram's contact, where the
/// renewal should happen), then again.
///
/// Severity: critical (new notes readable by the stolen phone through any relay blob).
/// Fix: as above (rule 3 in `could_count`).
#[test]
fn attack_a_frozen_admin_cannot_renew_the_key_a_removed_phone_holds() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, xavier, yara], network, case) = network_of_four(dir.path());
    let held = heads_of(&xavier, network);
    let phone_epoch =
        membership::resolve_network(network, None, &decoded(&xavier, network)).current_epoch();
    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    meet(&anna, &bram).expect("Bram gets the removal");

    let answer = SignedOp::sign(
        &signing_key(&xavier),
        network,
        &held,
        Change::RemoveDevice { device: *anna.device_key().as_bytes(), reason: Reason::Compromised },
    )
    .expect("sign");
    let mut ops = puppet_revocations(&xavier, network, &held, &[&bram]);
    ops.push(answer);
    inject_ops(&xavier, &yara, network, &ops).expect("Yara takes them");
    meet(&yara, &bram).expect("meeting");
    meet(&yara, &bram).expect("meeting");
    bram.add_note(case, observation("Na de diefstal: nieuw adres")).expect("note");
    let _ = texts(&bram, case);

    let m = membership::resolve_network(network, None, &decoded(&bram, network));
    assert!(m.removed_devices.contains_key(&xavier.device_key()), "the phone stays out");
    assert!(m.is_admin(&bram.device_key()), "Bram is an admin");
    assert!(
        m.current_epoch() > phone_epoch && !m.renew_key,
        "after Bram's contact the key is one the phone never held: epoch {} (the phone's {}), \
         renew_key {}",
        m.current_epoch(),
        phone_epoch,
        m.renew_key
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Held
// ---------------------------------------------------------------------------------------------

/// HELD (promise 4, the epoch bound). Attacker: a thief with a removed admin's phone.
/// It signs "from before" a `Rekey` with the same number as the one that followed its removal
/// (allowed where it was made: one past what it had seen). Bram's next operations number their
/// epoch past both (`newest_epoch_before`) and count.
#[test]
fn held_a_backdated_rekey_of_the_same_number_does_not_freeze_the_next_epoch() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, xavier, yara], network, _case) = network_of_four(dir.path());
    let held = heads_of(&xavier, network);
    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    meet(&anna, &bram).expect("Bram gets the removal");
    let epoch =
        membership::resolve_network(network, None, &decoded(&bram, network)).current_epoch();
    let k = SignedOp::sign(
        &signing_key(&xavier),
        network,
        &held,
        Change::Rekey { epoch, key_commitment: [7; 32] },
    )
    .expect("sign");
    let k2 = SignedOp::sign(
        &signing_key(&xavier),
        network,
        &[k.id()],
        Change::Rekey { epoch: epoch + 1, key_commitment: [8; 32] },
    )
    .expect("sign");
    inject_ops(&xavier, &yara, network, &[k, k2]).expect("Yara takes them");
    meet(&yara, &bram).expect("meeting");
    bram.remove_device(network, yara.device_key(), Reason::Lost).expect("Bram removes Yara");
    let m = membership::resolve_network(network, None, &decoded(&bram, network));
    assert!(m.current_epoch() > epoch && m.removed_devices.contains_key(&yara.device_key()));
}

/// HELD (the control of `attack_a_frozen_admin_cannot_renew_the_key_a_removed_phone_holds`):
/// the phone's answer alone voids Anna's re-key, and Bram renews the key at his next contact.
#[test]
fn held_without_the_puppet_bram_renews_the_key_at_his_next_contact() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, xavier, yara], network, _case) = network_of_four(dir.path());
    let held = heads_of(&xavier, network);
    let phone_epoch =
        membership::resolve_network(network, None, &decoded(&xavier, network)).current_epoch();
    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    meet(&anna, &bram).expect("Bram gets the removal");
    let answer = SignedOp::sign(
        &signing_key(&xavier),
        network,
        &held,
        Change::RemoveDevice { device: *anna.device_key().as_bytes(), reason: Reason::Compromised },
    )
    .expect("sign");
    inject_ops(&xavier, &yara, network, &[answer]).expect("Yara takes it");
    meet(&yara, &bram).expect("meeting");
    meet(&yara, &bram).expect("meeting");
    let m = membership::resolve_network(network, None, &decoded(&bram, network));
    assert!(
        m.current_epoch() > phone_epoch && !m.renew_key,
        "{} {}",
        m.current_epoch(),
        m.renew_key
    );
}

// ---------------------------------------------------------------------------------------------
// 4. MAX_PARENTS and the epoch bound: 64 old heads and the epoch that counts
// ---------------------------------------------------------------------------------------------

/// FOUND AND FIXED (promises 4 and 5). Attacker: a thief with a removed admin's phone; no revocation
/// needed, 64 plain operations (or, without grinding, a few hundred: the chance that the heads
/// kept hold the newest epoch is 64 in their number).
///
/// `change_membership` numbers a new epoch `max(newest_epoch_before(parents), current) + 1`
/// with `parents` the 64 smallest heads. The thief's backdated operations (on the heads the
/// phone held, epoch 0) have the smallest ids, so the parents' past holds no epoch past 0
/// while the epoch that counts is 1 (Anna's re-key after removing the phone): the new epoch is
/// 2, and the rule wants it at most `seen_epoch + 1` = 1. Every removal (it re-keys) and every
/// renewal by every honest admin "would not count", for good.
///
/// Steps: Anna removes Xavier's phone (epoch 1); Bram gets it. The thief hands 64 ground
/// `AddMember`s "from before" to Yara; Yara meets Bram. Bram's `remove_device(Yara)` fails:
/// "Rekey { epoch: 2, .. } would not count". (The flood of
/// `attack_two_changes_with_one_sequence_number_split_the_network_for_good` shows a flood
/// reaching a device; a few hundred ungrounded heads suffice with high probability.)
///
/// Severity: high (every admin frozen; no later removal takes effect).
/// Fix: take the epoch from the parents actually named (`newest_epoch_before(parents) + 1`,
/// and name a head holding the epoch that counts), or better never leave out heads holding
/// the current epoch or a revocation when truncating to `MAX_PARENTS`.
#[test]
fn attack_64_old_heads_push_every_new_epoch_past_the_bound() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, xavier, yara], network, _case) = network_of_four(dir.path());
    let held = heads_of(&xavier, network);
    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    meet(&anna, &bram).expect("Bram gets the removal");
    let honest_min = *heads_of(&bram, network).iter().min().expect("heads");
    let ops = small_heads(&xavier, network, &held, honest_min, membership::MAX_PARENTS);
    inject_ops(&xavier, &yara, network, &ops).expect("Yara takes them");
    meet(&yara, &bram).expect("meeting");
    let r = bram.remove_device(network, yara.device_key(), Reason::Lost);
    assert!(
        r.is_ok() && removed_on(&bram, network, &yara.device_key()),
        "an honest admin can still remove a device: {r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Two changes with one sequence number
// ---------------------------------------------------------------------------------------------

/// `count` backdated `AddMember`s signed by `thief` on `parents`, members numbered from `from`.
fn flood(thief: &Device, network: DocId, parents: &[OpId], from: u64, count: u64) -> Vec<SignedOp> {
    let key = signing_key(thief);
    (from..from + count)
        .map(|n| {
            let mut member = [0u8; 16];
            member[..8].copy_from_slice(&n.to_le_bytes());
            member[8] = 0xf1;
            SignedOp::sign(
                &key,
                network,
                parents,
                Change::AddMember { member, name: format!("f{n}"), role: Role::Member },
            )
            .expect("sign")
        })
        .collect()
}

/// FOUND AND FIXED (promise 4: everyone agrees on the membership; promise 5). Attacker: a
/// thief with a removed admin's phone (its modified app), before the two halves of the network
/// hear of its removal; any member in any document.
///
/// A device's changes to a document carry its Automerge actor and a sequence number. The
/// phone writes two different changes with the same actor and sequence number (each carrying
/// a few backdated operations it may sign) and hands one to each half of the network. Each half
/// takes its own; from then on every change of the network document from the other half fails
/// to merge (`DuplicateSeqNumber`). A removal made in one half (here the phone's own) never
/// reached the other: the halves disagreed on the membership for good, and the removed phone
/// was active at every meeting of the other half.
///
/// Fix: the network document still does not merge across the halves (its id is the network's,
/// so neither history can move as other documents' do, `forked_documents.rs`), but when a
/// network's document is refused either way in a meeting, each side hands the other its signed
/// operations (`Roster`), checked as any handed operations: the membership converges.
#[test]
fn attack_two_changes_with_one_sequence_number_split_the_network_for_good() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, xavier, yara], network, _case) = network_of_four(dir.path());
    let held = heads_of(&xavier, network);
    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    meet(&anna, &bram).expect("Bram gets the removal");

    inject_ops(&xavier, &yara, network, &flood(&xavier, network, &held, 0, 3)).expect("A");
    inject_ops(&xavier, &bram, network, &flood(&xavier, network, &held, 100, 3)).expect("B");

    meet(&bram, &yara).expect("the meeting completes");
    if let Err(e) = nabij_tests::attack::hop(&bram, &yara, network) {
        assert!(e.to_string().contains("two different histories"), "a typed refusal: {e}");
    }
    assert!(
        removed_on(&yara, network, &xavier.device_key()),
        "Yara learns the phone's removal from Bram"
    );
    let (at_bram, at_yara) = (bram.network(network).expect("n"), yara.network(network).expect("n"));
    assert_eq!(at_bram.members, at_yara.members, "they agree on the members");
    assert_eq!(at_bram.removed, at_yara.removed, "and on the removals");
    // The document itself heals: the history that gives way goes back to where the two part,
    // takes the other, and writes back what only it held (operations, sealed keys).
    for _ in 0..2 {
        meet(&bram, &yara).expect("meeting");
        meet(&yara, &bram).expect("meeting");
    }
    assert_eq!(bram.heads(network).expect("heads"), yara.heads(network).expect("heads"));
    let ops = |d: &Device| {
        let mut o: Vec<Vec<u8>> = nabij_tests::attack::ops_in(d, network);
        o.sort();
        o
    };
    let (b, y) = (ops(&bram), ops(&yara));
    assert_eq!(b, y, "one document, every operation of either history in it");
    for id in
        flood(&xavier, network, &held, 0, 3).iter().chain(&flood(&xavier, network, &held, 100, 3))
    {
        assert!(b.iter().any(|x| SignedOp::decode(x).is_ok_and(|o| o.id() == id.id())));
    }
}
