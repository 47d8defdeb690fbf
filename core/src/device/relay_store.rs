//! The device's side of a relay sync: [`RelayStore`] over the store, the network documents'
//! keys and the crypto module.
//!
//! Owns what this device tells the relay (rosters, encrypted blobs of the changes the relay
//! lacks) and the checks on what it pulls: a blob is applied only if it opens under a key
//! of its network, names a document of that network, and merges cleanly. Anything else is
//! reported and skipped.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use automerge::ChangeHash;
use nabij_relay_proto::{
    PublicKey,
    roster::{Roster, RosterDevice, SignedRoster},
    wire::{PulledBlob, blob_id},
};
use rusqlite::TransactionBehavior;

use super::{Device, DocError, exchange::RelayMerge, heads_bytes, sync_store::Incoming};
use crate::{
    authorship::SignedHead,
    crypto::{self, Blob, BlobContext, CarriedKey, KeyId, SecretKey},
    doc,
    error::Error,
    ids::DocId,
    membership::{self, Change, SignedOp},
    model::DocKind,
    relay::{
        Applied, NetworkAccess, PreparedPush, RejectedBlob, RelayError, RelayStore, decode_payload,
        encode_payload,
    },
    store,
    sync::StoreFailure,
};

fn failed(e: impl std::fmt::Display) -> RelayError {
    RelayError::Store(e.to_string())
}

/// A device syncing with one relay (identified by its key).
#[derive(Debug)]
pub struct DeviceRelay<'a> {
    device: &'a Device,
    relay: PublicKey,
    /// Documents whose prepared push carries its content key, with their relay ids and the
    /// key's id: once the relay has the push, it holds the key.
    carrying: HashMap<DocId, ([u8; 32], KeyId)>,
}

impl<'a> DeviceRelay<'a> {
    /// `device` syncing with the relay holding `relay`.
    pub fn new(device: &'a Device, relay: PublicKey) -> Self {
        Self { device, relay, carrying: HashMap::new() }
    }
}

/// The heads a push brings the relay to, and the Automerge bytes that do it.
type ChangesForRelay = (Vec<[u8; 32]>, Vec<u8>);

fn context(net: &NetworkAccess, relay_doc: [u8; 32], epoch: u32) -> BlobContext {
    BlobContext { network: net.relay_id, doc: relay_doc, epoch }
}

/// The first sealed content key (by id) that opens under a network key of `epochs` (each
/// epoch's key in turn, newest first) and is the key its entry names, with its epoch. Any
/// member can write the content-key map, so an entry that does not open, or opens to another
/// key than its id says, is passed over (logged), never fatal: a member must not be able to
/// stop the others' relay sync (threat model, promise 4).
fn first_that_opens(
    net: &NetworkAccess,
    relay_doc: &[u8; 32],
    mut entries: Vec<doc::SealedContentKey>,
    key_id: Option<&[u8]>,
    epochs: &mut dyn Iterator<Item = (&u32, &SecretKey)>,
) -> Option<(u32, SecretKey)> {
    entries.sort();
    let entries: Vec<_> =
        entries.into_iter().filter(|(id, _)| key_id.is_none_or(|k| k == id.as_slice())).collect();
    for (epoch, network_key) in epochs {
        for (id, sealed) in &entries {
            let ctx = context(net, *relay_doc, *epoch);
            match crypto::open_content_key(network_key, sealed, &ctx) {
                Ok(key) if key.id().as_slice() == id.as_slice() => return Some((*epoch, key)),
                Ok(_) => {
                    tracing::warn!("a content key entry names another key than it holds: ignored")
                }
                Err(_) => {}
            }
        }
    }
    if !entries.is_empty() {
        tracing::debug!("no content key entry opens under the keys held here");
    }
    None
}

/// The first content key kept here (by id) that opens under a network key of its epoch among
/// `keys` and is the key its id names, with its epoch; only the key `key_id` if given.
fn first_kept_that_opens(
    net: &NetworkAccess,
    relay_doc: &[u8; 32],
    kept: &[store::StoredContentKey],
    key_id: Option<&KeyId>,
    keys: &[(u32, &SecretKey)],
) -> Option<(u32, SecretKey)> {
    for (id, epoch, sealed) in kept.iter().filter(|(id, _, _)| key_id.is_none_or(|k| k == id)) {
        for (_, network_key) in keys.iter().filter(|(e, _)| e == epoch) {
            let ctx = context(net, *relay_doc, *epoch);
            if let Ok(key) = crypto::open_content_key(network_key, sealed, &ctx)
                && key.id() == *id
            {
                return Some((*epoch, key));
            }
        }
    }
    None
}

/// A device's network keys for a roster: each epoch's entry sealed to it that counts (by
/// itself, an admin, or written before entries named their sealer), so a device that finds its
/// network at the relay can open every blob of it. Epoch 0 and the newest fifteen fit; other
/// keys of an epoch (after the first) as far as the roster's bound for an entry allows.
fn roster_bundle(
    d: &automerge::AutoCommit,
    m: &crate::membership::Membership,
    device: &crate::ids::DeviceKey,
    me: &crate::ids::DeviceKey,
) -> Result<Vec<u8>, Error> {
    let mut entries: Vec<(u32, Vec<u8>)> = Vec::new();
    let epochs: Vec<u32> = m.epochs.keys().copied().collect();
    let keep = |e: &u32| *e == 0 || epochs.iter().rev().take(15).any(|x| x == e);
    let mut others: Vec<(u32, Vec<u8>)> = Vec::new();
    for &epoch in epochs.iter().filter(|e| keep(e)) {
        // The first key of each epoch; then, as far as the roster's bound for a device's entry
        // allows, newest epochs first, the epoch's other keys (two admins may have started it
        // at once, while apart), a few at most.
        let mut found = doc::sealed_network_keys(d, epoch, device)?
            .into_iter()
            .filter(|(by, _)| super::networks::sealer_counts(m, me, by))
            .take(KEYS_PER_EPOCH);
        if let Some((_, sealed)) = found.next() {
            entries.push((epoch, sealed));
        }
        others.extend(found.map(|(_, sealed)| (epoch, sealed)));
    }
    let encode = |e: &Vec<(u32, Vec<u8>)>| {
        postcard::to_stdvec(e).map_err(|e| Error::from(DocError::Malformed(e.to_string())))
    };
    for other in others.into_iter().rev() {
        entries.push(other);
        if encode(&entries)?.len() > nabij_relay_proto::roster::MAX_SEALED {
            entries.pop();
        }
    }
    encode(&entries)
}

