//! The relay's rules, without IO: who may register a roster, push or pull for a network, what
//! a push may weigh, and how requests become responses. The QUIC driver (`server`) feeds it
//! the requests of one connection in order and sends back what it returns, in order.
//!
//! Owns authorisation, roster replacement, quotas and blob checks. Knows nothing of sockets
//! or of how storage is implemented; never sees plaintext (there is none to see).

use std::collections::{HashMap, HashSet};

use nabij_relay_proto::{
    NetworkId, PublicKey,
    ids::DeviceKey,
    membership::{self, MAX_OPS, Membership, OpId, REVOCATION_ROOM, SignedOp},
    roster::SignedRoster,
    wire::{Refusal, Request, Response, blob_id},
};

use crate::{
    config::Limits,
    storage::{NewBlob, PutOutcome, Storage, StoredRoster},
};

/// Most blobs in one pull answer, whatever their size.
const PULL_MAX_BLOBS: usize = 4096;

/// A relay's rules over its storage.
#[derive(Debug)]
pub struct Relay<S> {
    storage: S,
    limits: Limits,
}

/// The operations the relay keeps for `network` (`known`, then those of `new` it lacks, in
/// order) and the membership they resolve to. A network's relay id derives from its genesis
/// (see [`membership::relay_id_of`]): the genesis is the one operation it derives from, so no
/// one can found another network under it. Operations of any other network are refused, so no
/// one can fill a network's list with another's.
fn membership_at_relay(
    network: &NetworkId,
    known: Vec<Vec<u8>>,
    new: &[Vec<u8>],
) -> Result<(Vec<Vec<u8>>, Membership), String> {
    let decode = |b: &[u8]| SignedOp::decode(b).map_err(|e| e.to_string());
    let mut decoded: Vec<SignedOp> = known.iter().map(|b| decode(b)).collect::<Result<_, _>>()?;
    let mut ids: HashSet<OpId> = decoded.iter().map(SignedOp::id).collect();
    // A fresh network: its genesis goes first (the smallest id, if a roster brings several).
    let mut fresh: Vec<SignedOp> = new.iter().map(|b| decode(b)).collect::<Result<_, _>>()?;
    if decoded.is_empty() {
        fresh.sort_by_key(|op| (!is_genesis_for(op, network), op.id()));
    }
    for op in fresh {
        if ids.insert(op.id()) {
            decoded.push(op);
        }
    }
    if decoded.len() > 2 * (MAX_OPS + REVOCATION_ROOM) {
        return Err(format!("more than {MAX_OPS} membership operations"));
    }
    let genesis = decoded
        .first()
        .filter(|op| is_genesis_for(op, network))
        .ok_or("no genesis for this network among the membership operations")?;
    if decoded.iter().any(|op| op.network_tag() != genesis.network_tag()) {
        return Err("membership operations of another network".into());
    }
    let m = membership::resolve_tagged(genesis.network_tag(), genesis.id(), &decoded);
    // Only what an admin of its own past made is kept (as devices keep only that): a member
    // or a stranger cannot fill the list so that an admin's removal no longer fits. What an
    // admin made may fill it up to the cap; removals and demotions have room beyond it.
    decoded.retain(|op| m.authorized.contains(&op.id()));
    if !membership::within_cap(&decoded) {
        return Err(format!("more than {MAX_OPS} membership operations"));
    }
    Ok((decoded.iter().map(|op| op.blinded().to_vec()).collect(), m))
}

/// The devices active in a membership, sorted: they may push, pull and register.
fn active(m: &Membership) -> Vec<PublicKey> {
    let mut active: Vec<PublicKey> = m.devices().map(|d| *d.as_bytes()).collect();
    active.sort();
    active
}

/// The devices a network's roster is listed to: the active ones, and the removed ones (so
/// that one that asks finds its removal in the roster, and wipes the network).
fn listed(m: &Membership) -> Vec<PublicKey> {
    let mut devices = active(m);
    devices.extend(m.removed_devices.keys().map(|d| *d.as_bytes()));
    devices.sort();
    devices.dedup();
    devices
}

/// Bytes of contributed rosters a network keeps at most (their bodies): served with every
/// listing to every device of the network.
const CONTRIBUTED_MAX_BYTES: usize = 1024 * 1024;

