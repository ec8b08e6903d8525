//! The SVID private key and the check that it belongs to the leaf certificate.
//!
//! The check is structural, without a crypto library: the public half stored in the PKCS#8
//! document (RFC 5208 / RFC 5958) is compared with the leaf's `SubjectPublicKeyInfo`.
//! - EC: `ECPrivateKey` (RFC 5915) carries the public point in its optional `[1]` field; SPIRE
//!   (Go's `x509.MarshalPKCS8PrivateKey`) always writes it. When it is absent the key cannot be
//!   tied to the certificate without EC arithmetic; such a key is **accepted** when its algorithm
//!   and curve match the certificate's, because it is still valid PKCS#8 and rejecting it would
//!   take a working agent's identity away. (The agent is local and authenticated by the socket.)
//! - RSA: `RSAPrivateKey` (RFC 8017) carries modulus and public exponent; both must match.
//! - Ed25519: a v2 `OneAsymmetricKey` carries the public key in `[1]`; compared when present.
//! - Any other algorithm is rejected.

use std::fmt;

use x509_parser::asn1_rs::{Any, Class, FromDer, Oid, Tag};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// An SVID private key: PKCS#8 DER, unencrypted.
///
/// The bytes are wiped when the value is dropped, and `Debug` prints no key material.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey {
    der: Vec<u8>,
}

impl PrivateKey {
    pub(crate) fn new(der: Vec<u8>) -> Self {
        Self { der }
    }

    /// The PKCS#8 DER bytes.
    #[must_use]
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";

/// Checks that `pkcs8` is a PKCS#8 private key whose public half is `spki`.
/// Errors are short English reasons (never containing key bytes).
pub(crate) fn check_key_matches(
    pkcs8: &[u8],
    spki: &SubjectPublicKeyInfo<'_>,
) -> Result<(), String> {
    let info = parse_pkcs8(pkcs8).map_err(|e| format!("private key is not PKCS#8 DER: {e}"))?;
    if info.algorithm.as_bytes() != spki.algorithm.algorithm.as_bytes() {
        return Err(format!(
            "private key algorithm {} does not match the certificate's {}",
            info.algorithm, spki.algorithm.algorithm
        ));
    }
    let cert_params = spki.algorithm.parameters.as_ref().map(|p| p.data);
    let algorithm = info.algorithm.to_id_string();
    match algorithm.as_str() {
        OID_EC => check_ec(&info, cert_params, &spki.subject_public_key.data),
        OID_RSA => check_rsa(&info, spki),
        OID_ED25519 => match info.public_key {
            Some(public) if public != spki.subject_public_key.data.as_ref() => {
                Err("private key does not match the certificate's public key".into())
            }
            _ => Ok(()),
        },
        other => Err(format!("unsupported private key algorithm {other}")),
    }
}

fn check_ec(info: &Pkcs8<'_>, cert_curve: Option<&[u8]>, cert_point: &[u8]) -> Result<(), String> {
    let curve = info.algorithm_params;
    if curve.is_some() && cert_curve.is_some() && curve != cert_curve {
        return Err("private key curve does not match the certificate's".into());
    }
    let ec = parse_ec_private_key(info.private_key)
        .map_err(|e| format!("private key is not a valid ECPrivateKey: {e}"))?;
    if let (Some(inner), Some(cert)) = (ec.curve, cert_curve)
        && inner != cert
    {
        return Err("private key curve does not match the certificate's".into());
    }
    match ec.public_key.or(info.public_key) {
        Some(point) if point != cert_point => {
            Err("private key does not match the certificate's public key".into())
        }
        Some(_) => Ok(()),
        None => {
            tracing::debug!(
                "EC private key carries no public key; matched by algorithm and curve only"
            );
            Ok(())
        }
    }
}

fn check_rsa(info: &Pkcs8<'_>, spki: &SubjectPublicKeyInfo<'_>) -> Result<(), String> {
    let Ok(PublicKey::RSA(cert)) = spki.parsed() else {
        return Err("certificate's RSA public key does not parse".into());
    };
    let items = Any::from_der(info.private_key)
        .map_err(|e| e.to_string())
        .and_then(|(_, outer)| {
            expect_tag(&outer, Tag::Sequence, "RSAPrivateKey")?;
            sequence_items(outer.data)
        })
        .map_err(|e| format!("private key is not a valid RSAPrivateKey: {e}"))?;
    let (Some(modulus), Some(exponent)) = (items.get(1), items.get(2)) else {
        return Err("private key is not a valid RSAPrivateKey: too few fields".into());
    };
    expect_tag(modulus, Tag::Integer, "modulus")?;
    expect_tag(exponent, Tag::Integer, "exponent")?;
    if strip_zeros(modulus.data) != strip_zeros(cert.modulus)
        || strip_zeros(exponent.data) != strip_zeros(cert.exponent)
    {
        return Err("private key does not match the certificate's public key".into());
    }
    Ok(())
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The parts of a PKCS#8 `PrivateKeyInfo` / `OneAsymmetricKey` we need.
struct Pkcs8<'a> {
    algorithm: Oid<'a>,
    /// DER content of the algorithm parameters (the named curve OID for EC).
    algorithm_params: Option<&'a [u8]>,
    /// Content of the `privateKey` OCTET STRING.
    private_key: &'a [u8],
    /// RFC 5958 `[1] publicKey` bits (without the unused-bits byte).
    public_key: Option<&'a [u8]>,
}

fn parse_pkcs8(der: &[u8]) -> Result<Pkcs8<'_>, String> {
    let (rest, outer) = Any::from_der(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err("trailing bytes after the key".into());
    }
    expect_tag(&outer, Tag::Sequence, "PrivateKeyInfo")?;
    let items = sequence_items(outer.data)?;
    let [version, algorithm, private_key, optional @ ..] = items.as_slice() else {
        return Err("PrivateKeyInfo has too few fields".into());
    };
    expect_tag(version, Tag::Integer, "version")?;
    if !matches!(version.data, [0 | 1]) {
        return Err("unsupported PKCS#8 version".into());
    }
    expect_tag(algorithm, Tag::Sequence, "algorithm")?;
    let algorithm_items = sequence_items(algorithm.data)?;
    let Some(oid_any) = algorithm_items.first() else {
        return Err("algorithm identifier is empty".into());
    };
    let oid = Oid::try_from(oid_any).map_err(|e| format!("algorithm OID: {e}"))?;
    expect_tag(private_key, Tag::OctetString, "privateKey")?;
    let public_key = optional
        .iter()
        .find(|a| a.header.class() == Class::ContextSpecific && a.header.tag() == Tag(1))
        .map(|a| bit_string_bits(a.data))
        .transpose()?;
    Ok(Pkcs8 {
        algorithm: oid,
        algorithm_params: algorithm_items.get(1).map(|p| p.data),
        private_key: private_key.data,
        public_key,
    })
}

