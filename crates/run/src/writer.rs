//! The one write path: render and write off the runtime thread, report the result to the
//! health state (daemon mode), log it. Every file the helper writes goes through [`Writer`].

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use spiffe_helper_health::HealthState;
use spiffe_helper_pem::{Renamed, Written};
use spiffe_workload_client::{JwtBundleSet, JwtSvid, X509Snapshot};

use crate::outputs::{self, Outputs, X509Outcome};

/// Writes the outputs one config names; cheap to clone (one per task).
#[derive(Clone)]
pub struct Writer {
    outputs: Arc<Outputs>,
    /// `None` in one-shot mode, where nobody asks.
    health: Option<HealthState>,
}

impl Writer {
    /// A writer for `outputs`, reporting to `health` when there is a health state.
    pub fn new(outputs: Outputs, health: Option<HealthState>) -> Self {
        Self {
            outputs: Arc::new(outputs),
            health,
        }
    }

    /// The settings this writer writes.
    pub fn outputs(&self) -> &Outputs {
        &self.outputs
    }

    /// Writes the X.509 files for `snapshot` and makes them durable.
    ///
    /// # Errors
    /// As [`Writer::x509_visible`].
    pub async fn x509(&self, snapshot: Arc<X509Snapshot>) -> anyhow::Result<X509Outcome> {
        let (outcome, renamed) = self.x509_visible(snapshot).await?;
        self.finish(&outcome, renamed).await;
        Ok(outcome)
    }

    /// Writes the X.509 files for `snapshot` up to the renames: readers see the new files
    /// when this returns. Pass the outcome and the [`Renamed`] to [`Writer::finish`] once the
    /// consumer has been told (it logs the write and syncs the directory); each file's data
    /// is already synced, so a crash in between can only bring back a complete old file.
    ///
    /// # Errors
    /// A certificate that cannot be rendered, or a failed write; the
    /// previous files stay as they were.
    pub async fn x509_visible(
        &self,
        snapshot: Arc<X509Snapshot>,
    ) -> anyhow::Result<(X509Outcome, Renamed)> {
        let outputs = self.outputs.clone();
        let result = blocking(move || {
            let Some(files) = &outputs.x509 else {
                anyhow::bail!("X.509 output is not configured");
            };
            outputs::write_x509(files, outputs.versioned.as_deref(), &snapshot)
        })
        .await
        .context("writing the X.509 files");
        match &result {
            Ok((outcome, _)) => {
                self.report(|h| h.x509_written(&outcome.spiffe_id, outcome.not_after));
            }
            Err(_) => self.report(HealthState::x509_write_failed),
        }
        result
    }

    /// Writes the JWT bundle file.
    ///
    /// # Errors
    /// A failed write; the previous file stays as it was.
    pub async fn jwt_bundle(&self, bundles: JwtBundleSet) -> anyhow::Result<()> {
        let outputs = self.outputs.clone();
        let result = blocking(move || {
            let Some(target) = &outputs.jwt_bundle else {
                anyhow::bail!("JWT bundle output is not configured");
            };
            outputs::write_jwt_bundle(target, outputs.versioned.as_deref(), &bundles)
        })
        .await
        .context("writing the JWT bundle");
        match result {
            Ok(_) => {
                self.report(HealthState::jwt_bundle_written);
                Ok(())
            }
            Err(err) => {
                self.report(HealthState::jwt_bundle_write_failed);
                Err(err)
            }
        }
    }

    /// Writes the token of `jwt_svids[index]`.
    ///
    /// # Errors
    /// A failed write; the previous file stays as it was.
    pub async fn jwt_svid(&self, index: usize, svid: JwtSvid) -> anyhow::Result<()> {
        let Some(entry) = self.outputs.jwt_svids.get(index) else {
            anyhow::bail!("no jwt_svids entry {index}");
        };
        let (path, mode, expiry) = (
            entry.path.clone(),
            self.outputs.jwt_svid_mode,
            svid.expiry(),
        );
        let spiffe_id = svid.spiffe_id().to_string();
        let target = path.clone();
        let versioned = self.outputs.versioned.clone();
        let result =
            blocking(move || outputs::write_jwt_svid(&target, mode, versioned.as_deref(), &svid))
                .await
                .with_context(|| format!("writing {}", path.display()));
        match result {
            Ok(written) => {
                self.report(|h| h.jwt_svid_written(&path, expiry));
                if written == Written::Changed {
                    tracing::info!(path = %path.display(), %spiffe_id, "wrote JWT-SVID");
                } else {
                    tracing::debug!(path = %path.display(), "JWT-SVID unchanged");
                }
                Ok(())
            }
            Err(err) => {
                self.report(|h| h.jwt_svid_write_failed(&path));
                Err(err)
            }
        }
    }

    /// Logs an X.509 write and fsyncs its directories, so its renames survive a crash. A
    /// failed fsync leaves the new files in place (only their durability is unknown): it is
    /// logged, not retried.
    pub async fn finish(&self, outcome: &X509Outcome, renamed: Renamed) {
        log_x509(outcome);
        let finished = blocking(move || {
            let written = renamed.finish()?;
            // The rotation's short-lived allocations are freed by now (docs/reliability.md,
            // "What grew (issue 24)"); the trim runs here, off the runtime thread.
            crate::heap::trim();
            Ok(written)
        })
        .await;
        if let Err(err) = finished {
            tracing::warn!("{err:#}");
        }
    }

    fn report(&self, update: impl FnOnce(&HealthState)) {
        if let Some(health) = &self.health {
            update(health);
        }
    }
}

/// File I/O (and its fsyncs) runs on the blocking pool, never on the runtime's one thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("the write task failed")?
}

fn log_x509(outcome: &X509Outcome) {
    let expires_in = outcome
        .not_after
        .duration_since(SystemTime::now())
        .map_or(0, |left| left.as_secs());
    tracing::info!(
        spiffe_id = %outcome.spiffe_id,
        serial = %outcome.serial,
        expires_in,
        changed = outcome.changed,
        "wrote X.509-SVID"
    );
}
