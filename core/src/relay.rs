//! The device's side of a relay sync, without IO: a state machine that takes the relay's
//! responses and gives the requests to send, reaching the device through [`RelayStore`].
//!
//! One sync, in order (the relay answers requests in order, so they are pipelined):
//! 1. ask which rosters list this device (a device added by card learns its networks and
//!    finds its sealed network keys there);
//! 2. register each network's roster where the relay's lacks a device the local one lists;
//! 3. pull each network's blobs after the device's cursor, decrypt, check and merge them, and
//!    move the cursor. Blobs that fail to open or apply are reported, not applied; what
//!    arrives is recorded as held by the relay, so it is never pushed back;
//! 4. apply the erasures and unsharings the pull brought (so nothing erased is pushed), then
//!    push every document's changes the relay does not hold, encrypted, the network document
//!    first and alone (it carries the content keys the others need), then a window at a
//!    time; each is recorded as held by the relay only when the relay says it is durable;
//! 5. ask the relay to delete the blobs of documents erased or unshared here (after the
//!    network documents that carry their tombstones are at the relay). A deletion marker
//!    pulled in step 3 (someone deleted a document's blobs) makes a device that holds the
//!    document push it whole again: a deletion by a member of a document not erased loses
//!    nothing.
//!
//! When a pull changed a network document's membership or keys on an admin's device, the sync
//! goes through 1–5 once more, so that what that change calls for (a roster carrying a new key
//! epoch, changes sealed under it) reaches the relay in this sync rather than the device's
//! next.
//!
//! Owns the order of the exchange and what counts as done. Knows nothing of sockets, SQLite or
//! Automerge: the driver (`net::relay`) carries the messages, the store does the rest.

use std::collections::VecDeque;

use nabij_relay_proto::{
    BlobId, NetworkId, PublicKey,
    roster::{Roster, SignedRoster},
    wire::{PulledBlob, Request, Response},
};

use crate::{authorship::SignedHead, crypto::SecretKey, ids::DocId};

/// Why a relay refused a request.
pub use nabij_relay_proto::wire::Refusal;
/// How a relay's key is written for people (`nabijrelay1…`, with a checksum) and read back.
pub use nabij_relay_proto::{RelayKeyError, parse_relay_key, relay_key_to_string};

/// Most passes through the exchange in one sync (a second when a pull changed a network
/// document).
const MAX_PASSES: u8 = 2;
/// Most pushes awaiting the relay's answer at once.
const PUSH_WINDOW: usize = 32;
/// Bytes of blobs asked for per pull (the relay may send less).
const PULL_BYTES: u32 = 4 * 1024 * 1024;
/// Largest blob pushed: what a relay with default limits takes.
const MAX_BLOB: usize = nabij_relay_proto::wire::DEFAULT_MAX_BLOB;

/// A network this device can read at the relay.
#[derive(Debug, Clone)]
pub struct NetworkAccess {
    /// The network document's id.
    pub network: DocId,
    /// Its relay id.
    pub relay_id: NetworkId,
    /// Its key of epoch 0 (relay ids derive from it).
    pub key: SecretKey,
    /// Its keys by epoch, as this device holds them (epoch 0's included). What this device
    /// writes is sealed under the newest.
    pub keys: std::collections::BTreeMap<u32, SecretKey>,
    /// Keys the relay's rosters (registered and contributed) offer this device for epochs its
    /// network document does not give it yet (a new epoch's), by epoch, perhaps several for
    /// one: used only to open network-document blobs, whose contents are then checked like any
    /// other; never to seal.
    pub offered: Vec<(u32, SecretKey)>,
    /// Whether this device holds the network document (and so may push and register).
    pub held: bool,
}

impl NetworkAccess {
    /// The newest epoch this device holds a key of, and the key.
    pub fn current(&self) -> (u32, &SecretKey) {
        self.keys.iter().next_back().map_or((0, &self.key), |(e, k)| (*e, k))
    }
}

/// A blob ready to push.
#[derive(Debug, Clone)]
pub struct PreparedPush {
    /// The document.
    pub doc: DocId,
    /// Its relay id.
    pub relay_doc: [u8; 32],
    /// Ciphertext.
    pub blob: Vec<u8>,
    /// The heads it brings the relay to (recorded once it is durable).
    pub heads: Vec<[u8; 32]>,
}

