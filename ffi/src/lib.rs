//! uniffi bindings for the Nabij core, for Kotlin, Swift and Python apps.
//!
//! A thin layer: it converts types (ids cross as base58check strings, times as milliseconds
//! since the Unix epoch) and errors (one [`NabijError`] with five kinds, mapped in
//! [`error`]); every rule lives in `nabij-core`.
//!
//! - [`Device`]: one per store file; every operation of [`nabij_core::Device`].
//! - [`ChangeListener`] and [`Subscription`]: change notifications.
//! - [`types`]: records and enums for the domain types and the inputs that change them.
//! - [`net`]: meeting sync over QUIC (async, on tokio): [`Device::listen`] returns a
//!   [`MeetingListener`] with a ticket, [`Device::sync_with`] a [`SyncReport`];
//!   [`ProgressListener`] gets progress; device cards add a device to a network.
//! - [`relay`]: sync through a relay: [`Device::sync_with_relay`] once, or
//!   [`Device::start_relay_sync`] in the background ([`RelaySyncLoop`]).
//!
//! Bindings are generated from the built library:
//! `cargo run -p uniffi-bindgen -- generate --library target/debug/libnabij_ffi.so
//! --language kotlin --out-dir out` (see `ffi/test-bindings.sh`).

uniffi::setup_scaffolding!();

pub mod device;
pub mod error;
pub mod net;
pub mod relay;
pub mod types;

pub use device::{ChangeListener, Device, Subscription, caimer_fields};
pub use error::NabijError;
pub use net::{
    DeviceCardInfo, MeetingListener, ProgressListener, SyncProgress, SyncReport, read_device_card,
};
pub use relay::{RelaySyncListener, RelaySyncLoop, RelaySyncReport};
pub use types::*;