struct EcPrivateKey<'a> {
    curve: Option<&'a [u8]>,
    public_key: Option<&'a [u8]>,
}

/// RFC 5915: `SEQUENCE { version 1, privateKey OCTET STRING, [0] parameters, [1] publicKey }`.
fn parse_ec_private_key(der: &[u8]) -> Result<EcPrivateKey<'_>, String> {
    let (_, outer) = Any::from_der(der).map_err(|e| e.to_string())?;
    expect_tag(&outer, Tag::Sequence, "ECPrivateKey")?;
    let items = sequence_items(outer.data)?;
    let [version, secret, optional @ ..] = items.as_slice() else {
        return Err("too few fields".into());
    };
    expect_tag(version, Tag::Integer, "version")?;
    expect_tag(secret, Tag::OctetString, "privateKey")?;
    let mut key = EcPrivateKey {
        curve: None,
        public_key: None,
    };
    for field in optional {
        if field.header.class() != Class::ContextSpecific {
            continue;
        }
        // Both fields are EXPLICIT: the content is one complete TLV.
        let (_, inner) = Any::from_der(field.data).map_err(|e| e.to_string())?;
        match field.header.tag() {
            Tag(0) => key.curve = Some(inner.data),
            Tag(1) => {
                expect_tag(&inner, Tag::BitString, "publicKey")?;
                key.public_key = Some(bit_string_bits(inner.data)?);
            }
            _ => {}
        }
    }
    Ok(key)
}

/// A BIT STRING's content without the leading unused-bits byte (which must be 0 for keys).
fn bit_string_bits(content: &[u8]) -> Result<&[u8], String> {
    match content.split_first() {
        Some((0, bits)) => Ok(bits),
        _ => Err("public key BIT STRING is malformed".into()),
    }
}

fn sequence_items(mut content: &[u8]) -> Result<Vec<Any<'_>>, String> {
    let mut items = Vec::new();
    while !content.is_empty() {
        let (rest, item) = Any::from_der(content).map_err(|e| e.to_string())?;
        items.push(item);
        content = rest;
    }
    Ok(items)
}

fn expect_tag(any: &Any<'_>, tag: Tag, what: &str) -> Result<(), String> {
    if any.header.class() == Class::Universal && any.header.tag() == tag {
        Ok(())
    } else {
        Err(format!("{what}: unexpected ASN.1 tag"))
    }
}

#[cfg(test)]
mod tests;
