//! The bundle endpoint server: a hyper service that serves a trust domain's bundle in the
//! SPIFFE bundle format (SPIFFE Trust Domain and Bundle §4, served as §5 describes), and a TLS accept loop for it.

use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use spiffe_workload_client::{
    BundleSource, CancellationToken, JwtBundle, SpiffeBundle, TrustDomain, X509SvidSource,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::FederationError;

/// How long a client may take for the handshake and its request.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// A bundle that can be replaced while it is served: what a test or a small service hands to
/// [`BundleEndpointHandler`] when it rotates the bundle itself.
#[derive(Clone)]
pub struct SharedSpiffeBundle(Arc<RwLock<Arc<SpiffeBundle>>>);

impl SharedSpiffeBundle {
    /// Serves `bundle` until [`set`](Self::set) replaces it.
    #[must_use]
    pub fn new(bundle: SpiffeBundle) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(bundle))))
    }

    /// Replaces the bundle (the next request gets it).
    pub fn set(&self, bundle: SpiffeBundle) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(bundle);
    }

    /// The bundle now.
    #[must_use]
    pub fn get(&self) -> Arc<SpiffeBundle> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for SharedSpiffeBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedSpiffeBundle({})", self.get().trust_domain())
    }
}

impl BundleSource for SharedSpiffeBundle {
    type Bundle = SpiffeBundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<SpiffeBundle>> {
        let bundle = self.get();
        (bundle.trust_domain() == trust_domain).then_some(bundle)
    }
}

/// The bundles of an [`X509SvidSource`] (for example the agent-backed `X509Source`), with the
/// JWT authorities of a JWT bundle source (for example `JwtSource`) when given, as SPIFFE
/// bundles: what a workload serves to publish its own trust domain's bundle. A trust domain is
/// served when the X.509 source has its bundle.
#[derive(Clone)]
pub struct SvidSourceBundle<S> {
    x509: S,
    jwt: Option<Arc<dyn BundleSource<Bundle = JwtBundle>>>,
}

impl<S: X509SvidSource> SvidSourceBundle<S> {
    /// The X.509 authorities of `x509`, no JWT authorities.
    #[must_use]
    pub fn new(x509: S) -> Self {
        Self { x509, jwt: None }
    }

    /// Also the JWT authorities of `jwt` (for the same trust domain).
    #[must_use]
    pub fn with_jwt(mut self, jwt: impl BundleSource<Bundle = JwtBundle> + 'static) -> Self {
        self.jwt = Some(Arc::new(jwt));
        self
    }
}

impl<S> fmt::Debug for SvidSourceBundle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SvidSourceBundle")
            .field("jwt", &self.jwt.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: X509SvidSource> BundleSource for SvidSourceBundle<S> {
    type Bundle = SpiffeBundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<SpiffeBundle>> {
        let x509 = self.x509.bundle_for(trust_domain)?;
        let jwt = self.jwt.as_ref().and_then(|j| j.bundle_for(trust_domain));
        Some(Arc::new(SpiffeBundle::from_parts(
            trust_domain.clone(),
            Some(&x509),
            jwt.as_deref(),
        )))
    }
}

/// A hyper service that answers `GET` (any path) with the bundle of one trust domain as the
/// standard's JSON (`Content-Type: application/json`), like go-spiffe's `federation.Handler`.
/// Other methods get 405; 503 while the source has no bundle for the trust domain.
///
/// ```no_run
/// use spiffe_workload_client::X509Source;
/// use spiffe_workload_tls::federation::{
///     BundleEndpointHandler, SvidSourceBundle, https_spiffe_server_config, serve_bundle_endpoint,
/// };
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let source = X509Source::builder().build().await?;
/// let td = source.snapshot().svid().spiffe_id().trust_domain().clone();
/// let handler = BundleEndpointHandler::new(td, SvidSourceBundle::new(source.clone()));
/// let tls = https_spiffe_server_config(&source)?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// serve_bundle_endpoint(listener, tls.into(), handler, Default::default()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct BundleEndpointHandler {
    trust_domain: TrustDomain,
    source: Arc<dyn BundleSource<Bundle = SpiffeBundle>>,
    refresh_hint: Option<i64>,
}

