//! TLS for QUIC with pinned Ed25519 keys instead of certificate authorities, for devices and
//! the relay alike.
//!
//! Each side signs its own certificate with its Ed25519 key (rcgen). A connecting side pins
//! the key it expects (from a ticket, or the relay's published key); an accepting side asks a
//! policy whether it takes the client's key. Only TLS 1.3 and Ed25519. Validity dates are not
//! checked: the pinned key is the trust, and phones' clocks are often wrong.
//!
//! Owns certificates and key checks; knows nothing of quinn, sessions or stores.

use std::sync::Arc;

use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime},
    server::danger::{ClientCertVerified, ClientCertVerifier},
};

use crate::PublicKey;

/// Why TLS could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(pub String);

/// Decides which client keys an accepting side takes.
pub type ClientPolicy = Arc<dyn Fn(&PublicKey) -> bool + Send + Sync>;

/// SubjectPublicKeyInfo of an Ed25519 key, before the 32 key bytes (RFC 8410): a SEQUENCE of
/// the algorithm identifier 1.3.101.112 and a BIT STRING with no unused bits.
const ED25519_SPKI_PREFIX: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// The ring provider (no process-wide default is installed or needed).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed certificate carrying an Ed25519 key, and its private key.
pub struct Credentials {
    /// DER certificate.
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

impl Credentials {
    /// Signs a certificate for `key`, naming `server_name` and described by `common_name`.
    pub fn self_signed(
        key: &SigningKey,
        server_name: &str,
        common_name: &str,
    ) -> Result<Self, TlsError> {
        let tls = |e: rcgen::Error| TlsError(e.to_string());
        let pkcs8 = key.to_pkcs8_der().map_err(|e| TlsError(e.to_string()))?;
        let key = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key, &rcgen::PKCS_ED25519)
            .map_err(tls)?;
        let mut params =
            rcgen::CertificateParams::new(vec![server_name.to_string()]).map_err(tls)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&pair).map_err(tls)?;
        Ok(Self { cert: cert.der().clone(), key })
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// The Ed25519 key a certificate carries; anything but an Ed25519 certificate is refused.
pub fn key_of(cert: &CertificateDer<'_>) -> Result<PublicKey, rustls::Error> {
    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|_| bad())?;
    let spki = ee.subject_public_key_info();
    match spki.as_ref().strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) => key.try_into().map_err(|_| bad()),
        None => Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
    }
}

/// The key of the peer of an established connection, from what the TLS layer kept of it
/// (quinn's `Connection::peer_identity`).
pub fn peer_key(identity: Option<Box<dyn std::any::Any>>) -> Result<PublicKey, TlsError> {
    let certs = identity
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| TlsError("peer presented no certificate".into()))?;
    let cert = certs.first().ok_or_else(|| TlsError("empty certificate chain".into()))?;
    key_of(cert).map_err(|e| TlsError(e.to_string()))
}

fn refused() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

fn no_tls12() -> rustls::Error {
    rustls::Error::General("TLS 1.2 is not used".into())
}

/// The connecting side's check: the server must hold exactly the pinned key.
#[derive(Debug)]
struct PinnedServer {
    expected: PublicKey,
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

/// The accepting side's check: the client's key must pass the policy.
struct PolicyClients {
    policy: ClientPolicy,
    algorithms: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for PolicyClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyClients")
    }
}

impl ClientCertVerifier for PolicyClients {
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
        if (self.policy)(&key) { Ok(ClientCertVerified::assertion()) } else { Err(refused()) }
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

/// TLS 1.3 for the accepting side: presents `creds`, takes clients `policy` accepts.
pub fn server_config(
    creds: &Credentials,
    policy: ClientPolicy,
    alpn: &[u8],
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = PolicyClients { policy, algorithms: provider.signature_verification_algorithms };
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError(e.to_string()))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![creds.cert.clone()], creds.key_der())
        .map_err(|e| TlsError(e.to_string()))?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    Ok(tls)
}

/// TLS 1.3 for the connecting side: presents `creds`, accepts only the `expected` key.
pub fn client_config(
    creds: &Credentials,
    expected: PublicKey,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier =
        PinnedServer { expected, algorithms: provider.signature_verification_algorithms };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(vec![creds.cert.clone()], creds.key_der())
        .map_err(|e| TlsError(e.to_string()))?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_carries_the_key() {
        let key = SigningKey::from_bytes(&[4; 32]);
        let creds = Credentials::self_signed(&key, "nabij.test", "test").unwrap();
        assert_eq!(key_of(&creds.cert).unwrap(), key.verifying_key().to_bytes());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let junk = CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]);
        assert!(key_of(&junk).is_err());
    }
}
