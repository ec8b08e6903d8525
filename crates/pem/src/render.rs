//! Rendering: DER in, the exact bytes of each output file out.
//!
//! The layout matches Go's `encoding/pem.EncodeToMemory` as used by the upstream
//! `spiffe-helper` v0.11.0 (`pkg/disk/x509.go`): 64-column standard base64, `\n` line ends,
//! blocks back to back with no blank line, every block ending in `\n`. The encoder is our
//! own (a dozen lines) rather than the `pem` crate's, so the private key's base64 text is
//! built inside zeroized buffers that never reallocate.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::error::{CertSource, PemError};
use crate::secret::SecretBytes;

/// DER material for the X.509 files, as received from the agent.
#[derive(Debug, Clone, Copy)]
pub struct X509Material<'a> {
    /// The SVID chain: leaf first, then intermediates (each one DER certificate).
    pub chain: &'a [Vec<u8>],
    /// The SVID private key, PKCS#8 DER.
    pub key_pkcs8_der: &'a [u8],
    /// Roots of the SVID's own trust domain, in the order received.
    pub bundle: &'a [Vec<u8>],
    /// Other trust domains (name without `spiffe://`) and their roots. Must not contain the
    /// SVID's own trust domain: the caller separates it into [`X509Material::bundle`].
    pub federated: &'a BTreeMap<String, Vec<Vec<u8>>>,
}

/// How to compose the X.509 files (the `helper.conf` switches of docs/behaviour.md#x509-files).
#[derive(Debug, Clone, Copy)]
pub struct X509Options {
    /// Move the intermediates from the SVID file to the end of the own-domain roots.
    pub add_intermediates_to_bundle: bool,
    /// Append every federated domain's roots to the bundle, ordered by trust-domain name.
    pub include_federated_domains: bool,
    /// Drop certificates whose `NotAfter` is before `now` from both SVID and bundle file.
    pub omit_expired: bool,
    /// The instant `omit_expired` compares against (injectable for tests).
    pub now: SystemTime,
}

/// The three X.509 files, rendered.
#[derive(Debug, Clone)]
pub struct RenderedX509 {
    /// SVID file: `CERTIFICATE` blocks.
    pub cert: Vec<u8>,
    /// Key file: one `PRIVATE KEY` block.
    pub key: SecretBytes,
    /// Bundle file: `CERTIFICATE` blocks (may be empty if every root was omitted as expired).
    pub bundle: Vec<u8>,
}

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES_NL: &[u8] = b"-----\n";
const LINE: usize = 64;

/// Exact size of one encoded block, so a buffer for it can be allocated once.
fn block_len(tag: &str, der_len: usize) -> usize {
    let b64 = der_len.div_ceil(3) * 4;
    let lines = b64.div_ceil(LINE);
    BEGIN.len() + END.len() + 2 * (tag.len() + DASHES_NL.len()) + b64 + lines
}

/// Appends one PEM block to `out`. The base64 text lives in a zeroized scratch buffer.
fn encode_block(tag: &str, der: &[u8], out: &mut Vec<u8>) {
    let mut b64 = Zeroizing::new(vec![0u8; der.len().div_ceil(3) * 4]);
    // The buffer has exactly the padded length, so this cannot fail; if it ever did, the
    // block would be emitted without a body and fail to parse rather than panic.
    let written = STANDARD.encode_slice(der, b64.as_mut_slice()).unwrap_or(0);
    out.extend_from_slice(BEGIN);
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(DASHES_NL);
    for line in b64[..written].chunks(LINE) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(END);
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(DASHES_NL);
}

/// PEM `CERTIFICATE` blocks back to back, in the given order (no validation of the DER).
#[must_use]
pub fn render_certificates(ders: &[Vec<u8>]) -> Vec<u8> {
    render_cert_refs(ders.iter().map(Vec::as_slice))
}

pub(crate) fn render_cert_refs<'a>(ders: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for der in ders {
        encode_block("CERTIFICATE", der, &mut out);
    }
    out
}

/// One `PRIVATE KEY` block holding `pkcs8_der` as given, in a zeroized buffer.
#[must_use]
pub fn render_private_key(pkcs8_der: &[u8]) -> SecretBytes {
    const TAG: &str = "PRIVATE KEY";
    // Pre-sized: the Vec never reallocates, so no unzeroized copy of the key is left behind.
    let mut out = Vec::with_capacity(block_len(TAG, pkcs8_der.len()));
    encode_block(TAG, pkcs8_der, &mut out);
    SecretBytes::new(out)
}

/// The combined file (`svid_combined_file_name`, docs/consumers.md): the key file's `PRIVATE KEY`
/// block, then the SVID file's `CERTIFICATE` blocks in the same order, byte for byte. This is
/// the one-PEM form `HAProxy`'s `crt` and `ghostunnel`'s `--keystore` read. It follows the SVID
/// file exactly, so with `add_intermediates_to_bundle` it carries only the leaf, and with
/// `omit_expired` it drops the same certificates.
///
/// Holds the key, so it is a [`SecretBytes`] (pre-sized: no unzeroized copy is left behind).
#[must_use]
pub fn render_combined(files: &RenderedX509) -> SecretBytes {
    let mut out = Vec::with_capacity(files.key.len() + files.cert.len());
    out.extend_from_slice(files.key.as_bytes());
    out.extend_from_slice(&files.cert);
    SecretBytes::new(out)
}

