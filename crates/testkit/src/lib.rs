//! Test support for spiffe-helper-rust (work in progress).

#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod pb;
