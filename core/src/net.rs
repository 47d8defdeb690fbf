//! Sync over QUIC: the meeting driver that carries [`crate::sync::Session`] over quinn, and
//! the relay driver that carries [`crate::relay::RelaySession`] to a `nabij-relay`.
//!
//! A device [`listen`]s and shows a [`Ticket`]; others [`sync_with`] it. One bidirectional
//! stream per connection carries the session's frames; the listener serves many peers at once,
//! each connection its own session, and keeps each one in live mode (a change that reaches the
//! listener from one peer is pushed to the others while they stay connected).
//!
//! Owns sockets, TLS configuration ([`tls`]), tickets ([`ticket`]) and time. Knows nothing of
//! the protocol's rules: every decision is the session's; store work runs on tokio's blocking
//! pool so a slow disk never stalls the network tasks.

pub mod ticket;
pub mod tls;

mod connect;
mod driver;
mod relay;

pub use driver::{
    ListenOptions, Listener, Progress, ProgressFn, ServedSession, SyncOptions, SyncReport, listen,
    sync_with,
};
pub use relay::{
    OnRelaySync, RelayLoop, RelayProgress, RelayProgressFn, RelaySyncOptions, RelaySyncReport,
    spawn_relay_loop, sync_with_relay,
};
pub use ticket::{DeviceCard, Ticket, TicketError};

use crate::sync::SyncError;

/// Why meeting sync failed.
#[derive(Debug, thiserror::Error)]
// Not `non_exhaustive`: nabij-ffi maps every variant by name, so a new one fails its build
// until it is given a kind apps can act on.
pub enum NetError {
    /// The ticket could not be read.
    #[error(transparent)]
    Ticket(#[from] TicketError),
    /// A socket could not be opened.
    #[error("could not open a socket: {0}")]
    Io(#[from] std::io::Error),
    /// Certificates or TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// No address on the ticket answered, or the handshake failed (for example because the
    /// other device refused this one, or presented another key than the ticket's).
    #[error("could not connect: {0}")]
    Connect(String),
    /// The connection was lost or closed by the peer before the sync finished.
    #[error("connection lost: {0}")]
    Connection(String),
    /// The peer broke the sync protocol, or the local store failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The peer did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The relay sync failed (the local store, or the relay broke the protocol).
    #[error(transparent)]
    Relay(#[from] crate::relay::RelayError),
    /// A task of the driver failed.
    #[error("internal error: {0}")]
    Internal(String),
}
