//! Erasure: a document erased here by its creator or an admin, with a signed tombstone into
//! every network document it is shared with; tombstones that arrive applied; the erased list
//! that keeps stale copies out. See ARCHITECTURE.md, "Erasure, redaction and consent".

use super::*;
use crate::erasure::{Scope, Tombstone, erased_tag};
use crate::model::Valid;

/// What a deletion deletes and records, planned before the writer is taken
/// ([`Device::plan_deletion`]), done in the caller's transaction ([`delete_in`]).
pub(super) struct Deletion {
    /// The documents deleted.
    pub(super) ids: Vec<DocId>,
    /// Erased documents to record (tag, network of the tombstone, its time).
    erased: Vec<([u8; 32], DocId, Timestamp)>,
    /// Until when they are refused.
    pub(super) until: Timestamp,
    /// Their places at the relays, to ask the relays to delete.
    at_relays: Vec<([u8; 32], [u8; 32])>,
    /// Their places in every network held here, whose content keys go.
    keys_at: Vec<([u8; 32], [u8; 32])>,
}

/// Deletes and records what `plan` names, in the caller's transaction (the scrub follows the
/// commit: [`scrub_or_mark`]).
pub(super) fn delete_in(tx: &Transaction<'_>, plan: &Deletion) -> Result<(), Error> {
    store::delete_documents(tx, &plan.ids)?;
    for (tag, network, at) in &plan.erased {
        store::mark_erased(tx, tag, *network, *at, plan.until)?;
    }
    for (network, doc) in &plan.at_relays {
        store::queue_relay_deletion(tx, network, doc)?;
    }
    for (network, doc) in &plan.keys_at {
        store::delete_content_keys(tx, network, doc)?;
    }
    Ok(())
}

/// A case replaced by a new history without redacted words, by a valid tombstone: the case
/// held here, the new one, the heads it was made from, and the tombstone's tag, network and
/// time.
pub(super) struct Replacing {
    pub(super) old: DocId,
    pub(super) by: DocId,
    pub(super) heads: Vec<[u8; 32]>,
    pub(super) tag: [u8; 32],
    pub(super) network: DocId,
    pub(super) at: Timestamp,
}

/// How long an erased document is refused here by default: longer than any phone stays
/// offline.
pub const DEFAULT_ERASURE_WINDOW_MS: i64 = 365 * 24 * 3600 * 1000;

#[cfg(feature = "test-utils")]
impl Device {
    /// Writes `bytes` under `key` into the network document's map `map` past every check, as a
    /// modified app would (`make`: the map is made first if the network lacks it).
    pub(crate) fn plant_entry_for_tests(
        &self,
        network: DocId,
        map: &str,
        key: &str,
        bytes: Vec<u8>,
        make: bool,
    ) -> Result<(), Error> {
        self.edit(network, DocKind::Network, |d, _, now| {
            doc::plant_entry_for_tests(d, map, key, bytes, make)?;
            doc::commit_pending(d, format!("Wrote an entry of `{map}`"), now)?;
            Ok(())
        })
    }

    pub(crate) fn identity_for_tests(&self) -> &ed25519_dalek::SigningKey {
        self.identity.signing_key()
    }
}

impl Device {
    /// The device that made a case, learning point or meeting: the author of its first
    /// change (signed, as every change is). Not the `created_by` field, which any writer of
    /// the document could change.
    pub(super) fn creator_device(
        &self,
        id: DocId,
        kind: DocKind,
    ) -> Result<Option<DeviceKey>, Error> {
        if kind == DocKind::Network {
            return Err(Error::Invalid(ValidationError::Invalid {
                field: "document",
                reason: "a network is left or removed, not erased".into(),
            }));
        }
        self.read(id, kind, |d| {
            let first = d.get_changes(&[]).into_iter().find(|c| c.deps().is_empty());
            Ok(first.and_then(|c| {
                <[u8; 32]>::try_from(c.actor_id().to_bytes()).ok().map(DeviceKey::from_bytes)
            }))
        })
    }

