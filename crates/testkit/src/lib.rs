//! Test support for spiffe-helper-rust: a real SPIRE server + agent harness ([`spire`]), test
//! certificates and Workload API responses ([`certs`]), and an in-process fake Workload API
//! server for faults SPIRE cannot produce ([`fake`]), and real consumers of the helper's files
//! (`PostgreSQL`, `HAProxy`: [`consumers`]).
//!
//! Panicking with a clear message is how this crate reports a broken test setup; processes it
//! starts are always killed by pid, also when a test panics.
//!
//! ```no_run
//! use std::time::Duration;
//! use spiffe_helper_testkit::spire::{Entry, Spire};
//!
//! let spire = Spire::start();
//! spire.create_entry(&Entry::new("spiffe://example.org/workload").x509_ttl(60));
//! spire.wait_for_svid(Duration::from_secs(30));
//! println!("Workload API at {}", spire.endpoint());
//! ```

#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod pb;

pub mod certs;
pub mod consumers;
pub mod fake;
pub mod spire;

/// Unwraps `r` or panics with what failed (test-setup failures are panics in this crate).
#[track_caller]
pub(crate) fn must<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("testkit: {what}: {e}"),
    }
}
