//! JWT-SVID and JWT bundle validation against the SPIFFE JWT-SVID standard and RFC 7515/7518,
//! and the own X.509-SVID as the agent hands it over: each test signs tokens (ring, p521) or
//! issues certificates (rcgen) that break or keep one rule. docs/validation.md lists each check
//! with its clause.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use spiffe_helper_testkit::certs::{self, TestCa};
use spiffe_helper_testkit::fake::FakeAgent;
use spiffe_helper_testkit::jwt::{
    SigningKey as Key, b64url as b64, pss_sign_with_salt, token, token_raw,
};
use spiffe_workload_client::{
    Endpoint, JwtBundle, JwtBundleSet, JwtSvidError, WorkloadApiClient, validate_jwt_svid,
};

const ID: &str = "spiffe://example.org/web";
/// Test-only RSA-2048 key (see tests/data/README.md for how it was made).
const RSA_PKCS8: &[u8] = include_bytes!("data/rsa-key.der");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn bundles(jwks: &[Value]) -> JwtBundleSet {
    let doc = json!({ "keys": jwks }).to_string().into_bytes();
    JwtBundleSet::from_jwks([("example.org".parse().unwrap(), doc)]).unwrap()
}

fn header(alg: &str) -> Value {
    json!({"alg": alg, "kid": "k1", "typ": "JWT"})
}

fn claims() -> Value {
    json!({"sub": ID, "aud": ["svc"], "exp": now() + 300, "iat": now()})
}

fn check(token: &str, bundles: &JwtBundleSet) -> Result<String, JwtSvidError> {
    validate_jwt_svid(token, bundles, "svc").map(|v| v.spiffe_id.to_string())
}

#[test]
fn a_jwt_svid_header_member_other_than_alg_kid_and_typ_is_refused() {
    let key = Key::p256();
    let set = bundles(&[key.jwk("k1")]);
    assert_eq!(
        check(&token(&key, &header("ES256"), &claims()), &set).unwrap(),
        ID
    );
    let without_typ = json!({"alg": "ES256", "kid": "k1"});
    assert!(check(&token(&key, &without_typ, &claims()), &set).is_ok());
    for (name, value) in [
        ("crit", json!(["exp"])),
        ("b64", json!(false)),
        ("x5c", json!(["MIIB"])),
        ("jku", json!("https://attacker.example/jwks")),
        ("jwk", key.jwk("k1")),
        ("x5u", json!("https://attacker.example/cert")),
        ("cty", json!("JWT")),
        ("zip", json!("DEF")),
        ("private", json!(1)),
    ] {
        let mut h = header("ES256");
        h[name] = value;
        assert_eq!(
            check(&token(&key, &h, &claims()), &set),
            Err(JwtSvidError::UnexpectedHeader { name: name.into() }),
            "{name}"
        );
    }
}

