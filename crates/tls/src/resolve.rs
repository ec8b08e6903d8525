//! Certificate resolvers that read an [`X509SvidSource`] (the agent-backed `X509Source`, a
//! `StaticX509Source`, an `X509FileSource`): every handshake presents the source's current SVID,
//! so a rotation needs no rebuild and no restart.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use spiffe_workload_client::{X509Svid, X509SvidSource};

use crate::Error;

/// Serves the source's current SVID as a rustls [`CertifiedKey`], converted once per SVID (the
/// source hands out the same `Arc` until the SVID changes).
pub struct SvidResolver {
    source: Arc<dyn X509SvidSource>,
    provider: Arc<CryptoProvider>,
    cache: Mutex<Option<(Arc<X509Svid>, Arc<CertifiedKey>)>>,
}

impl SvidResolver {
    /// A resolver for `source`'s chosen SVID, keys loaded by `provider`.
    ///
    /// # Errors
    /// [`Error::Key`] when the current SVID's key cannot be loaded (checked up front so that a
    /// bad key fails the config build rather than every handshake).
    pub fn new(source: impl X509SvidSource, provider: Arc<CryptoProvider>) -> Result<Self, Error> {
        let resolver = Self {
            source: Arc::new(source),
            provider,
            cache: Mutex::new(None),
        };
        resolver.current()?;
        Ok(resolver)
    }

    /// The certified key of the source's current SVID.
    ///
    /// # Errors
    /// [`Error::Key`] when its private key cannot be loaded.
    pub fn current(&self) -> Result<Arc<CertifiedKey>, Error> {
        let svid = self.source.x509_svid();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, key)) = cache.as_ref()
            && Arc::ptr_eq(cached, &svid)
        {
            return Ok(key.clone());
        }
        let chain: Vec<CertificateDer<'static>> = svid
            .cert_chain()
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(svid.private_key().der().to_vec()));
        let signing = self
            .provider
            .key_provider
            .load_private_key(der)
            .map_err(Error::Key)?;
        let key = Arc::new(CertifiedKey::new(chain, signing));
        tracing::debug!(spiffe_id = %svid.spiffe_id(), serial = %svid.serial_hex(), "TLS now presents this SVID");
        *cache = Some((svid, key.clone()));
        Ok(key)
    }

    fn resolve_logged(&self) -> Option<Arc<CertifiedKey>> {
        self.current()
            .inspect_err(|error| tracing::error!(%error, "cannot present the X.509-SVID"))
            .ok()
    }
}

impl fmt::Debug for SvidResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SvidResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SvidResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.resolve_logged()
    }
}

impl ResolvesClientCert for SvidResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.resolve_logged()
    }

    fn has_certs(&self) -> bool {
        true
    }
}
