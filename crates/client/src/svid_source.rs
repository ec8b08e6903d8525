//! Where a TLS config gets the SVID it presents and the bundles it verifies peers with: the
//! [`X509SvidSource`] trait, implemented by the agent-backed [`X509Source`], by a fixed
//! [`StaticX509Source`] and by [`crate::X509FileSource`], which follows the files the helper
//! writes (docs/embedding.md#svids-that-do-not-come-from-an-agent).

use std::fmt;
use std::sync::Arc;

use crate::bundle::{BundleSource, X509Bundle};
use crate::{TrustDomain, X509BundleSet, X509Source, X509Svid};

/// A source of the own X.509-SVID and of X.509 bundles (own and federated trust domains).
///
/// Certificate resolvers ask it for the SVID on every handshake and cache what they derive from
/// it per returned [`Arc`]: return the same `Arc` until the SVID changes, a new one when it
/// does. Verifiers ask [`BundleSource::bundle_for`] for the peer's trust domain on every check.
pub trait X509SvidSource: BundleSource<Bundle = X509Bundle> + Send + Sync + 'static {
    /// The SVID to present now.
    fn x509_svid(&self) -> Arc<X509Svid>;
}

impl X509SvidSource for X509Source {
    fn x509_svid(&self) -> Arc<X509Svid> {
        self.snapshot().svid_arc()
    }
}

/// An SVID and bundles that never change: tests, and environments without an agent (an SVID
/// issued by another CA in the SPIFFE format, for example with `spire-server x509 mint`). Like
/// go-spiffe's `x509svid.SVID` used as an `x509svid.Source` next to an `x509bundle.Set`.
///
/// ```no_run
/// use spiffe_workload_client::{StaticX509Source, X509Bundle, X509BundleSet, X509Svid};
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let svid = X509Svid::load("svid.pem", "svid_key.pem")?; // the same checks as from the agent
/// let own = X509Bundle::load(svid.spiffe_id().trust_domain().clone(), "svid_bundle.pem")?;
/// let source = StaticX509Source::new(svid, X509BundleSet::new([own]));
/// # let _ = source;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StaticX509Source {
    svid: Arc<X509Svid>,
    bundles: Arc<X509BundleSet>,
}

impl StaticX509Source {
    /// Presents `svid`, trusts `bundles`.
    #[must_use]
    pub fn new(svid: X509Svid, bundles: X509BundleSet) -> Self {
        Self {
            svid: Arc::new(svid),
            bundles: Arc::new(bundles),
        }
    }

    /// The SVID.
    #[must_use]
    pub fn svid(&self) -> &X509Svid {
        &self.svid
    }

    /// The bundles.
    #[must_use]
    pub fn bundle_set(&self) -> &X509BundleSet {
        &self.bundles
    }
}

impl BundleSource for StaticX509Source {
    type Bundle = X509Bundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<X509Bundle>> {
        self.bundles.bundle_for(trust_domain)
    }
}

impl X509SvidSource for StaticX509Source {
    fn x509_svid(&self) -> Arc<X509Svid> {
        self.svid.clone()
    }
}

impl fmt::Debug for StaticX509Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticX509Source")
            .field("svid", &self.svid)
            .field("bundles", &self.bundles)
            .finish()
    }
}
