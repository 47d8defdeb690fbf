//! Promise 3 of the threat model, authorship part: every change is attributable to the device
//! that made it, by a signature the receiving device checks before applying. The forger is a
//! member (Mallory) whose modified app writes to a case as another member's device (Vera's
//! actor id), unsigned, or signed with its own key; and an outsider who signs its own change to a
//! case it got hold of. Each is sent through the victim's real meeting session (and through
//! `merge_changes`); each is refused, changes nothing, and history stays true. At a meeting the
//! forged document is refused alone: the peer is told which (nothing more), and the rest of
//! the meeting goes on.

use automerge::{
    ActorId, ROOT, ReadDoc,
    sync::{State, SyncDoc},
    transaction::Transactable,
};
use nabij_core::{
    Device, DocId, Error,
    authorship::{SignedHead, seal_envelope},
    error::DocError,
    sync::{Event, Message},
    test_utils::{load_exported, observation, signing_key},
};
use nabij_tests::{ForgingStore, RawPeer, case_with_notes, meet_stores, open_device};

struct World {
    _dir: tempfile::TempDir,
    anna: std::sync::Arc<Device>,
    mallory: std::sync::Arc<Device>,
    vera: std::sync::Arc<Device>,
    network: DocId,
    case: DocId,
}

/// Anna (admin), Mallory and Vera in one network; a case with notes, held by all.
fn world() -> World {
    let dir = tempfile::tempdir().expect("dir");
    let anna = open_device(dir.path(), "Anna");
    let mallory = open_device(dir.path(), "Mallory");
    let vera = open_device(dir.path(), "Vera");
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    for d in [&mallory, &vera] {
        d.join(
            &anna
                .invite(network, d.member_id(), &d.display_name(), d.device_key())
                .expect("invite"),
        )
        .expect("join");
    }
    let case = case_with_notes(&anna, network, "Mevrouw B.", 2);
    vera.add_note(case, observation("Van Vera.")).ok();
    for d in [&mallory, &vera] {
        d.merge_document(&anna.export_document(network).expect("export")).expect("network");
        d.merge_document(&anna.export_document(case).expect("export")).expect("case");
    }
    World { _dir: dir, anna, mallory, vera, network, case }
}

/// A sync message carrying the changes `fork` has beyond what `to` holds of `case`.
fn sync_message_with_changes(
    to: &Device,
    case: DocId,
    fork: &mut automerge::AutoCommit,
) -> Vec<u8> {
    let mut theirs = load_exported(&to.export_document(case).expect("export"));
    let (mut mine, mut their_state) = (State::new(), State::new());
    loop {
        let m = fork.sync().generate_sync_message(&mut mine).expect("a message");
        if !m.changes.is_empty() {
            return m.encode();
        }
        theirs.sync().receive_sync_message(&mut their_state, m).expect("receive");
        if let Some(r) = theirs.sync().generate_sync_message(&mut their_state) {
            fork.sync().receive_sync_message(&mut mine, r).expect("receive");
        }
    }
}

/// Mallory's session with Anna, up to where Anna lets her sync the case.
fn session_to_sync(w: &World) -> RawPeer<'_> {
    let mut peer = RawPeer::new(&w.anna, w.mallory.device_key());
    let inventory = w.mallory.heads(w.case).expect("heads").iter().map(|h| h.0).collect();
    let _ = peer.send(Message::Inventory {
        network: *w.network.as_bytes(),
        docs: vec![(*w.case.as_bytes(), inventory)],
    });
    peer
}

/// The victim refused `doc` alone: its session is still open, it told the peer which document
/// (the id only) and said nothing else about it afterwards, and it raised one refusal event.
fn refused_alone(
    peer: &mut RawPeer<'_>,
    sent: Result<(), nabij_core::sync::SyncError>,
    doc: DocId,
) {
    assert_eq!(sent, Ok(()), "the session goes on: {}", peer.summary());
    assert!(!peer.session().is_closed());
    let at = peer.answers.iter().position(|m| *m == Message::Refused { doc: *doc.as_bytes() });
    let at = at.unwrap_or_else(|| panic!("the peer was told: {}", peer.summary()));
    let about = |m: &Message| match m {
        Message::Sync { doc: d, .. }
        | Message::Document { doc: d, .. }
        | Message::Refused { doc: d } => d == doc.as_bytes(),
        _ => false,
    };
    assert!(!peer.answers[at + 1..].iter().any(about), "nothing more: {}", peer.summary());
    let refusals: Vec<Event> = peer
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::DocumentRefused { .. } | Event::PeerError(_)))
        .collect();
    let one = matches!(&refusals[..], [Event::DocumentRefused { doc: d, reason }]
        if *d == doc && !reason.is_empty());
    assert!(one, "{refusals:?}");
    assert_eq!(peer.session().documents_refused(), 1);
}

