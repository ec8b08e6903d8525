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
        let leaf_der = cert_chain
            .first()
            .ok_or_else(|| Error::invalid(context("certificate chain is empty")))?;
        let (_, leaf) = X509Certificate::from_der(leaf_der)
            .map_err(|e| Error::invalid(context(&format!("leaf: {e}"))))?;
        check_leaf(&leaf, &spiffe_id).map_err(|e| Error::invalid(context(&e)))?;
        check_key_matches(&msg.x509_svid_key, leaf.public_key())
            .map_err(|e| Error::invalid(context(&e)))?;
        let bundle = split_certificates(&msg.bundle)
            .map_err(|e| Error::invalid(context(&format!("bundle: {e}"))))?;
        if bundle.is_empty() {
            return Err(Error::invalid(context("bundle is empty")));
        }
        let not_after = unix_to_system_time(leaf.validity().not_after.timestamp());
        let serial_hex = hex(strip_leading_zeros(leaf.raw_serial()));
        Ok(Self {
            spiffe_id,
            cert_chain,
            private_key: PrivateKey::new(msg.x509_svid_key.clone()),
            bundle,
            hint: msg.hint.clone(),
            not_after,
            serial_hex,
        })
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
