//! One X.509 source for the TLS configs out of an SVID source and federated bundle sources.

use std::fmt;
use std::sync::Arc;

use spiffe_workload_client::{BundleSource, TrustDomain, X509Bundle, X509Svid, X509SvidSource};

use crate::X509BundleSource;

/// An [`X509SvidSource`] that presents `source`'s SVID and trusts its bundles plus those of
/// federated bundle sources (for example [`FederatedBundleSource`](super::FederatedBundleSource)),
/// so a service trusts a foreign trust domain without SPIRE's federation. For a trust domain
/// both know, `source`'s bundle is used; then the federated sources in the order added.
///
/// ```no_run
/// # use spiffe_workload_client::X509Source;
/// # use spiffe_workload_tls::federation::{FederatedBundleSource, WithFederatedBundles};
/// # fn run(source: X509Source, partner: FederatedBundleSource) -> Result<(), spiffe_workload_tls::Error> {
/// let both = WithFederatedBundles::new(source).with(partner);
/// let config = spiffe_workload_tls::mtls_server_config(&both, spiffe_workload_tls::Authorizer::any())?;
/// # let _ = config;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct WithFederatedBundles<S> {
    source: S,
    federated: Arc<Vec<X509BundleSource>>,
}

impl<S: X509SvidSource> WithFederatedBundles<S> {
    /// `source` alone; add federated sources with [`with`](Self::with).
    #[must_use]
    pub fn new(source: S) -> Self {
        Self {
            source,
            federated: Arc::new(Vec::new()),
        }
    }

    /// Also trusts the bundles of `bundles`.
    #[must_use]
    pub fn with(mut self, bundles: impl BundleSource<Bundle = X509Bundle> + 'static) -> Self {
        Arc::make_mut(&mut self.federated).push(Arc::new(bundles));
        self
    }

    /// The SVID source.
    #[must_use]
    pub fn source(&self) -> &S {
        &self.source
    }
}

impl<S: X509SvidSource> BundleSource for WithFederatedBundles<S> {
    type Bundle = X509Bundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<X509Bundle>> {
        self.source.bundle_for(trust_domain).or_else(|| {
            self.federated
                .iter()
                .find_map(|b| b.bundle_for(trust_domain))
        })
    }
}

impl<S: X509SvidSource> X509SvidSource for WithFederatedBundles<S> {
    fn x509_svid(&self) -> Arc<X509Svid> {
        self.source.x509_svid()
    }
}

impl<S: fmt::Debug> fmt::Debug for WithFederatedBundles<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithFederatedBundles")
            .field("source", &self.source)
            .field("federated", &self.federated.len())
            .finish()
    }
}
