//! Relay sync for apps: one sync with a relay (push what it lacks, pull what is new), or a
//! background loop that keeps the device in sync while the app runs.
//!
//! Owns only the conversions: relay keys from strings, reports to records, errors to
//! [`NabijError`]. The exchange lives in [`nabij_core::relay`], the driver in
//! [`nabij_core::net`].

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Mutex},
    time::Duration,
};

use nabij_core::{
    model::ValidationError,
    net::{self as core_net, RelayProgress, RelayProgressFn, RelaySyncOptions},
    relay::{parse_relay_key, relay_key_to_string},
};

use crate::{
    Device,
    error::NabijError,
    net::{ProgressListener, SyncProgress},
};

type Result<T, E = NabijError> = std::result::Result<T, E>;

/// What a finished relay sync did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RelaySyncReport {
    /// Networks exchanged.
    pub networks: u64,
    /// Rosters this device registered with the relay.
    pub rosters_registered: u64,
    /// Blobs pushed and stored durably by the relay.
    pub blobs_pushed: u64,
    /// Their bytes.
    pub bytes_pushed: u64,
    /// Blobs pulled.
    pub blobs_pulled: u64,
    /// Their bytes.
    pub bytes_pulled: u64,
    /// Documents that changed on this device.
    pub documents_changed: u64,
    /// Pulled blobs that were not applied, and why (tampered, no key, …): show or log them.
    pub rejected: Vec<String>,
    /// Pulled blobs no key on this device opens yet (a new key epoch whose key has not come):
    /// kept, and opened at a later sync once it does.
    pub deferred: u64,
    /// Blobs kept at an earlier sync that opened at this one.
    pub opened_later: u64,
    /// Blobs the relay deleted at this device's request (documents erased or unshared here).
    pub blobs_deleted: u64,
    /// Requests the relay refused, and why (not on the roster, quota, …).
    pub refusals: Vec<String>,
    /// From connecting to done, in milliseconds.
    pub duration_ms: u64,
}

impl From<core_net::RelaySyncReport> for RelaySyncReport {
    fn from(r: core_net::RelaySyncReport) -> Self {
        let rep = r.report;
        Self {
            networks: rep.networks as u64,
            rosters_registered: rep.rosters_registered as u64,
            blobs_pushed: rep.blobs_pushed as u64,
            bytes_pushed: rep.bytes_pushed,
            blobs_pulled: rep.blobs_pulled as u64,
            bytes_pulled: rep.bytes_pulled,
            documents_changed: rep.documents_changed as u64,
            rejected: rep
                .rejected
                .iter()
                .map(|b| format!("blob {}: {}", b.seq, b.reason))
                .collect(),
            deferred: rep.deferred as u64,
            opened_later: rep.opened_later as u64,
            blobs_deleted: rep.blobs_deleted,
            refusals: rep
                .refusals
                .iter()
                .map(|f| format!("{}: {} ({})", f.request, f.reason, f.detail))
                .collect(),
            duration_ms: u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

fn relay_key(key: &str) -> Result<[u8; 32]> {
    parse_relay_key(key).map_err(|e| {
        NabijError::from(ValidationError::Invalid { field: "relay key", reason: e.to_string() })
    })
}

fn relay_progress(
    key: String,
    listener: Option<Arc<dyn ProgressListener>>,
) -> Option<RelayProgressFn> {
    listener.map(|listener| -> RelayProgressFn {
        Arc::new(move |p: &RelayProgress| {
            let progress = SyncProgress {
                peer: key.clone(),
                docs_done: p.docs_done as u64,
                docs_total: p.docs_total as u64,
                bytes_sent: p.bytes_sent,
                bytes_received: p.bytes_received,
            };
            // A listener that throws makes uniffi panic; keep that from ending the sync.
            let _ = catch_unwind(AssertUnwindSafe(|| listener.on_progress(progress)));
        })
    })
}

/// Receives the result of each background relay sync.
#[uniffi::export(foreign)]
pub trait RelaySyncListener: Send + Sync {
    /// A sync finished.
    fn on_synced(&self, report: RelaySyncReport);
    /// A sync failed; the loop retries at the next change or tick.
    fn on_failed(&self, error: NabijError);
}

/// A background relay sync. It stops when `stop()` is called or the object is destroyed.
#[derive(uniffi::Object)]
pub struct RelaySyncLoop {
    inner: Mutex<Option<core_net::RelayLoop>>,
}

impl std::fmt::Debug for RelaySyncLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelaySyncLoop")
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl RelaySyncLoop {
    /// Stops the loop, letting a sync in progress finish.
    pub async fn stop(&self) {
        let looped = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(l) = looped {
            l.stop().await;
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// Syncs with the relay at `address` (`host:port`) whose key is `relay_key` (as the relay
    /// printed it, `nabijrelay1…`): pushes what the relay lacks, pulls what others pushed. A
    /// mistyped key is `InvalidInput`; an unreachable relay, or one holding another key, is
    /// `Network`. Blobs that failed to open are listed in the report, not applied.
    #[uniffi::method(default(progress = None, connect_timeout_ms = None))]
    pub async fn sync_with_relay(
        &self,
        address: String,
        relay_key: String,
        progress: Option<Arc<dyn ProgressListener>>,
        connect_timeout_ms: Option<u64>,
    ) -> Result<RelaySyncReport> {
        let key = self::relay_key(&relay_key)?;
        let options = RelaySyncOptions {
            progress: relay_progress(relay_key_to_string(&key), progress),
            connect_timeout: connect_timeout_ms.map(Duration::from_millis),
        };
        Ok(core_net::sync_with_relay(self.inner.clone(), &address, key, options).await?.into())
    }

    /// Keeps this device in sync with a relay while the app runs: a sync a couple of seconds
    /// after local changes settle, and one every `every_seconds` to pull others' changes.
    #[uniffi::method(default(listener = None))]
    pub async fn start_relay_sync(
        &self,
        address: String,
        relay_key: String,
        every_seconds: u64,
        listener: Option<Arc<dyn RelaySyncListener>>,
    ) -> Result<Arc<RelaySyncLoop>> {
        let key = self::relay_key(&relay_key)?;
        let on_sync: Option<core_net::OnRelaySync> = listener.map(|l| -> core_net::OnRelaySync {
            Arc::new(
                move |r: &std::result::Result<core_net::RelaySyncReport, core_net::NetError>| {
                    let _ = catch_unwind(AssertUnwindSafe(|| match r {
                        Ok(report) => l.on_synced(report.clone().into()),
                        Err(e) => l.on_failed(NabijError::from(e)),
                    }));
                },
            )
        });
        let looped = core_net::spawn_relay_loop(
            self.inner.clone(),
            address,
            key,
            Duration::from_secs(2),
            Duration::from_secs(every_seconds.max(1)),
            on_sync,
        );
        Ok(Arc::new(RelaySyncLoop { inner: Mutex::new(Some(looped)) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_keys_parse_and_bad_ones_are_invalid_input() {
        let text = relay_key_to_string(&[9; 32]);
        assert_eq!(relay_key(&text), Ok([9; 32]));
        for bad in ["", "nabijrelay1", "nabij1abc", &text[..text.len() - 1]] {
            let e = relay_key(bad).expect_err(bad);
            assert!(matches!(e, NabijError::InvalidInput { .. }), "{bad}: {e:?}");
        }
    }
}
