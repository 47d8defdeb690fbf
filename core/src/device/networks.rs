//! Networks: rosters, members and the network key sealed to each member device.

use std::collections::BTreeMap;

use super::*;
use crate::{
    invitation::Invitation,
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
        let my_name = self.display_name();
        let id = membership::genesis_network_id(
            self.identity.signing_key(),
            &commitment,
            self.member.as_bytes(),
            &my_name,
        );
        let genesis = SignedOp::sign(
            self.identity.signing_key(),
            id,
            &[],
            Change::Genesis {
                key_commitment: commitment,
                member: *self.member.as_bytes(),
                name: my_name,
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
                    Err(Error::Invalid(ValidationError::Invalid {
                        field: "device",
                        reason: format!(
                            "device {} belongs to another member of the network",
                            device.short()
                        ),
                    }))
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
        self.change_membership(
            network,
            message,
            |m, _| changes(m),
            |d, m, _| {
                // The new device gets every epoch's key this device holds (it reads what was
                // written before it joined); otherwise a member who holds them seals them at their
                // next relay sync.
                let me = self.device_key();
                for (epoch, key) in self.network_keys_in(d, network, m)? {
                    let sealed =
                        crypto::seal_network_key(&self.randomness, &key, network, epoch, &device)?;
                    doc::put_sealed_network_key(d, epoch, &device, &me, sealed.as_bytes())?;
                }
                Ok(())
            },
        )
    }

    /// Adds a member's device to a network (as [`Device::add_member`] does) and returns the
    /// invitation to hand to that device: its user accepts it with [`Device::join`], and only
    /// then does the device take the network from a meeting or the relay.
    pub fn invite(
        &self,
        network: DocId,
        member: MemberId,
        name: &str,
        device: DeviceKey,
    ) -> Result<Invitation, Error> {
        self.add_member(network, member, name, device)?;
        let n = self.network(network)?;
        let role = n.members.iter().find(|m| m.id == member).map_or(Role::Member, |m| m.role);
        Invitation::sign(
            self.identity.signing_key(),
            &self.display_name(),
            network,
            &n.name,
            device,
            member,
            role,
            self.now(),
        )
        .map_err(|e| Error::Internal(format!("signing an invitation: {e}")))
    }

    /// Accepts an invitation into a network: from now on this device takes that network's
    /// document (and the documents shared with it) from a meeting or the relay. Refused if the
    /// invitation is for another device. Accepting twice, or a network already held, changes
    /// nothing.
    pub fn join(&self, invitation: &Invitation) -> Result<(), Error> {
        if invitation.device != self.device_key() {
            return Err(Error::Invalid(ValidationError::Invalid {
                field: "invitation",
                reason: format!(
                    "it invites device {}, not this one ({})",
                    invitation.device.short(),
                    self.device_key().short()
                ),
            }));
        }
        let mut w = self.writer.lock();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        store::accept_invitation(&tx, invitation.network, &invitation.encode(), self.now())?;
        tx.commit()?;
        Ok(())
    }

    /// Invitations this device accepted whose network has not arrived yet (to show "waiting
    /// for …" until the next meeting or relay sync).
    pub fn pending_invitations(&self) -> Result<Vec<Invitation>, Error> {
        let stored = store::pending_invitations(&self.reader.lock())?;
        Ok(stored.iter().filter_map(|s| Invitation::parse(s).ok()).collect())
    }

    /// Gives a member of a network another role. Only an admin may.
    pub fn set_role(&self, network: DocId, member: MemberId, role: Role) -> Result<(), Error> {
        let changes = |m: &Membership| match m.members.get(&member) {
            None => Err(not_a_member(member)),
            Some(x) if x.role == role => Ok(Vec::new()),
            Some(_) if role == Role::Member && last_admin(m, member) => Err(no_admin_left()),
            Some(_) => Ok(vec![Change::SetRole { member: *member.as_bytes(), role }]),
        };
        let message = format!("Made member {member} {}", role.as_str());
        self.change_membership(network, message, |m, _| changes(m), |_, _, _| Ok(()))
    }

    /// Removes one device from a network (a lost phone), keeping its member. Only an admin may.
    pub fn remove_device(
        &self,
        network: DocId,
        device: DeviceKey,
        reason: Reason,
    ) -> Result<(), Error> {
        let (m, _) = self.membership(network)?;
        require_admin(&m, &self.device_key())?;
        match m.member_of(&device) {
            None if m.removed_devices.contains_key(&device) => return Ok(()),
            None => {
                return Err(Error::NotFound {
                    kind: "device in the network",
                    id: device.to_string(),
                });
            }
            Some(_) => {}
        }
        let removal = Change::RemoveDevice { device: *device.as_bytes(), reason };
        let message = format!("Removed device {} ({})", device.short(), reason.as_str());
        self.rekey(network, Some(removal), &[device], message)
    }

    /// Removes a member, with all their devices, from a network. Only an admin may.
    pub fn remove_member(
        &self,
        network: DocId,
        member: MemberId,
        reason: Reason,
    ) -> Result<(), Error> {
        let (m, _) = self.membership(network)?;
        require_admin(&m, &self.device_key())?;
        let Some(x) = m.members.get(&member) else { return Err(not_a_member(member)) };
        if last_admin(&m, member) {
            return Err(no_admin_left());
        }
        let devices: Vec<DeviceKey> = x.devices.iter().copied().collect();
        let removal = Change::RemoveMember { member: *member.as_bytes(), reason };
        let message = format!("Removed member {member} ({})", reason.as_str());
        self.rekey(network, Some(removal), &devices, message)
    }

    /// Starts a new key epoch (after `removal`, if any): a fresh network key, committed to by
    /// a signed operation and sealed to every active device but `leaving`. What is written
    /// from then on is sealed under it (fresh content keys), so a removed device cannot read
    /// it. Only an admin may.
    fn rekey(
        &self,
        network: DocId,
        removal: Option<Change>,
        leaving: &[DeviceKey],
        message: String,
    ) -> Result<(), Error> {
        let key = SecretKey::generate(&self.randomness)?;
        let commitment = crypto::relay_network_id(&key);
        let changes = |_: &Membership, epoch: u32| {
            let rekey = Change::Rekey { epoch, key_commitment: commitment };
            Ok(removal.into_iter().chain([rekey]).collect())
        };
        let me = self.device_key();
        self.change_membership(network, message, changes, |d, m, epoch| {
            for device in m.devices().filter(|d| !leaving.contains(d)) {
                match crypto::seal_network_key(&self.randomness, &key, network, epoch, device) {
                    Ok(s) => {
                        doc::put_sealed_network_key(d, epoch, device, &me, s.as_bytes())?;
                    }
                    Err(e) => tracing::warn!(%device, error = %e, "cannot seal to a listed key"),
                }
            }
            Ok(())
        })
    }

    /// Signs `changes` (given the membership as this device knows it, and the number a new
    /// key epoch takes) one after the other, and writes them with `also` into the network
    /// document in one change. Refused unless this device is an admin of the network.
    fn change_membership(
        &self,
        network: DocId,
        message: String,
        changes: impl FnOnce(&Membership, u32) -> Result<Vec<Change>, Error>,
        also: impl FnOnce(&mut AutoCommit, &Membership, u32) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let (m, _) = self.membership(network)?;
        require_admin(&m, &self.device_key())?;
        // After every head, or after those that hold what counts when there are very many (an
        // admin gone bad can make hundreds of concurrent operations, and an operation naming
        // them all would not fit): what the new operation does not follow is concurrent with
        // it, which is what a removal of that admin needs anyway (rule 3).
        let held = store::network_ops(&self.reader.lock(), network)?;
        let mut parents = membership::choose_parents(&held, &m);
        // A new epoch is one past the newest in its past, counted or not (one whose admin lost
        // a dispute is in the past of what follows it), which is also newer than the one that
        // counts there: the number is the parents', whatever this device knows beside them.
        let epoch = membership::newest_epoch_before(&held, &parents).saturating_add(1);
        let changes = changes(&m, epoch)?;
        if changes.is_empty() {
            return Ok(());
        }
        // Signed here, checked here: an operation that does not count (in everything this
        // device holds) is never written.
        let mut signed: Vec<SignedOp> = Vec::new();
        for c in changes {
            let op = SignedOp::sign(self.identity.signing_key(), network, &parents, c)?;
            parents = vec![op.id()];
            signed.push(op);
        }
        let mut all = held;
        all.extend(signed.iter().cloned());
        if !membership::within_cap(&all) {
            return Err(Error::NotAllowed(format!(
                "a network holds at most {} membership operations (and {} removals or demotions \
                 more)",
                membership::MAX_OPS,
                membership::REVOCATION_ROOM
            )));
        }
        let root = store::network_root(&self.reader.lock(), network)?;
        let after = membership::resolve_network(network, root.as_ref(), &all);
        if let Some(op) = signed.iter().find(|o| !after.valid.contains(&o.id())) {
            return Err(Error::NotAllowed(format!("{:?} would not count", op.change())));
        }
        self.edit(network, DocKind::Network, |d, _, now| {
            for op in &signed {
                doc::put_op(d, op)?;
            }
            also(d, &m, epoch)?;
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

    /// The network keys sealed to this device in a network document, by epoch: for each epoch
    /// the membership knows, the first entry that opens to this network and to a key the
    /// membership commits to. Entries that do not (a member's garbage, an outsider's key) are
    /// passed over. A network still on its unsigned roster (made before signed membership)
    /// has only epoch 0, taken as before.
    pub(crate) fn network_keys_in(
        &self,
        d: &AutoCommit,
        network: DocId,
        m: &Membership,
    ) -> Result<BTreeMap<u32, SecretKey>, Error> {
        let mut out = BTreeMap::new();
        for (epoch, key) in self.every_network_key_in(d, network, m, 1, true)? {
            out.entry(epoch).or_insert(key);
        }
        Ok(out)
    }

    /// Like [`Device::network_keys_in`], but up to `per_epoch` keys of each epoch, in the
    /// order of their entries: two admins that started one epoch at once, while apart, each
    /// sealed a key of its own to this device, and what each wrote at the relay opens under
    /// its own only (until an admin starts the next epoch). With `committed` false, also keys
    /// the membership no longer commits to (their starter's revocation lost its dispute), if an
    /// admin (ever) sealed them: for opening only, never for sealing, as what its starter wrote
    /// under one before it learned so is readable by no other key.
    pub(crate) fn every_network_key_in(
        &self,
        d: &AutoCommit,
        network: DocId,
        m: &Membership,
        per_epoch: usize,
        committed: bool,
    ) -> Result<Vec<(u32, SecretKey)>, Error> {
        let legacy = m.valid.is_empty();
        let epochs: Vec<u32> = if legacy { vec![0] } else { m.epochs.keys().copied().collect() };
        let me = self.device_key();
        let mut out = Vec::new();
        for epoch in epochs {
            let mut found: Vec<[u8; 32]> = Vec::new();
            for (by, sealed) in doc::sealed_network_keys(d, epoch, &me)? {
                if found.len() >= per_epoch {
                    break;
                }
                let Ok((key, id)) = crypto::open_network_key(&self.identity, &sealed, epoch) else {
                    tracing::debug!(epoch, "a network key entry that does not open is ignored");
                    continue;
                };
                let commitment = crypto::relay_network_id(&key);
                if found.contains(&commitment) {
                    continue;
                }
                if id == network
                    && (legacy
                        || m.commits_to(epoch, &commitment)
                        || (!committed && sealer_counts(m, &me, &by)))
                {
                    found.push(commitment);
                    out.push((epoch, key));
                    continue;
                }
                tracing::warn!(
                    epoch,
                    "a network key entry the membership does not commit to is ignored"
                );
            }
        }
        Ok(out)
    }

    /// The network keys this device holds for a network, by epoch.
    pub(crate) fn network_keys(
        &self,
        network: DocId,
    ) -> Result<(Membership, BTreeMap<u32, SecretKey>), Error> {
        let (m, _) = self.membership(network)?;
        let keys =
            self.read(network, DocKind::Network, |d| self.network_keys_in(d, network, &m))?;
        Ok((m, keys))
    }

    /// The id a network has at a relay (derived from its signed genesis, see
    /// [`membership::relay_id_of`]), if this device holds the network and its genesis.
    pub fn relay_network_id(&self, network: DocId) -> Result<Option<[u8; 32]>, Error> {
        let (m, _) = self.membership(network)?;
        Ok(m.relay_id)
    }

    /// Makes sure every active device of a network has each epoch's key this device holds
    /// sealed to it, and returns the keys (empty if this device holds none). A network made
    /// before keys existed gets its key here, from its creator's device only, so two devices
    /// never make two keys for one network. If two admins started the same epoch at once, an
    /// admin starts another, sealed only to the devices active now (a device one of them
    /// removed may hold the other's key). A listed key that cannot be sealed to (not a valid
    /// Ed25519 point) is skipped and logged: it never blocks the others.
    pub(crate) fn seal_network_keys(
        &self,
        network: DocId,
    ) -> Result<BTreeMap<u32, SecretKey>, Error> {
        let me = self.device_key();
        let (m, keys) = self.network_keys(network)?;
        let current = m.current_epoch();
        if m.is_admin(&me) && m.epochs.get(&current).is_some_and(|c| c.len() > 1) {
            self.rekey(network, None, &[], "Started a new key epoch after two at once".into())?;
            return self.seal_network_keys(network);
        }
        let (missing, i_created) = self.read(network, DocKind::Network, |d| {
            let mut missing = Vec::new();
            for dev in m.devices() {
                for &epoch in keys.keys() {
                    let entries = doc::sealed_network_keys(d, epoch, dev)?;
                    // An entry by this device or a device that was ever an admin counts (ever: a
                    // demotion must not make every member seal again, and change the network
                    // document with every role change); one naming no sealer only in a network
                    // without signed operations; one by anyone else may be garbage and does not.
                    let sealed = entries.iter().any(|(by, _)| sealer_counts(&m, &me, by));
                    if !sealed {
                        missing.push((epoch, *dev));
                    }
                }
            }
            Ok((missing, doc::network_creator(d)? == Some(me)))
        })?;
        let legacy_without_key = keys.is_empty() && i_created && m.valid.is_empty();
        if missing.is_empty() && !legacy_without_key {
            return Ok(keys);
        }
        if keys.is_empty() && !legacy_without_key {
            return Ok(keys);
        }
        let fresh = SecretKey::generate(&self.randomness)?;
        self.edit(network, DocKind::Network, |d, _, now| {
            // Read again under the writer lock: another sync of this device may have made or
            // sealed the key since.
            let mut keys = self.network_keys_in(d, network, &m)?;
            let mut missing = missing;
            if keys.is_empty() {
                doc::ensure_key_maps(d)?;
                keys.insert(0, fresh.clone());
                missing = m.devices().map(|dev| (0, *dev)).collect();
                if !missing.iter().any(|(_, dev)| *dev == me) {
                    missing.push((0, me));
                }
            }
            let mut sealed = 0;
            for (epoch, dev) in &missing {
                let Some(key) = keys.get(epoch) else { continue };
                match crypto::seal_network_key(&self.randomness, key, network, *epoch, dev) {
                    Ok(s) => {
                        if doc::put_sealed_network_key(d, *epoch, dev, &me, s.as_bytes())? {
                            sealed += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(device = %dev, error = %e, "cannot seal to a listed key")
                    }
                }
            }
            doc::commit_pending(d, format!("Sealed network keys to {sealed} devices"), now)?;
            Ok(keys)
        })
    }

    /// The network's signed operations that count, without names (to hand a removed device at
    /// its next contact, by the relay's roster or at a meeting): its removal and everything
    /// the removal follows, so the device resolves them with what it holds.
    pub(crate) fn removal_ops(&self, network: DocId) -> Result<Vec<Vec<u8>>, Error> {
        let (m, _) = self.membership(network)?;
        let ops = store::network_ops(&self.reader.lock(), network)?;
        Ok(ops.iter().filter(|o| m.valid.contains(&o.id())).map(|o| o.blinded().to_vec()).collect())
    }

    /// Whether `ops`, resolved together with the operations this device holds of `network`,
    /// say it was removed (its device, or its member): the same rule as ever, so an old removal
    /// that a later operation undid (the phone was found and added again) wipes nothing, nor
    /// does anything not signed by an admin. A removed device cannot receive the network's
    /// later operations through the network document (it is refused everywhere), so the
    /// removal comes with what it follows.
    pub(crate) fn removed_by(&self, network: DocId, ops: &[Vec<u8>]) -> Result<bool, Error> {
        if self.kind_of(network).ok() != Some(DocKind::Network) {
            return Ok(false);
        }
        let received: Vec<SignedOp> = ops
            .iter()
            .take(super::engine::MAX_NETWORK_OPS + membership::REVOCATION_ROOM)
            .filter_map(|b| SignedOp::decode(b).ok())
            .filter(|op| op.is_of(network))
            .collect();
        if !received.iter().any(SignedOp::is_revocation) {
            return Ok(false);
        }
        let nd = self.read(network, DocKind::Network, |d| Ok(doc::read_network(d)?))?;
        let (mut all, root) = {
            let conn = self.reader.lock();
            (store::network_ops(&conn, network)?, store::network_root(&conn, network)?)
        };
        all.extend(nd.ops);
        all.extend(received);
        let m = membership::resolve_network(network, root.as_ref(), &all);
        let me = self.device_key();
        Ok(m.member_of(&me).is_none() && m.removed_devices.contains_key(&me))
    }

    /// Whether `device` is, or was before its removal, a device of `network` as this device
    /// knows it (false for a network not held here).
    pub(crate) fn was_in(&self, network: DocId, device: &DeviceKey) -> Result<bool, Error> {
        if self.kind_of(network).ok() != Some(DocKind::Network) {
            return Ok(false);
        }
        let (m, _) = self.membership(network)?;
        Ok(m.member_of(device).is_some() || m.removed_devices.contains_key(device))
    }

    /// Keeps the operations of `network` that a peer handed over (with a removal it believes
    /// in) or the relay's roster carries, when they could count: made by an admin where they
    /// were made, within the network's cap. `from`, a peer at a meeting, must be (or have
    /// been) a device of the network here, and if removed here, nothing it signed is taken. Two devices whose views of the membership differ so much
    /// that one takes the other for removed (a removed admin's operations "from before" its
    /// removal reached one of them first) meet again this way: each resolves with what the
    /// other holds, and they agree. Whether anything was new.
    pub(crate) fn learn_ops(
        &self,
        network: DocId,
        from: Option<&DeviceKey>,
        ops: &[Vec<u8>],
    ) -> Result<bool, Error> {
        if self.kind_of(network).ok() != Some(DocKind::Network) {
            return Ok(false);
        }
        let (mut all, root) = {
            let conn = self.reader.lock();
            (store::network_ops(&conn, network)?, store::network_root(&conn, network)?)
        };
        // From a device removed here, nothing it signed itself: it would hand over what it
        // signed after its removal "from before" it (answers, a flood) without any carrier.
        // What others signed it may hand over (an admin this device wrongly takes for removed
        // brings the removal that says otherwise).
        let mut refuse_author = None;
        if let Some(peer) = from {
            let (m, _) = self.membership(network)?;
            if m.member_of(peer).is_none() {
                if !m.removed_devices.contains_key(peer) {
                    return Ok(false);
                }
                refuse_author = Some(*peer);
            }
        }
        // What is new, against what is stored (which holds the document's operations too):
        // at most relay syncs nothing is, and the document is not read.
        let stored: std::collections::BTreeSet<_> = all.iter().map(SignedOp::id).collect();
        let mut new: Vec<SignedOp> = ops
            .iter()
            .take(super::engine::MAX_NETWORK_OPS + membership::REVOCATION_ROOM)
            .filter_map(|b| SignedOp::decode(b).ok())
            .filter(|op| op.is_of(network) && !stored.contains(&op.id()))
            .filter(|op| Some(op.author()) != refuse_author)
            .collect();
        if new.is_empty() {
            return Ok(false);
        }
        let nd = self.read(network, DocKind::Network, |d| Ok(doc::read_network(d)?))?;
        all.extend(nd.ops.iter().cloned());
        let held: std::collections::BTreeSet<_> = all.iter().map(SignedOp::id).collect();
        new.retain(|op| !held.contains(&op.id()));
        new.sort_by_key(SignedOp::id);
        new.dedup_by_key(|o| o.id());
        if new.is_empty() {
            return Ok(false);
        }
        // The stored ones hold the document's too: each counted once.
        let mut union: Vec<SignedOp> = all.iter().chain(&new).cloned().collect();
        union.sort_by_key(SignedOp::id);
        union.dedup_by_key(|o| o.id());
        if !membership::within_cap(&union) {
            tracing::warn!(network = %network, "handed membership operations beyond the cap: ignored");
            return Ok(false);
        }
        let m = membership::resolve_network(network, root.as_ref(), &union);
        new.retain(|o| m.authorized.contains(&o.id()));
        if new.is_empty() {
            return Ok(false);
        }
        let mut w = self.writer.lock();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        store::put_network_ops(&tx, network, &new)?;
        super::projection::write_derived(&tx, &super::projection::Derived::Network(nd))?;
        tx.commit()?;
        drop(w);
        tracing::info!(network = %network, ops = new.len(), "membership operations learnt from a peer");
        self.notify(&[network]);
        Ok(true)
    }

    /// Starts a new key epoch in every network held here whose newest key a device removed
    /// for good may hold ([`Membership::renew_key`]: the removal's own re-key counted for
    /// nothing, or two admins removed two devices at once), if this device is an admin of it:
    /// at each contact, before anything is sealed. Which networks it renewed.
    pub(crate) fn renew_keys(&self) -> Result<Vec<DocId>, Error> {
        let me = self.device_key();
        let mut renewed = Vec::new();
        for (id, kind) in self.document_ids()? {
            if kind != DocKind::Network {
                continue;
            }
            let Ok((m, _)) = self.membership(id) else { continue };
            if m.renew_key && m.is_admin(&me) {
                let message = "New key epoch: a removed device may hold the last one".to_string();
                // Never in the way of the contact it precedes: tried again at the next one.
                match self.rekey(id, None, &[], message) {
                    Ok(()) => {
                        tracing::info!(network = %id, "started a new key epoch");
                        renewed.push(id);
                    }
                    Err(e) => tracing::warn!(network = %id, error = %e, "no new key epoch"),
                }
            }
        }
        Ok(renewed)
    }

    /// Wipes every network this device's own copy of the membership says it was removed from
    /// (the removal reached it by ordinary sync): at its next contact, before anything else.
    pub(crate) fn wipe_removed_networks(&self) -> Result<Vec<DocId>, Error> {
        let networks = store::networks_removed_from(&self.reader.lock(), &self.device_key())?;
        for n in &networks {
            self.wipe_network(*n)?;
        }
        Ok(networks)
    }

    /// Wipes this device's copy of a network it was removed from: the network document (and so
    /// its keys), every document shared with it and no other network held here, their derived
    /// rows, search entries, sync states and signatures, and what it kept about the network.
    /// Documents shared with another network this device is in stay. The change listener hears
    /// of every wiped document.
    pub(crate) fn wipe_network(&self, network: DocId) -> Result<Vec<DocId>, Error> {
        let relay_id = self.relay_network_id(network).ok().flatten();
        let mut w = self.writer.lock();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let docs = store::documents_only_in(&tx, network)?;
        store::delete_documents(&tx, &docs)?;
        store::forget_network(&tx, network, relay_id.as_ref())?;
        tx.commit()?;
        for d in &docs {
            w.cache.pop(d);
        }
        drop(w);
        tracing::warn!(network = %network, documents = docs.len(), "removed from the network: wiped it");
        self.notify(&docs);
        Ok(docs)
    }

    /// Reads a network: its members, roles and removed devices as its signed membership has
    /// them.
    pub fn network(&self, id: DocId) -> Result<Network, Error> {
        Ok(self.membership(id)?.1)
    }
}

fn require_admin(m: &Membership, me: &DeviceKey) -> Result<(), Error> {
    if m.is_admin(me) {
        Ok(())
    } else {
        Err(Error::NotAllowed("only an admin of the network can change who is in it".into()))
    }
}

/// Whether `member` is the network's only admin: demoting or removing them would leave no one
/// able to change the membership again.
fn last_admin(m: &Membership, member: MemberId) -> bool {
    m.members.iter().all(|(id, x)| *id == member || x.role != Role::Admin)
        && m.members.get(&member).is_some_and(|x| x.role == Role::Admin)
}

fn no_admin_left() -> Error {
    Error::NotAllowed(
        "the network would have no admin left: make another member admin first".into(),
    )
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

/// Whether a sealed network key entry's sealer (`by`, as the entry names it) is trusted for it:
/// this device, or a device that was ever an admin of the network. An entry naming no sealer
/// (written before entries named one) only in a network without signed operations: a change
/// can still bring one (a change that names no parents has none of the network's operations in
/// its past), and in a network with signed membership any member could then have written it.
pub(crate) fn sealer_counts(m: &Membership, me: &DeviceKey, by: &Option<DeviceKey>) -> bool {
    match by {
        Some(by) => by == me || m.admins_ever.contains(by),
        None => m.valid.is_empty(),
    }
}
