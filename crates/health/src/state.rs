//! The shared health state: what has been written, what failed, what expires when.
//!
//! The daemon reports events (`x509_written`, `jwt_svid_write_failed`, ...) and the
//! HTTP handlers read verdicts. Verdicts take `now` as an argument so expiry is
//! testable without waiting for a certificate to expire.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use hyper::body::Bytes;
use serde_json::{Map, Value, json};

use crate::metrics::{self, Metrics, label};
use crate::time::{rfc3339, secs_between, unix_secs};

/// Write status of one output, with the strings upstream `spiffe-helper` reports
/// in `file_write_statuses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WriteStatus {
    /// Not written yet (`"unwritten"`).
    #[default]
    Unwritten,
    /// The last write succeeded (`"written"`).
    Written,
    /// The last write failed (`"failed"`).
    Failed,
}

impl WriteStatus {
    /// The upstream JSON string for this status.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unwritten => "unwritten",
            Self::Written => "written",
            Self::Failed => "failed",
        }
    }
}

/// Which probe a verdict or body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Liveness: is the helper still doing its job (no failed last write, SVID not expired)?
    Liveness,
    /// Readiness: has every output been written, and is the X.509 SVID still valid?
    Readiness,
}

/// One output file (or file set, for X.509).
#[derive(Debug, Default, Clone)]
struct Output {
    status: WriteStatus,
    /// Readiness is a one-way latch per output: set by the first successful write.
    ever_written: bool,
    /// `NotAfter` / `exp` of what was last written successfully.
    expiry: Option<SystemTime>,
}

