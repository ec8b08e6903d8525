//! The JWKS re-encoding against hand-written go-jose output.

use super::as_upstream_writes;

fn upstream(received: &str) -> String {
    String::from_utf8(as_upstream_writes(received.as_bytes()).unwrap()).unwrap()
}

#[test]
fn keys_lose_use_alg_and_x5c_and_take_go_joses_member_order() {
    let received = r#"{
"keys": [
    {
        "use": "jwt-svid",
        "kty": "EC",
        "kid": "k1",
        "crv": "P-256",
        "x": "AAA",
        "y": "BBB",
        "alg": "ES256"
    },
    {"e": "AQAB", "n": "0vx7", "kid": "k2", "kty": "RSA", "x5c": ["MII"]}
],
"spiffe_refresh_hint": 300
}"#;
    assert_eq!(
        upstream(received),
        r#"{"keys":[{"kty":"EC","kid":"k1","crv":"P-256","x":"AAA","y":"BBB"},{"kty":"RSA","kid":"k2","n":"0vx7","e":"AQAB"}]}"#
    );
}

#[test]
fn a_set_without_keys_is_written_as_keys_null() {
    for received in [r#"{"keys": []}"#, "{}", r#"{"keys":null}"#] {
        assert_eq!(upstream(received), r#"{"keys":null}"#);
    }
}

#[test]
fn strings_are_escaped_as_go_escapes_them() {
    assert_eq!(
        upstream(r#"{"keys":[{"kty":"OKP","kid":"a<b>&\"c\u2028","crv":"Ed25519","x":"Z"}]}"#),
        r#"{"keys":[{"kty":"OKP","kid":"a\u003cb\u003e\u0026\"c\u2028","crv":"Ed25519","x":"Z"}]}"#
    );
}

#[test]
fn what_is_not_a_jwks_of_public_keys_is_left_to_the_caller() {
    for received in [
        "x",
        r#"{"keys":{}}"#,
        r#"{"keys":[{"kty":"oct","k":"AAA"}]}"#,
        r#"{"keys":[{"kty":"EC","kid":7}]}"#,
        r#"{"keys":[{"kid":"no-kty"}]}"#,
    ] {
        assert_eq!(as_upstream_writes(received.as_bytes()), None, "{received}");
    }
}
