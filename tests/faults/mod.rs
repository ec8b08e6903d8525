//! Fault-injection, hostile-input and security scenarios (issue 9) against the built
//! `spiffe-helper-rust` daemon, with a real SPIRE (`spiffe-helper-testkit::spire`) where SPIRE can
//! produce the fault and the in-process fake Workload API where it cannot.
//!
//! Modules: `agent` (agent killed, entry deleted), `disk` (full disk, immutable cert dir),
//! `consumer` (`cmd` and pid-file faults, pid <= 0), `signals` (SIGTERM at start-up, while
//! running, during writes), `hostile` (malformed agent responses), `security` (key mode at every
//! instant, no secrets in logs or health bodies, symlinked targets), `props` (stable-Rust
//! property tests over the parsers and the response conversion).
//!
//! Every scenario runs its own SPIRE or fake agent, so tests run in parallel. The disk tests
//! need root (tmpfs mounts, `chattr +i`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::missing_panics_doc,
    clippy::too_many_lines,
    missing_docs
)]

mod agent;
mod consumer;
mod disk;
mod hostile;
mod kit;
mod props;
mod security;
mod signals;
// Shared with the e2e suite: process guard, log capture, polling (`support`) and certificate /
// PEM inspection (`inspect`).
#[allow(dead_code, unused_imports)]
#[path = "../e2e/inspect.rs"]
mod inspect;
#[allow(dead_code, unused_imports)]
#[path = "../e2e/support.rs"]
mod support;