/// A pulled blob that was not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedBlob {
    /// Its sequence number at the relay.
    pub seq: u64,
    /// Why (tampered, no key, not a document of this network, …).
    pub reason: String,
}

/// What applying pulled blobs did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Documents that changed here.
    pub changed: Vec<DocId>,
    /// Blobs not applied.
    pub rejected: Vec<RejectedBlob>,
    /// Blobs no key held here opens yet (a new key epoch whose key has not arrived), by
    /// number: kept, and opened at a later sync once the key comes.
    pub deferred: Vec<u64>,
    /// Blobs kept at an earlier sync that opened now.
    pub opened_later: usize,
    /// The network's keys by epoch as its document gives them now, if a pulled change of it
    /// changed them: what is pushed next is sealed under the newest of these (an epoch that
    /// a pulled operation made void, say its admin's demotion concurrent with it, is not).
    pub keys: Option<std::collections::BTreeMap<u32, SecretKey>>,
    /// Whether the pulled changes brought membership operations new here, or changed the keys
    /// that count: what this device registers or seals may differ now.
    pub membership_moved: bool,
}

/// A refusal by the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayRefusal {
    /// What was asked ("register", "push", "pull", "networks").
    pub request: &'static str,
    /// Why it was refused.
    pub reason: Refusal,
    /// The relay's explanation.
    pub detail: String,
}

/// What a relay sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Networks exchanged.
    pub networks: usize,
    /// Rosters registered.
    pub rosters_registered: usize,
    /// Blobs pushed and acknowledged as durable.
    pub blobs_pushed: usize,
    /// Their bytes.
    pub bytes_pushed: u64,
    /// Blobs pulled (own blobs included).
    pub blobs_pulled: usize,
    /// Their bytes.
    pub bytes_pulled: u64,
    /// Documents that changed here.
    pub documents_changed: usize,
    /// Pulled blobs not applied.
    pub rejected: Vec<RejectedBlob>,
    /// Pulled blobs no key held here opens yet (sealed under a new key epoch whose key has not
    /// reached this device): kept, to open at a later sync once it comes.
    pub deferred: usize,
    /// Blobs kept at an earlier sync that opened at this one.
    pub opened_later: usize,
    /// Blobs the relay deleted at this device's request (documents erased or unshared here).
    pub blobs_deleted: u64,
    /// Requests the relay refused.
    pub refusals: Vec<RelayRefusal>,
    /// Networks this device was removed from, learnt from the relay, and wiped.
    pub wiped: Vec<DocId>,
}

/// Why a relay sync failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
// Not `non_exhaustive`: nabij-ffi maps every variant by name, so a new one fails its build
// until it is given a kind apps can act on.
pub enum RelayError {
    /// The local store failed.
    #[error("local store: {0}")]
    Store(String),
    /// The relay answered something that does not fit what was asked.
    #[error("the relay broke the protocol: {0}")]
    Protocol(String),
}

