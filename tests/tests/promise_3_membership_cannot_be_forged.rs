//! Promise 3 of the threat model, membership part: only an admin of a network changes who is
//! in it, and what a member gone bad writes into the network document (an unsigned roster
//! entry, an operation it signs itself, an admin's operation altered, a deleted operation)
//! changes nothing on the devices it reaches through a real meeting session. A removed device
//! is handed its removal (and wipes) by any device that holds it, and gets nothing else.

use std::sync::Arc;

use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue, transaction::Transactable};
use nabij_core::{
    Device, DocId, Error,
    authorship::seal_envelope,
    error::DocError,
    membership::{Change, Role, SignedOp},
    model::Reason,
    net::{self, NetError, SyncOptions},
    test_utils::{load_exported, loopback, sign_fork, signing_key},
};
use nabij_tests::{case_with_notes, meet, open_device};

struct World {
    _dir: tempfile::TempDir,
    admin: Arc<Device>,
    mallory: Arc<Device>,
    victim: Arc<Device>,
    outsider: Arc<Device>,
    network: DocId,
}

/// Anna (admin) starts a network with Mallory and Vera as members; everyone holds it.
fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = open_device(dir.path(), "Anna");
    let mallory = open_device(dir.path(), "Mallory");
    let victim = open_device(dir.path(), "Vera");
    let outsider = open_device(dir.path(), "Olaf");
    let network = admin.create_network("Wijknetwerk Oost").expect("network");
    for d in [&mallory, &victim] {
        admin.add_member(network, d.member_id(), &d.display_name(), d.device_key()).expect("add");
    }
    for d in [&mallory, &victim] {
        d.merge_document(&admin.export_document(network).expect("export")).expect("hold");
    }
    World { _dir: dir, admin, mallory, victim, outsider, network }
}

fn member_names(d: &Device, network: DocId) -> Vec<String> {
    let mut names: Vec<String> =
        d.network(network).expect("network").members.into_iter().map(|m| m.name).collect();
    names.sort();
    names
}

