//! Attacker review of issue 10's latest work (the relay resolving signed membership, names off
//! the relay, sharing into a network taking one of its devices), played through the real code
//! paths: meeting sessions (`meet`, `RawPeer`), the relay in process (`sync_once`, `RawClient`)
//! and the merge calls.
//!
//! EVERY TEST IN THIS FILE STATES THE PROMISE AS IT SHOULD HOLD. A test whose name starts with
//! `attack_` played a break the review found on commit d7320cf (it failed there, each was
//! watched failing) and is fixed now; it guards against the break coming back. A test whose
//! name starts with `held_` is an attack that failed (the defence held). `rule_` holds a
//! documented rule the review questioned. One break the review found is open, in issue 12 (an
//! outsider can list a victim in rosters until the victim's relay answer no longer fits a
//! frame): its test is in that note and this file's history. What the review measured
//! of a stranger's operations at the relay is a benchmark now
//! (`cargo bench -p nabij-relay-proto --bench membership`).
//!
//! The report with each break (attacker, steps, severity, suggested fix) is in the attack
//! review handed back to the session that asked for it; each test's doc comment repeats the
//! essentials.

use automerge::{ActorId, ROOT, ReadDoc, ScalarValue, transaction::Transactable};
use nabij_core::{
    Device, DocId, Error,
    authorship::seal_envelope,
    error::DocError,
    membership::{self, Change, SignedOp, genesis_network_id},
    model::{CaseUpdate, NewCase, NewLearningPoint, NewMeeting, Reason, Role},
    relay::{Refusal, RelayStore},
    sync::Message,
    test_utils::{load_exported, observation, sign_fork, signing_key},
};
use nabij_relay_proto::{
    roster::{Roster, RosterDevice},
    wire::{Request, Response},
};
use nabij_sync_server::Limits;
use nabij_tests::{
    RawPeer,
    attack::{case_in, frame, hand, hop, invite, ops_in, texts},
    meet, open_device,
    relay::{InProcessRelay, RawClient, sync_once},
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// What a member's modified app does to share a case into `network` although the local API
/// refuses: write the key into the case's `networks` map itself, sign its own change, and merge
/// it into its own store (which holds no copy of `network`, so it does not judge it).
fn forge_sharing(d: &Device, case: DocId, network: DocId) {
    let before = d.heads(case).expect("heads");
    let mut fork = load_exported(&d.export_document(case).expect("export"))
        .with_actor(ActorId::from(d.device_key().as_bytes().to_vec()));
    let nets = fork.get(ROOT, "networks").expect("get").expect("networks").1;
    fork.put(&nets, network.to_string(), true).expect("put");
    fork.commit();
    let signed = sign_fork(d, case, &mut fork);
    d.merge_changes(case, &seal_envelope(&signed, &fork.save_after(&before)))
        .expect("its own device takes it: it does not hold that network");
}

/// Registers `roster` with the relay as the device with `secret`; the relay's answer.
async fn register(
    relay: &InProcessRelay,
    secret: &ed25519_dalek::SigningKey,
    roster: Roster,
) -> Response {
    let signed = roster.sign(secret).expect("sign");
    let mut raw = RawClient::connect(&relay.address, relay.key, secret.to_bytes()).await;
    raw.send_raw(&frame(&Request::Register { roster: signed })).await;
    let mut a = raw.answers(1).await;
    raw.close();
    a.pop().expect("an answer")
}

/// What the relay answers `device` (by its secret) to a pull of `relay_id` from the start.
async fn pull_as(relay: &InProcessRelay, secret: [u8; 32], relay_id: [u8; 32]) -> Response {
    let mut raw = RawClient::connect(&relay.address, relay.key, secret).await;
    raw.send_raw(&frame(&Request::Pull { network: relay_id, after: 0, max_bytes: 1 << 20 })).await;
    let mut a = raw.answers(1).await;
    raw.close();
    a.pop().expect("an answer")
}

/// A response, briefly (blobs by count, not bytes).
fn short(r: &Response) -> String {
    match r {
        Response::Blobs { blobs, next, .. } => {
            format!("Blobs {{ {} blobs, next {next} }}", blobs.len())
        }
        Response::Networks { rosters } => format!("Networks {{ {} rosters }}", rosters.len()),
        other => format!("{other:?}"),
    }
}

/// The roster `d` would register for `network` (its own view), unsigned.
fn own_roster(d: &Device, relay_key: [u8; 32], network: DocId) -> Roster {
    let mut store = nabij_core::DeviceRelay::new(d, relay_key);
    store
        .local_networks()
        .expect("its view")
        .into_iter()
        .find(|(a, _)| a.network == network)
        .expect("the network")
        .1
}

/// The roster the relay holds for `relay_id`, as listed to `d`.
async fn roster_at_relay(d: &Device, relay: &InProcessRelay, relay_id: [u8; 32]) -> Roster {
    let secret = signing_key(d).to_bytes();
    let mut raw = RawClient::connect(&relay.address, relay.key, secret).await;
    raw.send_raw(&frame(&Request::Networks)).await;
    let answer = raw.answers(1).await;
    raw.close();
    match &answer[..] {
        [Response::Networks { rosters }] => rosters
            .iter()
            .filter_map(|r| r.verify().ok())
            .find(|r| r.network == relay_id)
            .expect("the network's roster"),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Relay
// ---------------------------------------------------------------------------------------------

/// FOUND AND FIXED (promise 5 at the relay; promise 4, a member poisons the roster). Attacker: a member
/// gone bad (plain member) whose device reaches the relay before the network's admins do (a
/// network that met in person first, or a relay newly set up).
///
/// The relay keeps every decodable operation of the network a roster brings (grow-only, at most
/// 4,096), not only those that can count. Bram registers the network's first roster (any device
/// of the membership may) with its real operations plus junk operations he signs himself up to
/// the cap. Nothing looks wrong: everyone syncs. But from then on no roster that brings a new
/// operation can be registered: the admin's removal of a lost phone never reaches the relay,
/// and the phone keeps pulling (and pushing) there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_member_stuffs_the_relay_s_operations_and_a_removal_never_reaches_it() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let anna = open_device(dir.path(), "Anna");
    let bram = open_device(dir.path(), "Bram");
    let kees = open_device(dir.path(), "Kees");
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &bram);
    invite(&anna, network, &kees);
    let case = case_in(&anna, vec![network], "Mevrouw B.");
    for d in [&bram, &kees] {
        hand(&anna, d, network);
        hand(&anna, d, case);
    }
    // Bram, first at the relay: his real roster, plus junk operations up to the cap.
    let bram_key = signing_key(&bram);
    let mut roster = own_roster(&bram, relay.key, network);
    let relay_id = roster.network;
    let mut n = 0u32;
    while roster.ops.len() < membership::MAX_OPS {
        let mut member = [0u8; 16];
        member[..4].copy_from_slice(&n.to_le_bytes());
        let junk = SignedOp::sign(
            &bram_key,
            network,
            &[[0xAB; 32]],
            Change::AddMember { member, name: String::new(), role: Role::Admin },
        )
        .expect("sign");
        roster.ops.push(junk.blinded().to_vec());
        n += 1;
    }
    roster.issued_at = 1;
    let answer = register(&relay, &bram_key, roster).await;
    assert!(matches!(answer, Response::Registered { .. }), "{answer:?}");

    // Everyone syncs as usual.
    for d in [&anna, &bram, &kees] {
        sync_once(d, &relay).await.expect("sync");
    }
    // Kees's phone is lost; Anna removes it and syncs.
    anna.remove_device(network, kees.device_key(), Reason::Lost).expect("remove");
    let r = sync_once(&anna, &relay).await.expect("Anna");
    let refusals = r.report.refusals.clone();
    let pulled = pull_as(&relay, signing_key(&kees).to_bytes(), relay_id).await;
    assert!(
        matches!(pulled, Response::Refused { reason: Refusal::NotOnRoster, .. }),
        "the removed phone still pulls at the relay ({}); Anna's roster was refused: \
         {refusals:?}",
        short(&pulled)
    );
    relay.stop().await;
}

/// FOUND AND FIXED (promise 5 at the relay). Attacker: an admin gone bad (a promoted colleague's phone
/// with malware), not yet suspected.
///
/// Xavier registers the next roster in line, honest in every way but its `known` counter
/// (u64::MAX). Devices trust the counter of a roster signed by a current admin and never
/// replace a roster that claims to have seen more: no honest admin registers again while Xavier
/// is an admin. So the removal of a lost phone never reaches the relay; the phone keeps its
/// place there. (The relay now resolves the membership from the union of operations, so the
/// counter protects nothing any more.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_an_admin_freezes_the_relay_roster_with_its_seen_counter() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let anna = open_device(dir.path(), "Anna");
    let xavier = open_device(dir.path(), "Xavier");
    let kees = open_device(dir.path(), "Kees");
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &xavier);
    invite(&anna, network, &kees);
    anna.set_role(network, xavier.member_id(), Role::Admin).expect("promote");
    case_in(&anna, vec![network], "Mevrouw B.");
    sync_once(&anna, &relay).await.expect("anna");
    for d in [&xavier, &kees] {
        sync_once(d, &relay).await.expect("member");
    }
    let relay_id = anna.relay_network_id(network).expect("id").expect("held");
    let at_relay = roster_at_relay(&xavier, &relay, relay_id).await;
    let mut roster = own_roster(&xavier, relay.key, network);
    roster.issued_at = at_relay.issued_at + 1;
    // (Rosters carried a "seen" count an admin could set to u64::MAX; it is gone: no count is believed.)
    let answer = register(&relay, &signing_key(&xavier), roster).await;
    assert!(matches!(answer, Response::Registered { .. }), "an admin registers: {answer:?}");

    anna.remove_device(network, kees.device_key(), Reason::Lost).expect("remove");
    let r = sync_once(&anna, &relay).await.expect("anna");
    let pulled = pull_as(&relay, signing_key(&kees).to_bytes(), relay_id).await;
    assert!(
        matches!(pulled, Response::Refused { reason: Refusal::NotOnRoster, .. }),
        "the removal never reached the relay (Anna registered {} rosters): the lost \
         phone still pulls: {}",
        r.report.rosters_registered,
        short(&pulled)
    );
    relay.stop().await;
}

