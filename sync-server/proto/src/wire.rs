//! The relay protocol's messages and how they cross a QUIC stream.
//!
//! A device opens one bidirectional stream and sends [`Request`]s; the relay answers each with
//! exactly one [`Response`], in order, so a device may pipeline requests without ids. A frame
//! is `[length: u32 big-endian][postcard body]`; the length is checked against the reader's
//! limit before any of the body is buffered.
//!
//! The length-prefixed framing itself ([`LengthPrefixReader`], [`length_prefix`]) is also what
//! the devices' meeting protocol reads and writes, with its own version byte and sequence
//! numbers inside the frame: one reader, so the size check before buffering exists once.
//!
//! Owns the wire format. Knows nothing of storage, sockets or keys.

use serde::{Deserialize, Serialize};

use crate::{BlobId, NetworkId, RelayDocId, roster::SignedRoster};

/// ALPN of the relay protocol, version 2 (rosters carry membership; a device cannot talk to a relay by mistake, nor
/// a relay to a device).
pub const ALPN: &[u8] = b"nabij-relay/2";

/// Default largest frame, in bytes: a blob of one large case plus framing.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// Default largest blob: a frame's worth, less room for the request around it.
pub const DEFAULT_MAX_BLOB: usize = DEFAULT_MAX_FRAME - 64 * 1024;

/// The BLAKE3 id of a blob's bytes.
pub fn blob_id(bytes: &[u8]) -> BlobId {
    *blake3::hash(bytes).as_bytes()
}

/// The id a relay stores the deletion marker of `doc` under (a derived key, not a hash of
/// bytes: no blob's id is one).
pub fn deletion_marker_id(doc: &RelayDocId) -> BlobId {
    let mut h = blake3::Hasher::new_derive_key("nabij relay deletion marker v1");
    h.update(doc);
    *h.finalize().as_bytes()
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
    /// Deletes every blob of one document of a network (it was erased, or unshared from the
    /// network); answered by [`Response::Deleted`] once the deletion is durable. If any blob
    /// went, the relay puts a deletion marker in the network's sequence (a [`PulledBlob`]
    /// with no bytes): devices that pushed the document learn the relay no longer holds it.
    Delete {
        /// The network.
        network: NetworkId,
        /// The document, as the relay knows it.
        doc: RelayDocId,
    },
}

/// A stored blob as pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PulledBlob {
    /// Its sequence number in the relay (the cursor after it).
    pub seq: u64,
    /// The document, as the relay knows it.
    pub doc: RelayDocId,
    /// Ciphertext; empty for a deletion marker (the document's earlier blobs were deleted: a
    /// pushed blob is never empty).
    pub bytes: Vec<u8>,
}

impl PulledBlob {
    /// Whether this is a deletion marker rather than a blob.
    pub fn is_deletion(&self) -> bool {
        self.bytes.is_empty()
    }
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
    /// The document's blobs are deleted, durably.
    Deleted {
        /// The network.
        network: NetworkId,
        /// The document.
        doc: RelayDocId,
        /// How many blobs went (0: the relay held none).
        blobs: u64,
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
    let mut out = postcard::to_extend(message, vec![0u8; LENGTH_PREFIX])
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    let prefix = length_prefix(out.len() - LENGTH_PREFIX, max)?;
    out[..LENGTH_PREFIX].copy_from_slice(&prefix);
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
///
/// The relay protocol's reader: a [`LengthPrefixReader`] that hands out owned bodies and
/// reports an oversized frame as a [`WireError`].
#[derive(Debug)]
pub struct FrameReader {
    frames: LengthPrefixReader,
}

impl FrameReader {
    /// A reader accepting frames of up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { frames: LengthPrefixReader::new(max) }
    }

    /// Bytes buffered and not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.frames.buffered()
    }

    /// Adds received bytes and returns the bodies of every frame they complete, and the error
    /// that stopped it, if one did: an oversized frame, after which the stream cannot be
    /// resynchronised (the frames before it are still returned, to be answered).
    pub fn feed(&mut self, bytes: &[u8]) -> (Vec<Vec<u8>>, Option<WireError>) {
        let mut out = Vec::new();
        let mut input = bytes;
        loop {
            match self.frames.next_frame(&mut input) {
                Ok(Some(body)) => out.push(body.to_vec()),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.into())),
            }
        }
    }
}

// -------------------------------------------------------------------------------------------
// Length-prefixed framing, shared by the relay protocol (above) and the devices' meeting
// protocol (`nabij_core::sync::frame`, which puts a version byte and a sequence number inside
// the frame). It lives here because this is the one crate both the core and the relay link.

/// Bytes of the length prefix in front of every frame: a `u32`, big-endian, counting the bytes
/// that follow it.
pub const LENGTH_PREFIX: usize = 4;

/// A frame longer than the limit, refused by its length prefix alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame of {len} bytes exceeds the {max}-byte limit")]
pub struct FrameTooLarge {
    /// The length claimed (reading) or needed (writing).
    pub len: u64,
    /// The limit.
    pub max: usize,
}