/// A network key with its epoch.
type EpochKey = (u32, SecretKey);

/// Keys of one epoch a roster carries for a device, and a device opens with: two admins that
/// started an epoch at once each sealed one; a member's garbage entries must not crowd out the
/// admins' (only an admin's, the device's own, or an entry from before sealers were named
/// count in a roster).
const KEYS_PER_EPOCH: usize = 4;

/// The entries of a roster bundle ([`roster_bundle`]); none if it does not decode.
fn bundle_entries(bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
    postcard::from_bytes(bytes).unwrap_or_default()
}

impl Device {
    /// The keys sealed to this device on a relay roster, with their epochs (perhaps several for
    /// one), and the network they name (None if none opens, or they name different networks).
    fn roster_keys(&self, roster: &Roster) -> Option<(DocId, Vec<(u32, SecretKey)>)> {
        let me = self.device_key();
        let mut network = None;
        let mut keys = Vec::new();
        for (epoch, sealed) in bundle_entries(roster.sealed_for(me.as_bytes())?) {
            let Ok((key, id)) = crypto::open_network_key(&self.identity, &sealed, epoch) else {
                continue;
            };
            if *network.get_or_insert(id) != id {
                return None;
            }
            keys.push((epoch, key));
        }
        Some((network?, keys))
    }

    /// The roster a network should have at the relay: each active device (admins marked)
    /// with its network keys, and the membership counter.
    fn roster_for(&self, network: DocId, relay_id: [u8; 32]) -> Result<Roster, Error> {
        let (m, _) = self.membership(network)?;
        let me = self.device_key();
        let devices = self.read(network, DocKind::Network, |d| {
            let mut out = Vec::new();
            for dev in m.devices() {
                let sealed = roster_bundle(d, &m, dev, &me)?;
                let admin = m.is_admin(dev);
                out.push(RosterDevice { key: *dev.as_bytes(), sealed, admin, removed: false });
            }
            // Removed devices are listed as such, so that one that asks finds its removal.
            for dev in m.removed_devices.keys().filter(|d| m.member_of(d).is_none()) {
                let key = *dev.as_bytes();
                out.push(RosterDevice { key, sealed: Vec::new(), admin: false, removed: true });
            }
            out.sort_by_key(|d| d.key);
            out.dedup_by_key(|d| d.key);
            Ok(out)
        })?;
        // Its number in line is the session's to give (the relay's plus one).
        let issued_at = 0;
        // A removed device that asks the relay finds its removal here, and wipes the network.
        let removals: Vec<Vec<u8>> = self
            .removal_ops(network)?
            .into_iter()
            .filter(|b| SignedOp::decode(b).is_ok_and(|o| o.is_revocation()))
            .collect();
        // The relay decides who may do what from the signed operations themselves (without
        // names, which it has no need of).
        let ops = {
            let conn = self.reader.lock();
            let mut all = store::network_ops(&conn, network)?;
            drop(conn);
            all.extend(self.read(network, DocKind::Network, |d| Ok(doc::read_network(d)?.ops))?);
            let mut seen = std::collections::BTreeSet::new();
            all.retain(|o| seen.insert(o.id()));
            all.iter().map(|o| o.blinded().to_vec()).collect()
        };
        Ok(Roster { network: relay_id, issued_at, devices, removals, ops })
    }

    /// The content key a document's blobs are encrypted under: the first kept here that
    /// opens under the newest epoch's key (by key id, so devices that learned each other's
    /// keys pick the same one), or, pulling, the one with `key_id` (`held`: the network keys
    /// to open it with).
    fn content_key(
        &self,
        net: &NetworkAccess,
        relay_doc: &[u8; 32],
        key_id: Option<(&KeyId, &[EpochKey])>,
    ) -> Result<Option<(u32, SecretKey)>, Error> {
        let kept = store::content_keys_of(&self.reader.lock(), &net.relay_id, relay_doc)?;
        Ok(match key_id {
            // Pulling: whichever epoch sealed it, among the keys held now.
            Some((id, held)) => {
                let keys: Vec<(u32, &SecretKey)> = held.iter().map(|(e, k)| (*e, k)).collect();
                match first_kept_that_opens(net, relay_doc, &kept, Some(id), &keys) {
                    Some(found) => Some(found),
                    // A blob pushed before keys left the network document: its key is in the
                    // document's `content_keys` map (read, never written now).
                    None => {
                        let legacy = self.read(net.network, DocKind::Network, |d| {
                            Ok(doc::content_keys(d, relay_doc)?)
                        })?;
                        let mut held = held.iter().map(|(e, k)| (e, k));
                        first_that_opens(net, relay_doc, legacy, Some(id), &mut held)
                    }
                }
            }
            // Pushing: only a key of the newest epoch, so a device removed since cannot read
            // what is written now.
            None => {
                let (epoch, key) = net.current();
                first_kept_that_opens(net, relay_doc, &kept, None, &[(epoch, key)])
            }
        })
    }

