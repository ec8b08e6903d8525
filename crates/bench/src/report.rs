//! Summaries (median, min–max) and the Markdown results table.

use std::fmt::Write as _;

/// How a figure's values are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Milliseconds.
    Ms,
    /// Microseconds.
    Us,
    /// Mebibytes.
    MiB,
    /// Seconds.
    Secs,
    /// Requests per second.
    PerSec,
    /// Events per minute.
    PerMin,
}

impl Unit {
    fn fmt(self, v: f64) -> String {
        let num = if v.abs() >= 100.0 {
            format!("{v:.0}")
        } else if v.abs() >= 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        };
        let unit = match self {
            Unit::Ms => "ms",
            Unit::Us => "µs",
            Unit::MiB => "MiB",
            Unit::Secs => "s",
            Unit::PerSec => "req/s",
            Unit::PerMin => "/min",
        };
        format!("{num} {unit}")
    }
}

/// A target from docs/benchmarks.md, judged on the medians.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// ours / upstream must be at most this.
    RatioAtMost(f64),
    /// ours must be below this value (in the row's unit).
    OursBelow(f64),
}

/// Median, min and max of a sample.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Summary {
    /// Median (mean of the two middle values for an even count).
    pub(crate) median: f64,
    /// Smallest value.
    pub(crate) min: f64,
    /// Largest value.
    pub(crate) max: f64,
    /// Number of values.
    pub(crate) n: usize,
}

/// Summarises `v`; `None` when empty.
pub(crate) fn summarize(v: &[f64]) -> Option<Summary> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        f64::midpoint(s[n / 2 - 1], s[n / 2])
    };
    Some(Summary {
        median,
        min: s[0],
        max: s[n - 1],
        n,
    })
}

/// The `q`-quantile (0..=1) of `v` by nearest rank; `None` when empty.
pub(crate) fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// One line of the results table.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    /// Row number in docs/benchmarks.md, e.g. `1a`.
    pub(crate) id: String,
    /// What was measured.
    pub(crate) metric: String,
    /// Unit of the values.
    pub(crate) unit: Unit,
    /// Our values, one per run.
    pub(crate) ours: Vec<f64>,
    /// Upstream's values, one per run.
    pub(crate) upstream: Vec<f64>,
    /// The target, if it sets one.
    pub(crate) target: Option<Target>,
}

impl Row {
    /// A row without a target.
    pub(crate) fn new(id: &str, metric: &str, unit: Unit, ours: Vec<f64>, up: Vec<f64>) -> Row {
        Row {
            id: id.to_owned(),
            metric: metric.to_owned(),
            unit,
            ours,
            upstream: up,
            target: None,
        }
    }

    /// Sets the target.
    pub(crate) fn target(mut self, t: Target) -> Row {
        self.target = Some(t);
        self
    }

    fn cell(&self, v: &[f64]) -> String {
        match summarize(v) {
            None => "—".to_owned(),
            Some(s) if s.n == 1 || (s.max - s.min).abs() < f64::EPSILON => self.unit.fmt(s.median),
            Some(s) => format!(
                "{} ({}–{})",
                self.unit.fmt(s.median),
                self.unit.fmt(s.min),
                self.unit.fmt(s.max)
            ),
        }
    }

    fn ratio(&self) -> Option<f64> {
        let (o, u) = (summarize(&self.ours)?, summarize(&self.upstream)?);
        (u.median.abs() > f64::EPSILON).then(|| o.median / u.median)
    }

    fn verdict(&self) -> String {
        let ours = summarize(&self.ours).map(|s| s.median);
        match (self.target, ours, self.ratio()) {
            (None, _, _) => String::new(),
            (Some(Target::RatioAtMost(t)), _, Some(r)) => {
                if r <= t {
                    format!("≤ {t}×: **met**")
                } else {
                    format!("≤ {t}×: **missed** ({:.1}× the target)", r / t)
                }
            }
            // Upstream used nothing measurable: met only if ours did not either.
            (Some(Target::RatioAtMost(t)), Some(o), None) => {
                if o.abs() < f64::EPSILON {
                    format!("≤ {t}×: **met** (both 0)")
                } else {
                    format!("≤ {t}×: **missed** (upstream 0)")
                }
            }
            (Some(Target::OursBelow(t)), Some(o), _) => {
                let limit = self.unit.fmt(t);
                if o < t {
                    format!("< {limit}: **met**")
                } else {
                    format!("< {limit}: **missed** (+{})", self.unit.fmt(o - t))
                }
            }
            _ => "no data".to_owned(),
        }
    }

    fn runs(&self) -> String {
        let (a, b) = (self.ours.len(), self.upstream.len());
        if a == b {
            a.to_string()
        } else {
            format!("{a}/{b}")
        }
    }
}

/// Renders the table plus numbered notes.
pub(crate) fn render(rows: &[Row], notes: &[String]) -> String {
    let mut s = String::new();
    s.push_str(
        "| # | figure | ours: median (min–max) | upstream: median (min–max) | ours/upstream | target | n |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let ratio = r.ratio().map_or("—".to_owned(), |x| format!("{x:.2}×"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            r.metric,
            r.cell(&r.ours),
            r.cell(&r.upstream),
            ratio,
            r.verdict(),
            r.runs()
        );
    }
    if !notes.is_empty() {
        s.push('\n');
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

#[cfg(test)]
mod tests;
