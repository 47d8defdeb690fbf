//! Third attacker pass (`attack-review-3`), over fd4c668, 218016b and 5759cf3: the membership
//! rule's dispute (a revocation concurrent with a revocation of its author counts only when it
//! answers it), devices that take each other for removed exchanging operations, the relay
//! roster's operations learnt by every device, relay blobs kept until their key comes, and
//! automatic key renewal.
//!
//! Each `attack_` test states the promise as it should hold; each failed on the commit reviewed
//! (795413d on that branch) and passes since its fix. Each `held_` test is an attack the
//! defence held against. Each `rule_` test holds what the rule does where the review found a
//! cost no rule on the operations alone can avoid (ARCHITECTURE.md, "Revocations concurrent
//! with their author's revocation").

use ed25519_dalek::SigningKey;
use nabij_core::{
    Device, DeviceKey, DocId, MemberId,
    membership::{self, Change, Membership, OpId, SignedOp},
    model::{Reason, Role},
    test_utils::{observation, signing_key},
};
use nabij_tests::{
    attack::{
        case_in, decoded, hand, inject_ops, invite, removed_on, role_of, texts,
        two_admins_and_a_member,
    },
    meet, open_device,
};

// ---------------------------------------------------------------------------------------------
// Helpers (the others are in nabij_tests::attack)
// ---------------------------------------------------------------------------------------------

/// `d` joins as another device of `owner`'s member.
fn invite_as(admin: &Device, network: DocId, owner: &Device, d: &Device) {
    let inv = admin.invite(network, owner.member_id(), &owner.display_name(), d.device_key());
    d.join(&inv.expect("invite")).expect("join");
}

// ---------------------------------------------------------------------------------------------
// The rule alone (nabij_relay_proto::membership): small graphs
// ---------------------------------------------------------------------------------------------

mod rule {
    use super::*;

