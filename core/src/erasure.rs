//! Tombstones: the signed record that a document was erased, unshared from a network (its
//! consent withdrawn or narrowed), or replaced by a new history without redacted words, as it travels in a network document's `tombstones` map (see
//! ARCHITECTURE.md, "Erasure, redaction and consent").
//!
//! Owns the tombstone's bytes and signature, and the tag that names an erased document without
//! its id. Knows nothing of who may erase (that needs the membership: `device/erasure.rs`) nor
//! of storage.
//!
//! A tombstone names the document by a tag, a hash of its id, never the id: what a device
//! keeps after erasure (the tombstone in the network document, its own list of erased
//! documents) must not hold the id either. A device that holds the document, or is offered
//! it, hashes the id to match.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{
    ids::{DeviceKey, DocId},
    model::Timestamp,
};

/// Domain separation: a tombstone's signature can be nothing else's.
const CONTEXT: &[u8] = b"nabij tombstone v2\0";

/// Longest reason kept (bytes); a longer one is cut at a character boundary.
pub const MAX_REASON: usize = 500;

/// The tag an erased document is named by: a keyed hash of its id.
pub fn erased_tag(doc: DocId) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("nabij erased document v1");
    h.update(doc.as_bytes());
    *h.finalize().as_bytes()
}

/// A document erased, by whom, when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The erased document's tag ([`erased_tag`]).
    pub tag: [u8; 32],
    /// The network whose document carries this tombstone.
    pub network: DocId,
    /// The device that erased it (and signed this).
    pub by: DeviceKey,
    /// Milliseconds since the epoch, the eraser's clock.
    pub at: Timestamp,
    /// Why (the client asked, the retention period ended, …).
    pub reason: String,
    /// Erased everywhere, or only unshared from `network`.
    pub scope: Scope,
}

/// What a tombstone takes away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The document, everywhere.
    Erased,
    /// The network's copies: the document was unshared from `network` (its consent withdrawn
    /// or narrowed) by the change whose heads these are. A copy that holds these heads and is
    /// shared with the network again was shared again after it, and stays.
    Unshared {
        /// The document's heads after the change that unshared it.
        heads: Vec<[u8; 32]>,
        /// The networks it stayed shared with (consent narrowed, not withdrawn): a copy from
        /// before the unsharing may stay for one of these, not for a network someone shared
        /// it with that the unsharing device did not know of.
        kept: Vec<DocId>,
    },
    /// The document, everywhere, replaced by `by`: a new history of it holding its state at
    /// `heads` without words redacted from it (`Device::redact_note`). A copy with notes the
    /// heads do not cover hands them on to `by` before it goes.
    Replaced {
        /// The new document.
        by: DocId,
        /// The replaced document's heads the new one was made from.
        heads: Vec<[u8; 32]>,
    },
}

/// Most heads an unshared tombstone names (a document has a few at most).
pub const MAX_HEADS: usize = 64;

/// An unsharing's heads and the networks kept, as stored.
type UnsharedWire = (Vec<[u8; 32]>, Vec<[u8; 16]>);

/// A tombstone's scope as stored: the first two encode as `Option<UnsharedWire>` did (`None`,
/// `Some`), so tombstones written before redaction existed read the same.
#[derive(Serialize, Deserialize)]
enum ScopeWire {
    Erased,
    Unshared(UnsharedWire),
    Replaced([u8; 16], Vec<[u8; 32]>),
}

/// The signed form, as stored.
#[derive(Serialize, Deserialize)]
struct Wire {
    tag: [u8; 32],
    network: [u8; 16],
    by: [u8; 32],
    at: i64,
    reason: String,
    scope: ScopeWire,
    signature: Vec<u8>,
}

/// Why tombstone bytes were not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TombstoneError {
    /// Not a tombstone.
    #[error("malformed tombstone: {0}")]
    Malformed(String),
    /// The signature does not hold for the device it names.
    #[error("a tombstone's signature does not hold")]
    BadSignature,
}

