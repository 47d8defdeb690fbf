//! Meeting sync for apps: listening with a ticket, syncing with a ticket, progress callbacks,
//! reports, and device cards (how a new device is added to a network).
//!
//! Owns only the conversions: socket addresses and tickets from strings, counts to `u64`,
//! durations to milliseconds, [`nabij_core::net::NetError`] to [`NabijError`]. The driver,
//! TLS and the protocol live in [`nabij_core::net`] and [`nabij_core::sync`].
//!
//! The async methods run on tokio (uniffi's `tokio` runtime support): they are `suspend`
//! functions in Kotlin, `async` in Swift, awaitables in Python.

use std::{
    net::SocketAddr,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use nabij_core::{
    DocId,
    model::ValidationError,
    net::{self as core_net, DeviceCard, ListenOptions, ProgressFn, SyncOptions, Ticket},
};

use crate::{
    Device,
    error::{NabijError, parse_id, parse_opt_id},
};

type Result<T, E = NabijError> = std::result::Result<T, E>;

/// How far a sync with one device is, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    /// The other device's key.
    pub peer: String,
    /// Documents whose exchange finished.
    pub docs_done: u64,
    /// Documents known (so far) to need an exchange.
    pub docs_total: u64,
    /// Sync-protocol bytes sent so far.
    pub bytes_sent: u64,
    /// Sync-protocol bytes received so far.
    pub bytes_received: u64,
}

impl From<&core_net::Progress> for SyncProgress {
    fn from(p: &core_net::Progress) -> Self {
        Self {
            peer: p.peer.to_string(),
            docs_done: p.docs_done as u64,
            docs_total: p.docs_total as u64,
            bytes_sent: p.bytes_sent,
            bytes_received: p.bytes_received,
        }
    }
}

/// What a finished sync did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// The other device's key.
    pub peer: String,
    /// Documents this device sent whole or sent changes of.
    pub documents_sent: u64,
    /// Documents the other device's data changed here.
    pub documents_received: u64,
    /// Documents whose data from the other device this device refused: nothing of them was
    /// stored, the rest of the meeting went on (the log says why).
    pub documents_refused: u64,
    /// Documents whose data from this device the other device refused.
    pub documents_refused_by_peer: u64,
    /// Sync-protocol bytes sent.
    pub bytes_sent: u64,
    /// Sync-protocol bytes received.
    pub bytes_received: u64,
    /// UDP bytes sent, QUIC and TLS included.
    pub wire_bytes_sent: u64,
    /// UDP bytes received, QUIC and TLS included.
    pub wire_bytes_received: u64,
    /// From connecting to both sides being done, in milliseconds.
    pub duration_ms: u64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<core_net::SyncReport> for SyncReport {
    fn from(r: core_net::SyncReport) -> Self {
        Self {
            peer: r.peer.to_string(),
            documents_sent: r.documents_sent as u64,
            documents_received: r.documents_received as u64,
            documents_refused: r.documents_refused as u64,
            documents_refused_by_peer: r.documents_refused_by_peer as u64,
            bytes_sent: r.bytes_sent,
            bytes_received: r.bytes_received,
            wire_bytes_sent: r.wire_bytes_sent,
            wire_bytes_received: r.wire_bytes_received,
            duration_ms: millis(r.duration),
        }
    }
}

/// What a device card says: the device, its member and the member's name. Show it before
/// adding the device to a network.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DeviceCardInfo {
    /// The device's key.
    pub device_key: String,
    /// The member (worker) the device belongs to.
    pub member_id: String,
    /// The member's display name.
    pub name: String,
}

impl From<DeviceCard> for DeviceCardInfo {
    fn from(c: DeviceCard) -> Self {
        Self { device_key: c.device.to_string(), member_id: c.member.to_string(), name: c.name }
    }
}

/// Reads a device card (as [`Device::device_card`] makes it). A mistyped or cut-short card is
/// `InvalidInput`.
#[uniffi::export]
pub fn read_device_card(card: String) -> Result<DeviceCardInfo> {
    Ok(DeviceCard::parse(&card)?.into())
}

/// Receives progress while a sync runs.
///
/// Called from a network thread while the sync runs (for a listener: once per peer's
/// progress, the peer named in the record). Keep it short (hand the record to your UI thread).
/// An exception thrown by the listener is swallowed: it does not fail the sync.
#[uniffi::export(foreign)]
pub trait ProgressListener: Send + Sync {
    /// The sync went further.
    fn on_progress(&self, progress: SyncProgress);
}

fn progress_fn(listener: Option<Arc<dyn ProgressListener>>) -> Option<ProgressFn> {
    listener.map(|listener| -> ProgressFn {
        Arc::new(move |p: &core_net::Progress| {
            let progress = SyncProgress::from(p);
            // A listener that throws makes uniffi panic; keep that from ending the sync.
            let _ = catch_unwind(AssertUnwindSafe(|| listener.on_progress(progress)));
        })
    })
}

fn parse_bind(bind: &str) -> Result<SocketAddr> {
    bind.trim().parse::<SocketAddr>().map_err(|e| {
        NabijError::from(ValidationError::Invalid {
            field: "bind address",
            reason: format!("`{bind}`: {e} (expected ip:port, such as 127.0.0.1:0)"),
        })
    })
}

