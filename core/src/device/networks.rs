//! Networks: rosters, members and the network key sealed to each member device.

use super::*;
use crate::{
    membership::{self, Change, Membership, SignedOp},
    model::{Member, Reason, RemovedDevice, Role},
};

impl Device {
    /// Starts a network with this device's member as its first member and admin. The network's
    /// id commits to the signed genesis (see [`membership::network_id_for`]).
    pub fn create_network(&self, name: &str) -> Result<DocId, Error> {
        let name = model::required_short("network name", name)?;
        let key = SecretKey::generate(&self.randomness)?;
        let commitment = crypto::relay_network_id(&key);
        let me = self.device_key();
        let id = membership::network_id_for(&me, &commitment, self.member.as_bytes());
        let genesis = SignedOp::sign(
            self.identity.signing_key(),
            id,
            &[],
            Change::Genesis {
                key_commitment: commitment,
                member: *self.member.as_bytes(),
                name: self.display_name(),
            },
        )?;
        self.create_as(DocKind::Network, id, |d, id, a, now| {
            let sealed = crypto::seal_network_key(&self.randomness, &key, id, 0, &a.device)
                .map_err(|e| DocError::Malformed(format!("sealing the network key: {e}")))?;
            doc::create_network(d, id, &name, a, &genesis, sealed.as_bytes(), now)
        })
    }

    /// Adds a member's device to a network (a new member, with the `member` role, or a new
    /// phone of a member). Only an admin of the network may.
    pub fn add_member(
        &self,
        network: DocId,
        member: MemberId,
        name: &str,
        device: DeviceKey,
    ) -> Result<(), Error> {
        let name = model::required_short("member name", name)?;
        let changes = |m: &Membership| {
            if let Some((holder, _)) = m.member_of(&device) {
                return if holder == member {
                    Ok(Vec::new())
                } else {
                    Err(Error::NotAllowed(format!(
                        "device {} belongs to another member of the network",
                        device.short()
                    )))
                };
            }
            let mut out = Vec::new();
            if !m.members.contains_key(&member) {
                out.push(Change::AddMember {
                    member: *member.as_bytes(),
                    name: name.clone(),
                    role: Role::Member,
                });
            }
            out.push(Change::AddDevice { member: *member.as_bytes(), device: *device.as_bytes() });
            Ok(out)
        };
        let message = format!("Added {name} (device {}) to the network", device.short());
        self.change_membership(network, message, changes, |d| {
            // The new device gets the network key now if this device holds it; otherwise a
            // member who does seals it at their next relay sync.
            if let Some(key) = self.network_key_in(d, network)? {
                let sealed = crypto::seal_network_key(&self.randomness, &key, network, 0, &device)?;
                doc::put_sealed_network_key(d, 0, &device, sealed.as_bytes())?;
            }
            Ok(())
        })
    }

    /// Gives a member of a network another role. Only an admin may.
    pub fn set_role(&self, network: DocId, member: MemberId, role: Role) -> Result<(), Error> {
        let changes = |m: &Membership| match m.members.get(&member) {
            None => Err(not_a_member(member)),
            Some(x) if x.role == role => Ok(Vec::new()),
            Some(_) => Ok(vec![Change::SetRole { member: *member.as_bytes(), role }]),
        };
        let message = format!("Made member {member} {}", role.as_str());
        self.change_membership(network, message, changes, |_| Ok(()))
    }

    /// Removes one device from a network (a lost phone), keeping its member. Only an admin may.
    pub fn remove_device(
        &self,
        network: DocId,
        device: DeviceKey,
        reason: Reason,
    ) -> Result<(), Error> {
        let changes = |m: &Membership| match m.member_of(&device) {
            None if m.removed_devices.contains_key(&device) => Ok(Vec::new()),
            None => Err(Error::NotFound { kind: "device in the network", id: device.to_string() }),
            Some(_) => Ok(vec![Change::RemoveDevice { device: *device.as_bytes(), reason }]),
        };
        let message = format!("Removed device {} ({})", device.short(), reason.as_str());
        self.change_membership(network, message, changes, |_| Ok(()))
    }

    /// Removes a member, with all their devices, from a network. Only an admin may.
    pub fn remove_member(
        &self,
        network: DocId,
        member: MemberId,
        reason: Reason,
    ) -> Result<(), Error> {
        let changes = |m: &Membership| match m.members.get(&member) {
            None => Err(not_a_member(member)),
            Some(_) => Ok(vec![Change::RemoveMember { member: *member.as_bytes(), reason }]),
        };
        let message = format!("Removed member {member} ({})", reason.as_str());
        self.change_membership(network, message, changes, |_| Ok(()))
    }

    /// Signs `changes` (given the membership as this device knows it) one after the other, and
    /// writes them with `also` into the network document in one change. Refused unless this
    /// device is an admin of the network.
    fn change_membership(
        &self,
        network: DocId,
        message: String,
        changes: impl FnOnce(&Membership) -> Result<Vec<Change>, Error>,
        also: impl FnOnce(&mut AutoCommit) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let (m, _) = self.membership(network)?;
        if !m.is_admin(&self.device_key()) {
            return Err(Error::NotAllowed(
                "only an admin of the network can change who is in it".into(),
            ));
        }
        let changes = changes(&m)?;
        if changes.is_empty() {
            return Ok(());
        }
        self.edit(network, DocKind::Network, |d, _, now| {
            let mut parents = m.heads.clone();
            for c in changes {
                let op = SignedOp::sign(self.identity.signing_key(), network, &parents, c)?;
                doc::put_op(d, &op)?;
                parents = vec![op.id()];
            }
            also(d)?;
            doc::commit_pending(d, message, now)?;
            Ok(())
        })
    }