impl Output {
    fn written(&mut self, expiry: Option<SystemTime>) {
        self.status = WriteStatus::Written;
        self.ever_written = true;
        if expiry.is_some() {
            self.expiry = expiry;
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// `None` when X.509 output is not configured (upstream then omits `x509_write_status`).
    x509: Option<Output>,
    spiffe_id: Option<String>,
    jwt_svids: BTreeMap<PathBuf, Output>,
    jwt_bundle: Option<(PathBuf, Output)>,
    agent_connected: bool,
    agent_ever_connected: bool,
    last_update: Option<SystemTime>,
    /// The last answer of each probe (liveness, readiness), reused while the state is unchanged
    /// and the time-dependent parts of the body read the same ([`Inner::time_key`]). Cleared by
    /// every change ([`HealthState::change`]).
    rendered: [Option<Rendered>; 2],
}

/// One probe answer as it went out: verdict and serialised body.
#[derive(Debug, Clone)]
struct Rendered {
    /// [`Inner::time_key`] at the moment of rendering.
    key: Vec<i64>,
    ok: bool,
    body: Bytes,
}

impl Probe {
    fn slot(self) -> usize {
        match self {
            Self::Liveness => 0,
            Self::Readiness => 1,
        }
    }
}

impl Inner {
    /// Every enabled output with a human-readable name.
    fn outputs(&self) -> Vec<(String, &Output)> {
        let mut all = Vec::new();
        if let Some(x) = &self.x509 {
            all.push(("X.509 SVID".to_owned(), x));
        }
        for (path, o) in &self.jwt_svids {
            all.push((format!("JWT SVID {}", path.display()), o));
        }
        if let Some((path, o)) = &self.jwt_bundle {
            all.push((format!("JWT bundle {}", path.display()), o));
        }
        all
    }

    /// Why the probe fails at `now`; empty means it passes.
    fn problems(&self, probe: Probe, now: SystemTime) -> Vec<String> {
        let mut problems: Vec<String> = self
            .outputs()
            .into_iter()
            .filter_map(|(name, o)| match probe {
                Probe::Readiness if !o.ever_written => Some(format!("{name} not written yet")),
                Probe::Liveness if o.status == WriteStatus::Failed => {
                    Some(format!("last write of {name} failed"))
                }
                _ => None,
            })
            .collect();
        // An expired SVID fails both probes; a renewal replaces `expiry`, so
        // "expired" already means "and no renewal arrived".
        if let Some(not_after) = self.x509.as_ref().and_then(|x| x.expiry)
            && now > not_after
        {
            problems.push(format!(
                "X.509 SVID expired at {} and no renewal arrived",
                rfc3339(not_after)
            ));
        }
        problems
    }

    /// Everything in a probe's verdict and body that depends on `now` rather than on the state:
    /// whether the X.509 SVID has expired, and each `expires_in_seconds`. Two instants with the
    /// same key and no state change in between give byte-identical answers.
    fn time_key(&self, now: SystemTime) -> impl Iterator<Item = i64> + '_ {
        let x509 = self
            .x509
            .as_ref()
            .and_then(|x| x.expiry)
            .map(|t| [i64::from(now > t), secs_between(now, t)]);
        x509.into_iter().flatten().chain(
            self.jwt_svids
                .values()
                .map(move |o| o.expiry.map_or(i64::MIN, |t| secs_between(now, t))),
        )
    }

    fn body(&self, probe: Probe, now: SystemTime) -> Value {
        let problems = self.problems(probe, now);
        let mut statuses = Map::new();
        if let Some(x) = &self.x509 {
            statuses.insert("x509_write_status".into(), x.status.as_str().into());
        }
        let mut jwt_statuses = Map::new();
        let mut jwt_svids = Map::new();
        for (path, o) in &self.jwt_svids {
            let key = path.display().to_string();
            jwt_statuses.insert(key.clone(), o.status.as_str().into());
            jwt_svids.insert(key, expiry_json(o.expiry, "expires_at", now));
        }
        if let Some((path, o)) = &self.jwt_bundle {
            jwt_statuses.insert(path.display().to_string(), o.status.as_str().into());
        }
        statuses.insert("jwt_write_status".into(), Value::Object(jwt_statuses));
        let x509_svid = match self.x509.as_ref().and_then(|x| x.expiry) {
            Some(t) => expiry_json(Some(t), "not_after", now),
            None => Value::Null,
        };
        json!({
            "status": if problems.is_empty() { "OK" } else { "Service Unavailable" },
            "health": { "file_write_statuses": statuses },
            "ready": self.problems(Probe::Readiness, now).is_empty(),
            "live": self.problems(Probe::Liveness, now).is_empty(),
            "problems": problems,
            "spiffe_id": self.spiffe_id,
            "x509_svid": x509_svid,
            "jwt_svids": jwt_svids,
            "last_update": self.last_update.map(rfc3339),
            "agent_connection": if self.agent_connected { "connected" } else { "disconnected" },
        })
    }
}

/// `{"<key>": "<RFC 3339>", "expires_in_seconds": n}` (negative once expired), or nulls.
fn expiry_json(expiry: Option<SystemTime>, key: &str, now: SystemTime) -> Value {
    let mut m = Map::new();
    m.insert(key.into(), expiry.map(rfc3339).into());
    m.insert(
        "expires_in_seconds".into(),
        expiry.map(|t| secs_between(now, t)).into(),
    );
    Value::Object(m)
}

/// Shared, cheaply cloneable health state (an `Arc` inside).
///
/// The daemon reports what happened; the [`HealthServer`](crate::HealthServer)
/// turns it into probe answers and metrics. Paths passed to the `jwt_*` methods
/// must be the same `PathBuf`s given to [`HealthState::new`]: they are the keys
/// of `jwt_write_status`, as upstream uses `<cert_dir>/<file>`.
#[derive(Clone, Debug)]
pub struct HealthState {
    inner: Arc<Mutex<Inner>>,
    metrics: Arc<Metrics>,
}

impl HealthState {
    /// State for the enabled outputs: the X.509 files (if `expect_x509`), one
    /// JWT SVID file per path, and the JWT bundle file if configured. All start
    /// `unwritten`, so readiness fails until each has been written once.
    #[must_use]
    pub fn new(
        expect_x509: bool,
        jwt_svid_paths: Vec<PathBuf>,
        jwt_bundle_path: Option<PathBuf>,
    ) -> Self {
        let mut outputs = Vec::new();
        if expect_x509 {
            outputs.push(metrics::OUTPUT_X509);
        }
        if !jwt_svid_paths.is_empty() {
            outputs.push(metrics::OUTPUT_JWT_SVID);
        }
        if jwt_bundle_path.is_some() {
            outputs.push(metrics::OUTPUT_JWT_BUNDLE);
        }
        let inner = Inner {
            x509: expect_x509.then(Output::default),
            jwt_svids: jwt_svid_paths
                .into_iter()
                .map(|p| (p, Output::default()))
                .collect(),
            jwt_bundle: jwt_bundle_path.map(|p| (p, Output::default())),
            ..Inner::default()
        };
        Self {
            inner: Arc::new(Mutex::new(inner)),
            metrics: Arc::new(Metrics::new(&outputs)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the plain data half-updated
        // in a way that matters for probes, so keep serving rather than propagate.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock for a change of state: drops the pre-rendered answers, so the next request
    /// after the change renders from the new state.
    fn change(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.lock();
        inner.rendered = [None, None];
        inner
    }

    /// The X.509 SVID, key and bundle were written. A write of a different SVID
    /// (other `NotAfter` or SPIFFE ID) after the first one counts as a rotation; a
    /// rewrite of the same SVID (e.g. a bundle-only update) does not.
    pub fn x509_written(&self, spiffe_id: &str, not_after: SystemTime) {
        let mut inner = self.change();
        let previous = inner.x509.as_ref().and_then(|x| x.expiry);
        if let Some(prev_expiry) = previous
            && (prev_expiry != not_after || inner.spiffe_id.as_deref() != Some(spiffe_id))
        {
            self.metrics.rotations.inc();
        }
        if let Some(old_id) = inner.spiffe_id.as_deref()
            && old_id != spiffe_id
        {
            self.metrics.x509_expiry.remove(&label("spiffe_id", old_id));
        }
        self.metrics
            .x509_expiry
            .get_or_create(&label("spiffe_id", spiffe_id))
            .set(unix_secs(not_after));
        inner
            .x509
            .get_or_insert_with(Output::default)
            .written(Some(not_after));
        inner.spiffe_id = Some(spiffe_id.to_owned());
        inner.last_update = Some(SystemTime::now());
    }

    /// Writing the X.509 files failed; the previously written SVID (if any) stays current.
    pub fn x509_write_failed(&self) {
        self.change()
            .x509
            .get_or_insert_with(Output::default)
            .status = WriteStatus::Failed;
        self.count_failure(metrics::OUTPUT_X509);
    }

    /// The JWT SVID file at `path` was written; `expiry` is the token's `exp`.
    pub fn jwt_svid_written(&self, path: &Path, expiry: SystemTime) {
        let mut inner = self.change();
        inner
            .jwt_svids
            .entry(path.to_path_buf())
            .or_default()
            .written(Some(expiry));
        inner.last_update = Some(SystemTime::now());
        self.metrics
            .jwt_expiry
            .get_or_create(&label("path", path.display().to_string()))
            .set(unix_secs(expiry));
    }

    /// Writing the JWT SVID file at `path` failed.
    pub fn jwt_svid_write_failed(&self, path: &Path) {
        self.change()
            .jwt_svids
            .entry(path.to_path_buf())
            .or_default()
            .status = WriteStatus::Failed;
        self.count_failure(metrics::OUTPUT_JWT_SVID);
    }

    /// The JWT bundle file was written. Ignored for the status map when no
    /// bundle path was given to [`HealthState::new`].
    pub fn jwt_bundle_written(&self) {
        let mut inner = self.change();
        if let Some((_, o)) = inner.jwt_bundle.as_mut() {
            o.written(None);
        }
        inner.last_update = Some(SystemTime::now());
    }

    /// Writing the JWT bundle file failed.
    pub fn jwt_bundle_write_failed(&self) {
        if let Some((_, o)) = self.change().jwt_bundle.as_mut() {
            o.status = WriteStatus::Failed;
        }
        self.count_failure(metrics::OUTPUT_JWT_BUNDLE);
    }

    fn count_failure(&self, output: &'static str) {
        self.metrics
            .write_failures
            .get_or_create(&label("output", output))
            .inc();
    }

    /// The Workload API connection went up (`true`) or down (`false`). Each
    /// down→up transition after the first connection counts as a reconnect.
    pub fn agent_connected(&self, connected: bool) {
        let mut inner = self.change();
        if connected && !inner.agent_connected {
            if inner.agent_ever_connected {
                self.metrics.agent_reconnects.inc();
            }
            inner.agent_ever_connected = true;
        }
        inner.agent_connected = connected;
        self.metrics.agent_connected.set(i64::from(connected));
    }

    /// A renew signal was sent (`ok`) or could not be delivered.
    pub fn signal_sent(&self, ok: bool) {
        if ok {
            self.metrics.signals_sent.inc();
        } else {
            self.metrics.signals_failed.inc();
        }
    }

    /// The managed child process was started (first start or restart).
    pub fn child_started(&self) {
        self.metrics.child_starts.inc();
    }

    /// Readiness at `now`: every enabled output written at least once and the
    /// X.509 SVID (if any) not expired.
    #[must_use]
    pub fn is_ready(&self, now: SystemTime) -> bool {
        self.lock().problems(Probe::Readiness, now).is_empty()
    }

    /// Liveness at `now`: no output's last write failed and the X.509 SVID has
    /// not expired without a renewal.
    #[must_use]
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.lock().problems(Probe::Liveness, now).is_empty()
    }

    /// The JSON body for `probe` at `now`: the upstream shape
    /// (`status`, `health.file_write_statuses`) plus `ready`, `live`, `problems`,
    /// `spiffe_id`, `x509_svid`, `jwt_svids`, `last_update`, `agent_connection`.
    /// `status` is `"OK"` when the probe passes, else `"Service Unavailable"`.
    /// Never contains key or token bytes.
    #[must_use]
    pub fn probe_body(&self, probe: Probe, now: SystemTime) -> Value {
        self.lock().body(probe, now)
    }

    /// Verdict and serialised body from one consistent snapshot. Rendered once per change of
    /// state or of the time-dependent fields (at most once a second per expiry), and served from
    /// that copy in between: probes and load hit the copy.
    pub(crate) fn answer(&self, probe: Probe, now: SystemTime) -> (bool, Bytes) {
        let mut inner = self.lock();
        let slot = probe.slot();
        if let Some(r) = &inner.rendered[slot]
            && r.key.iter().copied().eq(inner.time_key(now))
        {
            return (r.ok, r.body.clone());
        }
        let ok = inner.problems(probe, now).is_empty();
        let body = Bytes::from(inner.body(probe, now).to_string());
        let key = inner.time_key(now).collect();
        inner.rendered[slot] = Some(Rendered {
            key,
            ok,
            body: body.clone(),
        });
        (ok, body)
    }

    /// The metrics exposition and its content type.
    pub(crate) fn encode_metrics(&self, openmetrics: bool) -> (String, &'static str) {
        self.metrics.encode(openmetrics)
    }
}

#[cfg(test)]
mod tests;
