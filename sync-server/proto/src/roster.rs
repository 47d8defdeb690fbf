//! Signed rosters: which devices may push and pull a network's blobs at the relay, and each
//! one's sealed network key (opaque here; a device opens its own).
//!
//! A roster carries the network's signed membership operations, without names
//! ([`crate::membership::SignedOp::blinded`]). The relay keeps every operation it was ever
//! given for a network and decides who may push, pull and register by the membership they
//! resolve to, with the same rule as every device: not by what a roster's signer says. So no
//! one can make a roster that lists only itself as admin and lock the others out: demoting or
//! removing an admin takes a signed operation that every device sees the same way. The
//! network's genesis at the relay is the first one registered whose key commitment is the
//! network's relay id. Rosters are numbered in line (each the one before plus one), never
//! from a clock. Devices read their sealed keys from the roster, so a device added by card
//! learns its network from the relay alone.
//!
//! Owns the roster's format and its checks. Knows nothing of what the sealed keys hold.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{NetworkId, PublicKey};

/// Most devices on one roster.
pub const MAX_DEVICES: usize = 1024;
/// Largest sealed key entry, in bytes (a device's keys of several epochs).
pub const MAX_SEALED: usize = 2048;
/// Most removals on one roster, and the largest one, in bytes.
pub const MAX_REMOVALS: usize = 1024;
/// See [`MAX_REMOVALS`].
pub const MAX_REMOVAL_BYTES: usize = 4096;

/// Most membership operations on one roster (a network's cap).
pub const MAX_OPS: usize = crate::membership::MAX_OPS;

/// Domain separation for roster signatures.
const CONTEXT: &[u8] = b"nabij roster v2\0";

/// A network's devices at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    /// The network, as the relay knows it.
    pub network: NetworkId,
    /// Its number in the network's line of rosters: the first is 1, and the relay takes a
    /// roster only as the next one (the registered one's plus one), so no one can date a
    /// roster ahead and freeze the others out.
    pub issued_at: i64,
    /// The devices, sorted by key, each once.
    pub devices: Vec<RosterDevice>,
    /// Signed removals of devices no longer on it (opaque here): a removed device that asks
    /// finds its removal, and wipes the network.
    pub removals: Vec<Vec<u8>>,
    /// The network's signed membership operations as its signer holds them, without names: the
    /// relay resolves who is a device and who an admin from these, not from `devices`.
    pub ops: Vec<Vec<u8>>,
}

/// One device on a roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterDevice {
    /// Its Ed25519 key.
    pub key: PublicKey,
    /// The network keys sealed to it (opaque to the relay).
    pub sealed: Vec<u8>,
    /// Whether it may register the next roster (an admin's device in the membership).
    pub admin: bool,
    /// Removed from the network: listed only so that it finds its removal (in `removals`)
    /// when it asks; it may not push, pull or register.
    pub removed: bool,
}

/// A roster with its signer and signature, as registered and served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRoster {
    /// The postcard bytes of the [`Roster`], exactly as signed.
    pub body: Vec<u8>,
    /// The signing device.
    pub signer: PublicKey,
    /// Ed25519 over the context and `body`.
    pub signature: Vec<u8>,
}

/// Why a roster is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RosterError {
    /// The signature does not verify, or the signer's key is not a valid key.
    #[error("bad roster signature")]
    Signature,
    /// The body does not decode.
    #[error("malformed roster: {0}")]
    Malformed(String),
    /// The signer is not on the roster it signed.
    #[error("the signer is not on the roster")]
    SignerNotListed,
    /// Devices unsorted, repeated, too many, or a sealed key too large.
    #[error("invalid roster: {0}")]
    Invalid(&'static str),
}

impl Roster {
    /// Whether `device` is on it (active or removed).
    pub fn lists(&self, device: &PublicKey) -> bool {
        self.devices.binary_search_by(|d| d.key.cmp(device)).is_ok()
    }

    /// Whether `device` is on it and not removed: it may push, pull and register.
    pub fn lists_active(&self, device: &PublicKey) -> bool {
        self.devices.binary_search_by(|d| d.key.cmp(device)).is_ok_and(|i| !self.devices[i].removed)
    }

    /// Whether `device` is listed as an admin (and not removed).
    pub fn lists_admin(&self, device: &PublicKey) -> bool {
        self.devices
            .binary_search_by(|d| d.key.cmp(device))
            .is_ok_and(|i| self.devices[i].admin && !self.devices[i].removed)
    }

