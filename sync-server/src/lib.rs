//! The Nabij relay (`sync-server`): stores and forwards devices' encrypted blobs over QUIC,
//! for workers who do not meet. It cannot read them: it never holds a key, never links
//! Automerge, and knows documents and networks only by ids derived under keys it lacks.
//!
//! - [`config`]: settings, limits and quotas (TOML and flags).
//! - [`storage`]: the storage contract and an in-memory store; [`sqlite`]: the default store.
//! - [`service`]: the rules (rosters, authorisation, quotas), without IO.
//! - [`server`]: the QUIC driver; [`identity`]: the relay's pinned key.
//!
//! [`run`] is the whole relay for a configuration; [`cli`] is the `nabij-relay` process.

pub mod cli;
pub mod config;
pub mod identity;
pub mod server;
pub mod service;
pub mod sqlite;
pub mod storage;

use std::{future::Future, sync::Arc};

pub use config::{Config, Limits};
pub use identity::RelayIdentity;
pub use server::{ServerError, endpoint, serve};
pub use service::Relay;

/// Runs the relay with SQLite storage in `config.data_dir` on `endpoint` until `shutdown`.
pub async fn run(
    endpoint: quinn::Endpoint,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.check()?;
    let dir = config.data_dir.clone();
    let storage = tokio::task::spawn_blocking(move || sqlite::SqliteStorage::open(&dir))
        .await
        .map_err(|e| ServerError::Io(std::io::Error::other(e.to_string())))??;
    serve(endpoint, Arc::new(Relay::new(storage, config.limits)), shutdown).await
}
