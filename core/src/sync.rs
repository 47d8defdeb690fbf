//! The sync protocol, sans IO: what two devices say to each other to converge, as values.
//!
//! Owns the wire format ([`frame`]). Knows nothing of tokio, quinn or SQLite: drivers feed it
//! bytes and time and carry its output, which is what makes deterministic simulation possible.

pub mod frame;

pub mod session;

pub use frame::{FrameDecoder, FrameError, Message};
pub use session::{
    Event, Outgoing, Refusal, RemovalOutcome, Session, StoreFailure, SyncError, SyncStore,
};