    pub(super) fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }
    pub(super) fn dev(n: u8) -> DeviceKey {
        DeviceKey::from_bytes(key(n).verifying_key().to_bytes())
    }
    pub(super) fn member(n: u8) -> [u8; 16] {
        [n; 16]
    }
    pub(super) fn mid(n: u8) -> MemberId {
        MemberId::from_bytes(member(n))
    }
    pub(super) fn net() -> DocId {
        DocId::from_bytes([9; 16])
    }
    pub(super) fn op(by: u8, parents: &[&SignedOp], change: Change) -> SignedOp {
        let ids: Vec<OpId> = parents.iter().map(|p| p.id()).collect();
        SignedOp::sign(&key(by), net(), &ids, change).expect("sign")
    }
    pub(super) fn genesis() -> SignedOp {
        op(
            1,
            &[],
            Change::Genesis { key_commitment: [0; 32], member: member(1), name: "m1".into() },
        )
    }
    /// Member `who` with device `who`.
    pub(super) fn add(by: u8, parents: &[&SignedOp], who: u8, role: Role) -> Vec<SignedOp> {
        let m = op(
            by,
            parents,
            Change::AddMember { member: member(who), name: format!("m{who}"), role },
        );
        let d =
            op(by, &[&m], Change::AddDevice { member: member(who), device: *dev(who).as_bytes() });
        vec![m, d]
    }
    /// Device `d` for member `who`.
    pub(super) fn add_device(by: u8, parents: &[&SignedOp], who: u8, d: u8) -> SignedOp {
        op(by, parents, Change::AddDevice { member: member(who), device: *dev(d).as_bytes() })
    }
    pub(super) fn rm_dev(by: u8, parents: &[&SignedOp], d: u8) -> SignedOp {
        op(by, parents, Change::RemoveDevice { device: *dev(d).as_bytes(), reason: Reason::Lost })
    }
    pub(super) fn rm_member(by: u8, parents: &[&SignedOp], who: u8) -> SignedOp {
        op(by, parents, Change::RemoveMember { member: member(who), reason: Reason::Compromised })
    }
    pub(super) fn resolve(g: &SignedOp, ops: &[SignedOp]) -> Membership {
        membership::resolve(net(), g.id(), ops)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The dispute: a removed admin's backdated answer
// ---------------------------------------------------------------------------------------------

/// The graph of `attack_a_removed_admin_s_answer_brings_back_its_other_removed_phone`, on the
/// rule alone: admins 1 (Anna), 2 (Bram), 4 (Xavier, with a phone 4 and a laptop 5).
fn two_phones_removed_one_answers() -> (SignedOp, Vec<SignedOp>, SignedOp) {
    use rule::*;
    let g = genesis();
    let mut ops = vec![g.clone()];
    ops.extend(add(1, &[&g], 2, Role::Admin));
    let t = ops.last().expect("tip").clone();
    ops.extend(add(1, &[&t], 4, Role::Admin));
    let t = ops.last().expect("tip").clone();
    ops.push(add_device(1, &[&t], 4, 5));
    // What the thief's phone held.
    let tip = ops.last().expect("tip").clone();
    // Xavier's bag is stolen: Anna removes the phone, then the laptop.
    let r1 = rm_dev(1, &[&tip], 4);
    let r2 = rm_dev(1, &[&r1], 5);
    ops.extend([r1, r2]);
    // The thief, with the phone's key, "from before": Anna's device removed (an answer).
    let q = rm_dev(4, &[&tip], 1);
    (g, ops, q)
}

#[test]
fn attack_rule_a_removed_admin_s_answer_undoes_its_remover_s_other_removals() {
    use rule::*;
    let (g, mut ops, q) = two_phones_removed_one_answers();
    let before = resolve(&g, &ops);
    assert!(before.removed_devices.contains_key(&dev(4)));
    assert!(before.removed_devices.contains_key(&dev(5)));
    ops.push(q.clone());
    let m = resolve(&g, &ops);
    assert!(m.authorized.contains(&q.id()), "every device takes the answer");
    assert!(m.removed_devices.contains_key(&dev(4)), "the phone stays out: {m:?}");
    assert!(
        m.removed_devices.contains_key(&dev(5)) && m.member_of(&dev(5)).is_none(),
        "the laptop, removed by Anna after she removed the phone, stays out: {:?} / {:?}",
        m.member_of(&dev(5)).map(|(id, x)| (id, x.role)),
        m.removed_devices
    );
}

/// FOUND AND FIXED (promises 4 and 5). Attacker: a thief with both devices of an admin (Xavier's bag:
/// his phone and his laptop).
///
/// The answer rule lets a removed admin's key revoke, "from before", the admin that removed it
/// (the two revoked each other at once). But that answer then *disputes every other revocation
/// its target made that it has not seen* (concurrent, revokes their author, not answered), and
/// nothing disputes the answer: so each of them loses. Anna removed the phone and then the
/// laptop; the phone's backdated `RemoveDevice(Anna)` answers the first removal and voids the
/// second. The laptop is an active admin device again, everywhere, for good.
///
/// Steps: Anna (admin) removes Xavier's phone, then his laptop (both Lost); Bram (admin) gets
/// both at a meeting. The thief signs with the phone's key, on the heads the phone held,
/// `RemoveDevice(Anna's device)`, and hands it to Yara (not met anyone since: any carrier, or
/// the phone itself through `Message::Removed`). Yara meets Bram. Now on Bram: the laptop is
/// an active admin device; Bram's automatic key renewal (`renew_key`: Anna's re-keys are void)
/// seals the new epoch to the laptop; the laptop meets Bram and reads the case note written
/// after its removal, and can now sign removals of Bram with fresh parents.
///
/// Severity: critical (a removed device counts again, with admin rights and new keys).
/// Fix: an answer `q` to a revocation `r` of its author must not void `r`'s author's acts that
/// follow `r` (her acts that saw the removal were made when the thief had no authority): in
/// `disputed`/`could_count`/`settle`, let a revocation `q` whose author is revoked by an
/// undisputed `r` that `q` answers dispute/exclude only acts of `r`'s author concurrent with
/// `r` or in `r`'s past, never those in `r`'s future; or drop answers altogether (a removed
/// key's backdated revocations never count once its removal is known).
#[test]
fn attack_a_removed_admin_s_answer_brings_back_its_other_removed_device() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, bram, xavier, laptop, yara] =
        ["Anna", "Bram", "Xavier", "XavierLaptop", "Yara"].map(|n| open_device(dir.path(), n));
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    for d in [&bram, &xavier, &yara] {
        invite(&anna, network, d);
    }
    invite_as(&anna, network, &xavier, &laptop);
    for d in [&bram, &xavier] {
        anna.set_role(network, d.member_id(), Role::Admin).expect("promote");
    }
    let case = case_in(&anna, vec![network], "Mevrouw B.");
    for d in [&bram, &xavier, &laptop, &yara] {
        hand(&anna, d, network);
        hand(&anna, d, case);
    }
    assert_eq!(role_of(&bram, network, &xavier), Some(Role::Admin));
    let heads = membership::resolve_network(network, None, &decoded(&xavier, network)).heads;

    // The bag is stolen: Anna removes the phone, then the laptop.
    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    anna.remove_device(network, laptop.device_key(), Reason::Lost).expect("remove laptop");
    meet(&anna, &bram).expect("Bram gets the removals");
    assert!(removed_on(&bram, network, &laptop.device_key()), "the laptop is out on Bram");

    // The thief answers with the phone's key, "from before".
    let q = SignedOp::sign(
        &signing_key(&xavier),
        network,
        &heads,
        Change::RemoveDevice { device: *anna.device_key().as_bytes(), reason: Reason::Compromised },
    )
    .expect("sign");
    inject_ops(&xavier, &yara, network, &[q]).expect("Yara takes it");
    meet(&yara, &bram).expect("meeting");
    meet(&yara, &bram).expect("meeting");

    // Bram writes after all this.
    let secret = "Na de diefstal: mevrouw B. is verhuisd naar adres X";
    bram.add_note(case, observation(secret)).expect("note");
    let back = !removed_on(&bram, network, &laptop.device_key());
    let met = meet(&laptop, &bram);
    let read = texts(&laptop, case).iter().any(|t| t == secret);
    assert!(
        !back && !read,
        "the removed laptop stays out: back in on Bram = {back} (role {:?}), meeting {:?}, \
         reads the note written after its removal = {read}",
        role_of(&bram, network, &xavier),
        met.map(|_| ()),
    );
}