    /// The content keys kept here for a document (relay ids), for tests.
    #[cfg(feature = "test-utils")]
    pub(crate) fn kept_content_keys(
        &self,
        network: &[u8; 32],
        doc: &[u8; 32],
    ) -> Result<Vec<store::StoredContentKey>, Error> {
        Ok(store::content_keys_of(&self.reader.lock(), network, doc)?)
    }

    /// Keeps the content key a pulled blob carried (it opened under a network key held here
    /// and opened the blob, which names `doc`): the relay holds it, and later blobs under it
    /// carry only its id. Not for a document erased here: a blob pulled before the relay
    /// deleted it must not bring its key back.
    fn keep_carried_key(
        &self,
        net: &NetworkAccess,
        at: store::RelayScope<'_>,
        relay_doc: &[u8; 32],
        carried: &CarriedKey,
        doc: DocId,
    ) -> Result<(), Error> {
        if store::is_erased(&self.reader.lock(), doc)? {
            return Ok(());
        }
        let network = net.relay_id;
        let key = (carried.id, carried.epoch, carried.sealed.clone());
        self.set_relay_state(|tx| {
            store::put_content_key(tx, &network, relay_doc, &key)?;
            store::set_relay_key(tx, at, relay_doc, &carried.id)
        })
    }

    /// Every network key this device can open with, newest epoch first: those it holds (`held`,
    /// the first of each epoch) and any other its network document seals to it for an epoch
    /// (two admins started it at once).
    fn opening_keys(
        &self,
        network: DocId,
        held: &BTreeMap<u32, SecretKey>,
    ) -> Vec<(u32, SecretKey)> {
        let mut out: Vec<(u32, SecretKey)> = held.iter().map(|(e, k)| (*e, k.clone())).collect();
        let others = self.membership(network).and_then(|(m, _)| {
            self.read(network, DocKind::Network, |d| {
                self.every_network_key_in(d, network, &m, KEYS_PER_EPOCH, false)
            })
        });
        // A network not held here (found at the relay) has only what its roster sealed.
        for (epoch, key) in others.unwrap_or_default() {
            if !out.iter().any(|(e, k)| *e == epoch && *k == key) {
                out.push((epoch, key));
            }
        }
        out.sort_by_key(|(e, _)| std::cmp::Reverse(*e));
        out
    }

    /// Gives each document without a content key of the newest epoch one, kept here (not in
    /// the network document, whose history would keep it past an erasure): a new random key,
    /// sealed under the newest network key. It reaches the relay in the document's next blob.
    fn ensure_content_keys(&self, net: &NetworkAccess, docs: &[DocId]) -> Result<(), Error> {
        let (epoch, network_key) = net.current();
        let mut new = Vec::new();
        {
            let r = self.reader.lock();
            for &id in docs {
                let relay_doc = crypto::relay_doc_id(&net.key, id);
                let kept = store::content_keys_of(&r, &net.relay_id, &relay_doc)?;
                let current = [(epoch, network_key)];
                if first_kept_that_opens(net, &relay_doc, &kept, None, &current).is_none() {
                    new.push(relay_doc);
                }
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let mut sealed = Vec::with_capacity(new.len());
        for relay_doc in new {
            let key = SecretKey::generate(&self.randomness)?;
            let ctx = context(net, relay_doc, epoch);
            let s = crypto::seal_content_key(&self.randomness, network_key, &key, &ctx)?;
            sealed.push((relay_doc, (key.id(), epoch, s)));
        }
        let network = net.relay_id;
        self.set_relay_state(|tx| {
            for (relay_doc, key) in &sealed {
                store::put_content_key(tx, &network, relay_doc, key)?;
            }
            Ok(())
        })
    }

    /// A document's changes the relay lacks (`held`: the heads it holds), with the heads they
    /// bring it to (no bytes if it lacks none). A document never sent goes whole, as stored.
    fn changes_for_relay(&self, doc: DocId, held: &[[u8; 32]]) -> Result<ChangesForRelay, Error> {
        if held.is_empty() {
            let w = self.writer.lock();
            if let Some(state) = store::doc_state(&w.conn, doc)?
                && state.chunk_count == 1
            {
                return Ok((state.heads.clone(), store::load_bytes(&w.conn, doc)?));
            }
        }
        let kind = self.kind_of(doc)?;
        let held: Vec<ChangeHash> = held.iter().map(|h| ChangeHash(*h)).collect();
        self.read(doc, kind, |d| {
            let heads = d.get_heads();
            let bytes = if held.is_empty() { d.save() } else { d.save_after(&held) };
            Ok((heads_bytes(&heads), bytes))
        })
    }

    fn set_relay_state(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(), store::StoreError>,
    ) -> Result<(), Error> {
        let mut w = self.writer.lock();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        f(&tx)?;
        tx.commit()?;
        Ok(())
    }
}

/// Whether a failure is this device's (its store), not the pulled data's: the pull stops and
/// is retried, instead of skipping the blob for good.
fn is_local(e: &Error) -> bool {
    matches!(
        e,
        Error::Store(_) | Error::Open(_) | Error::Internal(_) | Error::StoredDocument { .. }
    )
}

impl DeviceRelay<'_> {
    /// Forgets what the relay held of the document it knows as `relay_doc` (its blobs were
    /// deleted there), so that it is pushed whole again if it is held.
    /// `pushed`: the documents the relay held by their relay ids, built at the first marker of
    /// a pull (not once per marker: a member deleting many documents must not make a sync
    /// slow). Blobs of the document kept to open later go too: the relay no longer holds it.
    fn forget_deleted(
        &self,
        net: &NetworkAccess,
        relay_doc: &[u8; 32],
        pushed: &mut Option<HashMap<[u8; 32], DocId>>,
    ) -> Result<(), Error> {
        let at = (&self.relay, &net.relay_id);
        if pushed.is_none() {
            let held = store::relay_pushed_all(&self.device.reader.lock(), at)?;
            *pushed =
                Some(held.into_keys().map(|d| (crypto::relay_doc_id(&net.key, d), d)).collect());
        }
        let doc = pushed.as_ref().and_then(|p| p.get(relay_doc)).copied();
        let (relay, network) = (self.relay, net.relay_id);
        self.device.set_relay_state(|tx| {
            store::drop_deferred_of(tx, (&relay, &network), relay_doc)?;
            store::forget_relay_keys(tx, (&relay, &network), relay_doc)?;
            match doc {
                Some(doc) => store::forget_relay_pushed(tx, (&relay, &network), doc),
                None => Ok(()),
            }
        })?;
        if let Some(doc) = doc {
            tracing::info!(%doc, "the relay deleted a document's blobs: it is pushed again");
        }
        Ok(())
    }
}

impl RelayStore for DeviceRelay<'_> {
    fn device(&self) -> PublicKey {
        *self.device.device_key().as_bytes()
    }

