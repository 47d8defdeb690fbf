//! Nabij core: case notes and learning points for neighbourhood networks, kept in Automerge
//! documents and persisted in SQLite, for devices that are offline most of the time.
//!
//! An app holds one [`Device`] per phone and reads the [`model`] values it returns; that, the
//! ids, the errors and the sync drivers are the public API.
//!
//! # Layout
//! - [`device`]: the façade an app holds: every operation, queries, listeners. A thin shell
//!   over a private write engine (cache, merge, persist) and the derived rows it projects.
//! - [`model`]: the domain types apps see, the inputs that change them (parsed into validated
//!   changes), and the read models of the screens.
//! - [`ids`]: document, note, member, item ids and device keys (parse and display).
//! - [`identity`]: the device's Ed25519 key, generated at first open; its actor id.
//! - [`error`]: the façade's error and the operation families' errors inside it.
//! - `doc` (private): the typed Automerge layout of each document kind; changes become ops.
//! - `store` (private): SQLite: document chunks, compaction, derived tables, full-text search.
//!   Private so no code outside the crate can write a chunk without its derived rows.
//! - [`sync`]: the sync protocol without IO: frames and the session state machine.
//! - [`net`] (feature `quic`): meeting sync over QUIC; tickets; pinned-key TLS; the relay
//!   driver.
//! - [`membership`]: signed membership operations and the rule that resolves them;
//!   [`invitation`]: signed invitations into a network, accepted by the new device's user.
//! - [`authorship`]: signed heads that cover every change a device makes, and the envelope
//!   exported documents travel in.
//! - [`crypto`]: end-to-end encryption for the relay: sealed keys, encrypted blobs.
//! - [`relay`]: the relay sync without IO (the QUIC driver is `net::relay`).
//!
//! Arrows point down only: `device` uses `store` and `doc`; `store` uses `model` types for its
//! index rows but never Automerge; `doc` knows nothing of SQLite.

pub mod authorship;
pub mod crypto;
pub mod device;
mod doc;
pub mod erasure;
pub mod error;
pub mod identity;
pub mod ids;
pub mod invitation;
pub use nabij_relay_proto::membership;
pub mod model;
#[cfg(feature = "quic")]
pub mod net;
pub mod relay;
mod store;
pub mod sync;
#[cfg(feature = "test-utils")]
pub mod test_utils;

pub use device::{
    Clock, Device, DeviceOptions, DeviceRelay, StoreState, Subscription, SystemClock,
};
pub use error::Error;
pub use ids::{DeviceKey, DocId, ItemId, MemberId, NoteId, ParseIdError};
pub use store::{InvalidStoreKey, StoreKey};
