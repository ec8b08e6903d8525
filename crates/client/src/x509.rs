//! X.509-SVIDs, X.509 contexts and bundle sets, validated at the edge with `TryFrom` so that a
//! malformed agent response never reaches a caller (SPIFFE X509-SVID spec §4, §5).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::bundle::{BundleMap, BundleSource, X509Bundle};
use crate::key::{PrivateKey, check_key_matches};
use crate::pb;
use crate::{Error, SpiffeId, TrustDomain};

/// One X.509-SVID with its key and its trust domain's bundle.
///
/// `Debug` prints a summary (ID, hint, serial, expiry, certificate counts), never key bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct X509Svid {
    spiffe_id: SpiffeId,
    cert_chain: Vec<Vec<u8>>,
    private_key: PrivateKey,
    bundle: Vec<Vec<u8>>,
    hint: String,
    not_after: SystemTime,
    serial_hex: String,
}

impl X509Svid {
    /// The SPIFFE ID (equal to the leaf's URI SAN).
    #[must_use]
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The certificate chain as DER, leaf first, then intermediates (if any).
    #[must_use]
    pub fn cert_chain(&self) -> &[Vec<u8>] {
        &self.cert_chain
    }

    /// The leaf certificate as DER.
    #[must_use]
    pub fn leaf(&self) -> &[u8] {
        // A validated SVID always has a leaf; the fallback is unreachable.
        self.cert_chain.first().map_or(&[], Vec::as_slice)
    }

    /// The private key matching the leaf (PKCS#8 DER).
    #[must_use]
    pub fn private_key(&self) -> &PrivateKey {
        &self.private_key
    }

    /// The own trust domain's CA certificates as received, one DER certificate per entry.
    #[must_use]
    pub fn bundle(&self) -> &[Vec<u8>] {
        &self.bundle
    }

    /// The operator-set hint (`""` when none).
    #[must_use]
    pub fn hint(&self) -> &str {
        &self.hint
    }

    /// The leaf's `notAfter`.
    #[must_use]
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The leaf's serial number as lowercase hex without separators or leading zero bytes.
    #[must_use]
    pub fn serial_hex(&self) -> String {
        self.serial_hex.clone()
    }
}

impl TryFrom<pb::X509svid> for X509Svid {
    type Error = Error;

    fn try_from(msg: pb::X509svid) -> Result<Self, Error> {
        let spiffe_id: SpiffeId = msg
            .spiffe_id
            .parse()
            .map_err(|e| Error::invalid(format!("SVID {e}")))?;
        let context = |what: &str| format!("SVID {spiffe_id}: {what}");
        let cert_chain = split_certificates(&msg.x509_svid)
            .map_err(|e| Error::invalid(context(&format!("certificate chain: {e}"))))?;
        let bundle = split_certificates(&msg.bundle)
            .map_err(|e| Error::invalid(context(&format!("bundle: {e}"))))?;
        if bundle.is_empty() {
            return Err(Error::invalid(context("bundle is empty")));
        }
        Self::checked(
            Some(&spiffe_id),
            cert_chain,
            &msg.x509_svid_key,
            bundle,
            msg.hint.clone(),
        )
        .map_err(|e| Error::invalid(context(&e)))
    }
}

impl X509Svid {
    /// An X.509-SVID from DER: `chain` is the leaf followed by its intermediates, concatenated
    /// (as the Workload API sends them and go-spiffe's `x509svid.ParseRaw` takes them); `key` is
    /// the leaf's private key as PKCS#8. The same checks as for an SVID from the agent
    /// (docs/validation.md): the leaf carries exactly one URI SAN, a SPIFFE ID with a path; it is
    /// no CA and may sign neither certificates nor CRLs; every intermediate is a CA; the key
    /// belongs to the leaf. The chain is not verified against a bundle here (use the
    /// `spiffe-workload-tls` crate's `verify_chain` for that). The SVID carries no bundle and
    /// no hint.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the rule broken; never quotes key bytes.
    pub fn parse_der(chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        let cert_chain = split_certificates(chain).map_err(svid_invalid)?;
        Self::checked(None, cert_chain, key, Vec::new(), String::new()).map_err(svid_invalid)
    }

