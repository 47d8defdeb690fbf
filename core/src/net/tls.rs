//! TLS for QUIC between devices: certificates that carry the device's Ed25519 key, and
//! verifiers that pin keys instead of trusting any certificate authority.
//!
//! Each device signs its own certificate with its device key (rcgen). A connecting device
//! pins the key from the ticket it was given; a listening device accepts only keys that some
//! network it holds lists alongside its own (or keys pinned explicitly). Everything else fails
//! in the handshake, before a byte of the sync protocol is read. Only TLS 1.3 and Ed25519.
//!
//! The certificate and verifier mechanics are shared with the relay (`nabij_relay_proto::tls`);
//! this module adds the device's identity, its peer policy and QUIC transport settings.
//!
//! Owns the device's TLS and QUIC configuration; knows nothing of sessions or stores.

use std::sync::Arc;

use nabij_relay_proto::tls as pinned;

use super::NetError;
use crate::{identity::DeviceIdentity, ids::DeviceKey};

/// ALPN of the sync protocol, version 1.
pub const ALPN: &[u8] = b"nabij/1";

/// The name every device presents and expects; identity comes from the pinned key, not it.
pub(crate) const SERVER_NAME: &str = "nabij.device";

/// Decides which device keys a listening device accepts.
pub type PeerPolicy = Arc<dyn Fn(&DeviceKey) -> bool + Send + Sync>;

fn tls(e: pinned::TlsError) -> NetError {
    NetError::Tls(e.0)
}

/// The device's certificate (signed with its device key) and key for TLS.
pub(crate) struct Credentials(pinned::Credentials);

impl Credentials {
    pub(crate) fn new(identity: &DeviceIdentity) -> Result<Self, NetError> {
        let name = format!("nabij device {}", identity.public_key());
        Ok(Self(
            pinned::Credentials::self_signed(identity.signing_key(), SERVER_NAME, &name)
                .map_err(tls)?,
        ))
    }
}

/// The device key a certificate carries; anything but an Ed25519 certificate is refused.
pub fn key_of(cert: &rustls::pki_types::CertificateDer<'_>) -> Result<DeviceKey, rustls::Error> {
    pinned::key_of(cert).map(DeviceKey::from_bytes)
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    // Keep-alives well inside the idle timeout, so a quiet live session stays open and a
    // vanished peer is noticed within seconds rather than minutes.
    t.keep_alive_interval(Some(std::time::Duration::from_secs(4)));
    t.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(20_000))));
    // Meetings happen on one LAN or hotspot: assume a short round trip until measured, so a
    // lost handshake packet is resent after ~0.3 s instead of ~1 s.
    t.initial_rtt(std::time::Duration::from_millis(100));
    t.max_concurrent_uni_streams(0u32.into());
    t.max_concurrent_bidi_streams(4u32.into());
    Arc::new(t)
}

/// Configuration for accepting devices.
pub(crate) fn server_config(
    creds: &Credentials,
    policy: PeerPolicy,
) -> Result<quinn::ServerConfig, NetError> {
    let keys: pinned::ClientPolicy = Arc::new(move |key: &[u8; 32]| {
        let device = DeviceKey::from_bytes(*key);
        let ok = policy(&device);
        if !ok {
            tracing::info!(peer = %device, "refused a device no shared network lists");
        }
        ok
    });
    let tls = pinned::server_config(&creds.0, keys, ALPN).map_err(tls)?;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport());
    Ok(config)
}

/// Configuration for connecting to the device holding `expected`.
pub(crate) fn client_config(
    creds: &Credentials,
    expected: DeviceKey,
) -> Result<quinn::ClientConfig, NetError> {
    client_config_for(creds, *expected.as_bytes(), ALPN)
}

/// Configuration for connecting to whoever holds `expected` (a device or a relay) with
/// protocol `alpn`.
pub(crate) fn client_config_for(
    creds: &Credentials,
    expected: [u8; 32],
    alpn: &[u8],
) -> Result<quinn::ClientConfig, NetError> {
    let tls = pinned::client_config(&creds.0, expected, alpn).map_err(tls)?;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport());
    Ok(config)
}

/// The authenticated key of the peer on an established connection.
pub(crate) fn peer_key(conn: &quinn::Connection) -> Result<DeviceKey, NetError> {
    pinned::peer_key(conn.peer_identity()).map(DeviceKey::from_bytes).map_err(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_carries_the_device_key() {
        let id = DeviceIdentity::generate().unwrap();
        let creds = Credentials::new(&id).unwrap();
        assert_eq!(key_of(&creds.0.cert).unwrap(), id.public_key());
    }
}
