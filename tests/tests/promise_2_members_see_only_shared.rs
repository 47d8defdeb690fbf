//! Promise 2 of the threat model: a member reads and writes only what is shared with networks
//! it is in. The attacker is a member of network A with a modified app that sends whatever
//! frames it likes; the victim's device holds network A and network B, and a case shared with
//! B only. Every attack runs through the victim's real meeting session and store.

use automerge::{
    AutoCommit, ReadDoc,
    sync::{State, SyncDoc},
    transaction::Transactable,
};
use nabij_core::{
    Device, DocId,
    model::NewCase,
    sync::{Message, Session, SyncError},
    test_utils::{load_exported, observation, sign_fork},
};
use nabij_tests::{RawPeer, meet};

const SECRET: &str = "Mevrouw B. is bang voor haar ex; adres geheim houden.";

struct World {
    _dir: tempfile::TempDir,
    victim: Device,
    attacker: Device,
    /// Network A: the victim and the attacker.
    a: DocId,
    /// Network B's case: the victim's, shared with B only.
    secret: DocId,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = Device::open(dir.path().join("victim.db")).expect("open");
    let attacker = Device::open(dir.path().join("attacker.db")).expect("open");
    let a = victim.create_network("Wijknetwerk A").expect("network A");
    attacker
        .join(
            &victim
                .invite(a, attacker.member_id(), "Mallory", attacker.device_key())
                .expect("invite"),
        )
        .expect("member");
    let b = victim.create_network("Wijknetwerk B").expect("network B");
    let secret = victim
        .create_case(NewCase {
            subject: "Mevrouw B.".into(),
            networks: vec![b],
            ..NewCase::default()
        })
        .expect("case");
    victim.add_note(secret, observation(SECRET)).expect("note");
    // The attacker holds network A as an honest member would.
    attacker.merge_document(&victim.export_document(a).expect("export")).expect("network A");
    World { _dir: dir, victim, attacker, a, secret }
}

/// The attacker's side of a meeting session with the victim.
type Attack<'a> = RawPeer<'a>;

fn attack(w: &World) -> Attack<'_> {
    RawPeer::new(&w.victim, w.attacker.device_key())
}

/// A first Automerge sync message from a peer that has nothing: "send me everything".
fn ask_for_everything() -> Vec<u8> {
    AutoCommit::new()
        .sync()
        .generate_sync_message(&mut State::new())
        .expect("a first message")
        .encode()
}

#[test]
fn promise_2_a_member_of_a_cannot_read_a_case_of_b_by_naming_it() {
    let w = world();
    let mut attack = attack(&w);
    // The attacker claims to hold the case in network A and asks for its changes.
    let _ = attack.send(Message::Inventory {
        network: *w.a.as_bytes(),
        docs: vec![(*w.secret.as_bytes(), vec![])],
    });
    let ask = Message::Sync {
        doc: *w.secret.as_bytes(),
        message: ask_for_everything(),
        signed: Vec::new(),
    };
    let _ = attack.send(ask);
    let _ = attack.send(Message::Done { seen: 0 });
    assert!(!attack.named(w.secret), "the victim sent the case of B: {}", attack.summary());
}

#[test]
fn promise_2_a_member_of_a_cannot_write_a_case_of_b() {
    let w = world();
    let heads = w.victim.heads(w.secret).expect("heads");
    // Suppose the attacker got an old copy of the case somehow: it writes its own note over it.
    let mut copy = load_exported(&w.victim.export_document(w.secret).expect("export"))
        .with_actor(automerge::ActorId::from(w.attacker.device_key().as_bytes().to_vec()));
    let forged = {
        copy.put(automerge::ROOT, "subject", "Overschreven").expect("put");
        copy.commit();
        // The message a sync with the victim's copy would carry: the attacker's changes.
        let mut theirs = load_exported(&w.victim.export_document(w.secret).expect("export"));
        let (mut mine_state, mut theirs_state) = (State::new(), State::new());
        loop {
            let m = copy.sync().generate_sync_message(&mut mine_state).expect("a message");
            if !m.changes.is_empty() {
                break m.encode();
            }
            theirs.sync().receive_sync_message(&mut theirs_state, m).expect("receive");
            if let Some(r) = theirs.sync().generate_sync_message(&mut theirs_state) {
                copy.sync().receive_sync_message(&mut mine_state, r).expect("receive");
            }
        }
    };
    let mut attack = attack(&w);
    let _ = attack.send(Message::Inventory {
        network: *w.a.as_bytes(),
        docs: vec![(*w.secret.as_bytes(), heads.iter().map(|h| h.0).collect())],
    });
    // Signed by the attacker, as its own change: authorship is not what stops it.
    let signed = sign_fork(&w.attacker, w.secret, &mut copy);
    let result = attack.send(Message::Sync { doc: *w.secret.as_bytes(), message: forged, signed });
    assert!(result.is_err(), "a change to a case of B was taken from a member of A");
    assert_eq!(w.victim.heads(w.secret).expect("heads"), heads, "the case changed");
    assert_eq!(w.victim.case(w.secret).expect("case").subject, "Mevrouw B.");
    assert!(!attack.named(w.secret), "{}", attack.summary());
}

