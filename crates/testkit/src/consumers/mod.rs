//! Real consumers of the helper's files, for end-to-end tests of docs/consumers.md: `PostgreSQL`
//! ([`postgres`]) reloaded through its `postmaster.pid`, `HAProxy` ([`haproxy`]) in
//! master-worker mode serving the combined key+chain file, and `openssl` probes ([`probe`])
//! that read the serial a server presents and count failed requests across a reload.
//!
//! Both servers are Debian packages installed by `make deps` (`scripts/install-deps.sh`);
//! [`postgres::available`] and [`haproxy::available`] tell a test whether they are there.
//! Every process is stopped by its pid on drop, also when a test panics.
//!
//! ## Users: who runs what
//! `PostgreSQL` refuses to run as root, so it runs as the Debian package's `postgres` user. Its
//! `postmaster.pid` is then owned by that user, and the helper trusts a pid file only when it is
//! owned by root or by the helper's own uid (docs/consumers.md, "Pid files as daemons write
//! them"). So a test that lets the helper
//! signal `PostgreSQL` runs **the helper as `postgres` too**, the way a sidecar runs next to its
//! database: same uid, so it may signal the postmaster without root, and the key file it writes
//! is owned by the database user with mode 0600, which is exactly what `PostgreSQL` demands of
//! `ssl_key_file`. The SPIRE entry then selects that uid: `unix:uid:<postgres uid>`
//! ([`postgres::PgUser::selector`]), and the SPIRE directory must be traversable by it
//! ([`postgres::PgUser::share_dir`]). `HAProxy` runs as root, writes its pid file as root, and
//! the helper (root) may signal it.

pub mod haproxy;
pub mod postgres;
pub mod probe;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Sends `first`, waits up to `grace` for `child` to exit, then SIGKILL; reaps it.
pub(crate) fn stop_child(child: &mut Child, first: Signal, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(raw) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(raw), first);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The file's text, or "" (for log tails in failure messages).
pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    let l = crate::must(
        std::net::TcpListener::bind("127.0.0.1:0"),
        "binding a free port",
    );
    crate::must(l.local_addr(), "reading the free port").port()
}