/// FOUND AND FIXED (promise 5 the wrong way round: a device still in is wiped; promise 7, the relay
/// replays undetected). Attacker: none needed (a race in ordinary use), or the relay operator
/// (replays a roster it held before).
///
/// Vera's phone is reported lost; Anna removes it and syncs (the relay's roster lists it as
/// removed, with the signed removal). The phone turns up; Anna adds it again, and hands Vera
/// the network at the office. Vera writes a note, then syncs with the relay before Anna does
/// (or the relay serves the old roster): the roster lists her as removed, the removal is signed
/// by an admin, and her device wipes the network, her unsynced note with it, and the
/// invitation (she cannot take the network back without a new one). A removal is taken as
/// proof without checking that it still counts in the membership the device holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_stale_roster_makes_a_re_added_phone_wipe_the_network() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let anna = open_device(dir.path(), "Anna");
    let vera = open_device(dir.path(), "Vera");
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &vera);
    let case = case_in(&anna, vec![network], "Mevrouw B.");
    sync_once(&anna, &relay).await.expect("anna");
    sync_once(&vera, &relay).await.expect("vera");
    assert!(vera.case(case).is_ok());

    anna.remove_device(network, vera.device_key(), Reason::Lost).expect("remove");
    sync_once(&anna, &relay).await.expect("anna registers the removal");
    // Found again: Anna adds the phone back, and they meet at the office.
    anna.add_member(network, vera.member_id(), "Vera", vera.device_key()).expect("add again");
    meet(&anna, &vera).expect("they meet");
    assert!(
        vera.network(network)
            .expect("network")
            .members
            .iter()
            .any(|m| m.devices.contains(&vera.device_key())),
        "Vera is in the network again, by her own copy"
    );
    let unsynced = "Vera, nog niet gesynchroniseerd: moeder belde over de huur";
    vera.add_note(case, observation(unsynced)).expect("note");

    let r = sync_once(&vera, &relay).await.expect("vera's relay sync");
    assert!(
        r.report.wiped.is_empty() && texts(&vera, case).iter().any(|t| t == unsynced),
        "a device that is in the network wiped it (and its unsynced note) on an old \
         roster's removal: {:?}",
        r.report
    );
    relay.stop().await;
}

