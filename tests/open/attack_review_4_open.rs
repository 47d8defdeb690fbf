//! OPEN (not built: it fails). The one break of the fourth attacker pass (`attack-review-4`,
//! 6302b0d on that branch) that is not fixed, kept as the review wrote it so that the next
//! session starts from a reproduction: a member's modified app writes two different changes
//! of the network document with one Automerge actor and sequence number, hands one to each
//! half of the network, and merging across the halves then fails for good
//! (`DuplicateSeqNumber`). ARCHITECTURE.md, "Open after the fourth review". To run it, copy it
//! to `tests/tests/`.

use nabij_core::{
    Device, DeviceKey, DocId,
    membership::{self, Change, OpId, SignedOp},
    model::{Reason, Role},
    test_utils::{observation, signing_key},
};
use nabij_tests::{
    attack::{case_in, hand, inject_ops, invite, ops_in, texts},
    meet, open_device,
};

fn decoded(d: &Device, network: DocId) -> Vec<SignedOp> {
    ops_in(d, network).iter().filter_map(|b| SignedOp::decode(b).ok()).collect()
}

fn heads_of(d: &Device, network: DocId) -> Vec<OpId> {
    membership::resolve_network(network, None, &decoded(d, network)).heads
}

fn removed_on(d: &Device, network: DocId, who: &DeviceKey) -> bool {
    let n = d.network(network).expect("network");
    n.removed.iter().any(|r| r.device == *who)
}

/// Anna (creator), Bram and Xavier admins, Yara a member; everyone holds the network and a case.
fn network_of_four(dir: &std::path::Path) -> ([std::sync::Arc<Device>; 4], DocId, DocId) {
    let [anna, bram, xavier, yara] =
        ["Anna", "Bram", "Xavier", "Yara"].map(|n| open_device(dir, n));
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    for d in [&bram, &xavier, &yara] {
        invite(&anna, network, d);
    }
    for d in [&bram, &xavier] {
        anna.set_role(network, d.member_id(), Role::Admin).expect("promote");
    }
    let case = case_in(&anna, vec![network], "Mevrouw B.");
    for d in [&bram, &xavier, &yara] {
        hand(&anna, d, network);
        hand(&anna, d, case);
    }
    ([anna, bram, xavier, yara], network, case)
}

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

/// BREAK (promise 4: everyone agrees on the membership; no member can make others' sync fail;
/// promise 5). Attacker: a thief with a removed admin's phone (its modified app), before the
/// two halves of the network hear of its removal; likely any member in any document (untested).
///
/// A device's changes to a document carry its Automerge actor and a sequence number. The
/// phone writes two different changes with the same actor and sequence number (each carrying
/// a few backdated operations it may sign, `authorized`) and hands one to each half of the
/// network (two carriers who had not met anyone since its removal). Each half takes its own;
/// from then on, every change of the network document from the other half fails to merge
/// (`DuplicateSeqNumber`) while the meeting reports success. A removal made in one half (here
/// the phone's own) never reaches the other: the halves disagree on the membership for good,
/// and the removed phone is active at every meeting of the other half.
///
/// Steps: Anna removes the phone; Bram gets it. The phone's app writes change A (3 ops) on its
/// copy and hands it to Yara; it writes change B (3 other ops) on the same copy, same sequence
/// number, and it reaches Bram (any carrier). Bram meets Yara: `Ok`, but Yara never learns the
/// phone's removal (`hop` says `DuplicateSeqNumber`).
///
/// Severity: high (a permanent, silent split of the network document; removals stop reaching
/// half the devices).
/// Fix: treat an actor's equivocation as that actor's fault, not the document's: on
/// `DuplicateSeqNumber`, keep the changes the two sides share and refuse (and report) only the
/// equivocating actor's conflicting change and its descendants; better, let each device's
/// signed head (`SignedHead`: seq, hash) be checked before applying, and refuse a second head
/// signed for the same seq (proof of equivocation, which also removes that device).
#[test]
fn attack_two_changes_with_one_sequence_number_split_the_network_for_good() {
    let dir = tempfile::tempdir().expect("dir");
    let ([anna, bram, xavier, yara], network, _case) = network_of_four(dir.path());
    let held = heads_of(&xavier, network);
    anna.remove_device(network, xavier.device_key(), Reason::Lost).expect("remove phone");
    meet(&anna, &bram).expect("Bram gets the removal");

    inject_ops(&xavier, &yara, network, &flood(&xavier, network, &held, 0, 3)).expect("A");
    inject_ops(&xavier, &bram, network, &flood(&xavier, network, &held, 100, 3)).expect("B");

    let met = meet(&bram, &yara);
    let _ = meet(&yara, &bram);
    let hop = nabij_tests::attack::hop(&bram, &yara, network);
    assert!(
        removed_on(&yara, network, &xavier.device_key()),
        "Yara learns the phone's removal from Bram (meeting: {:?}, changes: {:?})",
        met.map(|_| ()),
        hop.map(|_| ())
    );
}
