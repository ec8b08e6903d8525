//! End-to-end tests: the built binary against a real SPIRE server and agent, with real
//! consumers (nginx, `openssl s_server` and `s_client`).
//!
//! By module: `oneshot` (docs/behaviour.md#one-shot-mode, #start-up, the upstream README
//! example), `daemon` (#daemon-mode, #notification, #shutdown), `jwt` (#jwt-svid-refresh,
//! #jwt-bundle-file), `health` (#health-endpoints), `consumers` (nginx through its pid file,
//! mutual TLS between two hinted identities), `idle` (an idle daemon does not poll); and what
//! docs/consumers.md adds: `reload` (`PostgreSQL` through `postmaster.pid`, `HAProxy` serving the
//! combined file), `wrapper` (nginx as the wrapped child, exit codes), `delivery` (the
//! filesystem-delivery folder with a federated domain), `config_errors` (several mistakes, `cmd`
//! with `--`, the health bind address); `logs` (JSON lines, `RUST_LOG`), `java` (PKCS#12 keystores read by keytool and a JSSE mTLS pair), `versioned` (`cert_dir_layout = "versioned"`: the whole set switched at once), `upstream` (the same
//! `helper.conf` through the upstream Go helper v0.11.0 and ours, the files byte for byte).

mod config_errors;
mod consumers;
mod daemon;
mod delivery;
mod file_source;
mod health;
mod idle;
mod java;
mod jwt;
mod logs;
mod oneshot;
mod reload;
mod upstream;
mod versioned;
mod wrapper;
