//! Typed trust bundles: X.509 authorities and JWT signing keys per trust domain, and the
//! [`BundleSource`] trait that both sources implement (SPIFFE Trust Domain and Bundle spec §4).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::{Error, TrustDomain};

/// The X.509 authorities (CA certificates, DER) of one trust domain.
#[derive(Clone, PartialEq, Eq)]
pub struct X509Bundle {
    trust_domain: TrustDomain,
    authorities: Vec<Vec<u8>>,
}

impl X509Bundle {
    /// A bundle from DER certificates (not parsed here: the Workload API conversions parse them).
    #[must_use]
    pub fn new(trust_domain: TrustDomain, authorities: Vec<Vec<u8>>) -> Self {
        Self {
            trust_domain,
            authorities,
        }
    }

    /// A bundle from concatenated DER certificates, each parsed (as the Workload API sends
    /// them; go-spiffe's `x509bundle.ParseRaw`).
    ///
    /// # Errors
    /// [`Error::Invalid`] when a certificate does not parse or there is none.
    pub fn parse_der(trust_domain: TrustDomain, der: &[u8]) -> Result<Self, Error> {
        let authorities = crate::x509::split_certificates(der).map_err(bundle_invalid)?;
        Self::non_empty(trust_domain, authorities)
    }

    /// A bundle from PEM `CERTIFICATE` blocks, each one certificate that parses, as the helper
    /// writes `svid_bundle_file_name` (go-spiffe's `x509bundle.Parse`). Whether each authority
    /// may act as a trust anchor (a CA) is decided where the bundle is used to verify, so that one
    /// unusable authority does not discard the rest.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the input is not PEM, holds another block type or no certificate.
    pub fn parse_pem(trust_domain: TrustDomain, pem: &[u8]) -> Result<Self, Error> {
        let authorities = crate::x509::pem_certificates(pem)
            .and_then(|blocks| {
                blocks
                    .iter()
                    .map(|der| crate::x509::split_certificates(der))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(bundle_invalid)?
            .into_iter()
            .flatten()
            .collect();
        Self::non_empty(trust_domain, authorities)
    }

    /// [`Self::parse_pem`] of a file (go-spiffe's `x509bundle.Load`).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file, or as [`Self::parse_pem`].
    pub fn load(
        trust_domain: TrustDomain,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Self, Error> {
        Self::parse_pem(trust_domain, &crate::x509::read_file(path.as_ref())?)
    }

    fn non_empty(trust_domain: TrustDomain, authorities: Vec<Vec<u8>>) -> Result<Self, Error> {
        if authorities.is_empty() {
            return Err(bundle_invalid(format!("no authority for {trust_domain}")));
        }
        Ok(Self::new(trust_domain, authorities))
    }

    /// The trust domain these authorities sign for.
    #[must_use]
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The CA certificates, one DER certificate each.
    #[must_use]
    pub fn authorities(&self) -> &[Vec<u8>] {
        &self.authorities
    }
}

fn bundle_invalid(reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: "X.509 bundle",
        reason: reason.into(),
    }
}

impl fmt::Debug for X509Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Bundle")
            .field("trust_domain", &self.trust_domain.name())
            .field("authorities", &self.authorities.len())
            .finish()
    }
}

/// The public key of a JWT authority, as read from its JWK.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtKeyMaterial {
    /// An EC key (`kty: EC`): curve name (`P-256`, `P-384`, `P-521`) and the uncompressed point
    /// `0x04 || x || y`.
    Ec {
        /// The `crv` member.
        curve: String,
        /// SEC1 uncompressed point.
        point: Vec<u8>,
    },
    /// An RSA key (`kty: RSA`): big-endian modulus and public exponent.
    Rsa {
        /// `n`.
        modulus: Vec<u8>,
        /// `e`.
        exponent: Vec<u8>,
    },
}

/// One JWT authority: a key ID and its public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtKey {
    key_id: String,
    material: JwtKeyMaterial,
}

impl JwtKey {
    /// The `kid` that JWT-SVID headers name.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key.
    #[must_use]
    pub fn material(&self) -> &JwtKeyMaterial {
        &self.material
    }
}

/// The JWT authorities of one trust domain, parsed from its JWKS document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtBundle {
    trust_domain: TrustDomain,
    keys: Vec<JwtKey>,
    skipped: usize,
    /// Key IDs that name more than one key: none of those keys is used.
    ambiguous: Vec<String>,
}

