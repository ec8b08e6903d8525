//! The SPIFFE bundle format (SPIFFE Trust Domain and Bundle standard §4): one JWKS document that
//! holds a trust domain's X.509 authorities (`use: x509-svid`, the certificate in `x5c`) and JWT
//! authorities (`use: jwt-svid`, with `kid`), plus `spiffe_sequence` and `spiffe_refresh_hint`.
//! It is what a federation bundle endpoint serves (docs/embedding.md, "SPIFFE bundles").
//!
//! [`SpiffeBundle::marshal`] writes what go-spiffe's `spiffebundle.Marshal` writes, byte for
//! byte, where the standard leaves no freedom (member order and number encoding as Go's
//! `encoding/json` with go-jose's JWK layout); go-spiffe orders JWT authorities by map
//! iteration, we keep them in insertion order; an empty bundle is `{"keys":[]}` where go-spiffe
//! writes `{"keys":null}`, a document its own `Parse` refuses.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;

use crate::bundle::{JwtKey, JwtKeyMaterial, parse_jwk};
use crate::{Error, JwtBundle, JwtBundleSet, TrustDomain, X509Bundle, X509BundleSet};

const X509_USE: &str = "x509-svid";
const JWT_USE: &str = "jwt-svid";

/// A trust domain's bundle in the SPIFFE format: X.509 and JWT authorities together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpiffeBundle {
    trust_domain: TrustDomain,
    x509_authorities: Vec<Vec<u8>>,
    jwt_authorities: Vec<JwtKey>,
    refresh_hint: Option<i64>,
    sequence_number: Option<u64>,
}