fn texts(d: &Device, case: DocId) -> Vec<String> {
    d.case_timeline(case).expect("timeline").into_iter().map(|n| n.text).collect()
}

#[test]
fn promise_3_a_member_cannot_write_as_another_device() {
    let w = world();
    let before = (w.anna.heads(w.case).expect("heads"), texts(&w.anna, w.case));
    let vera_actor = ActorId::from(w.vera.device_key().as_bytes().to_vec());
    let forge = |sign_as: Option<&ed25519_dalek::SigningKey>| {
        let mut fork = load_exported(&w.mallory.export_document(w.case).expect("export"))
            .with_actor(vera_actor.clone());
        fork.put(ROOT, "subject", "Mevrouw B. (volgens Vera: liegt)").expect("put");
        fork.commit();
        let change = fork.get_last_local_change().expect("the forged change");
        let signed: Vec<SignedHead> = sign_as
            .map(|k| SignedHead::sign(k, w.case, change.seq(), change.hash().0))
            .into_iter()
            .collect();
        (fork, signed)
    };
    let mallory_key = signing_key(&w.mallory);
    for (what, sign_as) in [("unsigned", None), ("signed by Mallory", Some(&mallory_key))] {
        // Through the meeting session.
        let (mut fork, signed) = forge(sign_as);
        let message = sync_message_with_changes(&w.anna, w.case, &mut fork);
        let mut peer = session_to_sync(&w);
        let sent = peer.send(Message::Sync {
            doc: *w.case.as_bytes(),
            message: message.clone(),
            signed: signed.clone(),
        });
        refused_alone(&mut peer, sent, w.case);
        // Sent again (a modified app that does not take no for an answer): dropped unread,
        // never applied, only ever answered with `Done`, and the session can still complete.
        let told = peer.answers.len();
        for _ in 0..3 {
            let again = Message::Sync {
                doc: *w.case.as_bytes(),
                message: message.clone(),
                signed: signed.clone(),
            };
            assert_eq!(peer.send(again), Ok(()), "{what}");
        }
        assert!(
            peer.answers[told..].iter().all(|m| matches!(m, Message::Done { .. })),
            "{what}: {}",
            peer.summary()
        );
        let seen = peer.answers.len() as u64;
        assert_eq!(peer.send(Message::Done { seen }), Ok(()));
        assert!(peer.session().is_complete(), "{what}: {}", peer.summary());
        assert_eq!(peer.session().documents_received(), 0, "{what}");
        // And handed over as changes.
        let (mut fork, signed) = forge(sign_as);
        let heads = w.anna.heads(w.case).expect("heads");
        let bytes = seal_envelope(&signed, &fork.save_after(&heads));
        let merged = w.anna.merge_changes(w.case, &bytes);
        assert!(
            matches!(merged, Err(Error::Merge(DocError::Unauthorized(_)))),
            "{what}: {merged:?}"
        );
        assert_eq!((w.anna.heads(w.case).expect("heads"), texts(&w.anna, w.case)), before);
    }
    // History names only true authors.
    let authors: std::collections::BTreeSet<_> =
        w.anna.history(w.case).expect("history").into_iter().filter_map(|e| e.device).collect();
    assert!(authors.iter().all(|a| *a == w.anna.device_key() || *a == w.vera.device_key()));
}