impl JwtBundle {
    /// Parses a JWKS document (`{"keys": [...]}`) for `trust_domain`.
    ///
    /// Keys of a type JWT-SVIDs cannot use (for example `oct`, or `use: x509-svid`), keys
    /// without a `kid` and malformed keys (bad base64url, missing coordinates) are skipped and
    /// counted in [`Self::skipped`]: one odd key must not cost the whole trust domain its
    /// bundle. `keys: null` or no `keys` is an empty bundle (a federated trust domain without
    /// JWT authorities).
    ///
    /// Two or more keys under one `kid` make that key ID ambiguous (RFC 7517 §4.5: the `kid`
    /// chooses the key): all of them are dropped, the key ID is listed in
    /// [`Self::ambiguous_key_ids`] and logged once as a warning here, and a token naming it is
    /// refused (`JwtSvidError::AmbiguousKeyId`) rather than checked against one
    /// of them picked by position.
    ///
    /// # Errors
    /// [`Error::InvalidResponse`] when the document is not a JWKS object.
    pub fn from_jwks(trust_domain: TrustDomain, jwks: &[u8]) -> Result<Self, Error> {
        let fail = |what: &str| Error::invalid(format!("JWT bundle for {trust_domain}: {what}"));
        let doc: Value = serde_json::from_slice(jwks).map_err(|_| fail("not JSON"))?;
        let keys = match doc.get("keys") {
            _ if !doc.is_object() => return Err(fail("not a JWKS document")),
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(keys)) => keys.clone(),
            Some(_) => return Err(fail("keys is not an array")),
        };
        let mut parsed = Vec::with_capacity(keys.len());
        let mut skipped = 0;
        for key in &keys {
            match parse_jwk(key) {
                Ok(Some(key)) => parsed.push(key),
                Ok(None) => skipped += 1,
                Err(reason) => {
                    tracing::debug!(trust_domain = %trust_domain, %reason, "skipping JWT authority");
                    skipped += 1;
                }
            }
        }
        let ambiguous = duplicate_key_ids(&parsed);
        if !ambiguous.is_empty() {
            parsed.retain(|k| !ambiguous.contains(&k.key_id));
            tracing::warn!(
                trust_domain = %trust_domain,
                key_ids = ?ambiguous,
                "JWT bundle has several keys under one key ID; tokens naming it will be refused"
            );
        }
        Ok(Self {
            trust_domain,
            keys: parsed,
            skipped,
            ambiguous,
        })
    }

    /// A bundle of `keys` (a SPIFFE bundle's JWT authorities); a key ID shared by several keys
    /// is ambiguous, as in [`Self::from_jwks`].
    #[must_use]
    pub fn from_keys(trust_domain: TrustDomain, mut keys: Vec<JwtKey>) -> Self {
        let ambiguous = duplicate_key_ids(&keys);
        keys.retain(|k| !ambiguous.contains(&k.key_id));
        Self {
            trust_domain,
            keys,
            skipped: 0,
            ambiguous,
        }
    }

    /// The trust domain.
    #[must_use]
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The usable keys.
    #[must_use]
    pub fn keys(&self) -> &[JwtKey] {
        &self.keys
    }

    /// The key named `key_id`; `None` also when several keys share it (see
    /// [`Self::is_ambiguous`]).
    #[must_use]
    pub fn key(&self, key_id: &str) -> Option<&JwtKey> {
        self.keys.iter().find(|k| k.key_id == key_id)
    }

    /// Whether the JWKS had more than one key under `key_id`.
    #[must_use]
    pub fn is_ambiguous(&self, key_id: &str) -> bool {
        self.ambiguous.iter().any(|k| k == key_id)
    }

    /// The key IDs that named more than one key, in document order; their keys were dropped.
    #[must_use]
    pub fn ambiguous_key_ids(&self) -> &[String] {
        &self.ambiguous
    }

    /// How many JWKS entries were skipped as unusable for JWT-SVIDs.
    #[must_use]
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

/// Key IDs that occur more than once among `keys`, each listed once, in document order.
fn duplicate_key_ids(keys: &[JwtKey]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut dups: Vec<String> = Vec::new();
    for key in keys {
        if !seen.insert(key.key_id.as_str()) && !dups.contains(&key.key_id) {
            dups.push(key.key_id.clone());
        }
    }
    dups
}

/// One JWK: `Ok(None)` for a key that is well-formed JSON but not a JWT-SVID authority.
pub(crate) fn parse_jwk(key: &Value) -> Result<Option<JwtKey>, String> {
    let text = |name: &str| key.get(name).and_then(Value::as_str);
    if text("use").is_some_and(|u| u != "jwt-svid") {
        return Ok(None);
    }
    let Some(key_id) = text("kid").filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let value = text(name).ok_or_else(|| format!("key {key_id:?} has no {name}"))?;
        let decoded = URL_SAFE_NO_PAD
            .decode(value.trim_end_matches('='))
            .map_err(|_| format!("key {key_id:?}: {name} is not base64url"))?;
        if decoded.is_empty() {
            return Err(format!("key {key_id:?}: {name} is empty"));
        }
        Ok(decoded)
    };
    let material = match text("kty") {
        Some("EC") => {
            let curve = text("crv").unwrap_or_default().to_owned();
            let (x, y) = (bytes("x")?, bytes("y")?);
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            JwtKeyMaterial::Ec { curve, point }
        }
        Some("RSA") => JwtKeyMaterial::Rsa {
            modulus: bytes("n")?,
            exponent: bytes("e")?,
        },
        _ => return Ok(None),
    };
    Ok(Some(JwtKey {
        key_id: key_id.to_owned(),
        material,
    }))
}

/// Where trust bundles come from: an [`crate::X509Source`], a [`crate::JwtSource`], or a fixed
/// set in tests. Verifiers ask it for the bundle of the peer's trust domain on every check, so a
/// source that follows the agent serves rotated and newly federated bundles at once.
pub trait BundleSource: Send + Sync {
    /// The bundle type: [`X509Bundle`] or [`JwtBundle`].
    type Bundle;

    /// The current bundle of `trust_domain`, or `None` when it is not trusted.
    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<std::sync::Arc<Self::Bundle>>;
}

/// A map of bundles by trust domain, shared by [`crate::X509BundleSet`] and
/// [`crate::JwtBundleSet`].
pub(crate) type BundleMap<B> = BTreeMap<TrustDomain, std::sync::Arc<B>>;

#[cfg(test)]
mod tests;
