//! The kube adapter against a fake API server over plain HTTP: the requests it makes (a GET,
//! then a PATCH with the JSON-patch media type on the same path) and how it reports an API
//! error. The fake applies the patch as the API server would.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::KubeWebhookApi;
use crate::ca_bundle::{Synced, sync};

const PATH: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/injector";
const PEM: &[u8] = b"-----BEGIN CERTIFICATE-----\nbmV3\n-----END CERTIFICATE-----\n";

/// What the fake saw: method, path, content type, body.
type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

struct FakeApi {
    object: Mutex<Value>,
    seen: Seen,
    /// Answer every request with this status (a `Status` body), when set.
    refuse: Option<u16>,
}

async fn answer(fake: Arc<FakeApi>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    fake.seen
        .lock()
        .unwrap()
        .push((method.clone(), path.clone(), content_type, text.clone()));
    let reply = |status: u16, value: &Value| {
        let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        response
    };
    if let Some(code) = fake.refuse {
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "mutatingwebhookconfigurations.admissionregistration.k8s.io \"injector\" is forbidden",
            "reason": "Forbidden", "code": code});
        return reply(code, &status);
    }
    assert_eq!(path, PATH);
    let mut object = fake.object.lock().unwrap();
    if method == "PATCH" {
        let ops: json_patch::Patch = serde_json::from_str(&text).unwrap();
        json_patch::patch(&mut object, &ops).unwrap();
    }
    reply(200, &object)
}

async fn start(refuse: Option<u16>) -> (KubeWebhookApi, Arc<FakeApi>) {
    let fake = Arc::new(FakeApi {
        object: Mutex::new(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "injector", "resourceVersion": "1"},
            "webhooks": [{
                "name": "inject.spiffe-helper-rust.io",
                "clientConfig": {"service": {"name": "injector", "namespace": "ns", "path": "/mutate"}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }],
        })),
        seen: Seen::default(),
        refuse,
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = fake.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let fake = served.clone();
            let service = service_fn(move |req| {
                let fake = fake.clone();
                async move { Ok::<_, Infallible>(answer(fake, req).await) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    let config = kube::Config::new(url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    (KubeWebhookApi::new(client, "injector"), fake)
}

#[tokio::test]
async fn the_kube_adapter_gets_then_json_patches_only_the_ca_bundle() {
    let (api, fake) = start(None).await;
    assert_eq!(sync(&api, PEM).await.unwrap(), Synced::Patched(1));
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].0.as_str(), seen[0].1.as_str()), ("GET", PATH));
    let (method, path, content_type, body) = &seen[1];
    assert_eq!((method.as_str(), path.as_str()), ("PATCH", PATH));
    assert_eq!(content_type, "application/json-patch+json");
    let ops: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        ops,
        json!([
            {"op": "test", "path": "/webhooks/0/name", "value": "inject.spiffe-helper-rust.io"},
            {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": BASE64.encode(PEM)},
        ])
    );
    let object = fake.object.lock().unwrap().clone();
    assert_eq!(
        object["webhooks"][0]["clientConfig"]["caBundle"],
        BASE64.encode(PEM)
    );

    // The same bundle again: read, nothing written.
    assert_eq!(sync(&api, PEM).await.unwrap(), Synced::Unchanged);
    assert_eq!(fake.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_forbidden_answer_names_the_rbac_the_service_account_needs() {
    let (api, _) = start(Some(403)).await;
    let err = sync(&api, PEM).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("get mutatingwebhookconfiguration injector"),
        "{message}"
    );
    assert!(message.contains("needs get and patch"), "{message}");
}
