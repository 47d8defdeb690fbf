//! The tokio/quinn driver around [`Session`]: listening, connecting, and one loop per
//! connection that moves bytes between the stream and the session.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use tokio::{sync::mpsc, task::JoinSet};

use super::{
    NetError,
    ticket::Ticket,
    tls::{self, Credentials, PeerPolicy},
};
use crate::{
    Device,
    ids::{DeviceKey, DocId},
    sync::{Event, Session, SyncError},
};

/// How long a handshake may take: long enough for several retransmissions on a lossy link.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the closing exchange may take once both sides are done.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Read buffer per connection.
const READ_CHUNK: usize = 256 * 1024;
/// Most addresses put on a ticket.
const MAX_TICKET_ADDRS: usize = 6;

/// How far a sync is, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The other device.
    pub peer: DeviceKey,
    /// Documents whose exchange finished.
    pub docs_done: usize,
    /// Documents known to need an exchange.
    pub docs_total: usize,
    /// Frame bytes sent so far.
    pub bytes_sent: u64,
    /// Frame bytes received so far.
    pub bytes_received: u64,
}

/// Called with progress as a sync runs (from the network task: keep it quick).
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What a finished sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// The other device.
    pub peer: DeviceKey,
    /// Documents this device sent whole or sent changes of.
    pub documents_sent: usize,
    /// Documents the other device's data changed here.
    pub documents_received: usize,
    /// Documents whose data from the other device this device refused (nothing of it stored:
    /// a forged or unauthorised change, a document that is not what it says). The meeting went
    /// on without them; the events and the log say why.
    pub documents_refused: usize,
    /// Documents whose data from this device the other device refused (its reasons stay
    /// there).
    pub documents_refused_by_peer: usize,
    /// Sync-protocol bytes sent and received.
    pub bytes_sent: u64,
    /// See `bytes_sent`.
    pub bytes_received: u64,
    /// UDP bytes sent and received, QUIC and TLS included.
    pub wire_bytes_sent: u64,
    /// See `wire_bytes_sent`.
    pub wire_bytes_received: u64,
    /// From connecting to both sides being done.
    pub duration: Duration,
}

/// Options for [`sync_with`].
#[derive(Clone, Default)]
pub struct SyncOptions {
    /// Called as the sync progresses.
    pub progress: Option<ProgressFn>,
    /// Local address to connect from (default: any, port chosen by the system).
    pub bind: Option<SocketAddr>,
    /// How long the handshake may take (default 20 s: enough for several retransmissions on
    /// a lossy link; an app showing a spinner may want less).
    pub connect_timeout: Option<Duration>,
}

/// Options for [`listen`].
#[derive(Clone)]
pub struct ListenOptions {
    /// Where to listen; port 0 lets the system choose. Default `0.0.0.0:0`.
    pub bind: SocketAddr,
    /// The network the meeting is for, written on the ticket.
    pub network: Option<DocId>,
    /// Addresses to put on the ticket; if empty, this machine's interface addresses (or the
    /// bound address, when it is not a wildcard).
    pub advertise: Vec<IpAddr>,
    /// Devices accepted besides those a shared network lists (for example a device whose
    /// card was scanned before its member was added to the roster).
    pub also_accept: Vec<DeviceKey>,
    /// Called as each peer's sync progresses.
    pub progress: Option<ProgressFn>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            network: None,
            advertise: Vec::new(),
            also_accept: Vec::new(),
            progress: None,
        }
    }
}

/// How one peer's session with a listener ended.
#[derive(Debug)]
pub struct ServedSession {
    /// The peer, once authenticated.
    pub peer: Option<DeviceKey>,
    /// What the session did, or why it failed.
    pub result: Result<SyncReport, NetError>,
}

/// A listening device. Dropping it stops listening and ends its sessions.
pub struct Listener {
    endpoint: quinn::Endpoint,
    ticket: Ticket,
    accept: tokio::task::JoinHandle<()>,
    served: mpsc::UnboundedReceiver<ServedSession>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("ticket", &self.ticket.encode()).finish()
    }
}

impl Listener {
    /// The ticket others connect with.
    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.endpoint.local_addr()?)
    }

    /// The next session that ended (waits); `None` once the listener has stopped.
    pub async fn next_session(&mut self) -> Option<ServedSession> {
        self.served.recv().await
    }

    /// A session that ended, if one did since the last call.
    pub fn try_next_session(&mut self) -> Option<ServedSession> {
        self.served.try_recv().ok()
    }

    /// Stops listening, closes every connection and waits (briefly) for the peers to be told.
    pub async fn close(self) {
        self.accept.abort();
        self.endpoint.close(0u32.into(), b"listener closed");
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.endpoint.wait_idle()).await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accept.abort();
        self.endpoint.close(0u32.into(), b"listener closed");
    }
}