/// A device listening for others to sync with it. Show [`MeetingListener::ticket`] (as text or
/// a QR code); each device that syncs with it is served until it is done.
///
/// Listening stops when `stop()` is called or when the object is destroyed, whichever comes
/// first. Garbage-collected languages destroy late: call `stop()` when the meeting screen goes
/// away.
#[derive(uniffi::Object)]
pub struct MeetingListener {
    inner: Mutex<Option<core_net::Listener>>,
    ticket: String,
    port: u16,
}

impl MeetingListener {
    fn slot(&self) -> MutexGuard<'_, Option<core_net::Listener>> {
        // A poisoned lock only means a panic elsewhere; the slot is still consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for MeetingListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeetingListener")
            .field("ticket", &self.ticket)
            .field("port", &self.port)
            .field("listening", &self.is_listening())
            .finish()
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl MeetingListener {
    /// The ticket other devices sync with (`nabij1…`): this device's key, addresses and port.
    pub fn ticket(&self) -> String {
        self.ticket.clone()
    }

    /// The UDP port listened on.
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// Whether it still listens: false once `stop()` was called.
    pub fn is_listening(&self) -> bool {
        self.slot().is_some()
    }

    /// Stops listening, ends the sessions still running and waits (a few seconds at most) for
    /// their devices to be told. Calling it twice is harmless.
    pub async fn stop(&self) {
        let listener = self.slot().take();
        if let Some(listener) = listener {
            listener.close().await;
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Device {
    /// This device's card (`nabijcard1…`): its key, member id and display name. A member of a
    /// network adds the device with [`Device::add_member_from_card`].
    pub fn device_card(&self) -> String {
        DeviceCard {
            device: self.inner.device_key(),
            member: self.inner.member_id(),
            name: self.inner.display_name(),
        }
        .encode()
    }

    /// Adds the device on `card` (and its member, if new) to a network. A bad card is
    /// `InvalidInput`.
    pub fn add_member_from_card(&self, network_id: String, card: String) -> Result<()> {
        let network: DocId = parse_id(&network_id)?;
        let card = DeviceCard::parse(&card)?;
        Ok(self.inner.add_member(network, card.member, &card.name, card.device)?)
    }

    /// Adds the device on `card` to a network (as [`Device::add_member_from_card`]) and returns
    /// the invitation its user accepts with [`Device::join`] (a `nabijinvite1…` string). Only
    /// an admin may. A bad card is `InvalidInput`.
    pub fn invite_from_card(&self, network_id: String, card: String) -> Result<String> {
        let network: DocId = parse_id(&network_id)?;
        let card = DeviceCard::parse(&card)?;
        Ok(self.inner.invite(network, card.member, &card.name, card.device)?.encode())
    }

    /// Starts listening for devices to sync with; they sync with the returned listener's
    /// ticket. Devices that share a network with this one are admitted, others refused.
    ///
    /// - `bind`: where to listen, `ip:port` (default `0.0.0.0:0`: every interface, a port the
    ///   system chooses). A bad address is `InvalidInput`; one that cannot be bound, `Network`.
    /// - `network_id`: the network the meeting is for, written on the ticket.
    /// - `progress`: called as each device's sync progresses.
    ///
    /// The listener keeps this device's store open until it stops.
    #[uniffi::method(default(bind = None, network_id = None, progress = None))]
    pub async fn listen(
        &self,
        bind: Option<String>,
        network_id: Option<String>,
        progress: Option<Arc<dyn ProgressListener>>,
    ) -> Result<Arc<MeetingListener>> {
        let mut options = ListenOptions {
            network: parse_opt_id(network_id.as_deref())?,
            progress: progress_fn(progress),
            ..ListenOptions::default()
        };
        if let Some(bind) = bind {
            options.bind = parse_bind(&bind)?;
        }
        let listener = core_net::listen(self.inner.clone(), options).await?;
        let ticket = listener.ticket().encode();
        let port = listener.local_addr()?.port();
        Ok(Arc::new(MeetingListener { inner: Mutex::new(Some(listener)), ticket, port }))
    }

    /// Syncs with the device on `ticket` until neither has anything more to send; returns what
    /// was exchanged. A damaged ticket is `InvalidInput`; a device that cannot be reached,
    /// refuses this one, or goes silent is `Network`. `connect_timeout_ms` bounds the
    /// handshake (default 20,000: room for retransmissions on a lossy link).
    #[uniffi::method(default(progress = None, connect_timeout_ms = None))]
    pub async fn sync_with(
        &self,
        ticket: String,
        progress: Option<Arc<dyn ProgressListener>>,
        connect_timeout_ms: Option<u64>,
    ) -> Result<SyncReport> {
        let ticket = Ticket::parse(&ticket)?;
        let options = SyncOptions {
            progress: progress_fn(progress),
            bind: None,
            connect_timeout: connect_timeout_ms.map(Duration::from_millis),
        };
        Ok(core_net::sync_with(self.inner.clone(), &ticket, options).await?.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_parse_and_bad_ones_are_invalid_input() {
        assert_eq!(parse_bind("127.0.0.1:0"), Ok(SocketAddr::from(([127, 0, 0, 1], 0))));
        assert_eq!(parse_bind(" [::1]:4000 ").map(|a| a.port()), Ok(4000));
        for bad in ["", "127.0.0.1", "localhost:0", "1.2.3.4:99999"] {
            let e = parse_bind(bad).expect_err(bad);
            let NabijError::InvalidInput { message } = e else { panic!("{bad}: {e:?}") };
            assert!(message.contains("bind address"), "{message}");
        }
    }

    #[test]
    fn durations_are_milliseconds() {
        assert_eq!(millis(Duration::from_micros(2_500)), 2);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
