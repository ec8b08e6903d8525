//! JWT authorities for tests: keys of every algorithm family JWT-SVID §2.1 allows, their JWKs,
//! and compact JWS tokens signed over header and claims exactly as given (so a test can repeat
//! a member name, add a header member, or sign with a key of another curve).
//!
//! ```
//! use serde_json::json;
//! use spiffe_helper_testkit::jwt::{SigningKey, token};
//!
//! let key = SigningKey::p256();
//! let jwks = json!({ "keys": [key.jwk("k1")] });
//! let jwt = token(&key, &json!({"alg": "ES256", "kid": "k1"}), &json!({"sub": "spiffe://example.org/w"}));
//! assert_eq!(jwt.split('.').count(), 3);
//! # let _ = jwks;
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair as _, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair,
};
use serde_json::{Value, json};

use crate::must;

/// A JWT authority's private key and how it signs.
pub enum SigningKey {
    /// ECDSA on P-256 or P-384 (ring), with the JWK curve name.
    Ec(EcdsaKeyPair, &'static str),
    /// ECDSA on P-521 (`RustCrypto`; ring has no P-521).
    P521(p521::ecdsa::SigningKey),
    /// RSA: PKCS#1 v1.5 for `RS*`, PSS for `PS*` (both over SHA-256).
    Rsa(RsaKeyPair),
}

impl SigningKey {
    /// A fresh P-256 key (ES256).
    #[must_use]
    pub fn p256() -> Self {
        Self::ring_ec(&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256")
    }

    /// A fresh P-384 key (ES384).
    #[must_use]
    pub fn p384() -> Self {
        Self::ring_ec(&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384")
    }

    fn ring_ec(alg: &'static EcdsaSigningAlgorithm, crv: &'static str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = must(EcdsaKeyPair::generate_pkcs8(alg, &rng), "EC key generation");
        Self::Ec(
            must(
                EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng),
                "EC key from PKCS#8",
            ),
            crv,
        )
    }

    /// A fresh P-521 key (ES512).
    #[must_use]
    pub fn p521() -> Self {
        // A random scalar below the group order: the top byte of 66 is 0 or 1.
        let mut scalar = [0_u8; 66];
        must(
            ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut scalar),
            "random P-521 scalar",
        );
        scalar[0] &= 0x01;
        scalar[1] |= 0x01;
        Self::P521(must(
            p521::ecdsa::SigningKey::from_slice(&scalar),
            "P-521 key",
        ))
    }

    /// The RSA key in `pkcs8` (generating RSA keys is slow; tests ship a test-only one).
    #[must_use]
    pub fn rsa(pkcs8: &[u8]) -> Self {
        Self::Rsa(must(RsaKeyPair::from_pkcs8(pkcs8), "RSA key from PKCS#8"))
    }

    /// The public JWK under key id `kid` (no `use`, as the Workload API's JWT bundles have it).
    #[must_use]
    pub fn jwk(&self, kid: &str) -> Value {
        let ec = |crv: &str, point: &[u8]| {
            let n = (point.len() - 1) / 2;
            json!({"kty": "EC", "kid": kid, "crv": crv,
                   "x": b64url(&point[1..=n]), "y": b64url(&point[1 + n..])})
        };
        match self {
            Self::Ec(key, crv) => ec(crv, key.public_key().as_ref()),
            Self::P521(key) => ec("P-521", key.verifying_key().to_sec1_point(false).as_bytes()),
            Self::Rsa(key) => {
                let (n, e) = rsa_public_components(key.public().as_ref());
                json!({"kty": "RSA", "kid": kid, "n": b64url(&n), "e": b64url(&e)})
            }
        }
    }

    /// The signature over `input` in JWS form (`R‖S` for ECDSA). `alg` only chooses the RSA
    /// padding; an EC key always signs with its own curve's hash, so a token can claim an
    /// algorithm its key does not fit.
    #[must_use]
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::Ec(key, _) => must(key.sign(&rng, input), "ECDSA signing")
                .as_ref()
                .to_vec(),
            Self::P521(key) => {
                use p521::ecdsa::signature::Signer as _;
                let sig: p521::ecdsa::Signature = key.sign(input);
                sig.to_bytes().to_vec()
            }
            Self::Rsa(key) => {
                let padding: &dyn RsaEncoding = if alg.starts_with("PS") {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let mut sig = vec![0; key.public().modulus_len()];
                must(key.sign(padding, &rng, input, &mut sig), "RSA signing");
                sig
            }
        }
    }
}

/// A PS256 signature over `input` by the RSA key in `pkcs8` with `salt_len` bytes of salt, made
/// by the `openssl` command (ring signs PSS only with a salt as long as the hash, which is what
/// RFC 7518 §3.5 asks; tests need the other lengths to see them refused).
///
/// # Panics
/// When the `openssl` command is missing or fails (a broken test set-up).
#[must_use]
pub fn pss_sign_with_salt(pkcs8: &[u8], input: &[u8], salt_len: usize) -> Vec<u8> {
    let dir = must(tempfile::tempdir(), "temp dir for openssl");
    let (key, data, sig) = (
        dir.path().join("k.der"),
        dir.path().join("in"),
        dir.path().join("sig"),
    );
    must(std::fs::write(&key, pkcs8), "writing the key for openssl");
    must(
        std::fs::write(&data, input),
        "writing the input for openssl",
    );
    let out = must(
        std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-keyform", "DER", "-sign"])
            .arg(&key)
            .args(["-sigopt", "rsa_padding_mode:pss", "-sigopt"])
            .arg(format!("rsa_pss_saltlen:{salt_len}"))
            .arg("-out")
            .arg(&sig)
            .arg(&data)
            .output(),
        "the openssl command (needed for a PSS signature with another salt length)",
    );
    assert!(
        out.status.success(),
        "testkit: openssl dgst failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    must(std::fs::read(sig), "reading openssl's signature")
}

/// Unpadded base64url, as JWS uses it.
#[must_use]
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS over `header` and `claims` exactly as given (raw JSON text), signed by `key`.
#[must_use]
pub fn token_raw(key: &SigningKey, alg: &str, header: &str, claims: &str) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(claims.as_bytes())
    );
    format!("{input}.{}", b64url(&key.sign(alg, input.as_bytes())))
}

/// A compact JWS over `header` and `claims`, signed by `key` (RSA padding from `header.alg`).
#[must_use]
pub fn token(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let alg = header["alg"].as_str().unwrap_or_default();
    token_raw(key, alg, &header.to_string(), &claims.to_string())
}

/// `n` and `e` from a PKCS#1 `RSAPublicKey` (SEQUENCE of two INTEGERs), as ring hands it out,
/// without leading zero bytes.
fn rsa_public_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn tlv(input: &[u8]) -> (&[u8], &[u8]) {
        let (len, start) = match input[1] {
            l if l < 0x80 => (usize::from(l), 2),
            0x81 => (usize::from(input[2]), 3),
            0x82 => ((usize::from(input[2]) << 8) | usize::from(input[3]), 4),
            other => panic!("testkit: unexpected DER length byte {other:#x}"),
        };
        (&input[start..start + len], &input[start + len..])
    }
    let (seq, _) = tlv(der);
    let (n, rest) = tlv(seq);
    let (e, _) = tlv(rest);
    let strip = |b: &[u8]| b.iter().skip_while(|x| **x == 0).copied().collect();
    (strip(n), strip(e))
}
