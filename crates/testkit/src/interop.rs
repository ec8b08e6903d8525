//! The go-spiffe peer of the interop, differential and bundle-format tests (`tests/interop/go`),
//! built once into a cache outside the repository by `tests/interop/build-go-peer.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The path of the built Go peer; builds it under a lock shared by concurrent test binaries.
///
/// # Panics
/// When the build script cannot run (needs `flock` and Go) or the build fails.
#[must_use]
#[allow(clippy::expect_used)]
pub fn go_peer() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/build-go-peer.sh");
    let out = Command::new("flock")
        .arg("/tmp/shr-go-peer.lock")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("running build-go-peer.sh (needs flock and Go)");
    assert!(out.status.success(), "building the Go interop peer failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
