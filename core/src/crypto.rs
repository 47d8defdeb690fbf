//! End-to-end encryption for what leaves a device through a relay (issue 4): network keys
//! sealed to member devices, content keys sealed under network keys, and Automerge changes
//! encrypted into blobs the relay can store and forward but not read.
//!
//! - A **network key** (32 random bytes, per network and epoch) is sealed to each member device
//!   with an X25519 key agreement: a fresh ephemeral key, and the device's X25519 key derived
//!   for the purpose from its Ed25519 device key (the birational map; the public half follows
//!   from the device key in the roster, so nothing new has to be published). The shared
//!   secret goes through BLAKE3's key derivation with both public keys; the key is then
//!   encrypted with XChaCha20-Poly1305.
//! - A **content key** per document is sealed under its network's key.
//! - A **blob** is XChaCha20-Poly1305 ciphertext (random 24-byte nonce) of Automerge changes,
//!   with network, document and epoch as associated data; its id is the BLAKE3 hash of the
//!   ciphertext, so the relay can deduplicate and a receiver can check what it got.
//! - The relay sees **relay document ids**: a keyed hash of the document id under the network
//!   key. They reveal nothing about the document or its client, and differ per network.
//!
//! Owns keys, sealing and blob encryption. Knows nothing of the store, the relay protocol or
//! sockets.

use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::{
    identity::DeviceIdentity,
    ids::{DeviceKey, DocId},
};

/// Context strings for BLAKE3's key derivation: each derived key has one purpose.
const SEAL_KDF: &str = "nabij 2026-11 sealed network key v1";
const RELAY_ID_KDF: &str = "nabij 2026-11 relay document id v1";

/// Why a key or blob could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The OS random source failed: nothing is encrypted with a weaker nonce or key.
    #[error("no secure random source: {0}")]
    Random(String),
    /// Authentication failed: the bytes were changed, or this is the wrong key or context.
    #[error("authentication failed: the data was altered or is not for this key")]
    Tampered,
    /// A blob's bytes do not hash to the id it was stored under.
    #[error("blob does not match its id")]
    WrongId,
    /// Bytes that cannot be a sealed key, blob or public key.
    #[error("malformed: {0}")]
    Malformed(String),
}

/// A 32-byte symmetric key (a network key or a document's content key). Not printable.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        // Best effort: keys do not linger in freed memory.
        self.0 = [0; 32];
    }
}

fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| CryptoError::Random(e.to_string()))?;
    Ok(b)
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(random()?))
    }

    /// The key from its bytes (as stored on the device).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes, for storing on the device only.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

/// `nonce || ciphertext` with `aad` authenticated.
fn seal(key: &SecretKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce: [u8; 24] = random()?;
    let ct = key
        .cipher()
        .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| CryptoError::Malformed("message too long to encrypt".into()))?;
    let mut out = Vec::with_capacity(24 + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open(key: &SecretKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < 24 + 16 {
        return Err(CryptoError::Malformed(format!("{} bytes is too short", sealed.len())));
    }
    let (nonce, ct) = sealed.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| CryptoError::Malformed("nonce".into()))?;
    key.cipher()
        .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Tampered)
}

/// The X25519 public key a device's Ed25519 key maps to.
pub fn x25519_public(device: &DeviceKey) -> Result<[u8; 32], CryptoError> {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(device.as_bytes())
        .map_err(|e| CryptoError::Malformed(format!("device key: {e}")))?;
    Ok(vk.to_montgomery().to_bytes())
}

impl DeviceIdentity {
    /// The X25519 secret matching [`x25519_public`] of this device's key.
    pub(crate) fn x25519_secret(&self) -> StaticSecret {
        StaticSecret::from(self.signing_key().to_scalar_bytes())
    }
}

