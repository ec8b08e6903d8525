//! Peer verification: an X.509-SVID chain against the bundle of the peer's own trust domain,
//! then the authorizer (SPIFFE X509-SVID §5; go-spiffe's `x509svid.Verify`).
//!
//! The server name is ignored: SVIDs carry a SPIFFE ID, not a DNS name, and the authorizer is
//! what decides who the peer may be.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};
use spiffe_workload_client::{BundleSource, SpiffeId, TrustDomain, X509Bundle};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::{Authorizer, Error};

/// A bundle source as the verifiers hold it.
pub type X509BundleSource = Arc<dyn BundleSource<Bundle = X509Bundle>>;

type Anchors = Arc<AnchorSet>;

/// The trust anchors of one bundle, with what webpki's `TrustAnchor` does not keep.
struct AnchorSet {
    bundle: Arc<X509Bundle>,
    anchors: Vec<TrustAnchor<'static>>,
    /// Each anchor's own `pathLenConstraint`, index-aligned with `anchors`.
    path_len: Vec<Option<u32>>,
    /// Each anchor's position in `bundle.authorities()`, index-aligned with `anchors`.
    authority: Vec<usize>,
}

impl AnchorSet {
    /// The usable authorities of `bundle`; the others are logged and left out, so that one bad
    /// entry does not discard a bundle.
    fn new(bundle: Arc<X509Bundle>) -> Self {
        let count = bundle.authorities().len();
        let mut set = Self {
            anchors: Vec::with_capacity(count),
            path_len: Vec::with_capacity(count),
            authority: Vec::with_capacity(count),
            bundle,
        };
        for (i, der) in set.bundle.authorities().iter().enumerate() {
            match anchor(der) {
                Ok((anchor, path_len)) => {
                    set.anchors.push(anchor);
                    set.path_len.push(path_len);
                    set.authority.push(i);
                }
                Err(reason) => {
                    tracing::warn!(trust_domain = %set.bundle.trust_domain(), authority = i, %reason,
                        "bundle authority is not used as a trust anchor");
                }
            }
        }
        set
    }
}

/// A bundle authority as a trust anchor, or why it cannot be one: it must parse and be a CA
/// (X509-SVID §3.2 and §4.1: signing certificates set `cA`; a non-CA bundle entry signs
/// nothing). webpki's anchors keep only subject, key and name constraints, so the anchor's
/// `pathLenConstraint` is kept beside it and applied in [`check_path`].
fn anchor(der: &[u8]) -> Result<(TrustAnchor<'static>, Option<u32>), String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("does not parse: {e}"))?;
    let path_len = match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => bc.value.path_len_constraint,
        Ok(_) => return Err("is not a CA (basicConstraints cA is not true)".into()),
        Err(e) => return Err(format!("basicConstraints: {e}")),
    };
    let der = CertificateDer::from(der);
    let anchor = webpki::anchor_from_trusted_cert(&der)
        .map_err(|e| format!("{e:?}"))?
        .to_owned();
    Ok((anchor, path_len))
}

/// The checks RFC 5280 path validation makes and webpki leaves out, on a path webpki built:
/// every intermediate is a CA that may sign certificates (RFC 5280 §6.1.4 (k) and (n);
/// X509-SVID §3.2 and §4.3 make `keyCertSign` required, not only checked when present), and
/// the anchor's own `pathLenConstraint` bounds the intermediates below it (RFC 5280 §6.1.4 (m)
/// applied to the trust anchor's certificate, as go's `crypto/x509` also does).
fn check_path(path: &webpki::VerifiedPath<'_>, set: &AnchorSet) -> Result<usize, String> {
    let mut intermediates = 0_u32;
    for (i, cert) in path.intermediate_certificates().enumerate() {
        intermediates += 1;
        let der = cert.der();
        let (_, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| format!("intermediate {} does not parse: {e}", i + 1))?;
        if !matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
            return Err(format!("intermediate {} is not a CA", i + 1));
        }
        if !matches!(cert.key_usage(), Ok(Some(ku)) if ku.value.key_cert_sign()) {
            return Err(format!(
                "intermediate {} may not sign certificates (no keyCertSign key usage)",
                i + 1
            ));
        }
    }
    // webpki hands back a reference into our slice; equal subject and key would do as well.
    let used = path.anchor();
    let index = set
        .anchors
        .iter()
        .position(|a| std::ptr::eq(a, used))
        .or_else(|| {
            set.anchors.iter().position(|a| {
                a.subject == used.subject
                    && a.subject_public_key_info == used.subject_public_key_info
            })
        })
        .ok_or("the verified path ends at an anchor not in the bundle")?;
    if let Some(limit) = set.path_len.get(index).copied().flatten()
        && intermediates > limit
    {
        return Err(format!(
            "{intermediates} intermediates below a trust anchor with pathLenConstraint {limit}"
        ));
    }
    Ok(index)
}

