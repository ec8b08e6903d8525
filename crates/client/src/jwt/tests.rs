use serde_json::json;

use super::*;

fn token(payload: &Value) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!(
        "{}.{}.c2ln",
        enc(&json!({"alg": "ES256", "typ": "JWT"})),
        enc(payload)
    )
}

fn msg(id: &str, svid: String) -> pb::Jwtsvid {
    pb::Jwtsvid {
        spiffe_id: id.into(),
        svid,
        hint: "h".into(),
    }
}

const ID: &str = "spiffe://example.org/web";

#[test]
fn claims_are_read_from_the_token() {
    let t = token(&json!({"sub": ID, "aud": ["a", "b"], "exp": 1_900_000_000}));
    let svid = JwtSvid::try_from(msg(ID, t.clone())).unwrap();
    assert_eq!(svid.token().as_str(), t);
    assert_eq!(svid.spiffe_id().to_string(), ID);
    assert_eq!(svid.hint(), "h");
    assert_eq!(svid.audience(), ["a", "b"]);
    assert_eq!(
        svid.expiry(),
        UNIX_EPOCH + Duration::from_secs(1_900_000_000)
    );

    let single = token(&json!({"sub": ID, "aud": "a", "exp": 1_900_000_000.5}));
    let svid = JwtSvid::try_from(msg(ID, single)).unwrap();
    assert_eq!(svid.audience(), ["a"]);
    assert_eq!(
        svid.expiry(),
        UNIX_EPOCH + Duration::from_secs(1_900_000_000)
    );
}

#[test]
fn bad_tokens_are_invalid_responses_that_do_not_quote_the_token() {
    let cases = [
        ("not-a-jwt".to_owned(), "compact JWS"),
        ("a.b.c.d".to_owned(), "compact JWS"),
        ("e30.!!!.c2ln".to_owned(), "base64url"),
        (
            format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode("[1]")),
            "JSON object",
        ),
        (token(&json!({"sub": ID, "aud": "a"})), "no exp"),
        (
            token(&json!({"sub": ID, "aud": "a", "exp": "soon"})),
            "not a number",
        ),
        (
            token(&json!({"sub": ID, "aud": "a", "exp": -5})),
            "not a valid time",
        ),
        (token(&json!({"aud": "a", "exp": 1})), "no sub"),
        (
            token(&json!({"sub": "spiffe://example.org/x", "aud": "a", "exp": 1})),
            "differs",
        ),
        (token(&json!({"sub": ID, "exp": 1})), "no aud"),
        (
            token(&json!({"sub": ID, "aud": [1], "exp": 1})),
            "non-string",
        ),
    ];
    for (t, expected) in cases {
        let err = JwtSvid::try_from(msg(ID, t.clone())).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(expected), "{expected}: {text}");
        assert!(!text.contains(&t), "error quotes the token: {text}");
        assert!(matches!(err, Error::InvalidResponse { .. }));
    }
}

#[test]
fn token_debug_is_redacted() {
    let t = token(&json!({"sub": ID, "aud": "a", "exp": 1}));
    let svid = JwtSvid::try_from(msg(ID, t.clone())).unwrap();
    let text = format!("{svid:?}");
    assert!(!text.contains(&t));
    assert!(text.contains("JwtToken(<redacted>)"));
}

#[test]
fn jwt_bundles_keep_bytes_and_reject_non_jwks() {
    let jwks = br#"{"keys":[{"kty":"EC","kid":"k"}]}"#.to_vec();
    let mut map = HashMap::new();
    map.insert("spiffe://example.org".to_owned(), jwks.clone());
    let set = JwtBundleSet::try_from(pb::JwtBundlesResponse {
        bundles: map.clone(),
    })
    .unwrap();
    let td: TrustDomain = "example.org".parse().unwrap();
    assert_eq!(set.bundles().get(&td), Some(&jwks));

    let mut bad = map.clone();
    bad.insert("spiffe://other.org".into(), b"[]".to_vec());
    let err = JwtBundleSet::try_from(pb::JwtBundlesResponse { bundles: bad }).unwrap_err();
    assert!(err.to_string().contains("other.org"), "{err}");
    let err = JwtBundleSet::try_from(pb::JwtBundlesResponse::default()).unwrap_err();
    assert!(matches!(err, Error::EmptyResponse));
}

#[test]
fn validated_claims_convert_to_json() {
    use prost_types::value::Kind;
    let value = |kind| prost_types::Value { kind: Some(kind) };
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("sub".to_owned(), value(Kind::StringValue(ID.into())));
    fields.insert("exp".to_owned(), value(Kind::NumberValue(1_900_000_000.0)));
    fields.insert(
        "aud".to_owned(),
        value(Kind::ListValue(prost_types::ListValue {
            values: vec![value(Kind::StringValue("a".into()))],
        })),
    );
    let resp = pb::ValidateJwtsvidResponse {
        spiffe_id: ID.into(),
        claims: Some(prost_types::Struct { fields }),
    };
    let v = ValidatedJwtSvid::try_from(resp).unwrap();
    assert_eq!(v.spiffe_id.to_string(), ID);
    assert_eq!(
        v.claims,
        json!({"sub": ID, "exp": 1_900_000_000, "aud": ["a"]})
    );
}
