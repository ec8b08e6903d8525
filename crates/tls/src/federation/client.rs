//! The bundle endpoint client: one GET over TLS with either profile of the SPIFFE Trust Domain
//! and Bundle standard (§5.2), the answer parsed as a SPIFFE bundle.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use spiffe_workload_client::{BundleSource, SpiffeBundle, SpiffeId, TrustDomain, X509Bundle};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer as _;

use super::FederationError;
use crate::Authorizer;

/// How long one fetch (connect, handshake, request, body) may take by default.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest bundle document accepted (bytes): far above any real bundle, small enough that
/// a broken endpoint cannot make us buffer without bound.
pub const MAX_BUNDLE_SIZE: usize = 4 * 1024 * 1024;

/// How the client authenticates the bundle endpoint (SPIFFE Trust Domain and Bundle §5.2).
#[derive(Clone)]
#[non_exhaustive]
pub enum EndpointProfile {
    /// `https_web`: the endpoint presents a Web PKI certificate for the URL's host that chains
    /// to one of `roots`.
    HttpsWeb {
        /// The trusted roots.
        roots: Arc<RootCertStore>,
    },
    /// `https_spiffe`: the endpoint presents an X.509-SVID with `endpoint_id` that verifies
    /// against `bundle`, the bundle held for the endpoint ID's trust domain. When the
    /// endpoint serves the bundle of its own trust domain, each fetched bundle replaces the
    /// held one (§5.2.2), unless its `spiffe_sequence` is lower than that of the bundle held.
    HttpsSpiffe {
        /// The SPIFFE ID the endpoint must present.
        endpoint_id: SpiffeId,
        /// The bundle of `endpoint_id`'s trust domain to start with.
        bundle: X509Bundle,
    },
}

impl EndpointProfile {
    /// `https_web` trusting `roots`.
    #[must_use]
    pub fn https_web(roots: RootCertStore) -> Self {
        Self::HttpsWeb {
            roots: Arc::new(roots),
        }
    }

    /// `https_web` trusting the `CERTIFICATE` blocks of `pem`.
    ///
    /// # Errors
    /// [`FederationError::Profile`] when `pem` holds no certificate usable as a root.
    pub fn https_web_pem(pem: &[u8]) -> Result<Self, FederationError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| FederationError::Profile(format!("web roots: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| FederationError::Profile(format!("web root: {e}")))?;
        }
        if roots.is_empty() {
            return Err(FederationError::Profile(
                "web roots: no CERTIFICATE block".into(),
            ));
        }
        Ok(Self::https_web(roots))
    }

    /// `https_spiffe`: the endpoint must present `endpoint_id`, verified against `bundle`.
    ///
    /// # Errors
    /// [`FederationError::Profile`] when `bundle` is not the bundle of `endpoint_id`'s trust
    /// domain.
    pub fn https_spiffe(
        endpoint_id: SpiffeId,
        bundle: X509Bundle,
    ) -> Result<Self, FederationError> {
        if bundle.trust_domain() != endpoint_id.trust_domain() {
            return Err(FederationError::Profile(format!(
                "https_spiffe: the bundle is for {}, the endpoint ID {endpoint_id} is in {}",
                bundle.trust_domain(),
                endpoint_id.trust_domain()
            )));
        }
        Ok(Self::HttpsSpiffe {
            endpoint_id,
            bundle,
        })
    }
}

impl fmt::Debug for EndpointProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HttpsWeb { roots } => write!(f, "https_web ({} roots)", roots.len()),
            Self::HttpsSpiffe { endpoint_id, .. } => write!(f, "https_spiffe ({endpoint_id})"),
        }
    }
}

/// The bundle the `https_spiffe` profile authenticates the endpoint with, replaced after each
/// fetch of the endpoint's own trust domain.
struct HeldBundle {
    /// The bundle and the `spiffe_sequence` it came with (none for the configured one).
    bundle: RwLock<(Arc<X509Bundle>, Option<u64>)>,
}