#[test]
fn promise_3_an_outsider_s_signed_change_is_refused() {
    let w = world();
    let dir = tempfile::tempdir().expect("dir");
    let outsider = open_device(dir.path(), "Olaf");
    let before = w.anna.heads(w.case).expect("heads");
    // Olaf got hold of the case (a lost export, say) and writes to it as himself, signed.
    let mut fork = load_exported(&w.anna.export_document(w.case).expect("export"))
        .with_actor(ActorId::from(outsider.device_key().as_bytes().to_vec()));
    fork.put(ROOT, "subject", "Overschreven").expect("put");
    fork.commit();
    let signed = nabij_core::test_utils::sign_fork(&outsider, w.case, &mut fork);
    let merged = w.anna.merge_changes(w.case, &seal_envelope(&signed, &fork.save_after(&before)));
    assert!(matches!(merged, Err(Error::Merge(DocError::Unauthorized(_)))), "{merged:?}");
    // Mallory forwards it at a meeting, with Olaf's signature: still refused.
    let message = sync_message_with_changes(&w.anna, w.case, &mut fork);
    let mut peer = session_to_sync(&w);
    let sent = peer.send(Message::Sync { doc: *w.case.as_bytes(), message, signed });
    refused_alone(&mut peer, sent, w.case);
    assert_eq!(w.anna.heads(w.case).expect("heads"), before);
    assert_eq!(w.anna.case(w.case).expect("case").subject, "Mevrouw B.");
}

#[test]
fn promise_3_members_changes_still_arrive_signed() {
    let w = world();
    w.vera.add_note(w.case, observation("Vera belt de school.")).expect("note");
    let heads = w.anna.heads(w.case).expect("heads");
    w.anna
        .merge_changes(w.case, &w.vera.changes_since(w.case, &heads).expect("changes"))
        .expect("merge");
    assert!(texts(&w.anna, w.case).iter().any(|t| t == "Vera belt de school."));
}

/// Found by an attacker review: Mallory makes a network of her own for a made-up device F
/// (its genesis is valid by construction), and sends a change by F that adds that network to
/// the case and rewrites it, with F's signature and proof of F's membership. Who may write is
/// judged by the networks the case was shared with before the change: refused.
#[test]
fn promise_3_a_change_cannot_bring_the_network_that_lets_it_in() {
    use nabij_core::{
        authorship::MembershipProof,
        membership::{Change, SignedOp, genesis_network_id},
    };
    let w = world();
    let f = ed25519_dalek::SigningKey::from_bytes(&[77; 32]);
    let (commitment, member) = ([9u8; 32], [7u8; 16]);
    let x = genesis_network_id(&f, &commitment, &member, "Sok");
    let genesis = SignedOp::sign(
        &f,
        x,
        &[],
        Change::Genesis { key_commitment: commitment, member, name: "Sok".into() },
    )
    .expect("genesis");
    let before = w.anna.heads(w.case).expect("heads");
    let mut fork = load_exported(&w.mallory.export_document(w.case).expect("export"))
        .with_actor(ActorId::from(f.verifying_key().to_bytes().to_vec()));
    let nets = fork.get(ROOT, "networks").expect("get").expect("networks").1;
    fork.put(&nets, x.to_string(), true).expect("share with X");
    fork.put(ROOT, "subject", "Mevrouw B. (liegt, volgens niemand)").expect("put");
    fork.commit();
    let c = fork.get_last_local_change().expect("change");
    let mut head = SignedHead::sign(&f, w.case, c.seq(), c.hash().0);
    head.proof =
        Some(MembershipProof { network: *x.as_bytes(), ops: vec![genesis.bytes().to_vec()] });
    let message = sync_message_with_changes(&w.anna, w.case, &mut fork);
    let mut peer = session_to_sync(&w);
    let sent = peer.send(Message::Sync { doc: *w.case.as_bytes(), message, signed: vec![head] });
    refused_alone(&mut peer, sent, w.case);
    assert_eq!(w.anna.heads(w.case).expect("heads"), before);
    assert_eq!(w.anna.case(w.case).expect("case").subject, "Mevrouw B.");
}

