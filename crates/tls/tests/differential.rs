//! Differential run against go-spiffe v2: generated JWT-SVIDs (mutated headers, claims,
//! encodings, keys) and X.509-SVID chains (every mix of anchor, intermediate and leaf flaws)
//! go through our validators and through go-spiffe's `jwtsvid.ParseAndValidate` and
//! `x509svid.ParseAndVerify` (the `verdict` mode of `tests/interop/go`). Every disagreement must
//! be one that docs/validation.md lists under "Where we differ from go-spiffe" (go-spiffe
//! accepts, we refuse, with the clause), and every listed difference must still show up.
//! Needs Go and the Go module proxy (the interop peer's build), no SPIRE.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::{Value, json};
use spiffe_helper_testkit::interop::go_peer;
use spiffe_helper_testkit::jwt::{
    SigningKey as Key, b64url as b64, pss_sign_with_salt, token as sign, token_raw as sign_raw,
};
use spiffe_workload_client::{JwtBundleSet, X509Bundle, X509BundleSet, validate_jwt_svid};
use spiffe_workload_tls::rustls::client::danger::ServerCertVerifier as _;
use spiffe_workload_tls::rustls::pki_types::{ServerName, UnixTime};
use spiffe_workload_tls::{Authorizer, SpiffeServerVerifier};

const TD: &str = "example.org";
const ID: &str = "spiffe://example.org/web";
const AUD: &str = "svc";
/// Test-only RSA-2048 key, shared with the client tests (crates/client/tests/data/README.md).
const RSA_PKCS8: &[u8] = include_bytes!("../../client/tests/data/rsa-key.der");

/// The differences docs/validation.md justifies: go-spiffe accepts, we refuse.
const JUSTIFIED: &[&str] = &[
    "JWT header member other than alg/kid/typ",
    "two keys under one kid",
    "JWKS key with use x509-svid",
    "RSA-PSS salt not the hash length",
    "base64url with a line break",
    "intermediate without a key usage extension",
    "leaf SPIFFE ID without a path",
    "leaf EKU without the handshake role",
];

