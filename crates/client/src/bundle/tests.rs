use serde_json::json;

use super::*;

fn td() -> TrustDomain {
    "example.org".parse().unwrap()
}

#[test]
fn jwks_keys_are_parsed_and_unusable_ones_skipped() {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let doc = json!({"keys": [
        {"kty": "EC", "kid": "k1", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])},
        {"kty": "RSA", "kid": "k2", "n": b64(&[3; 256]), "e": "AQAB"},
        {"kty": "oct", "kid": "k3", "k": "c2VjcmV0"},
        {"kty": "EC", "kid": "k4", "use": "x509-svid", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
    ]});
    let bundle = JwtBundle::from_jwks(td(), doc.to_string().as_bytes()).unwrap();
    assert_eq!(bundle.keys().len(), 2);
    assert_eq!(bundle.skipped(), 3);
    let JwtKeyMaterial::Ec { curve, point } = bundle.key("k1").unwrap().material() else {
        panic!("k1 is EC");
    };
    assert_eq!((curve.as_str(), point.len(), point[0]), ("P-256", 65, 4));
    let JwtKeyMaterial::Rsa { exponent, .. } = bundle.key("k2").unwrap().material() else {
        panic!("k2 is RSA");
    };
    assert_eq!(exponent, &[1, 0, 1]);
    assert!(bundle.key("k3").is_none());
}

#[test]
fn empty_and_malformed_jwks() {
    for empty in [&b"{}"[..], br#"{"keys":null}"#, br#"{"keys":[]}"#] {
        assert!(JwtBundle::from_jwks(td(), empty).unwrap().keys().is_empty());
    }
    for bad in [&b"[]"[..], b"nope", br#"{"keys":{}}"#] {
        assert!(JwtBundle::from_jwks(td(), bad).is_err(), "{bad:?}");
    }
    for odd in [
        &br#"{"keys":[{"kty":"EC","kid":"k","crv":"P-256","x":"!!","y":"AA"}]}"#[..],
        br#"{"keys":[{"kty":"RSA","kid":"k","n":"AQAB"}]}"#,
    ] {
        let bundle = JwtBundle::from_jwks(td(), odd).unwrap();
        assert_eq!((bundle.keys().len(), bundle.skipped()), (0, 1), "{odd:?}");
    }
}
