//! Arbitrary bytes, cut at fuzzer-chosen points, into `FrameDecoder::feed`.
//!
//! Checks: no panic; the outcome (messages, then at most one typed error) does not depend on
//! how the stream was cut (but for messages completed in the same `feed` call as an error,
//! which that call drops); nothing is buffered beyond the frame under way, and an oversized
//! length prefix is refused with only its four bytes buffered; every decoded message
//! re-encodes to a frame that decodes back to it, and re-encoding is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nabij_core::sync::frame::{self, FrameDecoder, FrameError, MAX_FRAME, Message};
use nabij_fuzz::pieces;

/// What a stream decodes to: its messages up to the first error, and that error.
#[derive(Debug, PartialEq)]
struct Outcome {
    messages: Vec<(u64, Message)>,
    error: Option<FrameError>,
}

/// A model of the decoder's buffer: `expected[fed]` is how many bytes it holds after the
/// first `fed` bytes of the stream, while no error has occurred (the frame under way only).
fn expected_buffered(stream: &[u8]) -> Vec<usize> {
    let n = stream.len();
    let mut expected = vec![0; n + 1];
    let mut pos = 0;
    while pos < n {
        let Some(p) = stream.get(pos..pos + 4) else {
            (pos..=n).for_each(|f| expected[f] = f - pos);
            break;
        };
        let len = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
        // An oversized prefix ends the stream at its fourth byte.
        let end = if len > MAX_FRAME { pos + 4 } else { pos + 4 + len };
        (pos..end.min(n + 1)).for_each(|f| expected[f] = f - pos);
        if len > MAX_FRAME || end > n {
            break;
        }
        pos = end;
    }
    expected
}

/// Feeds `pieces` in order and checks the buffer after each.
fn run(expected: &[usize], pieces: &[&[u8]]) -> Outcome {
    let mut d = FrameDecoder::new();
    let mut fed = 0;
    let mut messages = Vec::new();
    for piece in pieces {
        let result = d.feed(piece);
        fed += piece.len();
        assert!(d.buffered() <= 4 + MAX_FRAME, "buffered {} bytes", d.buffered());
        match result {
            Ok(m) => {
                messages.extend(m);
                assert_eq!(d.buffered(), expected[fed], "bytes buffered after {fed} bytes");
            }
            Err(e) => {
                if let FrameError::TooLarge(len) = e {
                    assert!(len > MAX_FRAME as u64, "refused a frame of {len} bytes");
                    assert_eq!(d.buffered(), 4, "only the length prefix of an oversized frame");
                }
                return Outcome { messages, error: Some(e) };
            }
        }
    }
    Outcome { messages, error: None }
}

fuzz_target!(|data: &[u8]| {
    let cut = pieces(data);
    let stream: Vec<u8> = cut.concat();

    let expected = expected_buffered(&stream);
    let chunked = run(&expected, &cut);
    // The reference: one byte at a time.
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    let reference = run(&expected, &bytes);
    // The same error, and the same messages before it; except that `feed` returns only the
    // error from a call that completes good frames before a bad one (the session ends then).
    assert_eq!(chunked.error, reference.error, "the error depends on how the stream is cut");
    if chunked.error.is_none() {
        assert_eq!(chunked.messages, reference.messages, "the messages depend on the cuts");
    } else {
        assert!(
            reference.messages.starts_with(&chunked.messages),
            "the messages depend on the cuts"
        );
    }
    // Whole: the same messages, or the same error (the messages before it are dropped).
    match FrameDecoder::new().feed(&stream) {
        Ok(m) => assert_eq!(reference, Outcome { messages: m, error: None }),
        Err(e) => assert_eq!(reference.error, Some(e)),
    }

    for (seq, message) in &reference.messages {
        let encoded = frame::encode(*seq, message).expect("a decoded message re-encodes");
        assert!(encoded.len() <= 4 + MAX_FRAME);
        let mut d = FrameDecoder::new();
        assert_eq!(d.feed(&encoded), Ok(vec![(*seq, message.clone())]), "round trip");
        assert_eq!(d.buffered(), 0);
        assert_eq!(frame::decode_body(&encoded[4..]), Ok((*seq, message.clone())));
        let again = frame::encode(*seq, &frame::decode_body(&encoded[4..]).expect("decodes").1);
        assert_eq!(again.as_ref(), Ok(&encoded), "re-encoding is not canonical");
    }
});