/// Adds `roster` to `contributed` (sorted by signer) if their bodies stay within
/// [`CONTRIBUTED_MAX_BYTES`]; whether it did.
fn keep_within_bound(contributed: &mut Vec<SignedRoster>, roster: SignedRoster) -> bool {
    let bytes: usize = contributed.iter().map(|r| r.body.len()).sum();
    if bytes + roster.body.len() > CONTRIBUTED_MAX_BYTES {
        return false;
    }
    contributed.push(roster);
    contributed.sort_by_key(|r| r.signer);
    true
}

/// The contributed rosters to keep: those of devices still active in the membership, but
/// `registering`'s (its new roster replaces it).
fn contributed(m: &Membership, kept: &[SignedRoster], registering: PublicKey) -> Vec<SignedRoster> {
    kept.iter()
        .filter(|r| {
            r.signer != registering && m.member_of(&DeviceKey::from_bytes(r.signer)).is_some()
        })
        .cloned()
        .collect()
}

/// Whether `op` is the signed genesis the relay id `network` derives from.
fn is_genesis_for(op: &SignedOp, network: &NetworkId) -> bool {
    membership::relay_id_of(op).as_ref() == Some(network) && op.signature_holds()
}

fn refused(reason: Refusal, detail: impl Into<String>) -> Response {
    Response::Refused { reason, detail: detail.into() }
}

impl<S: Storage> Relay<S> {
    /// Rules with these limits over `storage`.
    pub fn new(storage: S, limits: Limits) -> Self {
        Self { storage, limits }
    }

