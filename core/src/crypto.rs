//! End-to-end encryption for what leaves a device through a relay: network keys sealed to
//! member devices, content keys sealed under network keys, and Automerge changes encrypted
//! into blobs the relay can store and forward but not read.
//!
//! - A **network key** (32 random bytes, per network and epoch) is sealed to each member device
//!   with an X25519 key agreement: a fresh ephemeral key, and the device's X25519 key derived
//!   for the purpose from its Ed25519 device key (the birational map; the public half follows
//!   from the device key in the roster, so nothing new has to be published). The shared
//!   secret goes through BLAKE3's key derivation with both public keys; the payload (the key
//!   and the network's id, so a device added by card learns which network it opened) is then
//!   encrypted with XChaCha20-Poly1305, bound to the network and epoch.
//! - A **content key** per document is sealed under its network's key. The network document
//!   itself is encrypted under a key derived from the network key.
//! - A **blob** is `key id (8) || nonce (24) || XChaCha20-Poly1305 ciphertext` of Automerge
//!   changes, with network, document, epoch and key id as associated data; its id is the
//!   BLAKE3 hash of its bytes, so the relay can deduplicate and a receiver can check it.
//! - The relay sees **relay ids**: networks by a hash of their key, documents by a keyed hash
//!   of their id under the network key. Neither reveals anything about a client, and only a
//!   member can name a network to the relay.
//!
//! Every key and nonce comes from the device's [`Randomness`] (the OS source; a seeded
//! stream only in deterministic simulations).
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
    ids::{DeviceKey, DocId, Randomness},
};

/// Context strings for BLAKE3's key derivation: each derived key has one purpose.
const SEAL_KDF: &str = "nabij 2026-11 sealed network key v1";
const RELAY_ID_KDF: &str = "nabij 2026-11 relay document id v1";
const NETWORK_ID_KDF: &str = "nabij 2026-11 relay network id v1";
const KEY_ID_KDF: &str = "nabij 2026-11 key id v1";
const NETWORK_DOC_KDF: &str = "nabij 2026-11 network document key v1";

/// Length of a blob's key id prefix.
pub const KEY_ID_LEN: usize = 8;
/// A key's public id: which key opens a blob, without revealing it.
pub type KeyId = [u8; KEY_ID_LEN];

/// Why a key or blob could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The OS random source failed: nothing is encrypted with a weaker nonce or key.
    #[error("no secure random source: {0}")]
    Random(String),
    /// Authentication failed: the data was altered, or this is the wrong key or context.
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

fn random<const N: usize>(rng: &Randomness, purpose: &[u8]) -> Result<[u8; N], CryptoError> {
    rng.key_bytes(purpose).map_err(|e| CryptoError::Random(e.to_string()))
}

impl SecretKey {
    /// A new random key.
    pub fn generate(rng: &Randomness) -> Result<Self, CryptoError> {
        Ok(Self(random(rng, b"secret key")?))
    }

