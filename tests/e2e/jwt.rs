//! JWT-SVIDs and the JWT bundle in daemon mode: docs/behaviour.md#jwt-svid-refresh and #jwt-bundle-file.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use spiffe_helper_testkit::spire::Entry;

use crate::inspect::{audiences, expiry, jwt_parts};
use crate::support::spire_with;
use crate::support::{
    Helper, WORKLOAD, base_config, epoch, mode, scratch, stop_cleanly, wait_until, write_file,
};

/// The token file holds the raw JWT with `jwt_audience` + the extra audiences; with a 30 s JWT
/// TTL a new token replaces it before the old one expires; the JWT bundle file is the compact,
/// key-sorted `{"<td>":"<std base64 of JWKS>"}` of docs/behaviour.md#jwt-bundle-file. This config is JWT-only, so no
/// X.509 files appear.
#[test]
fn jwt_svid_has_every_audience_and_is_refreshed_before_it_expires() {
    let spire = spire_with(&Entry::new(WORKLOAD).jwt_ttl(30));
    let dir = scratch();
    let certs = dir.path().join("certs");
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}jwt_svids = [{{ jwt_audience = \"a\", jwt_extra_audiences = [\"b\", \"c\"], \
             jwt_svid_file_name = \"jwt.token\" }}]\njwt_bundle_file_name = \"jwt_bundle.json\"\n",
            base_config(&spire.endpoint(), &certs)
        ),
    );
    let mut helper = Helper::spawn(&config, &[]);
    let (token_file, bundle_file) = (certs.join("jwt.token"), certs.join("jwt_bundle.json"));
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || !read(&token_file).is_empty()
            && !read(&bundle_file).is_empty()),
        "JWT files not written; log:\n{}",
        helper.log_tail()
    );

    let first = read(&token_file);
    assert_eq!(
        first.trim_end(),
        first,
        "the token file must hold the raw token, no newline"
    );
    let (header, claims) = jwt_parts(&first);
    assert_eq!(claims["sub"], WORKLOAD);
    let mut aud = audiences(&claims);
    aud.sort();
    assert_eq!(
        aud,
        ["a", "b", "c"],
        "aud = jwt_audience + jwt_extra_audiences"
    );
    assert_eq!(mode(&token_file), 0o600, "token file mode");
    assert!(
        !certs.join("svid.pem").exists(),
        "a JWT-only config wrote X.509 files"
    );

    check_jwt_bundle(&read(&bundle_file), spire.trust_domain(), &header);
    assert_eq!(mode(&bundle_file), 0o600, "JWT bundle file mode");

    // Refresh: poll until the token changes; the file must never hold an expired token.
    let old_exp = expiry(&claims);
    let mut second = String::new();
    let refreshed = wait_until(Duration::from_secs(40), || {
        let now = SystemTime::now();
        let current = read(&token_file);
        let (_, c) = jwt_parts(&current);
        assert!(expiry(&c) > now, "the token file holds an expired JWT-SVID");
        if current == first {
            return false;
        }
        eprintln!(
            "MEASURE new JWT-SVID written {:.1}s before the old one expired (TTL 30 s)",
            epoch(old_exp) - epoch(now)
        );
        second = current;
        true
    });
    assert!(
        refreshed,
        "no new JWT-SVID within 40 s; log:\n{}",
        helper.log_tail()
    );
    let (_, new_claims) = jwt_parts(&second);
    let mut aud = audiences(&new_claims);
    aud.sort();
    assert_eq!(aud, ["a", "b", "c"], "refreshed token audiences");
    assert!(
        expiry(&new_claims) > old_exp,
        "the refreshed token does not live longer"
    );

    helper.assert_running("after the JWT refresh");
    helper.remember_tokens(&[first, second]);
    stop_cleanly(&mut helper);
}

/// docs/behaviour.md#jwt-bundle-file: compact JSON object, keys sorted, trust-domain names without `spiffe://`, values
/// padded standard base64 of the JWKS, no trailing newline; the token's `kid` is in the JWKS.
fn check_jwt_bundle(raw: &str, trust_domain: &str, token_header: &serde_json::Value) {
    assert!(
        !raw.ends_with('\n'),
        "the JWT bundle file ends with a newline"
    );
    let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).unwrap();
    let mut keys: Vec<&String> = parsed.keys().collect();
    keys.sort();
    assert_eq!(keys, [trust_domain], "bundle keys");
    let expected = format!(
        "{{{}}}",
        keys.iter()
            .map(|k| format!("\"{k}\":\"{}\"", parsed[k.as_str()].as_str().unwrap()))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        raw, expected,
        "the JWT bundle is not compact, key-sorted JSON"
    );

    let b64 = parsed[trust_domain].as_str().unwrap();
    assert_eq!(b64.len() % 4, 0, "the JWKS base64 is not padded");
    let jwks: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("JWKS has keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    let kid = token_header["kid"].as_str().unwrap();
    assert!(
        kids.contains(&kid),
        "the token's kid is not in the JWT bundle"
    );
}