/// FOUND AND FIXED (the known gap "a network's genesis at the relay is the first registered one", worse
/// than stated: not only new networks). Attacker: a member gone bad (any member knows the relay
/// id), after the relay is upgraded in place from schema 1.
///
/// A schema-1 relay kept each network's roster without operations. After the upgrade, the
/// first roster registered for such a network decides its genesis at the relay, and an
/// existing roster is replaced by "an admin" of the membership the new roster's own operations
/// resolve to. Mallory registers the next roster with a genesis of her own committing to the
/// network's relay id: she is its only admin, it is taken, and from then on Anna and every
/// honest device of the network are refused at that relay, for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_after_the_relay_upgrade_a_member_takes_an_existing_network_over() {
    let dir = tempfile::tempdir().expect("dir");
    let anna = open_device(dir.path(), "Anna");
    let mallory = open_device(dir.path(), "Mallory");
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &mallory);
    let case = case_in(&anna, vec![network], "Mevrouw B.");
    hand(&anna, &mallory, network);
    hand(&anna, &mallory, case);
    // The roster a schema-1 relay held for the network, registered by Anna before operations.
    let relay_dir = dir.path().join("relay");
    std::fs::create_dir_all(&relay_dir).expect("relay dir");
    let mut old = own_roster(&anna, [0; 32], network);
    old.ops.clear();
    old.issued_at = 1;
    let relay_id = old.network;
    let listed: Vec<[u8; 32]> = old.devices.iter().map(|d| d.key).collect();
    let signed = old.sign(&signing_key(&anna)).expect("sign");
    {
        let c = rusqlite::Connection::open(relay_dir.join("relay.db")).expect("open");
        c.execute_batch(
            "CREATE TABLE rosters (network BLOB PRIMARY KEY, issued_at INTEGER NOT NULL,
                 body BLOB NOT NULL, signer BLOB NOT NULL, signature BLOB NOT NULL) WITHOUT ROWID;
             CREATE TABLE roster_devices (device BLOB NOT NULL, network BLOB NOT NULL,
                 PRIMARY KEY (device, network)) WITHOUT ROWID;
             CREATE TABLE blobs (seq INTEGER PRIMARY KEY, network BLOB NOT NULL,
                 doc BLOB NOT NULL, id BLOB NOT NULL, bytes BLOB NOT NULL);
             CREATE TABLE usage (network BLOB PRIMARY KEY, bytes INTEGER NOT NULL) WITHOUT ROWID;
             PRAGMA application_id = 1312967250; PRAGMA user_version = 1;",
        )
        .expect("schema 1");
        c.execute(
            "INSERT INTO rosters VALUES (?1, 1, ?2, ?3, ?4)",
            rusqlite::params![&relay_id[..], signed.body, &signed.signer[..], signed.signature],
        )
        .expect("roster");
        for k in &listed {
            c.execute(
                "INSERT INTO roster_devices VALUES (?1, ?2)",
                rusqlite::params![&k[..], &relay_id[..]],
            )
            .expect("device");
        }
    }
    let relay = InProcessRelay::start(&relay_dir, Limits::default()).await;

    // Mallory, first after the upgrade: a genesis of her own under the network's relay id.
    let key = signing_key(&mallory);
    let member = *mallory.member_id().as_bytes();
    let id = genesis_network_id(&key, &relay_id, &member, "M");
    let g = SignedOp::sign(
        &key,
        id,
        &[],
        Change::Genesis { key_commitment: relay_id, member, name: "M".into() },
    )
    .expect("genesis");
    let takeover = Roster {
        network: relay_id,
        issued_at: 2,
        devices: vec![RosterDevice {
            key: *mallory.device_key().as_bytes(),
            sealed: Vec::new(),
            admin: true,
            removed: false,
        }],
        removals: Vec::new(),
        ops: vec![g.blinded().to_vec()],
    };
    let answer = register(&relay, &key, takeover).await;

    let r = sync_once(&anna, &relay).await.expect("Anna's sync");
    assert!(
        r.report.refusals.is_empty(),
        "Mallory took the network over at the upgraded relay ({answer:?}); Anna is \
         refused: {:?}",
        r.report.refusals
    );
    relay.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Meetings and merges
// ---------------------------------------------------------------------------------------------