    /// The key from its bytes (as stored on the device).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes, for storing on the device only.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The key's public id (a hash; says nothing about the key).
    pub fn id(&self) -> KeyId {
        let h = blake3::derive_key(KEY_ID_KDF, &self.0);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&h[..KEY_ID_LEN]);
        id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

/// `nonce || ciphertext` with `aad` authenticated.
fn seal(
    rng: &Randomness,
    key: &SecretKey,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let nonce: [u8; 24] = random(rng, b"nonce")?;
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

/// A network key sealed to one device: `ephemeral public key (32) || nonce (24) ||
/// ciphertext` of the key and the network's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey(Vec<u8>);

impl SealedKey {
    /// The sealed bytes (what the network document and the roster carry).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Sealed bytes as stored.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

/// The id a network has at the relay: derived from its key, so only its members can name it
/// (no one who merely saw a ticket can claim the network at a relay first).
pub fn relay_network_id(network_key: &SecretKey) -> [u8; 32] {
    blake3::derive_key(NETWORK_ID_KDF, &network_key.0)
}

/// Seals `network`'s key of `epoch` to the device `recipient`. The sealed payload is the key
/// and the network's id, and epoch and recipient are authenticated: a device that opens it
/// checks it is the network it expects (or learns which network it is, from a roster).
pub fn seal_network_key(
    rng: &Randomness,
    key: &SecretKey,
    network: DocId,
    epoch: u32,
    recipient: &DeviceKey,
) -> Result<SealedKey, CryptoError> {
    let their = x25519_public(recipient)?;
    let ephemeral = StaticSecret::from(random::<32>(rng, b"ephemeral")?);
    let eph_pub = PublicKey::from(&ephemeral).to_bytes();
    let shared = ephemeral.diffie_hellman(&PublicKey::from(their));
    if !shared.was_contributory() {
        return Err(CryptoError::Malformed("device key of low order".into()));
    }
    let wrapping = kek(shared.as_bytes(), &eph_pub, &their);
    let aad = [&epoch.to_le_bytes()[..], recipient.as_bytes()].concat();
    let payload = [&key.0[..], network.as_bytes()].concat();
    let sealed = seal(rng, &wrapping, &payload, &aad)?;
    Ok(SealedKey([eph_pub.as_slice(), &sealed].concat()))
}

/// Opens a network key of `epoch` sealed to this device, and returns it with the network's id
/// (the caller checks it is the network it expected).
pub fn open_network_key(
    identity: &DeviceIdentity,
    sealed: &[u8],
    epoch: u32,
) -> Result<(SecretKey, DocId), CryptoError> {
    if sealed.len() < 32 {
        return Err(CryptoError::Malformed("sealed key too short".into()));
    }
    let (eph, rest) = sealed.split_at(32);
    let eph: [u8; 32] = eph.try_into().map_err(|_| CryptoError::Malformed("ephemeral".into()))?;
    let me = identity.public_key();
    let mine = x25519_public(&me)?;
    let shared = identity.x25519_secret().diffie_hellman(&PublicKey::from(eph));
    if !shared.was_contributory() {
        return Err(CryptoError::Malformed("ephemeral key of low order".into()));
    }
    let wrapping = kek(shared.as_bytes(), &eph, &mine);
    let aad = [&epoch.to_le_bytes()[..], me.as_bytes()].concat();
    let payload = open(&wrapping, rest, &aad)?;
    if payload.len() != 48 {
        return Err(CryptoError::Malformed("sealed payload is not a key and an id".into()));
    }
    let key: [u8; 32] =
        payload[..32].try_into().map_err(|_| CryptoError::Malformed("key".into()))?;
    let id: [u8; 16] =
        payload[32..].try_into().map_err(|_| CryptoError::Malformed("network id".into()))?;
    Ok((SecretKey(key), DocId::from_bytes(id)))
}

/// The key the network document itself is encrypted under (derived, so every holder of the
/// network key has it without a lookup).
pub fn network_doc_key(network_key: &SecretKey) -> SecretKey {
    SecretKey(blake3::derive_key(NETWORK_DOC_KDF, &network_key.0))
}

/// Seals a document's content key under its network key, bound to the blob context.
pub fn seal_content_key(
    rng: &Randomness,
    network_key: &SecretKey,
    content_key: &SecretKey,
    context: &BlobContext,
) -> Result<Vec<u8>, CryptoError> {
    seal(rng, network_key, &content_key.0, &context.aad())
}

/// Opens a key sealed with [`seal_content_key`].
pub fn open_content_key(
    network_key: &SecretKey,
    sealed: &[u8],
    context: &BlobContext,
) -> Result<SecretKey, CryptoError> {
    let key: [u8; 32] = open(network_key, sealed, &context.aad())?
        .try_into()
        .map_err(|_| CryptoError::Malformed("sealed key is not 32 bytes".into()))?;
    Ok(SecretKey(key))
}

/// What a blob that carries its content key starts with: a key id no key has (ids are
/// hashes), so it cannot be read as a blob's key id.
const CARRIES_KEY: KeyId = [0; KEY_ID_LEN];

/// Bytes of a sealed content key: nonce, key, tag.
const SEALED_KEY_LEN: usize = 24 + 32 + 16;

/// A document's content key carried in a blob to the relay (unopened): the epoch whose
/// network key seals it, the id it claims, and the sealed key. Keys travel this way, beside
/// the blobs they open, and not in the network document: a relay's deletion of a document
/// deletes its keys with its blobs, and no Automerge history keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedKey {
    /// The epoch whose network key seals the key.
    pub epoch: u32,
    /// The key's id (unauthenticated until opened).
    pub id: KeyId,
    /// The key sealed under that network key, bound to the network and document
    /// ([`seal_content_key`]).
    pub sealed: Vec<u8>,
}

/// `blob` (as [`encrypt_blob`] made it) carrying its content key sealed under the network key
/// of `context.epoch`: `CARRIES_KEY || epoch (u32 LE) || key id || sealed key || blob`.
pub fn carry_key(
    rng: &Randomness,
    network_key: &SecretKey,
    context: &BlobContext,
    content_key: &SecretKey,
    blob: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let sealed = seal_content_key(rng, network_key, content_key, context)?;
    let mut out = Vec::with_capacity(2 * KEY_ID_LEN + 4 + sealed.len() + blob.len());
    out.extend_from_slice(&CARRIES_KEY);
    out.extend_from_slice(&context.epoch.to_le_bytes());
    out.extend_from_slice(&content_key.id());
    out.extend_from_slice(&sealed);
    out.extend_from_slice(blob);
    Ok(out)
}

/// A pulled blob split into the content key it carries, if it carries one, and the blob
/// proper. Nothing is opened here; a blob too short for the key it says it carries is
/// malformed.
pub fn split_carried(bytes: &[u8]) -> Result<(Option<CarriedKey>, &[u8]), CryptoError> {
    if bytes.get(..KEY_ID_LEN) != Some(&CARRIES_KEY[..]) {
        return Ok((None, bytes));
    }
    let short = || CryptoError::Malformed("blob too short for the key it carries".into());
    let rest = &bytes[KEY_ID_LEN..];
    let epoch = rest.get(..4).and_then(|e| e.try_into().ok()).map(u32::from_le_bytes);
    let id = rest.get(4..4 + KEY_ID_LEN).and_then(|k| KeyId::try_from(k).ok());
    let sealed = rest.get(4 + KEY_ID_LEN..4 + KEY_ID_LEN + SEALED_KEY_LEN);
    let (Some(epoch), Some(id), Some(sealed)) = (epoch, id, sealed) else { return Err(short()) };
    let blob = &rest[4 + KEY_ID_LEN + SEALED_KEY_LEN..];
    Ok((Some(CarriedKey { epoch, id, sealed: sealed.to_vec() }), blob))
}

/// The id the relay knows a document by: a keyed hash of its id under the network key.
pub fn relay_doc_id(network_key: &SecretKey, doc: DocId) -> [u8; 32] {
    let k = blake3::derive_key(RELAY_ID_KDF, &network_key.0);
    *blake3::keyed_hash(&k, doc.as_bytes()).as_bytes()
}

/// What a blob is bound to: a blob moved to another network, document or epoch fails to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobContext {
    /// The network's relay id ([`relay_network_id`]).
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

    fn aad_with(&self, key: &KeyId) -> [u8; 68 + KEY_ID_LEN] {
        let mut a = [0u8; 68 + KEY_ID_LEN];
        a[..68].copy_from_slice(&self.aad());
        a[68..].copy_from_slice(key);
        a
    }
}

/// An encrypted blob and its id (the BLAKE3 hash of its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// BLAKE3 of `bytes`.
    pub id: [u8; 32],
    /// `key id || nonce || ciphertext`.
    pub bytes: Vec<u8>,
}

