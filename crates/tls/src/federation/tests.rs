use std::sync::Arc;
use std::time::Duration;

use spiffe_helper_testkit::certs::TestCa;
use spiffe_workload_client::{
    BundleSource, SpiffeBundle, StaticX509Source, TrustDomain, X509Bundle, X509BundleSet, X509Svid,
};

use super::*;

fn td(name: &str) -> TrustDomain {
    name.parse().unwrap()
}

fn bundle_with(ca: &TestCa, name: &str) -> SpiffeBundle {
    let mut b = SpiffeBundle::new(td(name));
    b.add_x509_authority(ca.der());
    b
}

fn body(response: http::Response<http_body_util::Full<hyper::body::Bytes>>) -> Vec<u8> {
    use http_body_util::BodyExt as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(response.into_body().collect())
        .unwrap()
        .to_bytes()
        .to_vec()
}

#[test]
fn handler_serves_the_bundle_as_json_to_get_only() {
    let ca = TestCa::root("a.test");
    let shared = SharedSpiffeBundle::new(bundle_with(&ca, "a.test"));
    let handler = BundleEndpointHandler::new(td("a.test"), shared.clone())
        .refresh_hint(Duration::from_secs(42));

    let ok = handler.respond(&http::Method::GET);
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()[http::header::CONTENT_TYPE], "application/json");
    let served = SpiffeBundle::parse(td("a.test"), &body(ok)).unwrap();
    assert_eq!(served.x509_authorities(), [ca.der()]);
    assert_eq!(
        served.refresh_hint(),
        Some(42),
        "the handler's hint fills a missing one"
    );

    let mut own_hint = bundle_with(&ca, "a.test");
    own_hint.set_refresh_hint(Some(7));
    shared.set(own_hint);
    let served = SpiffeBundle::parse(td("a.test"), &body(handler.respond(&http::Method::GET)));
    assert_eq!(
        served.unwrap().refresh_hint(),
        Some(7),
        "the bundle's own hint wins"
    );

    for method in [http::Method::POST, http::Method::PUT, http::Method::HEAD] {
        let refused = handler.respond(&method);
        assert_eq!(refused.status(), 405, "{method}");
        assert_eq!(refused.headers()[http::header::ALLOW], "GET");
    }
    shared.set(bundle_with(&ca, "b.test"));
    assert_eq!(handler.respond(&http::Method::GET).status(), 503);
}

#[test]
fn urls_must_be_https_with_a_host() {
    let ca = TestCa::root("a.test");
    let profile = || {
        EndpointProfile::https_spiffe(
            "spiffe://a.test/ep".parse().unwrap(),
            X509Bundle::new(td("a.test"), vec![ca.der()]),
        )
        .unwrap()
    };
    for url in ["http://example.test/", "example.test", "https:///x", ""] {
        let err = BundleEndpointClient::new(url, td("a.test"), profile()).unwrap_err();
        assert!(matches!(err, FederationError::Url { .. }), "{url}: {err}");
    }
    let ok =
        BundleEndpointClient::new("https://[::1]:8443/b?x=1", td("a.test"), profile()).unwrap();
    assert_eq!(
        (ok.host.as_str(), ok.port, ok.path.as_str()),
        ("::1", 8443, "/b?x=1")
    );
    let ok = BundleEndpointClient::new("https://h.example", td("a.test"), profile()).unwrap();
    assert_eq!(
        (ok.host.as_str(), ok.port, ok.path.as_str()),
        ("h.example", 443, "/")
    );
    assert!(matches!(
        EndpointProfile::https_web_pem(b"no pem here"),
        Err(FederationError::Profile(_))
    ));
}

#[test]
fn bundles_naming_another_trust_domain_or_empty_are_refused() {
    let own = TestCa::root("a.test");
    let other = TestCa::root("b.test");
    assert!(client::check_bundle(&bundle_with(&own, "a.test")).is_ok());
    let mut mixed = bundle_with(&own, "a.test");
    mixed.add_x509_authority(other.der());
    assert!(matches!(
        client::check_bundle(&mixed),
        Err(FederationError::WrongTrustDomain { index: 1, ref found, .. }) if found == "b.test"
    ));
    assert!(matches!(
        client::check_bundle(&SpiffeBundle::new(td("a.test"))),
        Err(FederationError::Empty(_))
    ));
}

#[test]
fn own_bundles_come_first_then_the_federated_ones() {
    let own_ca = TestCa::root("a.test");
    let issued = own_ca.issue("spiffe://a.test/w", Duration::from_secs(600));
    let svid = X509Svid::parse_der(&issued.chain.concat(), &issued.key_pkcs8).unwrap();
    let own = StaticX509Source::new(
        svid,
        X509BundleSet::new([X509Bundle::new(td("a.test"), vec![own_ca.der()])]),
    );
    let shadow = X509BundleSet::new([
        X509Bundle::new(td("a.test"), vec![TestCa::root("a.test").der()]),
        X509Bundle::new(td("b.test"), vec![TestCa::root("b.test").der()]),
    ]);
    let both = WithFederatedBundles::new(own).with(shadow.clone());
    assert_eq!(
        both.bundle_for(&td("a.test")).unwrap().authorities(),
        [own_ca.der()]
    );
    assert!(Arc::ptr_eq(
        &both.bundle_for(&td("b.test")).unwrap(),
        &shadow.bundle_for(&td("b.test")).unwrap()
    ));
    assert!(both.bundle_for(&td("c.test")).is_none());
}
