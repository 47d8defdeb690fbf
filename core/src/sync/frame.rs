//! Frames: how sync messages cross a byte stream.
//!
//! `[length: u32 big-endian][version: u8][body: postcard (sequence number, message)]`, where
//! `length` counts the version byte and the body. Sequence numbers count frames per direction
//! from 0, so a lost, duplicated or reordered frame is detected, never applied. The length is checked against [`MAX_FRAME`] before a single byte of the
//! body is buffered, and the buffer grows only as bytes arrive: a peer claiming a 4 GiB frame
//! costs us nothing but its four bytes.
//!
//! Owns the wire format. Knows nothing of sessions, documents or sockets.

use serde::{Deserialize, Serialize};

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
    },
    /// An Automerge sync protocol message for one document.
    Sync {
        /// The document.
        doc: WireDocId,
        /// `sync::Message::encode()` output.
        message: Vec<u8>,
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

/// Encodes a message as one frame, the `seq`-th of its direction.
pub fn encode(seq: u64, message: &Message) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; 5];
    out[4] = FRAME_VERSION;
    let out = postcard::to_extend(&(seq, message), out)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len as u64));
    }
    let mut out = out;
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Decodes one frame body (version byte + body) into its sequence number and message.
pub fn decode_body(frame: &[u8]) -> Result<(u64, Message), FrameError> {
    let (&version, body) = frame.split_first().ok_or(FrameError::Empty)?;
    if version != FRAME_VERSION {
        return Err(FrameError::Version(version));
    }
    let (message, rest) =
        postcard::take_from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!("{} bytes after the message", rest.len())));
    }
    Ok(message)
}

/// Splits a byte stream into frames. Feed it what the transport delivers, in any pieces.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes buffered and not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Adds received bytes and returns every whole message they complete. Stops at the first
    /// bad frame: the session must end then, so nothing after it matters.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<(u64, Message)>, FrameError> {
        let mut out = Vec::new();
        let mut input = bytes;
        loop {
            // Complete the 4-byte length first, and check it before buffering any body.
            if self.buf.len() < 4 {
                let take = (4 - self.buf.len()).min(input.len());
                self.buf.extend_from_slice(&input[..take]);
                input = &input[take..];
                if self.buf.len() < 4 {
                    return Ok(out);
                }
            }
            let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            if len as usize > MAX_FRAME {
                return Err(FrameError::TooLarge(u64::from(len)));
            }
            let need = 4 + len as usize - self.buf.len();
            let take = need.min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if take < need {
                return Ok(out);
            }
            out.push(decode_body(&self.buf[4..])?);
            self.buf.clear();
            if input.is_empty() {
                return Ok(out);
            }
        }
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
            Message::Document { doc: [3; 16], bytes: vec![9; 3000] },
            Message::Sync { doc: [3; 16], message: vec![1, 2, 3] },
            Message::Done { seen: 4 },
            Message::Ack { seen: 5 },
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
        assert!(d.buf.capacity() < 1024 * 1024);
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

        #[test]
        fn mutated_frames_never_panic(i in 0usize..64, bit in 0u8..8, which in 0usize..6) {
            let mut frame = encode(7, &sample()[which]).unwrap();
            let at = i % frame.len();
            frame[at] ^= 1 << bit;
            let _ = FrameDecoder::new().feed(&frame);
        }
    }
}