impl From<FrameTooLarge> for WireError {
    fn from(e: FrameTooLarge) -> Self {
        WireError::TooLarge { len: e.len, max: e.max }
    }
}

/// The length prefix of a frame whose body is `len` bytes, refusing a body over `max` (or
/// over what a `u32` can say, so a length is never silently truncated).
pub fn length_prefix(len: usize, max: usize) -> Result<[u8; LENGTH_PREFIX], FrameTooLarge> {
    let too_large = FrameTooLarge { len: len as u64, max };
    if len > max {
        return Err(too_large);
    }
    Ok(u32::try_from(len).map_err(|_| too_large)?.to_be_bytes())
}

/// Reads length-prefixed frames from a byte stream delivered in any pieces.
///
/// Guarantees, which the fuzz targets and property tests check:
/// - a length prefix over the limit is refused ([`FrameTooLarge`]) before a single byte of its
///   body is buffered, with only the prefix itself held; the stream cannot be resynchronised
///   after that, so the same error comes back for as long as the reader is fed;
/// - the buffer grows only as bytes arrive, and never past the frame under way: at most
///   `max + LENGTH_PREFIX` bytes are ever buffered or allocated, whatever the peer claims;
/// - the frames read do not depend on how the stream was cut into pieces.
///
/// It knows nothing of what is inside a frame: the caller decodes the bodies it hands out.
#[derive(Debug)]
pub struct LengthPrefixReader {
    /// The prefix and the body received so far of the frame under way.
    buf: Vec<u8>,
    /// Largest body accepted.
    max: usize,
    /// `buf` holds a whole frame already handed out, to be dropped at the next read (it is
    /// kept until then because the caller borrows the body from it).
    handed_out: bool,
}

impl LengthPrefixReader {
    /// A reader accepting bodies of up to `max` bytes (capped so that a frame's size,
    /// prefix included, always fits a `usize`).
    pub fn new(max: usize) -> Self {
        Self { buf: Vec::new(), max: max.min(usize::MAX - LENGTH_PREFIX), handed_out: false }
    }

    /// Largest body accepted.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes buffered and not yet a whole frame.
    pub fn buffered(&self) -> usize {
        if self.handed_out { 0 } else { self.buf.len() }
    }