/// What the session needs from the device.
pub trait RelayStore {
    /// This device's key (whether it may register a roster depends on it).
    fn device(&self) -> PublicKey;
    /// Networks this device holds and is on, with their keys and the roster each should have
    /// at the relay (unsigned, from the signed membership, its counter how much of that this
    /// device has seen). Seals the network keys to active devices that lack them first.
    fn local_networks(&mut self) -> Result<Vec<(NetworkAccess, Roster)>, RelayError>;
    /// The pulls are in, and again when the sync is done: applies what took effect on its own
    /// (erasures and unsharings the pull brought).
    fn settled(&mut self) -> Result<(), RelayError> {
        Ok(())
    }
    /// Relay ids of documents of `net` whose blobs the relay should delete (erased or unshared
    /// here since).
    fn to_delete(&mut self, net: &NetworkAccess) -> Result<Vec<[u8; 32]>, RelayError> {
        let _ = net;
        Ok(Vec::new())
    }
    /// The relay deleted a document's blobs (or held none).
    fn deleted(&mut self, net: &NetworkAccess, doc: &[u8; 32]) -> Result<(), RelayError> {
        let _ = (net, doc);
        Ok(())
    }
    /// Opens this device's sealed key on a roster the relay returned.
    fn open_roster(&mut self, roster: &Roster) -> Option<NetworkAccess>;
    /// Whether `device` is an admin of `net` as this device knows its membership.
    fn is_admin(&mut self, net: &NetworkAccess, device: &PublicKey) -> bool;
    /// Whether the relay's roster for `net` (which no longer lists this device) carries a valid
    /// removal of this device; if so the network is wiped here.
    fn removed(&mut self, net: &NetworkAccess, roster: &Roster) -> Result<bool, RelayError>;
    /// Keeps the signed operations of `net` the relay's roster carries that could count here
    /// and are not held yet (what the relay holds is what some member registered).
    fn learn(&mut self, net: &NetworkAccess, roster: &Roster) -> Result<(), RelayError>;
    /// Keys of `net` the relay's roster for it offers this device beyond those it holds (see
    /// [`NetworkAccess::offered`]).
    /// Only keys the membership held here commits to, or sealed by a device that is or was an
    /// admin of the network here (`signer`, who signed the roster): a roster any key may sign.
    fn offered_keys(
        &mut self,
        net: &NetworkAccess,
        roster: &Roster,
        signer: &PublicKey,
    ) -> Vec<(u32, SecretKey)>;
    /// Signs a roster with the device key.
    fn sign(&mut self, roster: Roster) -> Result<SignedRoster, RelayError>;
    /// Documents of a held network with changes the relay lacks, the network document first.
    /// Makes sure each has a content key in the network document.
    fn to_push(&mut self, net: &NetworkAccess) -> Result<Vec<DocId>, RelayError>;
    /// The blob for a document's changes the relay lacks (None if it lacks none).
    fn prepare_push(
        &mut self,
        net: &NetworkAccess,
        doc: DocId,
    ) -> Result<Option<PreparedPush>, RelayError>;
    /// The relay holds a pushed blob durably.
    fn pushed(
        &mut self,
        net: &NetworkAccess,
        doc: DocId,
        heads: &[[u8; 32]],
    ) -> Result<(), RelayError>;
    /// The last blob pulled for a network.
    fn cursor(&mut self, net: &NetworkAccess) -> Result<u64, RelayError>;
    /// Decrypts and merges pulled blobs, then moves the cursor to `next`. Blobs that fail to
    /// open or to apply are reported; a local storage failure is an error and leaves the
    /// cursor where it was (the blobs come again).
    fn apply(
        &mut self,
        net: &NetworkAccess,
        blobs: Vec<PulledBlob>,
        next: u64,
    ) -> Result<Applied, RelayError>;
}

#[derive(Debug)]
enum Expect {
    Networks,
    Register,
    Push { net: usize, doc: DocId, id: BlobId, heads: Vec<[u8; 32]>, bytes: u64 },
    Pull { net: usize, after: u64 },
    Delete { net: usize, doc: [u8; 32] },
}

#[derive(Debug)]
struct Net {
    access: NetworkAccess,
    queue: VecDeque<DocId>,
    /// The relay refused this device for the network: nothing more is asked.
    refused: bool,
    /// The network document's push was refused in this pass: its tombstones may not be at
    /// the relay, so no deletion is asked (a marker without the tombstone before it would
    /// make holders push the erased document back).
    doc_refused: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Start,
    Networks,
    Pulling,
    Pushing,
    Done,
}

/// One relay sync.
#[derive(Debug)]
pub struct RelaySession<S> {
    store: S,
    expect: VecDeque<Expect>,
    nets: Vec<Net>,
    phase: Phase,
    report: RelayReport,
    docs_total: usize,
    docs_done: usize,
    /// Passes through the exchange begun.
    passes: u8,
    /// Whether a pull in this pass changed a network document or its keys.
    membership_moved: bool,
    /// Whether this pass asked for its deletions.
    deletions_sent: bool,
}

fn verified(signed: &SignedRoster) -> Option<Roster> {
    signed.verify().ok()
}

