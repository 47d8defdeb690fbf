//! The length-prefix reader both protocols share (`nabij_relay_proto::wire::LengthPrefixReader`,
//! under the meeting protocol's `FrameDecoder` and the relay's `FrameReader`): arbitrary bytes,
//! cut at fuzzer-chosen points, read with a fuzzer-chosen limit.
//!
//! Checks: no panic; the frames and the error are those of a plain reading of the whole stream,
//! whatever the cuts; after every call nothing beyond the frame under way is buffered and no
//! more than limit + prefix is allocated; an oversized prefix is refused with only its four
//! bytes held and nothing of its body taken; the relay's `FrameReader` reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nabij_fuzz::pieces;
use nabij_relay_proto::wire::{
    FrameReader, FrameTooLarge, LENGTH_PREFIX, LengthPrefixReader, WireError,
};

/// What a stream reads as: its frames' bodies up to the first error, and that error.
#[derive(Debug, PartialEq)]
struct Outcome {
    bodies: Vec<Vec<u8>>,
    error: Option<FrameTooLarge>,
}

/// The whole stream read plainly, with no buffering to get wrong.
fn model(stream: &[u8], max: usize) -> Outcome {
    let mut bodies = Vec::new();
    let mut rest = stream;
    while let Some((prefix, after)) = rest.split_first_chunk::<LENGTH_PREFIX>() {
        let len = u32::from_be_bytes(*prefix);
        if len as usize > max {
            return Outcome { bodies, error: Some(FrameTooLarge { len: u64::from(len), max }) };
        }
        let Some((body, after)) = after.split_at_checked(len as usize) else { break };
        bodies.push(body.to_vec());
        rest = after;
    }
    Outcome { bodies, error: None }
}

fn read(pieces: &[&[u8]], max: usize) -> Outcome {
    let mut r = LengthPrefixReader::new(max);
    let mut bodies = Vec::new();
    for piece in pieces {
        let mut input = *piece;
        loop {
            let before = input.len();
            let next = r.next_frame(&mut input).map(|b| b.map(<[u8]>::to_vec));
            assert!(r.buffered() <= max + LENGTH_PREFIX, "buffered {}", r.buffered());
            assert!(r.capacity() <= max + LENGTH_PREFIX, "allocated {}", r.capacity());
            match next {
                Ok(Some(body)) => bodies.push(body),
                Ok(None) => {
                    assert!(input.is_empty(), "stopped with input left");
                    break;
                }
                Err(e) => {
                    assert_eq!(r.buffered(), LENGTH_PREFIX, "only the prefix is held");
                    assert!(before - input.len() <= LENGTH_PREFIX, "body bytes were taken");
                    assert_eq!(r.next_frame(&mut input), Err(e), "the error must stay");
                    return Outcome { bodies, error: Some(e) };
                }
            }
        }
    }
    Outcome { bodies, error: None }
}

fuzz_target!(|data: &[u8]| {
    // Two bytes of limit (small, so that oversized prefixes and whole frames are both common),
    // then the cut points and the stream as `pieces` reads them.
    let Some((limit, rest)) = data.split_first_chunk::<2>() else { return };
    let max = usize::from(u16::from_be_bytes(*limit));
    let cut = pieces(rest);
    let stream = cut.concat();

    let expected = model(&stream, max);
    assert_eq!(read(&cut, max), expected, "cut as given");
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(read(&bytes, max), expected, "one byte at a time");

    // The relay's reader: the same bodies, the same error, for the same cuts.
    let mut relay = FrameReader::new(max);
    let mut bodies = Vec::new();
    let mut error = None;
    for piece in &cut {
        let (b, e) = relay.feed(piece);
        bodies.extend(b);
        if e.is_some() {
            error = e;
            break;
        }
    }
    assert_eq!(bodies, expected.bodies);
    assert_eq!(error, expected.error.map(WireError::from));
});
