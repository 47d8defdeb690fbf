//! Signed membership of a network: who is in it, with which devices and which role, derived
//! from operations that admin devices sign, rooted at the creator's signed genesis.
//!
//! Owns the operations (their encoding and signatures) and the one rule that turns any set of
//! them into a membership, the same on every device whatever order the operations arrived in.
//! Knows nothing of Automerge, SQLite or the network: the network document carries the signed
//! operations as opaque bytes, and sessions ask this module who may do what.
//!
//! # The rule
//! Operations form a causal graph: each names the operations its author had seen (`parents`).
//! An operation counts (is *valid*) when
//! 1. its signature verifies, it names this network, and all its parents are known and descend
//!    from the genesis the caller trusts (the network's own, recorded at creation and carried
//!    in invitations);
//! 2. its author's device was an active admin device in the membership of the operation's
//!    causal past (what its author had seen), and the change makes sense there (a device is
//!    added to a member that exists, a member added only when not already in (a role changes
//!    by `SetRole` alone), …); and
//! 3. no valid *revocation* of its author (the author's device or member removed, or the
//!    member demoted to `member`) is concurrent with it. An operation excluded by 3 stays
//!    excluded, and so does everything whose authority came from it. (Rule 3 runs at most
//!    `MAX_ROUNDS` rounds: each exclusion can make another revocation count, and a chain of
//!    them, which only an admin can build, must not cost a round per link.)
//!
//!    For revocations, rule 3 is a dispute: a revocation `q` *disputes* a revocation `r` when
//!    they are concurrent, `q` revokes `r`'s author, and `r` does not *answer* `q` (revoke
//!    `q`'s own device or member back). A revocation disputed by one that nothing disputes
//!    loses and counts for nothing, and the acts of other authors are judged again without it.
//!    Revocations are judged after every other act, so a revocation whose author's authority
//!    came from an act rule 3 voids (an admin a removed device made concurrently) is no longer
//!    valid by then and disputes nothing. So two admins who revoke each other concurrently are
//!    both revoked, while the other revocations an admin made concurrently with its own
//!    revocation do not count: a removed admin's key, signing revocations "from before" its
//!    removal, takes at most the admins who removed it with it, never undoes its own removal,
//!    and never reaches anyone else.
//!
//! The membership of a set of valid operations: for each member, and each device, look at the
//! latest operations about it (those no other operation about it follows causally). Removal
//! wins: if any of them removes, it is removed (until an operation that saw the removal adds it
//! again). Least privilege wins: the role is the lowest any of them gives. So concurrent
//! conflicting operations resolve by what they are, never by which arrived first.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ids::{DeviceKey, DocId, MemberId};

/// Largest encoded operation accepted (a name and a few keys fit many times over).
pub const MAX_OP_BYTES: usize = 4 * 1024;
/// Most operations a network holds: devices refuse to store more, and the relay to keep more
/// (a network of tens of members makes hundreds). Revocations (removals, demotions) may go
/// [`REVOCATION_ROOM`] beyond it, so an admin gone bad who fills the network with operations
/// can still be removed.
pub const MAX_OPS: usize = 4096;
/// See [`MAX_OPS`].
pub const REVOCATION_ROOM: usize = 256;
/// Most rounds of rule 3 (exclusions) a resolution runs; see `resolve`.
pub const MAX_ROUNDS: usize = 16;
/// Most parents a device names when it signs an operation (2 KiB of ids, well within
/// [`MAX_OP_BYTES`]).
pub const MAX_PARENTS: usize = 64;

/// The parents a new operation names, given the network's operations and their membership:
/// every head, or, when there are more than [`MAX_PARENTS`], the heads whose pasts hold the
/// operations that count (greedily, most first), then the newest others. An operation whose
/// past left out a removal that counts, or held only operations "from before" one (a removed
/// admin can make hundreds of heads, with ids ground to sort first), would be judged in a past
/// where its own author is not an admin, and would not count.
pub fn choose_parents(ops: &[SignedOp], m: &Membership) -> Vec<OpId> {
    let mut out: Vec<OpId>;
    if m.heads.len() <= MAX_PARENTS {
        out = m.heads.clone();
    } else {
        let by_id: BTreeMap<OpId, &SignedOp> = ops.iter().map(|o| (o.id(), o)).collect();
        // What each head holds of the operations that count (itself included).
        let holds: Vec<BTreeSet<OpId>> = m
            .heads
            .iter()
            .map(|h| {
                let mut seen = BTreeSet::new();
                let mut todo = vec![*h];
                while let Some(id) = todo.pop() {
                    if !seen.insert(id) {
                        continue;
                    }
                    if let Some(op) = by_id.get(&id) {
                        todo.extend(op.body.parents.iter().copied());
                    }
                }
                seen.retain(|id| m.valid.contains(id));
                seen
            })
            .collect();
        let mut covered: BTreeSet<OpId> = BTreeSet::new();
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < MAX_PARENTS {
            // The newest of the heads that bring the most, so ties go to the newest.
            let best = (0..m.heads.len())
                .filter(|k| !chosen.contains(k))
                .map(|k| (holds[k].difference(&covered).count(), k))
                .max();
            match best {
                Some((gain, k)) if gain > 0 => {
                    covered.extend(holds[k].iter().copied());
                    chosen.push(k);
                }
                _ => break,
            }
        }
        for k in (0..m.heads.len()).rev() {
            if chosen.len() >= MAX_PARENTS {
                break;
            }
            if !chosen.contains(&k) {
                chosen.push(k);
            }
        }
        out = chosen.into_iter().map(|k| m.heads[k]).collect();
    }
    out.sort();
    out
}

/// The newest key epoch any of `ops` in the causal past of `parents` (them included) started:
/// a new epoch signed on `parents` takes the next number (see the rule for `Rekey`).
pub fn newest_epoch_before(ops: &[SignedOp], parents: &[OpId]) -> u32 {
    let by_id: BTreeMap<OpId, &SignedOp> = ops.iter().map(|o| (o.id(), o)).collect();
    let mut seen: BTreeSet<OpId> = BTreeSet::new();
    let mut todo: Vec<OpId> = parents.to_vec();
    let mut newest = 0;
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(op) = by_id.get(&id) else { continue };
        if let Change::Rekey { epoch, .. } = op.change {
            newest = newest.max(epoch);
        }
        todo.extend(op.body.parents.iter().copied());
    }
    newest
}

/// Whether a network's operations fit its cap: at most [`MAX_OPS`] that are not revocations
/// (or the new key epochs that follow their author's revocation), and [`REVOCATION_ROOM`]
/// more that are.
pub fn within_cap<'a>(ops: impl IntoIterator<Item = &'a SignedOp>) -> bool {
    let ops: Vec<&SignedOp> = ops.into_iter().collect();
    // The revocations, by id and author: a new epoch takes room only as the one that follows
    // its author's own revocation (one signed on nothing but old heads, a removed admin's
    // flood of them say, is an ordinary operation).
    let revocations: BTreeMap<OpId, DeviceKey> =
        ops.iter().filter(|o| o.is_revocation()).map(|o| (o.id(), o.author())).collect();
    let room = ops
        .iter()
        .filter(|op| {
            op.is_revocation()
                || (matches!(op.change, Change::Rekey { .. })
                    && op.body.parents.iter().any(|p| revocations.get(p) == Some(&op.author())))
        })
        .count();
    let all = ops.len();
    all - room <= MAX_OPS && all <= MAX_OPS + REVOCATION_ROOM
}

/// What a member may do in a network.
// Postcard encodes variants by index, so the names below are only what JSON shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads and writes what is shared with the network.
    Member,
    /// Also adds and removes members and devices, and changes roles.
    Admin,
}

impl Role {
    /// The role's name as stored and shown (`admin`, `member`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }
}

/// Why a device or member was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The phone was lost or stolen.
    Lost,
    /// The worker left the network.
    Left,
    /// The device or member is believed compromised.
    Compromised,
}

impl Reason {
    /// The reason's name as stored and shown (`lost`, `left`, `compromised`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Lost => "lost",
            Reason::Left => "left",
            Reason::Compromised => "compromised",
        }
    }
}

/// What one operation changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// The network's first operation: its creator, as its first admin, with the signing device.
    Genesis {
        /// A commitment to the network's key (its relay id), so the genesis names one network.
        key_commitment: [u8; 32],
        /// The creating member.
        member: [u8; 16],
        /// The creator's name in the network.
        name: String,
    },
    /// A member joins, with a role.
    AddMember {
        /// The member.
        member: [u8; 16],
        /// Their name in the network.
        name: String,
        /// Their role.
        role: Role,
    },
    /// A device of a member joins.
    AddDevice {
        /// The member.
        member: [u8; 16],
        /// The device's key.
        device: [u8; 32],
    },
    /// A member's role changes.
    SetRole {
        /// The member.
        member: [u8; 16],
        /// The new role.
        role: Role,
    },
    /// A device is removed.
    RemoveDevice {
        /// The device's key.
        device: [u8; 32],
        /// Why.
        reason: Reason,
    },
    /// A member and all their devices are removed.
    RemoveMember {
        /// The member.
        member: [u8; 16],
        /// Why.
        reason: Reason,
    },
    /// A new key epoch starts (after a removal): content written from now on is sealed under
    /// the key this commits to, sealed only to the devices active then.
    Rekey {
        /// The new epoch (greater than the one its author had seen).
        epoch: u32,
        /// A commitment to the epoch's key (the relay id it gives the network).
        key_commitment: [u8; 32],
    },
}

/// What the author signs: the change with names replaced by their commitments, so that the
/// relay can check an operation (who may do what) without learning who anyone is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Body {
    network: [u8; 16],
    parents: Vec<[u8; 32]>,
    author: [u8; 32],
    change: Signed,
}

/// [`Change`] as signed: a name is its commitment (see [`blind_name`]).
// Postcard encodes variants by index: the order is the format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Signed {
    Genesis { key_commitment: [u8; 32], member: [u8; 16], name: [u8; 32] },
    AddMember { member: [u8; 16], name: [u8; 32], role: Role },
    AddDevice { member: [u8; 16], device: [u8; 32] },
    SetRole { member: [u8; 16], role: Role },
    RemoveDevice { device: [u8; 32], reason: Reason },
    RemoveMember { member: [u8; 16], reason: Reason },
    Rekey { epoch: u32, key_commitment: [u8; 32] },
}

impl Signed {
    /// The change, with `name` for the name it commits to (empty when the name is not
    /// disclosed, as at the relay).
    fn change(&self, name: String) -> Change {
        match *self {
            Signed::Genesis { key_commitment, member, .. } => {
                Change::Genesis { key_commitment, member, name }
            }
            Signed::AddMember { member, role, .. } => Change::AddMember { member, name, role },
            Signed::AddDevice { member, device } => Change::AddDevice { member, device },
            Signed::SetRole { member, role } => Change::SetRole { member, role },
            Signed::RemoveDevice { device, reason } => Change::RemoveDevice { device, reason },
            Signed::RemoveMember { member, reason } => Change::RemoveMember { member, reason },
            Signed::Rekey { epoch, key_commitment } => Change::Rekey { epoch, key_commitment },
        }
    }