    fn local_networks(&mut self) -> Result<Vec<(NetworkAccess, Roster)>, RelayError> {
        let me = self.device.device_key();
        // A removal that reached this device by ordinary sync takes effect at its next relay
        // sync, before anything is pushed.
        for n in self.device.wipe_removed_networks().map_err(failed)? {
            tracing::warn!(network = %n, "removed from the network (by its own membership): wiped");
        }
        self.device.apply_tombstones().map_err(failed)?;
        self.device.renew_keys().map_err(failed)?;
        let mut out = Vec::new();
        for (id, kind) in self.device.document_ids().map_err(failed)? {
            if kind != DocKind::Network {
                continue;
            }
            // One network's trouble (a key that will not open, a bad entry) never keeps the
            // others from syncing.
            let access = (|| -> Result<Option<(NetworkAccess, Roster)>, Error> {
                let network = self.device.network(id)?;
                if !network.members.iter().any(|m| m.devices.contains(&me)) {
                    return Ok(None);
                }
                let keys = self.device.seal_network_keys(id)?;
                let Some(key) = keys.get(&0).cloned() else {
                    tracing::info!(network = %id, "no network key here yet; skipping it at the relay");
                    return Ok(None);
                };
                // The relay id derives from the signed genesis (see
                // `membership::relay_id_of`): a network without one here waits for it.
                let Some(relay_id) = self.device.relay_network_id(id)? else {
                    tracing::info!(network = %id, "no signed genesis here yet; skipping it at the relay");
                    return Ok(None);
                };
                let roster = self.device.roster_for(id, relay_id)?;
                let offered = Vec::new();
                let access =
                    NetworkAccess { network: id, relay_id, key, keys, offered, held: true };
                Ok(Some((access, roster)))
            })();
            match access {
                Ok(Some(a)) => out.push(a),
                Ok(None) => {}
                Err(e) if is_local(&e) => return Err(failed(e)),
                Err(e) => tracing::warn!(network = %id, error = %e, "network skipped at the relay"),
            }
        }
        Ok(out)
    }

    fn is_admin(&mut self, net: &NetworkAccess, device: &PublicKey) -> bool {
        self.device
            .membership(net.network)
            .is_ok_and(|(m, _)| m.is_admin(&crate::ids::DeviceKey::from_bytes(*device)))
    }

    fn removed(&mut self, net: &NetworkAccess, roster: &Roster) -> Result<bool, RelayError> {
        let ops: Vec<Vec<u8>> = roster.ops.iter().chain(&roster.removals).cloned().collect();
        match self.device.removed_by(net.network, &ops) {
            Ok(true) => {
                self.device.wipe_network(net.network).map_err(failed)?;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) if is_local(&e) => Err(failed(e)),
            Err(_) => Ok(false),
        }
    }

    fn learn(&mut self, net: &NetworkAccess, roster: &Roster) -> Result<(), RelayError> {
        let ops: Vec<Vec<u8>> = roster.ops.iter().chain(&roster.removals).cloned().collect();
        match self.device.learn_ops(net.network, None, &ops) {
            Ok(_) => Ok(()),
            Err(e) if is_local(&e) => Err(failed(e)),
            Err(e) => {
                tracing::warn!(network = %net.network, error = %e, "the relay's operations are ignored");
                Ok(())
            }
        }
    }