    /// Erases a case (with its notes), learning point or meeting, on this device and, by a
    /// signed tombstone in every network document it is shared with, on every device that
    /// syncs afterwards. Only the member who created it or an admin of a network it is shared
    /// with may. The document, its derived rows, search entries, sync states and signatures
    /// are deleted with freed pages zeroed and the WAL folded in, so its text is gone from
    /// the store's files; for the erasure window no path takes a copy of it again.
    pub fn erase(&self, id: DocId, reason: &str) -> Result<(), Error> {
        let reason = model::required_short("reason", reason)?;
        let kind = self.kind_of(id)?;
        let creator = self.creator_device(id, kind)?;
        let shared = store::networks_of_doc(&self.reader.lock(), id)?;
        // Each network's devices honour only their own admins' tombstones (or the maker's):
        // the tombstone goes into every network this device holds and may act in. A network
        // it is not in (a colleague shared the case there) gets it from a device that applies
        // this erasure and may act there (`apply_tombstones`); until then it keeps its copies
        // (ARCHITECTURE.md). Refusing the whole erasure instead let any member block it by
        // sharing the case into a network of their own.
        let networks = self.may_act_in(creator, &shared, "erase it")?;
        let now = self.now();
        let tag = erased_tag(id);
        self.write_erasures(id, &networks, &reason, &Scope::Erased)?;
        // (A crash here leaves the tombstones and the document: the next contact applies this
        // device's own tombstone and deletes it.)
        // A document shared with no network: no network to name (and never its own id).
        let network = networks.first().copied().unwrap_or(DocId::from_bytes([0; 16]));
        self.erase_here(&[(tag, Some(id), network, now)], &[])?;
        Ok(())
    }