/// FOUND AND FIXED (promise 1: "it cannot plant a network or document on a device"; promise 2).
/// Attacker: an outsider the victim's device dials (its own ticket shown at the buurthuis, the
/// connecting side pins whatever key a ticket names), or a member gone bad of any network the
/// victim shares with it.
///
/// Vera accepted an invitation to network N and is waiting for it. A device that accepted a
/// network it does not hold yet answers a digest for it from anyone, and takes whole documents
/// offered under it. Olaf sends a case that says it is shared with N and with X, a network Olaf
/// made himself: the sharing check passes over both (neither is held here), and X's own
/// operations prove Olaf may write. Vera's device stores Olaf's case; when N arrives it is one
/// of N's documents on her phone (and she hands it to N's members, who refuse it).
#[test]
fn attack_an_outsider_plants_a_case_on_a_device_waiting_for_its_network() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, vera, olaf] = ["Anna", "Vera", "Olaf"].map(|n| open_device(dir.path(), n));
    let n = anna.create_network("Wijknetwerk N").expect("N");
    invite(&anna, n, &vera);
    assert!(vera.document_ids().expect("ids").is_empty(), "Vera waits for N");
    // Olaf's own network X, and a case of his shared with X and (forged) with N.
    let x = olaf.create_network("Olafs netwerk").expect("X");
    let case = case_in(&olaf, vec![x], "Mevrouw B. (bel dit nummer: 06-12345678)");
    forge_sharing(&olaf, case, n);
    let (signed, bytes) =
        nabij_core::authorship::open_envelope(&olaf.export_document(case).expect("export"))
            .map(|(s, b)| (s, b.to_vec()))
            .expect("envelope");
    assert!(signed.iter().any(|h| h.proof.is_some()), "Olaf's head carries X's proof");

    let mut peer = RawPeer::new(&vera, olaf.device_key());
    let _ = peer.send(Message::Digest { network: *n.as_bytes(), digest: [0; 32] });
    let heads: Vec<[u8; 32]> = olaf.heads(case).expect("heads").iter().map(|h| h.0).collect();
    let _ = peer
        .send(Message::Inventory { network: *n.as_bytes(), docs: vec![(*case.as_bytes(), heads)] });
    let sent = peer.send(Message::Document { doc: *case.as_bytes(), bytes, signed });
    assert!(
        vera.case(case).is_err(),
        "Olaf planted a case on Vera's device ({sent:?}; {})",
        peer.summary()
    );
}

/// FOUND AND FIXED (promise 5 the wrong way round; promise 4, a member breaks another's sync). Attacker:
/// a member gone bad (plain member) at a meeting.
///
/// As above, Vera's phone was removed and added again. Bram holds the network's operations,
/// the old removal among them. His modified app sends it to Vera in a `Removed` frame: her
/// session applies it (signed by a current admin, removing her device) and her device wipes
/// the network, the case and her unsynced note, and forgets the invitation.
#[test]
fn attack_a_member_makes_a_re_added_phone_wipe_the_network_at_a_meeting() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, bram, vera] = ["Anna", "Bram", "Vera"].map(|n| open_device(dir.path(), n));
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &bram);
    invite(&anna, network, &vera);
    let case = case_in(&anna, vec![network], "Mevrouw B.");
    for d in [&bram, &vera] {
        hand(&anna, d, network);
        hand(&anna, d, case);
    }
    anna.remove_device(network, vera.device_key(), Reason::Lost).expect("remove");
    anna.add_member(network, vera.member_id(), "Vera", vera.device_key()).expect("add again");
    meet(&anna, &vera).expect("Vera gets the network back at the office");
    meet(&anna, &bram).expect("Bram is up to date");
    let unsynced = "Vera, nog niet gesynchroniseerd: de school belde";
    vera.add_note(case, observation(unsynced)).expect("note");

    let removal = ops_in(&bram, network)
        .into_iter()
        .find(|b| {
            SignedOp::decode(b).is_ok_and(|o| {
                matches!(o.change(), Change::RemoveDevice { device, .. }
                    if device == vera.device_key().as_bytes())
            })
        })
        .expect("the old removal, in the network document");
    let mut peer = RawPeer::new(&vera, bram.device_key());
    let sent = peer.send(Message::Removed { network: *network.as_bytes(), ops: vec![removal] });
    assert!(
        vera.network(network).is_ok() && texts(&vera, case).iter().any(|t| t == unsynced),
        "Bram made Vera's device (in the network) wipe it: {sent:?}; {}",
        peer.summary()
    );
}

/// DOCUMENTED RULE, not a break (ARCHITECTURE.md, "Changes a removed device makes after its
/// removal"). The review found that Anna, who removed Kees's phone, takes the note and the case
/// Kees wrote after his removal once Bram (who had not seen the removal) carries them to her.
/// Devices have no trusted clock, so "made after the removal" cannot be told from "made before
/// and carried late"; refusing them would leave Bram holding changes Anna refuses, and the
/// case would split between them for good. So they are taken, everywhere alike, and history
/// names Kees's device as their author. This test holds that rule: both converge, and the
/// note is attributed to Kees, not to Bram.
#[test]
fn rule_a_removed_phone_s_late_changes_carried_by_a_colleague_converge_and_name_it() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, bram, kees] = ["Anna", "Bram", "Kees"].map(|n| open_device(dir.path(), n));
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &bram);
    invite(&anna, network, &kees);
    let case = case_in(&anna, vec![network], "Mevrouw B.");
    for d in [&bram, &kees] {
        hand(&anna, d, network);
        hand(&anna, d, case);
    }
    anna.remove_device(network, kees.device_key(), Reason::Compromised).expect("remove");
    let after = "Kees, na zijn verwijdering: mevrouw B. liegt over de schulden";
    kees.add_note(case, observation(after)).expect("note");
    let planted = case_in(&kees, vec![network], "Nieuwe casus van Kees, na verwijdering");
    meet(&kees, &bram).expect("Bram has not seen the removal");
    meet(&bram, &anna).expect("a meeting");
    meet(&bram, &anna).expect("a second meeting changes nothing");
    assert_eq!(anna.heads(case).expect("heads"), bram.heads(case).expect("heads"), "converged");
    assert_eq!(anna.heads(planted).expect("held"), bram.heads(planted).expect("held"));
    let note = anna
        .case_timeline(case)
        .expect("timeline")
        .into_iter()
        .find(|n| n.text == after)
        .expect("the note is there");
    assert_eq!(note.author.device, kees.device_key(), "history names the removed phone");
}