impl<S: RelayStore> RelaySession<S> {
    /// A session over `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            expect: VecDeque::new(),
            nets: Vec::new(),
            phase: Phase::Start,
            report: RelayReport::default(),
            docs_total: 0,
            docs_done: 0,
            passes: 0,
            membership_moved: false,
            deletions_sent: false,
        }
    }

    /// The first requests.
    pub fn start(&mut self) -> Vec<Request> {
        self.passes += 1;
        self.membership_moved = false;
        self.deletions_sent = false;
        self.nets.clear();
        self.phase = Phase::Networks;
        self.expect.push_back(Expect::Networks);
        vec![Request::Networks]
    }

    /// Whether the sync is complete.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done && self.expect.is_empty()
    }

    /// What the sync did so far.
    pub fn report(&self) -> &RelayReport {
        &self.report
    }

    /// Documents pulled or pushed so far, and known to be in all.
    pub fn progress(&self) -> (usize, usize) {
        (self.docs_done, self.docs_total.max(self.docs_done))
    }

    /// The store (for the driver, after the sync).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handles the relay's answer to the oldest request not yet answered.
    pub fn handle(&mut self, response: Response) -> Result<Vec<Request>, RelayError> {
        let expect = self
            .expect
            .pop_front()
            .ok_or_else(|| RelayError::Protocol("an answer to nothing asked".into()))?;
        let mut out = Vec::new();
        match (expect, response) {
            (Expect::Networks, Response::Networks { rosters }) => {
                self.networks(rosters, &mut out)?;
            }
            (Expect::Register, Response::Registered { .. }) => self.report.rosters_registered += 1,
            (Expect::Push { net, doc, id, heads, bytes }, Response::Stored { id: got, .. }) => {
                if got != id {
                    return Err(RelayError::Protocol("the relay stored other bytes".into()));
                }
                let access = self.nets[net].access.clone();
                self.store.pushed(&access, doc, &heads)?;
                self.report.blobs_pushed += 1;
                self.report.bytes_pushed += bytes;
                self.docs_done += 1;
            }
            (Expect::Pull { net, after }, Response::Blobs { network, blobs, next, more }) => {
                if network != self.nets[net].access.relay_id {
                    return Err(RelayError::Protocol("blobs of another network".into()));
                }
                if blobs.iter().any(|b| b.seq <= after || b.seq > next)
                    || blobs.windows(2).any(|w| w[0].seq >= w[1].seq)
                    || (more && next <= after)
                {
                    return Err(RelayError::Protocol("blobs out of order or going nowhere".into()));
                }
                self.report.blobs_pulled += blobs.len();
                self.report.bytes_pulled += blobs.iter().map(|b| b.bytes.len() as u64).sum::<u64>();
                let access = self.nets[net].access.clone();
                let mut applied = self.store.apply(&access, blobs, next)?;
                if let Some(keys) = applied.keys.take() {
                    self.nets[net].access.keys = keys;
                }
                // Only an admin has more to do for it (a new epoch, a roster that carries it,
                // content sealed under it): a member's second round would change nothing.
                if applied.membership_moved {
                    let me = self.store.device();
                    self.membership_moved |= self.store.is_admin(&access, &me);
                }
                self.docs_done += applied.changed.len();
                self.docs_total += applied.changed.len();
                self.report.documents_changed += applied.changed.len();
                self.report.rejected.extend(applied.rejected);
                self.report.deferred += applied.deferred.len();
                self.report.opened_later += applied.opened_later;
                if more {
                    self.pull(net, next, &mut out);
                }
            }
            (Expect::Delete { net, doc }, Response::Deleted { network, doc: got, blobs }) => {
                if network != self.nets[net].access.relay_id || got != doc {
                    return Err(RelayError::Protocol("a deletion of something not asked".into()));
                }
                let access = self.nets[net].access.clone();
                self.store.deleted(&access, &doc)?;
                self.report.blobs_deleted = self.report.blobs_deleted.saturating_add(blobs);
            }
            (expect, Response::Refused { reason, detail }) => {
                let request = match &expect {
                    Expect::Networks => "networks",
                    Expect::Register => "register",
                    Expect::Push { .. } => "push",
                    Expect::Pull { .. } => "pull",
                    Expect::Delete { .. } => "delete",
                };
                tracing::info!(request, ?reason, %detail, "the relay refused");
                self.report.refusals.push(RelayRefusal { request, reason, detail });
                match expect {
                    Expect::Networks => self.networks(Vec::new(), &mut out)?,
                    Expect::Push { net, doc, .. } => {
                        if reason == Refusal::NotOnRoster {
                            self.nets[net].refused = true;
                        }
                        // Without the network document at the relay, the others' blobs would
                        // reach devices that lack their content keys: push none of them now.
                        if reason == Refusal::NotOnRoster || doc == self.nets[net].access.network {
                            self.nets[net].queue.clear();
                            self.nets[net].doc_refused = true;
                        }
                    }
                    Expect::Pull { net, .. } => self.nets[net].refused = true,
                    // Asked again at the next sync.
                    Expect::Register | Expect::Delete { .. } => {}
                }
            }
            (expect, other) => {
                return Err(RelayError::Protocol(format!("{other:?} in answer to {expect:?}")));
            }
        }
        self.advance(&mut out)?;
        Ok(out)
    }

    fn networks(
        &mut self,
        rosters: Vec<SignedRoster>,
        out: &mut Vec<Request>,
    ) -> Result<(), RelayError> {
        // Each network's registered roster comes first, then the rosters other devices of it
        // contributed (registered while the registered one's signer was an admin and they were
        // not): their operations and the keys they seal count too, never their word on who
        // may register.
        let signers: Vec<(NetworkId, PublicKey)> =
            rosters.iter().filter_map(|r| verified(r).map(|v| (v.network, r.signer))).collect();
        let all: Vec<Roster> = rosters.iter().filter_map(verified).collect();
        let mut at_relay: Vec<Roster> = Vec::new();
        for r in &all {
            if !at_relay.iter().any(|a| a.network == r.network) {
                at_relay.push(r.clone());
            }
        }
        let me = self.store.device();
        for (mut access, roster) in self.store.local_networks()? {
            let theirs = at_relay.iter().find(|r| r.network == access.relay_id);
            // Operations a member registered that have not reached this device in the network
            // document: a view of the membership that differs (one that takes an admin for
            // removed, say) meets the others' here.
            for t in all.iter().filter(|r| r.network == access.relay_id) {
                self.store.learn(&access, t)?;
            }
            // Removed from the network: the roster says so with a signed removal; wipe it.
            if let Some(t) = theirs
                && !t.lists_active(&me)
                && self.store.removed(&access, t)?
            {
                self.report.wiped.push(access.network);
                continue;
            }
            // The roster comes from the signed membership: register it when the relay's differs
            // (devices, or operations it lacks) and this device is an admin in its own view (or
            // the network has no roster yet). The relay keeps every operation it was given and
            // decides by the membership they resolve to, so a staler roster loses nothing; no
            // counter a signer writes is believed (an admin gone bad claimed to have seen more
            // than anyone, and no honest admin registered again).
            let differs = theirs.is_none_or(|t| {
                t.devices != roster.devices || roster.ops.iter().any(|o| !t.ops.contains(o))
            });
            // Not when the registered roster's signer had seen operations this device has not
            // (it would put back staler keys), unless that signer is no admin as this device
            // knows the membership (a removed admin must not keep its roster by claiming more).
            let signer = signers.iter().find(|(n, _)| *n == access.relay_id).map(|(_, s)| *s);
            let trusted = signer.is_some_and(|s| self.store.is_admin(&access, &s));
            let fresher =
                theirs.is_none_or(|t| t.ops.iter().all(|o| roster.ops.contains(o)) || !trusted);
            // The relay takes the next roster from an admin of the membership it resolves (not
            // of the roster's word, which an admin gone bad may have written), or from any of
            // the network's devices once the registered one's signer is no admin; from any
            // other device of the network it takes the operations only (so a removal reaches
            // it from whoever holds it).
            // The keys sealed to this device, for epochs it lacks: from the registered roster
            // first, then from contributed ones (only to try on the network's document: what
            // opens under one is checked as any network document change).
            for (t, by) in rosters
                .iter()
                .filter_map(|r| verified(r).map(|v| (v, r.signer)))
                .filter(|(r, _)| r.network == access.relay_id)
            {
                access.offered.extend(self.store.offered_keys(&access, &t, &by));
            }
            if differs && fresher {
                let mut roster = roster;
                roster.issued_at = theirs.map_or(1, |t| t.issued_at.saturating_add(1));
                let signed = self.store.sign(roster)?;
                out.push(Request::Register { roster: signed });
                self.expect.push_back(Expect::Register);
            }
            self.nets.push(Net {
                access,
                queue: VecDeque::new(),
                refused: false,
                doc_refused: false,
            });
        }
        for roster in &at_relay {
            if self.nets.iter().any(|n| n.access.relay_id == roster.network) {
                continue;
            }
            if let Some(access) = self.store.open_roster(roster) {
                self.nets.push(Net {
                    access,
                    queue: VecDeque::new(),
                    refused: false,
                    doc_refused: false,
                });
            }
        }
        self.report.networks = self.nets.len();
        // Pull first: what arrives is then known to be at the relay and never pushed back.
        self.phase = Phase::Pulling;
        for net in 0..self.nets.len() {
            let after = self.store.cursor(&self.nets[net].access)?;
            self.pull(net, after, out);
        }
        Ok(())
    }

    /// Moves on when a phase's answers are all in: pulls, then pushes (a window at a time).
    fn advance(&mut self, out: &mut Vec<Request>) -> Result<(), RelayError> {
        if self.phase == Phase::Pulling
            && !self.expect.iter().any(|e| matches!(e, Expect::Pull { .. }))
        {
            // What the pull erased or unshared here goes before anything is pushed: a copy
            // from before an erasure must not go back to the relay.
            self.store.settled()?;
            for net in 0..self.nets.len() {
                if self.nets[net].access.held && !self.nets[net].refused {
                    let docs = self.store.to_push(&self.nets[net].access)?;
                    self.docs_total += docs.len();
                    self.nets[net].queue = docs.into();
                }
            }
            self.phase = Phase::Pushing;
        }
        if self.phase == Phase::Pushing {
            self.fill(out)?;
        }
        Ok(())
    }

    /// Keeps the push window full; done when every push is answered.
    fn fill(&mut self, out: &mut Vec<Request>) -> Result<(), RelayError> {
        // Deletions count as in flight: the sync is not done before they are answered.
        let mut flying = self
            .expect
            .iter()
            .filter(|x| matches!(x, Expect::Push { .. } | Expect::Delete { .. }))
            .count();
        for net in 0..self.nets.len() {
            let network = self.nets[net].access.network;
            while flying < PUSH_WINDOW {
                // The network document goes alone: the others follow once the relay holds it
                // (they may need the content keys it carries).
                let waiting = self.expect.iter().any(
                    |e| matches!(e, Expect::Push { net: n, doc, .. } if *n == net && *doc == network),
                );
                if waiting {
                    break;
                }
                let Some(doc) = self.nets[net].queue.pop_front() else { break };
                let access = self.nets[net].access.clone();
                match self.store.prepare_push(&access, doc)? {
                    Some(p) if p.blob.len() > MAX_BLOB => {
                        // Refused here rather than by the relay: a frame this large would end
                        // the connection, and every later sync with it.
                        self.report.refusals.push(RelayRefusal {
                            request: "push",
                            reason: Refusal::TooLarge,
                            detail: format!(
                                "document {doc} needs a {} byte blob; the limit is {MAX_BLOB}",
                                p.blob.len()
                            ),
                        });
                        if doc == network {
                            self.nets[net].queue.clear();
                            self.nets[net].doc_refused = true;
                        }
                        self.docs_done += 1;
                    }
                    Some(p) => {
                        let id = nabij_relay_proto::wire::blob_id(&p.blob);
                        let bytes = p.blob.len() as u64;
                        self.expect.push_back(Expect::Push { net, doc, id, heads: p.heads, bytes });
                        out.push(Request::Push {
                            network: access.relay_id,
                            doc: p.relay_doc,
                            blob: p.blob,
                        });
                        flying += 1;
                    }
                    None => self.docs_done += 1,
                }
            }
        }
        if flying == 0 && self.nets.iter().all(|n| n.queue.is_empty()) {
            // Deletions last, once the network documents that carry the tombstones are at the
            // relay: a device that pulls a deletion marker has pulled the tombstone before it,
            // so it does not push the document back.
            if !self.deletions_sent {
                self.deletions_sent = true;
                let mut asked = false;
                for net in 0..self.nets.len() {
                    if self.nets[net].refused || self.nets[net].doc_refused {
                        continue;
                    }
                    let access = self.nets[net].access.clone();
                    for doc in self.store.to_delete(&access)? {
                        self.expect.push_back(Expect::Delete { net, doc });
                        out.push(Request::Delete { network: access.relay_id, doc });
                        asked = true;
                    }
                }
                if asked {
                    return Ok(());
                }
            }
            // A network document that changed in the pull may call for a new key epoch, a
            // roster that carries it, or changes sealed anew: once more, so that they reach
            // the relay now (two admins that started epochs apart settled a relay round
            // sooner each time, seed 8247 of the simulation).
            if self.membership_moved && self.passes < MAX_PASSES && self.expect.is_empty() {
                out.extend(self.start());
                return Ok(());
            }
            self.store.settled()?;
            self.phase = Phase::Done;
        }
        Ok(())
    }

    fn pull(&mut self, net: usize, after: u64, out: &mut Vec<Request>) {
        if self.nets[net].refused {
            return;
        }
        self.expect.push_back(Expect::Pull { net, after });
        out.push(Request::Pull {
            network: self.nets[net].access.relay_id,
            after,
            max_bytes: PULL_BYTES,
        });
    }
}

