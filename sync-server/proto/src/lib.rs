//! What devices and the Nabij relay say to each other, shared by both sides so neither can
//! drift: the relay's request and response messages and their framing ([`wire`], whose
//! length-prefix reader the devices' meeting protocol uses too), the signed rosters that
//! carry a network's membership to the relay ([`roster`]), the signed membership operations and
//! the one rule that resolves them, which devices and the relay both apply ([`membership`], with
//! the [`ids`] it is made of), and the pinned-key TLS both QUIC endpoints use ([`tls`], feature
//! `tls`).
//!
//! Everything here is about opaque bytes, ids and public keys. It must not link Automerge or
//! know about documents' contents: the relay depends on this crate and is blind by
//! construction (membership operations reach it without names).

pub mod ids;
pub mod membership;
pub mod roster;
#[cfg(feature = "tls")]
pub mod tls;
pub mod wire;

/// A network as the relay knows it (32 bytes, derived by devices; says nothing about them).
pub type NetworkId = [u8; 32];
/// A document as the relay knows it (a keyed hash the relay cannot invert).
pub type RelayDocId = [u8; 32];
/// A blob's id: the BLAKE3 hash of its bytes.
pub type BlobId = [u8; 32];
/// An Ed25519 public key (a device's or the relay's).
pub type PublicKey = [u8; 32];

/// Prefix of a relay key written for people (`nabijrelay1…`).
const RELAY_KEY_PREFIX: &str = "nabijrelay1";

/// Why a relay key string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a relay key (expected nabijrelay1…): {0}")]
pub struct RelayKeyError(String);

/// A relay's public key as devices are given it: `nabijrelay1` and base58 with a checksum,
/// so a mistyped key fails to parse instead of pinning a stranger.
pub fn relay_key_to_string(key: &PublicKey) -> String {
    format!("{RELAY_KEY_PREFIX}{}", bs58::encode(key).with_check().into_string())
}

/// Reads a key written by [`relay_key_to_string`].
pub fn parse_relay_key(text: &str) -> Result<PublicKey, RelayKeyError> {
    let body = text
        .trim()
        .strip_prefix(RELAY_KEY_PREFIX)
        .ok_or_else(|| RelayKeyError("missing prefix".into()))?;
    let bytes =
        bs58::decode(body).with_check(None).into_vec().map_err(|e| RelayKeyError(e.to_string()))?;
    bytes.try_into().map_err(|_| RelayKeyError("not 32 bytes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_keys_round_trip_and_typos_fail() {
        let key = [42u8; 32];
        let text = relay_key_to_string(&key);
        assert_eq!(parse_relay_key(&text), Ok(key));
        let mut typo = text.clone().into_bytes();
        let last = typo.len() - 1;
        typo[last] = if typo[last] == b'2' { b'3' } else { b'2' };
        assert!(parse_relay_key(std::str::from_utf8(&typo).unwrap()).is_err());
        assert!(parse_relay_key("nabij1abc").is_err());
    }
}
