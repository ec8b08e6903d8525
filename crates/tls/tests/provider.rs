//! The crypto provider (docs/embedding.md, "Crypto provider"): when the application installed a
//! process-default rustls provider, the configs and verifiers built without an explicit one use
//! it, for the handshake and for the peer's signatures; the `*_with_provider` variants use the
//! one they are given.
//!
//! This test binary is its own process: every test first installs the same restricted process
//! default (TLS 1.3 ChaCha20-Poly1305 only, no ECDSA P-256 signature verification), built from
//! the features' provider, so what the configs negotiate and refuse shows which provider they
//! hold. The test SVIDs are ECDSA P-256.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, alg_id};
use rustls::server::danger::ClientCertVerifier;
use rustls::{CipherSuite, SignatureScheme};
use spiffe_helper_testkit::certs::{self, TestCa};
use spiffe_helper_testkit::fake::FakeAgent;
use spiffe_workload_client::{Endpoint, WorkloadApiClient, X509Source};
use spiffe_workload_tls::{
    Authorizer, Error, SpiffeAcceptor, SpiffeClientVerifier, SpiffeConnector, SpiffeServerVerifier,
    builtin_provider, crypto_provider, tls_client_config, tls_client_config_with_provider,
    tls_server_config, tls_server_config_with_provider,
};
use tokio::net::TcpListener;

const SERVER: &str = "spiffe://example.org/server";

/// `provider` with only the cipher suites in `suites`.
fn with_suites(provider: &CryptoProvider, suites: &[CipherSuite]) -> CryptoProvider {
    CryptoProvider {
        cipher_suites: provider
            .cipher_suites
            .iter()
            .filter(|s| suites.contains(&s.suite()))
            .copied()
            .collect(),
        ..provider.clone()
    }
}

/// The process default of this test binary, installed once: the features' provider with
/// ChaCha20-Poly1305 as its only suite and no ECDSA P-256 among its verification algorithms.
fn install_restricted_default() -> Arc<CryptoProvider> {
    static INSTALLED: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let builtin = builtin_provider();
            let algs = builtin.signature_verification_algorithms;
            let all: Vec<_> = algs
                .all
                .iter()
                .filter(|a| a.public_key_alg_id() != alg_id::ECDSA_P256)
                .copied()
                .collect();
            let mapping: Vec<_> = algs
                .mapping
                .iter()
                .filter(|(scheme, _)| *scheme != SignatureScheme::ECDSA_NISTP256_SHA256)
                .copied()
                .collect();
            let provider = CryptoProvider {
                signature_verification_algorithms: WebPkiSupportedAlgorithms {
                    all: Vec::leak(all),
                    mapping: Vec::leak(mapping),
                },
                ..with_suites(&builtin, &[CipherSuite::TLS13_CHACHA20_POLY1305_SHA256])
            };
            provider
                .install_default()
                .expect("nothing else in this process installs a default");
            CryptoProvider::get_default()
                .expect("just installed")
                .clone()
        })
        .clone()
}

struct Agent {
    _fake: FakeAgent,
    source: X509Source,
    ca: TestCa,
}

async fn agent() -> Agent {
    let ca = TestCa::root("example.org");
    let svid = ca.issue(SERVER, Duration::from_secs(3600));
    let fake = FakeAgent::start().await;
    fake.push_x509(certs::x509_response(&[(&svid, "")], &[ca.der()], &[]));
    let client = WorkloadApiClient::new(Endpoint::parse(&fake.endpoint()).unwrap());
    let source = X509Source::builder().client(client).build().await.unwrap();
    Agent {
        _fake: fake,
        source,
        ca,
    }
}

/// Serves one TLS handshake; returns the address and the server side's result.
async fn serve_once(
    acceptor: SpiffeAcceptor,
) -> (SocketAddr, tokio::task::JoinHandle<Result<(), Error>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await.map(|_| ())
    });
    (addr, task)
}

/// One handshake; the suite both sides agreed on, or the client's error.
async fn negotiate(
    server: rustls::ServerConfig,
    client: rustls::ClientConfig,
) -> Result<CipherSuite, Error> {
    let (addr, server) = serve_once(SpiffeAcceptor::new(server)).await;
    let result = SpiffeConnector::new(client)
        .dial(addr)
        .await
        .map(|(stream, _)| {
            stream
                .get_ref()
                .1
                .negotiated_cipher_suite()
                .expect("a finished handshake has a suite")
                .suite()
        });
    let server = server.await.unwrap();
    if result.is_ok() {
        server.unwrap();
    }
    result
}

