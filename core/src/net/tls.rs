//! TLS for QUIC between devices: certificates that carry the device's Ed25519 key, and
//! verifiers that pin keys instead of trusting any certificate authority.
//!
//! Each device signs its own certificate with its device key (rcgen). A connecting device
//! pins the key from the ticket it was given; a listening device accepts only keys that some
//! network it holds lists alongside its own (or keys pinned explicitly). Everything else fails
//! in the handshake, before a byte of the sync protocol is read. Only TLS 1.3 and Ed25519.
//!
//! Owns certificate building and peer-key checks; knows nothing of sessions or stores.

use std::sync::Arc;

use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime},
    server::danger::{ClientCertVerified, ClientCertVerifier},
};

use super::NetError;
use crate::{identity::DeviceIdentity, ids::DeviceKey};

/// ALPN of the sync protocol, version 1.
pub const ALPN: &[u8] = b"nabij/1";

/// The name every device presents and expects; identity comes from the pinned key, not it.
pub(crate) const SERVER_NAME: &str = "nabij.device";

/// Decides which device keys a listening device accepts.
pub type PeerPolicy = Arc<dyn Fn(&DeviceKey) -> bool + Send + Sync>;

/// SubjectPublicKeyInfo of an Ed25519 key, before the 32 key bytes (RFC 8410): a SEQUENCE of
/// the algorithm identifier 1.3.101.112 and a BIT STRING with no unused bits.
const ED25519_SPKI_PREFIX: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The device's certificate and key for TLS.
pub(crate) struct Credentials {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: PrivatePkcs8KeyDer<'static>,
}

impl Credentials {
    pub(crate) fn new(identity: &DeviceIdentity) -> Result<Self, NetError> {
        let tls = |e: rcgen::Error| NetError::Tls(e.to_string());
        let pkcs8 = identity.pkcs8_der().map_err(|e| NetError::Tls(e.to_string()))?;
        let key = PrivatePkcs8KeyDer::from(pkcs8);
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key, &rcgen::PKCS_ED25519)
            .map_err(tls)?;
        let mut params =
            rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()]).map_err(tls)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("nabij device {}", identity.public_key()));
        let cert = params.self_signed(&pair).map_err(tls)?;
        Ok(Self { cert: cert.der().clone(), key })
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// The device key a certificate carries; anything but an Ed25519 certificate is refused.
pub fn key_of(cert: &CertificateDer<'_>) -> Result<DeviceKey, rustls::Error> {
    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|_| bad())?;
    let spki = ee.subject_public_key_info();
    let spki = spki.as_ref();
    match spki.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) => DeviceKey::from_slice(key).ok_or_else(bad),
        None => Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
    }
}

fn refused() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

fn no_tls12() -> rustls::Error {
    rustls::Error::General("TLS 1.2 is not used between devices".into())
}

/// The connecting side's check: the listener must hold exactly the ticket's key.
#[derive(Debug)]
struct PinnedServer {
    expected: DeviceKey,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Validity dates are not checked: the pinned key is the trust, and phones' clocks
        // are often wrong.
        if key_of(end_entity)? == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(refused())
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// The listening side's check: the client's key must pass the device's policy.
struct PinnedClients {
    policy: PeerPolicy,
    algorithms: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for PinnedClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinnedClients")
    }
}

impl ClientCertVerifier for PinnedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let key = key_of(end_entity)?;
        if (self.policy)(&key) {
            Ok(ClientCertVerified::assertion())
        } else {
            tracing::info!(peer = %key, "refused a device no shared network lists");
            Err(refused())
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
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
    let provider = provider();
    let verifier = PinnedClients { policy, algorithms: provider.signature_verification_algorithms };
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![creds.cert.clone()], creds.key_der())
        .map_err(|e| NetError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
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
    let provider = provider();
    let verifier =
        PinnedServer { expected, algorithms: provider.signature_verification_algorithms };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(vec![creds.cert.clone()], creds.key_der())
        .map_err(|e| NetError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport());
    Ok(config)
}

/// The authenticated key of the peer on an established connection.
pub(crate) fn peer_key(conn: &quinn::Connection) -> Result<DeviceKey, NetError> {
    let certs = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| NetError::Tls("peer presented no certificate".into()))?;
    let cert = certs.first().ok_or_else(|| NetError::Tls("empty certificate chain".into()))?;
    key_of(cert).map_err(|e| NetError::Tls(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_carries_the_device_key() {
        let id = DeviceIdentity::generate().unwrap();
        let creds = Credentials::new(&id).unwrap();
        assert_eq!(key_of(&creds.cert).unwrap(), id.public_key());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let junk = CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]);
        assert!(key_of(&junk).is_err());
    }
}