impl HeldBundle {
    fn get(&self) -> Arc<X509Bundle> {
        self.bundle
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    /// Takes the X.509 part of `fetched` unless its sequence number is lower than the one
    /// held: an endpoint that serves an older bundle does not roll the held one back.
    fn update(&self, fetched: &SpiffeBundle) {
        let mut held = self.bundle.write().unwrap_or_else(PoisonError::into_inner);
        let sequence = fetched.sequence_number();
        if let (Some(h), Some(f)) = (held.1, sequence)
            && f < h
        {
            return;
        }
        *held = (Arc::new(fetched.x509_bundle()), sequence.or(held.1));
    }
}

impl BundleSource for HeldBundle {
    type Bundle = X509Bundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<X509Bundle>> {
        let bundle = self.get();
        (bundle.trust_domain() == trust_domain).then_some(bundle)
    }
}

enum Profile {
    Web,
    Spiffe {
        endpoint_id: SpiffeId,
        held: Arc<HeldBundle>,
    },
}

/// Fetches one trust domain's bundle from its bundle endpoint.
///
/// ```no_run
/// use spiffe_workload_client::X509Bundle;
/// use spiffe_workload_tls::federation::{BundleEndpointClient, EndpointProfile};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let td = "partner.example".parse()?;
/// let held = X509Bundle::load("partner.example".parse()?, "partner-bundle.pem")?;
/// let profile =
///     EndpointProfile::https_spiffe("spiffe://partner.example/spire/server".parse()?, held)?;
/// let client = BundleEndpointClient::new("https://127.0.0.1:8443", td, profile)?;
/// let bundle = client.fetch().await?;
/// println!("{} X.509 authorities", bundle.x509_authorities().len());
/// # Ok(())
/// # }
/// ```
pub struct BundleEndpointClient {
    url: String,
    pub(super) host: String,
    pub(super) port: u16,
    authority: String,
    pub(super) path: String,
    trust_domain: TrustDomain,
    profile: Profile,
    config: Arc<ClientConfig>,
    timeout: Duration,
}

impl fmt::Debug for BundleEndpointClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleEndpointClient")
            .field("url", &self.url)
            .field("trust_domain", &self.trust_domain.name())
            .field(
                "profile",
                &match &self.profile {
                    Profile::Web => "https_web".to_owned(),
                    Profile::Spiffe { endpoint_id, .. } => format!("https_spiffe ({endpoint_id})"),
                },
            )
            .finish_non_exhaustive()
    }
}

impl BundleEndpointClient {
    /// A client for the bundle of `trust_domain` at `url` (`https://host[:port][/path]`),
    /// authenticating the endpoint with `profile`, with the crate's
    /// [`crypto_provider`](crate::crypto_provider).
    ///
    /// # Errors
    /// [`FederationError::Url`] for a URL that is not `https` with a host,
    /// [`FederationError::Config`] from rustls.
    pub fn new(
        url: &str,
        trust_domain: TrustDomain,
        profile: EndpointProfile,
    ) -> Result<Self, FederationError> {
        Self::with_provider(url, trust_domain, profile, &crate::crypto_provider())
    }

