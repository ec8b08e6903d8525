//! rustls configs for the four SPIFFE TLS modes of go-spiffe's `tlsconfig`: mTLS server and
//! client, TLS client (authenticates a SPIFFE server, presents nothing) and TLS server
//! (presents its SVID, asks for nothing).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ServerConfig};
use spiffe_workload_client::X509SvidSource;

use crate::resolve::SvidResolver;
use crate::verify::{SpiffeClientVerifier, SpiffeServerVerifier, X509BundleSource};
use crate::{Authorizer, Error};

/// No session resumption on either side: a resumed session skips the verifier, and with it the
/// bundle of the moment and the authorizer. Every connection re-authenticates, as with
/// go-spiffe (Go's client keeps no session cache by default). A caller who prefers resumption
/// can set `resumption` / `session_storage` on the returned config.
fn no_resumption_server(mut config: ServerConfig) -> ServerConfig {
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config
}

fn no_resumption_client(mut config: ClientConfig) -> ClientConfig {
    config.resumption = rustls::client::Resumption::disabled();
    config
}

/// The process default when the application installed one, else the features' provider
/// (docs/embedding.md, "Crypto provider").
fn provider() -> Arc<CryptoProvider> {
    crate::provider::crypto_provider()
}

fn server_builder(
    provider: &Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>, Error> {
    ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(Error::Config)
}

fn client_builder(
    provider: &Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, Error> {
    ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(Error::Config)
}

/// An mTLS server: presents `source`'s SVID, requires a client SVID that verifies against the
/// source's bundles (own and federated) and that `authorizer` allows. `source` is any
/// [`X509SvidSource`]: the agent-backed `X509Source`, a `StaticX509Source`, an
/// `X509FileSource` following the helper's files.
///
/// # Errors
/// [`Error::Key`] when the current SVID's key is unusable, [`Error::Config`] from rustls.
pub fn mtls_server_config<S: X509SvidSource + Clone>(
    source: &S,
    authorizer: Authorizer,
) -> Result<ServerConfig, Error> {
    mtls_server_config_with_provider(source, authorizer, &provider())
}

/// As [`mtls_server_config`], with `provider` for the handshake, the key and the peer's
/// signatures instead of [`crypto_provider`](crate::crypto_provider)'s.
///
/// # Errors
/// As [`mtls_server_config`].
pub fn mtls_server_config_with_provider<S: X509SvidSource + Clone>(
    source: &S,
    authorizer: Authorizer,
    provider: &Arc<CryptoProvider>,
) -> Result<ServerConfig, Error> {
    let verifier =
        SpiffeClientVerifier::with_provider(Arc::new(source.clone()), authorizer, provider);
    let resolver = SvidResolver::new(source.clone(), provider.clone())?;
    Ok(no_resumption_server(
        server_builder(provider)?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(Arc::new(resolver)),
    ))
}

/// A TLS server: presents `source`'s SVID and asks the client for no certificate.
///
/// # Errors
/// As [`mtls_server_config`].
pub fn tls_server_config<S: X509SvidSource + Clone>(source: &S) -> Result<ServerConfig, Error> {
    tls_server_config_with_provider(source, &provider())
}

/// As [`tls_server_config`], with `provider` instead of
/// [`crypto_provider`](crate::crypto_provider)'s.
///
/// # Errors
/// As [`mtls_server_config`].
pub fn tls_server_config_with_provider<S: X509SvidSource + Clone>(
    source: &S,
    provider: &Arc<CryptoProvider>,
) -> Result<ServerConfig, Error> {
    let resolver = SvidResolver::new(source.clone(), provider.clone())?;
    Ok(no_resumption_server(
        server_builder(provider)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver)),
    ))
}

/// An mTLS client: presents `source`'s SVID, requires a server SVID that verifies against the
/// source's bundles and that `authorizer` allows. The server name is not checked.
///
/// # Errors
/// As [`mtls_server_config`].
pub fn mtls_client_config<S: X509SvidSource + Clone>(
    source: &S,
    authorizer: Authorizer,
) -> Result<ClientConfig, Error> {
    mtls_client_config_with_provider(source, authorizer, &provider())
}

/// As [`mtls_client_config`], with `provider` instead of
/// [`crypto_provider`](crate::crypto_provider)'s.
///
/// # Errors
/// As [`mtls_server_config`].
pub fn mtls_client_config_with_provider<S: X509SvidSource + Clone>(
    source: &S,
    authorizer: Authorizer,
    provider: &Arc<CryptoProvider>,
) -> Result<ClientConfig, Error> {
    let verifier =
        SpiffeServerVerifier::with_provider(Arc::new(source.clone()), authorizer, provider);
    let resolver = SvidResolver::new(source.clone(), provider.clone())?;
    Ok(no_resumption_client(
        client_builder(provider)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(Arc::new(resolver)),
    ))
}

/// A TLS client: verifies the server's SVID against `bundles` (an `X509Source` or any
/// [`spiffe_workload_client::BundleSource`]) and `authorizer`, presents no certificate.
///
/// # Errors
/// [`Error::Config`] from rustls.
pub fn tls_client_config(
    bundles: X509BundleSource,
    authorizer: Authorizer,
) -> Result<ClientConfig, Error> {
    tls_client_config_with_provider(bundles, authorizer, &provider())
}

/// As [`tls_client_config`], with `provider` instead of
/// [`crypto_provider`](crate::crypto_provider)'s.
///
/// # Errors
/// As [`tls_client_config`].
pub fn tls_client_config_with_provider(
    bundles: X509BundleSource,
    authorizer: Authorizer,
    provider: &Arc<CryptoProvider>,
) -> Result<ClientConfig, Error> {
    let verifier = SpiffeServerVerifier::with_provider(bundles, authorizer, provider);
    Ok(no_resumption_client(
        client_builder(provider)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth(),
    ))
}
