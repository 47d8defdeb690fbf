//! The relay's rules, without IO: who may register a roster, push or pull for a network, what
//! a push may weigh, and how requests become responses. The QUIC driver (`server`) feeds it
//! the requests of one connection in order and sends back what it returns, in order.
//!
//! Owns authorisation, roster replacement, quotas and blob checks. Knows nothing of sockets
//! or of how storage is implemented; never sees plaintext (there is none to see).

use std::collections::HashMap;

use nabij_relay_proto::{
    NetworkId, PublicKey,
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
                    Ok(Some(r)) => {
                        r.devices.contains(device)
                            && r.signed.verify().is_ok_and(|x| x.lists_active(device))
                    }
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
        if let Some(current) = &current {
            if !current.devices.contains(device)
                || !current.signed.verify().is_ok_and(|r| r.lists_active(device))
            {
                return refused(Refusal::NotOnRoster, "not on the registered roster");
            }
            // Only an admin of the registered roster replaces it: a member cannot list only
            // itself and lock the others out.
            if !current.signed.verify().is_ok_and(|r| r.lists_admin(device)) {
                return refused(Refusal::BadRoster, "only an admin's device replaces a roster");
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
        let stored = StoredRoster {
            signed: signed.clone(),
            issued_at: roster.issued_at,
            devices: roster.devices.iter().map(|d| d.key).collect(),
        };
        match self.storage.put_roster(&roster.network, &stored) {
            Ok(()) => {
                tracing::info!(
                    devices = stored.devices.len(),
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
    use nabij_relay_proto::roster::{Roster, RosterDevice};

    use super::*;
    use crate::storage::MemoryStorage;

    fn device(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn pk(k: &SigningKey) -> PublicKey {
        k.verifying_key().to_bytes()
    }

    fn roster(
        network: NetworkId,
        at: i64,
        devices: &[&SigningKey],
        signer: &SigningKey,
    ) -> Request {
        let roster = Roster {
            network,
            issued_at: at,
            known: 0,
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
        };
        Request::Register { roster: roster.sign(signer).unwrap() }
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

    #[test]
    fn only_devices_on_the_roster_push_and_pull_and_newer_rosters_replace() {
        let r = relay(1 << 30);
        let (a, b, c) = (device(1), device(2), device(3));
        let net = [5; 32];
        // A network's first roster is number 1.
        let out = r.handle(&pk(&a), vec![roster(net, 10, &[&a], &a)]);
        assert_eq!(reason(&out[0]), Some(Refusal::BadRoster));
        let out = r.handle(&pk(&a), vec![roster(net, 1, &[&a], &a)]);
        assert!(matches!(out[0], Response::Registered { issued_at: 1, .. }));

        let push = |n: u8| Request::Push { network: net, doc: [1; 32], blob: vec![n; 100] };
        let out = r.handle(
            &pk(&b),
            vec![push(1), Request::Pull { network: net, after: 0, max_bytes: 1 << 20 }],
        );
        assert_eq!(reason(&out[0]), Some(Refusal::NotOnRoster));
        assert_eq!(reason(&out[1]), Some(Refusal::NotOnRoster));

        // b may not add itself; a's next roster adds b; the same number again is stale; one
        // that skips ahead (to freeze the others out) is refused.
        let out = r.handle(&pk(&b), vec![roster(net, 2, &[&a, &b], &b)]);
        assert_eq!(reason(&out[0]), Some(Refusal::NotOnRoster));
        let out = r.handle(
            &pk(&a),
            vec![
                roster(net, 2, &[&a, &b], &a),
                roster(net, 2, &[&a, &b, &c], &a),
                roster(net, i64::MAX, &[&a, &b, &c], &a),
            ],
        );
        assert!(matches!(out[0], Response::Registered { .. }));
        assert_eq!(reason(&out[1]), Some(Refusal::StaleRoster));
        assert_eq!(reason(&out[2]), Some(Refusal::BadRoster));

        // Each push is answered with its own outcome, in order. (What storage promises about
        // them, dedup included, is checked on every store by `storage::conformance`.)
        let out = r.handle(
            &pk(&b),
            vec![push(1), push(2), Request::Pull { network: net, after: 0, max_bytes: 1 << 20 }],
        );
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
        // c sees nothing of this network.
        match &r.handle(&pk(&c), vec![Request::Networks])[0] {
            Response::Networks { rosters } => assert!(rosters.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quotas_sizes_and_forged_rosters_are_refused() {
        let r = relay(250);
        let a = device(1);
        let net = [6; 32];
        r.handle(&pk(&a), vec![roster(net, 1, &[&a], &a)]);
        let push = |n: u8| Request::Push { network: net, doc: [1; 32], blob: vec![n; 100] };
        // The configured quota reaches storage and its refusal reaches the device (how the
        // quota counts is storage's rule, in `storage::conformance`).
        let out = r.handle(&pk(&a), vec![push(1), push(2), push(3)]);
        assert!(matches!(out[0], Response::Stored { .. }));
        assert!(matches!(out[1], Response::Stored { .. }));
        assert_eq!(reason(&out[2]), Some(Refusal::QuotaExceeded));
        let big = Request::Push {
            network: net,
            doc: [1; 32],
            blob: vec![0; r.limits().max_blob_bytes + 1],
        };
        assert_eq!(reason(&r.handle(&pk(&a), vec![big])[0]), Some(Refusal::TooLarge));

        let Request::Register { mut roster } = roster([7; 32], 1, &[&a], &a) else {
            unreachable!()
        };
        roster.body[0] ^= 1;
        assert_eq!(
            reason(&r.handle(&pk(&a), vec![Request::Register { roster }])[0]),
            Some(Refusal::BadRoster)
        );
    }
}
