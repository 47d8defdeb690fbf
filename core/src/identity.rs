//! The device's identity: an Ed25519 key pair generated at the first open of a store and kept
//! in it. Its public key is the device's [`DeviceKey`] and, as bytes, the Automerge actor id
//! every change from this device is written with, so each change names its author.
//!
//! Owns key generation and encoding. Knows nothing of SQLite (the store keeps the secret).

use ed25519_dalek::SigningKey;

use crate::ids::{DeviceKey, Randomness};

/// Why a device identity could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The OS random source failed: no key is made from anything weaker.
    #[error("no secure random source for the device key: {0}")]
    Random(String),
    /// The stored secret is not 32 bytes.
    #[error("stored device key is damaged ({0} bytes, expected 32)")]
    Damaged(usize),
    /// The key could not be encoded for TLS.
    #[error("device key could not be encoded: {0}")]
    Encoding(String),
}

/// The device's key pair.
pub struct DeviceIdentity {
    signing: SigningKey,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "DeviceIdentity({})", self.public_key())
    }
}

impl DeviceIdentity {
    /// A new random identity, from the OS random source.
    pub fn generate() -> Result<Self, IdentityError> {
        Self::generate_from(&Randomness::os())
    }

    /// A new identity from `source`: the OS random source in apps; a seeded one
    /// ([`Randomness::deterministic_for_tests`]) only in tests, where the secret is public.
    pub fn generate_from(source: &Randomness) -> Result<Self, IdentityError> {
        let secret = source.secret_bytes().map_err(|e| IdentityError::Random(e.to_string()))?;
        Ok(Self { signing: SigningKey::from_bytes(&secret) })
    }

    /// The identity from its stored secret.
    pub fn from_secret(bytes: &[u8]) -> Result<Self, IdentityError> {
        let secret: [u8; 32] = bytes.try_into().map_err(|_| IdentityError::Damaged(bytes.len()))?;
        Ok(Self { signing: SigningKey::from_bytes(&secret) })
    }

    /// The secret, for storing.
    pub(crate) fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The signing key, for deriving the device's X25519 key (`crypto`).
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The public key: the device's identity and actor id.
    pub fn public_key(&self) -> DeviceKey {
        DeviceKey::from_bytes(self.signing.verifying_key().to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_through_its_secret() {
        let id = DeviceIdentity::generate().unwrap();
        let again = DeviceIdentity::from_secret(&id.secret_bytes()).unwrap();
        assert_eq!(id.public_key(), again.public_key());
        assert!(matches!(DeviceIdentity::from_secret(&[1, 2, 3]), Err(IdentityError::Damaged(3))));
    }

    #[test]
    fn seeded_identity_replays_and_os_identities_differ() {
        let seeded = |s| DeviceIdentity::generate_from(&Randomness::deterministic_for_tests(s));
        assert_eq!(seeded(1).unwrap().public_key(), seeded(1).unwrap().public_key());
        assert_ne!(seeded(1).unwrap().public_key(), seeded(2).unwrap().public_key());
        let os = Randomness::os();
        assert_ne!(
            DeviceIdentity::generate_from(&os).unwrap().public_key(),
            DeviceIdentity::generate_from(&os).unwrap().public_key()
        );
    }
}
