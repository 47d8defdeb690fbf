//! The relay protocol's messages and how they cross a QUIC stream.
//!
//! A device opens one bidirectional stream and sends [`Request`]s; the relay answers each with
//! exactly one [`Response`], in order, so a device may pipeline requests without ids. A frame
//! is `[length: u32 big-endian][postcard body]`; the length is checked against the reader's
//! limit before any of the body is buffered.
//!
//! Owns the wire format. Knows nothing of storage, sockets or keys.

use serde::{Deserialize, Serialize};

use crate::{BlobId, NetworkId, RelayDocId, roster::SignedRoster};

/// ALPN of the relay protocol, version 1 (a device cannot talk to a relay by mistake, nor
/// a relay to a device).
pub const ALPN: &[u8] = b"nabij-relay/1";

/// Default largest frame, in bytes: a blob of one large case plus framing.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// Default largest blob: a frame's worth, less room for the request around it.
pub const DEFAULT_MAX_BLOB: usize = DEFAULT_MAX_FRAME - 64 * 1024;

/// The BLAKE3 id of a blob's bytes.
pub fn blob_id(bytes: &[u8]) -> BlobId {
    *blake3::hash(bytes).as_bytes()
}

/// What a device asks of the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The rosters that list the asking device (how a new device learns its networks and
    /// finds its sealed network keys).
    Networks,
    /// Registers or replaces a network's roster.
    Register {
        /// Signed by a device the current roster lists (or, for a new network, by itself).
        roster: SignedRoster,
    },
    /// Stores one blob; answered by [`Response::Stored`] once it is durable.
    Push {
        /// The network.
        network: NetworkId,
        /// The document, as the relay knows it.
        doc: RelayDocId,
        /// Ciphertext.
        blob: Vec<u8>,
    },
    /// Everything of a network stored after `after`, oldest first.
    Pull {
        /// The network.
        network: NetworkId,
        /// The cursor: the last sequence number the device has.
        after: u64,
        /// Most bytes of blobs in the answer (at least one blob is always sent).
        max_bytes: u32,
    },
}

/// A stored blob as pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PulledBlob {
    /// Its sequence number in the relay (the cursor after it).
    pub seq: u64,
    /// The document, as the relay knows it.
    pub doc: RelayDocId,
    /// Ciphertext.
    pub bytes: Vec<u8>,
}

/// The relay's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Rosters listing the asking device.
    Networks {
        /// Signed rosters, as registered.
        rosters: Vec<SignedRoster>,
    },
    /// The roster is now the network's.
    Registered {
        /// The network.
        network: NetworkId,
        /// Its time of issue.
        issued_at: i64,
    },
    /// The blob is durable (or was already stored).
    Stored {
        /// The network.
        network: NetworkId,
        /// The blob's id, as the relay computed it.
        id: BlobId,
        /// Its sequence number.
        seq: u64,
    },
    /// Blobs after the cursor.
    Blobs {
        /// The network.
        network: NetworkId,
        /// Oldest first.
        blobs: Vec<PulledBlob>,
        /// The cursor after these blobs.
        next: u64,
        /// Whether more blobs follow `next`.
        more: bool,
    },
    /// The request was refused; the connection stays usable unless the refusal says so.
    Refused {
        /// Why.
        reason: Refusal,
        /// For logs and people.
        detail: String,
    },
}

/// Why the relay refused a request. Stable: devices match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The device is not on the network's roster (or the network is unknown).
    #[error("this device is not on the network's roster")]
    NotOnRoster,
    /// A roster not newer than the registered one.
    #[error("the relay holds a newer roster")]
    StaleRoster,
    /// A roster whose signature or contents do not check.
    #[error("the roster is not valid")]
    BadRoster,
    /// The network's storage quota is used up.
    #[error("the network's quota is used up")]
    QuotaExceeded,
    /// A frame or blob over the relay's limit.
    #[error("too large")]
    TooLarge,
    /// A frame that is not a request.
    #[error("malformed request")]
    Malformed,
    /// The relay failed to store or read; try again later.
    #[error("the relay could not complete the request")]
    Unavailable,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length prefix exceeds the limit.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Claimed length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The body does not decode.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes one message as a frame, refusing bodies over `max`.
pub fn encode<T: Serialize>(message: &T, max: usize) -> Result<Vec<u8>, WireError> {
    let out = postcard::to_extend(message, vec![0u8; 4])
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    let len = out.len() - 4;
    if len > max {
        return Err(WireError::TooLarge { len: len as u64, max });
    }
    let mut out = out;
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Decodes one frame body.
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, WireError> {
    let (message, rest) =
        postcard::take_from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!("{} bytes after the message", rest.len())));
    }
    Ok(message)
}

/// Splits a byte stream into frame bodies, in any pieces, never buffering past the limit.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    max: usize,
}

impl FrameReader {
    /// A reader accepting frames of up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { buf: Vec::new(), max }
    }

    /// Bytes buffered and not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Adds received bytes and returns the bodies of every frame they complete, and the error
    /// that stopped it, if one did: an oversized frame, after which the stream cannot be
    /// resynchronised (the frames before it are still returned, to be answered).
    pub fn feed(&mut self, bytes: &[u8]) -> (Vec<Vec<u8>>, Option<WireError>) {
        let mut out = Vec::new();
        let mut input = bytes;
        loop {
            if self.buf.len() < 4 {
                let take = (4 - self.buf.len()).min(input.len());
                self.buf.extend_from_slice(&input[..take]);
                input = &input[take..];
                if self.buf.len() < 4 {
                    return (out, None);
                }
            }
            let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            if len as usize > self.max {
                return (out, Some(WireError::TooLarge { len: u64::from(len), max: self.max }));
            }
            let need = 4 + len as usize - self.buf.len();
            let take = need.min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if take < need {
                return (out, None);
            }
            out.push(self.buf.split_off(4));
            self.buf.clear();
            if input.is_empty() {
                return (out, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> Vec<Request> {
        vec![
            Request::Networks,
            Request::Push { network: [1; 32], doc: [2; 32], blob: vec![3; 5000] },
            Request::Pull { network: [1; 32], after: 77, max_bytes: 1 << 20 },
        ]
    }

    #[test]
    fn frames_round_trip_in_any_pieces() {
        let stream: Vec<u8> =
            sample().iter().flat_map(|m| encode(m, DEFAULT_MAX_FRAME).unwrap()).collect();
        for piece in [1, 5, 333, stream.len()] {
            let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                let (bodies, error) = r.feed(chunk);
                assert_eq!(error, None);
                for body in bodies {
                    got.push(decode::<Request>(&body).unwrap());
                }
            }
            assert_eq!(got, sample(), "pieces of {piece}");
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_buffering() {
        let mut r = FrameReader::new(1024);
        let ok = encode(&Request::Networks, 1024).unwrap();
        let (bodies, e) = r.feed(&[&ok[..], &[0, 0, 4, 1, 9, 9]].concat());
        assert_eq!(bodies.len(), 1, "the good frame before the bad one is kept");
        assert_eq!(e, Some(WireError::TooLarge { len: 1025, max: 1024 }));
        assert!(r.buffered() <= 4);
        let big = Request::Push { network: [0; 32], doc: [0; 32], blob: vec![0; 2000] };
        assert!(matches!(encode(&big, 1024), Err(WireError::TooLarge { .. })));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut r = FrameReader::new(4096);
            let (bodies, _) = r.feed(&bytes);
            for b in bodies {
                let _ = decode::<Request>(&b);
                let _ = decode::<Response>(&b);
            }
        }
    }
}