    /// The commitment to the name it carries, if it names someone.
    fn name(&self) -> Option<&[u8; 32]> {
        match self {
            Signed::Genesis { name, .. } | Signed::AddMember { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// A name and the nonce its commitment was made with, carried after the signed body by every
/// copy of the operation except the relay's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Disclosure {
    nonce: [u8; 16],
    name: String,
}

/// The commitment to `name` that `device` signs when it names `member`: a keyed hash under a
/// nonce derived from the device's secret, so that the relay, which sees the commitment,
/// cannot test guesses of a name (a dictionary of Dutch first names would otherwise do), while
/// the same device naming the same member the same way gets the same commitment (signing is
/// deterministic, as simulations need).
pub fn blind_name(device: &SigningKey, member: &[u8; 16], name: &str) -> [u8; 32] {
    commit_name(&name_nonce(device, member, name), name)
}

fn name_nonce(device: &SigningKey, member: &[u8; 16], name: &str) -> [u8; 16] {
    let mut h = blake3::Hasher::new_derive_key("nabij member name nonce v1");
    h.update(device.as_bytes());
    h.update(member);
    h.update(name.as_bytes());
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(&h.finalize().as_bytes()[..16]);
    nonce
}

fn commit_name(nonce: &[u8; 16], name: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("nabij member name v1");
    h.update(nonce);
    h.update(&(name.len() as u64).to_le_bytes());
    h.update(name.as_bytes());
    *h.finalize().as_bytes()
}

/// Why an operation could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// Too large to be an operation.
    #[error("membership operation of {0} bytes is too large")]
    TooLarge(usize),
    /// The bytes are not an operation.
    #[error("malformed membership operation: {0}")]
    Malformed(String),
}

/// An operation's id: the BLAKE3 hash of its signed body.
pub type OpId = [u8; 32];

/// A signed operation, as the network document carries it: the signature, the signed body and,
/// when it names someone, the name (absent in the relay's copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOp {
    bytes: Vec<u8>,
    /// Where the signed body ends in `bytes` (the disclosure, if any, follows).
    body_end: usize,
    body: Body,
    change: Change,
    disclosed: bool,
}

impl SignedOp {
    /// Signs `change` for `network`, after the operations `parents`, with `device`.
    pub fn sign(
        device: &SigningKey,
        network: DocId,
        parents: &[OpId],
        change: Change,
    ) -> Result<SignedOp, MembershipError> {
        let mut parents = parents.to_vec();
        parents.sort();
        parents.dedup();
        let (signed, disclosure) = match &change {
            Change::Genesis { key_commitment, member, name } => {
                let nonce = name_nonce(device, member, name);
                let signed = Signed::Genesis {
                    key_commitment: *key_commitment,
                    member: *member,
                    name: commit_name(&nonce, name),
                };
                (signed, Some(Disclosure { nonce, name: name.clone() }))
            }
            Change::AddMember { member, name, role } => {
                let nonce = name_nonce(device, member, name);
                let signed = Signed::AddMember {
                    member: *member,
                    name: commit_name(&nonce, name),
                    role: *role,
                };
                (signed, Some(Disclosure { nonce, name: name.clone() }))
            }
            Change::AddDevice { member, device } => {
                (Signed::AddDevice { member: *member, device: *device }, None)
            }
            Change::SetRole { member, role } => {
                (Signed::SetRole { member: *member, role: *role }, None)
            }
            Change::RemoveDevice { device, reason } => {
                (Signed::RemoveDevice { device: *device, reason: *reason }, None)
            }
            Change::RemoveMember { member, reason } => {
                (Signed::RemoveMember { member: *member, reason: *reason }, None)
            }
            Change::Rekey { epoch, key_commitment } => {
                (Signed::Rekey { epoch: *epoch, key_commitment: *key_commitment }, None)
            }
        };
        let body = Body {
            network: network_tag(network),
            parents,
            author: device.verifying_key().to_bytes(),
            change: signed,
        };
        let encoded =
            postcard::to_stdvec(&body).map_err(|e| MembershipError::Malformed(e.to_string()))?;
        let signature = device.sign(&signed_message(&encoded));
        let mut bytes = signature.to_bytes().to_vec();
        bytes.extend_from_slice(&encoded);
        let body_end = bytes.len();
        if let Some(d) = &disclosure {
            let tail =
                postcard::to_stdvec(d).map_err(|e| MembershipError::Malformed(e.to_string()))?;
            bytes.extend_from_slice(&tail);
        }
        if bytes.len() > MAX_OP_BYTES {
            return Err(MembershipError::TooLarge(bytes.len()));
        }
        Ok(SignedOp { bytes, body_end, body, change, disclosed: true })
    }

    /// Reads an operation (its signature is checked when the membership is resolved). An
    /// operation that names someone may come without the name (the relay's copy); one that
    /// comes with it must come with the name it commits to.
    pub fn decode(bytes: &[u8]) -> Result<SignedOp, MembershipError> {
        if bytes.len() > MAX_OP_BYTES {
            return Err(MembershipError::TooLarge(bytes.len()));
        }
        let encoded = bytes
            .get(64..)
            .ok_or_else(|| MembershipError::Malformed("shorter than a signature".into()))?;
        let (body, rest): (Body, _) = postcard::take_from_bytes(encoded)
            .map_err(|e| MembershipError::Malformed(e.to_string()))?;
        let body_end = bytes.len() - rest.len();
        let (name, disclosed) = match (body.change.name(), rest.is_empty()) {
            (_, true) => (String::new(), body.change.name().is_none()),
            (None, false) => {
                return Err(MembershipError::Malformed("bytes after the operation".into()));
            }
            (Some(commitment), false) => {
                let (d, rest): (Disclosure, _) = postcard::take_from_bytes(rest)
                    .map_err(|e| MembershipError::Malformed(e.to_string()))?;
                if !rest.is_empty() {
                    return Err(MembershipError::Malformed("bytes after the operation".into()));
                }
                if commit_name(&d.nonce, &d.name) != *commitment {
                    return Err(MembershipError::Malformed(
                        "the name is not the one the operation commits to".into(),
                    ));
                }
                (d.name, true)
            }
        };
        let change = body.change.change(name);
        Ok(SignedOp { bytes: bytes.to_vec(), body_end, body, change, disclosed })
    }

    /// Whether every name the operation commits to comes with it (the network document's copies
    /// must: members are shown by name).
    pub fn is_disclosed(&self) -> bool {
        self.disclosed
    }

    /// The encoding without names, for the relay: it checks who may do what, and learns no
    /// one's name.
    pub fn blinded(&self) -> &[u8] {
        &self.bytes[..self.body_end]
    }

    /// The encoding to store and send.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The operation's id: the BLAKE3 hash of its signed body (not of the signature, so the
    /// same operation signed twice is one operation).
    pub fn id(&self) -> OpId {
        *blake3::hash(self.bytes.get(64..self.body_end).unwrap_or_default()).as_bytes()
    }

    /// The device that signed it.
    pub fn author(&self) -> DeviceKey {
        DeviceKey::from_bytes(self.body.author)
    }

    /// What it changes.
    pub fn change(&self) -> &Change {
        &self.change
    }

    /// Whether it is about `network`.
    pub fn is_of(&self, network: DocId) -> bool {
        self.body.network == network_tag(network)
    }

    /// The tag of the network it is about (see [`network_tag`]).
    pub fn network_tag(&self) -> [u8; 16] {
        self.body.network
    }

    /// Whether it removes a device or member (or takes a member's admin role away).
    pub fn is_revocation(&self) -> bool {
        revokes(self).is_some()
    }

    /// Whether the signature holds (by the device the operation names as its author).
    pub fn signature_holds(&self) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.body.author) else { return false };
        let Some(sig) = self.bytes.get(..64).and_then(|s| <[u8; 64]>::try_from(s).ok()) else {
            return false;
        };
        let body = self.bytes.get(64..self.body_end).unwrap_or_default();
        key.verify(&signed_message(body), &Signature::from_bytes(&sig)).is_ok()
    }
}

/// Domain separation: a membership signature can never be mistaken for another of the device's.
fn signed_message(encoded: &[u8]) -> Vec<u8> {
    let mut m = b"nabij membership op v2\0".to_vec();
    m.extend_from_slice(encoded);
    m
}

/// One member as the membership has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Their name in the network.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// Their active devices.
    pub devices: BTreeSet<DeviceKey>,
    /// When they joined, as a position in the operations' order (for listing members in the
    /// order they joined, the same on every device).
    pub joined: usize,
}

/// Who is in a network, resolved from its operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// Active members.
    pub members: BTreeMap<MemberId, Member>,
    /// Devices removed, with the reason.
    pub removed_devices: BTreeMap<DeviceKey, Reason>,
    /// Operations that count.
    pub valid: BTreeSet<OpId>,
    /// How many operations descend from the genesis, counted or not: grows with what a device
    /// has seen, never with its clock.
    pub known: u64,
    /// The operations that descend from the genesis and that no other one follows: what a new
    /// operation names as its parents (never one outside the graph, which would make it count
    /// for no one). In the resolved (topological) order, oldest first.
    pub heads: Vec<OpId>,
    /// Operations whose author was once made an admin device in what it had seen, by
    /// operations of this set themselves: whatever else is true, any other can never count,
    /// and devices store no other (see `could_count`). Judged in each operation's own past
    /// alone, so the same on every device. Whether one counts is `valid`'s.
    pub authorized: BTreeSet<OpId>,
    /// The devices that made an operation in `authorized`: every device that was an admin at
    /// some point (a set that only grows, whatever the roles are now).
    pub admins_ever: BTreeSet<DeviceKey>,
    /// The key epochs: for each, the commitments of its keys (one, unless two admins started
    /// the same epoch at once). Epoch 0's is the genesis's.
    pub epochs: BTreeMap<u32, BTreeSet<[u8; 32]>>,
    /// Whether a device removed for good may hold a key of the newest epoch: a removal that
    /// counts is not in the past of that epoch's start (the removal's own re-key counted for
    /// nothing, its admin's acts voided by a dispute, say, or two admins removed two devices
    /// at once). An admin then starts a new epoch.
    pub renew_key: bool,
    /// The network's id at a relay (see [`relay_id_of`]), from its genesis.
    pub relay_id: Option<[u8; 32]>,
}