/// The operations in a network document, by id (hex).
fn ops_of(doc: &AutoCommit) -> Vec<(String, Vec<u8>)> {
    let Some((_, ops)) = doc.get(ROOT, "ops").expect("get") else { return Vec::new() };
    doc.keys(&ops)
        .filter_map(|k| match doc.get(&ops, k.as_str()).expect("get") {
            Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Bytes(b) => Some((k.clone(), b.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn promise_3_only_an_admin_changes_who_is_in_a_network() {
    let w = world();
    let (net, o) = (w.network, &w.outsider);
    let refused = w.mallory.add_member(net, o.member_id(), "Olaf", o.device_key());
    assert!(matches!(refused, Err(Error::NotAllowed(_))), "{refused:?}");
    let refused = w.mallory.set_role(net, w.mallory.member_id(), Role::Admin);
    assert!(matches!(refused, Err(Error::NotAllowed(_))), "{refused:?}");
    let refused = w.mallory.remove_member(net, w.admin.member_id(), Reason::Left);
    assert!(matches!(refused, Err(Error::NotAllowed(_))), "{refused:?}");
    assert_eq!(member_names(&w.mallory, net), ["Anna", "Mallory", "Vera"]);
    // The only admin cannot leave the network without one.
    let alone = w.admin.set_role(net, w.admin.member_id(), Role::Member);
    assert!(matches!(alone, Err(Error::NotAllowed(_))), "{alone:?}");
    let alone = w.admin.remove_member(net, w.admin.member_id(), Reason::Left);
    assert!(matches!(alone, Err(Error::NotAllowed(_))), "{alone:?}");

    // An admin makes Vera an admin; Vera can then add Olaf, and the others learn it by meeting.
    w.admin.set_role(net, w.victim.member_id(), Role::Admin).expect("promote");
    meet(&w.admin, &w.victim).expect("meeting");
    w.victim.add_member(net, o.member_id(), "Olaf", o.device_key()).expect("an admin adds");
    meet(&w.victim, &w.mallory).expect("meeting");
    assert_eq!(member_names(&w.mallory, net), ["Anna", "Mallory", "Olaf", "Vera"]);
    assert!(w.mallory.shares_network_with(&o.device_key()).expect("check"));
}

#[test]
fn promise_3_membership_forged_in_the_network_document_does_not_count_at_a_meeting() {
    let w = world();
    let (net, o) = (w.network, &w.outsider);
    let before = w.mallory.export_document(net).expect("export");
    // Mallory's modified app writes as Mallory and signs what it writes: authorship holds, the
    // membership rule is what must stop it.
    let mut fork = load_exported(&before)
        .with_actor(automerge::ActorId::from(w.mallory.device_key().as_bytes().to_vec()));
    let heads = fork.get_heads();
    let ops = ops_of(&fork);
    let genuine: Vec<SignedOp> =
        ops.iter().map(|(_, b)| SignedOp::decode(b).expect("decode")).collect();
    let parents: Vec<[u8; 32]> = genuine.iter().map(SignedOp::id).collect();

    // 1. The unsigned roster of old: Olaf added as a member with his device.
    let members = fork.put_object(ROOT, "members", ObjType::Map).expect("map");
    let olaf = fork.put_object(&members, o.member_id().to_string(), ObjType::Map).expect("m");
    fork.put(&olaf, "name", "Olaf").expect("name");
    let devices = fork.put_object(&olaf, "devices", ObjType::Map).expect("devices");
    fork.put(&devices, o.device_key().to_string(), 1_i64).expect("device");
    // 2. Operations Mallory signs with her own (member, not admin) key: Olaf as an admin.
    let key = signing_key(&w.mallory);
    let add = SignedOp::sign(
        &key,
        net,
        &parents,
        Change::AddMember {
            member: *o.member_id().as_bytes(),
            name: "Olaf".into(),
            role: Role::Admin,
        },
    )
    .expect("sign");
    let dev = SignedOp::sign(
        &key,
        net,
        &[add.id()],
        Change::AddDevice { member: *o.member_id().as_bytes(), device: *o.device_key().as_bytes() },
    )
    .expect("sign");
    // 3. Anna's genuine operation adding Vera's device, altered to add Olaf's instead (the
    //    device key is the operation's last 32 bytes): its signature no longer holds.
    let vera_device = genuine
        .iter()
        .find(|op| matches!(op.change(), Change::AddDevice { device, .. } if *device == *w.victim.device_key().as_bytes()))
        .expect("Vera's device operation");
    let mut altered = vera_device.bytes().to_vec();
    let n = altered.len();
    altered[n - 32..].copy_from_slice(o.device_key().as_bytes());
    let altered = SignedOp::decode(&altered).expect("still decodes");
    let ops_map = fork.get(ROOT, "ops").expect("get").expect("ops map").1;
    // Operations that can never count, by a device that never was an admin (2) or whose
    // signature does not hold (3): no device takes a change that brings them (they would only
    // cost every device work), Mallory's own included.
    for bad in [vec![&add, &dev], vec![&altered]] {
        let mut own = fork.fork();
        for op in bad {
            own.put(&ops_map, hex::encode(op.id()), ScalarValue::Bytes(op.bytes().to_vec()))
                .expect("put");
        }
        own.commit();
        let change = seal_envelope(&sign_fork(&w.mallory, net, &mut own), &own.save_after(&heads));
        for d in [&w.mallory, &w.victim, &w.admin] {
            let e = d.merge_changes(net, &change);
            assert!(matches!(e, Err(Error::Merge(DocError::Unauthorized(_)))), "{e:?}");
        }
    }
    // The unsigned roster entry (1) is taken by Mallory's device and carried to a meeting.
    fork.commit();
    let forged = seal_envelope(&sign_fork(&w.mallory, net, &mut fork), &fork.save_after(&heads));
    w.mallory.merge_changes(net, &forged).expect("Mallory's own device takes these");
    // 4. Anna's genuine operation for Vera's device deleted from the map: no device takes
    //    that change (operations are written once), Mallory's own included.
    let heads = fork.get_heads();
    fork.delete(&ops_map, hex::encode(vera_device.id())).expect("delete");
    fork.commit();
    let deletion = seal_envelope(&sign_fork(&w.mallory, net, &mut fork), &fork.save_after(&heads));
    for d in [&w.mallory, &w.victim] {
        assert!(d.merge_changes(net, &deletion).is_err(), "a deleted operation was taken");
    }

    meet(&w.mallory, &w.victim).expect("meeting");
    meet(&w.victim, &w.admin).expect("meeting");
    for d in [&w.victim, &w.admin] {
        assert_eq!(member_names(d, net), ["Anna", "Mallory", "Vera"], "{}", d.display_name());
        assert!(!d.shares_network_with(&o.device_key()).expect("check"), "Olaf passes");
        let n = d.network(net).expect("network");
        let olaf_listed = n.members.iter().any(|m| m.devices.contains(&o.device_key()));
        assert!(!olaf_listed);
        let mallory = n.members.iter().find(|m| m.name == "Mallory").expect("Mallory");
        assert_eq!(mallory.role, Role::Member);
    }
    // The deleted operation: Vera's device stays in the network on every device that saw it.
    assert!(w.admin.shares_network_with(&w.victim.device_key()).expect("check"));
    assert!(w.victim.shares_network_with(&w.admin.device_key()).expect("check"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promise_3_a_removed_device_is_refused_at_the_handshake() {
    let w = world();
    let net = w.network;
    case_with_notes(&w.admin, net, "Mevrouw B.", 2);
    // Vera hosts a meeting; Mallory's phone is lost before it.
    let mut listener = net::listen(w.victim.clone(), loopback()).await.expect("listen");
    let ticket = listener.ticket().clone();
    let first = net::sync_with(w.mallory.clone(), &ticket, SyncOptions::default()).await;
    assert!(first.is_ok(), "a member meets: {first:?}");
    let _ = listener.next_session().await;

    w.admin.remove_device(net, w.mallory.device_key(), Reason::Lost).expect("remove");
    meet(&w.admin, &w.victim).expect("Vera learns of the removal");
    let n = w.victim.network(net).expect("network");
    assert!(
        n.removed.iter().any(|r| r.device == w.mallory.device_key() && r.reason == Reason::Lost)
    );
    assert!(!w.victim.shares_network_with(&w.mallory.device_key()).expect("check"));

    // Admitted only to be handed its removal: it gets nothing and wipes the network.
    let report = net::sync_with(w.mallory.clone(), &ticket, SyncOptions::default()).await;
    assert_eq!(report.expect("ends").documents_received, 0);
    assert!(w.mallory.document_ids().expect("ids").is_empty(), "wiped");
    // A device that never was in a network of Vera's is refused at the handshake.
    let dir = tempfile::tempdir().expect("dir");
    let stranger = nabij_tests::open_device(dir.path(), "Onbekend");
    let refused = net::sync_with(stranger, &ticket, SyncOptions::default()).await;
    assert!(matches!(refused, Err(NetError::Connect(_))), "{refused:?}");
}
