//! `POST /mutate`: an `AdmissionReview` in, the answer of `spiffe_helper_inject::review_json`
//! out (Kubernetes API reference, "Dynamic Admission Control": the API server POSTs
//! `application/json` and waits at most the webhook's `timeoutSeconds`, 10 s by default).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::Request;
use hyper::body::{Bytes, Incoming};
use serde_json::Value;
use spiffe_helper_inject::InjectorSettings;

use crate::http::{Reply, text};

/// The path the webhook configuration's `clientConfig.service.path` names.
pub const PATH: &str = "/mutate";

/// The largest body accepted: the kube-apiserver's own limit on a request body (3 MiB). A pod
/// that can be created is smaller still (etcd's default limit on one object is 1.5 MiB), which
/// leaves the review's wrapper room.
pub const BODY_LIMIT: usize = 3 * 1024 * 1024;

/// How long a client may take to send the body once the headers are in.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers one request on the webhook port.
pub async fn handle(settings: Arc<InjectorSettings>, req: Request<Incoming>) -> Reply {
    if req.uri().path() != PATH {
        return text(
            StatusCode::NOT_FOUND,
            "not found: the webhook serves POST /mutate\n",
        );
    }
    if req.method() != Method::POST {
        let mut reply = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use POST\n",
        );
        reply
            .headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
        return reply;
    }
    if !is_json(req.headers().get(http::header::CONTENT_TYPE)) {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an AdmissionReview is sent as application/json\n",
        );
    }
    // Refused before reading when the client announces too much.
    let announced = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|len| len > BODY_LIMIT as u64) {
        return too_large();
    }
    let body = Limited::new(req.into_body(), BODY_LIMIT);
    let body = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is larger than 3 MiB\n",
            );
        }
        Ok(Err(error)) => {
            tracing::debug!(%error, "cannot read a request body");
            return text(StatusCode::BAD_REQUEST, "cannot read the body\n");
        }
        Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "the body took too long\n"),
    };
    let answer = spiffe_helper_inject::review_json(&body, &settings);
    log_answer(&answer);
    let mut reply = http::Response::new(Full::new(Bytes::from(answer)));
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    reply
}

fn too_large() -> Reply {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the body is larger than 3 MiB\n",
    )
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// One line per decision: the review's uid, allowed or not, patched or not, and a denial's
/// reason (which is also what `kubectl` shows the user).
fn log_answer(answer: &[u8]) {
    let Ok(review) = serde_json::from_slice::<Value>(answer) else {
        return;
    };
    let response = &review["response"];
    let uid = response["uid"].as_str().unwrap_or_default();
    if response["allowed"].as_bool() == Some(true) {
        let patched = response.get("patch").is_some();
        tracing::info!(uid, patched, "admission allowed");
    } else {
        let reason = response["status"]["message"].as_str().unwrap_or_default();
        tracing::info!(uid, reason, "admission denied");
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::is_json;

    #[test]
    fn json_content_types_with_parameters_are_accepted_and_others_refused() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
        ] {
            assert!(is_json(Some(&HeaderValue::from_static(ok))), "{ok}");
        }
        for bad in ["text/plain", "application/jsonx", ""] {
            assert!(!is_json(Some(&HeaderValue::from_static(bad))), "{bad}");
        }
        assert!(!is_json(None));
    }
}
