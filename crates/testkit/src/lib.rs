//! Test support for spiffe-helper-rust: a real SPIRE server + agent harness ([`spire`]), test
//! certificates and Workload API responses ([`certs`]), and an in-process fake Workload API
//! server for faults SPIRE cannot produce ([`fake`]), JWT authorities that sign test tokens
//! ([`jwt`]), and real consumers of the helper's files (`PostgreSQL`, `HAProxy`: [`consumers`]).
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

/// The Workload API messages and server trait (`spiffe-workload-proto` with its `server`
/// feature): the one copy of the generated code, shared with the client.
pub use spiffe_workload_proto as pb;

pub mod certs;
pub mod consumers;
pub mod fake;
pub mod interop;
pub mod jwt;
pub mod spire;

/// Unwraps `r` or panics with what failed (test-setup failures are panics in this crate).
#[track_caller]
pub(crate) fn must<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("testkit: {what}: {e}"),
    }
}