/// FOUND AND FIXED (promise 5; makes the break above need no carrier). Attacker: a thief with a removed
/// admin's phone, at a meeting with any member that holds its removal.
///
/// A peer that "was in" a network (`was_in`: removed devices included) may hand a device its
/// operations with `Message::Removed`, and `learn_ops` keeps every one that is `authorized`
/// (made where its author was an admin). The removed phone is such a peer: its backdated
/// operations are authorized. So the phone plants them directly, in a device that already
/// holds its removal, which then hands them on to everyone.
///
/// Steps: as above (Anna removes the phone, then the laptop; Bram holds both). The thief's
/// phone connects to Bram (the transport authenticates its key, which Bram knows) and sends
/// `Removed { network, [RemoveDevice(Anna) "from before"] }`. Bram stores it: the laptop is an
/// active admin device on Bram again.
///
/// Severity: high (promise 5: a removed device is refused at every meeting; here it writes
/// the membership). Fix: at a meeting, learn operations from a removed peer never (only from a
/// peer active here, or only the operations that are in the past of the peer's own
/// removal, i.e. that it held when removed), and fix the rule as above.
#[test]
fn attack_a_removed_phone_plants_operations_at_a_meeting() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, bram, xavier, laptop] =
        ["Anna", "Bram", "Xavier", "XavierLaptop"].map(|n| open_device(dir.path(), n));
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &bram);
    invite(&anna, network, &xavier);
    invite_as(&anna, network, &xavier, &laptop);
    for d in [&bram, &xavier] {
        anna.set_role(network, d.member_id(), Role::Admin).expect("promote");
    }
    for d in [&bram, &xavier, &laptop] {
        hand(&anna, d, network);
    }
    let heads = membership::resolve_network(network, None, &decoded(&xavier, network)).heads;
    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    anna.remove_device(network, laptop.device_key(), Reason::Lost).expect("remove laptop");
    meet(&anna, &bram).expect("Bram gets the removals");

    let q = SignedOp::sign(
        &signing_key(&xavier),
        network,
        &heads,
        Change::RemoveDevice { device: *anna.device_key().as_bytes(), reason: Reason::Compromised },
    )
    .expect("sign");
    let mut phone = nabij_tests::RawPeer::new(&bram, xavier.device_key());
    let sent = phone.send(nabij_core::sync::Message::Removed {
        network: *network.as_bytes(),
        ops: vec![q.bytes().to_vec()],
    });
    let back = !removed_on(&bram, network, &laptop.device_key());
    assert!(
        !back,
        "a removed phone writes nothing into Bram's membership: session {sent:?}, answers \
         [{}], laptop back in = {back}",
        phone.summary(),
    );
    assert!(
        !removed_on(&bram, network, &anna.device_key()),
        "Bram took the phone's own answer from the phone itself"
    );
}

