//! A relay for scenarios: in process (SQLite or memory storage, on loopback), or as a child
//! process that can be killed; and a raw client that sends whatever bytes a test wants.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use nabij_relay_proto::{
    PublicKey,
    tls::{self as pinned, Credentials},
    wire::{self, FrameReader, Response},
};
use nabij_sync_server::{Config, Limits, RelayIdentity, endpoint, run};
use tokio::{sync::oneshot, task::JoinHandle};

/// One relay sync of `device` with `relay`, bounded in time: a hang fails the test instead
/// of stalling CI.
pub async fn sync_once(
    device: &Arc<nabij_core::Device>,
    relay: &InProcessRelay,
) -> Result<nabij_core::net::RelaySyncReport, nabij_core::net::NetError> {
    tokio::time::timeout(
        Duration::from_secs(120),
        nabij_core::net::sync_with_relay(
            device.clone(),
            &relay.address,
            relay.key,
            nabij_core::net::RelaySyncOptions::default(),
        ),
    )
    .await
    .expect("relay sync did not finish in time")
}

/// One relay sync of `d` through its real relay session against `relay`'s rules in memory,
/// with no transport; `rewrite` may change each answer before the device sees it (a relay
/// operator reordering, say). A stall fails the test.
pub fn sync_in_memory(
    d: &nabij_core::Device,
    relay: &nabij_sync_server::Relay<nabij_sync_server::storage::MemoryStorage>,
    relay_key: PublicKey,
    mut rewrite: impl FnMut(&mut Response),
) -> nabij_core::relay::RelayReport {
    let me = *d.device_key().as_bytes();
    let mut session =
        nabij_core::relay::RelaySession::new(nabij_core::device::DeviceRelay::new(d, relay_key));
    let mut pending = session.start();
    while !session.is_done() {
        assert!(!pending.is_empty(), "stalled: {:?}", session.report());
        for mut a in relay.handle(&me, std::mem::take(&mut pending)) {
            rewrite(&mut a);
            pending.extend(session.handle(a).expect("relay session"));
        }
    }
    session.report().clone()
}

/// A relay running in this process.
pub struct InProcessRelay {
    /// `host:port` for devices.
    pub address: String,
    /// The key devices pin.
    pub key: PublicKey,
    /// Where it keeps its data.
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl InProcessRelay {
    /// Starts a relay with SQLite storage in `dir` on 127.0.0.1.
    pub async fn start(dir: &Path, limits: Limits) -> Self {
        let identity = RelayIdentity::load_or_create(dir).expect("relay key");
        let ep = endpoint("127.0.0.1:0".parse().expect("addr"), &identity).expect("endpoint");
        let addr = ep.local_addr().expect("local addr");
        let config = Config { listen: addr, data_dir: dir.to_path_buf(), limits };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run(ep, config, async {
                let _ = stopped.await;
            })
            .await
            .expect("relay ran");
        });
        Self {
            address: addr.to_string(),
            key: identity.public_key(),
            dir: dir.to_path_buf(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops it gracefully and waits until it has.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("relay task");
        }
    }
}

/// A relay child process (the `relay_node` binary: the `nabij-relay` command line).
pub struct ChildRelay {
    /// `host:port` for devices.
    pub address: String,
    /// The key devices pin (parsed from what it printed).
    pub key: PublicKey,
    /// The process.
    pub child: Child,
}

impl ChildRelay {
    /// Starts `binary` on 127.0.0.1 with `dir` for data and its log (stderr) in `log`.
    pub fn start(binary: &str, dir: &Path, log: &Path, port: u16) -> Self {
        let log_file =
            std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
        let mut child = Command::new(binary)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start relay");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("relay's first line");
        // "nabij relay listening on ADDR key KEY"
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.get(..3), Some(&["nabij", "relay", "listening"][..]), "{line}");
        let address = words[4].to_string();
        let key = nabij_relay_proto::parse_relay_key(words[6]).expect("relay key");
        Self { address, key, child }
    }

    /// Kills it at once (SIGKILL): no chance to finish anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks it to stop (SIGTERM) without waiting.
    pub fn ask_to_stop(&self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
    }

    /// Asks it to stop (SIGTERM) and waits for it.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.ask_to_stop();
        self.child.wait().expect("wait")
    }
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that speaks raw bytes to a relay, with a key of its own.
pub struct RawClient {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    _endpoint: quinn::Endpoint,
}

impl RawClient {
    /// Connects with the Ed25519 key `secret`.
    pub async fn connect(address: &str, relay: PublicKey, secret: [u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(&secret);
        let creds =
            Credentials::self_signed(&key, "nabij.device", "raw test client").expect("cert");
        let tls = pinned::client_config(&creds, relay, wire::ALPN).expect("tls");
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic");
        let config = quinn::ClientConfig::new(Arc::new(quic));
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("ep");
        let addr: SocketAddr = address.parse().expect("relay addr");
        let conn =
            endpoint.connect_with(config, addr, "nabij.relay").expect("connect").await.expect("hs");
        let (send, recv) = conn.open_bi().await.expect("stream");
        Self { conn, send, recv, _endpoint: endpoint }
    }

    /// Sends bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.expect("write");
    }

    /// Ends the sending side (the relay sees the end of the stream).
    pub fn finish(&mut self) {
        let _ = self.send.finish();
    }

    /// Reads the next `n` answers (bounded in time).
    pub async fn answers(&mut self, n: usize) -> Vec<Response> {
        let mut reader = FrameReader::new(64 * 1024 * 1024);
        let mut out = Vec::new();
        let read = async {
            while out.len() < n {
                let Ok(Some(chunk)) = self.recv.read_chunk(1 << 20, true).await else { break };
                let (bodies, error) = reader.feed(&chunk.bytes);
                assert_eq!(error, None, "relay frames");
                for body in bodies {
                    out.push(wire::decode::<Response>(&body).expect("a response"));
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
        out
    }

    /// Closes the connection.
    pub fn close(self) {
        self.conn.close(0u32.into(), b"bye");
    }
}
