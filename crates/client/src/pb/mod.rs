//! Generated from `proto/workload.proto` by `make proto`; do not edit `workload.rs` by hand.
//!
//! The messages that carry private keys or tokens are generated without `Debug` (see
//! `tests/proto.rs`); the impls below print everything except the secret.

use std::fmt;

include!("workload.rs");

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