/// FOUND AND FIXED (promise 3: a change by a device that was never a member is refused; promise 5).
/// Attacker: a removed admin (a colleague's phone, promoted, then removed as compromised).
///
/// A membership proof that comes with a signed head is believed even for a network the
/// receiver holds, and it is resolved alone: a subset of the network's operations that leaves
/// out the removal. Xavier, removed, signs operations "from before" his removal (parents: the
/// heads he held then) adding a made-up device F, and F writes to a case of the network. Yara
/// holds the network and Xavier's removal; in her full set of operations Xavier's backdated
/// ones are concurrent with his removal and do not count. Yet she takes F's change, on the
/// proof alone, and her history shows F as a writer. (Delivered here as changes, as a file
/// import; any carrier that does not hold the network passes proofs on as they came.)
#[test]
fn attack_a_removed_admin_mints_devices_with_a_backdated_proof() {
    use nabij_core::authorship::{MembershipProof, SignedHead};
    let dir = tempfile::tempdir().expect("dir");
    let [anna, xavier, yara] = ["Anna", "Xavier", "Yara"].map(|n| open_device(dir.path(), n));
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &xavier);
    invite(&anna, network, &yara);
    anna.set_role(network, xavier.member_id(), Role::Admin).expect("promote");
    let case = case_in(&anna, vec![network], "Mevrouw B.");
    for d in [&xavier, &yara] {
        hand(&anna, d, network);
        hand(&anna, d, case);
    }
    // What Xavier holds while still an admin.
    let old_bytes = ops_in(&xavier, network);
    let old: Vec<SignedOp> = old_bytes.iter().filter_map(|b| SignedOp::decode(b).ok()).collect();
    let heads = membership::resolve_network(network, None, &old).heads;
    // Removed; Yara gets the removal.
    anna.remove_member(network, xavier.member_id(), Reason::Compromised).expect("remove");
    hop(&anna, &yara, network).expect("Yara holds the removal");
    assert!(yara.network(network).expect("n").members.iter().all(|m| m.id != xavier.member_id()));

    // Xavier, after his removal, backdates a made-up device F into the network.
    let xk = signing_key(&xavier);
    let f = ed25519_dalek::SigningKey::from_bytes(&[0xF0; 32]);
    let fm = [0xF1; 16];
    let add = SignedOp::sign(
        &xk,
        network,
        &heads,
        Change::AddMember { member: fm, name: "Fenna".into(), role: Role::Member },
    )
    .expect("sign");
    let dev = SignedOp::sign(
        &xk,
        network,
        &[add.id()],
        Change::AddDevice { member: fm, device: f.verifying_key().to_bytes() },
    )
    .expect("sign");
    let mut proof_ops = old_bytes.clone();
    proof_ops.extend([add.bytes().to_vec(), dev.bytes().to_vec()]);
    let before = yara.heads(case).expect("heads");
    let mut fork = load_exported(&xavier.export_document(case).expect("export"))
        .with_actor(ActorId::from(f.verifying_key().to_bytes().to_vec()));
    fork.put(ROOT, "subject", "Mevrouw B. (dossier gesloten, volgens Fenna)").expect("put");
    fork.commit();
    let c = fork.get_last_local_change().expect("change");
    let mut head = SignedHead::sign(&f, case, c.seq(), c.hash().0);
    head.proof = Some(MembershipProof { network: *network.as_bytes(), ops: proof_ops });
    let merged = yara.merge_changes(case, &seal_envelope(&[head], &fork.save_after(&before)));
    assert!(
        matches!(merged, Err(Error::Merge(DocError::Unauthorized(_)))),
        "Yara took a change by a device a removed admin made up: {merged:?}; subject now \
         {:?}",
        yara.case(case).map(|c| c.subject)
    );
}

/// FOUND AND FIXED (the rule "sharing into a network takes one of its devices"; promise 2). Attacker: a
/// member gone bad of network A, not in B.
///
/// The check is per batch of changes: one author among them of B's devices vouches for the
/// whole batch. So Mark (A only) shares an A-only case into B as soon as any device of B (Vera,
/// in A and B) has ever written to it: Xander (A and B) takes it from Mark at a meeting, and
/// hands it to Yara (B only), who was never meant to see it. Without Vera's note in the case,
/// the same forged sharing is refused (the control at the end).
#[test]
fn attack_sharing_into_a_network_rides_on_a_change_by_one_of_its_devices() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, vera, mark, xander, yara] =
        ["Anna", "Vera", "Mark", "Xander", "Yara"].map(|n| open_device(dir.path(), n));
    let a = anna.create_network("Jeugdnetwerk A").expect("A");
    let b = anna.create_network("Schuldhulp B").expect("B");
    let members = [(a, &vera), (b, &vera), (a, &mark), (a, &xander), (b, &xander), (b, &yara)];
    for (n, d) in members {
        invite(&anna, n, d);
    }
    for (n, d) in members {
        hand(&anna, d, n);
    }
    let case = case_in(&mark, vec![a], "Kind K. (alleen jeugdnetwerk A)");
    mark.add_note(case, observation("Zorgen over de thuissituatie; alleen voor A.")).expect("note");
    hand(&mark, &vera, case);
    vera.add_note(case, observation("Vera: gesprek met moeder.")).expect("note");
    hop(&vera, &mark, case).expect("Mark takes Vera's note");
    // The local API refuses; Mark's modified app writes the sharing itself.
    let refused = mark.update_case(case, CaseUpdate { share_with: vec![b], ..Default::default() });
    assert!(matches!(refused, Err(Error::NotAllowed(_))), "{refused:?}");
    forge_sharing(&mark, case, b);

    let _ = meet(&mark, &xander);
    let _ = meet(&xander, &yara);
    let leaked = yara.case(case).is_ok();

    // Control: a case no device of B ever wrote to, forged the same way, is refused.
    let lone = case_in(&mark, vec![a], "Meneer L. (alleen A)");
    forge_sharing(&mark, lone, b);
    let control = xander.merge_document(&mark.export_document(lone).expect("export"));
    assert!(matches!(control, Err(Error::Merge(DocError::Unauthorized(_)))), "{control:?}");

    assert!(!leaked, "Yara (B only) holds an A-only case Mark (not in B) shared into B");
}

