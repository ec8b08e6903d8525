//! PKCS#12 keystores and truststores for JVM consumers (Kafka, Tomcat, Spring, Elasticsearch)
//! that read neither PEM nor the Workload API (docs/consumers.md, "Java keystores").
//!
//! Rendering only, with `p12-keystore`: the keystore holds the private key and the SVID's chain
//! under one alias (a `PrivateKeyEntry` for `keytool`), the truststore each bundle authority as a
//! trusted certificate (a `trustedCertEntry`: Java needs the Oracle trusted-key-usage attribute,
//! which the crate sets on certificate entries). Both are protected with PBES2 (PBKDF2 with
//! HMAC-SHA-256, AES-256-CBC) and an HMAC-SHA-256 MAC, which the JDK reads since 11.0.12 and
//! OpenSSL 3 by default. Writing goes through the same atomic path as every other file.

use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};

use crate::error::PemError;
use crate::secret::SecretBytes;

/// The keystore: `key_pkcs8_der` and `chain` (leaf first) as one private-key entry `alias`.
///
/// # Errors
/// [`PemError::Pkcs12`] when a certificate or the key does not parse or the archive cannot be
/// built; never quotes key bytes or the password.
pub fn render_pkcs12_keystore(
    chain: &[Vec<u8>],
    key_pkcs8_der: &[u8],
    alias: &str,
    password: &str,
) -> Result<SecretBytes, PemError> {
    let certs = certificates(chain)?;
    let key = PrivateKey::from_der(key_pkcs8_der)
        .map_err(|_| pkcs12("the private key does not parse"))?;
    // The local key id ties the key bag to its certificate bag, as keytool does; the alias
    // bytes are as good an id as any.
    let entry = PrivateKeyChain::new(alias.as_bytes(), key, certs);
    let mut store = KeyStore::new();
    store.add_entry(alias, KeyStoreEntry::PrivateKeyChain(entry));
    store
        .writer(password)
        .write()
        .map(SecretBytes::new)
        .map_err(|e| pkcs12(&format!("cannot build the keystore: {e}")))
}

/// The truststore: every certificate of `authorities` as a trusted entry, aliased
/// `<alias_prefix>-<n>` in order (`spiffe-ca-0`, `spiffe-ca-1`, ...).
///
/// # Errors
/// As [`render_pkcs12_keystore`].
pub fn render_pkcs12_truststore(
    authorities: &[Vec<u8>],
    alias_prefix: &str,
    password: &str,
) -> Result<Vec<u8>, PemError> {
    let mut store = KeyStore::new();
    for (i, cert) in certificates(authorities)?.into_iter().enumerate() {
        store.add_entry(
            &format!("{alias_prefix}-{i}"),
            KeyStoreEntry::Certificate(cert),
        );
    }
    store
        .writer(password)
        .write()
        .map_err(|e| pkcs12(&format!("cannot build the truststore: {e}")))
}

/// The DER of each `CERTIFICATE` block of a file this crate rendered (the truststore holds what
/// the bundle file holds, after `add_intermediates_to_bundle`, `include_federated_domains` and
/// `omit_expired`).
#[must_use]
pub fn certificate_ders(pem: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines() {
        match (line, &mut body) {
            ("-----BEGIN CERTIFICATE-----", _) => body = Some(String::new()),
            ("-----END CERTIFICATE-----", Some(b64)) => {
                if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
                    out.push(der);
                }
                body = None;
            }
            (line, Some(b64)) => b64.push_str(line.trim()),
            _ => {}
        }
    }
    out
}

fn certificates(ders: &[Vec<u8>]) -> Result<Vec<Certificate>, PemError> {
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            Certificate::from_der(der)
                .map_err(|e| pkcs12(&format!("certificate {i} does not parse: {e}")))
        })
        .collect()
}

fn pkcs12(reason: &str) -> PemError {
    PemError::Pkcs12 {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests;