/// A `PRIVATE KEY` block holding `pkcs8_der`, then one `CERTIFICATE` block per DER in `chain`
/// (given order), in one zeroized buffer allocated once: the credential bundle of the SPIFFE
/// filesystem-delivery draft.
pub(crate) fn render_key_and_chain(pkcs8_der: &[u8], chain: &[&[u8]]) -> SecretBytes {
    const TAG: &str = "PRIVATE KEY";
    let len = block_len(TAG, pkcs8_der.len())
        + chain
            .iter()
            .map(|der| block_len("CERTIFICATE", der.len()))
            .sum::<usize>();
    let mut out = Vec::with_capacity(len);
    encode_block(TAG, pkcs8_der, &mut out);
    for der in chain {
        encode_block("CERTIFICATE", der, &mut out);
    }
    SecretBytes::new(out)
}

/// The JWT bundle file (docs/behaviour.md#jwt-bundle-file): compact JSON object mapping each
/// trust-domain name to the standard, padded base64 of that domain's JWKS; keys sorted; no
/// trailing newline; `{}` when empty. Same bytes as upstream's `json.Marshal` of a Go map
/// (which sorts keys), and each JWKS as upstream re-encodes it through go-spiffe (compact,
/// go-jose member order, `{"keys":null}` without keys); a JWKS that is not one of public EC,
/// RSA or OKP keys (the client refuses those) is kept as received.
#[must_use]
pub fn render_jwt_bundle(bundles: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    // Inserted in sorted order, so the output is sorted whether or not some other crate in
    // the build enables serde_json's `preserve_order`.
    let map: serde_json::Map<String, serde_json::Value> = bundles
        .iter()
        .map(|(td, jwks)| {
            let written = crate::jwks::as_upstream_writes(jwks);
            let bytes = written.as_deref().unwrap_or(jwks);
            (
                td.clone(),
                serde_json::Value::String(STANDARD.encode(bytes)),
            )
        })
        .collect();
    serde_json::Value::Object(map).to_string().into_bytes()
}

/// A certificate that parsed, with its `NotAfter`.
pub(crate) struct Checked<'a> {
    pub(crate) der: &'a [u8],
    pub(crate) not_after_unix: i64,
}

pub(crate) fn check_all<'a>(
    ders: &'a [Vec<u8>],
    source: &CertSource,
) -> Result<Vec<Checked<'a>>, PemError> {
    ders.iter()
        .enumerate()
        .map(|(index, der)| {
            let invalid = |reason: String| PemError::InvalidCertificate {
                source_kind: source.clone(),
                index,
                reason,
            };
            let (rest, cert) =
                x509_parser::parse_x509_certificate(der).map_err(|e| invalid(e.to_string()))?;
            if !rest.is_empty() {
                return Err(invalid(format!("{} trailing bytes", rest.len())));
            }
            Ok(Checked {
                der,
                not_after_unix: cert.validity().not_after.timestamp(),
            })
        })
        .collect()
}

/// Nanoseconds since the Unix epoch (negative before it).
pub(crate) fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

/// Renders the SVID, key and bundle files (docs/behaviour.md#x509-files).
///
/// - SVID file: the chain in received order; with `add_intermediates_to_bundle` only the leaf.
/// - Key file: one `PRIVATE KEY` block with the PKCS#8 DER as received.
/// - Bundle file: own-domain roots, then the intermediates if `add_intermediates_to_bundle`,
///   then with `include_federated_domains` each federated domain's roots, by name.
/// - `omit_expired` drops certificates whose `NotAfter` is strictly before `now` (as Go's
///   `NotAfter.Before(now)` upstream) from both files. Unlike upstream, which would write an
///   SVID file without the leaf, an expired leaf is an error and nothing should be written.
///
/// Every certificate is parsed first, so malformed agent data never reaches the disk.
///
/// # Errors
/// [`PemError::EmptyChain`], [`PemError::EmptyKey`], [`PemError::InvalidCertificate`] (with the
/// list and index of the offending certificate), [`PemError::LeafExpired`].
pub fn render_x509(m: &X509Material<'_>, o: &X509Options) -> Result<RenderedX509, PemError> {
    if m.key_pkcs8_der.is_empty() {
        return Err(PemError::EmptyKey);
    }
    let chain = check_all(m.chain, &CertSource::Chain)?;
    let Some(leaf) = chain.first() else {
        return Err(PemError::EmptyChain);
    };
    let own_roots = check_all(m.bundle, &CertSource::Bundle)?;
    let mut federated = Vec::new();
    if o.include_federated_domains {
        for (td, roots) in m.federated {
            federated.extend(check_all(roots, &CertSource::Federated(td.clone()))?);
        }
    }

    let now = unix_nanos(o.now);
    let keep =
        |c: &&Checked<'_>| !o.omit_expired || i128::from(c.not_after_unix) * 1_000_000_000 >= now;
    if !keep(&leaf) {
        return Err(PemError::LeafExpired {
            not_after_unix: leaf.not_after_unix,
        });
    }

    let split = if o.add_intermediates_to_bundle {
        1
    } else {
        chain.len()
    };
    let (svid, intermediates) = chain.split_at(split);
    let bundle = own_roots.iter().chain(intermediates).chain(&federated);
    Ok(RenderedX509 {
        cert: render_cert_refs(svid.iter().filter(keep).map(|c| c.der)),
        key: render_private_key(m.key_pkcs8_der),
        bundle: render_cert_refs(bundle.filter(keep).map(|c| c.der)),
    })
}

#[cfg(test)]
mod tests;