/// FOUND AND FIXED (known gap "one refused document ends the whole meeting session", worse than
/// stated; promise 4: "no member can poison shared structures so that others' sync fails").
/// Attacker: a member gone bad of network A.
///
/// Mark forges a case of A to be shared with E too (a network he is not in; its id is on any
/// QR code). Xander (A only) takes it: E is not his to judge. From then on every meeting of
/// Xander with Yara (A and E) ends in a refusal, each time, before the rest of what they share
/// is exchanged: two honest colleagues can no longer meet, and neither can remove the cause.
#[test]
fn attack_a_member_plants_a_case_that_stops_two_colleagues_meeting() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, mark, xander, yara] =
        ["Anna", "Mark", "Xander", "Yara"].map(|n| open_device(dir.path(), n));
    let a = anna.create_network("Wijknetwerk A").expect("A");
    let e = anna.create_network("Jeugdnetwerk E").expect("E");
    let members = [(a, &mark), (a, &xander), (a, &yara), (e, &yara)];
    for (n, d) in members {
        invite(&anna, n, d);
    }
    for (n, d) in members {
        hand(&anna, d, n);
    }
    meet(&xander, &yara).expect("before: they meet");
    let poison = case_in(&mark, vec![a], "Meneer P.");
    forge_sharing(&mark, poison, e);
    meet(&mark, &xander).expect("Xander takes it: E is not his to judge");

    let legit = case_in(&xander, vec![a], "Mevrouw D.");
    xander.add_note(legit, observation("Huisbezoek gedaan.")).expect("note");
    let first = meet(&xander, &yara);
    let second = meet(&xander, &yara);
    assert!(
        first.is_ok() && second.is_ok() && yara.case(legit).is_ok(),
        "Xander and Yara can no longer meet: {first:?} / {second:?}"
    );
}

/// FOUND AND FIXED (promise 2: a member reads only what is shared with networks it is in; and a door to
/// the relay squat the known gap describes). Attacker: a member gone bad of network A, not in B.
///
/// A case shared with A and B travels with proofs of its authors' membership: the network's
/// operations as stored, names disclosed. Vera (A only) receives B's whole membership: every
/// member's name, member id, device key and role, and B's genesis with its key commitment,
/// which is B's relay id (what a squatter needs to found another network under it at the
/// relay before B's devices register). The proof needs none of the names (the relay resolves
/// blinded operations), and the relay id could be left out of what a non-member gets.
#[test]
fn attack_membership_proofs_hand_another_network_s_names_and_relay_id_to_non_members() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, vera, wim] =
        ["Anna", "Vera", "Wimke Zwaanswijk"].map(|n| open_device(dir.path(), n));
    let a = anna.create_network("Wijknetwerk A").expect("A");
    let b = anna.create_network("Schuldhulp B").expect("B");
    invite(&anna, a, &vera);
    invite(&anna, b, &wim);
    hand(&anna, &vera, a);
    hand(&anna, &wim, b);
    let case = case_in(&anna, vec![a, b], "Gezin over twee wijken");
    hand(&anna, &wim, case);
    wim.add_note(case, observation("Wimke: de school in B belde.")).expect("note");
    hop(&wim, &anna, case).expect("to Anna");

    // Vera's (modified) app in a meeting with Anna: it keeps every frame Anna sends.
    let mut peer = RawPeer::new(&anna, vera.device_key());
    peer.send(Message::Inventory { network: *a.as_bytes(), docs: Vec::new() }).expect("inventory");
    let b_relay_id = anna.relay_network_id(b).expect("id").expect("held");
    let mut names = Vec::new();
    let mut relay_id_seen = false;
    for m in &peer.answers {
        let Message::Document { signed, .. } = m else { continue };
        // Only the proofs of network B (those of A are Vera's own network's).
        let of_b =
            signed.iter().filter_map(|h| h.proof.as_ref()).filter(|p| p.network == *b.as_bytes());
        for proof in of_b {
            for op in proof.ops.iter().filter_map(|o| SignedOp::decode(o).ok()) {
                match op.change() {
                    Change::AddMember { name, .. } | Change::Genesis { name, .. }
                        if !name.is_empty() =>
                    {
                        names.push(name.clone());
                    }
                    _ => {}
                }
                if matches!(op.change(), Change::Genesis { key_commitment, .. } if *key_commitment == b_relay_id)
                {
                    relay_id_seen = true;
                }
            }
        }
    }
    assert!(
        names.is_empty() && !relay_id_seen,
        "Vera (not in B) received B's member names {names:?} and B's relay id: \
         {relay_id_seen}"
    );
}

/// An admin gone bad's network: Anna (admin) and Xavier (admin), both holding the network.
fn two_admins(dir: &std::path::Path) -> (std::sync::Arc<Device>, std::sync::Arc<Device>, DocId) {
    let [anna, xavier] = ["Anna", "Xavier"].map(|n| open_device(dir, n));
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &xavier);
    anna.set_role(network, xavier.member_id(), Role::Admin).expect("promote");
    hand(&anna, &xavier, network);
    (anna, xavier, network)
}

