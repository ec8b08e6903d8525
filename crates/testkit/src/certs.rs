//! Test certificates (rcgen): CAs, X.509-SVIDs, Workload API responses and JWT look-alikes.
//!
//! Everything here panics on failure: it is test support, and a failure means the test setup
//! itself is broken.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::pb;

/// Back-dating applied to `NotBefore`, like SPIRE does.
const BACKDATE: Duration = Duration::from_secs(10);

/// A test certificate authority (ECDSA P-256), a self-signed root or an intermediate.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
    /// Certificates above this CA up to (excluding) the root; empty for a root.
    parents: Vec<Vec<u8>>,
    is_root: bool,
    trust_domain: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("is_root", &self.is_root)
            .field("der_len", &self.der.len())
            .finish_non_exhaustive()
    }
}

fn ca_params(common_name: &str, trust_domain: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    if let Ok(uri) = format!("spiffe://{trust_domain}").try_into() {
        params.subject_alt_names = vec![SanType::URI(uri)];
    }
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + Duration::from_secs(10 * 365 * 24 * 3600)).into();
    params
}

#[allow(clippy::expect_used)]
fn new_key() -> KeyPair {
    KeyPair::generate().expect("testkit: generating an ECDSA P-256 key")
}

impl TestCa {
    /// Creates a self-signed root CA for `trust_domain` (URI SAN `spiffe://<trust_domain>`).
    ///
    /// # Panics
    /// If rcgen cannot generate the key or certificate.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn root(trust_domain: &str) -> TestCa {
        let params = ca_params(&format!("{trust_domain} test root"), trust_domain);
        let key = new_key();
        let cert = params
            .self_signed(&key)
            .expect("testkit: self-signing the root CA");
        TestCa {
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
            parents: Vec::new(),
            is_root: true,
            trust_domain: trust_domain.to_owned(),
        }
    }

    /// Creates an intermediate CA signed by this CA.
    ///
    /// # Panics
    /// If rcgen cannot generate the key or certificate.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn intermediate(&self) -> TestCa {
        let td = &self.trust_domain;
        let params = ca_params(&format!("{td} test intermediate"), td);
        let key = new_key();
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("testkit: signing the intermediate CA");
        let mut parents = Vec::new();
        if !self.is_root {
            parents.push(self.der.clone());
            parents.extend(self.parents.iter().cloned());
        }
        TestCa {
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
            parents,
            is_root: false,
            trust_domain: self.trust_domain.clone(),
        }
    }

    /// The CA certificate, DER.
    #[must_use]
    pub fn der(&self) -> Vec<u8> {
        self.der.clone()
    }

    /// The CA certificate, PEM (LF line endings).
    #[must_use]
    pub fn pem(&self) -> String {
        pem_block("CERTIFICATE", &self.der)
    }

    /// The CA private key as PKCS#8 PEM (for SPIRE's `UpstreamAuthority "disk"`).
    #[must_use]
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a leaf with URI SAN `spiffe_id`, valid from now-10s to now+`ttl`.
    /// The chain is the leaf, plus this CA (and its parents below the root) if it is an
    /// intermediate.
    ///
    /// # Panics
    /// If rcgen cannot generate the key or certificate.
    #[must_use]
    pub fn issue(&self, spiffe_id: &str, ttl: Duration) -> TestSvid {
        let now = SystemTime::now();
        self.issue_with_validity(Some(spiffe_id), now - BACKDATE, now + ttl)
    }

    /// A leaf signed by this CA from `params` as given (tests that break one rule of an SVID
    /// start from [`svid_params`] and change one field), with this CA's chain and a new P-256 key.
    ///
    /// # Panics
    /// If rcgen cannot sign `params`.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn issue_params(&self, params: &CertificateParams, spiffe_id: &str) -> TestSvid {
        let key = new_key();
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("testkit: signing the leaf");
        let mut chain = vec![cert.der().to_vec()];
        if !self.is_root {
            chain.push(self.der.clone());
            chain.extend(self.parents.iter().cloned());
        }
        TestSvid {
            chain,
            key_pkcs8: key.serialize_der(),
            spiffe_id: spiffe_id.to_owned(),
        }
    }

    /// Issues a leaf with an explicit validity window; `None` issues one without a URI SAN.
    ///
    /// # Panics
    /// If rcgen cannot generate the key or certificate, or `spiffe_id` is not IA5.
    #[must_use]
    pub fn issue_with_validity(
        &self,
        spiffe_id: Option<&str>,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> TestSvid {
        let mut params = svid_params(spiffe_id);
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        self.issue_params(&params, spiffe_id.unwrap_or_default())
    }
}

