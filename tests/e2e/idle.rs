//! The idle daemon: docs/behaviour.md#daemon-mode promises no polling and no busy loops; a user notices that as CPU
//! time burnt by a sidecar that has nothing to do.

use std::time::Duration;

use spiffe_helper_testkit::spire::Entry;

use crate::inspect::{http_status, leaf};
use crate::support::spire_with;
use crate::support::{
    Helper, WORKLOAD, base_config, free_port, scratch, stop_cleanly, wait_until, write_file,
};

/// How long the idle daemon is watched.
const IDLE: Duration = Duration::from_secs(30);
/// Voluntary context switches one thread may make for one timer firing (wake, run, log, park).
const SWITCHES_PER_WAKEUP: u64 = 4;

/// User + system CPU time of `pid` in clock ticks, from `/proc/<pid>/stat`.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Voluntary context switches of each thread of `pid` (a thread that goes to sleep makes one,
/// so each wake-up that ends in sleep again counts one), by thread id, from
/// `/proc/<pid>/task/<tid>/status`.
fn voluntary_switches(pid: i32) -> std::collections::HashMap<String, u64> {
    let mut counts = std::collections::HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue; // the thread exited meanwhile
        };
        let count = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        counts.insert(task.file_name().to_string_lossy().into_owned(), count);
    }
    counts
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
/// (1 h X.509, 5 min JWT) does not poll: every thread sleeps until a documented timer fires.
/// Over 30 s the only timer due is the 30 s liveness line (docs/behaviour.md#liveness-log-line;
/// the JWT refresh is at half of 5 min, the X.509 stream and the JWT bundle stream are pushed
/// by the agent). Each wake-up costs each runtime thread a few voluntary context switches, so
/// the bound is [`SWITCHES_PER_WAKEUP`] per thread per timer firing (at most 2 in the window)
/// plus one firing's worth for the runtime's own housekeeping; a 100 ms poll would be 300
/// wake-ups. Its liveness log line names the SPIFFE ID.
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
    let switches_before = voluntary_switches(pid);
    std::thread::sleep(IDLE);
    helper.assert_running("while idle");
    let ticks = cpu_ticks(pid) - before;
    let switches_after = voluntary_switches(pid);
    // Per thread: a thread that ended during the window takes its count with it (an
    // undercount of whatever it did), one that started counts from zero.
    let switches: u64 = switches_after
        .iter()
        .map(|(tid, n)| n - switches_before.get(tid).copied().unwrap_or(0))
        .sum();
    let (threads_before, threads) = (switches_before.len(), switches_after.len());
    // Clock ticks are 1/100 s on Linux.
    #[allow(clippy::cast_precision_loss, reason = "small tick counts")]
    let cpu = ticks as f64 / 100.0;
    let rss = rss_kib(pid);
    eprintln!(
        "MEASURE idle daemon over {IDLE:?}: {cpu:.2}s CPU ({:.2}% of a core), RSS {rss} KiB (debug build)",
        cpu * 100.0 / IDLE.as_secs_f64()
    );
    eprintln!(
        "MEASURE idle daemon over {IDLE:?}: {switches} voluntary context switches over {threads} threads ({threads_before} before)"
    );
    // At most two liveness firings in the window (one at each edge), plus one for housekeeping.
    let bound = SWITCHES_PER_WAKEUP * u64::try_from(threads.max(threads_before)).unwrap() * 3;
    assert!(
        switches <= bound,
        "idle daemon made {switches} voluntary context switches in {IDLE:?} (bound {bound}): \
         something wakes up without a timer being due"
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
}