    /// An X.509-SVID from PEM, as the helper writes it (`svid_file_name`: the leaf, then its
    /// intermediates, as `CERTIFICATE` blocks; `svid_key_file_name`: one `PRIVATE KEY` block,
    /// PKCS#8), with the checks of [`Self::parse_der`]. Like go-spiffe's `x509svid.Parse`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when a block is missing, has another type, or the SVID fails a check.
    pub fn parse_pem(chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        let cert_chain = pem_certificates(chain)
            .map_err(|e| svid_invalid(format!("certificates: {e}")))?
            .into_iter()
            .map(|der| {
                split_certificates(&der).and_then(|mut certs| match certs.len() {
                    1 => Ok(certs.remove(0)),
                    _ => Err("a CERTIFICATE block must hold exactly one certificate".into()),
                })
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(svid_invalid)?;
        let key = zeroize::Zeroizing::new(
            pem_private_key(key).map_err(|e| svid_invalid(format!("private key: {e}")))?,
        );
        Self::checked(None, cert_chain, &key, Vec::new(), String::new()).map_err(svid_invalid)
    }

    /// [`Self::parse_pem`] of two files, as go-spiffe's `x509svid.Load`.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file that cannot be read, or as [`Self::parse_pem`].
    pub fn load(
        cert_path: impl AsRef<std::path::Path>,
        key_path: impl AsRef<std::path::Path>,
    ) -> Result<Self, Error> {
        let chain = read_file(cert_path.as_ref())?;
        let key = zeroize::Zeroizing::new(read_file(key_path.as_ref())?);
        Self::parse_pem(&chain, &key)
    }

    /// The one validation path of every constructor. `expected` is the ID the agent named,
    /// `None` when the ID is read from the leaf.
    fn checked(
        expected: Option<&SpiffeId>,
        cert_chain: Vec<Vec<u8>>,
        key: &[u8],
        bundle: Vec<Vec<u8>>,
        hint: String,
    ) -> Result<Self, String> {
        let leaf_der = cert_chain.first().ok_or("certificate chain is empty")?;
        let (_, leaf) = X509Certificate::from_der(leaf_der).map_err(|e| format!("leaf: {e}"))?;
        let spiffe_id = match expected {
            Some(id) => id.clone(),
            None => leaf_uri(&leaf)?
                .parse()
                .map_err(|e| format!("leaf URI SAN: {e}"))?,
        };
        check_leaf(&leaf, &spiffe_id)?;
        for (i, der) in cert_chain.iter().enumerate().skip(1) {
            let (_, cert) =
                X509Certificate::from_der(der).map_err(|e| format!("intermediate {i}: {e}"))?;
            if !matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
                return Err(format!("intermediate {i} is not a CA certificate"));
            }
        }
        check_key_matches(key, leaf.public_key())?;
        let not_after = unix_to_system_time(leaf.validity().not_after.timestamp());
        let serial_hex = hex(strip_leading_zeros(leaf.raw_serial()));
        Ok(Self {
            spiffe_id,
            cert_chain,
            private_key: PrivateKey::new(key.to_vec()),
            bundle,
            hint,
            not_after,
            serial_hex,
        })
    }
}

fn svid_invalid(reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: "X.509-SVID",
        reason: reason.into(),
    }
}

pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// The DER of every `CERTIFICATE` block; any other block, or none, is an error (the files the
/// helper writes hold nothing else).
pub(crate) fn pem_certificates(input: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(input).map_err(|e| format!("not PEM: {e}"))?;
    if blocks.is_empty() {
        return Err("no PEM block".into());
    }
    blocks
        .into_iter()
        .enumerate()
        .map(|(i, block)| match block.tag() {
            "CERTIFICATE" => Ok(block.into_contents()),
            other => Err(format!(
                "block {} is {other:?}, expected \"CERTIFICATE\"",
                i + 1
            )),
        })
        .collect()
}

/// The PKCS#8 DER of the one `PRIVATE KEY` block. SEC1 (`EC PRIVATE KEY`) and PKCS#1
/// (`RSA PRIVATE KEY`) are refused by name: the Workload API and the helper use PKCS#8 only.
fn pem_private_key(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut blocks = pem::parse_many(input).map_err(|_| "not PEM".to_owned())?;
    match blocks.len() {
        1 => {}
        0 => return Err("no PEM block".into()),
        n => return Err(format!("{n} PEM blocks, expected one PRIVATE KEY")),
    }
    let block = blocks.remove(0);
    match block.tag() {
        "PRIVATE KEY" => Ok(block.into_contents()),
        other => Err(format!(
            "block is {other:?}, expected \"PRIVATE KEY\" (PKCS#8; convert with `openssl pkcs8 -topk8 -nocrypt`)"
        )),
    }
}

