//! Frames: how sync messages cross a byte stream.
//!
//! `[length: u32 big-endian][version: u8][body: postcard (sequence number, message)]`, where
//! `length` counts the version byte and the body. Sequence numbers count frames per direction
//! from 0, so a lost, duplicated or reordered frame is detected, never applied. The length is
//! checked against [`MAX_FRAME`] before a single byte of the body is buffered, and the buffer
//! grows only as bytes arrive: a peer claiming a 4 GiB frame costs us nothing but its four
//! bytes.
//!
//! The length prefix is read by the relay protocol's [`LengthPrefixReader`] (one reader, one
//! size check, for both protocols); this module owns what is inside a frame: the version byte,
//! the sequence number and the message. Knows nothing of sessions, documents or sockets.

use nabij_relay_proto::wire::{
    self, FrameTooLarge, LENGTH_PREFIX, LengthPrefixReader, WireError, length_prefix,
};
use serde::{Deserialize, Serialize};

use crate::authorship::SignedHead;

/// The frame format version this build speaks.
pub const FRAME_VERSION: u8 = 1;

/// Largest frame accepted or sent (version byte + body), in bytes.
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

/// A 16-byte document id on the wire.
pub type WireDocId = [u8; 16];
/// A 32-byte Automerge change hash on the wire.
pub type WireHash = [u8; 32];

/// One sync message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// First message each way: protocol version and the sender's device key.
    Hello {
        /// Sync protocol version.
        protocol: u16,
        /// The sender's Ed25519 device key.
        device: [u8; 32],
    },
    /// One digest over all (document id, heads) of a network both sides share.
    Digest {
        /// The network.
        network: WireDocId,
        /// BLAKE3 over the sorted (id, sorted heads) list.
        digest: [u8; 32],
    },
    /// The per-document list of a network, sent when digests differ.
    Inventory {
        /// The network.
        network: WireDocId,
        /// Every document of the network the sender holds, with its heads.
        docs: Vec<(WireDocId, Vec<WireHash>)>,
    },
    /// A whole document, for a peer that lacks it entirely (cheaper than change by change).
    Document {
        /// The document.
        doc: WireDocId,
        /// `save()` output.
        bytes: Vec<u8>,
        /// The signatures that cover its changes, one per device that wrote it.
        signed: Vec<SignedHead>,
    },
    /// An Automerge sync protocol message for one document.
    Sync {
        /// The document.
        doc: WireDocId,
        /// `sync::Message::encode()` output.
        message: Vec<u8>,
        /// With changes: the signatures that cover them.
        signed: Vec<SignedHead>,
    },
    /// The receiver was removed from a network the sender is in: the signed removals, and
    /// nothing else about it. The receiver checks them and wipes the network.
    Removed {
        /// The network.
        network: WireDocId,
        /// Signed membership operations that remove devices or members.
        ops: Vec<Vec<u8>>,
    },
    /// A network's own document did not merge between the two sides (refused by one of
    /// them): the sender's signed membership operations of it, so that the two agree on the
    /// membership (removals above all) even while the document does not merge. The receiver
    /// checks them as any operations it is handed.
    Roster {
        /// The network.
        network: WireDocId,
        /// Signed membership operations, as signed.
        ops: Vec<Vec<u8>>,
    },
    /// The sender has nothing more to send until something changes, having handled the
    /// first `seen` frames of the receiver (so a `Done` crossing a later frame is not taken
    /// as an answer to it).
    Done {
        /// Frames received from the peer when this was sent.
        seen: u64,
    },
    /// The sender handled the first `seen` frames of the receiver and answered what it had
    /// to answer; it is not done (documents wait for the window). Releases the receiver's
    /// window for documents it sent sync messages for that needed no answer.
    Ack {
        /// Frames received from the peer when this was sent.
        seen: u64,
    },
    /// The sender refused the receiver's data for `doc` (it did not pass the sender's checks:
    /// nothing of it was stored) and will exchange nothing more about `doc` in this session.
    /// Only the id the receiver itself named: why is the sender's to know (its log, its app),
    /// and says nothing to the peer about what the sender holds.
    // Last: variants are numbered on the wire, so new ones go at the end.
    Refused {
        /// The document the receiver sent.
        doc: WireDocId,
    },
}

/// Why bytes are not a valid frame. Any of these ends the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix exceeds [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(u64),
    /// A frame with no version byte.
    #[error("empty frame")]
    Empty,
    /// A frame version this build does not speak.
    #[error("unsupported frame version {0}")]
    Version(u8),
    /// The body does not decode as a message.
    #[error("malformed frame body: {0}")]
    Malformed(String),
}

impl From<FrameTooLarge> for FrameError {
    fn from(e: FrameTooLarge) -> Self {
        FrameError::TooLarge(e.len)
    }
}

/// Encodes a message as one frame, the `seq`-th of its direction.
pub fn encode(seq: u64, message: &Message) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; LENGTH_PREFIX];
    out.push(FRAME_VERSION);
    let mut out = postcard::to_extend(&(seq, message), out)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    let prefix = length_prefix(out.len() - LENGTH_PREFIX, MAX_FRAME)?;
    out[..LENGTH_PREFIX].copy_from_slice(&prefix);
    Ok(out)
}

