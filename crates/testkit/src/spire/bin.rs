//! Locating (and, when missing, building) the SPIRE binaries.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use nix::fcntl::{Flock, FlockArg};

/// SPIRE release the harness is written against.
pub const SPIRE_VERSION: &str = "v1.13.3";

/// `${SPIRE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust/spire-<version>}`, the
/// same cache `tests/spire/build-spire.sh` uses.
fn cache_dir() -> PathBuf {
    if let Some(c) = std::env::var_os("SPIRE_CACHE") {
        return PathBuf::from(c);
    }
    let base = std::env::var_os("XDG_CACHE_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache"),
        PathBuf::from,
    );
    base.join("spiffe-helper-rust")
        .join(format!("spire-{SPIRE_VERSION}"))
}

fn has_binaries(dir: &Path) -> bool {
    dir.join("spire-server").is_file() && dir.join("spire-agent").is_file()
}

/// Path of the build script in this repository.
#[must_use]
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/spire/build-spire.sh")
}

/// Directory holding `spire-server` and `spire-agent` (and `spiffe-helper` if it was built).
///
/// Honours `SPIRE_BIN_DIR`. Otherwise uses the cache of `tests/spire/build-spire.sh` and runs
/// that script once per process when the binaries are missing, under an exclusive `flock` on
/// `<cache>/.build.lock` so parallel test binaries never build twice.
///
/// # Panics
/// If the binaries are missing and the build fails.
#[must_use]
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(resolve).clone()
}

fn resolve() -> PathBuf {
    if let Some(d) = std::env::var_os("SPIRE_BIN_DIR") {
        return PathBuf::from(d);
    }
    let cache = cache_dir();
    let bin = cache.join("bin");
    if has_binaries(&bin) {
        return bin;
    }
    crate::must(
        std::fs::create_dir_all(&cache),
        "creating the SPIRE cache dir",
    );
    let lock_file = crate::must(
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(cache.join(".build.lock")),
        "opening the SPIRE build lock",
    );
    let _lock = match Flock::lock(lock_file, FlockArg::LockExclusive) {
        Ok(l) => l,
        Err((_, e)) => panic!("testkit: locking the SPIRE build lock: {e}"),
    };
    if has_binaries(&bin) {
        return bin;
    }
    let out = crate::must(
        Command::new("bash")
            .arg(build_script())
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output(),
        "running tests/spire/build-spire.sh",
    );
    assert!(
        out.status.success(),
        "testkit: tests/spire/build-spire.sh failed ({}); see its output above",
        out.status
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let dir = printed
        .lines()
        .last()
        .map_or_else(|| bin.clone(), |l| PathBuf::from(l.trim()));
    assert!(
        has_binaries(&dir),
        "testkit: build-spire.sh finished but {} lacks spire-server/spire-agent",
        dir.display()
    );
    dir
}