fn message(w: &Wire) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 32 + 16 + 32 + 8 + w.reason.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(&w.tag);
    m.extend_from_slice(&w.network);
    m.extend_from_slice(&w.by);
    m.extend_from_slice(&w.at.to_le_bytes());
    m.extend_from_slice(&(w.reason.len() as u64).to_le_bytes());
    m.extend_from_slice(w.reason.as_bytes());
    match &w.scope {
        ScopeWire::Erased => m.push(0),
        ScopeWire::Unshared((heads, kept)) => {
            m.push(1);
            m.extend_from_slice(&(heads.len() as u64).to_le_bytes());
            for h in heads {
                m.extend_from_slice(h);
            }
            for k in kept {
                m.extend_from_slice(k);
            }
        }
        ScopeWire::Replaced(by, heads) => {
            m.push(2);
            m.extend_from_slice(by);
            m.extend_from_slice(&(heads.len() as u64).to_le_bytes());
            for h in heads {
                m.extend_from_slice(h);
            }
        }
    }
    m
}

impl Tombstone {
    /// Signs the tombstone with the erasing device's key (`by` is taken from it).
    pub(crate) fn sign(mut self, key: &SigningKey) -> Vec<u8> {
        self.by = DeviceKey::from_bytes(key.verifying_key().to_bytes());
        let mut reason = self.reason;
        if reason.len() > MAX_REASON {
            let mut cut = MAX_REASON;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        let mut w = Wire {
            tag: self.tag,
            network: *self.network.as_bytes(),
            by: *self.by.as_bytes(),
            at: self.at,
            reason,
            scope: match self.scope {
                Scope::Erased => ScopeWire::Erased,
                Scope::Unshared { heads, kept } => {
                    ScopeWire::Unshared((heads, kept.iter().map(|k| *k.as_bytes()).collect()))
                }
                Scope::Replaced { by, heads } => ScopeWire::Replaced(*by.as_bytes(), heads),
            },
            signature: Vec::new(),
        };
        w.signature = key.sign(&message(&w)).to_bytes().to_vec();
        // Serializing plain bytes, integers and a string into a Vec cannot fail.
        postcard::to_allocvec(&w).unwrap_or_default()
    }

    /// Reads and checks signed tombstone bytes.
    pub fn open(bytes: &[u8]) -> Result<Self, TombstoneError> {
        let w: Wire =
            postcard::from_bytes(bytes).map_err(|e| TombstoneError::Malformed(e.to_string()))?;
        if w.reason.len() > MAX_REASON {
            return Err(TombstoneError::Malformed("reason too long".into()));
        }
        let bad_heads = |h: &[[u8; 32]]| h.is_empty() || h.len() > MAX_HEADS;
        let bad = match &w.scope {
            ScopeWire::Erased => false,
            ScopeWire::Unshared((h, k)) => bad_heads(h) || k.len() > MAX_HEADS,
            ScopeWire::Replaced(_, h) => bad_heads(h),
        };
        if bad {
            return Err(TombstoneError::Malformed("a tombstone's heads are out of bounds".into()));
        }
        let key = VerifyingKey::from_bytes(&w.by).map_err(|_| TombstoneError::BadSignature)?;
        let sig = Signature::from_slice(&w.signature).map_err(|_| TombstoneError::BadSignature)?;
        key.verify(&message(&w), &sig).map_err(|_| TombstoneError::BadSignature)?;
        Ok(Self {
            tag: w.tag,
            network: DocId::from_bytes(w.network),
            by: DeviceKey::from_bytes(w.by),
            at: w.at,
            reason: w.reason,
            scope: match w.scope {
                ScopeWire::Erased => Scope::Erased,
                ScopeWire::Unshared((heads, kept)) => Scope::Unshared {
                    heads,
                    kept: kept.into_iter().map(DocId::from_bytes).collect(),
                },
                ScopeWire::Replaced(by, heads) => {
                    Scope::Replaced { by: DocId::from_bytes(by), heads }
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tombstone() -> Tombstone {
        Tombstone {
            tag: erased_tag(DocId::from_bytes([1; 16])),
            network: DocId::from_bytes([2; 16]),
            by: DeviceKey::from_bytes([0; 32]),
            at: 1_700_000_000_000,
            reason: "De cliënt vroeg erom".into(),
            scope: Scope::Erased,
        }
    }

    #[test]
    fn signed_tombstones_open_and_any_change_is_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let bytes = tombstone().sign(&key);
        let t = Tombstone::open(&bytes).expect("opens");
        assert_eq!(t.by.as_bytes(), &key.verifying_key().to_bytes());
        assert_eq!(
            (t.tag, t.network, t.reason.as_str()),
            (tombstone().tag, tombstone().network, "De cliënt vroeg erom")
        );
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(Tombstone::open(&b).is_err(), "a flipped bit at {i} was taken");
        }
        assert!(Tombstone::open(&bytes[..bytes.len() - 1]).is_err());
        assert!(Tombstone::open(b"").is_err());
    }

    #[test]
    fn an_unshared_tombstone_keeps_its_heads_and_its_scope_cannot_be_changed() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let heads = vec![[3; 32], [4; 32]];
        let kept = vec![DocId::from_bytes([5; 16])];
        let t = Tombstone {
            scope: Scope::Unshared { heads: heads.clone(), kept: kept.clone() },
            ..tombstone()
        };
        let bytes = t.clone().sign(&key);
        let opened = Tombstone::open(&bytes).expect("opens");
        assert_eq!(opened.scope, Scope::Unshared { heads, kept });
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(Tombstone::open(&b).is_err(), "a flipped bit at {i} was taken");
        }
        // The same signature over an erasure: refused (an unsharing must not erase).
        let mut w: Wire = postcard::from_bytes(&bytes).expect("decodes");
        w.scope = ScopeWire::Erased;
        let forged = postcard::to_allocvec(&w).expect("encodes");
        assert_eq!(Tombstone::open(&forged), Err(TombstoneError::BadSignature));
        let none = Tombstone {
            scope: Scope::Unshared { heads: Vec::new(), kept: Vec::new() },
            ..tombstone()
        };
        assert!(Tombstone::open(&none.sign(&key)).is_err());
    }

    #[test]
    fn a_replacement_names_its_new_document_and_reads_as_written_before_it_existed() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let by = DocId::from_bytes([9; 16]);
        let t = Tombstone { scope: Scope::Replaced { by, heads: vec![[3; 32]] }, ..tombstone() };
        let bytes = t.clone().sign(&key);
        assert_eq!(Tombstone::open(&bytes).expect("opens").scope, t.scope);
        // Re-pointed at another document under the same signature: refused.
        let mut w: Wire = postcard::from_bytes(&bytes).expect("decodes");
        w.scope = ScopeWire::Replaced([8; 16], vec![[3; 32]]);
        let forged = postcard::to_allocvec(&w).expect("encodes");
        assert_eq!(Tombstone::open(&forged), Err(TombstoneError::BadSignature));
        // Bytes as tombstones were written before replacement existed (the scope an
        // `Option`): they read the same.
        #[derive(Serialize)]
        struct Before {
            tag: [u8; 32],
            network: [u8; 16],
            by: [u8; 32],
            at: i64,
            reason: String,
            unshared: Option<UnsharedWire>,
            signature: Vec<u8>,
        }
        for scope in [Scope::Erased, Scope::Unshared { heads: vec![[1; 32]], kept: vec![] }] {
            let new: Wire = postcard::from_bytes(&Tombstone { scope, ..tombstone() }.sign(&key))
                .expect("decodes");
            let old = Before {
                tag: new.tag,
                network: new.network,
                by: new.by,
                at: new.at,
                reason: new.reason.clone(),
                unshared: match &new.scope {
                    ScopeWire::Unshared(u) => Some(u.clone()),
                    _ => None,
                },
                signature: new.signature.clone(),
            };
            let old = postcard::to_allocvec(&old).expect("encodes");
            assert!(Tombstone::open(&old).is_ok(), "an older tombstone still opens");
        }
    }

    #[test]
    fn a_long_reason_is_cut_at_a_character() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let t = Tombstone { reason: "é".repeat(400), ..tombstone() };
        let opened = Tombstone::open(&t.sign(&key)).expect("opens");
        assert!(opened.reason.len() <= MAX_REASON && opened.reason.chars().all(|c| c == 'é'));
    }
}
