//! End-to-end tests: the built `spiffe-helper-rust` binary against a real SPIRE server and agent
//! (started per test by `spiffe-helper-testkit`), with real consumers (nginx, `openssl s_server`
//! and `s_client`).
//!
//! Every helper runs in its own process group with its stderr in a log file next to its config;
//! every daemon test ends by checking that log for key material and tokens. Failure messages
//! show log tails with such lines redacted.
//!
//! Issue 5's list, by module: `oneshot` (1, 2, 9), `daemon` (3, 4, 6, 7), `jwt` (5),
//! `consumers` (8a nginx, 8b mutual TLS), `idle` (the "no polling" rule of the build list).
//! `support` runs processes; `inspect` reads certificates, JWTs and HTTP answers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::missing_panics_doc,
    missing_docs
)]

mod consumers;
mod consumers15;
mod daemon;
mod health;
mod idle;
mod inspect;
mod jwt;
mod oneshot;
mod support;