    /// Writes a signed erasure of `id` into each of `networks`, all in one transaction: in
    /// every one, or (a crash) in none.
    fn write_erasures(
        &self,
        id: DocId,
        networks: &[DocId],
        reason: &str,
        scope: &Scope,
    ) -> Result<(), Error> {
        let now = self.now();
        let mut w = self.writer.lock();
        let Writer { conn, cache } = &mut *w;
        let result = guard(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed =
                self.put_tombstones_in(&tx, cache, erased_tag(id), networks, reason, scope, now)?;
            tx.commit()?;
            for (d, h) in &changed {
                engine::set_persisted(cache, *d, h);
            }
            Ok(changed.into_iter().map(|(d, _)| d).collect::<Vec<_>>())
        });
        if result.is_err() {
            for n in networks {
                cache.pop(n);
            }
        }
        drop(w);
        self.notify(&result?);
        Ok(())
    }

    /// Writes a signed tombstone of the document tagged `tag` (an erasure or a replacement,
    /// keyed `<tag>.<signer>`) into each of `networks`, in the caller's transaction. The
    /// networks' new heads.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn put_tombstones_in(
        &self,
        tx: &Transaction<'_>,
        cache: &mut lru::LruCache<DocId, engine::Cached>,
        tag: [u8; 32],
        networks: &[DocId],
        reason: &str,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<Vec<(DocId, Vec<ChangeHash>)>, Error> {
        let me = self.device_key();
        let key = self.identity.signing_key();
        let what = if matches!(scope, Scope::Replaced { .. }) { "redact" } else { "erase" };
        let mut changed = Vec::new();
        for n in networks {
            let tombstone = Tombstone {
                tag,
                network: *n,
                by: me,
                at: now,
                reason: reason.into(),
                scope: scope.clone(),
            }
            .sign(key);
            let ((), h) = self.edit_in(tx, cache, *n, DocKind::Network, now, |d, _, _| {
                put_tombstone(d, &tag, &me, None, &tombstone, what)
            })?;
            changed.extend(h.map(|h| (*n, h)));
        }
        Ok(changed)
    }

    /// Writes `change` to a case and unshares it from `networks` (each one it is shared with
    /// now), with a signed `Unshared` tombstone naming the case's new heads in each network's
    /// document, all in one transaction: a crash leaves the case shared and no tombstone, or
    /// both done. Only the case's creator or an admin of each network may.
    pub(super) fn unshare_case(
        &self,
        id: DocId,
        change: &Valid<CaseUpdate>,
        networks: &[DocId],
        kept: &[DocId],
        reason: &str,
    ) -> Result<(), Error> {
        let me = self.device_key();
        let creator = self.creator_device(id, DocKind::Case)?;
        // The case leaves every network named; a tombstone goes into each this device may act
        // in (a network a colleague shared it into, which this device is not in, must not
        // keep the worker from withdrawing consent).
        let acting =
            self.may_act_in(creator, networks, "unshare it from that network or withdraw consent")?;
        let tag = erased_tag(id);
        let now = self.now();
        let key = self.identity.signing_key();
        let at_relays: Vec<([u8; 32], [u8; 32])> =
            acting.iter().filter_map(|n| self.relay_ids(*n, id)).collect();
        // Its content keys in the networks it leaves go (they open only its blobs there).
        let keys_at: Vec<([u8; 32], [u8; 32])> =
            networks.iter().filter_map(|n| self.relay_ids(*n, id)).collect();
        let mut w = self.writer.lock();
        let Writer { conn, cache } = &mut *w;
        let result = guard(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ((), heads) = self.edit_in(&tx, cache, id, DocKind::Case, now, |d, _, now| {
                doc::update_case(d, change, networks, now)?;
                Ok(())
            })?;
            // Unsharing a network it is shared with always writes a change.
            let Some(heads) = heads else { return Ok(Vec::new()) };
            let raw: Vec<[u8; 32]> = heads.iter().map(|h| h.0).collect();
            let mut changed = vec![(id, heads)];
            for n in &acting {
                let tombstone = Tombstone {
                    tag,
                    network: *n,
                    by: me,
                    at: now,
                    reason: reason.into(),
                    scope: Scope::Unshared { heads: raw.clone(), kept: kept.to_vec() },
                }
                .sign(key);
                let ((), h) = self.edit_in(&tx, cache, *n, DocKind::Network, now, |d, _, _| {
                    put_tombstone(d, &tag, &me, Some(&raw), &tombstone, "unshare a case")
                })?;
                changed.extend(h.map(|h| (*n, h)));
            }
            for (network, doc) in &at_relays {
                store::queue_relay_deletion(&tx, network, doc)?;
            }
            for (network, doc) in &keys_at {
                store::delete_content_keys(&tx, network, doc)?;
            }
            tx.commit()?;
            for (d, h) in &changed {
                engine::set_persisted(cache, *d, h);
            }
            Ok(changed.into_iter().map(|(d, _)| d).collect::<Vec<_>>())
        });
        if result.is_err() {
            cache.pop(&id);
            for n in networks {
                cache.pop(n);
            }
        }
        drop(w);
        let changed = result?;
        tracing::info!(networks = networks.len(), "case unshared");
        self.notify(&changed);
        Ok(())
    }

    /// Deletes erased documents held here for good and records every one as erased (by tag,
    /// with the document held, if it is, and the network and time of the tombstone), then
    /// scrubs the file.
    /// `dropped`: documents unshared from a network (the second) and from every network this
    /// device is in, deleted the same way but not recorded as erased (shared again, they may
    /// come back). The relays are asked to delete the blobs of each erased document in every
    /// network it was shared with that this device holds, and of each dropped one in the
    /// network it was unshared from.
    fn erase_here(
        &self,
        docs: &[([u8; 32], Option<DocId>, DocId, Timestamp)],
        dropped: &[(DocId, DocId)],
    ) -> Result<Vec<DocId>, Error> {
        if docs.is_empty() && dropped.is_empty() {
            return Ok(Vec::new());
        }
        let plan = self.plan_deletion(docs, dropped)?;
        let mut w = self.writer.lock();
        // This device's own reader must not hold the checkpoint back (writer before reader,
        // as every path that takes both).
        let reader = self.reader.lock();
        let done = (|| -> Result<(), Error> {
            let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            delete_in(&tx, &plan)?;
            tx.commit()?;
            // The deletion took effect; a scrub that fails (disk full, busy) is not the
            // erasure's failure: it is tried again at the next contact.
            scrub_or_mark(&w.conn);
            Ok(())
        })();
        for d in &plan.ids {
            w.cache.pop(d);
        }
        drop(reader);
        drop(w);
        done?;
        tracing::info!(erased = docs.len(), unshared = dropped.len(), "deleted");
        self.notify(&plan.ids);
        Ok(plan.ids)
    }

    /// What deleting `docs` and `dropped` (as [`Self::erase_here`] takes them) deletes: read
    /// before the writer is taken.
    pub(super) fn plan_deletion(
        &self,
        docs: &[([u8; 32], Option<DocId>, DocId, Timestamp)],
        dropped: &[(DocId, DocId)],
    ) -> Result<Deletion, Error> {
        let until = self.now().saturating_add(self.erasure_window_ms);
        let mut ids: Vec<DocId> = docs.iter().filter_map(|(_, d, _, _)| *d).collect();
        let mut at_relays: Vec<([u8; 32], [u8; 32])> = Vec::new();
        for id in &ids {
            // (The reader's lock is let go before `relay_ids` reads the network.)
            let networks = store::networks_of_doc(&self.reader.lock(), *id)?;
            for n in networks {
                at_relays.extend(self.relay_ids(n, *id));
            }
        }
        for (id, n) in dropped {
            at_relays.extend(self.relay_ids(*n, *id));
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
        // Their content keys go in every network held here: no key that opens a blob of a
        // deleted document stays (a blob a relay failed to delete opens with nothing here).
        let held: Vec<DocId> = self
            .document_ids()?
            .into_iter()
            .filter(|(_, k)| *k == DocKind::Network)
            .map(|(n, _)| n)
            .collect();
        let keys_at: Vec<([u8; 32], [u8; 32])> =
            ids.iter().flat_map(|id| held.iter().filter_map(|n| self.relay_ids(*n, *id))).collect();
        let erased = docs.iter().map(|(tag, _, network, at)| (*tag, *network, *at)).collect();
        Ok(Deletion { ids, erased, until, at_relays, keys_at })
    }

    /// Applies the tombstones of every network held here: a document held here that a valid
    /// tombstone names is erased here. Valid: for a document shared with that network, signed
    /// by an admin device of the network as its membership stood where the tombstone was
    /// written, or by the device that made the document (its first change), by a device not
    /// removed since. Returns the documents deleted.
    pub(crate) fn apply_tombstones(&self) -> Result<Vec<DocId>, Error> {
        let now = self.now();
        {
            let mut w = self.writer.lock();
            let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            store::forget_erased_before(&tx, now)?;
            tx.commit()?;
            if store::meta_get(&w.conn, SCRUB_PENDING)?.is_some() {
                let _reader = self.reader.lock();
                scrub_or_mark(&w.conn);
            }
        }
        // Every contact starts here: read the networks' tombstone maps first, and hash the ids
        // of what is held (a tombstone names a document by its tag only) only if some
        // network has a tombstone at all.
        let docs = self.document_ids()?;
        let mut networks: Vec<DocId> =
            docs.iter().filter(|(_, k)| *k == DocKind::Network).map(|(id, _)| *id).collect();
        // In a fixed order, so that a simulation replays.
        networks.sort();
        let mut with_entries = Vec::new();
        for network in networks {
            let entries =
                self.read(network, DocKind::Network, |d| Ok(doc::tombstone_entries(d)?))?;
            if !entries.is_empty() {
                with_entries.push((network, entries));
            }
        }
        if with_entries.is_empty() {
            return Ok(Vec::new());
        }
        let held: std::collections::HashMap<[u8; 32], (DocId, DocKind)> =
            docs.into_iter().map(|(id, kind)| (erased_tag(id), (id, kind))).collect();
        let mut todo: Vec<([u8; 32], Option<DocId>, DocId, Timestamp)> = Vec::new();
        let mut dropped: Vec<(DocId, DocId)> = Vec::new();
        // Erased documents to spread to their other networks: with their kind, those networks
        // and the erasure's reason.
        let mut spread: Vec<(DocId, DocKind, Vec<DocId>, String, Scope)> = Vec::new();
        // Cases replaced by a new history (redaction): old, new, the heads it was made from,
        // and the tombstone's tag, network and time.
        let mut replacing: Vec<Replacing> = Vec::new();
        // Valid unsharings of each document held here, with its kind.
        let mut unsharings: BTreeMap<DocId, (DocKind, Vec<Unsharing>)> = BTreeMap::new();
        let me = self.device_key();
        for (network, entries) in with_entries {
            let root = store::network_root(&self.reader.lock(), network)?;
            let Ok((now_m, _)) = self.membership(network) else { continue };
            for (key, bytes, at) in entries {
                let Some(at) = at else { continue };
                let Some((tag_hex, signer)) = doc::tombstone_key(&key) else { continue };
                let Ok(t) = Tombstone::open(&bytes) else {
                    tracing::debug!(%network, "a tombstone that does not open is ignored");
                    continue;
                };
                if hex::encode(t.tag) != tag_hex
                    || t.by.to_string() != signer
                    || t.network != network
                {
                    continue;
                }
                // Only documents held here are erased (a document not held is not blocked in
                // advance: an admin of some network must not keep others' documents out). One
                // that arrives later is held at the next contact or settling, and erased then.
                let Some((id, kind)) = held.get(&t.tag).copied() else { continue };
                if todo.iter().any(|(tag, _, _, _)| *tag == t.tag)
                    || store::is_tag_erased(&self.reader.lock(), &t.tag)?
                {
                    continue;
                }
                // Judged by the membership the network held where the tombstone was written
                // (so alike on every device), and the signer must not be removed now: a
                // removed phone cannot erase by writing into a history from before its
                // removal.
                // The operations the network held where the tombstone was written (read only
                // for a tombstone that names a document held here and not yet erased: rare).
                let ops = self.read(network, DocKind::Network, |d| Ok(doc::ops_at(d, &[at])?))?;
                let m = crate::membership::resolve_network(network, root.as_ref(), &ops);
                let may = kind != DocKind::Network
                    && !now_m.removed_devices.contains_key(&t.by)
                    && (m.is_admin(&t.by)
                        || self.creator_device(id, kind).ok().flatten() == Some(t.by));
                if !may {
                    tracing::debug!(%network, "a tombstone by a device that may not erase is ignored");
                    continue;
                }
                match &t.scope {
                    Scope::Erased => {
                        let shared = store::networks_of_doc(&self.reader.lock(), id)?;
                        if shared.contains(&network) {
                            todo.push((t.tag, Some(id), network, t.at));
                            let others: Vec<DocId> =
                                shared.into_iter().filter(|n| *n != network).collect();
                            spread.push((id, kind, others, t.reason.clone(), Scope::Erased));
                        }
                    }
                    Scope::Unshared { heads, kept } => {
                        let u = unsharings.entry(id).or_insert_with(|| (kind, Vec::new()));
                        u.1.push((network, heads.clone(), kept.clone()));
                    }
                    Scope::Replaced { by, heads } => {
                        let shared = store::networks_of_doc(&self.reader.lock(), id)?;
                        if kind == DocKind::Case
                            && shared.contains(&network)
                            && !replacing.iter().any(|r| r.old == id)
                        {
                            replacing.push(Replacing {
                                old: id,
                                by: *by,
                                heads: heads.clone(),
                                tag: t.tag,
                                network,
                                at: t.at,
                            });
                            let others: Vec<DocId> =
                                shared.into_iter().filter(|n| *n != network).collect();
                            spread.push((id, kind, others, t.reason.clone(), t.scope.clone()));
                        }
                    }
                }
            }
        }
        // An erasure reaches the other networks the document is shared with through every
        // device that applies it and may act there (the maker, or an admin there): so an
        // admin's erasure in one network reaches the others by the maker's device.
        for (id, kind, others, reason, scope) in spread {
            let creator = self.creator_device(id, kind)?;
            let acting: Vec<DocId> = others
                .into_iter()
                .filter(|n| {
                    self.membership(*n).is_ok_and(|(m, _)| creator == Some(me) || m.is_admin(&me))
                })
                .collect();
            if !acting.is_empty()
                && let Err(e) = self.write_erasures(id, &acting, &reason, &scope)
            {
                // (A network made before erasure existed takes tombstones once its creator
                // adds their map.)
                tracing::warn!(error = %e, "an erasure could not be passed on to other networks");
            }
        }
        for (id, (kind, unshared)) in unsharings {
            if todo.iter().any(|(_, d, _, _)| *d == Some(id)) {
                continue;
            }
            // The worker who made it keeps it, whoever unshared it (the worker or an admin).
            let keeps = self.creator_device(id, kind).ok().flatten() == Some(me);
            if replacing.iter().any(|r| r.old == id) {
                continue;
            }
            if !keeps && let Some(network) = self.unshared_here(id, kind, &unshared)? {
                dropped.push((id, network));
                continue;
            }
            // A copy kept that does not know of an unsharing yet would go on offering the case
            // to that network (at meetings, and pushing it back into the network's place at
            // the relay after a deletion marker): this device unshares its copy there itself,
            // as the unsharing did (the same key deleted: the changes agree).
            let stale = self.stale_unsharings(id, kind, &unshared)?;
            let from: Vec<DocId> = stale.iter().map(|(n, _, _)| *n).collect();
            if kind == DocKind::Case && !from.is_empty() {
                let nothing = CaseUpdate::default().parse()?;
                self.edit(id, kind, |d, _, now| Ok(doc::update_case(d, &nothing, &from, now)?))?;
            }
        }
        let mut deleted = Vec::new();
        for r in replacing {
            if todo.iter().any(|(_, d, _, _)| *d == Some(r.old)) {
                continue;
            }
            deleted.extend(self.replace_here(&r)?);
        }
        deleted.extend(self.erase_here(&todo, &dropped)?);
        Ok(deleted)
    }

    /// Of `networks` (a document's, made by `creator`), those this device may erase or
    /// unshare it in: it holds the network, and made the document or is an admin there. The
    /// others are logged. Refused if there are networks and none of them, or if there are none
    /// and this device did not make it.
    pub(super) fn may_act_in(
        &self,
        creator: Option<DeviceKey>,
        networks: &[DocId],
        what: &str,
    ) -> Result<Vec<DocId>, Error> {
        let me = self.device_key();
        let acting: Vec<DocId> = networks
            .iter()
            .filter(|n| {
                self.membership(**n).is_ok_and(|(m, _)| creator == Some(me) || m.is_admin(&me))
            })
            .copied()
            .collect();
        if (networks.is_empty() && creator != Some(me))
            || (!networks.is_empty() && acting.is_empty())
        {
            return Err(Error::NotAllowed(format!(
                "only the worker who created it or an admin of a network it is shared with can \
                 {what}"
            )));
        }
        if acting.len() < networks.len() {
            tracing::warn!(
                skipped = networks.len() - acting.len(),
                "networks this device cannot act in keep their copies until the maker or an \
                 admin there does the same"
            );
        }
        Ok(acting)
    }

    /// A document's place at the relays in a network this device holds the key of: the
    /// network's relay id and the document's.
    fn relay_ids(&self, network: DocId, doc: DocId) -> Option<([u8; 32], [u8; 32])> {
        let relay_network = self.relay_network_id(network).ok().flatten()?;
        let (_, keys) = self.network_keys(network).ok()?;
        let key = keys.get(&0)?;
        Some((relay_network, crate::crypto::relay_doc_id(key, doc)))
    }

    /// Whether this device's copy of `id` goes, by the valid unsharings `unshared`, and the
    /// network to ask the relay to delete it in (its first unsharing's). The copy stays while it is shared with a
    /// network this device is in, as the copy says, within what the unsharings it does not
    /// know of yet allow (those it lacks the heads of, in a network the copy is shared
    /// with): not a network one of them took it from, and only a network each kept. So a
    /// copy that holds an unsharing's heads follows what the case says now (shared again with
    /// that network after it: it stays); a stale one goes, unless it is shared with another of
    /// this device's networks that the case stayed shared with (consent narrowed, not a
    /// network someone shared it with at the same time, unknown to the unsharing); and an
    /// unsharing in a network the copy was never shared with (an admin of some other network,
    /// naming any heads) takes nothing away.
    /// The unsharings of `unshared` this device's copy of `id` does not know of yet: in a
    /// network the copy is shared with, and it lacks their heads.
    fn stale_unsharings<'a>(
        &self,
        id: DocId,
        kind: DocKind,
        unshared: &'a [Unsharing],
    ) -> Result<Vec<&'a Unsharing>, Error> {
        let networks = store::networks_of_doc(&self.reader.lock(), id)?;
        self.read(id, kind, |d| {
            Ok(unshared
                .iter()
                .filter(|(n, heads, _)| {
                    networks.contains(n)
                        && heads.iter().any(|h| d.get_change_by_hash(&ChangeHash(*h)).is_none())
                })
                .collect())
        })
    }

    fn unshared_here(
        &self,
        id: DocId,
        kind: DocKind,
        unshared: &[Unsharing],
    ) -> Result<Option<DocId>, Error> {
        let me = self.device_key();
        let networks = store::networks_of_doc(&self.reader.lock(), id)?;
        let stale = self.stale_unsharings(id, kind, unshared)?;
        let conn = self.reader.lock();
        for n in &networks {
            let allowed = stale.iter().all(|(from, _, kept)| from != n && kept.contains(n));
            if allowed && store::device_active_in(&conn, *n, &me)? {
                return Ok(None);
            }
        }
        Ok(unshared.first().map(|(n, _, _)| *n))
    }
}