fn ticket_addrs(bound: SocketAddr, advertise: &[IpAddr]) -> Vec<SocketAddr> {
    let port = bound.port();
    let ips: Vec<IpAddr> = if !advertise.is_empty() {
        advertise.to_vec()
    } else if !bound.ip().is_unspecified() {
        vec![bound.ip()]
    } else {
        let mut found: Vec<(bool, IpAddr)> = if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .map(|i| (i.is_loopback(), i.ip()))
            .filter(|(_, ip)| ip.is_ipv4() == bound.is_ipv4())
            .collect();
        // Addresses another phone can reach first; loopback last (same-machine demos).
        found.sort_by_key(|(lo, _)| *lo);
        let mut ips: Vec<IpAddr> = found.into_iter().map(|(_, ip)| ip).collect();
        if ips.is_empty() {
            ips.push(if bound.is_ipv4() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            });
        }
        ips
    };
    ips.into_iter().take(MAX_TICKET_ADDRS).map(|ip| SocketAddr::new(ip, port)).collect()
}

/// Starts listening for devices; they connect with the returned listener's ticket. Must run
/// inside a tokio runtime.
pub async fn listen(device: Arc<Device>, options: ListenOptions) -> Result<Listener, NetError> {
    let creds = Credentials::new(device.identity())?;
    let pinned: HashSet<DeviceKey> = options.also_accept.iter().copied().collect();
    let policy_device = device.clone();
    let me = device.device_key();
    let policy: PeerPolicy = Arc::new(move |peer: &DeviceKey| {
        *peer != me
            && (pinned.contains(peer)
                || policy_device.may_meet(peer).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "roster lookup failed; peer refused");
                    false
                }))
    });
    let config = tls::server_config(&creds, policy)?;
    let endpoint = quinn::Endpoint::server(config, options.bind)?;
    let bound = endpoint.local_addr()?;
    let ticket = Ticket {
        device: device.device_key(),
        addrs: ticket_addrs(bound, &options.advertise),
        network: options.network,
    };
    let (tx, served) = mpsc::unbounded_channel();
    let progress = options.progress.clone();
    let accepting = endpoint.clone();
    let accept = tokio::spawn(async move {
        // The set owns the connection tasks: aborting the accept task aborts them all.
        let mut sessions = JoinSet::new();
        loop {
            tokio::select! {
                incoming = accepting.accept() => {
                    let Some(incoming) = incoming else { break };
                    let device = device.clone();
                    let tx = tx.clone();
                    let progress = progress.clone();
                    sessions.spawn(async move {
                        let served = serve(device, incoming, progress).await;
                        if let Err(e) = &served.result {
                            tracing::info!(error = %e, "a peer's session ended in error");
                        }
                        let _ = tx.send(served);
                    });
                }
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        while sessions.join_next().await.is_some() {}
    });
    tracing::info!(addr = %bound, "listening for devices");
    Ok(Listener { endpoint, ticket, accept, served })
}

async fn serve(
    device: Arc<Device>,
    incoming: quinn::Incoming,
    progress: Option<ProgressFn>,
) -> ServedSession {
    let conn = match tokio::time::timeout(CONNECT_TIMEOUT, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return ServedSession { peer: None, result: Err(connect_error(e)) },
        Err(_) => {
            return ServedSession {
                peer: None,
                result: Err(NetError::Timeout("handshake".into())),
            };
        }
    };
    let peer = match tls::peer_key(&conn) {
        Ok(p) => p,
        Err(e) => return ServedSession { peer: None, result: Err(e) },
    };
    let result = async {
        let (send, recv) = tokio::time::timeout(CONNECT_TIMEOUT, conn.accept_bi())
            .await
            .map_err(|_| NetError::Timeout("the peer opened no stream".into()))?
            .map_err(connection_error)?;
        drive(device, &conn, send, recv, peer, Role::Listener, progress).await
    }
    .await;
    if result.is_err() {
        conn.close(1u32.into(), b"sync failed");
    }
    ServedSession { peer: Some(peer), result }
}

/// Syncs with the device on `ticket` until both sides have nothing more to send. Must run
/// inside a tokio runtime.
pub async fn sync_with(
    device: Arc<Device>,
    ticket: &Ticket,
    options: SyncOptions,
) -> Result<SyncReport, NetError> {
    if ticket.device == device.device_key() {
        return Err(NetError::Connect("the ticket is this device's own".into()));
    }
    let creds = Credentials::new(device.identity())?;
    let config = tls::client_config(&creds, ticket.device)?;
    // Every address on the ticket at once (one socket per address family); the first
    // handshake to complete wins. A LAN address from another room costs nothing then, and
    // a slow, lossy link gets fresh attempts for the whole bound (`connect`).
    let mut endpoints: Vec<quinn::Endpoint> = Vec::new();
    let mut targets = Vec::new();
    for addr in &ticket.addrs {
        let bind = options.bind.unwrap_or_else(|| {
            let ip = if addr.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            };
            SocketAddr::new(ip, 0)
        });
        let endpoint = match endpoints
            .iter()
            .find(|e| e.local_addr().is_ok_and(|l| l.is_ipv4() == bind.is_ipv4()))
        {
            Some(e) => e.clone(),
            None => {
                let e = quinn::Endpoint::client(bind)?;
                endpoints.push(e.clone());
                e
            }
        };
        targets.push((endpoint, *addr));
    }
    let bound = options.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
    let conn = super::connect::first_handshake(&targets, &config, tls::SERVER_NAME, bound).await?;
    let result = async {
        let (send, recv) = conn.open_bi().await.map_err(connection_error)?;
        let progress = options.progress.clone();
        drive(device.clone(), &conn, send, recv, ticket.device, Role::Client, progress).await
    }
    .await;
    match &result {
        Ok(_) => conn.close(0u32.into(), b"done"),
        Err(_) => conn.close(1u32.into(), b"sync failed"),
    }
    // Let the close reach the peer before the sockets go.
    for endpoint in &endpoints {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, endpoint.wait_idle()).await;
    }
    result
}