impl Membership {
    /// The member an active device belongs to.
    pub fn member_of(&self, device: &DeviceKey) -> Option<(MemberId, &Member)> {
        self.members.iter().find(|(_, m)| m.devices.contains(device)).map(|(id, m)| (*id, m))
    }

    /// Whether a device is active with the admin role.
    pub fn is_admin(&self, device: &DeviceKey) -> bool {
        self.member_of(device).is_some_and(|(_, m)| m.role == Role::Admin)
    }

    /// The newest key epoch (0 until a removal starts another).
    pub fn current_epoch(&self) -> u32 {
        self.epochs.keys().next_back().copied().unwrap_or_default()
    }

    /// Whether `commitment` is the commitment of a key of `epoch`.
    pub fn commits_to(&self, epoch: u32, commitment: &[u8; 32]) -> bool {
        self.epochs.get(&epoch).is_some_and(|c| c.contains(commitment))
    }

    /// Every active device.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceKey> {
        self.members.values().flat_map(|m| m.devices.iter())
    }
}

/// What an operation names its network by: a hash of the network's id, so that the relay,
/// which checks operations, never holds a document id (an id it could match against a ticket;
/// the hash it could only match by knowing the id already).
pub fn network_tag(network: DocId) -> [u8; 16] {
    let mut tag = [0u8; 16];
    let h = blake3::Hasher::new_derive_key("nabij membership network tag v1")
        .update(network.as_bytes())
        .finalize();
    tag.copy_from_slice(&h.as_bytes()[..16]);
    tag
}

/// The id of the network a genesis founds: a network's id commits to its whole genesis (its
/// creator's device, member, name and key commitment), so anyone who knows the id (from a
/// ticket or an invitation) knows which genesis is the network's: no one, its creator
/// included, can sign another one for it (and the same one signed again is the same
/// operation, ids being over the signed body). It commits to the name through the name's
/// commitment ([`blind_name`]), which is what the genesis signs.
pub fn network_id_for(
    author: &DeviceKey,
    key_commitment: &[u8; 32],
    member: &[u8; 16],
    name_commitment: &[u8; 32],
) -> DocId {
    let mut h = blake3::Hasher::new();
    h.update(b"nabij network id v3\0");
    h.update(author.as_bytes());
    h.update(key_commitment);
    h.update(member);
    h.update(name_commitment);
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize().as_bytes()[..16]);
    DocId::from_bytes(id)
}

/// The id of the network whose genesis `device` signs with these contents (see
/// [`network_id_for`]).
pub fn genesis_network_id(
    device: &SigningKey,
    key_commitment: &[u8; 32],
    member: &[u8; 16],
    name: &str,
) -> DocId {
    let author = DeviceKey::from_bytes(device.verifying_key().to_bytes());
    network_id_for(&author, key_commitment, member, &blind_name(device, member, name))
}

/// A network's id at a relay, from its genesis: a keyed hash of the genesis's key commitment
/// and its id. The relay can check it from the genesis alone (it gets the operations, without
/// names), and no one can found another network under it: a second genesis, whoever signs it
/// and whatever key it commits to, has another id. (Devices never reveal the network's id to
/// the relay through it: the genesis's key commitment is a keyed hash of the network key.)
pub fn relay_id_of(genesis: &SignedOp) -> Option<[u8; 32]> {
    match &genesis.body.change {
        Signed::Genesis { key_commitment, .. } if genesis.body.parents.is_empty() => {
            let mut h = blake3::Hasher::new_derive_key("nabij relay network id v2");
            h.update(key_commitment);
            h.update(&genesis.id());
            Some(*h.finalize().as_bytes())
        }
        _ => None,
    }
}

impl SignedOp {
    /// Whether this is a genesis that founds its network by id (see [`network_id_for`]):
    /// checkable without the creator's name, as the relay does.
    pub fn founds_its_network(&self) -> bool {
        match &self.body.change {
            Signed::Genesis { key_commitment, member, name } => {
                self.body.parents.is_empty()
                    && network_tag(network_id_for(&self.author(), key_commitment, member, name))
                        == self.body.network
            }
            _ => false,
        }
    }
}

/// The genesis `network` trusts among `ops`: the one its id commits to, or, for a network made
/// before signed membership (whose id commits to nothing), one signed by its recorded creator
/// `legacy_creator`. Several candidates (a creator signing twice): the smallest id, everywhere.
pub fn genesis_of(
    network: DocId,
    legacy_creator: Option<&DeviceKey>,
    ops: &[SignedOp],
) -> Option<OpId> {
    ops.iter()
        .filter(|op| op.is_of(network) && op.body.parents.is_empty())
        .filter(|op| {
            matches!(op.body.change, Signed::Genesis { .. })
                && (op.founds_its_network() || legacy_creator == Some(&op.author()))
        })
        .filter(|op| op.signature_holds())
        .map(SignedOp::id)
        .min()
}

/// The membership of `network` from its operations, rooted at the genesis it trusts (see
/// [`genesis_of`]); empty if it has none.
pub fn resolve_network(
    network: DocId,
    legacy_creator: Option<&DeviceKey>,
    ops: &[SignedOp],
) -> Membership {
    match genesis_of(network, legacy_creator, ops) {
        Some(g) => resolve(network, g, ops),
        None => Membership::default(),
    }
}

/// Resolves the membership of `network` from `ops` (any order, duplicates allowed), trusting
/// only the genesis `genesis`. See the module doc for the rule.
///
/// Cost: every operation's causal past is a bitset, and each operation's check asks only about
/// the few subjects it touches (its author, its member or device), each answered by one pass
/// over the operations about that subject. So a chain of 4,096 operations on one member
/// resolves in milliseconds, not hours: the relay resolves what strangers send it.
pub fn resolve(network: DocId, genesis: OpId, ops: &[SignedOp]) -> Membership {
    resolve_tagged(network_tag(network), genesis, ops)
}

/// [`resolve`] for the network whose operations carry `tag` (the relay knows no network's id).
pub fn resolve_tagged(tag: [u8; 16], genesis: OpId, ops: &[SignedOp]) -> Membership {
    // 1. Well-formed, signed, this network's; one copy of each.
    let mut by_id: BTreeMap<OpId, &SignedOp> = BTreeMap::new();
    for op in ops {
        if op.body.network == tag && op.signature_holds() {
            by_id.insert(op.id(), op);
        }
    }
    // Descendants of the genesis with every parent known, in a topological order (ties by id).
    let order = topological(genesis, &by_id);
    let g = Graph::new(order.iter().map(|id| by_id[id]).collect());
    let n = g.ops.len();

    // Revocations that lost a dispute (rule 3, second part): they count for nothing.
    let mut lost = Bits::new(n);
    let could = could_count(&g);
    let mut disputes = 0;
    loop {
        disputes += 1;
        let valid = settle(&g, &lost);
        let newly = disputed(&g, &valid);
        // Bounded like the rounds of `settle`, for the same reason.
        if newly.is_empty() || disputes >= MAX_ROUNDS {
            let mut out = g.membership(&|j| valid.has(j));
            out.renew_key = key_outlives_a_removal(&g, &valid, &out);
            out.known = n as u64;
            out.authorized = (0..n).filter(|i| could.has(*i)).map(|i| g.ops[i].id()).collect();
            out.admins_ever = (0..n).filter(|i| could.has(*i)).map(|i| g.ops[i].author()).collect();
            let parents: BTreeSet<OpId> =
                g.ops.iter().flat_map(|o| o.body.parents.iter().copied()).collect();
            out.heads = order.iter().copied().filter(|i| !parents.contains(i)).collect();
            out.relay_id = g.ops.first().and_then(|op| relay_id_of(op));
            return out;
        }
        for i in newly {
            lost.set(i);
        }
    }
}

/// The operations that could count (`Membership::authorized`): those whose author, in the
/// operation's own causal past, was once made an admin device by operations that could count
/// themselves (the genesis; a device added to a member, and that member added as or made an
/// admin), whatever happened to it since. Judged in each operation's own past alone, so the
/// same on every device whatever else it holds.
///
/// Liberal on purpose: it bounds who can make devices store operations (no member who was
/// never an admin, no stranger), and nothing more. Whether an operation counts is the rule's
/// (`valid`). A stricter test, "valid in its own past", froze honest admins for good whenever
/// exclusion raises a privilege: a removal by an admin that a removed device made "from
/// before", or by a removed admin and disputed, stands in the past of every later operation
/// of the admin it removed, though it never counts.
fn could_count(g: &Graph<'_>) -> Bits {
    let n = g.ops.len();
    let mut ok = Bits::new(n);
    // By `ok` operations: the members each device was added to, and who made each member an
    // admin.
    let mut added: BTreeMap<DeviceKey, Vec<(usize, MemberId)>> = BTreeMap::new();
    let mut made_admin: BTreeMap<MemberId, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let op = g.ops[i];
        let fine = match &op.change {
            Change::Genesis { .. } => i == 0,
            _ => {
                let past = &g.past[i];
                added.get(&op.author()).is_some_and(|adds| {
                    adds.iter().any(|(a, m)| {
                        past.has(*a)
                            && made_admin.get(m).is_some_and(|by| by.iter().any(|b| past.has(*b)))
                    })
                })
            }
        };
        if !fine {
            continue;
        }
        ok.set(i);
        match &op.change {
            Change::Genesis { member, .. } => {
                let m = MemberId::from_bytes(*member);
                added.entry(op.author()).or_default().push((i, m));
                made_admin.entry(m).or_default().push(i);
            }
            Change::AddDevice { member, device } => {
                let m = MemberId::from_bytes(*member);
                added.entry(DeviceKey::from_bytes(*device)).or_default().push((i, m));
            }
            Change::AddMember { member, role: Role::Admin, .. }
            | Change::SetRole { member, role: Role::Admin } => {
                made_admin.entry(MemberId::from_bytes(*member)).or_default().push(i);
            }
            _ => {}
        }
    }
    ok
}

/// See [`Membership::renew_key`].
fn key_outlives_a_removal(g: &Graph<'_>, valid: &Bits, m: &Membership) -> bool {
    let current = m.current_epoch();
    let starts: Vec<usize> = (0..g.ops.len())
        .filter(|i| valid.has(*i))
        .filter(|i| match g.ops[*i].change {
            Change::Rekey { epoch, .. } => epoch == current,
            Change::Genesis { .. } => current == 0,
            _ => false,
        })
        .collect();
    (0..g.ops.len()).filter(|r| valid.has(*r)).any(|r| {
        let gone = match &g.ops[r].change {
            Change::RemoveDevice { device, .. } => {
                m.removed_devices.contains_key(&DeviceKey::from_bytes(*device))
            }
            Change::RemoveMember { member, .. } => {
                !m.members.contains_key(&MemberId::from_bytes(*member))
            }
            _ => false,
        };
        gone && starts.iter().any(|k| !g.past[*k].has(r))
    })
}