    /// Bytes allocated for buffering, kept between frames so that a stream of frames does not
    /// allocate for each (the reader never asks for more than `max + LENGTH_PREFIX`).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Takes bytes from the front of `input` until one frame is whole and returns its body, or
    /// `None` once `input` is used up with no frame whole (what was taken stays buffered for
    /// the next call). Call it until `None` or an error; `input` keeps what was not taken.
    pub fn next_frame(&mut self, input: &mut &[u8]) -> Result<Option<&[u8]>, FrameTooLarge> {
        if self.handed_out {
            self.buf.clear();
            self.handed_out = false;
        }
        // The prefix first, checked before anything of the body is taken.
        self.fill(input, LENGTH_PREFIX);
        let Some(prefix) = self.buf.first_chunk::<LENGTH_PREFIX>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix);
        let body = match usize::try_from(len) {
            Ok(body) if body <= self.max => body,
            _ => return Err(FrameTooLarge { len: u64::from(len), max: self.max }),
        };
        // Cannot overflow: `max` leaves room for the prefix.
        let end = LENGTH_PREFIX + body;
        self.fill(input, end);
        if self.buf.len() < end {
            return Ok(None);
        }
        self.handed_out = true;
        // In bounds: the buffer holds `end >= LENGTH_PREFIX` bytes.
        Ok(Some(&self.buf[LENGTH_PREFIX..]))
    }

    /// Moves bytes from `input` into the buffer until it holds `end` bytes or `input` is empty.
    fn fill(&mut self, input: &mut &[u8], end: usize) {
        let take = end.saturating_sub(self.buf.len()).min(input.len());
        if take == 0 {
            return;
        }
        let (now, rest) = input.split_at(take);
        let needed = self.buf.len() + take;
        if needed > self.buf.capacity() {
            // Double as `Vec` would, so many small pieces cost few reallocations, but never
            // past the end of the frame: a frame of the limit's size costs the limit, not twice.
            let target = self.buf.capacity().saturating_mul(2).max(needed).min(end);
            self.buf.reserve_exact(target.saturating_sub(self.buf.len()));
        }
        self.buf.extend_from_slice(now);
        *input = rest;
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

    #[test]
    fn length_prefixes_refuse_what_the_limit_or_a_u32_cannot_hold() {
        assert_eq!(length_prefix(5, 5), Ok([0, 0, 0, 5]));
        assert_eq!(length_prefix(6, 5), Err(FrameTooLarge { len: 6, max: 5 }));
        let beyond_u32 = u32::MAX as usize + 1;
        if let Some(max) = beyond_u32.checked_add(1) {
            assert_eq!(
                length_prefix(beyond_u32, max),
                Err(FrameTooLarge { len: beyond_u32 as u64, max })
            );
        }
    }

    #[test]
    fn an_oversized_prefix_stays_refused_and_holds_only_its_four_bytes() {
        let mut r = LengthPrefixReader::new(16);
        let mut input: &[u8] = &[0, 0, 0, 3, 7, 8, 9, 0, 0, 0, 17, 1, 2, 3];
        assert_eq!(r.next_frame(&mut input), Ok(Some(&[7u8, 8, 9][..])));
        assert_eq!(r.next_frame(&mut input), Err(FrameTooLarge { len: 17, max: 16 }));
        assert_eq!(input, &[1, 2, 3], "nothing of the body was taken");
        assert_eq!(r.buffered(), LENGTH_PREFIX);
        // Fed again, with or without bytes: the same error, nothing more buffered.
        assert_eq!(r.next_frame(&mut &[4u8, 5][..]), Err(FrameTooLarge { len: 17, max: 16 }));
        assert_eq!(r.next_frame(&mut &[][..]), Err(FrameTooLarge { len: 17, max: 16 }));
        assert_eq!(r.buffered(), LENGTH_PREFIX);
        assert!(r.capacity() <= 16 + LENGTH_PREFIX);
    }

    #[test]
    fn empty_frames_and_empty_input() {
        let mut r = LengthPrefixReader::new(0);
        let mut input: &[u8] = &[0, 0, 0, 0, 0, 0];
        assert_eq!(r.next_frame(&mut input), Ok(Some(&[][..])));
        assert_eq!(r.next_frame(&mut input), Ok(None));
        assert_eq!(r.buffered(), 2);
        assert_eq!(r.next_frame(&mut &[][..]), Ok(None));
        assert_eq!(r.next_frame(&mut &[0u8, 0][..]), Ok(Some(&[][..])));
        assert_eq!(r.next_frame(&mut &[][..]), Ok(None));
        assert_eq!(r.buffered(), 0);
    }

    /// Reads `stream` cut at `cuts` (offsets, any order, any value), checking the buffer after
    /// every step; returns the bodies read and the error that stopped it, if any.
    fn read_in_pieces(
        max: usize,
        stream: &[u8],
        cuts: &[usize],
    ) -> (Vec<Vec<u8>>, Option<FrameTooLarge>) {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        at.extend([0, stream.len()]);
        at.sort_unstable();
        let mut r = LengthPrefixReader::new(max);
        let mut bodies = Vec::new();
        for w in at.windows(2) {
            let mut input = &stream[w[0]..w[1]];
            loop {
                let next = r.next_frame(&mut input).map(|b| b.map(<[u8]>::to_vec));
                assert!(r.buffered() <= max + LENGTH_PREFIX, "buffered {}", r.buffered());
                assert!(r.capacity() <= max + LENGTH_PREFIX, "allocated {}", r.capacity());
                match next {
                    Ok(Some(body)) => {
                        assert!(body.len() <= max);
                        bodies.push(body);
                    }
                    Ok(None) => {
                        assert!(input.is_empty(), "stopped with input left");
                        break;
                    }
                    Err(e) => {
                        assert_eq!(r.buffered(), LENGTH_PREFIX, "only the prefix is held");
                        return (bodies, Some(e));
                    }
                }
            }
        }
        (bodies, None)
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

        /// Well-formed frames (and perhaps an oversized one at the end) read back the same
        /// whatever the cuts, and nothing beyond the frame under way is ever held.
        #[test]
        fn frames_read_the_same_in_any_pieces(
            max in 0usize..600,
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..8),
            oversized in proptest::option::of(1u32..1_000_000),
            cuts in proptest::collection::vec(any::<usize>(), 0..24),
        ) {
            let bodies: Vec<Vec<u8>> = bodies.into_iter().filter(|b| b.len() <= max).collect();
            let mut stream = Vec::new();
            for b in &bodies {
                stream.extend(length_prefix(b.len(), max).expect("within the limit"));
                stream.extend(b);
            }
            let too_large = oversized.map(|extra| {
                let len = max as u64 + u64::from(extra);
                let prefix = u32::try_from(len).unwrap_or(u32::MAX);
                stream.extend(prefix.to_be_bytes());
                stream.extend([0xAB; 64]);
                FrameTooLarge { len: u64::from(prefix), max }
            });
            let whole = read_in_pieces(max, &stream, &[]);
            prop_assert_eq!(&whole, &(bodies, too_large));
            prop_assert_eq!(read_in_pieces(max, &stream, &cuts), whole);
        }

        /// Any bytes at all: the same frames and the same error for any cuts, one byte at a
        /// time included.
        #[test]
        fn any_bytes_read_the_same_in_any_pieces(
            max in 0usize..64,
            stream in proptest::collection::vec(any::<u8>(), 0..512),
            cuts in proptest::collection::vec(any::<usize>(), 0..24),
        ) {
            let whole = read_in_pieces(max, &stream, &[]);
            let bytewise: Vec<usize> = (0..stream.len()).collect();
            prop_assert_eq!(&read_in_pieces(max, &stream, &bytewise), &whole);
            prop_assert_eq!(read_in_pieces(max, &stream, &cuts), whole);
        }
    }
}
