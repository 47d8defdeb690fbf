//! Maintenance: rebuilding the derived tables, durability settings, the integrity check.

use super::*;
use crate::{
    membership::{self, Change, SignedOp},
    model::Role,
};

impl Device {
    /// Rebuilds every derived table from the stored document chunks alone.
    pub fn reindex(&self) -> Result<usize, Error> {
        let key = self.device_key();
        let mut w = self.writer.lock();
        w.cache.clear();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        store::clear_index(&tx)?;
        let ids = store::document_ids(&tx)?;
        for (id, kind) in &ids {
            let bytes = store::load_bytes(&tx, *id)?;
            let doc = doc::load(&bytes, &key)
                .map_err(|source| Error::StoredDocument { id: id.to_string(), source })?;
            index_doc(&tx, &doc, *kind, Notes::All)?;
        }
        store::meta_delete(&tx, "needs_reindex")?;
        tx.commit()?;
        Ok(ids.len())
    }

    /// Brings networks made before signed membership (store version 6) into it. Each held
    /// network's creator, as this device's copy records it, is pinned as the one trusted for
    /// the network's genesis; where this device is that creator, it signs the genesis (its
    /// member the first admin) and adds every member and device of the unsigned roster with
    /// the `member` role. Until the genesis reaches the other devices they keep the unsigned
    /// roster (see `networks::resolve_network`).
    pub(crate) fn upgrade_networks(&self) -> Result<(), Error> {
        let me = self.device_key();
        for (id, kind) in self.document_ids()? {
            if kind != DocKind::Network {
                continue;
            }
            let nd = self.read(id, kind, |d| Ok(doc::read_network(d)?))?;
            let Some(creator) = nd.created_by else { continue };
            {
                let mut w = self.writer.lock();
                let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                store::pin_network_root(&tx, id, &creator)?;
                tx.commit()?;
            }
            if creator != me || membership::genesis_of(id, Some(&creator), &nd.ops).is_some() {
                continue;
            }
            let commitment =
                self.network_keys(id)?.1.get(&0).map(crypto::relay_network_id).unwrap_or_default();
            let sk = self.identity.signing_key();
            self.edit(id, kind, |d, _, now| {
                let genesis = SignedOp::sign(
                    sk,
                    id,
                    &[],
                    Change::Genesis {
                        key_commitment: commitment,
                        member: *self.member.as_bytes(),
                        name: self.display_name(),
                    },
                )?;
                doc::put_op(d, &genesis)?;
                let mut parent = genesis.id();
                let mut sign = |change: Change| -> Result<(), Error> {
                    let op = SignedOp::sign(sk, id, &[parent], change)?;
                    doc::put_op(d, &op)?;
                    parent = op.id();
                    Ok(())
                };
                for (member, name, devices) in &nd.unsigned_members {
                    if *member != self.member {
                        sign(Change::AddMember {
                            member: *member.as_bytes(),
                            name: name.clone(),
                            role: Role::Member,
                        })?;
                    }
                    for device in devices.iter().filter(|d| **d != me) {
                        sign(Change::AddDevice {
                            member: *member.as_bytes(),
                            device: *device.as_bytes(),
                        })?;
                    }
                }
                doc::commit_pending(d, "Signed the network's members in".into(), now)?;
                Ok(())
            })?;
        }
        let mut w = self.writer.lock();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        store::meta_delete(&tx, "upgrade_networks")?;
        tx.commit()?;
        Ok(())
    }

    /// Signs this device's newest change in every document it holds (store version 6, which
    /// brought signed authorship). Changes by other devices made before that version carry no
    /// signature; devices that upgrade sign their own, so what they wrote keeps travelling.
    pub(crate) fn sign_own_heads(&self) -> Result<(), Error> {
        let me = self.device_key();
        let sk = self.identity.signing_key();
        let mut w = self.writer.lock();
        let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (id, _) in store::document_ids(&tx)? {
            let bytes = store::load_bytes(&tx, id)?;
            let mut doc = doc::load(&bytes, &me)
                .map_err(|source| Error::StoredDocument { id: id.to_string(), source })?;
            let actor = me.as_bytes().to_vec();
            let newest = doc
                .get_changes_meta(&[])
                .into_iter()
                .filter(|c| c.actor.to_bytes() == actor.as_slice())
                .max_by_key(|c| c.seq);
            if let Some(c) = newest {
                let head = SignedHead::sign(sk, id, c.seq, c.hash.0);
                store::put_signed_heads(&tx, id, &[head])?;
            }
        }
        store::meta_delete(&tx, "sign_heads")?;
        tx.commit()?;
        Ok(())
    }

    /// The writer connection's journal mode and `synchronous` level (for tests and support:
    /// acknowledged writes survive power loss only with `wal` and 2 = FULL).
    pub fn durability(&self) -> Result<(String, i64), Error> {
        let w = self.writer.lock();
        let mode: String = w.conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let sync: i64 = w.conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        Ok((mode, sync))
    }

    /// Runs SQLite's integrity check and loads every document: the problems found, if any.
    pub fn check_integrity(&self) -> Result<Vec<String>, Error> {
        let mut problems = Vec::new();
        // A connection of its own, in one read transaction: FTS5 caches its index structure
        // per connection, and the long-lived reader's cache can predate the writer's segment
        // merges, so checking through it reported blobs the writer had merged away as
        // corruption of a healthy index.
        let key = self.key.read().clone();
        let mut conn = store::open_reader(&self.path, key.as_ref())?;
        let r = conn.transaction()?;
        let mut stmt = r.prepare("PRAGMA integrity_check")?;
        for row in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let row = row?;
            if row != "ok" {
                problems.push(row);
            }
        }
        problems.extend(store::check_search(&r)?);
        for (id, _) in store::document_ids(&r)? {
            let bytes = store::load_bytes(&r, id)?;
            if let Err(e) = doc::load(&bytes, &self.device_key()).and_then(|d| doc::header(&d)) {
                problems.push(format!("document {id}: {e}"));
            }
        }
        Ok(problems)
    }
}