/// Meta flag: a deletion's scrub failed; the next contact tries it again.
const SCRUB_PENDING: &str = "scrub_pending";

/// Scrubs the store after a deletion ([`store::scrub`]); on failure, or when another reader
/// kept the WAL, marks it to be done again at the next contact.
pub(super) fn scrub_or_mark(conn: &rusqlite::Connection) {
    let done = match store::scrub(conn) {
        Ok(true) => true,
        Ok(false) => {
            tracing::warn!("another reader kept the WAL from being truncated after a deletion");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "scrubbing the store after a deletion failed");
            false
        }
    };
    let flag = if done {
        conn.execute("DELETE FROM meta WHERE key = ?1", [SCRUB_PENDING])
    } else {
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, x'01')", [SCRUB_PENDING])
    };
    if let Err(e) = flag {
        tracing::warn!(error = %e, "could not record whether the store is scrubbed");
    }
}

/// A valid unsharing of a document held here: the network it was unshared from, the
/// document's heads after that, and the networks it stayed shared with.
type Unsharing = (DocId, Vec<[u8; 32]>, Vec<DocId>);

/// Puts a signed tombstone into a network document. A network made before erasure existed
/// has no tombstone map: only its creator's device adds it, so that no two devices make it at
/// once (`doc::check_write_once`).
fn put_tombstone(
    d: &mut AutoCommit,
    tag: &[u8; 32],
    me: &DeviceKey,
    unshared: Option<&[[u8; 32]]>,
    signed: &[u8],
    what: &str,
) -> Result<(), Error> {
    if !doc::put_tombstone(d, tag, me, unshared, signed)? {
        if doc::network_creator(d)? != Some(*me) {
            return Err(Error::NotAllowed(format!(
                "this network was made before erasure existed: its creator's device must {what} \
                 first (it adds what the network lacks)"
            )));
        }
        doc::ensure_key_maps(d)?;
        doc::put_tombstone(d, tag, me, unshared, signed)?;
    }
    Ok(())
}
