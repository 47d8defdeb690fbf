//! Signed authorship: every Automerge change a device makes is covered by that device's
//! Ed25519 signature, and a device takes a change from elsewhere only when it is.
//!
//! A change's hash commits to its whole history, and a device's changes to a document form one
//! chain (Automerge numbers them 1, 2, 3, … and holds one change per actor and number). So one
//! signature by a device over its latest change in a document, a [`SignedHead`], covers every
//! change it made there before: signatures cost O(devices) per document, not O(changes). They
//! travel beside the changes (in the meeting protocol's frames, in relay blobs, in exported
//! documents) and each device keeps the newest per document and device.
//!
//! A device's actor id in every document is its device key, so the signature is checked
//! against the key the change claims to be by: a member who writes as another device (an actor
//! id set to the victim's key) has no signature for it.
//!
//! Owns the signed statement and its check, and the envelope exported documents travel in.
//! Deciding which devices may author a document's changes is the device's (it knows the
//! memberships).

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ids::{DeviceKey, DocId};

/// Most signed heads carried with one document (one per device that ever wrote to it).
pub const MAX_SIGNED_HEADS: usize = 4096;

/// Domain separation: a change signature is never mistaken for another of the device's.
const CONTEXT: &[u8] = b"nabij change v1\0";

/// A device's signature over its latest change in a document: the change's number in the
/// device's chain and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// The device (its key is its actor id).
    pub actor: [u8; 32],
    /// The change's number in the device's chain in that document.
    pub seq: u64,
    /// The change's hash.
    pub hash: [u8; 32],
    /// Ed25519 by `actor` over the document, `seq` and `hash`.
    pub signature: Vec<u8>,
    /// For a document shared with several networks: proof that `actor` is a device of one of
    /// them, for a receiver that does not hold that network (not signed: it proves itself).
    pub proof: Option<MembershipProof>,
}

/// A network's signed membership operations, as a device that holds the network sends them
/// with a change by one of its devices to a device that does not: the network's id commits to
/// its genesis (see [`crate::membership::network_id_for`]), so the receiver checks them as the
/// network's own members would, with nothing else to trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipProof {
    /// The network.
    pub network: [u8; 16],
    /// Its operations, as signed.
    pub ops: Vec<Vec<u8>>,
}

/// Most operations in one proof.
pub const MAX_PROOF_OPS: usize = 512;

impl MembershipProof {
    /// The devices the proof shows were ever in its network (active or removed), if it holds.
    pub fn devices(&self) -> Option<std::collections::BTreeSet<DeviceKey>> {
        if self.ops.len() > MAX_PROOF_OPS {
            return None;
        }
        let ops: Vec<crate::membership::SignedOp> =
            self.ops.iter().filter_map(|b| crate::membership::SignedOp::decode(b).ok()).collect();
        let network = DocId::from_bytes(self.network);
        let m = crate::membership::resolve_network(network, None, &ops);
        if m.valid.is_empty() {
            return None;
        }
        Some(m.devices().copied().chain(m.removed_devices.keys().copied()).collect())
    }
}

fn message(doc: DocId, actor: &[u8; 32], seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 16 + 32 + 8 + 32);
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(doc.as_bytes());
    m.extend_from_slice(actor);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(hash);
    m
}

impl SignedHead {
    /// Signs the change `hash`, number `seq` of `key`'s device in `doc`.
    pub fn sign(key: &SigningKey, doc: DocId, seq: u64, hash: [u8; 32]) -> Self {
        let actor = key.verifying_key().to_bytes();
        let signature = key.sign(&message(doc, &actor, seq, &hash)).to_bytes().to_vec();
        Self { actor, seq, hash, signature, proof: None }
    }

    /// Whether the signature holds for `doc`.
    pub fn verify(&self, doc: DocId) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.actor) else { return false };
        let Ok(sig) = Signature::from_slice(&self.signature) else { return false };
        key.verify(&message(doc, &self.actor, self.seq, &self.hash), &sig).is_ok()
    }

    /// The signing device.
    pub fn device(&self) -> DeviceKey {
        DeviceKey::from_bytes(self.actor)
    }
}

/// Start of an exported document: what [`crate::Device::export_document`] and
/// [`crate::Device::changes_since`] give, and what the merge calls take.
const ENVELOPE_MAGIC: &[u8; 8] = b"NABJSIG1";

/// Wraps Automerge bytes with the signatures that cover their changes.
pub fn seal_envelope(signed: &[SignedHead], automerge: &[u8]) -> Vec<u8> {
    // Serialising plain owned data to a Vec cannot fail.
    let sigs = postcard::to_stdvec(signed).unwrap_or_default();
    let mut out = Vec::with_capacity(8 + 4 + sigs.len() + automerge.len());
    out.extend_from_slice(ENVELOPE_MAGIC);
    out.extend_from_slice(&u32::try_from(sigs.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&sigs);
    out.extend_from_slice(automerge);
    out
}

/// Splits an exported document into its signatures and Automerge bytes. Bytes without the
/// envelope are Automerge bytes with no signatures (their changes must be covered by
/// signatures the device already holds).
pub fn open_envelope(bytes: &[u8]) -> Result<(Vec<SignedHead>, &[u8]), String> {
    let Some(rest) = bytes.strip_prefix(ENVELOPE_MAGIC.as_slice()) else {
        return Ok((Vec::new(), bytes));
    };
    let (len, rest) = rest.split_at_checked(4).ok_or("envelope cut short")?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let (sigs, automerge) = rest.split_at_checked(len).ok_or("envelope cut short")?;
    let signed: Vec<SignedHead> =
        postcard::from_bytes(sigs).map_err(|e| format!("envelope signatures: {e}"))?;
    if signed.len() > MAX_SIGNED_HEADS {
        return Err(format!("{} signatures in one envelope", signed.len()));
    }
    Ok((signed, automerge))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_head_verifies_only_for_its_document_and_contents() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let doc = DocId::from_bytes([1; 16]);
        let head = SignedHead::sign(&key, doc, 3, [7; 32]);
        assert!(head.verify(doc));
        assert!(!head.verify(DocId::from_bytes([2; 16])));
        for tamper in [
            |h: &mut SignedHead| h.seq += 1,
            |h: &mut SignedHead| h.hash[0] ^= 1,
            |h: &mut SignedHead| {
                h.actor = SigningKey::from_bytes(&[6; 32]).verifying_key().to_bytes()
            },
            |h: &mut SignedHead| h.signature.truncate(10),
        ] {
            let mut h = head.clone();
            tamper(&mut h);
            assert!(!h.verify(doc));
        }
    }

    #[test]
    fn envelopes_round_trip_and_plain_bytes_pass_through() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let heads = vec![SignedHead::sign(&key, DocId::from_bytes([1; 16]), 1, [7; 32])];
        let sealed = seal_envelope(&heads, b"automerge");
        assert_eq!(open_envelope(&sealed).unwrap(), (heads, b"automerge".as_slice()));
        assert_eq!(open_envelope(b"plain").unwrap(), (Vec::new(), b"plain".as_slice()));
        assert!(open_envelope(&sealed[..10]).is_err());
    }
}
