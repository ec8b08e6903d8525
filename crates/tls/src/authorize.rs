//! Authorizers: which authenticated SPIFFE IDs a peer may have (the `tlsconfig.Authorizer`
//! of go-spiffe, plus the verified chain for closures).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use spiffe_workload_client::{SpiffeId, TrustDomain};

type Check = dyn Fn(&SpiffeId, &[CertificateDer<'_>]) -> Result<(), String> + Send + Sync;

/// Decides whether an authenticated peer is allowed, after its chain verified against the
/// bundle of its trust domain. Cheap to clone.
///
/// ```
/// use spiffe_workload_tls::Authorizer;
/// let web = Authorizer::exact("spiffe://example.org/web".parse().unwrap());
/// let anyone_here = Authorizer::member_of("example.org".parse().unwrap());
/// let custom = Authorizer::from_fn(|id, chain| {
///     if id.path().starts_with("/ns/prod/") && chain.len() <= 3 {
///         Ok(())
///     } else {
///         Err(format!("{id} is not a production workload"))
///     }
/// });
/// # let _ = (web, anyone_here, custom);
/// ```
#[derive(Clone)]
pub struct Authorizer {
    check: Arc<Check>,
    describe: Arc<str>,
}

impl Authorizer {
    /// Any authenticated SPIFFE ID, of any trusted trust domain.
    #[must_use]
    pub fn any() -> Self {
        Self::new("any SPIFFE ID".into(), |_, _| Ok(()))
    }

    /// Exactly `id`.
    #[must_use]
    pub fn exact(id: SpiffeId) -> Self {
        let describe = format!("exactly {id}");
        Self::new(describe, move |peer, _| {
            if *peer == id {
                Ok(())
            } else {
                Err(format!("expected {id}"))
            }
        })
    }

    /// One of `ids`.
    #[must_use]
    pub fn one_of(ids: impl IntoIterator<Item = SpiffeId>) -> Self {
        let ids: BTreeSet<SpiffeId> = ids.into_iter().collect();
        let list = ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let describe = format!("one of [{list}]");
        Self::new(describe, move |peer, _| {
            if ids.contains(peer) {
                Ok(())
            } else {
                Err(format!("expected one of [{list}]"))
            }
        })
    }

    /// Any ID of `trust_domain`.
    #[must_use]
    pub fn member_of(trust_domain: TrustDomain) -> Self {
        let describe = format!("member of {trust_domain}");
        Self::new(describe, move |peer, _| {
            if peer.is_member_of(&trust_domain) {
                Ok(())
            } else {
                Err(format!("expected a member of {trust_domain}"))
            }
        })
    }

    /// A closure that sees the peer's ID and its verified chain (DER, leaf first, as the peer
    /// sent it) and returns why it refuses.
    pub fn from_fn<F>(check: F) -> Self
    where
        F: Fn(&SpiffeId, &[CertificateDer<'_>]) -> Result<(), String> + Send + Sync + 'static,
    {
        Self::new("custom".into(), check)
    }

    fn new<F>(describe: String, check: F) -> Self
    where
        F: Fn(&SpiffeId, &[CertificateDer<'_>]) -> Result<(), String> + Send + Sync + 'static,
    {
        Self {
            check: Arc::new(check),
            describe: describe.into(),
        }
    }

    /// Applies the rule.
    ///
    /// # Errors
    /// [`crate::Error::Unauthorized`] with the rule's reason.
    pub fn authorize(
        &self,
        id: &SpiffeId,
        chain: &[CertificateDer<'_>],
    ) -> Result<(), crate::Error> {
        (self.check)(id, chain).map_err(|reason| crate::Error::Unauthorized {
            id: id.clone(),
            reason,
        })
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authorizer({})", self.describe)
    }
}

#[cfg(test)]
mod tests;
