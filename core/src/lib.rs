//! Nabij core: case notes and learning points for neighbourhood networks, kept in Automerge
//! documents and persisted in SQLite, for devices that are offline most of the time.
//!
//! # Layout
//! - [`ids`]: document, note, member, item ids and device keys (parse and display).
//! - [`model`]: the domain types apps see, the inputs that change them, validation.
//! - [`doc`]: the typed Automerge layout of each document kind; edits become changes.
//! - [`identity`]: the device's Ed25519 key, generated at first open; its actor id.
//! - [`store`]: SQLite: document chunks, compaction, derived index tables, full-text search.
//! - [`sync`]: the sync protocol without IO: frames and the session state machine.
//! - [`net`] (feature `quic`): meeting sync over QUIC; tickets; pinned-key TLS.
//! - [`crypto`]: end-to-end encryption for the relay: sealed keys, encrypted blobs.
//! - [`relay`]: the relay sync without IO (the QUIC driver is `net::relay`).
//! - [`device`]: the façade an app holds, one per phone: every operation, queries, listeners.
//!
//! Arrows point down only: `device` uses `store` and `doc`; `store` uses `model` types for its
//! index rows but never Automerge; `doc` knows nothing of SQLite.

pub mod crypto;
pub mod device;
pub mod doc;
pub mod error;
pub mod identity;
pub mod ids;
pub mod model;
#[cfg(feature = "quic")]
pub mod net;
pub mod relay;
pub mod store;
pub mod sync;

pub use device::{Clock, Device, DeviceOptions, Subscription, SystemClock};
pub use error::Error;
pub use ids::{DeviceKey, DocId, ItemId, MemberId, NoteId, ParseIdError};