/// A refusal notice is only about data the victim sent: one naming a case of B (as if the
/// victim had sent it) ends the session, and the victim says nothing about the case.
#[test]
fn promise_2_a_refusal_notice_about_a_case_of_b_ends_the_session() {
    let w = world();
    let mut attack = attack(&w);
    let _ = attack.send(Message::Inventory {
        network: *w.a.as_bytes(),
        docs: vec![(*w.secret.as_bytes(), vec![])],
    });
    let result = attack.send(Message::Refused { doc: *w.secret.as_bytes() });
    assert!(matches!(result, Err(SyncError::Protocol(_))), "{result:?}");
    assert!(!attack.named(w.secret), "{}", attack.summary());
}

#[test]
fn promise_2_a_digest_for_a_network_the_victim_does_not_hold_names_nothing() {
    let w = world();
    // A network the victim is not in, that its case is linked to: say the attacker learnt the
    // id of network C from a ticket, and the victim's case is shared with C and B.
    // (Only a device of C shares a case with C: the link comes in the victim's own history,
    // as if a colleague in B and C had made it.)
    let c = w.attacker.create_network("Netwerk C").expect("network C");
    assert!(
        w.victim
            .update_case(
                w.secret,
                nabij_core::model::CaseUpdate { share_with: vec![c], ..Default::default() },
            )
            .is_err(),
        "the victim is not in C: its app cannot share with C"
    );
    let before = w.victim.heads(w.secret).expect("heads");
    let mut fork = load_exported(&w.victim.export_document(w.secret).expect("export"))
        .with_actor(automerge::ActorId::from(w.victim.device_key().as_bytes().to_vec()));
    let nets = fork.get(automerge::ROOT, "networks").expect("get").expect("networks").1;
    fork.put(&nets, c.to_string(), true).expect("share with C");
    fork.commit();
    let signed = sign_fork(&w.victim, w.secret, &mut fork);
    let change = nabij_core::authorship::seal_envelope(&signed, &fork.save_after(&before));
    w.victim.merge_changes(w.secret, &change).expect("the victim's own change");
    let mut attack = attack(&w);
    let _ = attack.send(Message::Digest { network: *c.as_bytes(), digest: [7; 32] });
    let _ = attack.send(Message::Inventory { network: *c.as_bytes(), docs: vec![] });
    let _ = attack.send(Message::Done { seen: 0 });
    assert!(!attack.named(w.secret), "the victim named its case: {}", attack.summary());
    let text = w.victim.case_timeline(w.secret).expect("timeline");
    assert_eq!(text.len(), 1);
}

