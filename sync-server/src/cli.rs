//! The `nabij-relay` command line: flags and a TOML file, logs, signals. `nabij-relay`
//! listens on UDP 7447 and keeps its data in `./nabij-relay-data`; `--config relay.toml`
//! reads settings from a file. It prints the relay's key for devices to pin.
//!
//! Owns argument parsing and the process's lifetime. The relay itself is [`crate::run`].

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use crate::{Config, RelayIdentity, endpoint, run};
use clap::Parser;

/// The Nabij relay: stores and forwards encrypted blobs; cannot read them.
#[derive(Debug, Parser)]
#[command(name = "nabij-relay", version)]
struct Args {
    /// A TOML configuration file (listen, data_dir, [limits]).
    #[arg(long)]
    config: Option<PathBuf>,
    /// UDP address to listen on (overrides the file).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory for the database and the relay's key (overrides the file).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Most bytes of blobs one network may store (overrides the file).
    #[arg(long, value_name = "BYTES")]
    network_quota_bytes: Option<u64>,
    /// Largest frame accepted, in bytes (overrides the file).
    #[arg(long, value_name = "BYTES")]
    max_frame_bytes: Option<usize>,
    /// Largest blob accepted, in bytes (overrides the file).
    #[arg(long, value_name = "BYTES")]
    max_blob_bytes: Option<usize>,
    /// Most bytes of blobs in one pull answer (overrides the file).
    #[arg(long, value_name = "BYTES")]
    pull_max_bytes: Option<u32>,
    /// Most requests per second per connection; excess waits (overrides the file).
    #[arg(long, value_name = "N")]
    requests_per_second: Option<u32>,
    /// Most bytes per second per connection; excess waits (overrides the file).
    #[arg(long, value_name = "BYTES")]
    bytes_per_second: Option<u64>,
    /// Most connections served at once (overrides the file).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
}

impl Args {
    /// Flags win over the file.
    fn apply(&self, config: &mut Config) {
        let l = &mut config.limits;
        if let Some(v) = self.network_quota_bytes {
            l.network_quota_bytes = v;
        }
        if let Some(v) = self.max_frame_bytes {
            l.max_frame_bytes = v;
        }
        if let Some(v) = self.max_blob_bytes {
            l.max_blob_bytes = v;
        }
        if let Some(v) = self.pull_max_bytes {
            l.pull_max_bytes = v;
        }
        if let Some(v) = self.requests_per_second {
            l.requests_per_second = v;
        }
        if let Some(v) = self.bytes_per_second {
            l.bytes_per_second = v;
        }
        if let Some(v) = self.max_connections {
            l.max_connections = v;
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
    }
}

/// The shutdown signal, installed at once (before the relay says it is listening, so a
/// supervisor's SIGTERM right after start is a clean stop, not a kill).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn main_async(args: Args) -> Result<(), String> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Config::from_toml(&text).map_err(|e| e.to_string())?
        }
        None => Config::default(),
    };
    args.apply(&mut config);
    config.check().map_err(|e| e.to_string())?;
    let identity = RelayIdentity::load_or_create(&config.data_dir).map_err(|e| e.to_string())?;
    let endpoint = endpoint(config.listen, &identity).map_err(|e| e.to_string())?;
    let local = endpoint.local_addr().map_err(|e| e.to_string())?;
    let shutdown = shutdown_signal();
    let key = nabij_relay_proto::relay_key_to_string(&identity.public_key());
    // One line for people and scripts: where, and which key to pin.
    println!("nabij relay listening on {local} key {key}");
    tracing::info!(%local, data_dir = %config.data_dir.display(), "relay started");
    run(endpoint, config, shutdown).await.map_err(|e| e.to_string())?;
    tracing::info!("relay stopped");
    Ok(())
}

/// Runs the relay as a process: parses the arguments, logs to stderr, stops on SIGTERM or
/// Ctrl-C after finishing in-flight writes.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nabij-relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nabij-relay: {e}");
            ExitCode::FAILURE
        }
    }
}
