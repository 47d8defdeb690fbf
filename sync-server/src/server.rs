//! The QUIC driver: accepts devices, reads their requests off each stream, has the rules
//! (`service`) answer them on tokio's blocking pool, and writes the answers back in order.
//!
//! Devices authenticate with their device keys in the TLS handshake (any Ed25519 key gets in;
//! what it may touch is decided per network by the rosters). Frames are size-checked before
//! they are buffered; each connection is rate-limited; a malformed or oversized frame gets a
//! typed refusal and ends that stream only. On shutdown the relay stops reading new requests,
//! finishes the batches it is storing, answers them, and closes.
//!
//! Owns sockets, tasks and time. Knows nothing of storage internals.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use nabij_relay_proto::{
    PublicKey,
    tls::{self as pinned, ClientPolicy, Credentials},
    wire::{self, FrameReader, Refusal, Request, Response, WireError},
};
use tokio::{sync::watch, task::JoinSet};

use crate::{config::Limits, identity::RelayIdentity, service::Relay, storage::Storage};

/// The name the relay presents; trust comes from the pinned key.
pub const SERVER_NAME: &str = "nabij.relay";

/// How long in-flight work may take to finish after shutdown is asked.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Why the relay could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] pinned::TlsError),
    /// The socket could not be opened.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The storage could not be opened.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The relay's key could not be read or made.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(30_000))));
    t.max_concurrent_uni_streams(0u32.into());
    // One stream per connection (a device needs no more): limits and buffers per stream are
    // then per connection.
    t.max_concurrent_bidi_streams(1u32.into());
    Arc::new(t)
}

/// A QUIC endpoint on `bind` that presents the relay's key.
pub fn endpoint(
    bind: SocketAddr,
    identity: &RelayIdentity,
) -> Result<quinn::Endpoint, ServerError> {
    let name =
        format!("nabij relay {}", nabij_relay_proto::relay_key_to_string(&identity.public_key()));
    let creds = Credentials::self_signed(identity.signing_key(), SERVER_NAME, &name)?;
    // Every device key may connect; rosters decide what each may touch.
    let anyone: ClientPolicy = Arc::new(|_: &PublicKey| true);
    let tls = pinned::server_config(&creds, anyone, wire::ALPN)?;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| pinned::TlsError(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport());
    Ok(quinn::Endpoint::server(config, bind)?)
}

/// Serves `relay` on `endpoint` until `shutdown` completes; then finishes in-flight batches
/// (up to a grace period) and closes.
pub async fn serve<S: Storage>(
    endpoint: quinn::Endpoint,
    relay: Arc<Relay<S>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a connection task failed");
                }
            }
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                if connections.len() >= relay.limits().max_connections {
                    tracing::warn!("connection limit reached; refusing a connection");
                    incoming.refuse();
                    continue;
                }
                connections.spawn(connection(incoming, relay.clone(), stop_rx.clone()));
            }
        }
    }
    tracing::info!(connections = connections.len(), "shutting down: finishing in-flight work");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
    endpoint.close(0u32.into(), b"relay shutting down");
    endpoint.wait_idle().await;
    Ok(())
}

async fn connection<S: Storage>(
    incoming: quinn::Incoming,
    relay: Arc<Relay<S>>,
    mut stop: watch::Receiver<bool>,
) {
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
    };
    let device = match pinned::peer_key(conn.peer_identity()) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "no device key");
            conn.close(1u32.into(), b"no device key");
            return;
        }
    };
    let short: String = device[..4].iter().map(|b| format!("{b:02x}")).collect();
    tracing::debug!(device = %short, remote = %conn.remote_address(), "device connected");
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    streams.spawn(stream(send, recv, device, relay.clone(), stop.clone()));
                }
                Err(_) => break,
            },
        }
    }
    while streams.join_next().await.is_some() {}
    if *stop.borrow() {
        conn.close(0u32.into(), b"relay shutting down");
    }
}

/// A token bucket: `rate` per second, bursts of one second's worth. Excess waits.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    fn new(rate: u64) -> Self {
        let rate = rate.max(1) as f64;
        Self { rate, tokens: rate, at: tokio::time::Instant::now() }
    }

    /// Takes `n` tokens at `now`; how long to wait before going on (zero within the rate).
    fn wait_for(&mut self, n: u64, now: tokio::time::Instant) -> Duration {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.at = now;
        self.tokens -= n as f64;
        if self.tokens < 0.0 {
            Duration::from_secs_f64(-self.tokens / self.rate)
        } else {
            Duration::ZERO
        }
    }

    async fn take(&mut self, n: u64) {
        let wait = self.wait_for(n, tokio::time::Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

async fn write(send: &mut quinn::SendStream, responses: &[Response], limits: &Limits) -> bool {
    for r in responses {
        let frame = match wire::encode(r, limits.max_frame_bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "an answer did not fit a frame");
                return false;
            }
        };
        if send.write_all(&frame).await.is_err() {
            return false;
        }
    }
    true
}

async fn stream<S: Storage>(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    device: PublicKey,
    relay: Arc<Relay<S>>,
    mut stop: watch::Receiver<bool>,
) {
    let limits = relay.limits().clone();
    let mut reader = FrameReader::new(limits.max_frame_bytes);
    let mut requests_bucket = Bucket::new(u64::from(limits.requests_per_second));
    let mut bytes_bucket = Bucket::new(limits.bytes_per_second);
    loop {
        let chunk = tokio::select! {
            biased;
            _ = stop.changed() => break,
            chunk = recv.read_chunk(256 * 1024, true) => chunk,
        };
        let bytes = match chunk {
            Ok(Some(c)) => c.bytes,
            Ok(None) | Err(_) => break,
        };
        bytes_bucket.take(bytes.len() as u64).await;
        let (bodies, error) = reader.feed(&bytes);
        let fatal = error.map(|e| match e {
            WireError::TooLarge { len, max } => Response::Refused {
                reason: Refusal::TooLarge,
                detail: format!("frame of {len} bytes over {max}"),
            },
            e => Response::Refused { reason: Refusal::Malformed, detail: e.to_string() },
        });
        let mut requests = Vec::with_capacity(bodies.len());
        let mut fatal = fatal;
        for body in bodies {
            match wire::decode::<Request>(&body) {
                Ok(r) => requests.push(r),
                Err(e) => {
                    fatal = Some(Response::Refused {
                        reason: Refusal::Malformed,
                        detail: e.to_string(),
                    });
                    break;
                }
            }
        }
        if !requests.is_empty() {
            requests_bucket.take(requests.len() as u64).await;
            let relay = relay.clone();
            let answered =
                tokio::task::spawn_blocking(move || relay.handle(&device, requests)).await;
            let Ok(responses) = answered else {
                tracing::error!("a request batch failed");
                break;
            };
            if !write(&mut send, &responses, &limits).await {
                break;
            }
        }
        if let Some(refusal) = fatal {
            tracing::info!(?refusal, "bad frame; ending the stream");
            write(&mut send, &[refusal], &limits).await;
            break;
        }
    }
    let _ = send.finish();
    // Let the last answers leave before the stream is dropped.
    let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_over_its_rate_waits_in_proportion() {
        let mut b = Bucket::new(1000);
        let t0 = b.at;
        // A second's worth goes at once; the next half second's worth waits half a second.
        assert_eq!(b.wait_for(1000, t0), Duration::ZERO);
        assert_eq!(b.wait_for(500, t0), Duration::from_millis(500));
        // Time refills the bucket, never beyond one second's worth.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.wait_for(1000, later), Duration::ZERO);
        assert_eq!(b.wait_for(100, later), Duration::from_millis(100));
    }
}
