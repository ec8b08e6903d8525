//! The SPIFFE Workload API's protobuf messages and gRPC stubs, generated once from
//! [`proto/workload.proto`](https://github.com/spiffe/go-spiffe/blob/main/v2/proto/spiffe/workload/workload.proto)
//! (vendored at the workspace's `proto/workload.proto`).
//!
//! Where it sits: the only home of the generated code. `spiffe-workload-client` uses the
//! messages and the client stub (privately: its public API returns validated domain types);
//! `spiffe-helper-testkit` turns on the `server` feature for its fake agent. The code is
//! committed, so building needs neither `protoc` nor a build script; `tests/drift.rs`
//! regenerates it and fails when it differs, and `make proto` rewrites it.
//!
//! The messages that carry private keys or tokens ([`X509svid`], [`Jwtsvid`],
//! [`ValidateJwtsvidRequest`]) have a hand-written `Debug` that prints everything but the
//! secret, so a logged message never leaks key material.
//!
//! ```
//! use spiffe_workload_proto::X509svid;
//!
//! let svid = X509svid { spiffe_id: "spiffe://example.org/app".into(), x509_svid_key: vec![1, 2, 3], ..Default::default() };
//! assert!(!format!("{svid:?}").contains("[1, 2, 3]"));
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's quick start, compiled as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

use std::fmt;

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    unreachable_pub,
    reason = "generated code"
)]
mod generated {
    include!("workload.rs");
}

pub use generated::*;

impl fmt::Debug for X509svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509svid")
            .field("spiffe_id", &self.spiffe_id)
            .field("x509_svid_len", &self.x509_svid.len())
            .field("x509_svid_key", &"<redacted>")
            .field("bundle_len", &self.bundle.len())
            .field("hint", &self.hint)
            .finish()
    }
}

impl fmt::Debug for Jwtsvid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwtsvid")
            .field("spiffe_id", &self.spiffe_id)
            .field("svid", &"<redacted>")
            .field("hint", &self.hint)
            .finish()
    }
}

impl fmt::Debug for ValidateJwtsvidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateJwtsvidRequest")
            .field("audience", &self.audience)
            .field("svid", &"<redacted>")
            .finish()
    }
}
