//! Identifiers: the ids themselves live in the relay protocol crate (signed membership, which
//! the relay checks too, is made of them) and are re-exported here; this module owns where the
//! device's fresh ids and keys come from.
//!
//! Owns parsing and display of every id that crosses the API ("parse, don't validate"). Ids are
//! shown as base58check, like automerge-repo's `automerge:` URLs, so a mistyped id is caught by
//! its checksum instead of silently naming another document. Knows nothing of storage.
//!
//! Fresh ids come from a [`Randomness`]: the OS random source, or in deterministic tests a
//! seeded stream, so that a simulation replays byte for byte.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

pub use nabij_relay_proto::ids::{
    DeviceKey, DocId, IdSource, ItemId, MemberId, NoteId, ParseIdError, random_bytes,
};

/// Where a device's fresh ids (documents, notes, items, its member id) and, at the first open
/// of its store, its secret key come from.
///
/// [`Randomness::os`] (the default) is the OS random source: what every app must use, since the
/// device key is a secret. [`Randomness::deterministic_for_tests`] is a seeded stream, so that
/// a simulation replays byte for byte; a device opened with it has a *predictable secret key*
/// and must never hold real data.
///
/// Clones share one stream. Reopening a store with a fresh seeded source of the same seed
/// would hand out the ids of the first run again (and collide with them), so a test keeps one
/// instance per device and clones it for every open.
#[derive(Clone, Default)]
pub struct Randomness(Source);

#[derive(Clone, Default)]
enum Source {
    #[default]
    Os,
    Seeded {
        seed: u64,
        next: Arc<AtomicU64>,
    },
}

impl Randomness {
    /// The OS random source: cryptographically secure. The default.
    pub fn os() -> Self {
        Self(Source::Os)
    }

    /// A deterministic stream from `seed`, for tests and simulations only: two sources with
    /// the same seed, asked in the same order, give the same ids and the same device key.
    /// Never use it for a real device: anyone who knows the seed knows the device's secret key.
    pub fn deterministic_for_tests(seed: u64) -> Self {
        Self(Source::Seeded { seed, next: Arc::new(AtomicU64::new(0)) })
    }

    /// Bytes for a fresh id: never fails (see [`random_bytes`] for the OS fallback).
    pub(crate) fn id_bytes<const N: usize>(&self) -> [u8; N] {
        match &self.0 {
            Source::Os => random_bytes(),
            Source::Seeded { seed, next } => {
                let mut buf = [0u8; N];
                seeded_draw(*seed, next, b"id", &mut buf);
                buf
            }
        }
    }

    /// A new device secret: from the OS source, which must not fail (there is no weaker
    /// fallback for a secret), or from the seeded test stream.
    pub(crate) fn secret_bytes(&self) -> Result<[u8; 32], getrandom::Error> {
        self.key_bytes(b"device secret")
    }

    /// Bytes for a key or nonce (`purpose` separates the seeded draws): the OS source, which
    /// must not fail, or the seeded test stream.
    pub(crate) fn key_bytes<const N: usize>(
        &self,
        purpose: &[u8],
    ) -> Result<[u8; N], getrandom::Error> {
        let mut buf = [0u8; N];
        match &self.0 {
            Source::Os => getrandom::fill(&mut buf)?,
            Source::Seeded { seed, next } => seeded_draw(*seed, next, purpose, &mut buf),
        }
        Ok(buf)
    }
}

/// The next draw of a seeded stream: blake3 in key-derivation mode over (seed, purpose, draw
/// number), so each draw depends only on the seed and on how many draws came before it.
fn seeded_draw(seed: u64, next: &AtomicU64, purpose: &[u8], buf: &mut [u8]) {
    let n = next.fetch_add(1, Ordering::Relaxed);
    let mut hasher = blake3::Hasher::new_derive_key("nabij deterministic test ids v1");
    hasher.update(&seed.to_le_bytes());
    hasher.update(&(purpose.len() as u64).to_le_bytes());
    hasher.update(purpose);
    hasher.update(&n.to_le_bytes());
    hasher.finalize_xof().fill(buf);
}

impl fmt::Debug for Randomness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Os => f.write_str("Randomness::Os"),
            Source::Seeded { seed, .. } => write!(f, "Randomness::DeterministicForTests({seed})"),
        }
    }
}

impl IdSource for Randomness {
    fn id16(&self) -> [u8; 16] {
        self.id_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_differ() {
        assert_ne!(NoteId::random(), NoteId::random());
        let os = Randomness::default();
        assert_ne!(NoteId::random_from(&os), NoteId::random_from(&os));
    }

    #[test]
    fn seeded_ids_replay_and_clones_share_the_stream() {
        let (a, b) =
            (Randomness::deterministic_for_tests(7), Randomness::deterministic_for_tests(7));
        let first: Vec<DocId> = (0..3).map(|_| DocId::random_from(&a)).collect();
        let again: Vec<DocId> = (0..3).map(|_| DocId::random_from(&b)).collect();
        assert_eq!(first, again);
        assert_ne!(first[0], first[1]);
        // A clone continues the stream rather than repeating it (a reopened store).
        assert!(!first.contains(&DocId::random_from(&a.clone())));
        assert_ne!(
            DocId::random_from(&Randomness::deterministic_for_tests(8)),
            DocId::random_from(&Randomness::deterministic_for_tests(7))
        );
    }
}
