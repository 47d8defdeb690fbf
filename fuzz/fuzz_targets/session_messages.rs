//! Structure-aware: a peer that speaks valid frames (mostly in sequence) but says anything,
//! in any order, about real and made-up documents, interleaved with raw bytes, local changes
//! and time passing. Reaches the session's states that random bytes rarely do.
//!
//! Checks: the same as `session_bytes` (see `nabij_fuzz::Harness`).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nabij_core::DocId;
use nabij_core::sync::frame::{self, Message};
use nabij_core::sync::session::{PROTOCOL, digest};
use nabij_fuzz::{DOC_A, DOC_B, DOC_C, Harness, MemStore, NETWORK, PEER};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Doc {
    Network,
    A,
    B,
    C,
    Other([u8; 16]),
}

impl Doc {
    fn wire(self) -> [u8; 16] {
        match self {
            Doc::Network => NETWORK,
            Doc::A => DOC_A,
            Doc::B => DOC_B,
            Doc::C => DOC_C,
            Doc::Other(b) => b,
        }
    }

    fn id(self) -> DocId {
        DocId::from_bytes(self.wire())
    }
}

#[derive(Arbitrary, Debug)]
enum Heads {
    /// The peer's heads of a document.
    Of(Doc),
    Raw(Vec<[u8; 32]>),
}

#[derive(Arbitrary, Debug)]
enum Bytes {
    /// The peer's copy of a document, saved (or this device's, if the peer lacks it).
    Saved(Doc),
    /// A first Automerge sync message from the peer's copy of a document.
    FirstSync(Doc),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Msg {
    Hello {
        protocol: Option<u16>,
        device: Option<[u8; 32]>,
    },
    /// `digest: None` is the peer's true digest of its network inventory.
    Digest {
        network: Doc,
        digest: Option<[u8; 32]>,
    },
    Inventory {
        network: Doc,
        docs: Vec<(Doc, Heads)>,
    },
    Document {
        doc: Doc,
        bytes: Bytes,
    },
    Sync {
        doc: Doc,
        message: Bytes,
    },
    /// `seen: None` acknowledges every frame the session sent.
    Done {
        seen: Option<u64>,
    },
    /// The peer refuses what the session sent of a document (or of one it never sent).
    Refused {
        doc: Doc,
    },
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// A frame with the next sequence number, or `seq` if given.
    Frame {
        msg: Msg,
        seq: Option<u64>,
        split: Option<u16>,
    },
    Raw(Vec<u8>),
    /// A local change to a document (an edit first, if `edit`).
    Local {
        doc: Doc,
        edit: bool,
    },
    Wait(u16),
}

fn bytes(peer: &mut MemStore, local: &mut MemStore, b: Bytes) -> Vec<u8> {
    match b {
        Bytes::Saved(d) => peer.save(d.id()).or_else(|| local.save(d.id())).unwrap_or_default(),
        Bytes::FirstSync(d) => peer.first_sync(d.id()).unwrap_or_default(),
        Bytes::Raw(b) => b,
    }
}

fn message(peer: &mut MemStore, h: &mut Harness, m: Msg) -> Message {
    match m {
        Msg::Hello { protocol, device } => Message::Hello {
            protocol: protocol.unwrap_or(PROTOCOL),
            device: device.unwrap_or(PEER),
        },
        Msg::Digest { network, digest: d } => Message::Digest {
            network: network.wire(),
            digest: d.unwrap_or_else(|| digest(&peer.network_inventory())),
        },
        Msg::Inventory { network, docs } => Message::Inventory {
            network: network.wire(),
            docs: docs
                .into_iter()
                .map(|(d, heads)| {
                    let heads = match heads {
                        Heads::Of(of) => peer.heads(of.id()).unwrap_or_default(),
                        Heads::Raw(r) => r,
                    };
                    (d.wire(), heads)
                })
                .collect(),
        },
        Msg::Document { doc, bytes: b } => Message::Document {
            doc: doc.wire(),
            bytes: bytes(peer, &mut h.store, b),
            signed: Vec::new(),
        },
        Msg::Sync { doc, message: b } => Message::Sync {
            doc: doc.wire(),
            message: bytes(peer, &mut h.store, b),
            signed: Vec::new(),
        },
        Msg::Done { seen } => Message::Done { seen: seen.unwrap_or(h.sent) },
        Msg::Refused { doc } => Message::Refused { doc: doc.wire() },
    }
}

fuzz_target!(|steps: Vec<Step>| {
    let mut h = Harness::new();
    let mut peer = MemStore::peer();
    let mut next_seq = 0u64;
    for step in steps.into_iter().take(64) {
        match step {
            Step::Frame { msg, seq, split } => {
                let m = message(&mut peer, &mut h, msg);
                let seq = seq.unwrap_or(next_seq);
                next_seq = seq.wrapping_add(1);
                let Ok(f) = frame::encode(seq, &m) else { continue };
                let at = split.map_or(f.len(), |s| usize::from(s) % (f.len() + 1));
                h.feed(&f[..at]);
                h.feed(&f[at..]);
            }
            Step::Raw(b) => {
                h.feed(&b);
            }
            Step::Local { doc, edit } => {
                if edit {
                    h.store.edit(doc.id(), h.now);
                }
                h.local_change(doc.id());
            }
            Step::Wait(ms) => {
                h.advance(u64::from(ms) * 8);
            }
        }
    }
});