    /// The storage (for inspection in tests and tools).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Answers the requests `device` sent, one response each, in order. Consecutive pushes
    /// are stored in one durable batch; each is answered only after the batch is durable.
    pub fn handle(&self, device: &PublicKey, requests: Vec<Request>) -> Vec<Response> {
        let mut out = Vec::with_capacity(requests.len());
        // Rosters looked up for this batch: pushes in a row check one network once.
        let mut allowed: HashMap<NetworkId, bool> = HashMap::new();
        let mut pushes: Vec<(usize, NewBlob)> = Vec::new();
        for request in requests {
            if !matches!(request, Request::Push { .. }) {
                self.flush(&mut pushes, &mut out);
            }
            match request {
                Request::Networks => out.push(self.networks(device)),
                Request::Register { roster } => {
                    allowed.clear();
                    out.push(self.register(device, &roster));
                }
                Request::Push { network, doc, blob } => {
                    match self.may_use(device, &network, &mut allowed) {
                        Err(r) => out.push(r),
                        Ok(()) if blob.len() > self.limits.max_blob_bytes => out.push(refused(
                            Refusal::TooLarge,
                            format!(
                                "blob of {} bytes over {}",
                                blob.len(),
                                self.limits.max_blob_bytes
                            ),
                        )),
                        Ok(()) if blob.is_empty() => {
                            out.push(refused(Refusal::Malformed, "empty blob"));
                        }
                        Ok(()) => {
                            // Placeholder, replaced when the batch is stored.
                            let at = out.len();
                            out.push(refused(Refusal::Unavailable, "not stored"));
                            pushes.push((
                                at,
                                NewBlob { network, doc, id: blob_id(&blob), bytes: blob },
                            ));
                        }
                    }
                }
                Request::Pull { network, after, max_bytes } => {
                    out.push(match self.may_use(device, &network, &mut allowed) {
                        Err(r) => r,
                        Ok(()) => self.pull(&network, after, max_bytes),
                    });
                }
                // Any active device of the network may: the relay cannot read the tombstone
                // that erased the document, and a device that deletes a live document's blobs
                // only makes its holders push it again (the marker tells them).
                Request::Delete { network, doc } => {
                    out.push(match self.may_use(device, &network, &mut allowed) {
                        Err(r) => r,
                        Ok(()) => match self.storage.delete_doc(&network, &doc) {
                            Ok(blobs) => {
                                tracing::info!(blobs, "a document's blobs deleted");
                                Response::Deleted { network, doc, blobs }
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "deletion failed");
                                refused(Refusal::Unavailable, "storage failed")
                            }
                        },
                    });
                }
            }
        }
        self.flush(&mut pushes, &mut out);
        out
    }

    fn may_use(
        &self,
        device: &PublicKey,
        network: &NetworkId,
        allowed: &mut HashMap<NetworkId, bool>,
    ) -> Result<(), Response> {
        let ok = match allowed.get(network) {
            Some(&ok) => ok,
            None => {
                let ok = match self.storage.roster(network) {
                    // Removed devices are listed (to find their removal), not admitted.
                    Ok(Some(r)) => r.active.binary_search(device).is_ok(),
                    Ok(None) => false,
                    Err(e) => {
                        tracing::error!(error = %e, "roster lookup failed");
                        return Err(refused(Refusal::Unavailable, "storage failed"));
                    }
                };
                allowed.insert(*network, ok);
                ok
            }
        };
        if ok { Ok(()) } else { Err(refused(Refusal::NotOnRoster, "not on this network's roster")) }
    }

    fn flush(&self, pushes: &mut Vec<(usize, NewBlob)>, out: &mut [Response]) {
        if pushes.is_empty() {
            return;
        }
        let batch: Vec<NewBlob> = pushes.iter().map(|(_, b)| b.clone()).collect();
        match self.storage.put_blobs(&batch, self.limits.network_quota_bytes) {
            Ok(outcomes) => {
                for ((at, blob), outcome) in pushes.iter().zip(outcomes) {
                    out[*at] = match outcome {
                        PutOutcome::Stored(seq) => {
                            Response::Stored { network: blob.network, id: blob.id, seq }
                        }
                        PutOutcome::OverQuota => refused(
                            Refusal::QuotaExceeded,
                            format!("quota of {} bytes", self.limits.network_quota_bytes),
                        ),
                    };
                }
            }
            Err(e) => {
                tracing::error!(error = %e, blobs = batch.len(), "storing blobs failed");
                // The placeholders stand: each push is refused as unavailable.
            }
        }
        pushes.clear();
    }

    fn networks(&self, device: &PublicKey) -> Response {
        match self.storage.rosters_listing(device) {
            Ok(rosters) => Response::Networks { rosters },
            Err(e) => {
                tracing::error!(error = %e, "roster listing failed");
                refused(Refusal::Unavailable, "storage failed")
            }
        }
    }

    fn register(&self, device: &PublicKey, signed: &SignedRoster) -> Response {
        let roster = match signed.verify() {
            Ok(r) => r,
            Err(e) => return refused(Refusal::BadRoster, e.to_string()),
        };
        if signed.signer != *device {
            return refused(Refusal::BadRoster, "a device registers only rosters it signed");
        }
        let current = match self.storage.roster(&roster.network) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "roster lookup failed");
                return refused(Refusal::Unavailable, "storage failed");
            }
        };
        // Every operation the relay was ever given for the network, with the roster's: who may
        // do what is decided by the membership they resolve to, never by the roster's word.
        let known = current.as_ref().map(|c| c.ops.clone()).unwrap_or_default();
        let (ops, m) = match membership_at_relay(&roster.network, known, &roster.ops) {
            Ok(x) => x,
            Err(why) => return refused(Refusal::BadRoster, why),
        };
        let me = DeviceKey::from_bytes(*device);
        if m.member_of(&me).is_none() {
            return refused(Refusal::NotOnRoster, "not a device of the network's membership");
        }
        if let Some(current) = &current {
            // Only an admin replaces a roster (and the sealed keys it carries), while the one
            // registered is an admin's: a member cannot list only itself, and no one can take
            // the admins' place without a signed operation every device sees. A member's roster
            // still brings its operations (a removal reaches the relay from whoever holds it);
            // and once the registered roster's signer is no admin any more (demoted, removed,
            // or the network has no admin left), any device of the network may replace it, so
            // a new key epoch's keys still reach the others through the relay.
            // Its roster is kept beside the registered one (contributed): the keys it seals
            // may be a new epoch's that its starter, an admin demoted since, sealed (no one else
            // can), and the registered signer may not hold them.
            let signer = DeviceKey::from_bytes(current.signed.signer);
            if !m.is_admin(&me) && m.is_admin(&signer) {
                // Every device listed gets them with each listing: bounded, so that members
                // cannot make the answer outgrow a frame (a roster over the bound still brings
                // its operations, and the device's earlier one stays).
                let mut contributed = contributed(&m, &current.contributed, *device);
                if !keep_within_bound(&mut contributed, signed.clone()) {
                    tracing::warn!(
                        bytes = signed.body.len(),
                        "a contributed roster over the network's bound: its operations only"
                    );
                    let earlier = current.contributed.iter().find(|r| r.signer == *device);
                    if let Some(earlier) = earlier {
                        keep_within_bound(&mut contributed, earlier.clone());
                    }
                }
                let stored = StoredRoster {
                    signed: current.signed.clone(),
                    issued_at: current.issued_at,
                    devices: listed(&m),
                    active: active(&m),
                    ops,
                    contributed,
                };
                return match self.storage.put_roster(&roster.network, &stored) {
                    Ok(()) => Response::Registered {
                        network: roster.network,
                        issued_at: current.issued_at,
                    },
                    Err(e) => {
                        tracing::error!(error = %e, "storing a roster failed");
                        refused(Refusal::Unavailable, "storage failed")
                    }
                };
            }
            if roster.issued_at <= current.issued_at {
                return refused(
                    Refusal::StaleRoster,
                    format!("registered roster issued at {}", current.issued_at),
                );
            }
            if roster.issued_at != current.issued_at.saturating_add(1) {
                return refused(
                    Refusal::BadRoster,
                    format!("the next roster is number {}", current.issued_at.saturating_add(1)),
                );
            }
        } else if roster.issued_at != 1 {
            return refused(Refusal::BadRoster, "a network's first roster is number 1");
        }
        // The roster this one replaces stays beside it if its signer is a member but no admin
        // any more: it may be the only one that seals a new epoch's key (its admin started the
        // epoch, then was demoted, and this device registered before it pulled that epoch).
        let mut contributed =
            current.as_ref().map(|c| contributed(&m, &c.contributed, *device)).unwrap_or_default();
        if let Some(c) = &current
            && c.signed.signer != *device
            && m.member_of(&DeviceKey::from_bytes(c.signed.signer)).is_some()
            && !m.is_admin(&DeviceKey::from_bytes(c.signed.signer))
        {
            contributed.retain(|r| r.signer != c.signed.signer);
            keep_within_bound(&mut contributed, c.signed.clone());
        }
        let stored = StoredRoster {
            signed: signed.clone(),
            issued_at: roster.issued_at,
            devices: listed(&m),
            active: active(&m),
            ops,
            contributed,
        };
        match self.storage.put_roster(&roster.network, &stored) {
            Ok(()) => {
                tracing::info!(
                    devices = stored.active.len(),
                    operations = stored.ops.len(),
                    replaced = current.is_some(),
                    "registered a roster"
                );
                Response::Registered { network: roster.network, issued_at: roster.issued_at }
            }
            Err(e) => {
                tracing::error!(error = %e, "storing a roster failed");
                refused(Refusal::Unavailable, "storage failed")
            }
        }
    }

    fn pull(&self, network: &NetworkId, after: u64, max_bytes: u32) -> Response {
        let max = u64::from(max_bytes.min(self.limits.pull_max_bytes));
        match self.storage.blobs_after(network, after, max, PULL_MAX_BLOBS) {
            Ok((blobs, more)) => {
                let next = blobs.last().map_or(after, |b| b.seq);
                Response::Blobs { network: *network, blobs, next, more }
            }
            Err(e) => {
                tracing::error!(error = %e, "pull failed");
                refused(Refusal::Unavailable, "storage failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use nabij_relay_proto::{
        ids::DocId,
        membership::{Change, Role},
        roster::{Roster, RosterDevice},
    };

    use super::*;
    use crate::storage::MemoryStorage;

    fn device(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn pk(k: &SigningKey) -> PublicKey {
        k.verifying_key().to_bytes()
    }

    /// A network's membership as its admins sign it, founded by `founder` with the key
    /// commitment given; its relay id derives from its genesis.
    struct Net {
        id: DocId,
        relay: NetworkId,
        ops: Vec<SignedOp>,
    }

    impl Net {
        fn new(commitment: [u8; 32], founder: &SigningKey) -> Net {
            let (member, name) = ([1; 16], "Anna");
            let id = membership::genesis_network_id(founder, &commitment, &member, name);
            let genesis = SignedOp::sign(
                founder,
                id,
                &[],
                Change::Genesis { key_commitment: commitment, member, name: name.into() },
            )
            .unwrap();
            let relay = membership::relay_id_of(&genesis).unwrap();
            Net { id, relay, ops: vec![genesis] }
        }

        /// `by` signs `change` after every operation so far.
        fn sign(&mut self, by: &SigningKey, change: Change) -> SignedOp {
            let parents: Vec<OpId> = self.ops.iter().map(SignedOp::id).collect();
            let op = SignedOp::sign(by, self.id, &parents, change).unwrap();
            self.ops.push(op.clone());
            op
        }

        /// `by` adds `who` (member `n`) with one device and `role`.
        fn add(&mut self, by: &SigningKey, who: &SigningKey, n: u8, role: Role) {
            let member = [n; 16];
            self.sign(by, Change::AddMember { member, name: format!("lid {n}"), role });
            self.sign(by, Change::AddDevice { member, device: pk(who) });
        }

        /// A roster numbered `at`, signed by `signer`, carrying `ops` and listing `devices` (all
        /// as admins: the relay must not believe it).
        fn roster(
            &self,
            at: i64,
            ops: &[SignedOp],
            devices: &[&SigningKey],
            signer: &SigningKey,
        ) -> Request {
            let roster = Roster {
                network: self.relay,
                issued_at: at,
                devices: devices
                    .iter()
                    .map(|d| RosterDevice {
                        key: pk(d),
                        sealed: vec![7; 80],
                        admin: true,
                        removed: false,
                    })
                    .collect(),
                removals: Vec::new(),
                ops: ops.iter().map(|o| o.bytes().to_vec()).collect(),
            };
            Request::Register { roster: roster.sign(signer).unwrap() }
        }
    }

    fn relay(quota: u64) -> Relay<MemoryStorage> {
        Relay::new(MemoryStorage::new(), Limits { network_quota_bytes: quota, ..Limits::default() })
    }

    fn reason(r: &Response) -> Option<Refusal> {
        match r {
            Response::Refused { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    fn pull(net: &Net) -> Request {
        Request::Pull { network: net.relay, after: 0, max_bytes: 1 << 20 }
    }

    #[test]
    fn only_devices_of_the_membership_delete_a_documents_blobs() {
        let r = relay(1 << 30);
        let (a, b) = (device(1), device(2));
        let net = Net::new([5; 32], &a);
        let out = r.handle(&pk(&a), vec![net.roster(1, &net.ops, &[&a], &a)]);
        assert!(matches!(out[0], Response::Registered { .. }));
        let relay_id = net.relay;
        let push =
            |n: u8, d: u8| Request::Push { network: relay_id, doc: [d; 32], blob: vec![n; 100] };
        let delete = |d: u8| Request::Delete { network: relay_id, doc: [d; 32] };
        r.handle(&pk(&a), vec![push(1, 1), push(2, 1), push(3, 2)]);
        // A stranger may not, nor may anyone for a network it is not on.
        let out = r.handle(&pk(&b), vec![delete(1)]);
        assert_eq!(reason(&out[0]), Some(Refusal::NotOnRoster));
        let out = r.handle(&pk(&a), vec![Request::Delete { network: [9; 32], doc: [1; 32] }]);
        assert_eq!(reason(&out[0]), Some(Refusal::NotOnRoster));
        // A member may: a push, the deletion and a pull in one batch are answered in order.
        let out = r.handle(&pk(&a), vec![push(4, 1), delete(1), pull(&net)]);
        assert!(matches!(out[0], Response::Stored { .. }), "{:?}", out[0]);
        assert!(
            matches!(out[1], Response::Deleted { blobs: 3, doc, .. } if doc == [1; 32]),
            "{:?}",
            out[1]
        );
        let Response::Blobs { blobs, .. } = &out[2] else { panic!("{:?}", out[2]) };
        let docs: Vec<(u8, bool)> = blobs.iter().map(|b| (b.doc[0], b.is_deletion())).collect();
        assert_eq!(docs, vec![(2, false), (1, true)]);
        assert_eq!(r.storage().usage(&relay_id).expect("usage"), 100);
    }

    #[test]
    fn only_devices_of_the_membership_push_and_pull_and_newer_rosters_replace() {
        let r = relay(1 << 30);
        let (a, b, c) = (device(1), device(2), device(3));
        let mut net = Net::new([5; 32], &a);
        // A network's first roster is number 1.
        let out = r.handle(&pk(&a), vec![net.roster(10, &net.ops, &[&a], &a)]);
        assert_eq!(reason(&out[0]), Some(Refusal::BadRoster));
        let out = r.handle(&pk(&a), vec![net.roster(1, &net.ops, &[&a], &a)]);
        assert!(matches!(out[0], Response::Registered { issued_at: 1, .. }));

        let relay_id = net.relay;
        let push = |n: u8| Request::Push { network: relay_id, doc: [1; 32], blob: vec![n; 100] };
        let out = r.handle(&pk(&b), vec![push(1), pull(&net)]);
        assert_eq!(reason(&out[0]), Some(Refusal::NotOnRoster));
        assert_eq!(reason(&out[1]), Some(Refusal::NotOnRoster));

        // b may not add itself, not even by listing itself; a signs b in; the same number
        // again is stale; one that skips ahead (to freeze the others out) is refused.
        let out = r.handle(&pk(&b), vec![net.roster(2, &net.ops, &[&a, &b], &b)]);
        assert_eq!(reason(&out[0]), Some(Refusal::NotOnRoster));
        net.add(&a, &b, 2, Role::Member);
        let out = r.handle(
            &pk(&a),
            vec![
                net.roster(2, &net.ops, &[&a, &b], &a),
                net.roster(2, &net.ops, &[&a, &b, &c], &a),
                net.roster(i64::MAX, &net.ops, &[&a, &b, &c], &a),
            ],
        );
        assert!(matches!(out[0], Response::Registered { .. }));
        assert_eq!(reason(&out[1]), Some(Refusal::StaleRoster));
        assert_eq!(reason(&out[2]), Some(Refusal::BadRoster));

        // Each push is answered with its own outcome, in order. (What storage promises about
        // them, dedup included, is checked on every store by `storage::conformance`.)
        let out = r.handle(&pk(&b), vec![push(1), push(2), pull(&net)]);
        let seqs: Vec<u64> = out[..2]
            .iter()
            .map(|r| match r {
                Response::Stored { seq, .. } => *seq,
                other => panic!("{other:?}"),
            })
            .collect();
        match &out[2] {
            Response::Blobs { blobs, next, more, .. } => {
                assert_eq!(blobs.len(), 2);
                assert_eq!(*next, seqs[1]);
                assert!(!more);
            }
            other => panic!("{other:?}"),
        }
        // c sees nothing of this network; b, a member, may not replace the roster while its
        // signer is an admin: its operations are taken, a's roster stays.
        match &r.handle(&pk(&c), vec![Request::Networks])[0] {
            Response::Networks { rosters } => assert!(rosters.is_empty()),
            other => panic!("{other:?}"),
        }
        let out = r.handle(&pk(&b), vec![net.roster(3, &net.ops, &[&a, &b], &b)]);
        assert!(matches!(out[0], Response::Registered { issued_at: 2, .. }), "{out:?}");
        let stored = r.storage().roster(&net.relay).unwrap().unwrap();
        assert_eq!((stored.signed.signer, stored.issued_at), (pk(&a), 2));
        // Once a demotes itself and c is made admin... (a member's roster replaces one whose
        // signer is no admin any more).
        net.add(&a, &c, 3, Role::Admin);
        net.sign(&a, Change::SetRole { member: [1; 16], role: Role::Member });
        let out = r.handle(&pk(&b), vec![net.roster(3, &net.ops, &[&a, &b, &c], &b)]);
        assert!(matches!(out[0], Response::Registered { issued_at: 3, .. }), "{out:?}");
        let stored = r.storage().roster(&net.relay).unwrap().unwrap();
        assert_eq!(stored.signed.signer, pk(&b));
    }

    /// The lock-out an admin gone bad tried: a roster that lists it as the only admin, or drops
    /// the others, or forgets the operations that made them. The relay goes by the signed
    /// membership, so the others keep their place and the next admin's roster is taken.
    #[test]
    fn a_roster_cannot_take_the_admins_place_or_drop_devices() {
        let r = relay(1 << 30);
        let (a, b, x) = (device(1), device(2), device(3));
        let mut net = Net::new([8; 32], &a);
        net.add(&a, &b, 2, Role::Member);
        net.add(&a, &x, 3, Role::Admin);
        let out = r.handle(&pk(&a), vec![net.roster(1, &net.ops, &[&a, &b, &x], &a)]);
        assert!(matches!(out[0], Response::Registered { .. }));

        // x registers the next roster: only itself, and only the genesis and its own adding.
        let mine: Vec<SignedOp> = net.ops.iter().take(1).chain(&net.ops[3..]).cloned().collect();
        let out = r.handle(&pk(&x), vec![net.roster(2, &mine, &[&x], &x)]);
        assert!(matches!(out[0], Response::Registered { .. }), "x is an admin: {out:?}");
        let push = Request::Push { network: net.relay, doc: [1; 32], blob: vec![1; 100] };
        for d in [&a, &b] {
            let out = r.handle(&pk(d), vec![push.clone(), pull(&net)]);
            assert!(matches!(out[0], Response::Stored { .. }), "{out:?}");
            assert!(matches!(out[1], Response::Blobs { .. }), "{out:?}");
        }
        // a, still an admin, registers the next one; once a removes x, x is refused.
        net.sign(
            &a,
            Change::RemoveMember { member: [3; 16], reason: membership::Reason::Compromised },
        );
        let out = r.handle(&pk(&a), vec![net.roster(3, &net.ops, &[&a, &b], &a)]);
        assert!(matches!(out[0], Response::Registered { .. }), "{out:?}");
        let out = r.handle(&pk(&x), vec![push, pull(&net), net.roster(4, &mine, &[&x], &x)]);
        assert_eq!(reason(&out[0]), Some(Refusal::NotOnRoster));
        assert_eq!(reason(&out[1]), Some(Refusal::NotOnRoster));
        assert_eq!(reason(&out[2]), Some(Refusal::NotOnRoster));
        // x still finds the roster (to learn of its removal).
        match &r.handle(&pk(&x), vec![Request::Networks])[0] {
            Response::Networks { rosters } => assert_eq!(rosters.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    /// A member's roster, while an admin's is registered, is kept beside it (contributed) and
    /// listed after it: the keys it seals reach the others (an admin that started a new
    /// epoch's key may have been demoted since). One per device, the newest; gone once its
    /// device is no member.
    #[test]
    fn a_members_roster_is_listed_after_the_admins_until_it_is_removed() {
        let r = relay(1 << 30);
        let (a, b, c) = (device(1), device(2), device(3));
        let mut net = Net::new([8; 32], &a);
        net.add(&a, &b, 2, Role::Member);
        net.add(&a, &c, 3, Role::Member);
        let admins = net.roster(1, &net.ops, &[&a, &b, &c], &a);
        assert!(matches!(r.handle(&pk(&a), vec![admins.clone()])[0], Response::Registered { .. }));
        let listing = |d: &SigningKey| match &r.handle(&pk(d), vec![Request::Networks])[0] {
            Response::Networks { rosters } => rosters.iter().map(|x| x.signer).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(listing(&c), vec![pk(&a)]);
        for issued_at in [2, 3] {
            let out = r.handle(&pk(&b), vec![net.roster(issued_at, &net.ops, &[&a, &b, &c], &b)]);
            assert!(matches!(out[0], Response::Registered { .. }), "{out:?}");
            assert_eq!(listing(&c), vec![pk(&a), pk(&b)], "the newest of b's, once");
        }
        let stored = r.storage().roster(&net.relay).unwrap().unwrap();
        assert_eq!(stored.signed.signer, pk(&a), "the admin's stays the registered one");
        // A roster beyond the network's bound brings its operations, not itself.
        let mut big = net.roster(2, &net.ops, &[&a, &b, &c], &c);
        if let Request::Register { roster } = &mut big {
            let mut body: Roster = postcard::from_bytes(&roster.body).unwrap();
            let filler = body.devices[0].clone();
            for i in 0..600u16 {
                let mut key = [0xee; 32];
                key[..2].copy_from_slice(&i.to_be_bytes());
                body.devices.push(RosterDevice { key, sealed: vec![7; 2048], ..filler.clone() });
            }
            *roster = body.sign(&c).unwrap();
            assert!(roster.body.len() > CONTRIBUTED_MAX_BYTES);
        }
        assert!(matches!(r.handle(&pk(&c), vec![big])[0], Response::Registered { .. }));
        assert_eq!(listing(&c), vec![pk(&a), pk(&b)]);
        // The admin's next roster keeps b's beside it; removing b drops it.
        net.sign(&a, Change::RemoveMember { member: [2; 16], reason: membership::Reason::Left });
        let out = r.handle(&pk(&a), vec![net.roster(2, &net.ops, &[&a, &c], &a)]);
        assert!(matches!(out[0], Response::Registered { .. }), "{out:?}");
        assert_eq!(listing(&c), vec![pk(&a)]);
    }

    /// An admin's roster replaced once that admin is no admin (here it made another admin and
    /// stepped down) stays beside the new one: it may be the only one sealing the keys of an
    /// epoch that admin started.
    #[test]
    fn a_demoted_admins_roster_stays_beside_the_one_that_replaces_it() {
        let r = relay(1 << 30);
        let (a, b) = (device(1), device(2));
        let mut net = Net::new([8; 32], &a);
        net.add(&a, &b, 2, Role::Member);
        let out = r.handle(&pk(&a), vec![net.roster(1, &net.ops, &[&a, &b], &a)]);
        assert!(matches!(out[0], Response::Registered { .. }), "{out:?}");
        net.sign(&a, Change::SetRole { member: [2; 16], role: Role::Admin });
        net.sign(&a, Change::SetRole { member: [1; 16], role: Role::Member });
        let out = r.handle(&pk(&b), vec![net.roster(2, &net.ops, &[&a, &b], &b)]);
        assert!(matches!(out[0], Response::Registered { .. }), "{out:?}");
        match &r.handle(&pk(&a), vec![Request::Networks])[0] {
            Response::Networks { rosters } => {
                let signers: Vec<PublicKey> = rosters.iter().map(|x| x.signer).collect();
                assert_eq!(signers, vec![pk(&b), pk(&a)]);
            }
            other => panic!("{other:?}"),
        }
    }

    /// A network's relay id derives from its genesis; operations of another network, or a
    /// roster with no genesis, are refused; no one can found another network under a relay id
    /// (not even with the same key commitment); the relay keeps no names.
    #[test]
    fn the_genesis_binds_the_network_and_the_relay_learns_no_names() {
        let r = relay(1 << 30);
        let (a, m) = (device(1), device(4));
        let net = Net::new([9; 32], &a);
        // No genesis: nothing to go by.
        let mut lone = Net::new([9; 32], &a);
        lone.ops.remove(0);
        let out = r.handle(&pk(&a), vec![lone.roster(1, &[], &[&a], &a)]);
        assert_eq!(reason(&out[0]), Some(Refusal::BadRoster));
        // A squatter who knows the key commitment founds its own network with it, and
        // registers it first under the real network's relay id: refused, that id is not its
        // genesis's.
        let squat = Net::new([9; 32], &m);
        let mut taken = squat.roster(1, &squat.ops, &[&m], &m);
        if let Request::Register { roster } = &mut taken {
            let mut body: Roster = postcard::from_bytes(&roster.body).unwrap();
            body.network = net.relay;
            *roster = body.sign(&m).unwrap();
        }
        assert_eq!(reason(&r.handle(&pk(&m), vec![taken])[0]), Some(Refusal::BadRoster));
        // (Under its own relay id it is a network of its own, as anyone may make.)
        let own = squat.roster(1, &squat.ops, &[&m], &m);
        assert!(matches!(r.handle(&pk(&m), vec![own])[0], Response::Registered { .. }));

        let out = r.handle(&pk(&a), vec![net.roster(1, &net.ops, &[&a], &a)]);
        assert!(matches!(out[0], Response::Registered { .. }), "{out:?}");
        // The squatter's operations do not join this network's list.
        let mut mixed_ops = squat.ops.clone();
        mixed_ops.extend(net.ops.clone());
        let mixed = net.roster(2, &mixed_ops, &[&a], &a);
        assert_eq!(reason(&r.handle(&pk(&a), vec![mixed])[0]), Some(Refusal::BadRoster));

        let stored = r.storage().roster(&net.relay).unwrap().unwrap();
        assert_eq!(stored.ops.len(), 1);
        let name = b"Anna";
        assert!(!stored.ops[0].windows(name.len()).any(|w| w == name), "the relay keeps no names");
        assert!(net.ops[0].bytes().windows(name.len()).any(|w| w == name), "devices do");
    }

    #[test]
    fn quotas_sizes_and_forged_rosters_are_refused() {
        let r = relay(250);
        let a = device(1);
        let net = Net::new([6; 32], &a);
        r.handle(&pk(&a), vec![net.roster(1, &net.ops, &[&a], &a)]);
        let relay_id = net.relay;
        let push = |n: u8| Request::Push { network: relay_id, doc: [1; 32], blob: vec![n; 100] };
        // The configured quota reaches storage and its refusal reaches the device (how the
        // quota counts is storage's rule, in `storage::conformance`).
        let out = r.handle(&pk(&a), vec![push(1), push(2), push(3)]);
        assert!(matches!(out[0], Response::Stored { .. }));
        assert!(matches!(out[1], Response::Stored { .. }));
        assert_eq!(reason(&out[2]), Some(Refusal::QuotaExceeded));
        let big = Request::Push {
            network: relay_id,
            doc: [1; 32],
            blob: vec![0; r.limits().max_blob_bytes + 1],
        };
        assert_eq!(reason(&r.handle(&pk(&a), vec![big])[0]), Some(Refusal::TooLarge));

        let other = Net::new([7; 32], &a);
        let Request::Register { mut roster } = other.roster(1, &other.ops, &[&a], &a) else {
            unreachable!()
        };
        roster.body[0] ^= 1;
        assert_eq!(
            reason(&r.handle(&pk(&a), vec![Request::Register { roster }])[0]),
            Some(Refusal::BadRoster)
        );
    }
}