/// Which end of a TLS connection a chain's leaf must be allowed to act as: its extended key
/// usage must include `serverAuth` or `clientAuth` accordingly (or no EKU at all, as RFC 5280
/// §4.2.1.12 reads an absent extension; docs/validation.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    /// The peer is a TLS client (`clientAuth`).
    Client,
    /// The peer is a TLS server (`serverAuth`).
    Server,
}

impl PeerRole {
    fn usage(self) -> KeyUsage {
        match self {
            Self::Client => KeyUsage::client_auth(),
            Self::Server => KeyUsage::server_auth(),
        }
    }
}

/// A chain that verified: the peer's SPIFFE ID and the path from its leaf to the bundle
/// authority it chains to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedChain {
    id: SpiffeId,
    chain: Vec<CertificateDer<'static>>,
}

impl VerifiedChain {
    /// The SPIFFE ID of the leaf.
    #[must_use]
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.id
    }

    /// DER certificates: the leaf, the intermediates the path went through, and last the
    /// bundle authority (trust anchor) it ends at, like go-spiffe's `verifiedChains[0]`.
    /// Certificates the peer sent that the path did not need are not in it.
    #[must_use]
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The chain without the ID.
    #[must_use]
    pub fn into_chain(self) -> Vec<CertificateDer<'static>> {
        self.chain
    }
}

/// Verifies an X.509-SVID chain (`chain[0]` the leaf, then any intermediates, in any order)
/// against the bundle of the leaf's own trust domain from `bundles`, at time `now`, for `role`:
/// every rule of docs/validation.md (the leaf is an SVID, the path is signed by an authority of
/// the right bundle, intermediates are CAs with `keyCertSign`, path-length limits including
/// the anchor's, validity, key usage). No authorization: the caller decides what the returned
/// ID may do. The rustls verifiers of this crate run exactly this, then their [`Authorizer`].
/// Like go-spiffe's `x509svid.Verify`, which the standard's clauses make stricter here.
///
/// # Errors
/// [`Error::NoPeerCertificate`] for an empty chain, [`Error::NotAnSvid`], [`Error::LeafIsCa`],
/// [`Error::NoBundle`] or [`Error::Untrusted`] naming the failed rule.
pub fn verify_chain(
    chain: &[CertificateDer<'_>],
    bundles: &dyn BundleSource<Bundle = X509Bundle>,
    role: PeerRole,
    now: UnixTime,
) -> Result<VerifiedChain, Error> {
    let (leaf, intermediates) = chain.split_first().ok_or(Error::NoPeerCertificate)?;
    let id = svid_id(leaf)?;
    let bundle = bundle_of(bundles, &id)?;
    let anchors = AnchorSet::new(bundle);
    verify_path(
        leaf,
        intermediates,
        id,
        &anchors,
        default_algorithms().all,
        now,
        role,
    )
}

fn bundle_of(
    bundles: &dyn BundleSource<Bundle = X509Bundle>,
    id: &SpiffeId,
) -> Result<Arc<X509Bundle>, Error> {
    let td = id.trust_domain();
    bundles.bundle_for(td).ok_or_else(|| Error::NoBundle {
        trust_domain: td.clone(),
        id: id.clone(),
    })
}

/// The signature algorithms of [`crate::crypto_provider`] (the application's process-default
/// provider, else the one the crate's features choose).
fn default_algorithms() -> WebPkiSupportedAlgorithms {
    crate::crypto_provider().signature_verification_algorithms
}

/// webpki's path building and our additions (`check_path`) for a leaf whose ID is known.
fn verify_path(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    id: SpiffeId,
    anchors: &AnchorSet,
    algorithms: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm],
    now: UnixTime,
    role: PeerRole,
) -> Result<VerifiedChain, Error> {
    let untrusted = |reason: String| Error::Untrusted {
        id: id.clone(),
        reason,
    };
    let cert = EndEntityCert::try_from(leaf).map_err(|e| untrusted(format!("{e:?}")))?;
    let path = cert
        .verify_for_usage(
            algorithms,
            &anchors.anchors,
            intermediates,
            now,
            role.usage(),
            None,
            None,
        )
        .map_err(|e| untrusted(format!("{e:?}")))?;
    let index = check_path(&path, anchors).map_err(untrusted)?;
    let mut chain = Vec::with_capacity(2 + intermediates.len());
    chain.push(leaf.clone().into_owned());
    chain.extend(
        path.intermediate_certificates()
            .map(|cert| cert.der().clone().into_owned()),
    );
    if let Some(anchor) = anchors
        .authority
        .get(index)
        .and_then(|i| anchors.bundle.authorities().get(*i))
    {
        chain.push(CertificateDer::from(anchor.clone()));
    }
    Ok(VerifiedChain { id, chain })
}