/// Found by an attacker review: a case shared with networks A and B; Wim (only in B) writes;
/// Anna (in both) passes it to Vera (only in A), who passes it to Uma (only in A). Each
/// forwarding device passes on the proof of Wim's membership in B that came with his change.
#[test]
fn promise_3_changes_by_another_network_s_member_travel_on_with_their_proof() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, vera, uma, wim] = ["Anna", "Vera", "Uma", "Wim"].map(|n| open_device(dir.path(), n));
    let a = anna.create_network("Wijknetwerk A").expect("A");
    let b = anna.create_network("Wijknetwerk B").expect("B");
    for (net, d) in [(a, &vera), (a, &uma), (b, &wim)] {
        d.join(
            &anna.invite(net, d.member_id(), &d.display_name(), d.device_key()).expect("invite"),
        )
        .expect("join");
    }
    let case = anna
        .create_case(nabij_core::model::NewCase {
            subject: "Gezin over twee wijken".into(),
            networks: vec![a, b],
            ..Default::default()
        })
        .expect("case");
    for (net, d) in [(a, &vera), (a, &uma), (b, &wim)] {
        d.merge_document(&anna.export_document(net).expect("export")).expect("network");
        d.merge_document(&anna.export_document(case).expect("export")).expect("case");
    }
    wim.add_note(case, observation("Wim: de school in B belde.")).expect("note");
    let hop = |from: &Device, to: &Device| {
        let heads = to.heads(case).expect("heads");
        to.merge_changes(case, &from.changes_since(case, &heads).expect("changes"))
    };
    hop(&wim, &anna).expect("Wim to Anna");
    hop(&anna, &vera).expect("Anna to Vera, with proof");
    hop(&vera, &uma).expect("Vera to Uma, passing the proof on");
    assert!(texts(&uma, case).iter().any(|t| t == "Wim: de school in B belde."));
}

/// Found by the last review, closed now: Mallory (a member of the network) makes a device F of
/// her own and a network X that F founds, then writes a brand-new case "by" F, shared with X
/// and with the real network. F's signature holds and X's own operations prove F is a device of
/// X; but no device of the real network shared it there. Sharing into a network takes one of
/// its devices: the case is refused whole, by `merge_document` and at a meeting, and Anna
/// holds nothing of it.
#[test]
fn promise_3_a_made_up_device_cannot_share_a_new_case_into_a_network() {
    let w = world();
    let dir = tempfile::tempdir().expect("dir");
    let f = open_device(dir.path(), "Sok");
    let x = f.create_network("Netwerk X").expect("X");
    let case = f
        .create_case(nabij_core::model::NewCase {
            subject: "Mevrouw B. (volgens niemand)".into(),
            networks: vec![x],
            ..Default::default()
        })
        .expect("case");
    // F's app cannot share with a network it is not in ...
    let share = nabij_core::model::CaseUpdate { share_with: vec![w.network], ..Default::default() };
    assert!(matches!(f.update_case(case, share), Err(Error::NotAllowed(_))));
    // ... so its modified one writes the change itself, and signs it.
    let before = f.heads(case).expect("heads");
    let mut fork = load_exported(&f.export_document(case).expect("export"))
        .with_actor(ActorId::from(f.device_key().as_bytes().to_vec()));
    let nets = fork.get(ROOT, "networks").expect("get").expect("networks").1;
    fork.put(&nets, w.network.to_string(), true).expect("share with the real network");
    fork.commit();
    let signed = nabij_core::test_utils::sign_fork(&f, case, &mut fork);
    f.merge_changes(case, &seal_envelope(&signed, &fork.save_after(&before))).expect("its own");
    // F's export now carries the proof that F is a device of X.
    let exported = f.export_document(case).expect("export");
    let (heads, _) = nabij_core::authorship::open_envelope(&exported).expect("envelope");
    assert!(heads.iter().all(|h| h.proof.is_some()), "F's proof of X travels with it");

    let merged = w.anna.merge_document(&exported);
    assert!(
        matches!(merged, Err(Error::Merge(DocError::Unauthorized(_)))),
        "a case shared into the network by no device of it was taken: {merged:?}"
    );
    assert!(w.anna.case(case).is_err(), "Anna holds nothing of it");

    // At a meeting: Mallory offers it in the network's inventory and sends it whole.
    let mut peer = RawPeer::new(&w.anna, w.mallory.device_key());
    let offered = f.heads(case).expect("heads").iter().map(|h| h.0).collect();
    let _ = peer.send(Message::Inventory {
        network: *w.network.as_bytes(),
        docs: vec![(*case.as_bytes(), offered)],
    });
    let (signed, bytes) = nabij_core::authorship::open_envelope(&exported).expect("envelope");
    let sent =
        peer.send(Message::Document { doc: *case.as_bytes(), bytes: bytes.to_vec(), signed });
    assert!(sent.is_err() || w.anna.case(case).is_err(), "the meeting took it: {sent:?}");
    assert!(w.anna.case(case).is_err(), "Anna holds nothing of it");
    assert!(!w.anna.list_cases(&Default::default()).expect("cases").iter().any(|c| c.id == case));
}

