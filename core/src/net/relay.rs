//! Relay sync over QUIC: the driver that carries [`crate::relay::RelaySession`] to a
//! `nabij-relay` and back.
//!
//! The device pins the relay's key (TLS fails against anyone else) and presents its own
//! device key. The session runs on one blocking thread (it reads and writes the store); this
//! driver's tasks only move frames: one writes requests as the session makes them, the loop
//! reads the relay's answers and hands them over. [`spawn_relay_loop`] keeps a device in sync
//! with a relay while an app runs.
//!
//! Owns sockets, timeouts and the background loop. Knows nothing of the exchange's rules.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use nabij_relay_proto::{
    PublicKey,
    wire::{self, FrameReader, Request, Response},
};
use tokio::sync::{mpsc, watch};

use super::{
    NetError,
    driver::{connection_error, read_error, write_error},
    tls::{self, Credentials},
};
use crate::{
    Device,
    device::DeviceRelay,
    relay::{RelayReport, RelaySession},
};

/// How long the handshake may take by default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// The name the relay presents; trust comes from the pinned key.
const RELAY_NAME: &str = "nabij.relay";
/// Largest answer accepted from a relay (a pull answer, or one large blob; room for relays
/// configured above the default frame size).
const MAX_ANSWER: usize = 64 * 1024 * 1024;
/// How long the relay may stay silent while answers are owed (storing a large batch durably
/// takes seconds, not minutes); keep-alives alone do not keep a stuck relay's sync open.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// How far a relay sync is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayProgress {
    /// Documents pushed or pulled so far.
    pub docs_done: usize,
    /// Documents known to need pushing.
    pub docs_total: usize,
    /// Frame bytes sent and received so far.
    pub bytes_sent: u64,
    /// See `bytes_sent`.
    pub bytes_received: u64,
}

/// Called with progress as a relay sync runs (keep it quick).
pub type RelayProgressFn = Arc<dyn Fn(&RelayProgress) + Send + Sync>;

/// Options for [`sync_with_relay`].
#[derive(Clone, Default)]
pub struct RelaySyncOptions {
    /// Called as the sync progresses.
    pub progress: Option<RelayProgressFn>,
    /// How long the handshake may take (default 20 s).
    pub connect_timeout: Option<Duration>,
}

/// What a relay sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySyncReport {
    /// What was exchanged, refused or rejected.
    pub report: RelayReport,
    /// Frame bytes sent and received.
    pub bytes_sent: u64,
    /// See `bytes_sent`.
    pub bytes_received: u64,
    /// From connecting to done.
    pub duration: Duration,
}

/// Resolves `address` (`host:port`).
async fn resolve(address: &str) -> Result<SocketAddr, NetError> {
    let mut addrs = tokio::net::lookup_host(address)
        .await
        .map_err(|e| NetError::Connect(format!("cannot resolve {address}: {e}")))?;
    addrs.next().ok_or_else(|| NetError::Connect(format!("{address} has no address")))
}

/// Syncs with the relay at `address` (`host:port`) holding `relay_key`: pushes what it lacks,
/// pulls what is new. Must run inside a tokio runtime.
pub async fn sync_with_relay(
    device: Arc<Device>,
    address: &str,
    relay_key: PublicKey,
    options: RelaySyncOptions,
) -> Result<RelaySyncReport, NetError> {
    let started = Instant::now();
    let addr = resolve(address).await?;
    let creds = Credentials::new(device.identity())?;
    let config = tls::client_config_for(&creds, relay_key, wire::ALPN)?;
    let bind = SocketAddr::new(
        if addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        },
        0,
    );
    let endpoint = quinn::Endpoint::client(bind)?;
    let timeout = options.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
    let conn =
        super::connect::first_handshake(&[(endpoint.clone(), addr)], &config, RELAY_NAME, timeout)
            .await?;
    let result = exchange(device, &conn, relay_key, options.progress).await;
    match &result {
        Ok(_) => conn.close(0u32.into(), b"done"),
        Err(_) => conn.close(1u32.into(), b"sync failed"),
    }
    // The close reaches the relay while the socket drains (three probe timeouts, most of a
    // small sync's time): let that happen in the background rather than keep the caller.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), endpoint.wait_idle()).await;
    });
    result.map(|(report, bytes_sent, bytes_received)| RelaySyncReport {
        report,
        bytes_sent,
        bytes_received,
        duration: started.elapsed(),
    })
}