/// The SPIFFE ID of a leaf that may be an X.509-SVID: exactly one URI SAN, a valid SPIFFE ID
/// with a path, not a CA, no `keyCertSign`/`cRLSign` (SPIFFE X509-SVID §3.1, §4.1, §4.3, §5.2).
///
/// # Errors
/// [`Error::NotAnSvid`] or [`Error::LeafIsCa`].
pub fn svid_id(leaf: &CertificateDer<'_>) -> Result<SpiffeId, Error> {
    let not_svid = |reason: String| Error::NotAnSvid { reason };
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| not_svid(format!("leaf does not parse: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| not_svid(format!("subjectAltName: {e}")))?;
    let mut uris = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        });
    let id: SpiffeId = match (uris.next(), uris.next()) {
        (Some(uri), None) => uri.parse().map_err(|e| not_svid(format!("{e}")))?,
        (None, _) => return Err(not_svid("leaf has no URI SAN".into())),
        (Some(_), Some(_)) => return Err(not_svid("leaf has more than one URI SAN".into())),
    };
    // X509-SVID §3.1 and §5.2: a leaf's SPIFFE ID has a non-root path; `spiffe://td` alone
    // names the trust domain (what a signing certificate may carry), not a workload.
    if id.path().is_empty() {
        return Err(not_svid(format!(
            "{id} has no path: a trust domain ID is not a workload's"
        )));
    }
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let signs =
        matches!(cert.key_usage(), Ok(Some(ku)) if ku.value.key_cert_sign() || ku.value.crl_sign());
    if is_ca || signs {
        return Err(Error::LeafIsCa { id });
    }
    Ok(id)
}

/// What both verifiers share: the bundle source, trust anchors cached per bundle, the
/// authorizer and the signature algorithms.
struct PeerVerifier {
    bundles: X509BundleSource,
    authorizer: Authorizer,
    algorithms: WebPkiSupportedAlgorithms,
    /// Trust anchors by trust domain, rebuilt when the source hands out a new bundle.
    anchors: Mutex<HashMap<TrustDomain, (Arc<X509Bundle>, Anchors)>>,
    /// SPIFFE IDs of recently seen leaves (DER → ID): a peer presents the same leaf on every
    /// connection until it rotates, and the result depends on the bytes alone. Only the
    /// parse is cached; chain, expiry and authorization are checked on every handshake.
    ids: Mutex<VecDeque<(Vec<u8>, SpiffeId)>>,
}

/// How many distinct peer leaves [`PeerVerifier`] remembers the ID of.
const ID_CACHE: usize = 64;

impl PeerVerifier {
    fn new(bundles: X509BundleSource, authorizer: Authorizer, provider: &CryptoProvider) -> Self {
        Self {
            bundles,
            authorizer,
            algorithms: provider.signature_verification_algorithms,
            anchors: Mutex::new(HashMap::new()),
            ids: Mutex::new(VecDeque::with_capacity(ID_CACHE)),
        }
    }