/// An issued leaf: DER chain (leaf first), PKCS#8 key, and the SPIFFE ID it was issued for.
#[derive(Clone)]
pub struct TestSvid {
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER private key of the leaf.
    pub key_pkcs8: Vec<u8>,
    /// The SPIFFE ID in the URI SAN (empty if issued without one).
    pub spiffe_id: String,
}

impl std::fmt::Debug for TestSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSvid")
            .field("spiffe_id", &self.spiffe_id)
            .field("chain_len", &self.chain.len())
            .field("key_pkcs8", &"<redacted>")
            .finish()
    }
}

impl TestSvid {
    /// The chain as concatenated DER, as the Workload API carries it.
    #[must_use]
    pub fn chain_der(&self) -> Vec<u8> {
        self.chain.concat()
    }
}

/// Leaf certificate parameters as SPIRE issues an X.509-SVID: `O=SPIRE`, not a CA, key usage
/// digitalSignature + keyEncipherment + keyAgreement, EKU serverAuth + clientAuth, authority key
/// id, and `spiffe_id` as the one URI SAN (none when `None`). Tests that break one rule of an
/// SVID change one field of these.
///
/// # Panics
/// If `spiffe_id` is not ASCII.
#[must_use]
#[allow(clippy::expect_used)]
pub fn svid_params(spiffe_id: Option<&str>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "SPIRE");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    if let Some(id) = spiffe_id {
        let uri = id
            .to_owned()
            .try_into()
            .expect("testkit: SPIFFE ID must be ASCII");
        params.subject_alt_names = vec![SanType::URI(uri)];
    }
    params
}

/// Builds an `X509SVIDResponse`: one `X509SVID` per `(svid, hint)` with the concatenated DER
/// chain and the concatenated `bundle`, and federated bundles keyed `spiffe://<td>`.
#[must_use]
pub fn x509_response(
    svids: &[(&TestSvid, &str)],
    bundle: &[Vec<u8>],
    federated: &[(&str, Vec<Vec<u8>>)],
) -> pb::X509svidResponse {
    let bundle = bundle.concat();
    pb::X509svidResponse {
        svids: svids
            .iter()
            .map(|(svid, hint)| pb::X509svid {
                spiffe_id: svid.spiffe_id.clone(),
                x509_svid: svid.chain_der(),
                x509_svid_key: svid.key_pkcs8.clone(),
                bundle: bundle.clone(),
                hint: (*hint).to_owned(),
            })
            .collect(),
        crl: Vec::new(),
        federated_bundles: federated
            .iter()
            .map(|(td, certs)| (td_key(td), certs.concat()))
            .collect::<HashMap<_, _>>(),
    }
}

/// `spiffe://td` for a bare trust domain name; an already prefixed ID is kept.
fn td_key(td: &str) -> String {
    if td.starts_with("spiffe://") {
        td.to_owned()
    } else {
        format!("spiffe://{td}")
    }
}

/// A well-formed but unsigned JWT (`header.payload.signature`, base64url without padding) with
/// header `{"alg":"ES256","kid":"test","typ":"JWT"}` and claims `sub`, `aud`, `exp`, `iat`.
#[must_use]
pub fn jwt_token(spiffe_id: &str, audiences: &[&str], exp: SystemTime) -> String {
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let header = serde_json::json!({"alg": "ES256", "kid": "test", "typ": "JWT"});
    let payload = serde_json::json!({
        "sub": spiffe_id,
        "aud": audiences,
        "exp": secs(exp),
        "iat": secs(SystemTime::now()),
    });
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode([0x5a_u8; 64]),
    )
}

/// PEM-encodes one block with LF line endings and 64-column lines.
#[must_use]
pub fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::new();
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out + "-----END " + label + "-----\n"
}

#[cfg(test)]
mod tests;
