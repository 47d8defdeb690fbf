//! A UDP fault proxy: sits between a device and a listener and delays, reorders, duplicates
//! and drops datagrams, from a seed. This kernel has no `netem`, so these faults come from
//! here; loss, blackouts and bandwidth limits come from iptables and `tc tbf` in namespaces.
//!
//! Reordering is a consequence of independent random delays: a datagram delayed 40 ms
//! arrives after one sent 10 ms later with a 5 ms delay.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::UdpSocket, sync::Mutex, task::JoinHandle};

use crate::Rng;

/// What the proxy does to each datagram, each way.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Delay range in milliseconds (uniform); a range wider than the gap between datagrams
    /// reorders them.
    pub delay_ms: (u64, u64),
    /// Probability a datagram is sent twice (the copy with its own delay).
    pub duplicate: f64,
    /// Probability a datagram is dropped.
    pub drop: f64,
}

/// Datagrams seen, dropped and duplicated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProxyStats {
    /// Datagrams received from either side.
    pub seen: u64,
    /// Dropped.
    pub dropped: u64,
    /// Sent twice.
    pub duplicated: u64,
}

/// A running proxy; dropping it stops it.
pub struct FaultProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
    stats: Arc<std::sync::Mutex<ProxyStats>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on loopback that forwards to `upstream`.
    pub async fn start(upstream: SocketAddr, faults: Faults, seed: u64) -> std::io::Result<Self> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let stats = Arc::new(std::sync::Mutex::new(ProxyStats::default()));
        let rng = Arc::new(Mutex::new(Rng::new(seed)));
        let task_stats = stats.clone();
        let task = tokio::spawn(async move {
            // One upstream socket per client address, so replies find their way back.
            let mut backs: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = vec![0u8; 65_536];
            let mut tasks = tokio::task::JoinSet::new();
            loop {
                let Ok((n, client)) = front.recv_from(&mut buf).await else { break };
                let back = match backs.get(&client) {
                    Some(b) => b.clone(),
                    None => {
                        let Ok(b) = UdpSocket::bind("127.0.0.1:0").await else { break };
                        if b.connect(upstream).await.is_err() {
                            break;
                        }
                        let b = Arc::new(b);
                        backs.insert(client, b.clone());
                        // Replies from upstream go back to this client, with faults too.
                        let (front, b2, rng, stats) =
                            (front.clone(), b.clone(), rng.clone(), task_stats.clone());
                        tasks.spawn(async move {
                            let mut buf = vec![0u8; 65_536];
                            while let Ok(n) = b2.recv(&mut buf).await {
                                let data = buf[..n].to_vec();
                                let front = front.clone();
                                forward(data, faults, &rng, &stats, move |d| {
                                    let front = front.clone();
                                    async move {
                                        let _ = front.send_to(&d, client).await;
                                    }
                                })
                                .await;
                            }
                        });
                        b
                    }
                };
                let data = buf[..n].to_vec();
                forward(data, faults, &rng, &task_stats, move |d| {
                    let back = back.clone();
                    async move {
                        let _ = back.send(&d).await;
                    }
                })
                .await;
            }
        });
        Ok(Self { addr, task, stats })
    }

    /// Where devices should send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn forward<F, Fut>(
    data: Vec<u8>,
    faults: Faults,
    rng: &Mutex<Rng>,
    stats: &std::sync::Mutex<ProxyStats>,
    send: F,
) where
    F: Fn(Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (drop, copies, delays) = {
        let mut rng = rng.lock().await;
        let drop = (rng.below(1_000_000) as f64 / 1e6) < faults.drop;
        let copies = if (rng.below(1_000_000) as f64 / 1e6) < faults.duplicate { 2 } else { 1 };
        let (lo, hi) = faults.delay_ms;
        let mut delays = Vec::new();
        for _ in 0..copies {
            delays.push(lo + rng.below(hi.saturating_sub(lo) + 1));
        }
        (drop, copies, delays)
    };
    {
        let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
        s.seen += 1;
        if drop {
            s.dropped += 1;
        } else if copies > 1 {
            s.duplicated += 1;
        }
    }
    if drop {
        return;
    }
    let send = Arc::new(send);
    for delay in delays {
        let (data, send) = (data.clone(), send.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            send(data).await;
        });
    }
}
