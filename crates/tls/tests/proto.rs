//! The examples' generated gRPC code (`examples/grpc/greeter.rs`) is committed; this test
//! regenerates it (pure Rust: `protox` + `tonic-prost-build`) and fails when it drifts.
//! `UPDATE_PROTO=1 cargo test -p spiffe-workload-tls --test proto` rewrites it.

#![allow(clippy::expect_used, reason = "test code")]

use std::path::Path;

#[test]
fn committed_greeter_code_matches_the_proto() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grpc");
    let fds = protox::compile([dir.join("greeter.proto")], [&dir]).expect("greeter.proto compiles");
    let out = tempfile::tempdir().expect("temp dir");
    tonic_prost_build::configure()
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .out_dir(out.path())
        .compile_fds(fds)
        .expect("code generation succeeds");
    let code = std::fs::read_to_string(out.path().join("greeter.rs")).expect("generated file");
    let fresh = format!(
        "// @generated from greeter.proto by crates/tls/tests/proto.rs. Do not edit by hand.\n{code}"
    );
    let committed = dir.join("greeter.rs");
    if std::env::var_os("UPDATE_PROTO").is_some() {
        std::fs::write(&committed, &fresh).expect("write generated code");
        return;
    }
    let current = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        current == fresh,
        "{} is stale: run UPDATE_PROTO=1 cargo test -p spiffe-workload-tls --test proto",
        committed.display()
    );
}