async fn exchange(
    device: Arc<Device>,
    conn: &quinn::Connection,
    relay_key: PublicKey,
    progress: Option<RelayProgressFn>,
) -> Result<(RelayReport, u64, u64), NetError> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(connection_error)?;
    let (requests_tx, mut requests) = mpsc::unbounded_channel::<Vec<Request>>();
    let (answers, mut answers_rx) = mpsc::unbounded_channel::<Response>();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // The session, on a blocking thread: it reads and writes the store.
    let (sent_s, received_s) = (sent.clone(), received.clone());
    let session = tokio::task::spawn_blocking(move || {
        let mut s = RelaySession::new(DeviceRelay::new(&device, relay_key));
        let _ = requests_tx.send(s.start());
        while !s.is_done() {
            let Some(answer) = answers_rx.blocking_recv() else {
                return Err(NetError::Connection("the relay connection ended early".into()));
            };
            let next = s.handle(answer)?;
            if let Some(p) = &progress {
                let (docs_done, docs_total) = s.progress();
                p(&RelayProgress {
                    docs_done,
                    docs_total,
                    bytes_sent: sent_s.load(std::sync::atomic::Ordering::Relaxed),
                    bytes_received: received_s.load(std::sync::atomic::Ordering::Relaxed),
                });
            }
            if !next.is_empty() {
                let _ = requests_tx.send(next);
            }
        }
        Ok(s.report().clone())
    });
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            while let Some(batch) = requests.recv().await {
                for r in batch {
                    let frame = wire::encode(&r, wire::DEFAULT_MAX_FRAME)
                        .map_err(|e| NetError::Internal(format!("request too large: {e}")))?;
                    sent.fetch_add(frame.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    send.write_all(&frame).await.map_err(write_error)?;
                }
            }
            let _ = send.finish();
            Ok::<_, NetError>(())
        })
    };
    let mut reader = FrameReader::new(MAX_ANSWER);
    let mut session = session;
    let mut writer = writer;
    let report = loop {
        tokio::select! {
            biased;
            done = &mut session => {
                break done.map_err(|e| NetError::Internal(e.to_string()))??;
            }
            // The writer ends on its own only when writing failed (or nothing is left to send).
            written = &mut writer => {
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(NetError::Internal(e.to_string())),
                }
                // Everything is sent; wait for the answers.
                writer = tokio::spawn(std::future::pending());
            }
            chunk = tokio::time::timeout(ANSWER_TIMEOUT, recv.read_chunk(256 * 1024, true)) => {
                let Ok(chunk) = chunk else {
                    return Err(NetError::Timeout("the relay stopped answering".into()));
                };
                let Some(chunk) = chunk.map_err(read_error)? else {
                    // The relay finished its side. If the session has every answer it needed
                    // it is done (or about to be); otherwise it learns the stream ended.
                    drop(answers);
                    break session.await.map_err(|e| NetError::Internal(e.to_string()))??;
                };
                received.fetch_add(chunk.bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let (bodies, error) = reader.feed(&chunk.bytes);
                if let Some(e) = error {
                    return Err(NetError::Relay(crate::relay::RelayError::Protocol(e.to_string())));
                }
                for body in bodies {
                    let answer = wire::decode::<Response>(&body).map_err(|e| {
                        NetError::Relay(crate::relay::RelayError::Protocol(e.to_string()))
                    })?;
                    // A closed channel means the session has ended; its result says why.
                    let _ = answers.send(answer);
                }
            }
        }
    };
    writer.abort();
    Ok((
        report,
        sent.load(std::sync::atomic::Ordering::Relaxed),
        received.load(std::sync::atomic::Ordering::Relaxed),
    ))
}

/// Called with each background relay sync's result.
pub type OnRelaySync = Arc<dyn Fn(&Result<RelaySyncReport, NetError>) + Send + Sync>;

/// A background relay sync; dropping it (or [`RelayLoop::stop`]) stops it.
#[derive(Debug)]
pub struct RelayLoop {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RelayLoop {
    /// Stops the loop, letting a sync in progress finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for RelayLoop {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Keeps `device` in sync with a relay while the app runs: syncs shortly after local changes
/// (`settle` after the last one, so a burst of typing is one upload) and every `every` to
/// pull what others pushed. Each finished sync is reported to `on_sync`. Failures are retried
/// at the next change or tick.
pub fn spawn_relay_loop(
    device: Arc<Device>,
    address: String,
    relay_key: PublicKey,
    settle: Duration,
    every: Duration,
    on_sync: Option<OnRelaySync>,
) -> RelayLoop {
    let (stop, mut stopped) = watch::channel(false);
    let (changed_tx, mut changed) = mpsc::unbounded_channel::<()>();
    let task = tokio::spawn(async move {
        let _subscription = device.subscribe(move |_| {
            let _ = changed_tx.send(());
        });
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tick.tick() => {}
                Some(()) = changed.recv() => {
                    // Let a burst of edits settle into one upload.
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(settle) => break,
                            Some(()) = changed.recv() => {}
                        }
                    }
                }
            }
            let result =
                sync_with_relay(device.clone(), &address, relay_key, RelaySyncOptions::default())
                    .await;
            // Changes the sync itself made (merges, content keys) bring one more sync, which
            // finds nothing to do; draining them here could swallow an edit made meanwhile.
            if let Err(e) = &result {
                tracing::info!(error = %e, "background relay sync failed; retrying later");
            }
            if let Some(f) = &on_sync {
                f(&result);
            }
        }
    });
    RelayLoop { stop, task: Some(task) }
}