/// Whether a revocation of `what` (whose target belongs to member `target`, as its author
/// knew it) answers a revocation signed by `author` (of member `member`): it revokes that
/// device, or its member, or another device of its member. (A removed admin's two devices are
/// one person's: the admin who removed the phone and then the laptop answered the phone's
/// revocation of her with both, or a thief holding both would get the laptop back.)
fn answers(
    what: &Revoked,
    target: Option<MemberId>,
    author: &DeviceKey,
    member: Option<MemberId>,
) -> bool {
    matches!(what, Revoked::Device(d) if d == author) || (target.is_some() && target == member)
}

/// Rules 2 and 3 for the acts that are no revocation: which operations are valid when the
/// revocations in `lost` count for nothing.
fn settle(g: &Graph<'_>, lost: &Bits) -> Bits {
    let n = g.ops.len();
    let mut excluded = lost.clone();
    let mut round = 0;
    loop {
        round += 1;
        // 2. Valid in its causal past.
        let mut valid = Bits::new(n);
        for i in 0..n {
            if excluded.has(i) {
                continue;
            }
            let ok = if i == 0 {
                matches!(g.ops[0].change, Change::Genesis { .. })
            } else {
                let past = &g.past[i];
                allowed(g, &|j| valid.has(j) && past.has(j), i)
            };
            if ok {
                valid.set(i);
            }
        }
        // 3. A revocation of an author wins over that author's concurrent acts.
        let revocations: Vec<(usize, Revoked)> = (0..n)
            .filter(|i| valid.has(*i))
            .filter_map(|i| revokes(g.ops[i]).map(|r| (i, r)))
            .collect();
        let mut newly = Vec::new();
        for i in (1..n).filter(|i| valid.has(*i) && revokes(g.ops[*i]).is_none()) {
            let author = g.ops[i].author();
            let concurrent: Vec<&Revoked> = revocations
                .iter()
                .filter(|(r, _)| *r != i && !g.past[i].has(*r) && !g.past[*r].has(i))
                .map(|(_, what)| what)
                .collect();
            if concurrent.is_empty() {
                continue;
            }
            let past = &g.past[i];
            let author_member = g.member_of(&author, &|j| valid.has(j) && past.has(j));
            let revoked = concurrent.iter().any(|what| match what {
                Revoked::Device(d) => *d == author,
                Revoked::Member(m) => Some(*m) == author_member,
            });
            if revoked {
                newly.push(i);
            }
        }
        // Rounds are bounded (the same bound everywhere, so every device still agrees): a
        // chain of exclusions, each making the next revocation count, can be built only by
        // admins of their own network, and would otherwise cost one full round per link.
        if newly.is_empty() || round >= MAX_ROUNDS {
            return valid;
        }
        for i in newly {
            excluded.set(i);
        }
    }
}

/// Rule 3 for revocations: the valid revocations that lose a dispute. A revocation `q`
/// *disputes* a revocation `r` when they are concurrent, `q` revokes `r`'s author, and `r`
/// does not answer `q` (revoke `q`'s own device or member). `r` loses when a revocation that
/// nothing disputes disputes it. So two admins revoking each other both count, and what else a
/// revoked admin revoked concurrently does not; a revocation whose author's authority is void
/// (an admin added by a removed device concurrently) is no longer valid here, so it cannot
/// dispute the removal that voided it.
fn disputed(g: &Graph<'_>, valid: &Bits) -> Vec<usize> {
    struct Rev {
        at: usize,
        author: DeviceKey,
        member: Option<MemberId>,
        what: Revoked,
        target: Option<MemberId>,
    }
    let revs: Vec<Rev> = (1..g.ops.len())
        .filter(|i| valid.has(*i))
        .filter_map(|i| {
            let what = revokes(g.ops[i])?;
            let author = g.ops[i].author();
            let past = &g.past[i];
            let in_past = |j: usize| valid.has(j) && past.has(j);
            let member = g.member_of(&author, &in_past);
            let target = g.target_member(&what, &in_past);
            Some(Rev { at: i, author, member, what, target })
        })
        .collect();
    // Who revokes each device and member, so each revocation looks only at those about its
    // author (there are many revocations only in a network whose admins make them).
    let mut by_device: BTreeMap<DeviceKey, Vec<usize>> = BTreeMap::new();
    let mut by_member: BTreeMap<MemberId, Vec<usize>> = BTreeMap::new();
    for (k, r) in revs.iter().enumerate() {
        match r.what {
            Revoked::Device(d) => by_device.entry(d).or_default().push(k),
            Revoked::Member(m) => by_member.entry(m).or_default().push(k),
        }
    }
    let answers = |r: &Rev, q: &Rev| answers(&r.what, r.target, &q.author, q.member);
    let disputers = |k: usize| -> Vec<usize> {
        let r = &revs[k];
        let on_member = r.member.and_then(|m| by_member.get(&m));
        by_device
            .get(&r.author)
            .into_iter()
            .chain(on_member)
            .flatten()
            .copied()
            .filter(|&q| {
                let (a, b) = (r.at, revs[q].at);
                a != b && !g.past[a].has(b) && !g.past[b].has(a) && !answers(r, &revs[q])
            })
            .collect()
    };
    let all: Vec<Vec<usize>> = (0..revs.len()).map(disputers).collect();
    (0..revs.len())
        .filter(|k| all[*k].iter().any(|q| all[*q].is_empty()))
        .map(|k| revs[k].at)
        .collect()
}

/// A set of operation indices, as bits.
#[derive(Debug, Clone)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }

    fn has(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn union(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
}

/// What a member is in some set of operations.
enum MemberState {
    Absent,
    Removed(Reason),
    Active(Role),
}

/// The operations in topological order, each one's causal past, and which operations are
/// about which member and device: enough to answer "what is X in this set of operations"
/// by looking only at the operations about X.
struct Graph<'a> {
    ops: Vec<&'a SignedOp>,
    past: Vec<Bits>,
    /// For each operation, the newest epoch any operation in its past started, counted or not.
    seen_epoch: Vec<u32>,
    members_about: BTreeMap<MemberId, Vec<usize>>,
    devices_about: BTreeMap<DeviceKey, Vec<usize>>,
    rekeys: Vec<usize>,
}

