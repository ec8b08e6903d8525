//! Rows 1x of docs/benchmarks.md: one-shot mode, exec → exit 0 with every output file written.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::Ctx;
use crate::conf::HelperConf;
use crate::procs::{Impl, Proc, files_present, log_tail};
use crate::report::{Row, Target, Unit};

/// A one-shot run that takes longer than this is killed and reported as a failure.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Measures one-shot wall time and CPU time with X.509 only (`jwt = 0`) or with `jwt` JWT
/// audiences too.
///
/// # Errors
/// If a helper exits non-zero, times out, or leaves an output missing.
pub(crate) fn bench(ctx: &Ctx, socket: &Path, jwt: usize) -> Result<Vec<Row>> {
    let label = if jwt == 0 {
        "one-shot exec → exit 0, X.509 (cert, key, bundle)".to_owned()
    } else {
        format!("one-shot exec → exit 0, X.509 + {jwt} JWT audiences")
    };
    crate::progress(&format!(
        "{label}: {} runs each, alternating",
        ctx.oneshot_runs
    ));
    let mut times = [Vec::new(), Vec::new()];
    let mut cpu = [Vec::new(), Vec::new()];
    // Run 0 warms the page cache for both binaries and is not counted.
    for run in 0..=ctx.oneshot_runs {
        for (i, which) in Impl::BOTH.into_iter().enumerate() {
            let before = children_cpu_secs();
            let d = once(ctx, socket, jwt, which, run)?;
            if run > 0 {
                times[i].push(d.as_secs_f64() * 1e3);
                cpu[i].push((children_cpu_secs() - before) * 1e3);
            }
        }
    }
    let [ours, up] = times;
    let [cpu_o, cpu_u] = cpu;
    let (id, cpu_id) = if jwt == 0 { ("1a", "1c") } else { ("1b", "1d") };
    let cpu_label = if jwt == 0 {
        "one-shot CPU time (user+sys), X.509".to_owned()
    } else {
        format!("one-shot CPU time (user+sys), X.509 + {jwt} JWT")
    };
    Ok(vec![
        Row::new(id, &label, Unit::Ms, ours, up).target(Target::RatioAtMost(0.5)),
        Row::new(cpu_id, &cpu_label, Unit::Ms, cpu_o, cpu_u),
    ])
}

/// CPU seconds of every child reaped so far (`getrusage(RUSAGE_CHILDREN)`); the difference
/// around one `wait` is that run's CPU time, independent of what else the machine runs.
fn children_cpu_secs() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| {
        let tv = |t: nix::sys::time::TimeVal| {
            #[allow(clippy::cast_precision_loss)]
            let v = t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            v
        };
        tv(u.user_time()) + tv(u.system_time())
    })
}

fn once(ctx: &Ctx, socket: &Path, jwt: usize, which: Impl, run: usize) -> Result<Duration> {
    let base = ctx.scratch.join(format!("os{jwt}-{}-{run}", which.tag()));
    let conf = HelperConf {
        agent_socket: socket.to_path_buf(),
        cert_dir: base.join("out"),
        daemon: false,
        jwt_audiences: (0..jwt).map(|i| format!("bench-aud-{i}")).collect(),
        ..HelperConf::default()
    };
    let conf_path = conf.write(&base.with_extension("conf"))?;
    let log = base.with_extension("log");
    let mut cmd = ctx.bins.command(which, &conf_path, &log)?;
    let start = Instant::now();
    let mut proc = Proc::spawn(&mut cmd)?;
    let status = wait_with_timeout(&mut proc, RUN_TIMEOUT)?;
    let took = start.elapsed();
    if !status {
        bail!(
            "{} one-shot failed; log tail:\n{}",
            which.tag(),
            log_tail(&log, 15)
        );
    }
    let names = conf.output_files();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    if !files_present(&conf.cert_dir, &refs) {
        bail!("{} one-shot exited 0 without writing {refs:?}", which.tag());
    }
    Ok(took)
}

/// Blocks in `wait(2)` (no polling delay in the measurement); a watchdog thread kills the
/// process by pid if it outlives `timeout`. Returns whether it exited 0.
fn wait_with_timeout(proc: &mut Proc, timeout: Duration) -> Result<bool> {
    let pid = proc.pid();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(timeout).is_err() {
            crate::procs::terminate_pid(pid);
        }
    });
    let status = proc.wait().context("waiting for the helper")?;
    let _ = done_tx.send(());
    let _ = watchdog.join();
    Ok(status.success())
}