/// The leaf's one URI SAN (more or fewer are refused by [`check_leaf`] as well; this gives the
/// ID to check against).
fn leaf_uri(leaf: &X509Certificate<'_>) -> Result<String, String> {
    let san = leaf
        .subject_alternative_name()
        .map_err(|e| format!("leaf subjectAltName: {e}"))?;
    let mut uris = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        });
    match (uris.next(), uris.next()) {
        (Some(uri), None) => Ok(uri.to_owned()),
        (None, _) => Err("leaf has no URI SAN".into()),
        (Some(_), Some(_)) => Err("leaf has more than one URI SAN, expected exactly one".into()),
    }
}

/// SPIFFE X509-SVID §3.1, §4 and §5.2: the ID has a path; exactly one URI SAN, equal to the
/// SVID's ID; the leaf is no CA and may sign neither certificates nor CRLs.
fn check_leaf(leaf: &X509Certificate<'_>, spiffe_id: &SpiffeId) -> Result<(), String> {
    if spiffe_id.path().is_empty() {
        return Err("a trust domain ID (no path) cannot identify a workload".into());
    }
    let san = leaf
        .subject_alternative_name()
        .map_err(|e| format!("leaf subjectAltName: {e}"))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [uri] if *uri == spiffe_id.to_string() => {}
        [uri] => return Err(format!("leaf URI SAN {uri:?} differs from the SVID's ID")),
        [] => return Err("leaf has no URI SAN".into()),
        _ => {
            return Err(format!(
                "leaf has {} URI SANs, expected exactly one",
                uris.len()
            ));
        }
    }
    if let Ok(Some(bc)) = leaf.basic_constraints()
        && bc.value.ca
    {
        return Err("leaf is a CA certificate".into());
    }
    if let Ok(Some(ku)) = leaf.key_usage()
        && (ku.value.key_cert_sign() || ku.value.crl_sign())
    {
        return Err("leaf may sign certificates or CRLs (keyCertSign or cRLSign)".into());
    }
    Ok(())
}

/// The Workload API concatenates DER certificates; this splits them, parsing each one.
pub(crate) fn split_certificates(mut der: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut certs = Vec::new();
    while !der.is_empty() {
        let (rest, _) = X509Certificate::from_der(der)
            .map_err(|e| format!("certificate {} is not valid DER: {e}", certs.len() + 1))?;
        let len = der.len() - rest.len();
        certs.push(der[..len].to_vec());
        der = rest;
    }
    Ok(certs)
}

