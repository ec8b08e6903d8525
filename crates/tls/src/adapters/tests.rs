#![allow(clippy::unwrap_used, reason = "test code")]

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tower_service::Service as _;

use super::*;

#[test]
fn alpn_defaults_to_h2_then_http1_only_when_unset() {
    let mut none = Vec::new();
    default_alpn(&mut none);
    assert_eq!(none, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    let mut mine = vec![b"http/1.1".to_vec()];
    default_alpn(&mut mine);
    assert_eq!(mine, vec![b"http/1.1".to_vec()]);
}

/// Never reached: the URI is refused before any connection.
#[derive(Debug)]
struct Unreachable;

impl ServerCertVerifier for Unreachable {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::General("unreachable".into()))
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("unreachable".into()))
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("unreachable".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Vec::new()
    }
}

#[tokio::test]
async fn connector_refuses_a_uri_without_a_host() {
    let config = ClientConfig::builder_with_provider(crate::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unreachable))
        .with_no_client_auth();
    let mut connector = SpiffeHttpConnector::new(config);
    let uri: http::Uri = "/no/host".parse().unwrap();
    let Err(err) = connector.call(uri).await else {
        panic!("a URI without a host was dialed");
    };
    assert!(
        matches!(&err, crate::Error::Handshake(io) if io.kind() == std::io::ErrorKind::InvalidInput),
        "{err}"
    );
}