    /// The membership of a network as this device knows it (every operation it has seen), and
    /// the network as shown.
    pub(crate) fn membership(&self, network: DocId) -> Result<(Membership, Network), Error> {
        let nd = self.read(network, DocKind::Network, |d| Ok(doc::read_network(d)?))?;
        resolve_network(&self.reader.lock(), &nd)
    }

    /// The network key sealed to this device in a network document, opened.
    pub(crate) fn network_key_in(
        &self,
        d: &AutoCommit,
        network: DocId,
    ) -> Result<Option<SecretKey>, Error> {
        let Some(sealed) = doc::sealed_network_key(d, 0, &self.device_key())? else {
            return Ok(None);
        };
        let (key, id) = crypto::open_network_key(&self.identity, &sealed, 0)?;
        if id != network {
            return Err(Error::Crypto(CryptoError::Tampered));
        }
        Ok(Some(key))
    }

    /// The id a network has at a relay (derived from its key), if this device holds the key.
    pub fn relay_network_id(&self, network: DocId) -> Result<Option<[u8; 32]>, Error> {
        self.read(network, DocKind::Network, |d| {
            Ok(self.network_key_in(d, network)?.map(|k| crypto::relay_network_id(&k)))
        })
    }

    /// Makes sure every device on a network's roster has the network key sealed to it, and
    /// returns the key (None if this device cannot open one). A network made before keys
    /// existed gets its key here, from its creator's device only, so two devices never make
    /// two keys for one network. A listed key that cannot be sealed to (not a valid Ed25519
    /// point) is skipped and logged: it never blocks the others.
    pub(crate) fn seal_network_keys(&self, network: DocId) -> Result<Option<SecretKey>, Error> {
        let me = self.device_key();
        let roster = self.network(network)?;
        let (key, missing, i_created) = self.read(network, DocKind::Network, |d| {
            let key = self.network_key_in(d, network)?;
            let mut missing = Vec::new();
            for dev in roster.members.iter().flat_map(|m| m.devices.iter()) {
                if doc::sealed_network_key(d, 0, dev)?.is_none() && !missing.contains(dev) {
                    missing.push(*dev);
                }
            }
            Ok((key, missing, doc::network_creator(d)? == Some(me)))
        })?;
        if missing.is_empty() || (key.is_none() && !i_created) {
            return Ok(key);
        }
        let fresh = SecretKey::generate(&self.randomness)?;
        self.edit(network, DocKind::Network, |d, _, now| {
            // Read again under the writer lock: another sync of this device may have made or
            // sealed the key since.
            let key = match self.network_key_in(d, network)? {
                Some(k) => k,
                None => {
                    doc::ensure_key_maps(d)?;
                    let mine = crypto::seal_network_key(&self.randomness, &fresh, network, 0, &me)?;
                    doc::put_sealed_network_key(d, 0, &me, mine.as_bytes())?;
                    fresh.clone()
                }
            };
            let mut sealed = 0;
            for dev in &missing {
                match crypto::seal_network_key(&self.randomness, &key, network, 0, dev) {
                    Ok(s) => {
                        if doc::put_sealed_network_key(d, 0, dev, s.as_bytes())? {
                            sealed += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(device = %dev, error = %e, "cannot seal to a listed key")
                    }
                }
            }
            doc::commit_pending(d, format!("Sealed the network key to {sealed} devices"), now)?;
            Ok(key)
        })
        .map(Some)
    }

    /// Reads a network: its members, roles and removed devices as its signed membership has
    /// them.
    pub fn network(&self, id: DocId) -> Result<Network, Error> {
        Ok(self.membership(id)?.1)
    }
}

fn not_a_member(member: MemberId) -> Error {
    Error::NotFound { kind: "member of the network", id: member.to_string() }
}

/// Resolves a network's membership from the operations its document carries and those this
/// device has seen before (`conn`), and the network as shown.
///
/// A network made before signed membership (its creator pinned at the upgrade) that has no
/// trusted genesis yet keeps its unsigned roster, its creator as admin, until its creator's
/// device signs it in: otherwise its members could never meet to receive the genesis.
pub(super) fn resolve_network(
    conn: &Connection,
    nd: &doc::NetworkDoc,
) -> Result<(Membership, Network), Error> {
    let mut ops = store::network_ops(conn, nd.id)?;
    ops.extend(nd.ops.iter().cloned());
    let root = store::network_root(conn, nd.id)?;
    let m = membership::resolve_network(nd.id, root.as_ref(), &ops);
    let mut members: Vec<(usize, Member)> = m
        .members
        .iter()
        .map(|(id, x)| {
            let member = Member {
                id: *id,
                name: x.name.clone(),
                role: x.role,
                devices: x.devices.iter().copied().collect(),
            };
            (x.joined, member)
        })
        .collect();
    if m.valid.is_empty() && root.is_some() {
        for (i, (id, name, devices)) in nd.unsigned_members.iter().enumerate() {
            let role = if nd.created_by.is_some_and(|c| devices.contains(&c)) {
                Role::Admin
            } else {
                Role::Member
            };
            let member = Member { id: *id, name: name.clone(), role, devices: devices.clone() };
            members.push((i, member));
        }
    }
    members.sort_by_key(|(joined, m)| (*joined, m.id));
    let removed = m
        .removed_devices
        .iter()
        .map(|(device, reason)| RemovedDevice { device: *device, reason: *reason })
        .collect();
    let network = Network {
        id: nd.id,
        name: nd.name.clone(),
        members: members.into_iter().map(|(_, x)| x).collect(),
        removed,
        created_at: nd.created_at,
    };
    Ok((m, network))
}