/// The honest path still works: a member of A sees A's documents, at a meeting, whole.
#[test]
fn promise_2_members_still_get_what_is_shared_with_them() {
    let w = world();
    let shared = w
        .victim
        .create_case(NewCase {
            subject: "Familie K.".into(),
            networks: vec![w.a],
            ..NewCase::default()
        })
        .expect("case");
    let mut sv = Session::new(w.victim.device_key(), w.attacker.device_key(), 0);
    let mut sa = Session::new(w.attacker.device_key(), w.victim.device_key(), 0);
    let (mut v, mut a) = (&w.victim, &w.attacker);
    sa.start(&mut a).expect("start");
    for _ in 0..100 {
        let mut moved = false;
        while let Some(f) = sa.poll_transmit() {
            sv.handle_bytes(&mut v, 0, &f).expect("victim");
            moved = true;
        }
        while let Some(f) = sv.poll_transmit() {
            sa.handle_bytes(&mut a, 0, &f).expect("member");
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert_eq!(w.attacker.case(shared).expect("shared case").subject, "Familie K.");
    assert!(w.attacker.case(w.secret).is_err(), "the case of B stayed home");
}

/// Found by an attacker review: the member of A names a case of B while the victim does not
/// hold it yet, the victim gets it from a colleague in B (another session at the same
/// meeting), then the member sends its fork of an old copy, claiming A, and asks for changes.
#[test]
fn promise_2_a_case_named_before_the_victim_held_it_is_not_merged_or_sent_after() {
    let w = world();
    let colleague = Device::open(w._dir.path().join("colleague.db")).expect("open");
    let b = w.victim.list_networks().expect("networks").into_iter().find(|n| n.id != w.a);
    let b = b.expect("network B").id;
    colleague
        .join(
            &w.victim
                .invite(b, colleague.member_id(), "Cor", colleague.device_key())
                .expect("invite"),
        )
        .expect("member");
    colleague.merge_document(&w.victim.export_document(b).expect("export")).expect("B");
    let x = colleague
        .create_case(NewCase {
            subject: "Meneer V.".into(),
            networks: vec![b],
            ..NewCase::default()
        })
        .expect("case");
    let old = colleague.export_document(x).expect("export");
    colleague.add_note(x, observation(SECRET)).expect("note");
    let mut fork = load_exported(&old)
        .with_actor(automerge::ActorId::from(w.attacker.device_key().as_bytes().to_vec()));
    // The fork claims network A, so on its own it passes the "belongs to A" check.
    let networks = match fork.get(automerge::ROOT, "networks").expect("get") {
        Some((automerge::Value::Object(automerge::ObjType::Map), id)) => id,
        other => panic!("no networks map: {other:?}"),
    };
    fork.put(&networks, w.a.to_string(), true).expect("claim A");
    fork.put(automerge::ROOT, "subject", "Overschreven").expect("put");
    fork.commit();

    let mut attack = attack(&w);
    let _ = attack
        .send(Message::Inventory { network: *w.a.as_bytes(), docs: vec![(*x.as_bytes(), vec![])] });
    meet(&w.victim, &colleague).expect("the honest meeting in B");
    let heads = w.victim.heads(x).expect("the victim holds the case now");
    let signed = sign_fork(&w.attacker, x, &mut fork);
    let _ = attack.send(Message::Document { doc: *x.as_bytes(), bytes: fork.save(), signed });
    let ask =
        Message::Sync { doc: *x.as_bytes(), message: ask_for_everything(), signed: Vec::new() };
    let _ = attack.send(ask);
    let _ = attack.send(Message::Done { seen: 0 });
    assert_eq!(w.victim.heads(x).expect("heads"), heads, "the case was merged with the fork");
    assert_eq!(w.victim.case(x).expect("case").subject, "Meneer V.");
    // Refused aloud, as a device that never held the case would refuse that fork (changes no
    // signature covers): nothing of the case itself went to the attacker.
    assert!(!attack.sent_about(x), "the victim sent the case: {}", attack.summary());
}

/// What the victim answers a member of A that names `doc` in A's inventory, sends `bytes` as
/// that document whole, then asks for its changes: the answers with `doc` written `X`, and how
/// the session took each message.
fn probe(w: &World, doc: DocId, bytes: &[u8]) -> (String, Vec<bool>) {
    let mut attack = attack(w);
    let id = *doc.as_bytes();
    let verdicts = [
        attack.send(Message::Inventory { network: *w.a.as_bytes(), docs: vec![(id, vec![])] }),
        attack.send(Message::Document { doc: id, bytes: bytes.to_vec(), signed: Vec::new() }),
        attack.send(Message::Done { seen: 0 }),
        attack.send(Message::Sync { doc: id, message: ask_for_everything(), signed: Vec::new() }),
        attack.send(Message::Done { seen: 0 }),
    ];
    let said = attack.summary().replace(&doc.to_string(), "X");
    (said, verdicts.iter().map(Result::is_ok).collect())
}

/// Found by review: a member of A that learnt the id of a case of B (a learning point shared
/// with A cites it) sent bytes that do not load as that case. A victim that held the case
/// passed them over in silence; one that did not refused them aloud. So the member learnt which
/// colleagues' phones hold the case: who works on it. Whatever the member sends that a device
/// without the case would refuse, the victim now answers as it would about a document it does
/// not hold, and keeps its case as it was. (Left, documented in ARCHITECTURE.md: a valid
/// forged copy under that id, which a device without the case would take.)
#[test]
fn promise_2_a_member_of_a_cannot_tell_from_a_refusal_whether_the_victim_holds_a_case_of_b() {
    let w = world();
    let own = w
        .attacker
        .create_case(NewCase {
            subject: "Eigen casus".into(),
            networks: vec![w.a],
            ..NewCase::default()
        })
        .expect("the attacker's own case in A");
    w.attacker.add_note(own, observation("een notitie")).expect("note");
    let whole = load_exported(&w.attacker.export_document(own).expect("export")).save();
    let heads = w.victim.heads(w.secret).expect("heads");
    let mut rng = nabij_core::test_utils::Rng::new(20_261_130);
    for seed in 0..40u64 {
        let mut bytes = whole.clone();
        match seed % 4 {
            // Bytes that are no document.
            0 => bytes = (0..rng.below(200)).map(|_| rng.below(256) as u8).collect(),
            // A document cut short.
            1 => bytes.truncate(rng.below(bytes.len() as u64) as usize),
            // A document with a byte changed.
            2 => {
                let i = rng.below(bytes.len() as u64) as usize;
                bytes[i] ^= 1 + rng.below(255) as u8;
            }
            // A whole, valid document of A: another document than it is sent as.
            _ => {}
        }
        let unknown = DocId::from_bytes((rng.next_u64() as u128 | 1 << 127).to_be_bytes());
        let held = probe(&w, w.secret, &bytes);
        let not_held = probe(&w, unknown, &bytes);
        assert_eq!(held, not_held, "seed {seed}: the answers tell the two apart");
        assert_eq!(w.victim.heads(w.secret).expect("heads"), heads, "seed {seed}");
    }
    assert_eq!(w.victim.case(w.secret).expect("case").subject, "Mevrouw B.");
}