#[test]
fn crypto_provider_is_the_process_default_once_installed() {
    let installed = install_restricted_default();
    assert!(Arc::ptr_eq(&crypto_provider(), &installed));
    assert!(!Arc::ptr_eq(&crypto_provider(), &builtin_provider()));
}

#[tokio::test]
async fn configs_built_without_a_provider_negotiate_with_the_process_default() {
    install_restricted_default();
    let a = agent().await;
    let any = || Authorizer::any();
    let client =
        || tls_client_config_with_provider(Arc::new(a.source.clone()), any(), &builtin_provider());

    // The client offers every suite of the features' provider, AES-GCM first; the server built
    // without a provider holds the process default, which has only ChaCha20-Poly1305.
    let suite = negotiate(tls_server_config(&a.source).unwrap(), client().unwrap())
        .await
        .unwrap();
    assert_eq!(suite, CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);

    // The same server with the features' provider given explicitly takes the client's first
    // choice.
    let explicit = tls_server_config_with_provider(&a.source, &builtin_provider()).unwrap();
    let suite = negotiate(explicit, client().unwrap()).await.unwrap();
    assert_ne!(suite, CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);

    // An explicit provider wins over the process default: a client on AES-128-GCM alone shares
    // no suite with the default-built server.
    let aes_only = Arc::new(with_suites(
        &builtin_provider(),
        &[CipherSuite::TLS13_AES_128_GCM_SHA256],
    ));
    let aes_client =
        tls_client_config_with_provider(Arc::new(a.source.clone()), any(), &aes_only).unwrap();
    let err = negotiate(tls_server_config(&a.source).unwrap(), aes_client)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Handshake(_)), "{err}");
}

#[tokio::test]
async fn a_client_built_without_a_provider_checks_signatures_with_the_process_default() {
    install_restricted_default();
    let a = agent().await;
    let server = || tls_server_config_with_provider(&a.source, &builtin_provider()).unwrap();

    // The process default cannot verify ECDSA P-256, which the server's SVID is signed and
    // signs with: no handshake.
    let client = tls_client_config(Arc::new(a.source.clone()), Authorizer::any()).unwrap();
    assert!(negotiate(server(), client).await.is_err());

    // The features' provider can.
    let client = tls_client_config_with_provider(
        Arc::new(a.source.clone()),
        Authorizer::any(),
        &builtin_provider(),
    )
    .unwrap();
    negotiate(server(), client).await.unwrap();
}

#[tokio::test]
async fn verifiers_check_chains_with_their_provider() {
    install_restricted_default();
    let a = agent().await;
    let svid = a.ca.issue(SERVER, Duration::from_secs(3600));
    let leaf = CertificateDer::from(svid.chain[0].clone());
    let now = UnixTime::now();
    let name = ServerName::try_from("example.org").unwrap();
    let bundles = || Arc::new(a.source.clone());

    let by_default = SpiffeServerVerifier::new(bundles(), Authorizer::any());
    assert!(
        !by_default
            .supported_verify_schemes()
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
    );
    // The chain's P-256 signature is what it cannot check, not anything else about the SVID.
    let unsupported =
        |err: &rustls::Error| format!("{err:?}").contains("UnsupportedSignatureAlgorithm");
    let err = by_default
        .verify_server_cert(&leaf, &[], &name, &[], now)
        .unwrap_err();
    assert!(unsupported(&err), "{err:?}");
    let err = SpiffeClientVerifier::new(bundles(), Authorizer::any())
        .verify_client_cert(&leaf, &[], now)
        .unwrap_err();
    assert!(unsupported(&err), "{err:?}");

    let explicit =
        SpiffeServerVerifier::with_provider(bundles(), Authorizer::any(), &builtin_provider());
    assert!(
        explicit
            .supported_verify_schemes()
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
    );
    explicit
        .verify_server_cert(&leaf, &[], &name, &[], now)
        .unwrap();
    SpiffeClientVerifier::with_provider(bundles(), Authorizer::any(), &builtin_provider())
        .verify_client_cert(&leaf, &[], now)
        .unwrap();
}
