//! Rows 7x of docs/benchmarks.md: the agent restarts under running daemons (a crashed agent, an agent pod replaced):
//! how long after its socket is back each helper has the SVID the new agent issued on disk.
//!
//! One daemon of each helper runs on the shared agent. Each round SIGKILLs the agent, leaves
//! it down for [`DOWN`] (long enough for both helpers' reconnect backoff to grow), starts it
//! again and waits for both certificate files to change. The agent issues new SVIDs after a
//! restart (its workload SVID cache is in memory), so a changed file means the helper
//! reconnected and wrote what the new agent sent.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use spiffe_helper_testkit::spire::Spire;

use crate::Ctx;
use crate::daemon;
use crate::procs::{Impl, log_tail};
use crate::report::{Row, Unit};

/// Rounds (agent restarts).
const ROUNDS: usize = 3;
/// How long the agent stays down each round.
const DOWN: Duration = Duration::from_secs(30);
/// How long both helpers may take to write the new SVID once the socket is back.
const CATCH_UP: Duration = Duration::from_secs(90);

/// Runs the rounds; returns row 7a.
///
/// # Errors
/// If a daemon does not start, or a helper has not written a new SVID within [`CATCH_UP`].
pub(crate) fn bench(ctx: &Ctx, spire: &mut Spire) -> Result<Row> {
    crate::progress(&format!(
        "agent restart: {ROUNDS} rounds, agent down {} s each",
        DOWN.as_secs()
    ));
    let socket = spire.socket_path().to_path_buf();
    let mut daemons = Vec::new();
    let mut certs: Vec<PathBuf> = Vec::new();
    for which in Impl::BOTH {
        let name = format!("restart-{}", which.tag());
        daemons.push(daemon::start(ctx, &socket, which, &name)?);
        certs.push(ctx.scratch.join(&name).join("out").join("svid.pem"));
    }
    let mut took: [Vec<f64>; 2] = Default::default();
    for round in 0..ROUNDS {
        let before: Vec<Vec<u8>> = certs.iter().map(|c| read(c)).collect();
        spire.kill_agent();
        std::thread::sleep(DOWN);
        spire.start_agent();
        let back = Instant::now();
        let mut done: [Option<f64>; 2] = [None, None];
        while done.iter().any(Option::is_none) && back.elapsed() < CATCH_UP {
            for (side, cert) in certs.iter().enumerate() {
                if done[side].is_none() && read(cert) != before[side] {
                    done[side] = Some(back.elapsed().as_secs_f64());
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for (side, which) in Impl::BOTH.into_iter().enumerate() {
            let Some(secs) = done[side] else {
                let log = ctx
                    .scratch
                    .join(format!("restart-{}", which.tag()))
                    .with_extension("log");
                bail!(
                    "round {round}: {} wrote no new SVID {} s after the agent's socket was back: {}",
                    which.tag(),
                    CATCH_UP.as_secs(),
                    log_tail(&log, 10)
                );
            };
            took[side].push(secs);
        }
    }
    drop(daemons);
    let [o, u] = took;
    Ok(Row::new(
        "7a",
        &format!(
            "agent restart (down {} s): socket back → new SVID on disk",
            DOWN.as_secs()
        ),
        Unit::Secs,
        o,
        u,
    ))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}