fn unix_to_system_time(secs: i64) -> SystemTime {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(magnitude).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(magnitude).unwrap_or(UNIX_EPOCH)
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|b| *b != 0) {
        Some(start) => &bytes[start..],
        None => bytes
            .get(bytes.len().saturating_sub(1)..)
            .unwrap_or_default(),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Trust domain → CA certificates (DER, one per entry).
pub(crate) type X509Bundles = BTreeMap<TrustDomain, Vec<Vec<u8>>>;

fn convert_bundles(map: HashMap<String, Vec<u8>>, what: &str) -> Result<X509Bundles, Error> {
    map.into_iter()
        .map(|(key, der)| {
            let td: TrustDomain = key
                .parse()
                .map_err(|e| Error::invalid(format!("{what} key: {e}")))?;
            let certs = split_certificates(&der)
                .map_err(|e| Error::invalid(format!("{what} for {td}: {e}")))?;
            if certs.is_empty() {
                return Err(Error::invalid(format!("{what} for {td} is empty")));
            }
            Ok((td, certs))
        })
        .collect()
}

/// What the X.509 stream delivers: the caller's SVIDs and the bundles of federated trust domains.
///
/// `PartialEq` lets callers skip identical consecutive messages (docs/behaviour.md#retries).
#[derive(Clone, PartialEq, Eq)]
pub struct X509Context {
    svids: Vec<X509Svid>,
    federated_bundles: X509Bundles,
}

impl X509Context {
    /// All SVIDs in the order the agent sent them (SPIRE sorts them by entry ID).
    #[must_use]
    pub fn svids(&self) -> &[X509Svid] {
        &self.svids
    }

    /// The default SVID: the first one. A context always holds at least one.
    #[must_use]
    pub fn default_svid(&self) -> &X509Svid {
        // Construction guarantees a non-empty list; index 0 exists.
        &self.svids[0]
    }

    /// The first SVID carrying `hint`.
    #[must_use]
    pub fn svid_with_hint(&self, hint: &str) -> Option<&X509Svid> {
        self.svids.iter().find(|s| s.hint == hint)
    }

    /// CA certificates of federated trust domains, by trust domain.
    #[must_use]
    pub fn federated_bundles(&self) -> &BTreeMap<TrustDomain, Vec<Vec<u8>>> {
        &self.federated_bundles
    }
}

impl TryFrom<pb::X509svidResponse> for X509Context {
    type Error = Error;

    fn try_from(msg: pb::X509svidResponse) -> Result<Self, Error> {
        if msg.svids.is_empty() {
            return Err(Error::EmptyResponse);
        }
        let svids = msg
            .svids
            .into_iter()
            .map(X509Svid::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let federated_bundles = convert_bundles(msg.federated_bundles, "federated bundle")?;
        Ok(Self {
            svids,
            federated_bundles,
        })
    }
}

/// The X.509 bundles the workload should trust, own trust domain included.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct X509BundleSet {
    bundles: BundleMap<X509Bundle>,
}

impl X509BundleSet {
    /// A set from bundles; a later bundle for the same trust domain replaces an earlier one.
    #[must_use]
    pub fn new(bundles: impl IntoIterator<Item = X509Bundle>) -> Self {
        Self {
            bundles: bundles
                .into_iter()
                .map(|b| (b.trust_domain().clone(), Arc::new(b)))
                .collect(),
        }
    }

    /// The bundle of `trust_domain`.
    #[must_use]
    pub fn get(&self, trust_domain: &TrustDomain) -> Option<&X509Bundle> {
        self.bundles.get(trust_domain).map(AsRef::as_ref)
    }

    /// Bundles by trust domain, in trust domain order.
    #[must_use]
    pub fn bundles(&self) -> &BTreeMap<TrustDomain, Arc<X509Bundle>> {
        &self.bundles
    }

    /// The set of an X.509 context: each SVID's own trust domain bundle plus the federated ones
    /// (a federated bundle never replaces the bundle of an SVID's own trust domain).
    #[must_use]
    pub fn from_context(context: &X509Context) -> Self {
        let mut bundles: BundleMap<X509Bundle> = context
            .federated_bundles
            .iter()
            .map(|(td, certs)| {
                (
                    td.clone(),
                    Arc::new(X509Bundle::new(td.clone(), certs.clone())),
                )
            })
            .collect();
        for svid in context.svids.iter().rev() {
            let td = svid.spiffe_id.trust_domain().clone();
            let bundle = X509Bundle::new(td.clone(), svid.bundle.clone());
            bundles.insert(td, Arc::new(bundle));
        }
        Self { bundles }
    }
}

impl BundleSource for X509BundleSet {
    type Bundle = X509Bundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<X509Bundle>> {
        self.bundles.get(trust_domain).cloned()
    }
}

impl TryFrom<pb::X509BundlesResponse> for X509BundleSet {
    type Error = Error;

    fn try_from(msg: pb::X509BundlesResponse) -> Result<Self, Error> {
        if msg.bundles.is_empty() {
            return Err(Error::EmptyResponse);
        }
        let raw = convert_bundles(msg.bundles, "bundle")?;
        Ok(Self::new(
            raw.into_iter()
                .map(|(td, certs)| X509Bundle::new(td, certs)),
        ))
    }
}

impl fmt::Debug for X509Svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Svid")
            .field("spiffe_id", &self.spiffe_id.to_string())
            .field("hint", &self.hint)
            .field("serial", &self.serial_hex)
            .field("not_after", &self.not_after)
            .field("chain_len", &self.cert_chain.len())
            .field("bundle_len", &self.bundle.len())
            .field("private_key", &self.private_key)
            .finish()
    }
}

/// Trust domain names with their certificate counts, for `Debug`.
struct BundleSummary<'a>(&'a X509Bundles);

impl fmt::Debug for BundleSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(td, certs)| (td.name(), certs.len())))
            .finish()
    }
}

impl fmt::Debug for X509Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Context")
            .field("svids", &self.svids)
            .field("federated_bundles", &BundleSummary(&self.federated_bundles))
            .finish()
    }
}

impl fmt::Debug for X509BundleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509BundleSet")
            .field("bundles", &self.bundles.values().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests;
