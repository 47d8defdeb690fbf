//! What the attacker reviews (`tests/attack_review*.rs`) share: devices in one process
//! inviting each other and handing documents over by hand (an exported file, or what a first
//! meeting does), and what a modified app does to a network document: read its signed
//! operations, and write operations of its own making into it.

use automerge::{ActorId, AutoCommit, ROOT, ReadDoc, ScalarValue, transaction::Transactable};
use std::sync::Arc;

use nabij_core::{
    Device, DeviceKey, DocId, Error,
    authorship::seal_envelope,
    membership::SignedOp,
    model::{NewCase, Role},
    test_utils::{load_exported, sign_fork},
};
use nabij_relay_proto::wire::{self, Request};

/// `admin` invites `d` into `network` and `d`'s user accepts.
pub fn invite(admin: &Device, network: DocId, d: &Device) {
    let inv = admin.invite(network, d.member_id(), &d.display_name(), d.device_key());
    d.join(&inv.expect("invite")).expect("join");
}

/// Hands `doc` whole from one device to another (an exported file, or what a first meeting does).
pub fn hand(from: &Device, to: &Device, doc: DocId) {
    to.merge_document(&from.export_document(doc).expect("export")).expect("merge");
}

/// Brings `to`'s copy of `doc` up to `from`'s (changes since `to`'s heads).
pub fn hop(from: &Device, to: &Device, doc: DocId) -> Result<(), Error> {
    let heads = to.heads(doc).expect("heads");
    to.merge_changes(doc, &from.changes_since(doc, &heads).expect("changes")).map(|_| ())
}

/// The texts of a case's notes as `d` shows them (none if it does not hold the case).
pub fn texts(d: &Device, case: DocId) -> Vec<String> {
    d.case_timeline(case).map(|t| t.into_iter().map(|n| n.text).collect()).unwrap_or_default()
}

/// A new case shared with `networks`.
pub fn case_in(d: &Device, networks: Vec<DocId>, subject: &str) -> DocId {
    d.create_case(NewCase { subject: subject.into(), networks, ..Default::default() })
        .expect("case")
}

/// The signed operations a network document carries, as stored (with names).
pub fn ops_in(d: &Device, network: DocId) -> Vec<Vec<u8>> {
    let doc: AutoCommit = load_exported(&d.export_document(network).expect("export"));
    let Some((_, ops)) = doc.get(ROOT, "ops").expect("get") else { return Vec::new() };
    doc.keys(&ops)
        .filter_map(|k| match doc.get(&ops, k.as_str()).expect("get") {
            Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Bytes(b) => Some(b.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// One request, framed as the relay reads it.
pub fn frame(r: &Request) -> Vec<u8> {
    wire::encode(r, 1 << 24).expect("frame")
}

/// `d`'s modified app writes `ops` into its own copy of the network document (as it holds it)
/// and hands the change to `to` (a file import, or what a meeting's sync carries).
pub fn inject_ops(d: &Device, to: &Device, network: DocId, ops: &[SignedOp]) -> Result<(), Error> {
    let before = d.heads(network).expect("heads");
    let mut fork = load_exported(&d.export_document(network).expect("export"))
        .with_actor(ActorId::from(d.device_key().as_bytes().to_vec()));
    let map = fork.get(ROOT, "ops").expect("get").expect("ops").1;
    for op in ops {
        let id: String = op.id().iter().map(|b| format!("{b:02x}")).collect();
        fork.put(&map, id, ScalarValue::Bytes(op.bytes().to_vec())).expect("put");
    }
    fork.commit();
    let signed = sign_fork(d, network, &mut fork);
    to.merge_changes(network, &seal_envelope(&signed, &fork.save_after(&before))).map(|_| ())
}

/// The signed operations a network document carries, decoded (those that do not decode left
/// out).
pub fn decoded(d: &Device, network: DocId) -> Vec<SignedOp> {
    ops_in(d, network).iter().filter_map(|b| SignedOp::decode(b).ok()).collect()
}

/// `who`'s role in `network` as `d` shows it (none if not a member).
pub fn role_of(d: &Device, network: DocId, who: &Device) -> Option<Role> {
    let n = d.network(network).expect("network");
    n.members.iter().find(|m| m.id == who.member_id()).map(|m| m.role)
}

/// Whether `d` shows `device` as removed from `network`.
pub fn removed_on(d: &Device, network: DocId, device: &DeviceKey) -> bool {
    let n = d.network(network).expect("network");
    n.removed.iter().any(|r| r.device == *device)
}

/// The cast of the removal attacks: Anna's network, with Bram and Xavier made admins and Yara a
/// member, each holding the network document. `[anna, bram, xavier, yara]`.
pub fn two_admins_and_a_member(dir: &std::path::Path) -> ([Arc<Device>; 4], DocId) {
    let cast = ["Anna", "Bram", "Xavier", "Yara"].map(|n| crate::open_device(dir, n));
    let [anna, bram, xavier, yara] = &cast;
    let network = anna.create_network("Wijknetwerk Oost").expect("network");
    for d in [bram, xavier, yara] {
        invite(anna, network, d);
    }
    for d in [bram, xavier] {
        anna.set_role(network, d.member_id(), Role::Admin).expect("promote");
    }
    for d in [bram, xavier, yara] {
        hand(anna, d, network);
    }
    (cast, network)
}

/// Copies a store's files (the database, its write-ahead log and shared memory, where there are)
/// from `from` to `to`: one store on a second phone, as after a restore from a backup or a
/// thief's copy. Its device is best closed (or idle) meanwhile.
pub fn copy_store_files(from: &std::path::Path, to: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let f = std::path::PathBuf::from(format!("{}{suffix}", from.display()));
        if f.exists() {
            std::fs::copy(&f, format!("{}{suffix}", to.display())).expect("copy the store");
        }
    }
}

/// A copy of `name`'s store in `dir` (same device key, same chain numbers), opened as `copy`.
/// `name`'s device must be closed.
pub fn copy_store(dir: &std::path::Path, name: &str, copy: &str) -> Arc<Device> {
    copy_store_files(&dir.join(name), &dir.join(copy));
    Arc::new(crate::reopen(&dir.join(copy)))
}