/// One forged document does not stop a meeting: Mallory's modified app syncs a case rewritten
/// as Vera (signed by Mallory) in the same meeting as honest work, through both devices' real
/// sessions; once a case Anna holds (Automerge sync messages), once a case new to Anna (sent
/// whole, with an honest new case in the same batch). Anna refuses the forged case alone,
/// stores nothing of it, takes everything else, and both sessions complete; each reports the
/// refusal.
#[test]
fn promise_3_a_forged_document_is_refused_alone_and_the_meeting_goes_on() {
    for whole in [false, true] {
        one_forged_document_at_a_meeting(whole);
    }
}

fn one_forged_document_at_a_meeting(whole: bool) {
    let w = world();
    // Honest work both ways: a case both hold, written to on both sides, and a case new to
    // Anna (it goes whole).
    let both = case_with_notes(&w.anna, w.network, "Familie K.", 1);
    w.mallory.merge_document(&w.anna.export_document(both).expect("export")).expect("case");
    w.mallory.add_note(both, observation("Mallory: huisbezoek gedaan.")).expect("note");
    w.anna.add_note(both, observation("Anna: de school gebeld.")).expect("note");
    let new = case_with_notes(&w.mallory, w.network, "Meneer J.", 2);
    // The forged change: a case rewritten as Vera, signed by Mallory.
    let forged = if whole { case_with_notes(&w.mallory, w.network, "Gezin Z.", 1) } else { w.case };
    let before = w.anna.heads(forged).ok().map(|h| (h, texts(&w.anna, forged)));
    let mut fork = load_exported(&w.mallory.export_document(forged).expect("export"))
        .with_actor(ActorId::from(w.vera.device_key().as_bytes().to_vec()));
    fork.put(ROOT, "subject", "Gezin (volgens Vera: liegt)").expect("put");
    fork.commit();
    let change = fork.get_last_local_change().expect("the forged change");
    let signed =
        vec![SignedHead::sign(&signing_key(&w.mallory), forged, change.seq(), change.hash().0)];
    let mut forger = ForgingStore::new(&w.mallory, forged, fork, signed);
    let mut anna = &*w.anna;

    let (mut at_mallory, mut at_anna) =
        meet_stores((w.mallory.device_key(), &mut forger), (w.anna.device_key(), &mut anna))
            .expect("the meeting goes on past the forged case");

    assert!(at_anna.is_complete(), "Anna's session completes (whole: {whole})");
    assert!(at_mallory.is_complete(), "Mallory's session completes (whole: {whole})");
    // Nothing of the forged case was stored.
    match before {
        Some(before) => {
            assert_eq!((w.anna.heads(forged).expect("heads"), texts(&w.anna, forged)), before);
            assert_eq!(w.anna.case(forged).expect("case").subject, "Mevrouw B.");
        }
        None => assert!(w.anna.kind_of(forged).is_err(), "the forged new case was not stored"),
    }
    // Everything else arrived, both ways.
    assert_eq!(w.anna.heads(new).expect("the new case"), w.mallory.heads(new).expect("heads"));
    assert_eq!(w.anna.heads(both).expect("heads"), w.mallory.heads(both).expect("heads"));
    assert!(texts(&w.anna, both).iter().any(|t| t == "Mallory: huisbezoek gedaan."));
    assert!(texts(&w.mallory, both).iter().any(|t| t == "Anna: de school gebeld."));
    // Each side reports it: Anna why (for her log), Mallory only which.
    assert_eq!((at_anna.documents_refused(), at_anna.documents_refused_by_peer()), (1, 0));
    assert_eq!((at_mallory.documents_refused(), at_mallory.documents_refused_by_peer()), (0, 1));
    let events = |s: &mut nabij_core::sync::Session| -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event())
            .filter(|e| {
                matches!(
                    e,
                    Event::DocumentRefused { .. }
                        | Event::DocumentRefusedByPeer(_)
                        | Event::PeerError(_)
                )
            })
            .collect()
    };
    let at_anna = events(&mut at_anna);
    assert!(
        matches!(&at_anna[..], [Event::DocumentRefused { doc, reason }]
            if *doc == forged && reason.contains("signature")),
        "{at_anna:?}"
    );
    assert_eq!(events(&mut at_mallory), vec![Event::DocumentRefusedByPeer(forged)]);
}