    fn offered_keys(
        &mut self,
        net: &NetworkAccess,
        roster: &Roster,
        signer: &PublicKey,
    ) -> Vec<(u32, SecretKey)> {
        let Ok((m, _)) = self.device.membership(net.network) else { return Vec::new() };
        // Any key may sign a roster that lists itself (the relay operator's, say): its keys are
        // tried only if the membership commits to them or an admin, ever, sealed them. Else the
        // operator opened and merged a network document blob it made up (an attacker review).
        let by_admin = m.admins_ever.iter().any(|a| a.as_bytes() == signer);
        match self.device.roster_keys(roster) {
            Some((network, keys)) if network == net.network => keys
                .into_iter()
                .filter(|(e, k)| net.keys.get(e) != Some(k))
                .filter(|(e, k)| by_admin || m.commits_to(*e, &crypto::relay_network_id(k)))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn settled(&mut self) -> Result<(), RelayError> {
        // Erasures the pull brought take effect now, not at the next contact.
        self.device.apply_tombstones().map_err(failed)?;
        Ok(())
    }

    fn to_delete(&mut self, net: &NetworkAccess) -> Result<Vec<[u8; 32]>, RelayError> {
        store::relay_deletions(&self.device.reader.lock(), &net.relay_id).map_err(failed)
    }

    fn deleted(&mut self, net: &NetworkAccess, doc: &[u8; 32]) -> Result<(), RelayError> {
        let network = net.relay_id;
        self.device
            .set_relay_state(|tx| store::relay_deletion_done(tx, &network, doc))
            .map_err(failed)
    }

    fn open_roster(&mut self, roster: &Roster) -> Option<NetworkAccess> {
        let (network, all) = self.device.roster_keys(roster)?;
        // The first key of each epoch is taken; any other (two admins started the epoch at
        // once) is offered, to open what was sealed under it.
        let (mut keys, mut offered) = (BTreeMap::new(), Vec::new());
        for (epoch, key) in all {
            match keys.entry(epoch) {
                std::collections::btree_map::Entry::Occupied(_) => offered.push((epoch, key)),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(key);
                }
            }
        }
        // The roster's network must be the one its relay id derives from: the network's own
        // genesis (its id commits to it), committing to epoch 0's key.
        let key = keys.get(&0)?.clone();
        let founds = roster.ops.iter().filter_map(|b| SignedOp::decode(b).ok()).any(|g| {
            g.is_of(network)
                && g.founds_its_network()
                && g.signature_holds()
                && membership::relay_id_of(&g) == Some(roster.network)
                && matches!(g.change(), Change::Genesis { key_commitment, .. }
                    if *key_commitment == crypto::relay_network_id(&key))
        });
        if !founds {
            return None;
        }
        let held = self.device.kind_of(network).is_ok();
        // A network held here keeps the keys its own document seals to this device: a roster
        // at the relay (anyone can register one that lists this device) never replaces them.
        // Otherwise an outsider who knows a network's id and a member's key could make the
        // member upload the network's documents under the outsider's key (promise 1).
        if held {
            tracing::warn!(network = %network, "a relay roster offers other keys for a network held here: ignored");
            return None;
        }
        // A network this device was not invited to (and whose invitation its user did not
        // accept) is not taken from a roster: anyone can register one that lists this device.
        if !store::invitation_accepted(&self.device.reader.lock(), network).unwrap_or(false) {
            tracing::info!(network = %network, "a relay roster names a network this device was not invited to: ignored");
            return None;
        }
        Some(NetworkAccess { network, relay_id: roster.network, key, keys, offered, held })
    }

    fn sign(&mut self, roster: Roster) -> Result<SignedRoster, RelayError> {
        roster.sign(self.device.identity.signing_key()).map_err(failed)
    }

    fn to_push(&mut self, net: &NetworkAccess) -> Result<Vec<DocId>, RelayError> {
        let at = (&self.relay, &net.relay_id);
        let (inventory, held) = {
            let r = self.device.reader.lock();
            let inv = store::network_inventory(&r, net.network).map_err(failed)?;
            (inv, store::relay_pushed_all(&r, at).map_err(failed)?)
        };
        let lacking = |id: &DocId, heads: &Vec<[u8; 32]>| {
            held.get(id).is_none_or(|h| {
                let mut h = h.clone();
                h.sort();
                let mut mine = heads.clone();
                mine.sort();
                h != mine
            })
        };
        let docs: Vec<DocId> = inventory
            .iter()
            .filter(|(id, heads)| *id != net.network && lacking(id, heads))
            .map(|(id, _)| *id)
            .collect();
        self.device.ensure_content_keys(net, &docs).map_err(failed)?;
        let network_lacking =
            inventory.iter().any(|(id, heads)| *id == net.network && lacking(id, heads));
        Ok(network_lacking.then_some(net.network).into_iter().chain(docs).collect())
    }

    fn prepare_push(
        &mut self,
        net: &NetworkAccess,
        doc: DocId,
    ) -> Result<Option<PreparedPush>, RelayError> {
        let at = (&self.relay, &net.relay_id);
        let held = store::relay_pushed(&self.device.reader.lock(), at, doc).map_err(failed)?;
        let (heads, bytes) = self.device.changes_for_relay(doc, &held).map_err(failed)?;
        if bytes.is_empty() {
            // The relay holds all of it (the recorded heads were a union, say): record the
            // document's own heads, so the next sync need not look again.
            self.pushed(net, doc, &heads)?;
            return Ok(None);
        }
        let relay_doc = crypto::relay_doc_id(&net.key, doc);
        let (epoch, key) = if doc == net.network {
            let (epoch, key) = net.current();
            (epoch, crypto::network_doc_key(key))
        } else {
            self.device
                .content_key(net, &relay_doc, None)
                .map_err(failed)?
                .ok_or_else(|| RelayError::Store(format!("document {doc} has no content key")))?
        };
        let signed = self.device.signed_heads_to_send(doc).map_err(failed)?;
        let plain = encode_payload(doc, &heads, &signed, &bytes);
        let ctx = context(net, relay_doc, epoch);
        let rng = &self.device.randomness;
        let blob = crypto::encrypt_blob(rng, &key, &ctx, &plain).map_err(failed)?;
        // The first blob under a key the relay does not hold carries the key, sealed under the
        // network key: the relay deletes the two together.
        let key_id = key.id();
        let at = (&self.relay, &net.relay_id);
        let relay_holds = doc == net.network
            || store::relay_holds_key(&self.device.reader.lock(), at, &relay_doc, &key_id)
                .map_err(failed)?;
        if relay_holds {
            self.carrying.remove(&doc);
            return Ok(Some(PreparedPush { doc, relay_doc, blob: blob.bytes, heads }));
        }
        let network_key = net.keys.get(&epoch).unwrap_or(net.current().1);
        let carrying =
            crypto::carry_key(rng, network_key, &ctx, &key, &blob.bytes).map_err(failed)?;
        self.carrying.insert(doc, (relay_doc, key_id));
        Ok(Some(PreparedPush { doc, relay_doc, blob: carrying, heads }))
    }

    fn pushed(
        &mut self,
        net: &NetworkAccess,
        doc: DocId,
        heads: &[[u8; 32]],
    ) -> Result<(), RelayError> {
        let (relay, network) = (self.relay, net.relay_id);
        let carried = self.carrying.remove(&doc);
        self.device
            .set_relay_state(|tx| {
                if let Some((relay_doc, key)) = &carried {
                    store::set_relay_key(tx, (&relay, &network), relay_doc, key)?;
                }
                store::set_relay_pushed(tx, (&relay, &network), doc, heads)
            })
            .map_err(failed)
    }

    fn cursor(&mut self, net: &NetworkAccess) -> Result<u64, RelayError> {
        store::relay_cursor(&self.device.reader.lock(), &self.relay, &net.relay_id).map_err(failed)
    }

    fn apply(
        &mut self,
        net: &NetworkAccess,
        blobs: Vec<PulledBlob>,
        next: u64,
    ) -> Result<Applied, RelayError> {
        let mut applied = Applied::default();
        let ops_before =
            store::network_op_count(&self.device.reader.lock(), net.network).map_err(failed)?;
        let mut batch = NewDocs::default();
        let mut held = HeldMerges::default();
        let network_doc = crypto::relay_doc_id(&net.key, net.network);
        // The keys content keys open under: refreshed from the network document (verified
        // against its membership) once a pulled change of it is stored.
        let mut held_keys = net.keys.clone();
        let mut opening = self.device.opening_keys(net.network, &held_keys);
        // Blobs an earlier sync kept for want of their key come after the pulled ones (whose
        // network document may bring it); those that open, or fail otherwise, are let go.
        let at = (&self.relay, &net.relay_id);
        let kept = store::deferred_blobs(&self.device.reader.lock(), at).map_err(failed)?;
        let mut let_go: Vec<u64> = Vec::new();
        let mut to_keep: Vec<(u64, [u8; 32], Vec<u8>)> = Vec::new();
        // A pulled blob without its key goes once more to the back of the line (the network
        // document that brings the key may come later in this pull), then is kept.
        let mut queue: VecDeque<(PulledBlob, Pass)> =
            blobs.into_iter().map(|b| (b, Pass::Pulled)).collect();
        // Documents the relay held, by relay id: built at the first deletion marker.
        let mut pushed: Option<HashMap<[u8; 32], DocId>> = None;
        queue.extend(
            kept.into_iter().map(|(seq, doc, bytes)| (PulledBlob { seq, doc, bytes }, Pass::Kept)),
        );
        while let Some((b, pass)) = queue.pop_front() {
            if b.is_deletion() {
                // Someone deleted this document's blobs at the relay: if this device holds it
                // (and the settling after the pull does not erase it), it pushes it whole again.
                self.forget_deleted(net, &b.doc, &mut pushed).map_err(failed)?;
                continue;
            }
            let retried = pass == Pass::Kept;
            if retried {
                let_go.push(b.seq);
            }
            let reject = |reason: String| RejectedBlob { seq: b.seq, reason };
            // Bytes before the blob proper: the content key it carries, if it carries one
            // (kept once the blob opened under it and named its document).
            let mut skip = 0;
            let mut carried_opened: Option<CarriedKey> = None;
            let keys: Vec<(u32, SecretKey)> = if b.doc == network_doc {
                // Whichever epoch it was written in, newest first; a new epoch's key the
                // roster offers opens it before the document itself holds that key.
                let mut all: Vec<(u32, &SecretKey)> =
                    opening.iter().map(|(e, k)| (*e, k)).collect();
                for (e, k) in &net.offered {
                    if !all.iter().any(|(x, y)| x == e && *y == k) {
                        all.push((*e, k));
                    }
                }
                all.sort_by_key(|(e, _)| std::cmp::Reverse(*e));
                all.into_iter().map(|(e, k)| (e, crypto::network_doc_key(k))).collect()
            } else {
                // (A pulled network document is stored, and the keys read again, as soon as it
                // comes: see below.)
                let split = crypto::split_carried(&b.bytes)
                    .and_then(|(c, proper)| Ok((c, crypto::blob_key_id(proper)?, proper.len())));
                let (carried, key_id) = match split {
                    Ok((c, k, len)) => {
                        skip = b.bytes.len() - len;
                        (c, k)
                    }
                    Err(e) => {
                        applied.rejected.push(reject(e.to_string()));
                        continue;
                    }
                };
                let carried_key = match carried {
                    Some(c) if c.id != key_id => {
                        applied.rejected.push(reject(
                            "the content key a blob carries is not the key it is encrypted under"
                                .into(),
                        ));
                        continue;
                    }
                    Some(c) => {
                        let kept = [(c.id, c.epoch, c.sealed.clone())];
                        let keys: Vec<(u32, &SecretKey)> =
                            opening.iter().map(|(e, k)| (*e, k)).collect();
                        let opened = first_kept_that_opens(net, &b.doc, &kept, None, &keys);
                        if opened.is_some() {
                            carried_opened = Some(c);
                        }
                        opened
                    }
                    None => None,
                };
                // A carried key that does not open (its epoch's key has not come, or garbage)
                // leaves the blob to wait like any blob without its key.
                let found = match carried_key {
                    Some(k) => Ok(Some(k)),
                    None => self.device.content_key(net, &b.doc, Some((&key_id, &opening))),
                };
                match found {
                    Ok(Some(k)) => vec![k],
                    Ok(None) if retried => {
                        let_go.pop();
                        continue;
                    }
                    Ok(None) if pass == Pass::Pulled => {
                        queue.push_back((b, Pass::Again));
                        continue;
                    }
                    Ok(None) => {
                        // Its key may be a new epoch's that has not reached this device (removals
                        // while apart): kept, as far as the network's share allows, to open then.
                        applied.deferred.push(b.seq);
                        to_keep.push((b.seq, b.doc, b.bytes));
                        continue;
                    }
                    Err(e) if is_local(&e) => return Err(failed(e)),
                    Err(e) => {
                        applied.rejected.push(reject(e.to_string()));
                        continue;
                    }
                }
            };
            let mut bytes = b.bytes;
            bytes.drain(..skip);
            let blob = Blob { id: blob_id(&bytes), bytes };
            let opened = keys
                .iter()
                .find_map(|(e, k)| crypto::decrypt_blob(k, &context(net, b.doc, *e), &blob).ok());
            let Some(plain) = opened else {
                // The network's document written under a new epoch's key that has not reached
                // this device: the relay's roster seals it only once an admin that holds it
                // registers one (the admin registered last may have started the epoch's key
                // after its roster, or been demoted). Kept, like a content blob without its key,
                // to open at a later sync; passed over for good, it left this device without
                // what the document brought (removals, keys, content keys).
                if b.doc == network_doc {
                    match pass {
                        Pass::Kept => {
                            let_go.pop();
                        }
                        Pass::Pulled => {
                            let b = PulledBlob { seq: b.seq, doc: b.doc, bytes: blob.bytes };
                            queue.push_back((b, Pass::Again));
                        }
                        Pass::Again => {
                            applied.deferred.push(b.seq);
                            to_keep.push((b.seq, b.doc, blob.bytes));
                        }
                    }
                    continue;
                }
                tracing::warn!(seq = b.seq, "a pulled blob did not open");
                applied.rejected.push(reject(
                    "authentication failed: the blob does not open under a key held here".into(),
                ));
                continue;
            };
            let (doc, heads, signed, bytes) = match decode_payload(&plain) {
                Ok(p) => p,
                Err(e) => {
                    applied.rejected.push(reject(e));
                    continue;
                }
            };
            if crypto::relay_doc_id(&net.key, doc) != b.doc {
                applied.rejected.push(reject("the blob names another document".into()));
                continue;
            }
            if let Some(c) = &carried_opened {
                let at = (&self.relay, &net.relay_id);
                match self.device.keep_carried_key(net, at, &b.doc, c, doc) {
                    Ok(()) => {}
                    Err(e) if is_local(&e) => return Err(failed(e)),
                    Err(e) => tracing::warn!(error = %e, "a carried content key was not kept"),
                }
            }
            if batch.ids.contains(&doc) {
                self.flush(net, &mut batch, &mut applied)?;
            }
            if held.ids.contains(&doc) {
                self.flush_held(net, &mut held, &mut applied)?;
            }
            if self.device.kind_of(doc).is_ok() {
                // Only the network's own documents may change through its stream: a member of
                // one network must not write into another network's documents.
                let ours = store::doc_in_network(&self.device.reader.lock(), doc, net.network)
                    .map_err(failed)?;
                if !ours {
                    applied.rejected.push(reject("not a document of this network".into()));
                    continue;
                }
                let heads: Vec<ChangeHash> = heads.iter().map(|h| ChangeHash(*h)).collect();
                held.ids.insert(doc);
                held.merges.push((b.seq, (doc, bytes.to_vec(), heads, signed)));
                held.blobs.push((b.doc, blob.bytes.clone()));
            } else {
                batch.ids.insert(doc);
                batch.docs.push((b.seq, (net.network, doc, bytes.to_vec(), signed)));
            }
            // The network document first: the documents after it are checked against its
            // roster (their authors) and keys.
            if doc == net.network {
                self.flush(net, &mut batch, &mut applied)?;
                self.flush_held(net, &mut held, &mut applied)?;
                // Opening keeps every key held (a blob sealed under an epoch a concurrent
                // revocation has since made void was still sealed by a device that could read
                // it); sealing takes only what counts now.
                match self.device.network_keys(net.network) {
                    Ok((_, k)) if !k.is_empty() => {
                        for (e, key) in &k {
                            held_keys.entry(*e).or_insert_with(|| key.clone());
                        }
                        opening = self.device.opening_keys(net.network, &held_keys);
                        applied.keys = Some(k);
                    }
                    Ok(_) => {}
                    Err(e) if is_local(&e) => return Err(failed(e)),
                    Err(_) => {}
                }
            }
        }
        self.flush(net, &mut batch, &mut applied)?;
        self.flush_held(net, &mut held, &mut applied)?;
        for (seq, doc, bytes) in held.waiting {
            // Kept already (retried now): stays kept.
            if let Some(i) = let_go.iter().position(|s| *s == seq) {
                let_go.remove(i);
            } else {
                applied.deferred.push(seq);
                to_keep.push((seq, doc, bytes));
            }
        }
        let retried: HashSet<u64> = let_go.iter().copied().collect();
        applied.opened_later = applied_later(&applied, &retried);
        applied.membership_moved = applied.keys.as_ref().is_some_and(|k| *k != net.keys)
            || store::network_op_count(&self.device.reader.lock(), net.network).map_err(failed)?
                != ops_before;
        let (relay, network) = (self.relay, net.relay_id);
        let mut full = Vec::new();
        self.device
            .set_relay_state(|tx| {
                for seq in &let_go {
                    store::drop_deferred(tx, (&relay, &network), *seq)?;
                }
                for (seq, doc, bytes) in &to_keep {
                    let kept = (*seq, doc, bytes.as_slice());
                    match store::defer_blob(tx, (&relay, &network), kept, &network_doc)? {
                        Some(let_go) => full.extend(let_go),
                        None => full.push(*seq),
                    }
                }
                store::set_relay_cursor(tx, &relay, &network, next)
            })
            .map_err(failed)?;
        // Beyond the network's share, or let go to make room in it: passed over, as before
        // there was a share.
        for seq in full {
            applied.deferred.retain(|s| *s != seq);
            applied.rejected.push(RejectedBlob {
                seq,
                reason: "no key for this blob (its key id was altered, or its key never arrived)"
                    .into(),
            });
        }
        Ok(applied)
    }
}

/// Which pass over the blobs of a pull a blob is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Pulled now.
    Pulled,
    /// Pulled now, without its key at first: tried again after the others.
    Again,
    /// Kept at an earlier sync for want of its key.
    Kept,
}

