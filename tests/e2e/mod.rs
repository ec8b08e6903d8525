//! End-to-end tests: the built binary against a real SPIRE server and agent, with real
//! consumers (nginx, `openssl s_server` and `s_client`).
//!
//! By module: `oneshot` (docs/behaviour.md#one-shot-mode, #start-up, the upstream README
//! example), `daemon` (#daemon-mode, #notification, #shutdown), `jwt` (#jwt-svid-refresh,
//! #jwt-bundle-file), `health` (#health-endpoints), `consumers` (nginx through its pid file,
//! mutual TLS between two hinted identities), `idle` (an idle daemon does not poll).

mod consumers;
mod consumers15;
mod daemon;
mod health;
mod idle;
mod jwt;
mod oneshot;
