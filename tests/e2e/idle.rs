//! The idle daemon: docs/behaviour.md#daemon-mode promises no polling and no busy loops; a user notices that as CPU
//! time burnt by a sidecar that has nothing to do.

use std::time::Duration;

use spiffe_helper_testkit::spire::Entry;

use crate::inspect::{http_status, leaf};
use crate::support::spire_with;
use crate::support::{
    Helper, WORKLOAD, assert_no_secrets, base_config, free_port, scratch, stop_cleanly, wait_until,
    write_file,
};

/// How long the idle daemon is watched.
const IDLE: Duration = Duration::from_secs(30);

/// User + system CPU time of `pid` in clock ticks, from `/proc/<pid>/stat`.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Resident set size of `pid` in KiB, from `/proc/<pid>/status`.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A daemon with X.509, a JWT-SVID, the JWT bundle and the health server, with nothing to do
/// (1 h X.509, 5 min JWT) does not spin: a polling or busy loop would burn whole seconds of CPU
/// in 30 s, so the bound is deliberately loose (10% of a core); it detects the behaviour, not a
/// speed. The real idle figures are measured side by side with upstream by `make bench`. Its
/// 30 s liveness log line names the SPIFFE ID.
#[test]
fn idle_daemon_does_not_poll() {
    let spire = spire_with(&Entry::new(WORKLOAD));
    let dir = scratch();
    let certs = dir.path().join("certs");
    let port = free_port();
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}svid_file_name = \"svid.pem\"\n\
             jwt_svids = [{{ jwt_audience = \"idle\", jwt_svid_file_name = \"jwt.token\" }}]\n\
             jwt_bundle_file_name = \"jwt_bundle.json\"\n\
             health_checks {{\n  listener_enabled = true\n  bind_port = {port}\n}}\n",
            base_config(&spire.endpoint(), &certs)
        ),
    );
    let mut helper = Helper::spawn(&config, &[]);
    assert!(
        wait_until(Duration::from_secs(30), || http_status(
            port,
            "/health/ready"
        ) == Some(200)),
        "never ready; log:\n{}",
        helper.log_tail()
    );
    assert!(
        leaf(&certs.join("svid.pem")).is_some(),
        "no X.509-SVID written"
    );
    let pid = helper.pid().as_raw();
    std::thread::sleep(Duration::from_secs(1)); // let start-up work settle
    let before = cpu_ticks(pid);
    std::thread::sleep(IDLE);
    helper.assert_running("while idle");
    let ticks = cpu_ticks(pid) - before;
    // Clock ticks are 1/100 s on Linux.
    #[allow(clippy::cast_precision_loss, reason = "small tick counts")]
    let cpu = ticks as f64 / 100.0;
    let rss = rss_kib(pid);
    eprintln!(
        "MEASURE idle daemon over {IDLE:?}: {cpu:.2}s CPU ({:.2}% of a core), RSS {rss} KiB (debug build)",
        cpu * 100.0 / IDLE.as_secs_f64()
    );
    assert!(
        cpu < IDLE.as_secs_f64() / 10.0,
        "idle daemon used {cpu:.2}s CPU in {IDLE:?}: something is polling"
    );
    // docs/behaviour.md#liveness-log-line: a liveness line every 30 s naming the SPIFFE ID.
    assert!(
        wait_until(Duration::from_secs(5), || helper
            .log()
            .lines()
            .any(|l| l.contains("alive") && l.contains(WORKLOAD))),
        "no liveness line naming {WORKLOAD} after {IDLE:?}; log:\n{}",
        helper.log_tail()
    );
    stop_cleanly(&mut helper);
    let token = std::fs::read_to_string(certs.join("jwt.token")).unwrap();
    assert_no_secrets(
        "idle daemon",
        &helper.log(),
        Some(&certs.join("svid_key.pem")),
        &[token],
    );
}