    fn leaf_id(&self, leaf: &CertificateDer<'_>) -> Result<SpiffeId, Error> {
        let lock = || self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, id)) = lock()
            .iter()
            .find(|(der, _)| der.as_slice() == leaf.as_ref())
        {
            return Ok(id.clone());
        }
        let id = svid_id(leaf)?;
        let mut ids = lock();
        if ids.len() >= ID_CACHE {
            ids.pop_front();
        }
        ids.push_back((leaf.as_ref().to_vec(), id.clone()));
        Ok(id)
    }

    fn anchors_for(&self, id: &SpiffeId) -> Result<Anchors, Error> {
        let bundle = bundle_of(&*self.bundles, id)?;
        let td = id.trust_domain();
        let mut cache = self.anchors.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, anchors)) = cache.get(td)
            && Arc::ptr_eq(cached, &bundle)
        {
            return Ok(anchors.clone());
        }
        let anchors = Arc::new(AnchorSet::new(bundle.clone()));
        cache.insert(td.clone(), (bundle, anchors.clone()));
        Ok(anchors)
    }

    /// [`verify_chain`] with the leaf's ID and the bundle's anchors cached, then the authorizer.
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        role: PeerRole,
    ) -> Result<SpiffeId, Error> {
        let id = self.leaf_id(end_entity)?;
        let anchors = self.anchors_for(&id)?;
        let verified = verify_path(
            end_entity,
            intermediates,
            id,
            &anchors,
            self.algorithms.all,
            now,
            role,
        )?;
        self.authorizer
            .authorize(verified.spiffe_id(), verified.chain())?;
        Ok(verified.id)
    }

    fn checked(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        role: PeerRole,
    ) -> Result<(), rustls::Error> {
        match self.verify(end_entity, intermediates, now, role) {
            Ok(id) => {
                tracing::trace!(spiffe_id = %id, "peer verified");
                Ok(())
            }
            Err(error) => {
                tracing::debug!(%error, "peer rejected");
                Err(to_rustls(error))
            }
        }
    }
}

/// Wraps our error so that it survives the handshake and [`from_rustls`] can recover it.
fn to_rustls(error: Error) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(error))))
}

/// Our verifier error inside a rustls error, when it is one.
pub(crate) fn from_rustls(error: &rustls::Error) -> Option<&Error> {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<Error>()
        }
        _ => None,
    }
}

/// Verifies a server's X.509-SVID (client side), ignoring the server name.
pub struct SpiffeServerVerifier(PeerVerifier);

impl SpiffeServerVerifier {
    /// Trusts the bundles of `bundles` (own and federated trust domains) and allows the peers
    /// `authorizer` allows. Signatures are checked with the algorithms of
    /// [`crypto_provider`](crate::crypto_provider).
    #[must_use]
    pub fn new(bundles: X509BundleSource, authorizer: Authorizer) -> Self {
        Self::with_provider(bundles, authorizer, &crate::crypto_provider())
    }

    /// As [`new`](Self::new), checking signatures with `provider`'s algorithms.
    #[must_use]
    pub fn with_provider(
        bundles: X509BundleSource,
        authorizer: Authorizer,
        provider: &CryptoProvider,
    ) -> Self {
        Self(PeerVerifier::new(bundles, authorizer, provider))
    }
}

impl fmt::Debug for SpiffeServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeServerVerifier({:?})", self.0.authorizer)
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .checked(end_entity, intermediates, now, PeerRole::Server)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.algorithms.supported_schemes()
    }
}

/// Verifies a client's X.509-SVID (server side); a client certificate is mandatory.
pub struct SpiffeClientVerifier(PeerVerifier);

impl SpiffeClientVerifier {
    /// As [`SpiffeServerVerifier::new`], for clients. Signatures are checked with the
    /// algorithms of [`crypto_provider`](crate::crypto_provider).
    #[must_use]
    pub fn new(bundles: X509BundleSource, authorizer: Authorizer) -> Self {
        Self::with_provider(bundles, authorizer, &crate::crypto_provider())
    }

    /// As [`new`](Self::new), checking signatures with `provider`'s algorithms.
    #[must_use]
    pub fn with_provider(
        bundles: X509BundleSource,
        authorizer: Authorizer,
        provider: &CryptoProvider,
    ) -> Self {
        Self(PeerVerifier::new(bundles, authorizer, provider))
    }
}

impl fmt::Debug for SpiffeClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeClientVerifier({:?})", self.0.authorizer)
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Like go-spiffe: no CA names; the client has one SVID to offer anyway.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .checked(end_entity, intermediates, now, PeerRole::Client)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.algorithms.supported_schemes()
    }
}