/// Decodes one frame body (version byte + body) into its sequence number and message.
pub fn decode_body(frame: &[u8]) -> Result<(u64, Message), FrameError> {
    let (&version, body) = frame.split_first().ok_or(FrameError::Empty)?;
    if version != FRAME_VERSION {
        return Err(FrameError::Version(version));
    }
    // The relay's body decoding: one postcard value that fills the body exactly.
    wire::decode(body).map_err(|e| match e {
        WireError::Malformed(why) => FrameError::Malformed(why),
        other => FrameError::Malformed(other.to_string()),
    })
}

/// Splits a byte stream into frames. Feed it what the transport delivers, in any pieces.
#[derive(Debug)]
pub struct FrameDecoder {
    /// The length prefix and buffering; frames of at most [`MAX_FRAME`].
    frames: LengthPrefixReader,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self { frames: LengthPrefixReader::new(MAX_FRAME) }
    }

    /// Bytes buffered and not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.frames.buffered()
    }

    /// Adds received bytes and returns every whole message they complete. Stops at the first
    /// bad frame: the session must end then, so nothing after it matters.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<(u64, Message)>, FrameError> {
        let mut out = Vec::new();
        let mut input = bytes;
        while let Some(frame) = self.frames.next_frame(&mut input)? {
            out.push(decode_body(frame)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> Vec<Message> {
        vec![
            Message::Hello { protocol: 1, device: [7; 32] },
            Message::Digest { network: [1; 16], digest: [2; 32] },
            Message::Inventory { network: [1; 16], docs: vec![([3; 16], vec![[4; 32], [5; 32]])] },
            Message::Document { doc: [3; 16], bytes: vec![9; 3000], signed: Vec::new() },
            Message::Sync { doc: [3; 16], message: vec![1, 2, 3], signed: Vec::new() },
            Message::Done { seen: 4 },
            Message::Ack { seen: 5 },
            Message::Refused { doc: [3; 16] },
        ]
    }

    #[test]
    fn frames_round_trip_in_any_pieces() {
        let stream: Vec<u8> =
            sample().iter().enumerate().flat_map(|(i, m)| encode(i as u64, m).unwrap()).collect();
        for piece in [1, 3, 7, 64, stream.len()] {
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                got.extend(d.feed(chunk).unwrap());
            }
            let expected: Vec<(u64, Message)> =
                sample().into_iter().enumerate().map(|(i, m)| (i as u64, m)).collect();
            assert_eq!(got, expected, "pieces of {piece}");
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn a_4_gib_claim_is_refused_before_buffering() {
        let mut d = FrameDecoder::new();
        let e = d.feed(&[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]);
        assert_eq!(e, Err(FrameError::TooLarge(u64::from(u32::MAX))));
        assert!(d.buffered() <= 4, "nothing of the body was buffered");
        assert!(d.frames.capacity() < 1024 * 1024);
    }

    #[test]
    fn bad_versions_and_bodies_are_typed() {
        let mut frame = encode(0, &Message::Done { seen: 0 }).unwrap();
        frame[4] = 9;
        assert_eq!(FrameDecoder::new().feed(&frame), Err(FrameError::Version(9)));
        assert_eq!(FrameDecoder::new().feed(&[0, 0, 0, 0]), Err(FrameError::Empty));
        let mut frame = encode(0, &Message::Done { seen: 0 }).unwrap();
        frame.push(0);
        frame[3] += 1;
        assert!(matches!(FrameDecoder::new().feed(&frame), Err(FrameError::Malformed(_))));
        assert!(matches!(
            FrameDecoder::new().feed(&[0, 0, 0, 2, 1, 200]),
            Err(FrameError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut d = FrameDecoder::new();
            let _ = d.feed(&bytes);
        }

        /// The meeting stream over the shared reader: the same messages, and nothing held
        /// beyond the frame under way, wherever the transport cuts it.
        #[test]
        fn messages_are_the_same_for_any_cuts(
            cuts in proptest::collection::vec(any::<usize>(), 0..16),
        ) {
            let frames: Vec<Vec<u8>> =
                sample().iter().enumerate().map(|(i, m)| encode(i as u64, m).unwrap()).collect();
            let stream = frames.concat();
            // Where each frame starts: what is buffered is what came since the last start.
            let starts: Vec<usize> = frames
                .iter()
                .scan(0, |at, f| {
                    let start = *at;
                    *at += f.len();
                    Some(start)
                })
                .collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            at.extend([0, stream.len()]);
            at.sort_unstable();
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            for w in at.windows(2) {
                got.extend(d.feed(&stream[w[0]..w[1]]).unwrap());
                let start = starts.iter().rev().find(|s| **s <= w[1]).copied().unwrap_or(0);
                let whole = w[1] == stream.len() || starts.contains(&w[1]);
                prop_assert_eq!(d.buffered(), if whole { 0 } else { w[1] - start });
                prop_assert!(d.frames.capacity() <= 4 + MAX_FRAME);
            }
            let expected: Vec<(u64, Message)> =
                sample().into_iter().enumerate().map(|(i, m)| (i as u64, m)).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(d.buffered(), 0);
        }

        #[test]
        fn mutated_frames_never_panic(i in 0usize..64, bit in 0u8..8, which in 0usize..8) {
            let mut frame = encode(7, &sample()[which]).unwrap();
            let at = i % frame.len();
            frame[at] ^= 1 << bit;
            let _ = FrameDecoder::new().feed(&frame);
        }
    }
}