/// Encrypts Automerge changes for the relay.
pub fn encrypt_blob(
    rng: &Randomness,
    content_key: &SecretKey,
    context: &BlobContext,
    plaintext: &[u8],
) -> Result<Blob, CryptoError> {
    let key_id = content_key.id();
    let mut bytes = Vec::with_capacity(KEY_ID_LEN + 24 + plaintext.len() + 16);
    bytes.extend_from_slice(&key_id);
    bytes.extend_from_slice(&seal(rng, content_key, plaintext, &context.aad_with(&key_id))?);
    Ok(Blob { id: *blake3::hash(&bytes).as_bytes(), bytes })
}

/// The id of the key a blob claims to be encrypted under (unauthenticated until opened).
pub fn blob_key_id(bytes: &[u8]) -> Result<KeyId, CryptoError> {
    bytes
        .get(..KEY_ID_LEN)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| CryptoError::Malformed("blob too short".into()))
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
    let key_id = blob_key_id(&blob.bytes)?;
    if key_id != content_key.id() {
        return Err(CryptoError::Tampered);
    }
    open(content_key, &blob.bytes[KEY_ID_LEN..], &context.aad_with(&key_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx() -> BlobContext {
        BlobContext { network: [1; 32], doc: [2; 32], epoch: 0 }
    }

    fn os() -> Randomness {
        Randomness::os()
    }

    #[test]
    fn a_network_key_sealed_to_a_device_opens_only_there() {
        let alice = DeviceIdentity::generate().unwrap();
        let bob = DeviceIdentity::generate().unwrap();
        let key = SecretKey::generate(&os()).unwrap();
        let (n1, n2) = (DocId::from_bytes([1; 16]), DocId::from_bytes([2; 16]));
        let sealed = seal_network_key(&os(), &key, n1, 0, &alice.public_key()).unwrap();
        let (opened, network) = open_network_key(&alice, sealed.as_bytes(), 0).unwrap();
        assert_eq!((opened, network), (key.clone(), n1));
        assert_ne!(network, n2, "the payload names its network");
        assert_eq!(
            open_network_key(&bob, sealed.as_bytes(), 0).unwrap_err(),
            CryptoError::Tampered
        );
        assert_eq!(
            open_network_key(&alice, sealed.as_bytes(), 1).unwrap_err(),
            CryptoError::Tampered
        );
        // Two sealings of one key differ (fresh ephemeral key and nonce).
        let again = seal_network_key(&os(), &key, n1, 0, &alice.public_key()).unwrap();
        assert_ne!(sealed, again);
    }

    #[test]
    fn a_carried_key_splits_off_its_blob_and_opens_only_in_its_context() {
        let (network, content) =
            (SecretKey::generate(&os()).unwrap(), SecretKey::generate(&os()).unwrap());
        let blob = encrypt_blob(&os(), &content, &ctx(), b"changes").unwrap();
        let carried = carry_key(&os(), &network, &ctx(), &content, &blob.bytes).unwrap();
        let (key_in, rest) = split_carried(&carried).unwrap();
        let key_in = key_in.unwrap();
        assert_eq!((key_in.epoch, key_in.id), (ctx().epoch, content.id()));
        assert!(rest == &blob.bytes[..]);
        assert_eq!(open_content_key(&network, &key_in.sealed, &ctx()).unwrap(), content);
        let other = BlobContext { doc: [9; 32], ..ctx() };
        assert_eq!(open_content_key(&network, &key_in.sealed, &other), Err(CryptoError::Tampered));
        // A blob that carries no key is passed through; one cut short is malformed.
        assert!(split_carried(&blob.bytes).unwrap() == (None, &blob.bytes[..]));
        for cut in [KEY_ID_LEN, KEY_ID_LEN + 3, KEY_ID_LEN + 4 + KEY_ID_LEN + SEALED_KEY_LEN - 1] {
            assert!(matches!(split_carried(&carried[..cut]), Err(CryptoError::Malformed(_))));
        }
    }

    #[test]
    fn content_keys_and_blobs_round_trip_and_bind_their_context() {
        let network = SecretKey::generate(&os()).unwrap();
        let content = SecretKey::generate(&os()).unwrap();
        let sealed = seal_content_key(&os(), &network, &content, &ctx()).unwrap();
        assert_eq!(open_content_key(&network, &sealed, &ctx()).unwrap(), content);
        assert_eq!(open_content_key(&content, &sealed, &ctx()), Err(CryptoError::Tampered));
        let other = BlobContext { doc: [9; 32], ..ctx() };
        assert_eq!(open_content_key(&network, &sealed, &other), Err(CryptoError::Tampered));

        let blob = encrypt_blob(&os(), &content, &ctx(), b"Moeder R. wast alles op zestig graden")
            .unwrap();
        assert!(!blob.bytes.windows(6).any(|w| w == b"Moeder"), "no plaintext in the blob");
        assert_eq!(blob_key_id(&blob.bytes).unwrap(), content.id());
        assert_eq!(
            decrypt_blob(&content, &ctx(), &blob).unwrap(),
            b"Moeder R. wast alles op zestig graden"
        );
        let moved = BlobContext { epoch: 1, ..ctx() };
        assert_eq!(decrypt_blob(&content, &moved, &blob), Err(CryptoError::Tampered));
        let other_doc = BlobContext { doc: [3; 32], ..ctx() };
        assert_eq!(decrypt_blob(&content, &other_doc, &blob), Err(CryptoError::Tampered));
        assert_eq!(decrypt_blob(&network, &ctx(), &blob), Err(CryptoError::Tampered));
    }

    #[test]
    fn seeded_randomness_replays_keys_and_blobs() {
        let run = || {
            let rng = Randomness::deterministic_for_tests(3);
            let key = SecretKey::generate(&rng).unwrap();
            encrypt_blob(&rng, &key, &ctx(), b"x").unwrap()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn relay_ids_reveal_nothing_and_differ_per_network() {
        let doc = DocId::from_bytes([9; 16]);
        let (n1, n2) = (SecretKey::generate(&os()).unwrap(), SecretKey::generate(&os()).unwrap());
        assert_eq!(relay_doc_id(&n1, doc), relay_doc_id(&n1, doc));
        assert_ne!(relay_doc_id(&n1, doc), relay_doc_id(&n2, doc));
        assert!(!relay_doc_id(&n1, doc).windows(16).any(|w| w == doc.as_bytes()));
        assert_ne!(relay_network_id(&n1), relay_network_id(&n2));
        assert_ne!(network_doc_key(&n1), n1);
    }

    proptest! {
        /// Flipping any bit of a stored blob is detected: wrong id, or failed authentication
        /// when the id was recomputed by whoever changed it.
        #[test]
        fn any_flipped_bit_is_detected(bit in 0usize..(8 + 24 + 16 + 40) * 8, fix_id in any::<bool>()) {
            let content = SecretKey::from_bytes([7; 32]);
            let mut blob = encrypt_blob(&os(), &content, &ctx(), &[5; 40]).unwrap();
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