/// FOUND AND FIXED (promises 4 and 5: the cap's room for removals). Attacker: a thief with a
/// removed admin's phone (or an admin gone bad, before its removal). Still open: the same
/// flood made of revocations (ARCHITECTURE.md, "Revocations concurrent with their author's
/// revocation").
///
/// `within_cap` keeps [`membership::REVOCATION_ROOM`] (256) operations beyond
/// [`membership::MAX_OPS`] for "revocations or the new key epochs that follow them", so that an
/// admin gone bad who fills the network can still be removed. But a `Rekey` counts as room
/// whoever makes it and whatever it follows, and so does every revocation: the room is not
/// kept for anyone. A removed admin's key signs, "from before" its removal, 4,3xx `Rekey`s
/// (each `authorized`: it was an admin where it made them, epoch above the one it had seen):
/// every device takes them (through any carrier: here Yara, who had not met anyone since the
/// removal; `learn_ops` counts what it holds twice, so `Message::Removed` fills only half), the
/// network is at its cap, and no admin can ever remove a device or member again, nor re-key.
///
/// Steps: Anna removes Xavier's phone; Bram gets it. The thief signs
/// `MAX_OPS + REVOCATION_ROOM - held` backdated `Rekey`s and hands them to Yara; Yara meets
/// Bram. Yara's phone is lost
/// next: Bram's `remove_device` fails ("a network holds at most 4096 membership operations").
///
/// Severity: high (no removal can take effect any more, for good; promise 5). Fix: count
/// operations toward a network's cap by what *counts* or by author, not by what is held: e.g.
/// refuse to store operations of a device that is removed in what this device holds (and the
/// relay likewise), give each admin device its own share of the cap, and keep the room for
/// revocations only (a `Rekey` counts as room only if a revocation by the same author is its
/// parent).
#[test]
fn attack_a_removed_admin_fills_the_room_so_no_one_can_be_removed() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, xavier, yara], network) = two_admins_and_a_member(dir.path());
    let old = membership::resolve_network(network, None, &decoded(&xavier, network));
    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    meet(&anna, &bram).expect("Bram gets the removal");

    let held = decoded(&bram, network).len();
    let n = membership::MAX_OPS + membership::REVOCATION_ROOM - held;
    let xk = signing_key(&xavier);
    let base = old.current_epoch();
    let t = std::time::Instant::now();
    let junk: Vec<SignedOp> = (0..n)
        .map(|i| {
            let change = Change::Rekey { epoch: base + 1 + i as u32, key_commitment: [7; 32] };
            SignedOp::sign(&xk, network, &old.heads, change).expect("sign")
        })
        .collect();
    // The phone hands them to Yara, who has not met anyone since (or any member's modified
    // app carries them); Yara meets Bram.
    // Refused now: a new epoch takes the room only as its author's revocation's own, and is
    // numbered at most one past the newest in its past.
    let taken = inject_ops(&xavier, &yara, network, &junk);
    assert!(taken.is_err(), "Yara took a flood of new epochs: {taken:?}");
    meet(&yara, &bram).expect("meeting");
    assert!(decoded(&bram, network).len() < membership::MAX_OPS, "Bram does not hold them");
    eprintln!("{n} operations refused in {:?}", t.elapsed());

    let t = std::time::Instant::now();
    let removal = bram.remove_device(network, yara.device_key(), Reason::Lost);
    eprintln!("removal tried in {:?}", t.elapsed());
    assert!(
        removal.is_ok() && removed_on(&bram, network, &yara.device_key()),
        "Bram, an admin, can still remove Yara's lost phone: {removal:?}"
    );
}