    /// As [`new`](Self::new), with `provider` for the handshake.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_provider(
        url: &str,
        trust_domain: TrustDomain,
        profile: EndpointProfile,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, FederationError> {
        let bad = |reason: &str| FederationError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("does not parse as a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("the scheme must be https (both profiles use TLS)"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let path = uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str)
            .to_owned();
        let (config, profile) = match profile {
            EndpointProfile::HttpsWeb { roots } => {
                let config = ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| FederationError::Config(crate::Error::Config(e)))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                (config, Profile::Web)
            }
            EndpointProfile::HttpsSpiffe {
                endpoint_id,
                bundle,
            } => {
                let held = Arc::new(HeldBundle {
                    bundle: RwLock::new((Arc::new(bundle), None)),
                });
                let config = crate::tls_client_config_with_provider(
                    held.clone(),
                    Authorizer::exact(endpoint_id.clone()),
                    provider,
                )
                .map_err(FederationError::Config)?;
                (config, Profile::Spiffe { endpoint_id, held })
            }
        };
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            url: url.to_owned(),
            port: authority.port_u16().unwrap_or(443),
            authority: authority.as_str().to_owned(),
            host,
            path,
            trust_domain,
            profile,
            config: Arc::new(config),
            timeout: DEFAULT_FETCH_TIMEOUT,
        })
    }

    /// Sets the time one fetch may take (default [`DEFAULT_FETCH_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The trust domain whose bundle is fetched.
    #[must_use]
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The endpoint URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// With `https_spiffe`, the bundle the endpoint is authenticated with now.
    #[must_use]
    pub fn endpoint_bundle(&self) -> Option<Arc<X509Bundle>> {
        match &self.profile {
            Profile::Web => None,
            Profile::Spiffe { held, .. } => Some(held.get()),
        }
    }

    /// Fetches the bundle once: GET over TLS, status 200, a body of at most
    /// [`MAX_BUNDLE_SIZE`] bytes that parses as a SPIFFE bundle of the trust domain, holds an
    /// authority, and whose X.509 authorities name no other trust domain in a SPIFFE URI SAN
    /// (docs/validation.md, "Federation"). With `https_spiffe`, when the fetched trust domain
    /// is the endpoint's own and the bundle has X.509 authorities, they become the bundle the
    /// next fetch authenticates the endpoint with (unless its `spiffe_sequence` is lower than
    /// the one of the bundle taken before).
    ///
    /// # Errors
    /// The [`FederationError`] of the step that failed.
    pub async fn fetch(&self) -> Result<SpiffeBundle, FederationError> {
        let body = tokio::time::timeout(self.timeout, self.get())
            .await
            .map_err(|_| FederationError::Timeout(self.timeout))??;
        let bundle = SpiffeBundle::parse(self.trust_domain.clone(), &body)
            .map_err(FederationError::Bundle)?;
        check_bundle(&bundle)?;
        if let Profile::Spiffe { endpoint_id, held } = &self.profile
            && endpoint_id.trust_domain() == &self.trust_domain
            && !bundle.x509_authorities().is_empty()
        {
            held.update(&bundle);
        }
        Ok(bundle)
    }

    async fn get(&self) -> Result<Vec<u8>, FederationError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(FederationError::Connect)?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| FederationError::Tls(format!("server name {:?}: {e}", self.host)))?;
        let tls = TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| FederationError::Tls(tls_reason(&e)))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| FederationError::Http(e.to_string()))?;
        // The connection is driven beside the request; it ends when the sender is dropped.
        let driver = tokio::spawn(connection);
        let result = async {
            let request = http::Request::get(self.path.as_str())
                .header(http::header::HOST, self.authority.as_str())
                .header(http::header::ACCEPT, "application/json")
                .body(Empty::<Bytes>::new())
                .map_err(|e| FederationError::Http(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| FederationError::Http(e.to_string()))?;
            if response.status() != http::StatusCode::OK {
                return Err(FederationError::Status(response.status().as_u16()));
            }
            let body = Limited::new(response.into_body(), MAX_BUNDLE_SIZE)
                .collect()
                .await
                .map_err(|e| FederationError::Http(format!("reading the body: {e}")))?;
            Ok(body.to_bytes().to_vec())
        }
        .await;
        drop(sender);
        driver.abort();
        result
    }
}

/// The verifier's own reason when the handshake failed on our verifier, else the I/O error.
fn tls_reason(error: &std::io::Error) -> String {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(crate::verify::from_rustls)
        .map_or_else(|| error.to_string(), ToString::to_string)
}

/// The checks beyond the bundle format (docs/validation.md, "Federation"): some authority, and
/// no X.509 authority whose SPIFFE URI SAN names another trust domain (a signing certificate
/// SHOULD reside in the trust domain of the SVIDs it issues, X509-SVID §3.2; we refuse one that
/// names another trust domain outright, since a bundle carrying it would let that domain's
/// authority vouch here).
pub(super) fn check_bundle(bundle: &SpiffeBundle) -> Result<(), FederationError> {
    let td = bundle.trust_domain();
    if bundle.x509_authorities().is_empty() && bundle.jwt_authorities().is_empty() {
        return Err(FederationError::Empty(td.clone()));
    }
    for (index, der) in bundle.x509_authorities().iter().enumerate() {
        // SpiffeBundle::parse already parsed every authority.
        let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(der) else {
            continue;
        };
        let Ok(Some(san)) = cert.subject_alternative_name() else {
            continue;
        };
        for name in &san.value.general_names {
            let GeneralName::URI(uri) = name else {
                continue;
            };
            let Some(rest) = uri.strip_prefix("spiffe://") else {
                continue;
            };
            let found = rest.split('/').next().unwrap_or_default();
            if found != td.name() {
                return Err(FederationError::WrongTrustDomain {
                    expected: td.clone(),
                    index,
                    found: found.to_owned(),
                });
            }
        }
    }
    Ok(())
}
