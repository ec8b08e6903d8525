//! Rows 5x of docs/benchmarks.md: binary sizes on disk.

use std::path::Path;

use anyhow::{Context, Result};

use crate::Ctx;
use crate::report::{Row, Target, Unit};

fn mib(p: &Path) -> Result<f64> {
    let len = std::fs::metadata(p)
        .with_context(|| format!("stat {}", p.display()))?
        .len();
    #[allow(clippy::cast_precision_loss)]
    Ok(len as f64 / (1024.0 * 1024.0))
}

/// Ours (release profile: strip, fat LTO) against upstream built like its release Makefile
/// (`-ldflags "-s -w"`), plus upstream as a plain `go build` leaves it.
///
/// # Errors
/// If a binary is missing.
pub(crate) fn bench(ctx: &Ctx) -> Result<Vec<Row>> {
    let ours = mib(&ctx.bins.ours)?;
    let mut rows = Vec::new();
    if let Some(stripped) = &ctx.upstream_stripped {
        rows.push(
            Row::new(
                "5a",
                "binary size, stripped (ours release vs upstream `-s -w`)",
                Unit::MiB,
                vec![ours],
                vec![mib(stripped)?],
            )
            .target(Target::RatioAtMost(0.5)),
        );
    } else {
        crate::note("5a: no stripped upstream binary given (--upstream-stripped)".to_owned());
    }
    rows.push(Row::new(
        "5b",
        "binary size vs upstream plain `go build` (symbols + DWARF)",
        Unit::MiB,
        vec![ours],
        vec![mib(&ctx.upstream_plain)?],
    ));
    Ok(rows)
}
