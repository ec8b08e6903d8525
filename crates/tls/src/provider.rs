//! Which rustls [`CryptoProvider`] the configs and the verifiers use (docs/embedding.md,
//! "Crypto provider").
//!
//! The application's choice comes first: when it installed a process-default provider
//! ([`CryptoProvider::install_default`]), that one is used, as rustls's own
//! `ClientConfig::builder()` does. Otherwise the provider of this crate's feature: `ring` (the
//! default) or `aws-lc-rs`; with both features on, aws-lc-rs, the one a build asks for on top of
//! the default. This crate never installs a process default itself: that choice belongs to the
//! application.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!(
    "spiffe-workload-tls needs a rustls crypto provider: enable its `ring` (default) or \
     `aws-lc-rs` feature"
);

/// The provider the configs and verifiers of this crate use when none is passed explicitly:
/// the process default when the application installed one
/// ([`CryptoProvider::get_default`]), else [`builtin_provider`].
///
/// The process default is looked up on every call, so a provider installed after start-up
/// applies to configs built afterwards; configs and verifiers already built keep theirs.
///
/// ```
/// use std::sync::Arc;
/// use spiffe_workload_tls::rustls::crypto::CryptoProvider;
/// use spiffe_workload_tls::{builtin_provider, crypto_provider};
///
/// // Nothing installed: the provider of this crate's feature.
/// assert!(Arc::ptr_eq(&crypto_provider(), &builtin_provider()));
///
/// // The application installs its choice once, at start-up (here the same provider with
/// // TLS 1.3 suites only); every config built without an explicit provider follows it.
/// let mut mine = (*builtin_provider()).clone();
/// mine.cipher_suites.retain(|suite| suite.tls13().is_some());
/// mine.install_default().expect("nothing installed before");
/// assert!(Arc::ptr_eq(&crypto_provider(), CryptoProvider::get_default().unwrap()));
/// ```
///
/// One config on a provider of its own, whatever the process default:
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use spiffe_workload_client::X509Source;
/// use spiffe_workload_tls::rustls::CipherSuite;
/// use spiffe_workload_tls::{Authorizer, builtin_provider, mtls_client_config_with_provider};
///
/// let source = X509Source::builder().build().await?;
/// let mut aes_only = (*builtin_provider()).clone();
/// aes_only
///     .cipher_suites
///     .retain(|suite| suite.suite() != CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
/// let config = mtls_client_config_with_provider(
///     &source,
///     Authorizer::member_of("example.org".parse()?),
///     &Arc::new(aes_only),
/// )?;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default().map_or_else(builtin_provider, Arc::clone)
}

/// The provider chosen by this crate's features, regardless of any process default: aws-lc-rs
/// when the `aws-lc-rs` feature is on, else ring.
#[must_use]
pub fn builtin_provider() -> Arc<CryptoProvider> {
    static BUILTIN: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    BUILTIN.get_or_init(|| Arc::new(builtin())).clone()
}

#[cfg(feature = "aws-lc-rs")]
fn builtin() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
fn builtin() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

// Never built (the `compile_error!` above stops the build); it keeps that error the only one.
#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
fn builtin() -> CryptoProvider {
    unreachable!("no crypto provider feature")
}

#[cfg(test)]
mod tests;
