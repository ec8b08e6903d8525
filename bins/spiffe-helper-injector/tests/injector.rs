//! The injector binary against a real SPIRE server and agent: it serves admissions over TLS
//! with its X.509-SVID, verified as the kube-apiserver verifies a webhook (the trust bundle as
//! CA, the Service DNS name), answers its probes, follows an SVID rotation, and exits 0 on
//! SIGTERM. No Kubernetes API is involved: `--webhook-configuration` is left out (the
//! caBundle updater is unit-tested against a fake; the real API server is the smoke test's).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    missing_docs,
    reason = "test code: a failed expectation is a test failure"
)]

mod support;

use std::time::Duration;

use serde_json::json;
use spiffe_helper_testkit::spire::{Entry, Spire};

use std::io::Write as _;

use support::{Injector, SERVICE_DNS, head, read_response, review, tls_connect, tls_request};

fn spire_with_injector_entry(ttl: Option<u32>) -> Spire {
    let spire = Spire::start();
    let mut entry =
        Entry::new(format!("spiffe://{}/injector", spire.trust_domain())).dns(SERVICE_DNS);
    if let Some(ttl) = ttl {
        entry = entry.x509_ttl(ttl);
    }
    spire.create_entry(&entry);
    spire.wait_for_svid(Duration::from_secs(60));
    spire
}

#[test]
fn the_webhook_answers_admissions_over_tls_with_its_svid_and_exits_0_on_sigterm() {
    let spire = spire_with_injector_entry(None);
    let mut injector = Injector::start(&spire, &["--service-dns", SERVICE_DNS]);
    injector.wait_ready();
    let bundle = spire.bundle_pem();

    // An annotated pod: allowed, with a base64 JSON patch that adds the helper.
    let body = review(&json!({"spiffe-helper-rust/inject": "true"}));
    let (status, answer, _) = tls_request(injector.port, &bundle, "POST", "/mutate", Some(&body));
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["response"]["uid"], "u-1");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(answer["response"]["patchType"], "JSONPatch");
    let patch = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        answer["response"]["patch"].as_str().unwrap(),
    )
    .unwrap();
    assert!(String::from_utf8(patch).unwrap().contains("spiffe-helper"));

    // A bad annotation: denied, with the reason kubectl will show.
    let body = review(
        &json!({"spiffe-helper-rust/inject": "true", "spiffe-helper-rust/inject-mode": "sometimes"}),
    );
    let (status, answer, _) = tls_request(injector.port, &bundle, "POST", "/mutate", Some(&body));
    assert_eq!(status, 200, "a denial is an answer, not an HTTP error");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let reason = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        reason.contains("inject-mode") && reason.contains("sometimes"),
        "{reason}"
    );

    // Other paths and methods.
    let (status, _, _) = tls_request(injector.port, &bundle, "POST", "/validate", Some(&body));
    assert_eq!(status, 404);
    let (status, _, _) = tls_request(injector.port, &bundle, "GET", "/mutate", None);
    assert_eq!(status, 405);

    // Probes: plain HTTP.
    assert_eq!(injector.probe("/healthz").0, 200);
    assert_eq!(injector.probe("/readyz"), (200, "ready\n".to_owned()));
    assert_eq!(injector.probe("/metrics").0, 404);

    // A body announced larger than the API server's own request limit: refused unread.
    let mut tls = tls_connect(injector.port, &bundle);
    tls.write_all(head("POST", "/mutate", 4 * 1024 * 1024).as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut tls).0, 413);

    // SIGTERM with a request in flight (half its body sent): no new connection is accepted,
    // the request is still answered, then the process exits 0.
    let body = review(&json!({"spiffe-helper-rust/inject": "true"}));
    let (first, rest) = body.split_at(body.len() / 2);
    let mut tls = tls_connect(injector.port, &bundle);
    tls.write_all(head("POST", "/mutate", body.len()).as_bytes())
        .unwrap();
    tls.write_all(first.as_bytes()).unwrap();
    tls.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    injector.send_sigterm();
    std::thread::sleep(Duration::from_millis(500));
    let refused = std::net::TcpStream::connect(("127.0.0.1", injector.port));
    assert!(
        refused.is_err(),
        "a new connection was accepted after SIGTERM"
    );
    tls.write_all(rest.as_bytes()).unwrap();
    let (status, answer) = read_response(&mut tls);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""allowed":true"#), "{answer}");
    let status = injector.wait_exit();
    assert!(
        status.success(),
        "SIGTERM must end in exit 0: {status:?}\n{}",
        injector.log()
    );

    let log = injector.log();
    assert!(log.contains("serving with this X.509-SVID"), "{log}");
    assert!(!log.contains("does not carry the Service name"), "{log}");
    assert!(
        !log.contains("PRIVATE KEY"),
        "key material in the log:\n{log}"
    );
}

#[test]
fn a_new_connection_gets_the_rotated_svid_and_a_missing_service_name_is_warned_about() {
    // SPIRE's agent renews an X.509-SVID at half its TTL.
    let spire = spire_with_injector_entry(Some(20));
    let mut injector = Injector::start(&spire, &["--service-dns", "other.elsewhere.svc"]);
    injector.wait_ready();
    let bundle = spire.bundle_pem();
    let body = review(&json!({}));
    let (_, _, first) = tls_request(injector.port, &bundle, "POST", "/mutate", Some(&body));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let rotated = loop {
        std::thread::sleep(Duration::from_secs(1));
        let (status, _, leaf) = tls_request(injector.port, &bundle, "POST", "/mutate", Some(&body));
        assert_eq!(status, 200);
        if leaf != first {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
    };
    assert!(
        rotated,
        "the same certificate after 60 s\n{}",
        injector.log()
    );
    let log = injector.log();
    let logged = log.matches("serving with this X.509-SVID").count();
    assert!(
        logged >= 2,
        "the rotation was not logged ({logged} SVID lines):\n{log}"
    );
    assert!(
        log.contains("does not carry the Service name") && log.contains("other.elsewhere.svc"),
        "{log}"
    );
    assert!(injector.terminate().success());
}

#[test]
fn without_an_agent_socket_it_exits_1_naming_the_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spiffe-helper-injector"))
        .args(["--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0"])
        .env_remove("SPIFFE_ENDPOINT_SOCKET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SPIFFE_ENDPOINT_SOCKET is not set"),
        "{stderr}"
    );
}

#[test]
fn an_invalid_settings_file_exits_1_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.yaml");
    std::fs::write(&path, "image: helper:1\nhealthport: 9090\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spiffe-helper-injector"))
        .arg("--settings")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("settings.yaml") && stderr.contains("healthport"),
        "{stderr}"
    );
}

#[test]
fn before_the_svid_it_is_live_but_not_ready_and_sigterm_still_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut injector = Injector::start_with_socket(&dir.path().join("no-agent.sock"), &[]);
    injector.wait_listening();
    assert_eq!(injector.probe("/healthz").0, 200);
    let (status, body) = injector.probe("/readyz");
    assert_eq!(status, 503);
    assert!(body.contains("no valid X.509-SVID"), "{body}");
    assert!(injector.terminate().success(), "{}", injector.log());
}

#[test]
fn a_webhook_configuration_outside_a_pod_exits_1_before_waiting_for_the_svid() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spiffe-helper-injector"))
        .args(["--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0"])
        .args(["--webhook-configuration", "spiffe-helper-injector"])
        .env("SPIFFE_ENDPOINT_SOCKET", "unix:///nonexistent/agent.sock")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in-cluster Kubernetes configuration"),
        "{stderr}"
    );
}