/// How many of the `retried` blobs (kept at an earlier sync) were applied now: those not
/// reported as rejected.
fn applied_later(applied: &Applied, retried: &HashSet<u64>) -> usize {
    let rejected: HashSet<u64> = applied.rejected.iter().map(|r| r.seq).collect();
    retried.iter().filter(|s| !rejected.contains(s)).count()
}

/// Changes to documents held here, pulled in one batch (by blob number): merged in one
/// transaction.
#[derive(Default)]
struct HeldMerges {
    ids: HashSet<DocId>,
    merges: Vec<(u64, PulledChanges)>,
    /// Each merge's blob as pulled (relay document id, ciphertext): kept if its changes
    /// depend on changes that have not come yet.
    blobs: Vec<([u8; 32], Vec<u8>)>,
    /// Blobs whose changes depend on changes this device does not have: kept, to merge at a
    /// later sync (the blob they depend on may be kept for want of its key).
    waiting: Vec<(u64, [u8; 32], Vec<u8>)>,
}

/// Pulled changes to one document: its id, the Automerge bytes, the heads the sender had, and
/// the signatures that cover them.
type PulledChanges = (DocId, Vec<u8>, Vec<ChangeHash>, Vec<SignedHead>);

/// Documents new here, pulled in one batch (by blob number): stored in one transaction.
#[derive(Default)]
struct NewDocs {
    ids: HashSet<DocId>,
    docs: Vec<(u64, Incoming)>,
}

