//! Identifiers shared by devices and the relay: document, note, member and item ids (16 random
//! bytes) and device keys.
//!
//! Owns parsing and display of every id that crosses the API ("parse, don't validate"). Ids are
//! shown as base58check, like automerge-repo's `automerge:` URLs, so a mistyped id is caught by
//! its checksum instead of silently naming another document. They live here, not in the core,
//! because signed membership (which the relay checks too) is made of them. Knows nothing of
//! storage, and nothing of where seeded test ids come from (the core's `Randomness`, through
//! [`IdSource`]).

use std::{
    fmt,
    str::FromStr,
    sync::atomic::{AtomicU64, Ordering},
};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseIdError {
    /// Not base58check (bad alphabet or checksum).
    #[error("`{0}` is not a valid {1} (bad base58check encoding)")]
    Encoding(String, &'static str),
    /// Decoded to the wrong number of bytes.
    #[error("`{0}` is not a valid {1} (expected {2} bytes)")]
    Length(String, &'static str, usize),
}

/// Fills `N` bytes from the OS random source.
///
/// If the OS source fails (it does not on the platforms we ship to), ids fall back to a hash
/// of time, a process-wide counter and the process id: still unique, which is all an id needs.
/// Secret keys never use this path.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if getrandom::fill(&mut buf).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = blake3::Hasher::new();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        hasher.update(&nanos.to_le_bytes());
        hasher.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        hasher.update(&std::process::id().to_le_bytes());
        hasher.finalize_xof().fill(&mut buf);
    }
    buf
}

/// Where fresh ids come from when not from the OS: the core's seeded test streams.
pub trait IdSource {
    /// Bytes for a fresh 16-byte id.
    fn id16(&self) -> [u8; 16];
}

macro_rules! id16 {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 16]);

        impl $name {
            /// A fresh random id (from the OS random source).
            pub fn random() -> Self {
                Self(random_bytes())
            }
            /// A fresh id from `source` (seeded in deterministic tests).
            pub fn random_from(source: &impl IdSource) -> Self {
                Self(source.id16())
            }
            /// The id from its 16 bytes.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }
            /// The id from a byte slice, if it is 16 bytes long.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, ParseIdError> {
                <[u8; 16]>::try_from(bytes)
                    .map(Self)
                    .map_err(|_| ParseIdError::Length(hex::encode(bytes), $what, 16))
            }
            /// The id's bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&bs58::encode(&self.0).with_check().into_string())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bytes = bs58::decode(s.trim())
                    .with_check(None)
                    .into_vec()
                    .map_err(|_| ParseIdError::Encoding(s.to_string(), $what))?;
                <[u8; 16]>::try_from(bytes.as_slice())
                    .map(Self)
                    .map_err(|_| ParseIdError::Length(s.to_string(), $what, 16))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

id16!(
    /// A document: one case (with its notes), learning point, meeting or network.
    DocId,
    "document id"
);
id16!(
    /// A note inside a case document.
    NoteId,
    "note id"
);
id16!(
    /// A member of a network: a person, who may use several devices.
    MemberId,
    "member id"
);
id16!(
    /// An item inside a document: an agreement, opgave, turning point, actor, source, perspective.
    ItemId,
    "item id"
);

/// A device's Ed25519 public key: its identity, and the Automerge actor id it writes with.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey([u8; 32]);

impl DeviceKey {
    /// The key from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// The key from a byte slice, if it is 32 bytes long (e.g. an Automerge actor id).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The first characters of the key, enough to tell devices apart on a screen.
    pub fn short(&self) -> String {
        self.to_string().chars().take(8).collect()
    }
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(&self.0).with_check().into_string())
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey({})", self)
    }
}

impl FromStr for DeviceKey {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = bs58::decode(s.trim())
            .with_check(None)
            .into_vec()
            .map_err(|_| ParseIdError::Encoding(s.to_string(), "device key"))?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Self)
            .map_err(|_| ParseIdError::Length(s.to_string(), "device key", 32))
    }
}

impl serde::Serialize for DeviceKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_typos() {
        let id = DocId::random();
        let s = id.to_string();
        assert_eq!(s.parse::<DocId>(), Ok(id));
        // Change one character: the checksum must catch it.
        let mut chars: Vec<char> = s.chars().collect();
        chars[3] = if chars[3] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(typo.parse::<DocId>(), Err(ParseIdError::Encoding(..))));
        // A device key is not a document id.
        let key = DeviceKey::from_bytes([7; 32]).to_string();
        assert!(matches!(key.parse::<DocId>(), Err(ParseIdError::Length(..))));
        assert_eq!(key.parse::<DeviceKey>(), Ok(DeviceKey::from_bytes([7; 32])));
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(NoteId::random(), NoteId::random());
    }
}