/// FOUND AND FIXED (promises 4 and 5). Attacker: a thief with a removed admin's phone (or any admin gone
/// bad, before its removal), one operation.
///
/// fd4c668 numbers a new epoch "past every epoch any operation here could start"
/// (`authorized` `Rekey`s included, counted or not), and rule 2 wants a `Rekey`'s epoch above
/// every epoch in its (authorized) past. The epoch is a `u32` and `saturating_add(1)`: one
/// backdated `Rekey { epoch: u32::MAX }` (authorized: the phone was an admin where it made it)
/// makes every later re-key `u32::MAX`, which is not above `u32::MAX`: "would not count".
/// Every removal comes with a re-key, so no admin can remove any device or member again, and
/// `renew_keys` fails at every contact.
///
/// Steps: Anna removes Xavier's phone; Bram has it. The thief signs `Rekey { epoch: u32::MAX }`
/// on the phone's old heads and, at a meeting with Bram, sends it in `Message::Removed`
/// (`learn_ops` keeps it: authorized, from a device that "was in"). Yara's phone is lost: Bram's `remove_device` fails.
///
/// Severity: high (removal frozen for good by one operation). Fix: refuse a `Rekey` whose epoch
/// is not exactly one above the newest in its past (or bound the step), and number a new epoch
/// from the epochs that *count*, not from every authorized one.
#[test]
fn attack_one_backdated_rekey_at_u32_max_freezes_every_removal() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, xavier, yara], network) = two_admins_and_a_member(dir.path());
    let old = membership::resolve_network(network, None, &decoded(&xavier, network));
    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    meet(&anna, &bram).expect("Bram gets the removal");

    let change = Change::Rekey { epoch: u32::MAX, key_commitment: [7; 32] };
    let q = SignedOp::sign(&signing_key(&xavier), network, &old.heads, change).expect("sign");
    // No carrier needed: the removed phone itself hands it to Bram at a meeting.
    let mut phone = nabij_tests::RawPeer::new(&bram, xavier.device_key());
    phone
        .send(nabij_core::sync::Message::Removed {
            network: *network.as_bytes(),
            ops: vec![q.bytes().to_vec()],
        })
        .expect("Bram's session");
    assert!(removed_on(&bram, network, &xavier.device_key()), "the phone is out");

    let removal = bram.remove_device(network, yara.device_key(), Reason::Lost);
    assert!(
        removal.is_ok() && removed_on(&bram, network, &yara.device_key()),
        "Bram, an admin, can still remove Yara's lost phone: {removal:?}"
    );
}

/// OPEN, DOCUMENTED (promise 5, rule alone; ARCHITECTURE.md "Revocations concurrent with their
/// author's revocation"). Admin 1 removes admin 4's phone, and later, having seen that, member
/// 3's lost phone. Admin 4's key answers "from before" (removes admin 1's device): the answer
/// takes admin 1 with it, and with her every act she made concurrently with it, her removal of
/// 3 included: device 3 is active again. No rule on the operations alone can keep admin 1's
/// later removal and still void the thief's own later revocations (the two are mirror images:
/// each admin revoked the other). What the rule gives: any other admin who sees it removes
/// device 3 again, and that counts (and the key is renewed at that admin's next contact).
#[test]
fn rule_an_answer_voids_its_remover_s_later_removal_of_someone_else_until_redone() {
    use rule::*;
    let g = genesis();
    let mut ops = vec![g.clone()];
    ops.extend(add(1, &[&g], 2, Role::Admin));
    let t = ops.last().expect("tip").clone();
    ops.extend(add(1, &[&t], 3, Role::Member));
    let t = ops.last().expect("tip").clone();
    ops.extend(add(1, &[&t], 4, Role::Admin));
    let tip = ops.last().expect("tip").clone();
    let r1 = rm_dev(1, &[&tip], 4);
    let later = rm_dev(1, &[&r1], 3);
    let answer = rm_dev(4, &[&tip], 1);
    ops.extend([r1, later.clone(), answer.clone()]);
    let m = resolve(&g, &ops);
    assert!(m.removed_devices.contains_key(&dev(4)), "the phone stays out: {m:?}");
    assert!(m.member_of(&dev(3)).is_some(), "the rule as documented: {m:?}");
    // Admin 2 sees all of it and removes device 3 again: it counts.
    let again = rm_dev(2, &[&later, &answer], 3);
    ops.push(again);
    let m = resolve(&g, &ops);
    assert!(m.member_of(&dev(3)).is_none() && m.removed_devices.contains_key(&dev(3)), "{m:?}");
    assert!(m.renew_key, "a key device 3 may hold is renewed");
}