impl DeviceRelay<'_> {
    /// Merges the batch in one transaction; if a merge is refused, merges one by one and
    /// reports the refused (a local storage failure stops the pull).
    fn flush_held(
        &self,
        net: &NetworkAccess,
        held: &mut HeldMerges,
        applied: &mut Applied,
    ) -> Result<(), RelayError> {
        if held.merges.is_empty() {
            return Ok(());
        }
        let merges = std::mem::take(&mut held.merges);
        let blobs = std::mem::take(&mut held.blobs);
        held.ids.clear();
        let at = (&self.relay, &net.relay_id);
        let items: Vec<RelayMerge<'_>> = merges
            .iter()
            .map(|(_, (d, b, h, s))| (*d, b.as_slice(), h.clone(), s.clone()))
            .collect();
        match self.device.merge_from_relay(at, &items) {
            Ok(outcomes) => {
                applied.changed.extend(outcomes.iter().filter(|o| o.changed).map(|o| o.doc_id));
                return Ok(());
            }
            Err(e) if is_local(&e) => return Err(failed(e)),
            Err(_) => {}
        }
        for (((seq, _), item), (relay_doc, blob)) in merges.iter().zip(items).zip(blobs) {
            match self.device.merge_from_relay(at, std::slice::from_ref(&item)) {
                Ok(outcomes) => {
                    applied.changed.extend(outcomes.iter().filter(|o| o.changed).map(|o| o.doc_id));
                }
                Err(e) if is_local(&e) => return Err(failed(e)),
                Err(e) => {
                    // Two histories of the document: if the one held here gave way, the blob
                    // went in with it; the merge runs again for the relay's bookkeeping.
                    let (doc, bytes, _, signed) = &item;
                    let retried = self
                        .device
                        .after_refusal(*doc, &e, bytes, signed)
                        .then(|| self.device.merge_from_relay(at, std::slice::from_ref(&item)));
                    match retried.unwrap_or(Err(e)) {
                        Ok(outcomes) => applied
                            .changed
                            .extend(outcomes.iter().filter(|o| o.changed).map(|o| o.doc_id)),
                        Err(e) if is_local(&e) => return Err(failed(e)),
                        Err(Error::Merge(DocError::MissingDependencies(_))) => {
                            held.waiting.push((*seq, relay_doc, blob));
                        }
                        Err(e) => {
                            applied.rejected.push(RejectedBlob { seq: *seq, reason: e.to_string() })
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Stores the batch; a document the store refuses (not of this network, malformed) is
    /// reported, a local storage failure stops the pull.
    fn flush(
        &self,
        net: &NetworkAccess,
        batch: &mut NewDocs,
        applied: &mut Applied,
    ) -> Result<(), RelayError> {
        if batch.docs.is_empty() {
            return Ok(());
        }
        let docs: Vec<(u64, Incoming)> = std::mem::take(&mut batch.docs);
        batch.ids.clear();
        let at = (&self.relay, &net.relay_id);
        let all: Vec<Incoming> = docs.iter().map(|(_, d)| d.clone()).collect();
        match self.device.import_batch(&all, Some(at)) {
            Ok(()) => {
                applied.changed.extend(docs.iter().map(|(_, d)| d.1));
                return Ok(());
            }
            Err(StoreFailure::Storage(e)) => return Err(RelayError::Store(e)),
            Err(StoreFailure::Refused(_) | StoreFailure::TwoHistories(_)) => {}
        }
        // One refused document refuses the batch: store the others one by one.
        for (seq, d) in docs {
            let id = d.1;
            match self.device.import_batch(std::slice::from_ref(&d), Some(at)) {
                Ok(()) => applied.changed.push(id),
                Err(StoreFailure::Storage(e)) => return Err(RelayError::Store(e)),
                Err(StoreFailure::Refused(reason)) => {
                    applied.rejected.push(RejectedBlob { seq, reason });
                }
                // Another history of a document held here: it goes in if the one held here
                // gives way (`forks`).
                Err(StoreFailure::TwoHistories(reason)) => {
                    if self.device.take_other_history(id, &d.2, &d.3) {
                        applied.changed.push(id);
                    } else {
                        applied.rejected.push(RejectedBlob { seq, reason });
                    }
                }
            }
        }
        Ok(())
    }
}