/// Xavier writes `chains` chains of `length` operations each (adding made-up members), every
/// chain starting from the heads he holds, in one change to the network document, and Anna
/// merges it (they are an admin's operations: they count).
fn admin_writes_ops(anna: &Device, xavier: &Device, network: DocId, chains: usize, length: usize) {
    let stored: Vec<SignedOp> =
        ops_in(xavier, network).iter().filter_map(|b| SignedOp::decode(b).ok()).collect();
    let m = membership::resolve_network(network, None, &stored);
    assert!(m.is_admin(&xavier.device_key()));
    let key = signing_key(xavier);
    let before = xavier.heads(network).expect("heads");
    let mut fork = load_exported(&xavier.export_document(network).expect("export"))
        .with_actor(ActorId::from(xavier.device_key().as_bytes().to_vec()));
    let ops = fork.get(ROOT, "ops").expect("get").expect("ops").1;
    // New members each time (an active member is added once), across calls too.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mut n = NEXT.fetch_add((chains * length) as u32, std::sync::atomic::Ordering::Relaxed);
    for _ in 0..chains {
        let mut parents = m.heads.clone();
        for _ in 0..length {
            let mut member = [0x77u8; 16];
            member[..4].copy_from_slice(&n.to_le_bytes());
            n += 1;
            let op = SignedOp::sign(
                &key,
                network,
                &parents,
                Change::AddMember { member, name: format!("x{n}"), role: Role::Member },
            )
            .expect("sign");
            parents = vec![op.id()];
            fork.put(&ops, hex::encode(op.id()), ScalarValue::Bytes(op.bytes().to_vec()))
                .expect("put");
        }
    }
    fork.commit();
    let signed = sign_fork(xavier, network, &mut fork);
    anna.merge_changes(network, &seal_envelope(&signed, &fork.save_after(&before)))
        .expect("Anna takes an admin's operations");
}

/// FOUND AND FIXED (promises 4 and 5: an admin gone bad cannot be removed). Attacker: an admin gone bad.
///
/// An operation names every head of the membership graph as its parents, and an operation is
/// at most 4 KiB: 128 heads fill it. Xavier, an admin, signs 200 operations at once, each on
/// the same parents (adding made-up members): all count, and the graph has 200 heads. From then
/// on no device can sign a membership operation at all (`TooLarge`): Xavier cannot be removed
/// or demoted, no lost phone can be removed, no one can be added.
#[test]
fn attack_an_admin_makes_membership_unsignable_with_concurrent_operations() {
    let dir = tempfile::tempdir().expect("dir");
    let (anna, xavier, network) = two_admins(dir.path());
    admin_writes_ops(&anna, &xavier, network, 200, 1);
    let removed = anna.remove_member(network, xavier.member_id(), Reason::Compromised);
    assert!(removed.is_ok(), "Anna cannot remove the admin gone bad: {removed:?}");
}

/// FOUND AND FIXED (promises 4 and 5, as above). Attacker: an admin gone bad.
///
/// A network keeps at most 4,096 membership operations, on every device and at the relay, and
/// a device refuses to write beyond that, revocations included. Xavier fills the list with
/// operations that count (64 chains, so that the heads stay few and resolving stays cheap).
/// From then on no one can remove or demote him, nor remove a lost phone (`NotAllowed`).
#[test]
fn attack_an_admin_fills_the_operation_cap_and_cannot_be_removed() {
    let dir = tempfile::tempdir().expect("dir");
    let (anna, xavier, network) = two_admins(dir.path());
    let room = membership::MAX_OPS - ops_in(&xavier, network).len();
    admin_writes_ops(&anna, &xavier, network, 64, room / 64);
    let extra = room % 64;
    if extra > 0 {
        hand(&anna, &xavier, network);
        admin_writes_ops(&anna, &xavier, network, extra, 1);
    }
    assert_eq!(ops_in(&anna, network).len(), membership::MAX_OPS);
    let removed = anna.remove_member(network, xavier.member_id(), Reason::Compromised);
    assert!(removed.is_ok(), "Anna cannot remove the admin gone bad: {removed:?}");
}

// ---------------------------------------------------------------------------------------------
// Attempts that failed (the defence held)
// ---------------------------------------------------------------------------------------------

/// HELD: the local API refuses to share a case, learning point or meeting into a network this
/// device is not in; a forged sharing of a brand-new document by a member of another network
/// is refused at the receiver whole (merge and meeting), for every kind.
#[test]
fn held_sharing_a_new_document_of_any_kind_into_a_network_one_is_not_in() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, mark, xander] = ["Anna", "Mark", "Xander"].map(|n| open_device(dir.path(), n));
    let a = anna.create_network("A").expect("A");
    let b = anna.create_network("B").expect("B");
    let members = [(a, &mark), (a, &xander), (b, &xander)];
    for (n, d) in members {
        invite(&anna, n, d);
    }
    for (n, d) in members {
        hand(&anna, d, n);
    }
    let lp = mark.create_learning_point(NewLearningPoint {
        title: "Inzicht".into(),
        networks: vec![b],
        ..Default::default()
    });
    assert!(matches!(lp, Err(Error::NotAllowed(_))), "{lp:?}");
    let mt = mark.create_meeting(NewMeeting {
        network: Some(b),
        date: "2025-03-01".into(),
        ..Default::default()
    });
    assert!(matches!(mt, Err(Error::NotAllowed(_))), "{mt:?}");
    let case = mark.create_case(NewCase {
        subject: "x".into(),
        networks: vec![a, b],
        ..Default::default()
    });
    assert!(matches!(case, Err(Error::NotAllowed(_))), "{case:?}");
    // A learning point of A, forged into B, refused at Xander whole.
    let lp = mark
        .create_learning_point(NewLearningPoint {
            title: "Inzicht".into(),
            networks: vec![a],
            ..Default::default()
        })
        .expect("lp");
    forge_sharing(&mark, lp, b);
    let r = xander.merge_document(&mark.export_document(lp).expect("export"));
    assert!(matches!(r, Err(Error::Merge(DocError::Unauthorized(_)))), "{r:?}");
    // At a meeting the forged learning point is refused alone (the meeting goes on).
    let _ = meet(&mark, &xander);
    assert!(xander.list_learning_points(None, None).expect("lps").is_empty());
    assert!(xander.kind_of(lp).is_err(), "nothing of it stored");
}