/// OPEN, DOCUMENTED (promise 4, rule alone; design). Attacker: an admin gone bad that another
/// admin only *demotes* (`SetRole member`, a revocation). Its key answers "from before" with
/// `RemoveMember` of the demoting admin: an answer is any revocation of the revoker, so both
/// count, and the demoting admin is removed altogether. Capping an answer at the strength of
/// what it answers would let a removed phone answer its removal with a mere demotion and so
/// dispute it (the phone would stay in); so a demotion is documented as what it is: it takes an
/// admin's rights away only if that admin does not answer at the same time, and an admin
/// believed gone bad is removed, not demoted.
#[test]
fn rule_a_demoted_admin_s_answer_may_remove_the_admin_who_demoted_it() {
    use rule::*;
    let g = genesis();
    let mut ops = vec![g.clone()];
    ops.extend(add(1, &[&g], 2, Role::Admin));
    let t = ops.last().expect("tip").clone();
    ops.extend(add(1, &[&t], 4, Role::Admin));
    let tip = ops.last().expect("tip").clone();
    ops.push(op(1, &[&tip], Change::SetRole { member: member(4), role: Role::Member }));
    ops.push(rm_member(4, &[&tip], 1));
    let m = resolve(&g, &ops);
    assert_eq!(m.members.get(&mid(4)).map(|x| x.role), Some(Role::Member), "{m:?}");
    assert!(!m.members.contains_key(&mid(1)), "both count: {m:?}");
    assert_eq!(m.members.get(&mid(2)).map(|x| x.role), Some(Role::Admin), "the bystander stays");
}

/// HELD (promise 5). The thief's phone, at a meeting with Bram (who holds its removal), sends
/// `Removed` with a backdated removal of Bram's member (Bram did not remove it): the answer
/// rule leaves it out (Anna's removal of the phone disputes it, and nothing disputes that),
/// Bram keeps the network and his role.
#[test]
fn held_a_removed_phone_cannot_make_a_bystander_admin_wipe() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, bram, xavier] = ["Anna", "Bram", "Xavier"].map(|n| open_device(dir.path(), n));
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &bram);
    invite(&anna, network, &xavier);
    for d in [&bram, &xavier] {
        anna.set_role(network, d.member_id(), Role::Admin).expect("promote");
    }
    let case = case_in(&anna, vec![network], "Mevrouw B.");
    for d in [&bram, &xavier] {
        hand(&anna, d, network);
        hand(&anna, d, case);
    }
    let heads = membership::resolve_network(network, None, &decoded(&xavier, network)).heads;
    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    meet(&anna, &bram).expect("Bram gets the removal");
    let q = SignedOp::sign(
        &signing_key(&xavier),
        network,
        &heads,
        Change::RemoveMember { member: *bram.member_id().as_bytes(), reason: Reason::Compromised },
    )
    .expect("sign");
    let mut phone = nabij_tests::RawPeer::new(&bram, xavier.device_key());
    let _ = phone.send(nabij_core::sync::Message::Removed {
        network: *network.as_bytes(),
        ops: vec![q.bytes().to_vec()],
    });
    let events = phone.events();
    assert!(bram.case(case).is_ok(), "Bram keeps the case: {events:?}");
    assert_eq!(role_of(&bram, network, &bram), Some(Role::Admin));
    assert!(removed_on(&bram, network, &xavier.device_key()));
}

/// HELD (promises 1 and 2). A device that is not (and never was) in a network sends
/// `Removed { network, [] }` for it at a meeting (an outsider with the network id from a
/// ticket; a member of another network): the victim answers nothing about it (no `Removed`
/// with the membership back), keeps nothing, and names nothing.
#[test]
fn held_a_stranger_s_removed_message_gets_no_membership_back() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, bram, olaf] = ["Anna", "Bram", "Olaf"].map(|n| open_device(dir.path(), n));
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &bram);
    hand(&anna, &bram, network);
    // Olaf is in a network of his own with Bram (a member of another network), and signs,
    // as an admin of his own network, operations tagged with Wijknetwerk Oost.
    let other = olaf.create_network("Olafs netwerk").expect("network");
    invite(&olaf, other, &bram);
    hand(&olaf, &bram, other);
    let planted = SignedOp::sign(
        &signing_key(&olaf),
        network,
        &[],
        Change::AddDevice { member: *olaf.member_id().as_bytes(), device: [3; 32] },
    )
    .expect("sign");
    let before = decoded(&bram, network).len();
    let mut peer = nabij_tests::RawPeer::new(&bram, olaf.device_key());
    let _ = peer.send(nabij_core::sync::Message::Removed {
        network: *network.as_bytes(),
        ops: vec![planted.bytes().to_vec()],
    });
    assert!(
        !peer.answers.iter().any(|m| matches!(m, nabij_core::sync::Message::Removed { .. })),
        "no membership back: {}",
        peer.summary()
    );
    assert!(!peer.named(network), "{}", peer.summary());
    assert_eq!(decoded(&bram, network).len(), before);
    assert!(bram.network(network).expect("network").members.len() == 2);
}