fn kek(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> SecretKey {
    let mut material = [0u8; 96];
    material[..32].copy_from_slice(shared);
    material[32..64].copy_from_slice(ephemeral);
    material[64..].copy_from_slice(recipient);
    SecretKey(blake3::derive_key(SEAL_KDF, &material))
}

/// A key sealed to one device: `ephemeral public key (32) || nonce (24) || ciphertext`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey(Vec<u8>);

impl SealedKey {
    /// The sealed bytes (what the network document stores).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Sealed bytes as stored.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

/// Seals `key` to the device `recipient`; `context` (network id and epoch, say) is
/// authenticated, so a sealed key cannot be replayed as another network's.
pub fn seal_to_device(
    key: &SecretKey,
    recipient: &DeviceKey,
    context: &[u8],
) -> Result<SealedKey, CryptoError> {
    let their = x25519_public(recipient)?;
    let ephemeral = StaticSecret::from(random::<32>()?);
    let eph_pub = PublicKey::from(&ephemeral).to_bytes();
    let shared = ephemeral.diffie_hellman(&PublicKey::from(their));
    if !shared.was_contributory() {
        return Err(CryptoError::Malformed("device key of low order".into()));
    }
    let wrapping = kek(shared.as_bytes(), &eph_pub, &their);
    let aad = [context, recipient.as_bytes()].concat();
    let sealed = seal(&wrapping, &key.0, &aad)?;
    Ok(SealedKey([eph_pub.as_slice(), &sealed].concat()))
}

/// Opens a key sealed to this device.
pub fn open_sealed(
    identity: &DeviceIdentity,
    sealed: &SealedKey,
    context: &[u8],
) -> Result<SecretKey, CryptoError> {
    let bytes = sealed.as_bytes();
    if bytes.len() < 32 {
        return Err(CryptoError::Malformed("sealed key too short".into()));
    }
    let (eph, rest) = bytes.split_at(32);
    let eph: [u8; 32] = eph.try_into().map_err(|_| CryptoError::Malformed("ephemeral".into()))?;
    let me = identity.public_key();
    let mine = x25519_public(&me)?;
    let shared = identity.x25519_secret().diffie_hellman(&PublicKey::from(eph));
    if !shared.was_contributory() {
        return Err(CryptoError::Malformed("ephemeral key of low order".into()));
    }
    let wrapping = kek(shared.as_bytes(), &eph, &mine);
    let aad = [context, me.as_bytes()].concat();
    let key: [u8; 32] = open(&wrapping, rest, &aad)?
        .try_into()
        .map_err(|_| CryptoError::Malformed("sealed key is not 32 bytes".into()))?;
    Ok(SecretKey(key))
}

/// Seals a document's content key under its network key (`context`: network, document and
/// epoch).
pub fn seal_with(
    wrapping: &SecretKey,
    key: &SecretKey,
    context: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    seal(wrapping, &key.0, context)
}

/// Opens a key sealed with [`seal_with`].
pub fn open_with(
    wrapping: &SecretKey,
    sealed: &[u8],
    context: &[u8],
) -> Result<SecretKey, CryptoError> {
    let key: [u8; 32] = open(wrapping, sealed, context)?
        .try_into()
        .map_err(|_| CryptoError::Malformed("sealed key is not 32 bytes".into()))?;
    Ok(SecretKey(key))
}

/// The id the relay knows a document by: a keyed hash of its id under the network key.
pub fn relay_doc_id(network_key: &SecretKey, doc: DocId) -> [u8; 32] {
    let k = blake3::derive_key(RELAY_ID_KDF, &network_key.0);
    *blake3::keyed_hash(&k, doc.as_bytes()).as_bytes()
}

/// What a blob is bound to: a blob moved to another network, document or epoch fails to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobContext {
    /// The network's id as the relay knows it.
    pub network: [u8; 32],
    /// The document's relay id ([`relay_doc_id`]).
    pub doc: [u8; 32],
    /// The key epoch.
    pub epoch: u32,
}

impl BlobContext {
    fn aad(&self) -> [u8; 68] {
        let mut a = [0u8; 68];
        a[..32].copy_from_slice(&self.network);
        a[32..64].copy_from_slice(&self.doc);
        a[64..].copy_from_slice(&self.epoch.to_le_bytes());
        a
    }
}

/// An encrypted blob and its id (the BLAKE3 hash of its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// BLAKE3 of `bytes`.
    pub id: [u8; 32],
    /// `nonce || ciphertext`.
    pub bytes: Vec<u8>,
}

/// Encrypts Automerge changes for the relay.
pub fn encrypt_blob(
    content_key: &SecretKey,
    context: &BlobContext,
    plaintext: &[u8],
) -> Result<Blob, CryptoError> {
    let bytes = seal(content_key, plaintext, &context.aad())?;
    Ok(Blob { id: *blake3::hash(&bytes).as_bytes(), bytes })
}