/// HELD: at the relay, a member's own operation making itself admin does not count (the relay
/// resolves the operations itself), so it cannot replace the roster afterwards; another
/// network's operations mixed into a roster are refused; the honest devices sync on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_a_member_cannot_make_itself_admin_or_mix_networks_at_the_relay() {
    let dir = tempfile::tempdir().expect("dir");
    let relay = InProcessRelay::start(&dir.path().join("relay"), Limits::default()).await;
    let anna = open_device(dir.path(), "Anna");
    let bram = open_device(dir.path(), "Bram");
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    let other = anna.create_network("Ander netwerk").expect("other");
    invite(&anna, network, &bram);
    case_in(&anna, vec![network], "Mevrouw B.");
    hand(&anna, &bram, network);
    let bram_key = signing_key(&bram);
    let stored: Vec<SignedOp> =
        ops_in(&bram, network).iter().filter_map(|b| SignedOp::decode(b).ok()).collect();
    let m = membership::resolve_network(network, None, &stored);
    let (bram_member, _) = m.member_of(&bram.device_key()).expect("member");
    let promote = SignedOp::sign(
        &bram_key,
        network,
        &m.heads,
        Change::SetRole { member: *bram_member.as_bytes(), role: Role::Admin },
    )
    .expect("sign");
    // First at the relay (any device of the membership may register the first roster), with
    // the promotion among the operations; then the next roster, which only an admin may.
    let mut roster = own_roster(&bram, relay.key, network);
    roster.ops.push(promote.blinded().to_vec());
    roster.issued_at = 1;
    let a = register(&relay, &bram_key, roster.clone()).await;
    assert!(matches!(a, Response::Registered { .. }), "{a:?}");
    // Until an admin has registered one, any device of the network may replace the roster;
    // once Anna (an admin) has, Bram's next roster brings its operations only (its promotion
    // does not count, so he is no admin at the relay) and Anna's roster stays.
    roster.issued_at = 2;
    let a = register(&relay, &bram_key, roster.clone()).await;
    assert!(matches!(a, Response::Registered { issued_at: 2, .. }), "{a:?}");
    let mut hers = own_roster(&anna, relay.key, network);
    hers.issued_at = 3;
    let a = register(&relay, &signing_key(&anna), hers).await;
    assert!(matches!(a, Response::Registered { issued_at: 3, .. }), "{a:?}");
    roster.issued_at = 4;
    let a = register(&relay, &bram_key, roster).await;
    assert!(matches!(a, Response::Registered { issued_at: 3, .. }), "Bram replaced it: {a:?}");
    // Another network's operations mixed into a roster by an admin of both.
    let mut mixed = own_roster(&anna, relay.key, network);
    mixed.ops.extend(
        ops_in(&anna, other)
            .iter()
            .filter_map(|b| SignedOp::decode(b).ok())
            .map(|o| o.blinded().to_vec()),
    );
    mixed.issued_at = 2;
    let a = register(&relay, &signing_key(&anna), mixed).await;
    assert!(matches!(a, Response::Refused { reason: Refusal::BadRoster, .. }), "{a:?}");
    // Anna registers the next roster and both sync without a refusal.
    let r = sync_once(&anna, &relay).await.expect("anna");
    assert!(r.report.refusals.is_empty(), "{:?}", r.report);
    let r = sync_once(&bram, &relay).await.expect("bram");
    assert!(r.report.refusals.is_empty(), "{:?}", r.report);
    relay.stop().await;
}

/// HELD: names stay off the relay. The roster a device registers carries blinded operations;
/// a network document whose operation comes without its name (the relay's copy) is refused; a
/// disclosure with another name does not decode.
#[test]
fn held_names_stay_off_the_relay_and_undisclosed_ops_stay_out_of_documents() {
    let dir = tempfile::tempdir().expect("dir");
    let [anna, xavier, vera] =
        ["Anna", "Xavier", "Vera Veldhuizen"].map(|n| open_device(dir.path(), n));
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    invite(&anna, network, &xavier);
    anna.set_role(network, xavier.member_id(), Role::Admin).expect("promote");
    hand(&anna, &xavier, network);
    // Xavier (admin) writes an AddMember in the relay's blinded form into the document.
    let stored: Vec<SignedOp> =
        ops_in(&xavier, network).iter().filter_map(|b| SignedOp::decode(b).ok()).collect();
    let m = membership::resolve_network(network, None, &stored);
    let op = SignedOp::sign(
        &signing_key(&xavier),
        network,
        &m.heads,
        Change::AddMember {
            member: *vera.member_id().as_bytes(),
            name: "Vera Veldhuizen".into(),
            role: Role::Member,
        },
    )
    .expect("sign");
    let before = xavier.heads(network).expect("heads");
    let mut fork = load_exported(&xavier.export_document(network).expect("export"))
        .with_actor(ActorId::from(xavier.device_key().as_bytes().to_vec()));
    let ops = fork.get(ROOT, "ops").expect("get").expect("ops").1;
    fork.put(&ops, hex::encode(op.id()), ScalarValue::Bytes(op.blinded().to_vec())).expect("put");
    fork.commit();
    let signed = sign_fork(&xavier, network, &mut fork);
    let r = anna.merge_changes(network, &seal_envelope(&signed, &fork.save_after(&before)));
    assert!(matches!(r, Err(Error::Merge(DocError::Unauthorized(_)))), "{r:?}");
    // A disclosure of another name after the body does not decode.
    let mut swapped = op.blinded().to_vec();
    swapped.extend(postcard::to_stdvec(&([0u8; 16], "Iemand Anders".to_string())).expect("enc"));
    assert!(SignedOp::decode(&swapped).is_err());
}
