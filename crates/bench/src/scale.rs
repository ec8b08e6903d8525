//! Rows 4x of docs/benchmarks.md: N daemons of one helper on one agent: time until all wrote their files, total memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::Ctx;
use crate::conf::HelperConf;
use crate::procs::{Impl, Proc, X509_FILES, files_present, pss_kib, status_kib, stop_all};
use crate::report::{Row, Unit};

/// How long all N daemons may take to write their files.
const ALL_WRITTEN_TIMEOUT: Duration = Duration::from_secs(180);
/// Settling time before memory is read (start-up allocations done, first GC cycles run).
const SETTLE: Duration = Duration::from_secs(5);

struct Batch {
    time_all_s: f64,
    rss_mib: f64,
    pss_mib: f64,
}

/// `ctx.scale_rounds` rounds, each starting `ctx.scale` daemons of ours, then of upstream.
///
/// # Errors
/// If a batch does not write all its files in time or `/proc` cannot be read.
pub(crate) fn bench(ctx: &Ctx, socket: &Path) -> Result<Vec<Row>> {
    let n = ctx.scale;
    crate::progress(&format!(
        "scale: {n} daemons at once, {} rounds",
        ctx.scale_rounds
    ));
    let mut cols: [[Vec<f64>; 2]; 3] = Default::default();
    for round in 0..ctx.scale_rounds {
        for (side, which) in Impl::BOTH.into_iter().enumerate() {
            let b = batch(ctx, socket, which, round)?;
            cols[0][side].push(b.time_all_s);
            cols[1][side].push(b.rss_mib);
            cols[2][side].push(b.pss_mib);
        }
    }
    let [[t_o, t_u], [r_o, r_u], [p_o, p_u]] = cols;
    Ok(vec![
        Row::new(
            "4a",
            &format!("{n} daemons: start → all wrote files"),
            Unit::Secs,
            t_o,
            t_u,
        ),
        Row::new(
            "4b",
            &format!("{n} daemons: total RSS"),
            Unit::MiB,
            r_o,
            r_u,
        ),
        Row::new(
            "4c",
            &format!("{n} daemons: total PSS"),
            Unit::MiB,
            p_o,
            p_u,
        ),
    ])
}

fn batch(ctx: &Ctx, socket: &Path, which: Impl, round: usize) -> Result<Batch> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut cmds = Vec::new();
    for k in 0..ctx.scale {
        let base = ctx.scratch.join(format!("sc{round}-{}-{k}", which.tag()));
        let conf = HelperConf {
            agent_socket: socket.to_path_buf(),
            cert_dir: base.join("out"),
            daemon: true,
            ..HelperConf::default()
        };
        let conf_path = conf.write(&base.with_extension("conf"))?;
        cmds.push(
            ctx.bins
                .command(which, &conf_path, &base.with_extension("log"))?,
        );
        dirs.push(conf.cert_dir);
    }
    let start = Instant::now();
    let mut procs = Vec::with_capacity(ctx.scale);
    for cmd in &mut cmds {
        procs.push(Proc::spawn(cmd)?);
    }
    let mut pending: Vec<&PathBuf> = dirs.iter().collect();
    while !pending.is_empty() {
        pending.retain(|d| !files_present(d, &X509_FILES));
        if start.elapsed() > ALL_WRITTEN_TIMEOUT {
            stop_all(&mut procs);
            bail!(
                "{}: {} of {} daemons never wrote files",
                which.tag(),
                pending.len(),
                ctx.scale
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let time_all_s = start.elapsed().as_secs_f64();
    std::thread::sleep(SETTLE);
    let (mut rss, mut pss) = (0u64, 0u64);
    for p in &procs {
        rss += status_kib(p.pid(), "VmRSS")?;
        pss += pss_kib(p.pid())?;
    }
    stop_all(&mut procs);
    #[allow(clippy::cast_precision_loss)]
    Ok(Batch {
        time_all_s,
        rss_mib: rss as f64 / 1024.0,
        pss_mib: pss as f64 / 1024.0,
    })
}