impl SpiffeBundle {
    /// An empty bundle for `trust_domain`.
    #[must_use]
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            x509_authorities: Vec::new(),
            jwt_authorities: Vec::new(),
            refresh_hint: None,
            sequence_number: None,
        }
    }

    /// The bundle of `x509` and `jwt` (either may be missing), as the Workload API hands them
    /// out separately.
    #[must_use]
    pub fn from_parts(
        trust_domain: TrustDomain,
        x509: Option<&X509Bundle>,
        jwt: Option<&JwtBundle>,
    ) -> Self {
        let mut bundle = Self::new(trust_domain);
        if let Some(x509) = x509 {
            bundle.x509_authorities = x509.authorities().to_vec();
        }
        if let Some(jwt) = jwt {
            bundle.jwt_authorities = jwt.keys().to_vec();
        }
        bundle
    }

    /// Parses a SPIFFE bundle document for `trust_domain`. `keys` must be present (§4.1.3);
    /// an `x509-svid` entry must carry exactly one certificate that parses; a `jwt-svid` entry
    /// must have a `kid` and an EC or RSA key; entries with another `use` are skipped (§4.2.3,
    /// as go-spiffe). No member name may appear twice in an object.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the entry and the rule.
    pub fn parse(trust_domain: TrustDomain, document: &[u8]) -> Result<Self, Error> {
        let name = trust_domain.to_string();
        let fail = |reason: String| Error::Invalid {
            what: "SPIFFE bundle",
            reason: format!("{name}: {reason}"),
        };
        let doc = crate::strict_json::object(document).map_err(|e| fail(format!("{e:?}")))?;
        let mut bundle = Self::new(trust_domain);
        bundle.refresh_hint = match doc.get("spiffe_refresh_hint") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| fail("spiffe_refresh_hint is not an integer".into()))?,
            ),
        };
        bundle.sequence_number = match doc.get("spiffe_sequence") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| fail("spiffe_sequence is not an unsigned integer".into()))?,
            ),
        };
        let Some(Value::Array(keys)) = doc.get("keys") else {
            return Err(fail("no keys member (it MUST be present)".into()));
        };
        for (i, key) in keys.iter().enumerate() {
            match key.get("use").and_then(Value::as_str) {
                Some(X509_USE) => {
                    let certs: Vec<&str> = match key.get("x5c") {
                        Some(Value::Array(items)) => {
                            items.iter().filter_map(Value::as_str).collect()
                        }
                        _ => Vec::new(),
                    };
                    let [cert] = certs.as_slice() else {
                        return Err(fail(format!(
                            "x509-svid entry {i} holds {} certificates in x5c, expected one",
                            certs.len()
                        )));
                    };
                    let der = STANDARD
                        .decode(cert)
                        .map_err(|_| fail(format!("x509-svid entry {i}: x5c is not base64")))?;
                    x509_parser::certificate::X509Certificate::from_der(&der).map_err(|e| {
                        fail(format!(
                            "x509-svid entry {i}: certificate does not parse: {e}"
                        ))
                    })?;
                    bundle.x509_authorities.push(der);
                }
                Some(JWT_USE) => match parse_jwk(key) {
                    Ok(Some(jwk)) => bundle.jwt_authorities.push(jwk),
                    Ok(None) => {
                        return Err(fail(format!("jwt-svid entry {i} has no kid or key type")));
                    }
                    Err(reason) => return Err(fail(format!("jwt-svid entry {i}: {reason}"))),
                },
                _ => {}
            }
        }
        Ok(bundle)
    }

    /// The document, as go-spiffe's `spiffebundle.Marshal` writes it: `keys` (X.509 authorities
    /// first, each with `use`, `kty`, the key's parameters and `x5c`; then JWT authorities with
    /// `use`, `kty`, `kid` and the key's parameters), then `spiffe_sequence` and
    /// `spiffe_refresh_hint` when set.
    ///
    /// # Errors
    /// [`Error::Invalid`] when an X.509 authority's public key is neither EC (P-256/384/521)
    /// nor RSA.
    pub fn marshal(&self) -> Result<Vec<u8>, Error> {
        // An empty bundle is `"keys":[]`: go-spiffe writes `null` there, which its own Parse
        // (and the standard's "keys MUST be present") then refuses.
        let mut out = String::from("{\"keys\":");
        {
            out.push('[');
            let mut first = true;
            for der in &self.x509_authorities {
                if !std::mem::take(&mut first) {
                    out.push(',');
                }
                let material = certificate_key(der).map_err(|reason| Error::Invalid {
                    what: "SPIFFE bundle",
                    reason,
                })?;
                push_jwk(&mut out, X509_USE, None, &material, Some(der));
            }
            for key in &self.jwt_authorities {
                if !std::mem::take(&mut first) {
                    out.push(',');
                }
                push_jwk(&mut out, JWT_USE, Some(key.key_id()), key.material(), None);
            }
            out.push(']');
        }
        if let Some(sequence) = self.sequence_number {
            let _ = write!(out, ",\"spiffe_sequence\":{sequence}");
        }
        if let Some(hint) = self.refresh_hint {
            let _ = write!(out, ",\"spiffe_refresh_hint\":{hint}");
        }
        out.push('}');
        Ok(out.into_bytes())
    }

    /// The trust domain.
    #[must_use]
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The X.509 authorities (DER).
    #[must_use]
    pub fn x509_authorities(&self) -> &[Vec<u8>] {
        &self.x509_authorities
    }

    /// The JWT authorities.
    #[must_use]
    pub fn jwt_authorities(&self) -> &[JwtKey] {
        &self.jwt_authorities
    }

    /// `spiffe_refresh_hint`, seconds.
    #[must_use]
    pub fn refresh_hint(&self) -> Option<i64> {
        self.refresh_hint
    }

    /// `spiffe_sequence`.
    #[must_use]
    pub fn sequence_number(&self) -> Option<u64> {
        self.sequence_number
    }

    /// Sets `spiffe_refresh_hint` (seconds).
    pub fn set_refresh_hint(&mut self, seconds: Option<i64>) {
        self.refresh_hint = seconds;
    }

    /// Sets `spiffe_sequence`.
    pub fn set_sequence_number(&mut self, sequence: Option<u64>) {
        self.sequence_number = sequence;
    }

    /// Adds an X.509 authority (DER).
    pub fn add_x509_authority(&mut self, der: Vec<u8>) {
        self.x509_authorities.push(der);
    }

    /// Adds a JWT authority.
    pub fn add_jwt_authority(&mut self, key: JwtKey) {
        self.jwt_authorities.push(key);
    }

    /// The X.509 part, for the TLS verifiers.
    #[must_use]
    pub fn x509_bundle(&self) -> X509Bundle {
        X509Bundle::new(self.trust_domain.clone(), self.x509_authorities.clone())
    }

    /// The JWT part, for the JWT-SVID validator (a `kid` used twice is ambiguous there, as in
    /// any JWKS).
    #[must_use]
    pub fn jwt_bundle(&self) -> JwtBundle {
        JwtBundle::from_keys(self.trust_domain.clone(), self.jwt_authorities.clone())
    }
}