pub(super) fn connect_error(e: quinn::ConnectionError) -> NetError {
    match e {
        quinn::ConnectionError::TransportError(t) if t.code.to_string().contains("crypto") => {
            NetError::Connect(format!("handshake refused ({t}): wrong device key, or not admitted"))
        }
        quinn::ConnectionError::ConnectionClosed(c)
            if c.error_code.to_string().contains("crypto") =>
        {
            NetError::Connect(format!("the other device refused this one ({c})"))
        }
        e => NetError::Connect(e.to_string()),
    }
}

pub(super) fn connection_error(e: quinn::ConnectionError) -> NetError {
    match e {
        e @ (quinn::ConnectionError::TransportError(_)
        | quinn::ConnectionError::ConnectionClosed(_)) => connect_error(e),
        quinn::ConnectionError::TimedOut => NetError::Timeout("the peer went silent".into()),
        e => NetError::Connection(e.to_string()),
    }
}

pub(super) fn read_error(e: quinn::ReadError) -> NetError {
    match e {
        quinn::ReadError::ConnectionLost(c) => connection_error(c),
        e => NetError::Connection(e.to_string()),
    }
}

pub(super) fn write_error(e: quinn::WriteError) -> NetError {
    match e {
        quinn::WriteError::ConnectionLost(c) => connection_error(c),
        e => NetError::Connection(e.to_string()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Ends the session when both sides are done.
    Client,
    /// Stays in live mode until the client finishes its stream.
    Listener,
}

/// Runs store work for the session on the blocking pool.
async fn blocking<T: Send + 'static>(
    device: &Arc<Device>,
    session: &Arc<Mutex<Session>>,
    f: impl FnOnce(&mut Session, &mut &Device) -> Result<T, SyncError> + Send + 'static,
) -> Result<T, NetError> {
    let device = device.clone();
    let session = session.clone();
    tokio::task::spawn_blocking(move || {
        let mut store: &Device = &device;
        f(&mut session.lock(), &mut store)
    })
    .await
    .map_err(|e| NetError::Internal(e.to_string()))?
    .map_err(NetError::from)
}

async fn drive(
    device: Arc<Device>,
    conn: &quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: DeviceKey,
    role: Role,
    progress: Option<ProgressFn>,
) -> Result<SyncReport, NetError> {
    let started = Instant::now();
    let now = move || started.elapsed().as_millis() as u64;
    let session = Arc::new(Mutex::new(Session::new(device.device_key(), peer, now())));
    blocking(&device, &session, |s, store| s.start(store)).await?;
    // Live mode: the listener pushes what changes on it while the peer stays connected
    // (changes other peers bring included).
    let (changes_tx, mut changes) = mpsc::unbounded_channel::<Vec<DocId>>();
    let _subscription = (role == Role::Listener).then(|| {
        device.subscribe(move |ids| {
            let _ = changes_tx.send(ids.to_vec());
        })
    });
    let mut buf = vec![0u8; READ_CHUNK];
    let mut peer_finished = false;
    // Frames are written by their own task, so this loop keeps reading while a write waits for
    // flow-control credit: two devices each sending more than a stream window to the other
    // would otherwise both block in a write, neither reading, forever.
    let (out, mut outbox) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut writer = tokio::spawn(async move {
        while let Some(f) = outbox.recv().await {
            send.write_all(&f).await.map_err(write_error)?;
        }
        Ok::<_, NetError>(send)
    });
    loop {
        let (frames, events, complete) = {
            let mut s = session.lock();
            let frames: Vec<Vec<u8>> = std::iter::from_fn(|| s.poll_transmit()).collect();
            let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
            (frames, events, s.is_complete())
        };
        for f in frames {
            if out.send(f).is_err() {
                break;
            }
        }
        for e in events {
            match e {
                Event::Progress { docs_done, docs_total, bytes_sent, bytes_received } => {
                    if let Some(p) = &progress {
                        p(&Progress { peer, docs_done, docs_total, bytes_sent, bytes_received });
                    }
                }
                Event::PeerError(e) => return Err(e.into()),
                // The store wiped it and told the change listeners.
                Event::NetworkWiped(n) => tracing::warn!(network = %n, %peer, "removed: wiped"),
                // The session went on without it; why is for this device's log only.
                Event::DocumentRefused { doc, reason } => {
                    tracing::warn!(%doc, %peer, %reason, "the peer's data for a document refused");
                }
                Event::DocumentRefusedByPeer(doc) => {
                    tracing::warn!(%doc, %peer, "the peer refused this device's data for one");
                }
                Event::DocumentUpdated(_) | Event::PeerDone => {}
            }
        }
        if peer_finished || (role == Role::Client && complete) {
            break;
        }
        // No silence timer here: a peer storing a large catch-up says nothing until it is done,
        // for as long as that takes on its disk. Liveness is QUIC's: keep-alives every 4 s and
        // a 20 s idle timeout end the connection (and the session) if the peer is gone.
        tokio::select! {
            biased;
            read = recv.read(&mut buf) => match read.map_err(read_error)? {
                Some(n) => {
                    let bytes = buf[..n].to_vec();
                    let t = now();
                    blocking(&device, &session, move |s, store| s.handle_bytes(store, t, &bytes))
                        .await?;
                }
                None => peer_finished = true,
            },
            Some(ids) = changes.recv() => {
                blocking(&device, &session, move |s, store| {
                    ids.into_iter().try_for_each(|id| s.local_change(store, id))
                })
                .await?;
            }
            // The writer only ends on its own when writing failed.
            written = &mut writer => {
                return Err(match written {
                    Ok(Err(e)) => e,
                    Ok(Ok(_)) => NetError::Internal("the writer stopped".into()),
                    Err(e) => NetError::Internal(e.to_string()),
                });
            }
        }
    }
    if role == Role::Listener && !peer_finished {
        return Err(NetError::Internal("listener left its loop early".into()));
    }
    // Clean shutdown: everything queued is written, then we say we are finished and wait for
    // the peer to say so too.
    drop(out);
    let mut send = match writer.await {
        Ok(Ok(send)) => send,
        Ok(Err(e)) => return Err(e),
        Err(e) => return Err(NetError::Internal(e.to_string())),
    };
    let _ = send.finish();
    if role == Role::Client {
        let drain = async {
            // What the listener pushed after we were done is still good data: keep it.
            while let Ok(Some(n)) = recv.read(&mut buf).await {
                let bytes = buf[..n].to_vec();
                let t = now();
                if blocking(&device, &session, move |s, store| s.handle_bytes(store, t, &bytes))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
    } else {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.closed()).await;
    }
    let s = session.lock();
    let (bytes_sent, bytes_received) = s.bytes();
    let stats = conn.stats();
    Ok(SyncReport {
        peer,
        documents_sent: s.documents_sent(),
        documents_received: s.documents_received(),
        documents_refused: s.documents_refused(),
        documents_refused_by_peer: s.documents_refused_by_peer(),
        bytes_sent,
        bytes_received,
        wire_bytes_sent: stats.udp_tx.bytes,
        wire_bytes_received: stats.udp_rx.bytes,
        duration: started.elapsed(),
    })
}