#[test]
fn a_jwt_svid_naming_a_header_or_claim_member_twice_is_refused() {
    let key = Key::p256();
    let set = bundles(&[key.jwk("k1")]);
    let h = r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#;
    let (exp, iat) = (now() + 300, now());
    let c = |extra: &str| format!(r#"{{"sub":"{ID}","aud":"svc","exp":{exp},"iat":{iat}{extra}}}"#);
    assert!(check(&token_raw(&key, "ES256", h, &c("")), &set).is_ok());
    for (extra, name) in [
        (r#","sub":"spiffe://example.org/admin""#, "sub"),
        (r#","aud":"other""#, "aud"),
        (&format!(r#","exp":{}"#, exp + 86_400) as &str, "exp"),
        (r#","nested":{"a":1,"a":2}"#, "a"),
    ] {
        let err = check(&token_raw(&key, "ES256", h, &c(extra)), &set).unwrap_err();
        assert_eq!(
            err,
            JwtSvidError::DuplicateMember {
                part: "claims",
                name: format!("{name:?}")
            }
        );
    }
    for h in [
        r#"{"alg":"ES256","kid":"k1","alg":"ES256"}"#,
        r#"{"alg":"ES256","kid":"k2","kid":"k1"}"#,
        r#"{"alg":"ES256","kid":"k1","typ":"at+jwt","typ":"JWT"}"#,
    ] {
        assert!(matches!(
            check(&token_raw(&key, "ES256", h, &c("")), &set),
            Err(JwtSvidError::DuplicateMember { part: "header", .. })
        ));
    }
}

#[test]
fn a_token_whose_key_id_names_two_bundle_keys_is_refused_whichever_signed_it() {
    let (first, second) = (Key::p256(), Key::p256());
    let set = bundles(&[first.jwk("k1"), second.jwk("k1"), Key::p256().jwk("k2")]);
    let bundle = set.get(&"example.org".parse().unwrap()).unwrap();
    assert_eq!(bundle.ambiguous_key_ids(), ["k1"]);
    assert!(bundle.key("k1").is_none());
    assert!(bundle.key("k2").is_some());
    for signer in [&first, &second] {
        let err = check(&token(signer, &header("ES256"), &claims()), &set).unwrap_err();
        assert!(
            matches!(&err, JwtSvidError::AmbiguousKeyId { key_id, .. } if key_id == "k1"),
            "{err}"
        );
        assert!(
            err.to_string().contains("\"k1\""),
            "the error names the key ID: {err}"
        );
    }
}

#[test]
fn an_es512_jwt_svid_signed_with_a_p521_key_validates() {
    let key = Key::p521();
    let set = bundles(&[key.jwk("k1")]);
    let good = token(&key, &header("ES512"), &claims());
    assert_eq!(check(&good, &set).unwrap(), ID);

    let mut tampered = claims();
    tampered["sub"] = json!("spiffe://example.org/admin");
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(tampered.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(check(&forged, &set), Err(JwtSvidError::BadSignature));
    // ES512 is bound to P-521: a P-256 key under the same kid cannot check it, and a P-521 key
    // cannot check ES256.
    let p256 = Key::p256();
    let mixed = bundles(&[p256.jwk("k1")]);
    assert!(matches!(
        check(&token(&p256, &header("ES512"), &claims()), &mixed),
        Err(JwtSvidError::KeyMismatch { .. })
    ));
    assert!(matches!(
        check(&token(&key, &header("ES256"), &claims()), &set),
        Err(JwtSvidError::KeyMismatch { .. })
    ));
}

#[test]
fn an_algorithm_never_verifies_with_a_key_of_another_family_or_curve() {
    let (p256, p384, rsa) = (Key::p256(), Key::p384(), Key::rsa(RSA_PKCS8));
    assert!(
        check(
            &token(&p384, &header("ES384"), &claims()),
            &bundles(&[p384.jwk("k1")])
        )
        .is_ok()
    );
    for (signer, alg, trusted) in [
        (&p256, "ES384", &p256),
        (&p384, "ES256", &p384),
        (&p256, "RS256", &p256),
        (&rsa, "ES256", &rsa),
        (&rsa, "PS256", &p256),
    ] {
        let result = check(
            &token(signer, &header(alg), &claims()),
            &bundles(&[trusted.jwk("k1")]),
        );
        assert!(
            matches!(result, Err(JwtSvidError::KeyMismatch { .. })),
            "{alg}: {result:?}"
        );
    }
}

#[test]
fn rsa_jwt_svids_validate_and_a_pss_signature_with_a_short_salt_is_refused() {
    let rsa = Key::rsa(RSA_PKCS8);
    let set = bundles(&[rsa.jwk("k1")]);
    for alg in ["RS256", "PS256"] {
        assert_eq!(
            check(&token(&rsa, &header(alg), &claims()), &set).unwrap(),
            ID,
            "{alg}"
        );
    }
    // RFC 7518 §3.5: the PSS salt is as long as the hash. go-spiffe (Go's rsa.VerifyPSS with
    // PSSSaltLengthAuto) accepts any salt; ring, and so we, take only the 32 bytes of PS256.
    let input = format!(
        "{}.{}",
        b64(header("PS256").to_string().as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let sig = pss_sign_with_salt(RSA_PKCS8, input.as_bytes(), 0);
    let short_salt = format!("{input}.{}", b64(&sig));
    assert_eq!(check(&short_salt, &set), Err(JwtSvidError::BadSignature));
    let sig = pss_sign_with_salt(RSA_PKCS8, input.as_bytes(), 32);
    assert!(
        check(&format!("{input}.{}", b64(&sig)), &set).is_ok(),
        "openssl's own PS256 validates"
    );
}

#[test]
fn a_token_in_padded_or_standard_base64_is_refused() {
    let key = Key::p256();
    let set = bundles(&[key.jwk("k1")]);
    let good = token(&key, &header("ES256"), &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let header_bytes = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
    // RFC 7515 §2 and §7.1: base64url without padding, in every part.
    for bad in [
        format!("{}.{}.{}", parts[0], parts[1], URL_SAFE.encode(&sig)),
        format!("{}.{}.{}", parts[0], parts[1], STANDARD.encode(&sig)),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            URL_SAFE.encode(&header_bytes),
            parts[1],
            parts[2]
        ),
        format!("{} .{}.{}", parts[0], parts[1], parts[2]),
    ] {
        if bad == good {
            continue;
        }
        assert!(
            matches!(check(&bad, &set), Err(JwtSvidError::Malformed { .. })),
            "{bad}"
        );
    }
}

#[test]
fn a_jwks_key_published_for_x509_svids_cannot_sign_jwt_svids() {
    let key = Key::p256();
    let mut jwk = key.jwk("k1");
    jwk["use"] = json!("x509-svid");
    let set = bundles(&[jwk]);
    assert!(matches!(
        check(&token(&key, &header("ES256"), &claims()), &set),
        Err(JwtSvidError::UnknownKeyId { .. })
    ));
    let mut jwk = key.jwk("k1");
    jwk["use"] = json!("jwt-svid");
    assert!(check(&token(&key, &header("ES256"), &claims()), &bundles(&[jwk])).is_ok());
}

#[test]
fn none_hmac_and_unlisted_algorithms_are_refused() {
    let key = Key::p256();
    let set = bundles(&[key.jwk("k1")]);
    let good = token(&key, &header("ES256"), &claims());
    let parts: Vec<&str> = good.split('.').collect();
    for alg in ["none", "HS256", "EdDSA", "ES256K", "es256", ""] {
        let h = b64(json!({"alg": alg, "kid": "k1"}).to_string().as_bytes());
        assert!(
            matches!(
                check(&format!("{h}.{}.{}", parts[1], parts[2]), &set),
                Err(JwtSvidError::UnsupportedAlgorithm { .. })
            ),
            "{alg}"
        );
    }
}

#[test]
fn a_jwt_bundle_document_keeps_its_unambiguous_keys() {
    let (a, b) = (Key::p256(), Key::rsa(RSA_PKCS8));
    let doc = json!({"keys": [a.jwk("a"), b.jwk("b"), a.jwk("dup"), b.jwk("dup")]}).to_string();
    let bundle = JwtBundle::from_jwks("example.org".parse().unwrap(), doc.as_bytes()).unwrap();
    let kids: Vec<&str> = bundle
        .keys()
        .iter()
        .map(spiffe_workload_client::JwtKey::key_id)
        .collect();
    assert_eq!(kids, ["a", "b"]);
    assert!(bundle.is_ambiguous("dup"));
}

#[tokio::test]
async fn an_agent_svid_whose_id_has_no_path_is_refused() {
    let fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    let td_only = ca.issue("spiffe://example.org", Duration::from_secs(3600));
    fake.push_x509(certs::x509_response(&[(&td_only, "")], &[ca.der()], &[]));
    let client = WorkloadApiClient::new(Endpoint::parse(&fake.endpoint()).unwrap());
    let err = client.fetch_x509_context().await.unwrap_err();
    assert!(err.to_string().contains("no path"), "{err}");

    let web = ca.issue(ID, Duration::from_secs(3600));
    fake.push_x509(certs::x509_response(&[(&web, "")], &[ca.der()], &[]));
    let context = client.fetch_x509_context().await.unwrap();
    assert_eq!(context.default_svid().spiffe_id().to_string(), ID);
}

#[tokio::test]
async fn an_agent_jwt_svid_naming_a_claim_twice_is_refused() {
    use spiffe_helper_testkit::pb::{Jwtsvid, JwtsvidResponse};
    let fake = FakeAgent::start().await;
    let key = Key::p256();
    // serde_json alone keeps the last `sub`, which matches the ID the agent names; a parser
    // that keeps the first sees another workload.
    let claims = format!(
        r#"{{"sub":"spiffe://example.org/admin","aud":"svc","exp":{},"sub":"{ID}"}}"#,
        now() + 300
    );
    let svid = token_raw(&key, "ES256", r#"{"alg":"ES256","kid":"k1"}"#, &claims);
    fake.set_jwt_svids(JwtsvidResponse {
        svids: vec![Jwtsvid {
            spiffe_id: ID.into(),
            svid,
            hint: String::new(),
        }],
    });
    let client = WorkloadApiClient::new(Endpoint::parse(&fake.endpoint()).unwrap());
    let err = client
        .fetch_jwt_svids(&["svc".to_owned()], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than once"), "{err}");
}

#[tokio::test]
async fn an_agent_svid_whose_leaf_may_sign_certificates_is_refused() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_der = ca.self_signed(&ca_key).unwrap().der().to_vec();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    leaf.subject_alt_names = vec![rcgen::SanType::URI(ID.to_owned().try_into().unwrap())];
    let key = KeyPair::generate().unwrap();
    let svid = spiffe_helper_testkit::certs::TestSvid {
        chain: vec![leaf.signed_by(&key, &issuer).unwrap().der().to_vec()],
        key_pkcs8: key.serialize_der(),
        spiffe_id: ID.to_owned(),
    };
    let fake = FakeAgent::start().await;
    fake.push_x509(certs::x509_response(&[(&svid, "")], &[ca_der], &[]));
    let client = WorkloadApiClient::new(Endpoint::parse(&fake.endpoint()).unwrap());
    let err = client.fetch_x509_context().await.unwrap_err();
    assert!(err.to_string().contains("keyCertSign"), "{err}");
}
