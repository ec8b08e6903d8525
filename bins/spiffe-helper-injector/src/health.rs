//! `/healthz` and `/readyz` for the kubelet, and the readiness they report.
//!
//! Liveness is "the process answers": restarting the injector helps neither when the agent is
//! away (the SVID in memory stays valid until it expires) nor when the API server refuses a
//! patch. Readiness is what the Service needs before sending admissions: an X.509-SVID to
//! serve with, and, when the injector manages a webhook configuration, its `caBundle` written
//! at least once (before that, the kube-apiserver cannot verify our certificate). Once written
//! it stays counted (a one-way latch): a later failed update leaves the old bundle, which
//! SPIRE keeps valid while it rotates the CA.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{HeaderValue, Method, StatusCode};
use hyper::Request;
use hyper::body::Incoming;
use spiffe_workload_client::X509Source;

use crate::http::{Reply, text};

/// What `/readyz` reports.
#[derive(Debug)]
pub struct Readiness {
    source: OnceLock<X509Source>,
    ca_bundle_needed: bool,
    ca_bundle_written: AtomicBool,
    stopping: AtomicBool,
}

impl Readiness {
    /// Not ready yet; `ca_bundle_needed` when a webhook configuration is managed.
    pub fn new(ca_bundle_needed: bool) -> Self {
        Self {
            source: OnceLock::new(),
            ca_bundle_needed,
            ca_bundle_written: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        }
    }

    /// The X.509 source is up: the SVID is there while it stays healthy.
    pub fn svid_source(&self, source: X509Source) {
        let _ = self.source.set(source);
    }

    /// The `caBundle` was written (or found equal) once.
    pub fn ca_bundle_written(&self) {
        self.ca_bundle_written.store(true, Ordering::Release);
    }

    /// Whether the `caBundle` was written once.
    pub fn is_ca_bundle_written(&self) -> bool {
        self.ca_bundle_written.load(Ordering::Acquire)
    }

    /// Shutting down: the kubelet should stop routing here while requests drain.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// `Ok` when ready, else why not.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.stopping.load(Ordering::Acquire) {
            return Err("shutting down\n");
        }
        if !self.source.get().is_some_and(X509Source::is_healthy) {
            return Err("no valid X.509-SVID from the SPIRE agent\n");
        }
        if self.ca_bundle_needed && !self.is_ca_bundle_written() {
            return Err("the webhook configuration's caBundle has not been written yet\n");
        }
        Ok(())
    }
}

/// Routes one probe request.
pub fn handle(readiness: &Readiness, req: &Request<Incoming>) -> Reply {
    let path = req.uri().path();
    if path != "/healthz" && path != "/readyz" {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut reply = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        reply
            .headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return reply;
    }
    if path == "/healthz" {
        return text(StatusCode::OK, "ok\n");
    }
    match readiness.check() {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}