/// The public key of a certificate as JWK material.
fn certificate_key(der: &[u8]) -> Result<JwtKeyMaterial, String> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| format!("an X.509 authority does not parse: {e}"))?;
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            let curve = match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "P-256",
                Some("1.3.132.0.34") => "P-384",
                Some("1.3.132.0.35") => "P-521",
                other => {
                    return Err(format!(
                        "an X.509 authority's EC curve {other:?} has no JWK name"
                    ));
                }
            };
            Ok(JwtKeyMaterial::Ec {
                curve: curve.to_owned(),
                point: point.data().to_vec(),
            })
        }
        Ok(PublicKey::RSA(rsa)) => Ok(JwtKeyMaterial::Rsa {
            modulus: rsa.modulus.to_vec(),
            exponent: rsa.exponent.to_vec(),
        }),
        _ => Err("an X.509 authority's key is neither EC nor RSA".into()),
    }
}

/// One JWK in go-jose's member order: `use`, `kty`, `kid`, `crv`, `x`, `y`, `n`, `e`, `x5c`.
fn push_jwk(
    out: &mut String,
    use_: &str,
    kid: Option<&str>,
    material: &JwtKeyMaterial,
    cert: Option<&[u8]>,
) {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let _ = write!(out, "{{\"use\":\"{use_}\"");
    let kty = match material {
        JwtKeyMaterial::Ec { .. } => "EC",
        JwtKeyMaterial::Rsa { .. } => "RSA",
    };
    let _ = write!(out, ",\"kty\":\"{kty}\"");
    if let Some(kid) = kid.filter(|k| !k.is_empty()) {
        out.push_str(",\"kid\":");
        push_go_string(kid, out);
    }
    match material {
        JwtKeyMaterial::Ec { curve, point } => {
            // Uncompressed point 04 || x || y, each coordinate the curve's size.
            let coords = point.get(1..).unwrap_or_default();
            let (x, y) = coords.split_at(coords.len() / 2);
            let _ = write!(
                out,
                ",\"crv\":\"{curve}\",\"x\":\"{}\",\"y\":\"{}\"",
                b64(x),
                b64(y)
            );
        }
        JwtKeyMaterial::Rsa { modulus, exponent } => {
            let _ = write!(
                out,
                ",\"n\":\"{}\",\"e\":\"{}\"",
                b64(strip_zeros(modulus)),
                b64(strip_zeros(exponent))
            );
        }
    }
    if let Some(der) = cert {
        let _ = write!(out, ",\"x5c\":[\"{}\"]", STANDARD.encode(der));
    }
    out.push('}');
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe escapes included).
fn push_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// SPIFFE bundles by trust domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpiffeBundleSet {
    bundles: BTreeMap<TrustDomain, SpiffeBundle>,
}

impl SpiffeBundleSet {
    /// A set of `bundles` (a later one for the same trust domain replaces an earlier one).
    #[must_use]
    pub fn new(bundles: impl IntoIterator<Item = SpiffeBundle>) -> Self {
        Self {
            bundles: bundles
                .into_iter()
                .map(|b| (b.trust_domain.clone(), b))
                .collect(),
        }
    }

    /// The bundle of `trust_domain`.
    #[must_use]
    pub fn get(&self, trust_domain: &TrustDomain) -> Option<&SpiffeBundle> {
        self.bundles.get(trust_domain)
    }

    /// Adds or replaces a bundle.
    pub fn insert(&mut self, bundle: SpiffeBundle) {
        self.bundles.insert(bundle.trust_domain.clone(), bundle);
    }

    /// Every bundle, by trust domain.
    #[must_use]
    pub fn bundles(&self) -> &BTreeMap<TrustDomain, SpiffeBundle> {
        &self.bundles
    }

    /// The Workload API's two bundle sets (X.509 bundles, JWT bundles), joined per trust
    /// domain: a domain in only one of them gets a bundle with only that kind of authority.
    #[must_use]
    pub fn from_workload_api(x509: &X509BundleSet, jwt: &JwtBundleSet) -> Self {
        let mut domains: Vec<&TrustDomain> = x509.bundles().keys().collect();
        domains.extend(jwt.bundles().keys());
        domains.sort();
        domains.dedup();
        Self::new(
            domains
                .into_iter()
                .map(|td| SpiffeBundle::from_parts(td.clone(), x509.get(td), jwt.get(td))),
        )
    }

    /// The X.509 authorities of every bundle, for the TLS verifiers.
    #[must_use]
    pub fn x509_bundle_set(&self) -> X509BundleSet {
        X509BundleSet::new(self.bundles.values().map(SpiffeBundle::x509_bundle))
    }
}

impl crate::BundleSource for SpiffeBundleSet {
    type Bundle = SpiffeBundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<std::sync::Arc<SpiffeBundle>> {
        self.bundles
            .get(trust_domain)
            .map(|b| std::sync::Arc::new(b.clone()))
    }
}

#[cfg(test)]
mod tests;