    /// The key sealed to `device`, if it is listed.
    pub fn sealed_for(&self, device: &PublicKey) -> Option<&[u8]> {
        let i = self.devices.binary_search_by(|d| d.key.cmp(device)).ok()?;
        Some(&self.devices[i].sealed)
    }

    fn check(&self) -> Result<(), RosterError> {
        if self.devices.len() > MAX_DEVICES {
            return Err(RosterError::Invalid("too many devices"));
        }
        if self.devices.windows(2).any(|w| w[0].key >= w[1].key) {
            return Err(RosterError::Invalid("devices must be sorted and unique"));
        }
        if self.devices.iter().any(|d| d.sealed.len() > MAX_SEALED) {
            return Err(RosterError::Invalid("sealed key too large"));
        }
        if self.removals.len() > MAX_REMOVALS
            || self.removals.iter().any(|r| r.len() > MAX_REMOVAL_BYTES)
        {
            return Err(RosterError::Invalid("too many or too large removals"));
        }
        if self.ops.len() > MAX_OPS
            || self.ops.iter().any(|o| o.len() > crate::membership::MAX_OP_BYTES)
        {
            return Err(RosterError::Invalid("too many or too large membership operations"));
        }
        Ok(())
    }

    /// Signs the roster (devices are sorted first).
    pub fn sign(mut self, key: &SigningKey) -> Result<SignedRoster, RosterError> {
        self.devices.sort_by_key(|d| d.key);
        self.check()?;
        let body = postcard::to_stdvec(&self).map_err(|e| RosterError::Malformed(e.to_string()))?;
        let signature = key.sign(&[CONTEXT, &body].concat()).to_bytes().to_vec();
        Ok(SignedRoster { body, signer: key.verifying_key().to_bytes(), signature })
    }
}

impl SignedRoster {
    /// Checks the signature and contents, and returns the roster.
    pub fn verify(&self) -> Result<Roster, RosterError> {
        let key = VerifyingKey::from_bytes(&self.signer).map_err(|_| RosterError::Signature)?;
        let sig = Signature::from_slice(&self.signature).map_err(|_| RosterError::Signature)?;
        key.verify(&[CONTEXT, &self.body].concat(), &sig).map_err(|_| RosterError::Signature)?;
        let (roster, rest): (Roster, _) = postcard::take_from_bytes(&self.body)
            .map_err(|e| RosterError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(RosterError::Malformed("bytes after the roster".into()));
        }
        roster.check()?;
        if !roster.lists_active(&self.signer) {
            return Err(RosterError::SignerNotListed);
        }
        Ok(roster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn roster(devices: &[&SigningKey]) -> Roster {
        Roster {
            network: [9; 32],
            issued_at: 1,
            devices: devices
                .iter()
                .map(|k| RosterDevice {
                    key: k.verifying_key().to_bytes(),
                    sealed: vec![1; 80],
                    admin: true,
                    removed: false,
                })
                .collect(),
            removals: Vec::new(),
            ops: Vec::new(),
        }
    }

    #[test]
    fn a_signed_roster_verifies_and_lists_its_devices() {
        let (a, b, c) = (key(1), key(2), key(3));
        let signed = roster(&[&b, &a]).sign(&a).unwrap();
        let r = signed.verify().unwrap();
        assert!(r.lists(&a.verifying_key().to_bytes()));
        assert!(r.lists(&b.verifying_key().to_bytes()));
        assert!(!r.lists(&c.verifying_key().to_bytes()));
        assert_eq!(r.sealed_for(&b.verifying_key().to_bytes()), Some(&[1u8; 80][..]));
    }

    #[test]
    fn forged_changed_or_unlisted_signers_are_refused() {
        let (a, b, c) = (key(1), key(2), key(3));
        let mut signed = roster(&[&a, &b]).sign(&a).unwrap();
        signed.signer = b.verifying_key().to_bytes();
        assert_eq!(signed.verify(), Err(RosterError::Signature));

        let mut signed = roster(&[&a, &b]).sign(&a).unwrap();
        let last = signed.body.len() - 1;
        signed.body[last] ^= 1;
        assert_eq!(signed.verify(), Err(RosterError::Signature));

        let signed = roster(&[&a, &b]).sign(&c).unwrap();
        assert_eq!(signed.verify(), Err(RosterError::SignerNotListed));

        let mut r = roster(&[&a]);
        r.devices.push(r.devices[0].clone());
        assert!(matches!(r.sign(&a), Err(RosterError::Invalid(_))));
    }
}