struct Case {
    name: String,
    /// Which justified differences this case carries (empty: both must agree).
    differs: Vec<&'static str>,
    ours: Result<String, String>,
    line: Value,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------- JWT-SVIDs

fn claims() -> Value {
    json!({"sub": ID, "aud": [AUD], "exp": now() + 600, "iat": now()})
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "callers build the token in place"
)]
fn jwt_case(name: &str, differs: &[&'static str], token: String, jwks: &[Value]) -> Case {
    let doc = json!({ "keys": jwks }).to_string();
    let ours = JwtBundleSet::from_jwks([(TD.parse().unwrap(), doc.clone().into_bytes())])
        .map_err(|e| e.to_string())
        .and_then(|set| {
            validate_jwt_svid(&token, &set, AUD)
                .map(|v| v.spiffe_id.to_string())
                .map_err(|e| e.to_string())
        });
    Case {
        name: format!("jwt/{name}"),
        differs: differs.to_vec(),
        ours,
        line: json!({"kind": "jwt", "token": token, "jwks": doc, "td": TD, "audience": AUD}),
    }
}

#[expect(clippy::too_many_lines, reason = "one flat list of generated cases")]
fn jwt_cases() -> Vec<Case> {
    const HDR: &str = "JWT header member other than alg/kid/typ";
    let mut cases = Vec::new();
    let es = Key::p256();
    let jwks = [es.jwk("k1")];
    let header = json!({"alg": "ES256", "kid": "k1", "typ": "JWT"});

    // Each algorithm family, good.
    let p384 = Key::p384();
    let p521 = Key::p521();
    let rsa = Key::rsa(RSA_PKCS8);
    for (alg, key) in [
        ("ES256", &es),
        ("ES384", &p384),
        ("ES512", &p521),
        ("RS256", &rsa),
        ("PS256", &rsa),
    ] {
        let h = json!({"alg": alg, "kid": "k1"});
        cases.push(jwt_case(
            &format!("good/{alg}"),
            &[],
            sign(key, &h, &claims()),
            &[key.jwk("k1")],
        ));
    }
    // alg and key of different families or curves.
    for (name, alg, signer, trusted) in [
        ("ES384-with-P-256", "ES384", &es, &es),
        ("ES256-with-P-384", "ES256", &p384, &p384),
        ("RS256-with-EC", "RS256", &es, &es),
        ("ES256-with-RSA", "ES256", &rsa, &rsa),
        ("PS256-signed-RS256", "PS256", &rsa, &rsa),
    ] {
        let h = json!({"alg": alg, "kid": "k1"});
        let token = if name == "PS256-signed-RS256" {
            let input = format!(
                "{}.{}",
                b64(h.to_string().as_bytes()),
                b64(claims().to_string().as_bytes())
            );
            format!("{input}.{}", b64(&rsa.sign("RS256", input.as_bytes())))
        } else {
            sign(signer, &h, &claims())
        };
        cases.push(jwt_case(
            &format!("key/{name}"),
            &[],
            token,
            &[trusted.jwk("k1")],
        ));
    }
    // PSS salt length.
    for salt in [0_usize, 20, 32, 64] {
        let h = json!({"alg": "PS256", "kid": "k1"});
        let input = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        let token = format!(
            "{input}.{}",
            b64(&pss_sign_with_salt(RSA_PKCS8, input.as_bytes(), salt))
        );
        let differs: &[&'static str] = if salt == 32 {
            &[]
        } else {
            &["RSA-PSS salt not the hash length"]
        };
        cases.push(jwt_case(
            &format!("pss/salt-{salt}"),
            differs,
            token,
            &[rsa.jwk("k1")],
        ));
    }
    // Header members.
    for (name, value) in [
        ("crit", json!(["exp"])),
        ("x5c", json!(["MIIB"])),
        ("jku", json!("https://attacker.example/jwks")),
        ("jwk", es.jwk("k1")),
        ("x5u", json!("https://attacker.example/c")),
        ("cty", json!("JWT")),
        ("private", json!(1)),
        ("nonce", json!("n")),
    ] {
        let mut h = header.clone();
        h[name] = value;
        // go-jose refuses a `crit` it does not understand: there both refuse.
        let differs: &[&'static str] = if name == "crit" { &[] } else { &[HDR] };
        cases.push(jwt_case(
            &format!("header/{name}"),
            differs,
            sign(&es, &h, &claims()),
            &jwks,
        ));
    }
    let mut b64_false = header.clone();
    b64_false["b64"] = json!(false);
    b64_false["crit"] = json!(["b64"]);
    cases.push(jwt_case(
        "header/b64-false",
        &[],
        sign(&es, &b64_false, &claims()),
        &jwks,
    ));
    for (name, typ) in [
        ("typ-JOSE", Some("JOSE")),
        ("typ-jwt-lowercase", Some("jwt")),
        ("typ-at+jwt", Some("at+jwt")),
        ("typ-absent", None),
    ] {
        let mut h = json!({"alg": "ES256", "kid": "k1"});
        if let Some(t) = typ {
            h["typ"] = json!(t);
        }
        cases.push(jwt_case(
            &format!("header/{name}"),
            &[],
            sign(&es, &h, &claims()),
            &jwks,
        ));
    }
    for (name, h) in [
        ("alg-none", json!({"alg": "none", "kid": "k1"})),
        ("alg-HS256", json!({"alg": "HS256", "kid": "k1"})),
        ("alg-missing", json!({"kid": "k1"})),
        ("kid-missing", json!({"alg": "ES256"})),
        ("kid-empty", json!({"alg": "ES256", "kid": ""})),
        ("kid-unknown", json!({"alg": "ES256", "kid": "k9"})),
    ] {
        cases.push(jwt_case(
            &format!("header/{name}"),
            &[],
            sign(&es, &h, &claims()),
            &jwks,
        ));
    }
    // Repeated member names, the last one good: go-jose's own JSON decoder refuses them too.
    let (exp, iat) = (now() + 600, now());
    let hdr = r#"{"alg":"ES256","kid":"k1"}"#;
    for (name, text) in [
        (
            "sub",
            format!(
                r#"{{"sub":"spiffe://example.org/admin","aud":"{AUD}","exp":{exp},"sub":"{ID}"}}"#
            ),
        ),
        (
            "aud",
            format!(r#"{{"sub":"{ID}","aud":"other","exp":{exp},"aud":"{AUD}"}}"#),
        ),
        (
            "exp",
            format!(r#"{{"sub":"{ID}","aud":"{AUD}","exp":1,"exp":{exp}}}"#),
        ),
        (
            "iat",
            format!(r#"{{"sub":"{ID}","aud":"{AUD}","exp":{exp},"iat":{iat},"iat":{iat}}}"#),
        ),
    ] {
        cases.push(jwt_case(
            &format!("dup/claim-{name}"),
            &[],
            sign_raw(&es, "ES256", hdr, &text),
            &jwks,
        ));
    }
    let good_claims = format!(r#"{{"sub":"{ID}","aud":"{AUD}","exp":{exp}}}"#);
    for (name, h) in [
        ("alg", r#"{"alg":"HS256","kid":"k1","alg":"ES256"}"#),
        ("kid", r#"{"alg":"ES256","kid":"k9","kid":"k1"}"#),
        (
            "typ",
            r#"{"alg":"ES256","kid":"k1","typ":"at+jwt","typ":"JWT"}"#,
        ),
    ] {
        cases.push(jwt_case(
            &format!("dup/header-{name}"),
            &[],
            sign_raw(&es, "ES256", h, &good_claims),
            &jwks,
        ));
    }
    // Two keys under one kid: go keeps the last key, so a token by it passes there.
    let other = Key::p256();
    let both = [other.jwk("k1"), es.jwk("k1")];
    cases.push(jwt_case(
        "kid/ambiguous-signed-by-first",
        &[],
        sign(&other, &header, &claims()),
        &both,
    ));
    cases.push(jwt_case(
        "kid/ambiguous-signed-by-last",
        &["two keys under one kid"],
        sign(&es, &header, &claims()),
        &both,
    ));
    // JWKS `use`.
    let mut x509_use = es.jwk("k1");
    x509_use["use"] = json!("x509-svid");
    cases.push(jwt_case(
        "jwks/use-x509-svid",
        &["JWKS key with use x509-svid"],
        sign(&es, &header, &claims()),
        &[x509_use],
    ));
    let mut jwt_use = es.jwk("k1");
    jwt_use["use"] = json!("jwt-svid");
    cases.push(jwt_case(
        "jwks/use-jwt-svid",
        &[],
        sign(&es, &header, &claims()),
        &[jwt_use],
    ));
    // Encodings.
    let good = sign(&es, &header, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let (h, p) = (parts[0], parts[1]);
    let newline = format!("{}\n{}", &parts[2][..10], &parts[2][10..]);
    let mut flipped = sig.clone();
    flipped[10] ^= 1;
    for (name, token, differs) in [
        (
            "sig-padded",
            format!("{h}.{p}.{}", URL_SAFE.encode(&sig)),
            None,
        ),
        (
            "sig-standard-alphabet",
            format!("{h}.{p}.{}", STANDARD.encode(&sig)),
            None,
        ),
        (
            "sig-line-break",
            format!("{h}.{p}.{newline}"),
            Some("base64url with a line break"),
        ),
        ("sig-flipped", format!("{h}.{p}.{}", b64(&flipped)), None),
        ("four-parts", format!("{good}.x"), None),
        ("empty-signature", format!("{h}.{p}."), None),
    ] {
        let differs: Vec<&'static str> = differs.into_iter().collect();
        cases.push(jwt_case(
            &format!("encoding/{name}"),
            &differs,
            token,
            &jwks,
        ));
    }
    // Claims.
    let mut claim_cases: Vec<(&str, Value)> = Vec::new();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        c
    };
    claim_cases.push((
        "exp-missing",
        edit(&|c| drop(c.as_object_mut().unwrap().remove("exp"))),
    ));
    claim_cases.push(("exp-past", edit(&|c| c["exp"] = json!(now() - 3600))));
    claim_cases.push(("exp-in-leeway", edit(&|c| c["exp"] = json!(now() - 20))));
    claim_cases.push(("exp-string", edit(&|c| c["exp"] = json!("9999999999"))));
    claim_cases.push((
        "exp-fraction",
        edit(&|c| c["exp"] = json!(f64::from(u32::try_from(now() + 600).unwrap()) + 0.5)),
    ));
    claim_cases.push(("nbf-future", edit(&|c| c["nbf"] = json!(now() + 3600))));
    claim_cases.push(("iat-future", edit(&|c| c["iat"] = json!(now() + 3600))));
    claim_cases.push((
        "aud-missing",
        edit(&|c| drop(c.as_object_mut().unwrap().remove("aud"))),
    ));
    claim_cases.push(("aud-other", edit(&|c| c["aud"] = json!("other"))));
    claim_cases.push(("aud-string", edit(&|c| c["aud"] = json!(AUD))));
    claim_cases.push(("aud-among-others", edit(&|c| c["aud"] = json!(["x", AUD]))));
    claim_cases.push(("aud-empty", edit(&|c| c["aud"] = json!([]))));
    claim_cases.push((
        "sub-missing",
        edit(&|c| drop(c.as_object_mut().unwrap().remove("sub"))),
    ));
    claim_cases.push((
        "sub-https",
        edit(&|c| c["sub"] = json!("https://example.org/web")),
    ));
    claim_cases.push((
        "sub-other-td",
        edit(&|c| c["sub"] = json!("spiffe://other.org/web")),
    ));
    claim_cases.push((
        "sub-td-only",
        edit(&|c| c["sub"] = json!("spiffe://example.org")),
    ));
    claim_cases.push((
        "sub-uppercase-td",
        edit(&|c| c["sub"] = json!("spiffe://Example.org/web")),
    ));
    claim_cases.push((
        "sub-dot-segment",
        edit(&|c| c["sub"] = json!("spiffe://example.org/a/../b")),
    ));
    claim_cases.push(("private-claim", edit(&|c| c["x"] = json!({"y": [1, 2]}))));
    for (name, c) in claim_cases {
        cases.push(jwt_case(
            &format!("claims/{name}"),
            &[],
            sign(&es, &header, &c),
            &jwks,
        ));
    }
    cases
}

// ---------------------------------------------------------------- X.509-SVID chains

#[derive(Clone, Copy, Debug)]
enum Anchor {
    Ca,
    NotCa,
    PathLen0,
    PathLen1,
}

#[derive(Clone, Copy, Debug)]
enum Mid {
    Good,
    NoKeyCertSign,
    NoKeyUsage,
    NotCa,
    PathLen0,
}

#[derive(Clone, Copy, Debug)]
enum Leaf {
    Good,
    NoPath,
    Ca,
    KeyCertSign,
    ClientAuthOnly,
    NoEku,
}

fn ca_params(anchor_like: IsCa, key_usage: Option<bool>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "CA");
    params.is_ca = anchor_like;
    params.key_usages = match key_usage {
        None => Vec::new(),
        Some(true) => vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        Some(false) => vec![KeyUsagePurpose::DigitalSignature],
    };
    params
}

fn x509_case(anchor: Anchor, mids: &[Mid], leaf: Leaf) -> Case {
    let root_params = match anchor {
        Anchor::Ca => ca_params(IsCa::Ca(BasicConstraints::Unconstrained), Some(true)),
        Anchor::NotCa => ca_params(IsCa::ExplicitNoCa, Some(true)),
        Anchor::PathLen0 => ca_params(IsCa::Ca(BasicConstraints::Constrained(0)), Some(true)),
        Anchor::PathLen1 => ca_params(IsCa::Ca(BasicConstraints::Constrained(1)), Some(true)),
    };
    let key = KeyPair::generate().unwrap();
    let root_der = root_params.self_signed(&key).unwrap().der().clone();
    let mut issuer = Issuer::new(root_params, key);
    let mut chain_mids = Vec::new();
    for mid in mids {
        let params = match mid {
            Mid::Good => ca_params(IsCa::Ca(BasicConstraints::Unconstrained), Some(true)),
            Mid::NoKeyCertSign => ca_params(IsCa::Ca(BasicConstraints::Unconstrained), Some(false)),
            Mid::NoKeyUsage => ca_params(IsCa::Ca(BasicConstraints::Unconstrained), None),
            Mid::NotCa => ca_params(IsCa::ExplicitNoCa, Some(true)),
            Mid::PathLen0 => ca_params(IsCa::Ca(BasicConstraints::Constrained(0)), Some(true)),
        };
        let key = KeyPair::generate().unwrap();
        let der = params.signed_by(&key, &issuer).unwrap().der().clone();
        issuer = Issuer::new(params, key);
        chain_mids.insert(0, der);
    }
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let mut id = ID;
    match leaf {
        Leaf::Good => {}
        Leaf::NoPath => id = "spiffe://example.org",
        Leaf::Ca => params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained),
        Leaf::KeyCertSign => params.key_usages.push(KeyUsagePurpose::KeyCertSign),
        Leaf::ClientAuthOnly => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        Leaf::NoEku => params.extended_key_usages = Vec::new(),
    }
    params.subject_alt_names = vec![SanType::URI(id.to_owned().try_into().unwrap())];
    let key = KeyPair::generate().unwrap();
    let leaf_der = params.signed_by(&key, &issuer).unwrap().der().clone();

    let bundle = X509Bundle::new(TD.parse().unwrap(), vec![root_der.to_vec()]);
    let verifier =
        SpiffeServerVerifier::new(Arc::new(X509BundleSet::new([bundle])), Authorizer::any());
    let ours = verifier
        .verify_server_cert(
            &leaf_der,
            &chain_mids,
            &ServerName::try_from("ignored.example").unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| String::new())
        .map_err(|e| e.to_string());
    // Go's crypto/x509 refuses a parent that is not a CA or whose key usage lacks keyCertSign
    // (`CheckSignatureFrom`), the anchor included; it lets a CA without key usage sign.
    let mut differs = Vec::new();
    if mids.iter().any(|m| matches!(m, Mid::NoKeyUsage)) {
        differs.push("intermediate without a key usage extension");
    }
    match leaf {
        Leaf::NoPath => differs.push("leaf SPIFFE ID without a path"),
        Leaf::ClientAuthOnly => differs.push("leaf EKU without the handshake role"),
        _ => {}
    }
    // Our verdict must also be the rules' own (docs/validation.md), as the x509_chain fuzz
    // target asserts for arbitrary combinations.
    let anchor_limit = match anchor {
        Anchor::NotCa => None,
        Anchor::PathLen0 => Some(0),
        Anchor::PathLen1 => Some(1),
        Anchor::Ca => Some(usize::MAX),
    };
    let mids_ok = mids.iter().rev().enumerate().all(|(below, m)| match m {
        Mid::Good => true,
        Mid::PathLen0 => below == 0,
        Mid::NoKeyCertSign | Mid::NoKeyUsage | Mid::NotCa => false,
    });
    let rules_ok = anchor_limit.is_some_and(|l| mids.len() <= l)
        && mids_ok
        && matches!(leaf, Leaf::Good | Leaf::NoEku);
    assert_eq!(
        ours.is_ok(),
        rules_ok,
        "{anchor:?} {mids:?} {leaf:?}: {ours:?}"
    );
    let mut chain: Vec<String> = vec![STANDARD.encode(&leaf_der)];
    chain.extend(chain_mids.iter().map(|d| STANDARD.encode(d)));
    Case {
        name: format!("x509/{anchor:?}/{mids:?}/{leaf:?}"),
        differs,
        ours,
        line: json!({"kind": "x509", "chain": chain, "bundle": [STANDARD.encode(&root_der)], "td": TD}),
    }
}

fn x509_cases() -> Vec<Case> {
    use Mid::{Good, NoKeyCertSign, NoKeyUsage, NotCa, PathLen0};
    let shapes: &[&[Mid]] = &[
        &[],
        &[Good],
        &[NoKeyCertSign],
        &[NoKeyUsage],
        &[NotCa],
        &[PathLen0],
        &[Good, Good],
        &[PathLen0, Good],
        &[Good, PathLen0],
        &[Good, NoKeyCertSign],
    ];
    let mut cases = Vec::new();
    for anchor in [
        Anchor::Ca,
        Anchor::NotCa,
        Anchor::PathLen0,
        Anchor::PathLen1,
    ] {
        for mids in shapes {
            for leaf in [
                Leaf::Good,
                Leaf::NoPath,
                Leaf::Ca,
                Leaf::KeyCertSign,
                Leaf::ClientAuthOnly,
                Leaf::NoEku,
            ] {
                cases.push(x509_case(anchor, mids, leaf));
            }
        }
    }
    cases
}

// ---------------------------------------------------------------- the run

fn go_verdicts(cases: &[Case]) -> BTreeMap<String, Result<String, String>> {
    let mut child = Command::new(go_peer())
        .arg("verdict")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for case in cases {
        let mut line = case.line.clone();
        line["name"] = json!(case.name);
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "the Go verdict run failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let mut fields = line.splitn(3, '\t');
            let (name, verdict, text) = (
                fields.next().unwrap().to_owned(),
                fields.next().unwrap(),
                fields.next().unwrap_or_default().to_owned(),
            );
            (name, if verdict == "ok" { Ok(text) } else { Err(text) })
        })
        .collect()
}

#[test]
fn go_spiffe_and_we_agree_except_where_docs_justify_it() {
    let mut cases = jwt_cases();
    cases.extend(x509_cases());
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    let go = go_verdicts(&cases);
    assert_eq!(go.len(), cases.len(), "one Go verdict per case");

    let mut unexplained = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut agree = 0;
    for case in &cases {
        let theirs = &go[&case.name];
        if theirs.is_ok() == case.ours.is_ok() {
            agree += 1;
            continue;
        }
        if theirs.is_ok() && !case.differs.is_empty() {
            eprintln!("  justified: {} ({})", case.name, case.differs.join(", "));
            for d in &case.differs {
                *seen.entry(d).or_default() += 1;
            }
        } else {
            unexplained.push(format!(
                "{}: go {theirs:?}, ours {:?}",
                case.name, case.ours
            ));
        }
    }
    eprintln!(
        "differential: {} cases ({} JWT-SVID, {} X.509), {agree} agree, {} justified disagreements",
        cases.len(),
        cases.iter().filter(|c| c.name.starts_with("jwt/")).count(),
        cases.iter().filter(|c| c.name.starts_with("x509/")).count(),
        cases.len() - agree - unexplained.len(),
    );
    for (difference, count) in &seen {
        eprintln!("  {count:4}  {difference}");
    }
    assert!(
        unexplained.is_empty(),
        "disagreements docs/validation.md does not justify:\n{}",
        unexplained.join("\n")
    );
    let missing: Vec<&&str> = JUSTIFIED
        .iter()
        .filter(|d| !seen.contains_key(**d))
        .collect();
    assert!(
        missing.is_empty(),
        "listed as differences but no case shows them any more: {missing:?}"
    );
}