impl fmt::Debug for BundleEndpointHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleEndpointHandler")
            .field("trust_domain", &self.trust_domain.name())
            .field("refresh_hint", &self.refresh_hint)
            .finish_non_exhaustive()
    }
}

impl BundleEndpointHandler {
    /// Serves `source`'s bundle of `trust_domain`.
    #[must_use]
    pub fn new(
        trust_domain: TrustDomain,
        source: impl BundleSource<Bundle = SpiffeBundle> + 'static,
    ) -> Self {
        Self {
            trust_domain,
            source: Arc::new(source),
            refresh_hint: None,
        }
    }

    /// The `spiffe_refresh_hint` served when the bundle carries none (whole seconds).
    #[must_use]
    pub fn refresh_hint(mut self, hint: Duration) -> Self {
        self.refresh_hint = Some(i64::try_from(hint.as_secs()).unwrap_or(i64::MAX));
        self
    }

    /// The answer to a request with `method` (the service calls this).
    #[must_use]
    pub fn respond(&self, method: &http::Method) -> http::Response<Full<Bytes>> {
        if method != http::Method::GET {
            let mut refused = plain(http::StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
            refused
                .headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
            return refused;
        }
        let Some(bundle) = self.source.bundle_for(&self.trust_domain) else {
            return plain(http::StatusCode::SERVICE_UNAVAILABLE, "no bundle yet\n");
        };
        let mut bundle = Arc::unwrap_or_clone(bundle);
        if bundle.refresh_hint().is_none() {
            bundle.set_refresh_hint(self.refresh_hint);
        }
        match bundle.marshal() {
            Ok(json) => http::Response::builder()
                .status(http::StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(json)))
                .unwrap_or_else(|_| internal_error()),
            Err(error) => {
                tracing::warn!(trust_domain = %self.trust_domain, %error, "bundle cannot be served");
                internal_error()
            }
        }
    }
}

fn plain(status: http::StatusCode, text: &'static str) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn internal_error() -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response
}

impl<B> hyper::service::Service<http::Request<B>> for BundleEndpointHandler {
    type Response = http::Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn call(&self, request: http::Request<B>) -> Self::Future {
        std::future::ready(Ok(self.respond(request.method())))
    }
}

/// The `https_spiffe` server side: presents `source`'s SVID (rotating with it), asks the
/// client for no certificate, speaks HTTP/1.1.
///
/// # Errors
/// As [`tls_server_config`](crate::tls_server_config).
pub fn https_spiffe_server_config<S: X509SvidSource + Clone>(
    source: &S,
) -> Result<ServerConfig, FederationError> {
    let mut config = crate::tls_server_config(source).map_err(FederationError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The `https_web` server side: presents the certificate chain of `cert_pem` (leaf first)
/// with the key of `key_pem` (PKCS#8, SEC1 or PKCS#1), asks the client for no certificate.
///
/// # Errors
/// [`FederationError::Profile`] when the chain or the key does not load or do not match.
pub fn https_web_server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<ServerConfig, FederationError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FederationError::Profile(format!("https_web certificate: {e}")))?;
    if chain.is_empty() {
        return Err(FederationError::Profile(
            "https_web certificate: no CERTIFICATE block".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| FederationError::Profile(format!("https_web key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(crate::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| FederationError::Config(crate::Error::Config(e)))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| FederationError::Profile(format!("https_web certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `handler` over TLS with `tls` on `listener` until `shutdown` is cancelled: one
/// request per connection (HTTP/1.1, no keep-alive), each connection bounded by a timeout.
///
/// # Errors
/// When accepting on `listener` fails.
pub async fn serve_bundle_endpoint(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    handler: BundleEndpointHandler,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let serve = async {
                let stream = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
                hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), handler)
                    .await
                    .map_err(|e| e.to_string())
            };
            tokio::select! {
                () = shutdown.cancelled() => {}
                served = tokio::time::timeout(CONNECTION_TIMEOUT, serve) => {
                    if let Ok(Err(error)) = served {
                        tracing::debug!(%peer, %error, "bundle endpoint connection failed");
                    }
                }
            }
        });
    }
}
