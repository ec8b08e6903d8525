//! Fault-injection, hostile-input and security scenarios against the built daemon (outcomes
//! recorded in docs/reliability.md), with a real SPIRE where SPIRE can produce the fault and
//! the in-process fake Workload API where it cannot.
//!
//! Modules: `agent` (agent killed, entry deleted), `disk` (full disk, immutable cert dir),
//! `consumer` (`cmd` and pid-file faults, pid <= 0), `signals` (SIGTERM at start-up, while
//! running, during writes), `hostile` (malformed agent responses), `security` (key mode at every
//! instant, no secrets in logs or health bodies, symlinked targets), `props` (stable-Rust
//! property tests over the parsers and the response conversion).
//!
//! Every scenario runs its own SPIRE or fake agent, so tests run in parallel. The disk tests
//! need root (tmpfs mounts, `chattr +i`).

mod agent;
mod consumer;
mod disk;
mod hostile;
pub(crate) mod kit;
mod props;
mod security;
mod signals;