/// Checks a blob against its id and decrypts it; any changed bit is reported, not applied.
pub fn decrypt_blob(
    content_key: &SecretKey,
    context: &BlobContext,
    blob: &Blob,
) -> Result<Vec<u8>, CryptoError> {
    if *blake3::hash(&blob.bytes).as_bytes() != blob.id {
        return Err(CryptoError::WrongId);
    }
    open(content_key, &blob.bytes, &context.aad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx() -> BlobContext {
        BlobContext { network: [1; 32], doc: [2; 32], epoch: 0 }
    }

    #[test]
    fn a_network_key_sealed_to_a_device_opens_only_there() {
        let alice = DeviceIdentity::generate().unwrap();
        let bob = DeviceIdentity::generate().unwrap();
        let key = SecretKey::generate().unwrap();
        let sealed = seal_to_device(&key, &alice.public_key(), b"network 1 epoch 0").unwrap();
        assert_eq!(open_sealed(&alice, &sealed, b"network 1 epoch 0").unwrap(), key);
        assert_eq!(open_sealed(&bob, &sealed, b"network 1 epoch 0"), Err(CryptoError::Tampered));
        assert_eq!(open_sealed(&alice, &sealed, b"network 2 epoch 0"), Err(CryptoError::Tampered));
        // Two sealings of one key differ (fresh ephemeral key and nonce).
        let again = seal_to_device(&key, &alice.public_key(), b"network 1 epoch 0").unwrap();
        assert_ne!(sealed, again);
    }

    #[test]
    fn content_keys_and_blobs_round_trip_and_bind_their_context() {
        let network = SecretKey::generate().unwrap();
        let content = SecretKey::generate().unwrap();
        let sealed = seal_with(&network, &content, b"doc epoch 0").unwrap();
        assert_eq!(open_with(&network, &sealed, b"doc epoch 0").unwrap(), content);
        assert_eq!(open_with(&content, &sealed, b"doc epoch 0"), Err(CryptoError::Tampered));

        let blob =
            encrypt_blob(&content, &ctx(), b"Moeder R. wast alles op zestig graden").unwrap();
        assert!(!blob.bytes.windows(6).any(|w| w == b"Moeder"), "no plaintext in the blob");
        assert_eq!(
            decrypt_blob(&content, &ctx(), &blob).unwrap(),
            b"Moeder R. wast alles op zestig graden"
        );
        let moved = BlobContext { epoch: 1, ..ctx() };
        assert_eq!(decrypt_blob(&content, &moved, &blob), Err(CryptoError::Tampered));
        let other_doc = BlobContext { doc: [3; 32], ..ctx() };
        assert_eq!(decrypt_blob(&content, &other_doc, &blob), Err(CryptoError::Tampered));
    }

    #[test]
    fn relay_ids_reveal_nothing_and_differ_per_network() {
        let doc = DocId::from_bytes([9; 16]);
        let (n1, n2) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
        assert_eq!(relay_doc_id(&n1, doc), relay_doc_id(&n1, doc));
        assert_ne!(relay_doc_id(&n1, doc), relay_doc_id(&n2, doc));
        assert!(!relay_doc_id(&n1, doc).windows(16).any(|w| w == doc.as_bytes()));
    }

    proptest! {
        /// Flipping any bit of a stored blob is detected: wrong id, or failed authentication
        /// when the id was recomputed by whoever changed it.
        #[test]
        fn any_flipped_bit_is_detected(bit in 0usize..(24 + 16 + 40) * 8, fix_id in any::<bool>()) {
            let content = SecretKey::from_bytes([7; 32]);
            let mut blob = encrypt_blob(&content, &ctx(), &[5; 40]).unwrap();
            let bit = bit % (blob.bytes.len() * 8);
            blob.bytes[bit / 8] ^= 1 << (bit % 8);
            if fix_id {
                blob.id = *blake3::hash(&blob.bytes).as_bytes();
                prop_assert_eq!(decrypt_blob(&content, &ctx(), &blob), Err(CryptoError::Tampered));
            } else {
                prop_assert_eq!(decrypt_blob(&content, &ctx(), &blob), Err(CryptoError::WrongId));
            }
        }
    }
}
