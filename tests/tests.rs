//! The integration tests: one binary (as ripgrep's `tests/tests.rs`) driving the built
//! `spiffe-helper-rust` executable in temp dirs against a real SPIRE (started per test by
//! `spiffe-helper-testkit`), real consumers, and a fake agent for faults SPIRE cannot produce.
//!
//! - `e2e`: what users do with the helper, end to end;
//! - `faults`: agent, disk, consumer and signal faults, hostile input, security checks;
//! - `doc_configs`: every `hcl` block in the docs passes `--validate`;
//! - `support` runs processes (each helper in its own process group, stderr in a log file that
//!   the harness checks for key material and tokens when it stops the helper and when the
//!   handle is dropped, failing the test: no test opts in); `inspect` reads certificates, JWTs
//!   and HTTP answers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::missing_panics_doc,
    clippy::too_many_lines,
    missing_docs,
    reason = "test code: a failed expectation is a test failure"
)]

mod doc_configs;
mod e2e;
mod faults;
mod inspect;
mod support;