/// Version of the plaintext inside a blob.
const PAYLOAD_VERSION: u8 = 2;

/// The plaintext of a blob: `version || document id (16) || head count (u16 LE) || heads ||
/// Automerge bytes`. The heads are the sender's after these changes: everything they cover is
/// at the relay, so a receiver knows not to push it back.
pub(crate) fn encode_payload(
    doc: DocId,
    heads: &[[u8; 32]],
    signed: &[SignedHead],
    bytes: &[u8],
) -> Vec<u8> {
    let count = u16::try_from(heads.len()).unwrap_or(u16::MAX);
    // Serialising plain owned data to a Vec cannot fail.
    let sigs = postcard::to_stdvec(signed).unwrap_or_default();
    let mut out = Vec::with_capacity(23 + heads.len() * 32 + sigs.len() + bytes.len());
    out.push(PAYLOAD_VERSION);
    out.extend_from_slice(doc.as_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for h in heads.iter().take(usize::from(count)) {
        out.extend_from_slice(h);
    }
    out.extend_from_slice(&u32::try_from(sigs.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&sigs);
    out.extend_from_slice(bytes);
    out
}

/// A decoded blob plaintext: document, heads, the signatures that cover its changes, the
/// Automerge bytes.
pub(crate) type Payload<'a> = (DocId, Vec<[u8; 32]>, Vec<SignedHead>, &'a [u8]);

/// Reads [`encode_payload`]'s output.
pub(crate) fn decode_payload(plain: &[u8]) -> Result<Payload<'_>, String> {
    let (&version, rest) = plain.split_first().ok_or("empty payload")?;
    if version != PAYLOAD_VERSION {
        return Err(format!("payload version {version}"));
    }
    if rest.len() < 18 {
        return Err("payload too short".into());
    }
    let (id, rest) = rest.split_at(16);
    let id: [u8; 16] = id.try_into().map_err(|_| "document id")?;
    let count = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let rest = &rest[2..];
    let (heads, rest) = rest.split_at_checked(count * 32).ok_or("payload heads cut short")?;
    let heads = heads.chunks_exact(32).filter_map(|h| h.try_into().ok()).collect();
    let (len, rest) = rest.split_at_checked(4).ok_or("payload signatures cut short")?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let (sigs, bytes) = rest.split_at_checked(len).ok_or("payload signatures cut short")?;
    let signed: Vec<SignedHead> =
        postcard::from_bytes(sigs).map_err(|e| format!("payload signatures: {e}"))?;
    if signed.len() > crate::authorship::MAX_SIGNED_HEADS {
        return Err(format!("{} signatures in one payload", signed.len()));
    }
    Ok((DocId::from_bytes(id), heads, signed, bytes))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn payloads_round_trip() {
        let doc = DocId::from_bytes([3; 16]);
        let key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let signed = vec![SignedHead::sign(&key, doc, 2, [5; 32])];
        let plain = encode_payload(doc, &[[1; 32], [2; 32]], &signed, b"automerge");
        let (d, h, s, b) = decode_payload(&plain).unwrap();
        assert_eq!((d, h, s, b), (doc, vec![[1; 32], [2; 32]], signed, &b"automerge"[..]));
        assert!(decode_payload(&plain[..20]).is_err());
        assert!(decode_payload(&[]).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_payload(&bytes);
        }
    }
}
