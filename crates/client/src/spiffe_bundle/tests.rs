//! The SPIFFE bundle document: parse and marshal round trips, go-jose's member layout, and the
//! rules of the Trust Domain and Bundle standard §4.

use super::*;

fn td() -> TrustDomain {
    "example.org".parse().unwrap()
}

fn ca(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().der().to_vec()
}

fn jwt_key(kid: &str) -> JwtKey {
    let doc = format!(
        r#"{{"keys":[{{"use":"jwt-svid","kty":"EC","kid":"{kid}","crv":"P-256","x":"{}","y":"{}"}}]}}"#,
        URL_SAFE_NO_PAD.encode([1_u8; 32]),
        URL_SAFE_NO_PAD.encode([2_u8; 32])
    );
    JwtBundle::from_jwks(td(), doc.as_bytes()).unwrap().keys()[0].clone()
}

fn sample() -> SpiffeBundle {
    let mut bundle = SpiffeBundle::new(td());
    bundle.add_x509_authority(ca(&rcgen::PKCS_ECDSA_P256_SHA256));
    bundle.add_x509_authority(ca(&rcgen::PKCS_ECDSA_P384_SHA384));
    bundle.add_jwt_authority(jwt_key("k<1>"));
    bundle.set_refresh_hint(Some(300));
    bundle.set_sequence_number(Some(7));
    bundle
}

#[test]
fn marshal_then_parse_gives_the_same_bundle_and_the_same_bytes() {
    let bundle = sample();
    let bytes = bundle.marshal().unwrap();
    let parsed = SpiffeBundle::parse(td(), &bytes).unwrap();
    assert_eq!(parsed, bundle);
    assert_eq!(parsed.marshal().unwrap(), bytes);
    assert_eq!(parsed.x509_bundle().authorities().len(), 2);
    assert!(parsed.jwt_bundle().key("k<1>").is_some());
}

#[test]
fn the_layout_is_go_joses() {
    let mut bundle = SpiffeBundle::new(td());
    bundle.add_jwt_authority(jwt_key("k<1>"));
    let text = String::from_utf8(bundle.marshal().unwrap()).unwrap();
    let x = URL_SAFE_NO_PAD.encode([1_u8; 32]);
    let y = URL_SAFE_NO_PAD.encode([2_u8; 32]);
    assert_eq!(
        text,
        format!(
            r#"{{"keys":[{{"use":"jwt-svid","kty":"EC","kid":"k\u003c1\u003e","crv":"P-256","x":"{x}","y":"{y}"}}]}}"#
        )
    );
    assert_eq!(
        SpiffeBundle::new(td()).marshal().unwrap(),
        br#"{"keys":[]}"#
    );
    let x509 = String::from_utf8(sample().marshal().unwrap()).unwrap();
    assert!(
        x509.starts_with(r#"{"keys":[{"use":"x509-svid","kty":"EC","crv":"P-256","x":""#),
        "{x509}"
    );
    assert!(
        x509.ends_with(r#","spiffe_sequence":7,"spiffe_refresh_hint":300}"#),
        "{x509}"
    );
}

#[test]
fn the_standards_rules_are_checked() {
    let refuse = |doc: &str, want: &str| {
        let err = SpiffeBundle::parse(td(), doc.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{doc}: {err}");
    };
    refuse(r#"{"spiffe_sequence":1}"#, "no keys member");
    let cert = STANDARD.encode(ca(&rcgen::PKCS_ECDSA_P256_SHA256));
    refuse(
        &format!(r#"{{"keys":[{{"use":"x509-svid","kty":"EC","x5c":["{cert}","{cert}"]}}]}}"#),
        "2 certificates",
    );
    refuse(
        r#"{"keys":[{"use":"x509-svid","kty":"EC","x5c":["AAAA"]}]}"#,
        "does not parse",
    );
    refuse(
        r#"{"keys":[{"use":"jwt-svid","kty":"EC","crv":"P-256"}]}"#,
        "no kid",
    );
    refuse(r#"{"keys":[],"keys":[]}"#, "keys");
    refuse(r#"{"keys":[],"spiffe_sequence":-1}"#, "spiffe_sequence");
    // Another use is skipped, as go-spiffe does.
    let bundle = SpiffeBundle::parse(td(), br#"{"keys":[{"use":"other","kty":"oct"}]}"#).unwrap();
    assert!(bundle.x509_authorities().is_empty() && bundle.jwt_authorities().is_empty());
}

#[test]
fn the_workload_apis_two_sets_join_per_trust_domain() {
    use crate::BundleSource as _;
    let own = ca(&rcgen::PKCS_ECDSA_P256_SHA256);
    let x509 = X509BundleSet::new([
        X509Bundle::new(td(), vec![own.clone()]),
        X509Bundle::new("x509-only.org".parse().unwrap(), vec![own.clone()]),
    ]);
    let jwks = format!(
        r#"{{"keys":[{{"kty":"EC","kid":"k","crv":"P-256","x":"{}","y":"{}"}}]}}"#,
        URL_SAFE_NO_PAD.encode([1_u8; 32]),
        URL_SAFE_NO_PAD.encode([2_u8; 32])
    );
    let jwt = JwtBundleSet::from_jwks([
        (td(), jwks.clone().into_bytes()),
        ("jwt-only.org".parse().unwrap(), jwks.into_bytes()),
    ])
    .unwrap();
    let set = SpiffeBundleSet::from_workload_api(&x509, &jwt);
    assert_eq!(set.bundles().len(), 3);
    let both = set.get(&td()).unwrap();
    assert_eq!(both.x509_authorities(), std::slice::from_ref(&own));
    assert_eq!(both.jwt_authorities().len(), 1);
    let x509_only = set.get(&"x509-only.org".parse().unwrap()).unwrap();
    assert!(x509_only.jwt_authorities().is_empty());
    let jwt_only = set.get(&"jwt-only.org".parse().unwrap()).unwrap();
    assert!(jwt_only.x509_authorities().is_empty());
    assert_eq!(set.x509_bundle_set().bundles().len(), 3);
    assert!(set.bundle_for(&"nowhere.org".parse().unwrap()).is_none());
}
