//! The relay's own Ed25519 key: devices pin it, so no one can stand in for the relay. Kept in
//! `relay.key` in the data directory (owner-only), created on first start.
//!
//! Owns the key file. Knows nothing of connections.

use std::{io::Write, path::Path};

use ed25519_dalek::SigningKey;
use nabij_relay_proto::PublicKey;

/// Why the relay's key could not be read or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The file could not be read or written.
    #[error("relay key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a relay key.
    #[error("relay key file {0} is not 32 bytes; refusing to replace it")]
    Corrupt(String),
    /// No secure random source.
    #[error("no secure random source: {0}")]
    Random(String),
}

/// The relay's key pair.
pub struct RelayIdentity {
    key: SigningKey,
}

impl std::fmt::Debug for RelayIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RelayIdentity({})", nabij_relay_proto::relay_key_to_string(&self.public_key()))
    }
}

impl RelayIdentity {
    /// Reads `relay.key` in `dir`, or creates it (and `dir`) on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        let path = dir.join("relay.key");
        let io = |source| IdentityError::Io { path: path.display().to_string(), source };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let secret: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| IdentityError::Corrupt(path.display().to_string()))?;
                Ok(Self { key: SigningKey::from_bytes(&secret) })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Owner-only, as the storage makes it: which devices sync how often is the
                // operator's to guard, not every local user's.
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder.create(dir).map_err(io)?;
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).map_err(|e| IdentityError::Random(e.to_string()))?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut f = options.open(&path).map_err(io)?;
                f.write_all(&secret).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(Self { key: SigningKey::from_bytes(&secret) })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A key from its secret bytes (tests).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(&secret) }
    }

    /// The public key devices pin.
    pub fn public_key(&self) -> PublicKey {
        self.key.verifying_key().to_bytes()
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = RelayIdentity::load_or_create(dir.path()).unwrap();
        let b = RelayIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        std::fs::write(dir.path().join("relay.key"), b"short").unwrap();
        assert!(matches!(
            RelayIdentity::load_or_create(dir.path()),
            Err(IdentityError::Corrupt(_))
        ));
    }
}
