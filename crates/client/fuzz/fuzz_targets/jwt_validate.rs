//! Arbitrary bytes through offline JWT-SVID validation: the first byte even, the rest as a token
//! against a fixed bundle (P-256, P-521 and RSA keys); odd, the rest as a JWKS document. Never a
//! panic; an accepted token names a SPIFFE ID in the bundle's trust domain and
//! carries the audience asked for; a parsed bundle never hands out a key under an ambiguous ID.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spiffe_workload_client::{JwtBundle, JwtBundleSet, JwtValidator, TrustDomain};

/// Public keys only: the base points of P-256 and P-521 and a made-up 2048-bit RSA modulus,
/// under kids the seeds use, plus one kid published twice.
const JWKS: &str = r#"{"keys":[
 {"kty":"EC","kid":"p256","crv":"P-256",
  "x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY",
  "y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"},
 {"kty":"EC","kid":"p521","crv":"P-521",
  "x":"AMaFjga3BATpzZ4-y2YjlbRCnGSBOQU_tSH4KK9ga009uqFLXnfv51ko_h3BJ6L_qN4zSLPBhWpCm_l-fjHC5b1m",
  "y":"ARg5KWp4mjvABFyKX7QsfRvZmPVESVebRGgXr70XJz5mLJfucple9CZAxVC5AT-tB2E1PHCGonLCQIi-lHaf0WZQ"},
 {"kty":"RSA","kid":"rsa","e":"AQAB",
  "n":"hfHQ7MB3DH6QyEbBFsxt7GhrBp3rDhWzZENA4Dfysl0RkKyVfZ2wNOULx-tkdduQL0Lv9VCaSaFaEVJS1dLP5gXx0OzAdwx-kMhGwRbMbexoawad6w4Vs2RDQOA38rJdEZCslX2dsDTlC8frZHXbkC9C7_VQmkmhWhFSUtXSz-YF8dDswHcMfpDIRsEWzG3saGsGnesOFbNkQ0DgN_KyXRGQrJV9nbA05QvH62R125AvQu_1UJpJoVoRUlLV0s_mBfHQ7MB3DH6QyEbBFsxt7GhrBp3rDhWzZENA4Dfysl0RkKyVfZ2wNOULx-tkdduQL0Lv9VCaSaFaEVJS1dLP5w"},
 {"kty":"EC","kid":"dup","crv":"P-256",
  "x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY",
  "y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"},
 {"kty":"EC","kid":"dup","crv":"P-256",
  "x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY",
  "y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"}
]}"#;

fn trust_domain() -> TrustDomain {
    "example.org".parse().expect("fuzz: trust domain")
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 1 {
        if let Ok(bundle) = JwtBundle::from_jwks(trust_domain(), rest) {
            for kid in bundle.ambiguous_key_ids() {
                assert!(bundle.key(kid).is_none(), "ambiguous kid {kid:?} resolved");
            }
        }
        return;
    }
    let Ok(token) = std::str::from_utf8(rest) else {
        return;
    };
    let bundles = JwtBundleSet::from_jwks([(trust_domain(), JWKS.as_bytes().to_vec())])
        .expect("fuzz: the fixed JWKS parses");
    if let Ok(valid) = JwtValidator::default().validate(token, &bundles, "fuzz") {
        assert_eq!(valid.spiffe_id.trust_domain(), &trust_domain());
        let aud = &valid.claims["aud"];
        assert!(aud == "fuzz" || aud.as_array().is_some_and(|a| a.iter().any(|v| v == "fuzz")));
    }
});