impl<'a> Graph<'a> {
    fn new(ops: Vec<&'a SignedOp>) -> Graph<'a> {
        let n = ops.len();
        let index: BTreeMap<OpId, usize> =
            ops.iter().enumerate().map(|(i, op)| (op.id(), i)).collect();
        let mut past: Vec<Bits> = Vec::with_capacity(n);
        for op in &ops {
            let mut set = Bits::new(n);
            for p in &op.body.parents {
                // Parents come earlier in a topological order: their pasts are known.
                if let Some(&j) = index.get(p) {
                    set.set(j);
                    set.union(&past[j]);
                }
            }
            past.push(set);
        }
        let mut members_about: BTreeMap<MemberId, Vec<usize>> = BTreeMap::new();
        let mut devices_about: BTreeMap<DeviceKey, Vec<usize>> = BTreeMap::new();
        let mut rekeys = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match &op.change {
                Change::Genesis { member, .. } => {
                    members_about.entry(MemberId::from_bytes(*member)).or_default().push(i);
                    devices_about.entry(op.author()).or_default().push(i);
                }
                Change::AddMember { member, .. }
                | Change::SetRole { member, .. }
                | Change::RemoveMember { member, .. } => {
                    members_about.entry(MemberId::from_bytes(*member)).or_default().push(i);
                }
                Change::AddDevice { device, .. } | Change::RemoveDevice { device, .. } => {
                    devices_about.entry(DeviceKey::from_bytes(*device)).or_default().push(i);
                }
                Change::Rekey { .. } => rekeys.push(i),
            }
        }
        let seen_epoch = (0..n)
            .map(|i| {
                rekeys
                    .iter()
                    .filter(|r| past[i].has(**r))
                    .filter_map(|r| match ops[*r].change {
                        Change::Rekey { epoch, .. } => Some(epoch),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        Graph { ops, past, seen_epoch, members_about, devices_about, rekeys }
    }

    /// The latest of `about` (ascending) in the set: those no other of them in the set
    /// follows, ascending. Scanning from the last, an operation in the past of one already
    /// taken is covered by it (pasts are closed under ancestry), so each step is one bit test,
    /// plus a union for each latest one.
    fn latest(&self, about: &[usize], in_set: &dyn Fn(usize) -> bool) -> Vec<usize> {
        let mut covered: Option<Bits> = None;
        let mut out = Vec::new();
        for &a in about.iter().rev().filter(|a| in_set(**a)) {
            if covered.as_ref().is_some_and(|c| c.has(a)) {
                continue;
            }
            match &mut covered {
                Some(c) => c.union(&self.past[a]),
                None => covered = Some(self.past[a].clone()),
            }
            out.push(a);
        }
        out.reverse();
        out
    }

    fn member(&self, m: &MemberId, in_set: &dyn Fn(usize) -> bool) -> MemberState {
        let Some(about) = self.members_about.get(m) else { return MemberState::Absent };
        let last = self.latest(about, in_set);
        if let Some(reason) = last.iter().find_map(|i| match self.ops[*i].change {
            Change::RemoveMember { reason, .. } => Some(reason),
            _ => None,
        }) {
            return MemberState::Removed(reason);
        }
        last.iter()
            .filter_map(|i| match self.ops[*i].change {
                Change::Genesis { .. } => Some(Role::Admin),
                Change::AddMember { role, .. } | Change::SetRole { role, .. } => Some(role),
                _ => None,
            })
            .min()
            .map_or(MemberState::Absent, MemberState::Active)
    }

    /// A device's member (the one it was last added to) and whether the device itself was
    /// removed, in the set; `None` if the set never adds it.
    fn device(
        &self,
        d: &DeviceKey,
        in_set: &dyn Fn(usize) -> bool,
    ) -> Option<(MemberId, Option<Reason>)> {
        let about = self.devices_about.get(d)?;
        let mut member = None;
        let mut first_add = None;
        for &i in about.iter().filter(|i| in_set(**i)) {
            match &self.ops[i].change {
                Change::Genesis { member: m, .. } => {
                    first_add.get_or_insert(i);
                    member.get_or_insert(MemberId::from_bytes(*m));
                }
                Change::AddDevice { member: m, .. } => {
                    first_add.get_or_insert(i);
                    member = Some(MemberId::from_bytes(*m));
                }
                _ => {}
            }
        }
        let (member, first) = (member?, first_add?);
        // A removal counts once the device was added (as the set sees it in order).
        let about: Vec<usize> = about.iter().copied().filter(|i| *i >= first).collect();
        let last = self.latest(&about, in_set);
        let removal = last.iter().find_map(|i| match self.ops[*i].change {
            Change::RemoveDevice { reason, .. } => Some(reason),
            _ => None,
        });
        Some((member, removal))
    }

    /// The active member an active device belongs to, in the set.
    fn member_of(&self, d: &DeviceKey, in_set: &dyn Fn(usize) -> bool) -> Option<MemberId> {
        match self.device(d, in_set)? {
            (m, None) => matches!(self.member(&m, in_set), MemberState::Active(_)).then_some(m),
            _ => None,
        }
    }

    /// The member a revocation's target belongs to: the member itself, or the device's
    /// member (the one it was last added to), in the set.
    fn target_member(&self, what: &Revoked, in_set: &dyn Fn(usize) -> bool) -> Option<MemberId> {
        match what {
            Revoked::Member(m) => Some(*m),
            Revoked::Device(d) => self.device(d, in_set).map(|(m, _)| m),
        }
    }

    fn is_admin(&self, d: &DeviceKey, in_set: &dyn Fn(usize) -> bool) -> bool {
        self.member_of(d, in_set)
            .is_some_and(|m| matches!(self.member(&m, in_set), MemberState::Active(Role::Admin)))
    }

    fn current_epoch(&self, in_set: &dyn Fn(usize) -> bool) -> u32 {
        self.rekeys
            .iter()
            .filter(|i| in_set(**i))
            .filter_map(|i| match self.ops[*i].change {
                Change::Rekey { epoch, .. } => Some(epoch),
                _ => None,
            })
            .max()
            .unwrap_or_default()
    }

    /// The membership the operations in the set make.
    fn membership(&self, in_set: &dyn Fn(usize) -> bool) -> Membership {
        let mut out = Membership {
            valid: (0..self.ops.len()).filter(|i| in_set(*i)).map(|i| self.ops[i].id()).collect(),
            ..Membership::default()
        };
        for (i, op) in self.ops.iter().enumerate().filter(|(i, _)| in_set(*i)) {
            match &op.change {
                Change::Genesis { key_commitment, .. } => {
                    out.epochs.entry(0).or_default().insert(*key_commitment);
                }
                Change::Rekey { epoch, key_commitment } => {
                    out.epochs.entry(*epoch).or_default().insert(*key_commitment);
                }
                _ => {}
            }
            let _ = i;
        }
        let mut removed_members: BTreeMap<MemberId, Reason> = BTreeMap::new();
        for (m, about) in &self.members_about {
            match self.member(m, in_set) {
                MemberState::Absent => {}
                MemberState::Removed(reason) => {
                    removed_members.insert(*m, reason);
                }
                MemberState::Active(role) => {
                    let mine: Vec<usize> = about.iter().copied().filter(|i| in_set(*i)).collect();
                    let name = mine
                        .iter()
                        .rev()
                        .find_map(|i| match &self.ops[*i].change {
                            Change::Genesis { name, .. } | Change::AddMember { name, .. } => {
                                Some(name.clone())
                            }
                            _ => None,
                        })
                        .unwrap_or_default();
                    let joined = mine.first().copied().unwrap_or_default();
                    out.members.insert(*m, Member { name, role, devices: BTreeSet::new(), joined });
                }
            }
        }
        for d in self.devices_about.keys() {
            let Some((m, removal)) = self.device(d, in_set) else { continue };
            match (removal, out.members.get_mut(&m)) {
                (Some(reason), _) => {
                    out.removed_devices.insert(*d, reason);
                }
                (None, Some(member)) => {
                    member.devices.insert(*d);
                }
                // A removed member's devices are removed with them, for the same reason.
                (None, None) => {
                    if let Some(reason) = removed_members.get(&m) {
                        out.removed_devices.insert(*d, *reason);
                    }
                }
            }
        }
        out
    }
}

/// Whose authority an operation takes away, if it is a revocation.
#[derive(Clone, Copy)]
enum Revoked {
    Device(DeviceKey),
    Member(MemberId),
}

fn revokes(op: &SignedOp) -> Option<Revoked> {
    match &op.change {
        Change::RemoveDevice { device, .. } => {
            Some(Revoked::Device(DeviceKey::from_bytes(*device)))
        }
        Change::RemoveMember { member, .. } => Some(Revoked::Member(MemberId::from_bytes(*member))),
        Change::SetRole { member, role: Role::Member } => {
            Some(Revoked::Member(MemberId::from_bytes(*member)))
        }
        _ => None,
    }
}

/// Whether operation `i`'s author may make its change given the operations in `in_set` (its
/// valid causal past).
fn allowed(g: &Graph<'_>, in_set: &dyn Fn(usize) -> bool, i: usize) -> bool {
    let op = g.ops[i];
    if !g.is_admin(&op.author(), in_set) {
        return false;
    }
    let active = |m: &[u8; 16]| {
        matches!(g.member(&MemberId::from_bytes(*m), in_set), MemberState::Active(_))
    };
    match &op.change {
        Change::Genesis { .. } => false,
        // A member joins once (again after a removal); a role changes by `SetRole` only. An
        // "add" of an active member with a lower role would be a demotion that is no
        // revocation: one by an admin being removed concurrently would be excluded, yet stay in
        // the past of every later operation of the member it demoted, which then never count
        // (an attacker review froze every other admin this way).
        Change::AddMember { member, .. } => !active(member),
        // A device joins a member that exists, unless it is another member's (adding it to the
        // same member again changes nothing, and counts: a member re-added after a removal has
        // its devices back).
        Change::AddDevice { member, device } => {
            active(member)
                && g.member_of(&DeviceKey::from_bytes(*device), in_set)
                    .is_none_or(|m| m == MemberId::from_bytes(*member))
        }
        Change::SetRole { member, .. } | Change::RemoveMember { member, .. } => active(member),
        Change::RemoveDevice { device, .. } => {
            g.member_of(&DeviceKey::from_bytes(*device), in_set).is_some()
        }
        // Newer than what counts, and at most one past the newest epoch in its past, counted
        // or not (an epoch number far ahead would leave no number for the next one).
        Change::Rekey { epoch, .. } => {
            *epoch > g.current_epoch(in_set) && *epoch <= g.seen_epoch[i].saturating_add(1)
        }
    }
}

/// Topological order of the operations that descend from `genesis` with all parents known:
/// of the operations whose parents are all placed, the smallest id first, so the order is the
/// same everywhere (Kahn's algorithm with the ready ones in id order).
fn topological(genesis: OpId, by_id: &BTreeMap<OpId, &SignedOp>) -> Vec<OpId> {
    let Some(g) = by_id.get(&genesis) else { return Vec::new() };
    if !g.body.parents.is_empty() {
        return Vec::new();
    }
    // For each operation, how many of its (distinct) parents are not placed yet; and who
    // waits for each.
    let mut waiting: BTreeMap<OpId, usize> = BTreeMap::new();
    let mut children: BTreeMap<OpId, Vec<OpId>> = BTreeMap::new();
    for (id, op) in by_id {
        if op.body.parents.is_empty() {
            continue;
        }
        waiting.insert(*id, op.body.parents.len());
        for p in &op.body.parents {
            children.entry(*p).or_default().push(*id);
        }
    }
    let mut ready: BTreeSet<OpId> = BTreeSet::from([genesis]);
    let mut order = Vec::new();
    while let Some(id) = ready.pop_first() {
        order.push(id);
        for c in children.get(&id).into_iter().flatten() {
            if let Some(w) = waiting.get_mut(c) {
                *w -= 1;
                if *w == 0 {
                    ready.insert(*c);
                }
            }
        }
    }
    order
}

#[cfg(test)]
mod oracle {
    //! The rule as first written (quadratic and worse): what the fast resolver must agree with.
    use super::*;

    pub(super) fn resolve(network: DocId, genesis: OpId, ops: &[SignedOp]) -> Membership {
        // 1. Well-formed, signed, this network's; one copy of each.
        let mut by_id: BTreeMap<OpId, &SignedOp> = BTreeMap::new();
        for op in ops {
            if op.is_of(network) && op.signature_holds() {
                by_id.insert(op.id(), op);
            }
        }
        // Descendants of the genesis with every parent known, in a topological order (ties by id).
        let order = topological(genesis, &by_id);
        let index: BTreeMap<OpId, usize> =
            order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let ops: Vec<&SignedOp> = order.iter().map(|id| by_id[id]).collect();
        let past: Vec<BTreeSet<usize>> = ancestors(&ops, &index);
        let concurrent =
            |a: usize, b: usize| a != b && !past[a].contains(&b) && !past[b].contains(&a);
        let seen = |i: usize| {
            past[i]
                .iter()
                .filter_map(|j| match ops[*j].change {
                    Change::Rekey { epoch, .. } => Some(epoch),
                    _ => None,
                })
                .max()
                .unwrap_or(0)
        };
        // The member of device `d` as operation `i` knew it (its valid causal past).
        let member_of = |valid: &[bool], i: usize, d: &DeviceKey| {
            let before: Vec<usize> = past[i].iter().copied().filter(|j| valid[*j]).collect();
            state(&ops, &past, &before).member_of(d).map(|(m, _)| m)
        };
        // Whether revocation `q` takes away the authority of `i`'s author.
        let revokes_author = |valid: &[bool], q: usize, i: usize| match revokes(ops[q]) {
            Some(Revoked::Device(d)) => d == ops[i].author(),
            Some(Revoked::Member(m)) => Some(m) == member_of(valid, i, &ops[i].author()),
            None => false,
        };
        // Whether revocation `r` answers revocation `q`: it revokes `q`'s author, or a device
        // of the same member.
        let answers = |valid: &[bool], r: usize, q: usize| {
            let target = match revokes(ops[r]) {
                Some(Revoked::Member(m)) => Some(m),
                Some(Revoked::Device(d)) => member_of(valid, r, &d),
                None => None,
            };
            revokes_author(valid, r, q)
                || (target.is_some() && target == member_of(valid, q, &ops[q].author()))
        };

        // What could count: whose author, in the operation's own past, was once made an admin
        // device by operations that could count themselves.
        let mut ok: Vec<bool> = vec![false; ops.len()];
        for i in 0..ops.len() {
            let author = ops[i].author();
            ok[i] = match &ops[i].change {
                Change::Genesis { .. } => i == 0,
                _ => past[i].iter().any(|a| {
                    let member = match &ops[*a].change {
                        Change::Genesis { member, .. } if ops[*a].author() == author => {
                            Some(*member)
                        }
                        Change::AddDevice { member, device } if *device == *author.as_bytes() => {
                            Some(*member)
                        }
                        _ => None,
                    };
                    ok[*a]
                        && member.is_some_and(|m| {
                            past[i].iter().any(|b| {
                                ok[*b]
                                    && match &ops[*b].change {
                                        Change::Genesis { member, .. } => *member == m,
                                        Change::AddMember { member, role: Role::Admin, .. }
                                        | Change::SetRole { member, role: Role::Admin } => {
                                            *member == m
                                        }
                                        _ => false,
                                    }
                            })
                        })
                }),
            };
        }
        let authorized: BTreeSet<OpId> =
            (0..ops.len()).filter(|i| ok[*i]).map(|i| ops[i].id()).collect();
        let admins_ever: BTreeSet<DeviceKey> =
            (0..ops.len()).filter(|i| ok[*i]).map(|i| ops[i].author()).collect();
        // Revocations that lost a dispute.
        let mut lost: BTreeSet<usize> = BTreeSet::new();
        let mut disputes = 0;
        loop {
            disputes += 1;
            let mut excluded = lost.clone();
            let mut round = 0;
            let valid = loop {
                round += 1;
                // 2. Valid in its causal past.
                let mut valid: Vec<bool> = vec![false; ops.len()];
                for i in 0..ops.len() {
                    if excluded.contains(&i) {
                        continue;
                    }
                    let before: Vec<usize> =
                        past[i].iter().copied().filter(|j| valid[*j]).collect();
                    valid[i] = i == 0 && matches!(ops[0].change, Change::Genesis { .. })
                        || (i > 0 && allowed(&state(&ops, &past, &before), ops[i], seen(i)));
                }
                // 3. A revocation of an author wins over that author's concurrent acts.
                let revocations: Vec<usize> =
                    (0..ops.len()).filter(|i| valid[*i] && revokes(ops[*i]).is_some()).collect();
                let mut newly = BTreeSet::new();
                for i in (1..ops.len()).filter(|i| valid[*i] && revokes(ops[*i]).is_none()) {
                    if revocations
                        .iter()
                        .any(|r| concurrent(*r, i) && revokes_author(&valid, *r, i))
                    {
                        newly.insert(i);
                    }
                }
                if newly.is_empty() || round >= MAX_ROUNDS {
                    break valid;
                }
                excluded.extend(newly);
            };
            // 3, for revocations: `q` disputes `r` when concurrent, `q` revokes `r`'s author,
            // and `r` does not revoke `q`'s author (device or member) back. A revocation
            // disputed by one that nothing disputes loses.
            let revocations: Vec<usize> =
                (1..ops.len()).filter(|i| valid[*i] && revokes(ops[*i]).is_some()).collect();
            let disputes_of = |r: usize| -> Vec<usize> {
                revocations
                    .iter()
                    .copied()
                    .filter(|q| {
                        concurrent(*q, r)
                            && revokes_author(&valid, *q, r)
                            && !answers(&valid, r, *q)
                    })
                    .collect()
            };
            let newly: Vec<usize> = revocations
                .iter()
                .copied()
                .filter(|r| disputes_of(*r).iter().any(|q| disputes_of(*q).is_empty()))
                .collect();
            if newly.is_empty() || disputes >= MAX_ROUNDS {
                let all: Vec<usize> = (0..ops.len()).filter(|i| valid[*i]).collect();
                let mut out = state(&ops, &past, &all);
                // A removal for good that the newest epoch's start does not follow.
                let newest = out.current_epoch();
                let starts: Vec<usize> = all
                    .iter()
                    .copied()
                    .filter(|i| match ops[*i].change {
                        Change::Genesis { .. } => newest == 0,
                        Change::Rekey { epoch, .. } => epoch == newest,
                        _ => false,
                    })
                    .collect();
                out.renew_key = all.iter().any(|r| {
                    let for_good = match &ops[*r].change {
                        Change::RemoveDevice { device, .. } => {
                            out.member_of(&DeviceKey::from_bytes(*device)).is_none()
                                && out.removed_devices.contains_key(&DeviceKey::from_bytes(*device))
                        }
                        Change::RemoveMember { member, .. } => {
                            !out.members.contains_key(&MemberId::from_bytes(*member))
                        }
                        _ => false,
                    };
                    for_good && starts.iter().any(|k| !past[*k].contains(r))
                });
                out.known = ops.len() as u64;
                out.authorized = authorized;
                out.admins_ever = admins_ever;
                let parents: BTreeSet<OpId> =
                    ops.iter().flat_map(|o| o.body.parents.iter().copied()).collect();
                out.heads = order.iter().copied().filter(|i| !parents.contains(i)).collect();
                out.relay_id = ops.first().and_then(|g| relay_id_of(g));
                return out;
            }
            lost.extend(newly);
        }
    }

    /// Whose authority an operation takes away, if it is a revocation.
    pub(super) enum Revoked {
        Device(DeviceKey),
        Member(MemberId),
    }

    pub(super) fn revokes(op: &SignedOp) -> Option<Revoked> {
        match &op.change {
            Change::RemoveDevice { device, .. } => {
                Some(Revoked::Device(DeviceKey::from_bytes(*device)))
            }
            Change::RemoveMember { member, .. } => {
                Some(Revoked::Member(MemberId::from_bytes(*member)))
            }
            Change::SetRole { member, role: Role::Member } => {
                Some(Revoked::Member(MemberId::from_bytes(*member)))
            }
            _ => None,
        }
    }

    /// Whether `op`'s author may make its change in membership `m` (its causal past), where
    /// `seen` is the newest epoch any operation in its past started.
    fn allowed(m: &Membership, op: &SignedOp, seen: u32) -> bool {
        if !m.is_admin(&op.author()) {
            return false;
        }
        match &op.change {
            Change::Genesis { .. } => false,
            Change::AddMember { member, .. } => {
                !m.members.contains_key(&MemberId::from_bytes(*member))
            }
            // A device joins a member that exists, unless it is another member's (adding it to the
            // same member again changes nothing, and counts: a member re-added after a removal has
            // its devices back).
            Change::AddDevice { member, device } => {
                let member = MemberId::from_bytes(*member);
                m.members.contains_key(&member)
                    && m.member_of(&DeviceKey::from_bytes(*device)).is_none_or(|(m, _)| m == member)
            }
            Change::SetRole { member, .. } | Change::RemoveMember { member, .. } => {
                m.members.contains_key(&MemberId::from_bytes(*member))
            }
            Change::RemoveDevice { device, .. } => {
                m.member_of(&DeviceKey::from_bytes(*device)).is_some()
            }
            Change::Rekey { epoch, .. } => {
                *epoch > m.current_epoch() && *epoch <= seen.saturating_add(1)
            }
        }
    }

    /// Topological order of the operations that descend from `genesis` with all parents known.
    fn topological(genesis: OpId, by_id: &BTreeMap<OpId, &SignedOp>) -> Vec<OpId> {
        let Some(g) = by_id.get(&genesis) else { return Vec::new() };
        if !g.body.parents.is_empty() {
            return Vec::new();
        }
        let mut placed: BTreeSet<OpId> = BTreeSet::from([genesis]);
        let mut order = vec![genesis];
        loop {
            // Ready: not placed, every parent placed. Smallest id first, so the order is the same
            // everywhere.
            let ready = by_id.iter().find(|(id, op)| {
                !placed.contains(*id)
                    && !op.body.parents.is_empty()
                    && op.body.parents.iter().all(|p| placed.contains(p))
            });
            match ready {
                Some((id, _)) => {
                    placed.insert(*id);
                    order.push(*id);
                }
                None => return order,
            }
        }
    }

    /// Each operation's causal past, as indices into `ops`.
    fn ancestors(ops: &[&SignedOp], index: &BTreeMap<OpId, usize>) -> Vec<BTreeSet<usize>> {
        let mut past: Vec<BTreeSet<usize>> = Vec::with_capacity(ops.len());
        for op in ops {
            let mut set = BTreeSet::new();
            for p in &op.body.parents {
                // Parents come earlier in a topological order: their pasts are known.
                if let Some(&j) = index.get(p) {
                    set.insert(j);
                    set.extend(past[j].iter().copied());
                }
            }
            past.push(set);
        }
        past
    }

    /// The membership the valid operations `subset` (indices, in topological order) make.
    fn state(ops: &[&SignedOp], past: &[BTreeSet<usize>], subset: &[usize]) -> Membership {
        // The latest operations about a subject: those no other operation about it follows.
        let latest = |about: &[usize]| -> Vec<usize> {
            about.iter().copied().filter(|a| !about.iter().any(|b| past[*b].contains(a))).collect()
        };
        let mut members_about: BTreeMap<MemberId, Vec<usize>> = BTreeMap::new();
        let mut devices_about: BTreeMap<DeviceKey, (MemberId, Vec<usize>)> = BTreeMap::new();
        let mut names: BTreeMap<MemberId, String> = BTreeMap::new();
        let mut epochs: BTreeMap<u32, BTreeSet<[u8; 32]>> = BTreeMap::new();
        for &i in subset {
            let op = ops[i];
            match &op.change {
                Change::Genesis { member, name, .. } => {
                    let m = MemberId::from_bytes(*member);
                    members_about.entry(m).or_default().push(i);
                    names.insert(m, name.clone());
                    devices_about.entry(op.author()).or_insert((m, Vec::new())).1.push(i);
                }
                Change::AddMember { member, name, .. } => {
                    let m = MemberId::from_bytes(*member);
                    members_about.entry(m).or_default().push(i);
                    names.insert(m, name.clone());
                }
                Change::SetRole { member, .. } | Change::RemoveMember { member, .. } => {
                    members_about.entry(MemberId::from_bytes(*member)).or_default().push(i);
                }
                Change::AddDevice { member, device } => {
                    let d = DeviceKey::from_bytes(*device);
                    let entry = devices_about
                        .entry(d)
                        .or_insert((MemberId::from_bytes(*member), Vec::new()));
                    entry.0 = MemberId::from_bytes(*member);
                    entry.1.push(i);
                }
                Change::RemoveDevice { device, .. } => {
                    if let Some(entry) = devices_about.get_mut(&DeviceKey::from_bytes(*device)) {
                        entry.1.push(i);
                    }
                }
                Change::Rekey { epoch, key_commitment } => {
                    epochs.entry(*epoch).or_default().insert(*key_commitment);
                }
            }
            if let Change::Genesis { key_commitment, .. } = &op.change {
                epochs.entry(0).or_default().insert(*key_commitment);
            }
        }
        let mut out = Membership {
            valid: subset.iter().map(|i| ops[*i].id()).collect(),
            epochs,
            ..Membership::default()
        };
        let mut removed_members: BTreeMap<MemberId, Reason> = BTreeMap::new();
        for (m, about) in &members_about {
            let last = latest(about);
            if let Some(reason) = last.iter().find_map(|i| match ops[*i].change {
                Change::RemoveMember { reason, .. } => Some(reason),
                _ => None,
            }) {
                removed_members.insert(*m, reason);
                continue;
            }
            let role = last
                .iter()
                .filter_map(|i| match ops[*i].change {
                    Change::Genesis { .. } => Some(Role::Admin),
                    Change::AddMember { role, .. } | Change::SetRole { role, .. } => Some(role),
                    _ => None,
                })
                .min();
            let Some(role) = role else { continue };
            let name = names.get(m).cloned().unwrap_or_default();
            let joined = about.first().copied().unwrap_or_default();
            out.members.insert(*m, Member { name, role, devices: BTreeSet::new(), joined });
        }
        for (d, (m, about)) in &devices_about {
            let last = latest(about);
            let removal = last.iter().find_map(|i| match ops[*i].change {
                Change::RemoveDevice { reason, .. } => Some(reason),
                _ => None,
            });
            match (removal, out.members.get_mut(m)) {
                (Some(reason), _) => {
                    out.removed_devices.insert(*d, reason);
                }
                (None, Some(member)) => {
                    member.devices.insert(*d);
                }
                // A removed member's devices are removed with them, for the same reason.
                (None, None) => {
                    if let Some(reason) = removed_members.get(m) {
                        out.removed_devices.insert(*d, *reason);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn dev(n: u8) -> DeviceKey {
        DeviceKey::from_bytes(key(n).verifying_key().to_bytes())
    }

    fn member(n: u8) -> [u8; 16] {
        [n; 16]
    }

    const NET: [u8; 16] = [9; 16];

    fn net() -> DocId {
        DocId::from_bytes(NET)
    }

    fn op(by: u8, parents: &[&SignedOp], change: Change) -> SignedOp {
        let ids: Vec<OpId> = parents.iter().map(|p| p.id()).collect();
        SignedOp::sign(&key(by), net(), &ids, change).expect("sign")
    }

    fn genesis() -> SignedOp {
        op(
            1,
            &[],
            Change::Genesis { key_commitment: [0; 32], member: member(1), name: "Anna".into() },
        )
    }

    fn add(by: u8, parents: &[&SignedOp], who: u8, role: Role) -> Vec<SignedOp> {
        let m = op(
            by,
            parents,
            Change::AddMember { member: member(who), name: format!("m{who}"), role },
        );
        let d =
            op(by, &[&m], Change::AddDevice { member: member(who), device: *dev(who).as_bytes() });
        vec![m, d]
    }

    /// The membership `ops` resolve to, which the first-written rule (the oracle) agrees with.
    fn resolve_all(g: &SignedOp, ops: &[SignedOp]) -> Membership {
        let m = resolve(net(), g.id(), ops);
        assert_eq!(m, oracle::resolve(net(), g.id(), ops), "the oracle disagrees");
        m
    }

    #[test]
    fn the_genesis_makes_its_author_the_first_admin() {
        let g = genesis();
        let m = resolve_all(&g, std::slice::from_ref(&g));
        assert!(m.is_admin(&dev(1)));
        assert_eq!(m.members.len(), 1);
        // Without the trusted genesis, nothing counts.
        assert!(resolve(net(), [0; 32], std::slice::from_ref(&g)).members.is_empty());
    }

    #[test]
    fn only_admins_change_membership_and_forgeries_do_not_count() {
        let g = genesis();
        let mut ops = vec![g.clone()];
        ops.extend(add(1, &[&g], 2, Role::Member));
        let m = resolve_all(&g, &ops);
        assert!(m.member_of(&dev(2)).is_some() && !m.is_admin(&dev(2)));
        // A member adds someone: does not count. An outsider signs an add: does not count.
        let tip = ops.last().expect("tip").clone();
        ops.extend(add(2, &[&tip], 3, Role::Admin));
        ops.extend(add(7, &[&tip], 7, Role::Admin));
        // A forged signature (signed bytes changed after signing) does not count.
        let mut forged = add(1, &[&tip], 8, Role::Admin);
        let last = forged[0].body_end - 1;
        forged[0].bytes[last] ^= 1;
        ops.extend(forged);
        // Another network's operation does not count.
        let other = SignedOp::sign(
            &key(1),
            DocId::from_bytes([8; 16]),
            &[g.id()],
            Change::AddMember { member: member(9), name: "x".into(), role: Role::Admin },
        )
        .expect("sign");
        ops.push(other);
        let m = resolve_all(&g, &ops);
        assert_eq!(m.members.len(), 2, "{m:?}");
    }

    #[test]
    fn two_admins_removing_each_other_at_once_are_both_removed() {
        let g = genesis();
        let mut ops = vec![g.clone()];
        ops.extend(add(1, &[&g], 2, Role::Admin));
        let tip = ops.last().expect("tip").clone();
        ops.push(op(1, &[&tip], Change::RemoveMember { member: member(2), reason: Reason::Left }));
        ops.push(op(
            2,
            &[&tip],
            Change::RemoveMember { member: member(1), reason: Reason::Compromised },
        ));
        let m = resolve_all(&g, &ops);
        assert!(m.members.is_empty(), "{m:?}");
    }

    #[test]
    fn removal_wins_over_a_concurrent_add_and_a_removed_admin_s_concurrent_acts() {
        let g = genesis();
        let mut ops = vec![g.clone()];
        ops.extend(add(1, &[&g], 2, Role::Admin));
        let tip = ops.last().expect("tip").clone();
        // Admin 1 removes admin 2's phone (lost); concurrently the phone adds a rogue admin,
        // who then adds a friend.
        let removal = op(
            1,
            &[&tip],
            Change::RemoveDevice { device: *dev(2).as_bytes(), reason: Reason::Lost },
        );
        let rogue = add(2, &[&tip], 6, Role::Admin);
        let friend = add(6, &[&rogue[1]], 7, Role::Member);
        ops.push(removal.clone());
        ops.extend(rogue);
        ops.extend(friend);
        let m = resolve_all(&g, &ops);
        assert_eq!(m.removed_devices.get(&dev(2)), Some(&Reason::Lost));
        assert!(m.member_of(&dev(6)).is_none() && m.member_of(&dev(7)).is_none(), "{m:?}");
        // Added again by an admin who saw the removal: back.
        let again =
            op(1, &[&removal], Change::AddDevice { member: member(2), device: *dev(2).as_bytes() });
        ops.push(again);
        assert!(resolve_all(&g, &ops).member_of(&dev(2)).is_some());
    }

    #[test]
    fn a_removed_admin_s_backdated_revocations_take_only_its_removers_with_it() {
        // Admins 1, 2 and 3; admin 4's phone is stolen. What the phone held: `tip`.
        let g = genesis();
        let mut ops = vec![g.clone()];
        for who in 2..=4 {
            let tip = ops.last().expect("tip").clone();
            ops.extend(add(1, &[&tip], who, Role::Admin));
        }
        let tip = ops.last().expect("tip").clone();
        // Admin 1 removes the phone; admin 2 then makes another admin, seeing the removal.
        let removal = op(
            1,
            &[&tip],
            Change::RemoveDevice { device: *dev(4).as_bytes(), reason: Reason::Lost },
        );
        let later = add(2, &[&removal], 5, Role::Admin);
        ops.push(removal.clone());
        ops.extend(later.clone());
        // The thief signs with the phone's key "from before" the removal (parents: `tip`):
        // admins 2 and 3 removed (and 2, who added 5 since, demoted), and admin 1, who removed it.
        let gone = |who: u8| {
            op(
                4,
                &[&tip],
                Change::RemoveMember { member: member(who), reason: Reason::Compromised },
            )
        };
        let thief = [
            gone(2),
            gone(3),
            op(4, &[&tip], Change::SetRole { member: member(2), role: Role::Member }),
            gone(1),
        ];
        ops.extend(thief.iter().cloned());
        let m = resolve_all(&g, &ops);
        assert_eq!(m.removed_devices.get(&dev(4)), Some(&Reason::Lost), "the phone stays out");
        for who in [2, 3, 5] {
            let admin = m.members.get(&MemberId::from_bytes(member(who))).map(|x| x.role);
            assert_eq!(admin, Some(Role::Admin), "admin {who} kept: {m:?}");
        }
        // Its remover it takes with it: the two revoked each other at once, as far as any
        // device can tell.
        assert!(!m.members.contains_key(&MemberId::from_bytes(member(1))), "{m:?}");
        // Admin 2, having seen the thief's removal of her (which lost), still acts: her next
        // operation could count everywhere (a device takes it), and counts: admin 1 is back.
        let tips: Vec<&SignedOp> = ops.iter().filter(|o| m.heads.contains(&o.id())).collect();
        let back = Change::AddMember { member: member(1), name: "m1".into(), role: Role::Admin };
        let again = op(2, &tips, back);
        ops.push(again.clone());
        let m = resolve_all(&g, &ops);
        assert!(m.authorized.contains(&again.id()) && m.valid.contains(&again.id()), "{m:?}");
        assert!(m.is_admin(&dev(1)), "{m:?}");
        // And a removal it signs in answer to a removal it has not seen counts the same way:
        // the thief cannot keep its phone in by answering with a different kind.
        let mut ops = ops[..ops.len() - thief.len() - 1].to_vec();
        ops.push(op(4, &[&tip], Change::SetRole { member: member(1), role: Role::Member }));
        let m = resolve_all(&g, &ops);
        assert_eq!(m.removed_devices.get(&dev(4)), Some(&Reason::Lost), "{m:?}");
        let one = m.members.get(&MemberId::from_bytes(member(1))).map(|x| x.role);
        assert_eq!(one, Some(Role::Member), "{m:?}");
    }

    #[test]
    fn a_key_a_removed_device_may_hold_asks_for_a_new_epoch() {
        let g = genesis();
        let mut ops = vec![g.clone()];
        ops.extend(add(1, &[&g], 2, Role::Admin));
        for who in [3, 4] {
            let tip = ops.last().expect("tip").clone();
            ops.extend(add(1, &[&tip], who, Role::Member));
        }
        let tip = ops.last().expect("tip").clone();
        assert!(!resolve_all(&g, &ops).renew_key, "no one removed");
        // Admin 1 removes device 3 and starts epoch 1 after it: nothing to renew.
        let lost = |by: u8, who: u8, epoch: u32, parents: &[&SignedOp]| {
            let removal = op(
                by,
                parents,
                Change::RemoveDevice { device: *dev(who).as_bytes(), reason: Reason::Lost },
            );
            let rekey = op(by, &[&removal], Change::Rekey { epoch, key_commitment: [who; 32] });
            [removal, rekey]
        };
        let ones = lost(1, 3, 1, &[&tip]);
        ops.extend(ones.iter().cloned());
        assert!(!resolve_all(&g, &ops).renew_key);
        // Admin 2, at the same time, removes device 4 and starts its own epoch 1, sealed to
        // device 3 (removed, as admin 2 did not know): that key outlives a removal…
        let twos = lost(2, 4, 1, &[&tip]);
        ops.extend(twos.iter().cloned());
        let m = resolve_all(&g, &ops);
        assert!(m.renew_key, "{m:?}");
        // …until an epoch starts after both removals.
        let fresh =
            op(2, &[&ones[1], &twos[1]], Change::Rekey { epoch: 2, key_commitment: [9; 32] });
        ops.push(fresh);
        let m = resolve_all(&g, &ops);
        assert!(!m.renew_key, "{m:?}");
    }

    #[test]
    fn a_removed_admin_cannot_dispute_its_removal_through_an_admin_it_makes() {
        // Admins 1 and 4; admin 4's phone is stolen after `tip`, and admin 1 removes it.
        let g = genesis();
        let mut ops = vec![g.clone()];
        ops.extend(add(1, &[&g], 4, Role::Admin));
        let tip = ops.last().expect("tip").clone();
        let removal = op(
            1,
            &[&tip],
            Change::RemoveDevice { device: *dev(4).as_bytes(), reason: Reason::Lost },
        );
        ops.push(removal);
        // The thief makes a puppet admin "from before" the removal, and the puppet removes
        // admin 1 (a revocation admin 1's removal does not answer, by a device it never saw).
        let puppet = add(4, &[&tip], 6, Role::Admin);
        let gone = op(
            6,
            &[&puppet[1]],
            Change::RemoveMember { member: member(1), reason: Reason::Compromised },
        );
        ops.extend(puppet);
        ops.push(gone);
        let m = resolve_all(&g, &ops);
        assert_eq!(m.removed_devices.get(&dev(4)), Some(&Reason::Lost), "{m:?}");
        assert!(m.member_of(&dev(6)).is_none(), "the puppet is void: {m:?}");
        assert!(m.is_admin(&dev(1)), "admin 1 stays: {m:?}");
    }

    #[test]
    fn concurrent_promotion_and_demotion_leave_the_lower_role() {
        let g = genesis();
        let mut ops = vec![g.clone()];
        ops.extend(add(1, &[&g], 2, Role::Admin));
        ops.extend(add(1, &[ops.last().expect("tip")], 3, Role::Member));
        let tip = ops.last().expect("tip").clone();
        ops.push(op(1, &[&tip], Change::SetRole { member: member(3), role: Role::Admin }));
        ops.push(op(2, &[&tip], Change::SetRole { member: member(3), role: Role::Member }));
        let m = resolve_all(&g, &ops);
        assert!(m.member_of(&dev(3)).is_some() && !m.is_admin(&dev(3)), "{m:?}");
    }

    /// The relay's copy of an operation has no name, and is the same operation: same id, same
    /// signature, same membership. A name that is not the one committed to is refused, and the
    /// commitment does not give the name away to one who guesses it without the signer's key.
    #[test]
    fn names_are_committed_to_and_can_be_left_out() {
        let g = genesis();
        let adds = add(1, &[&g], 2, Role::Admin);
        let blinded: Vec<SignedOp> = std::iter::once(&g)
            .chain(&adds)
            .map(|o| SignedOp::decode(o.blinded()).unwrap())
            .collect();
        assert!(!blinded[0].is_disclosed() && !blinded[1].is_disclosed());
        assert!(blinded[2].is_disclosed(), "an op that names no one has nothing to hide");
        for (full, b) in std::iter::once(&g).chain(&adds).zip(&blinded) {
            assert_eq!(full.id(), b.id());
            assert!(b.signature_holds());
            assert!(!b.bytes().windows(4).any(|w| w == b"Anna"));
        }
        let m = resolve(net(), g.id(), &blinded);
        assert_eq!(m.members.len(), 2);
        assert!(m.is_admin(&dev(2)));
        assert_eq!(m.members[&MemberId::from_bytes(member(1))].name, "");
        // Full copies decode with their names; a swapped name is refused.
        let full = SignedOp::decode(g.bytes()).unwrap();
        assert_eq!(full, g);
        assert!(matches!(full.change(), Change::Genesis { name, .. } if name == "Anna"));
        let mut other = g.blinded().to_vec();
        let forged = Disclosure { nonce: [0; 16], name: "Bram".into() };
        other.extend(postcard::to_stdvec(&forged).unwrap());
        assert!(matches!(SignedOp::decode(&other), Err(MembershipError::Malformed(_))));
        // Guessing: the commitment to "Anna" under another key's nonce is not the one signed.
        let Signed::Genesis { name: signed, .. } = &g.body.change else { unreachable!() };
        assert_ne!(*signed, blind_name(&key(2), &member(1), "Anna"));
        assert_eq!(*signed, blind_name(&key(1), &member(1), "Anna"));
        // Bytes after an op that names no one, or after the name, are refused.
        let mut extra = adds[1].bytes().to_vec();
        extra.push(0);
        assert!(SignedOp::decode(&extra).is_err());
        let mut extra = g.bytes().to_vec();
        extra.push(0);
        assert!(SignedOp::decode(&extra).is_err());
    }

    /// Found by a review: a creator (demoted, removed, or its phone stolen) signing another
    /// genesis for the same network, to be its only member again. A network's id commits to
    /// its whole genesis, and the same genesis signed again is the same operation.
    #[test]
    fn a_creator_cannot_sign_a_second_genesis_for_a_network() {
        let (commitment, m1) = ([3; 32], member(1));
        let id = genesis_network_id(&key(1), &commitment, &m1, "Anna");
        let genesis = |name: &str| {
            let c = Change::Genesis { key_commitment: commitment, member: m1, name: name.into() };
            SignedOp::sign(&key(1), id, &[], c).expect("sign")
        };
        let g = genesis("Anna");
        let mut ops = vec![g.clone()];
        let add = SignedOp::sign(
            &key(1),
            id,
            &[g.id()],
            Change::AddMember { member: member(2), name: "m2".into(), role: Role::Admin },
        )
        .expect("sign");
        let dev2 = SignedOp::sign(
            &key(1),
            id,
            &[add.id()],
            Change::AddDevice { member: member(2), device: *dev(2).as_bytes() },
        )
        .expect("sign");
        ops.extend([add, dev2]);
        assert_eq!(resolve_network(id, None, &ops).members.len(), 2);
        // Other names give other networks: none of them is this network's genesis.
        for name in ["Anna ", "anna", "A"] {
            let mut with = ops.clone();
            with.push(genesis(name));
            assert_eq!(genesis_of(id, None, &with), Some(g.id()), "{name}");
            assert_eq!(resolve_network(id, None, &with).members.len(), 2);
        }
        // The same genesis signed again (another signature) is the same operation.
        let mut again = g.bytes().to_vec();
        again[..64].copy_from_slice(&[0; 64]);
        let again = SignedOp::decode(&again).expect("decode");
        assert_eq!(again.id(), g.id());
    }

    #[test]
    fn bytes_round_trip_and_garbage_is_typed() {
        let g = genesis();
        assert_eq!(SignedOp::decode(g.bytes()).expect("decode"), g);
        assert!(matches!(SignedOp::decode(&[1, 2, 3]), Err(MembershipError::Malformed(_))));
        assert!(matches!(
            SignedOp::decode(&vec![0; MAX_OP_BYTES + 1]),
            Err(MembershipError::TooLarge(_))
        ));
    }

    /// Devices 1..=4 act on their own copies of the operations and exchange them now and then;
    /// the steps are random, admin or not, sensible or not.
    fn play(steps: &[(u8, u8, u8, u8)]) -> (SignedOp, Vec<SignedOp>) {
        let g = genesis();
        let mut views: Vec<Vec<SignedOp>> = vec![vec![g.clone()]; 5];
        for &(what, a, b, x) in steps {
            let (a, b) = (1 + a % 4, 1 + b % 4);
            let (ai, bi) = (a as usize, b as usize);
            if what % 4 == 0 {
                let theirs = views[bi].clone();
                for o in theirs {
                    if !views[ai].contains(&o) {
                        views[ai].push(o);
                    }
                }
                continue;
            }
            let m = resolve_all(&g, &views[ai]);
            let heads: Vec<OpId> = {
                let ids: Vec<OpId> = views[ai].iter().map(SignedOp::id).collect();
                let parents: BTreeSet<OpId> =
                    views[ai].iter().flat_map(|o| o.body.parents.clone()).collect();
                ids.into_iter().filter(|i| !parents.contains(i)).collect()
            };
            let who = 1 + x % 4;
            let change = match what % 4 {
                1 => Change::AddMember {
                    member: member(who),
                    name: format!("m{who}"),
                    role: if x % 2 == 0 { Role::Admin } else { Role::Member },
                },
                2 if m.members.contains_key(&MemberId::from_bytes(member(who))) => {
                    Change::AddDevice { member: member(who), device: *dev(who).as_bytes() }
                }
                2 => Change::SetRole { member: member(who), role: Role::Member },
                _ if x % 2 == 0 => {
                    Change::RemoveDevice { device: *dev(who).as_bytes(), reason: Reason::Lost }
                }
                _ => Change::RemoveMember { member: member(who), reason: Reason::Left },
            };
            let o = SignedOp::sign(&key(a), net(), &heads, change).expect("sign");
            views[ai].push(o);
        }
        let all: Vec<SignedOp> = views.into_iter().flatten().collect();
        (g, all)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Every device that holds the same operations, in any order and with repeats, derives
        /// the same membership; and every operation that counts was made by a device that was
        /// an admin in what its author had seen.
        #[test]
        fn membership_is_the_same_everywhere(
            steps in proptest::collection::vec((0u8..8, 0u8..8, 0u8..8, 0u8..8), 1..40),
            shuffle in any::<u64>(),
        ) {
            let (g, all) = play(&steps);
            let reference = resolve_all(&g, &all);
            let mut shuffled = all.clone();
            let mut s = shuffle | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            shuffled.extend(all.iter().take(3).cloned());
            prop_assert_eq!(&resolve_all(&g, &shuffled), &reference);
            // The fast resolver says what the rule as first written says.
            prop_assert_eq!(&super::oracle::resolve(net(), g.id(), &all), &reference);
            // Rule 2: whatever counts was made by an admin of what its author had seen.
            let by_id: BTreeMap<OpId, &SignedOp> = all.iter().map(|o| (o.id(), o)).collect();
            for o in all.iter().filter(|o| reference.valid.contains(&o.id())) {
                if matches!(o.change(), Change::Genesis { .. }) {
                    continue;
                }
                let mut seen: BTreeSet<OpId> = BTreeSet::new();
                let mut todo: Vec<OpId> = o.body.parents.clone();
                while let Some(p) = todo.pop() {
                    if seen.insert(p) {
                        todo.extend(by_id[&p].body.parents.iter().copied());
                    }
                }
                let past: Vec<SignedOp> = seen.iter().map(|p| by_id[p].clone()).collect();
                prop_assert!(resolve_all(&g, &past).is_admin(&o.author()), "{:?} by a non-admin", o.change());
            }
        }
    }
}
