use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::json;

use super::*;
use crate::JwtBundleSet;

const ID: &str = "spiffe://example.org/web";

struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Signer {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self { key, rng }
    }

    fn bundles(&self, kid: &str) -> JwtBundleSet {
        let point = self.key.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "kid": kid, "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        });
        let doc = json!({ "keys": [jwk] }).to_string().into_bytes();
        JwtBundleSet::from_jwks([("example.org".parse().unwrap(), doc)]).unwrap()
    }

    fn token(&self, header: &Value, claims: &Value) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let signed = format!("{}.{}", enc(header), enc(claims));
        let sig = self.key.sign(&self.rng, signed.as_bytes()).unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn header() -> Value {
    json!({"alg": "ES256", "kid": "k1", "typ": "JWT"})
}

fn claims() -> Value {
    json!({"sub": ID, "aud": ["a", "b"], "exp": now() + 300, "iat": now()})
}

#[test]
fn a_good_token_validates() {
    let s = Signer::new();
    let v = validate_jwt_svid(&s.token(&header(), &claims()), &s.bundles("k1"), "b").unwrap();
    assert_eq!(v.spiffe_id.to_string(), ID);
    assert_eq!(v.claims["aud"], json!(["a", "b"]));
}

#[test]
fn each_failure_has_its_own_error() {
    let s = Signer::new();
    let bundles = s.bundles("k1");
    let check = |token: &str, audience: &str| validate_jwt_svid(token, &bundles, audience);
    let good = s.token(&header(), &claims());

    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 5;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert_eq!(check(&flipped, "a"), Err(JwtSvidError::BadSignature));

    assert!(matches!(
        check(&good, "c"),
        Err(JwtSvidError::AudienceMismatch { .. })
    ));

    let other_kid = s.token(&json!({"alg": "ES256", "kid": "nope"}), &claims());
    assert!(matches!(
        check(&other_kid, "a"),
        Err(JwtSvidError::UnknownKeyId { .. })
    ));

    let parts: Vec<&str> = good.split('.').collect();
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
    let none = format!("{none_header}.{}.", parts[1]);
    assert_eq!(
        check(&none, "a"),
        Err(JwtSvidError::UnsupportedAlgorithm { alg: "none".into() })
    );
    let hs = s.token(&json!({"alg": "HS256", "kid": "k1"}), &claims());
    assert!(matches!(
        check(&hs, "a"),
        Err(JwtSvidError::UnsupportedAlgorithm { .. })
    ));

    let mut old = claims();
    old["exp"] = json!(now() - 61);
    assert_eq!(
        check(&s.token(&header(), &old), "a"),
        Err(JwtSvidError::Expired)
    );
    // Within the one-minute leeway: accepted, as SPIRE and go-spiffe do; refused without it.
    old["exp"] = json!(now() - 30);
    let recent = s.token(&header(), &old);
    assert!(check(&recent, "a").is_ok());
    assert_eq!(
        JwtValidator::default()
            .leeway(Duration::ZERO)
            .validate(&recent, &bundles, "a"),
        Err(JwtSvidError::Expired)
    );

    let mut future = claims();
    future["nbf"] = json!(now() + 600);
    assert_eq!(
        check(&s.token(&header(), &future), "a"),
        Err(JwtSvidError::NotYetValid)
    );

    let no_kid = s.token(&json!({"alg": "ES256"}), &claims());
    assert_eq!(check(&no_kid, "a"), Err(JwtSvidError::MissingKeyId));
    let bad_typ = s.token(
        &json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}),
        &claims(),
    );
    assert!(matches!(
        check(&bad_typ, "a"),
        Err(JwtSvidError::BadType { .. })
    ));
    let mut not_spiffe = claims();
    not_spiffe["sub"] = json!("https://example.org/web");
    assert!(matches!(
        check(&s.token(&header(), &not_spiffe), "a"),
        Err(JwtSvidError::InvalidSubject(_))
    ));
    let mut foreign = claims();
    foreign["sub"] = json!("spiffe://other.org/web");
    assert!(matches!(
        check(&s.token(&header(), &foreign), "a"),
        Err(JwtSvidError::NoBundle(_))
    ));
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        check(&s.token(&header(), &no_exp), "a"),
        Err(JwtSvidError::InvalidClaim { claim: "exp" })
    );
    let rsa = s.token(&json!({"alg": "RS256", "kid": "k1"}), &claims());
    assert!(matches!(
        check(&rsa, "a"),
        Err(JwtSvidError::KeyMismatch { .. })
    ));
    for junk in ["", "a.b", "a.b.c.d", "!!.e30.AA"] {
        assert!(matches!(
            check(junk, "a"),
            Err(JwtSvidError::Malformed { .. })
        ));
    }
}

#[test]
fn errors_never_quote_the_token() {
    let s = Signer::new();
    let good = s.token(&header(), &claims());
    let err = validate_jwt_svid(&good, &s.bundles("k1"), "zzz").unwrap_err();
    let text = err.to_string();
    for part in good.split('.') {
        assert!(!text.contains(part), "{text}");
    }
}
