//! The X.509 tasks: follow the source, write each usable update and tell the notifier;
//! report the agent connection to health; log that the helper is alive every 30 s.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use spiffe_helper_health::HealthState;
use spiffe_helper_notify::Notifier;
use spiffe_workload_client::{Backoff, X509Snapshot, X509Source};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Fatal;
use crate::writer::Writer;

/// How often the daemon logs that it is alive (docs/behaviour.md, "Logs").
const LIVENESS_LOG_EVERY: Duration = Duration::from_secs(30);

/// What the X.509 watch needs.
pub struct Watch {
    /// Writes the files and reports to health.
    pub writer: Writer,
    /// Tells the consumer that the files changed; stopped with the watch.
    pub notifier: Notifier,
    /// Where the child's exit code goes when the child is the workload.
    pub child_exit: Arc<OnceLock<u8>>,
    /// Connection state goes here.
    pub health: HealthState,
    /// Stops the tasks.
    pub shutdown: CancellationToken,
}

impl Watch {
    /// Spawns the watch, the connection tracker and the liveness log. `written` is the
    /// snapshot the start-up already wrote; the consumer is notified of it first. The source
    /// hands over only updates whose SVID its picker (the hint rule) accepts.
    pub fn spawn(
        self,
        tasks: &mut JoinSet<Result<(), Fatal>>,
        source: &X509Source,
        written: Option<Arc<X509Snapshot>>,
    ) {
        tasks.spawn(super::report_connection(
            source.connection(),
            self.health.clone(),
        ));
        tasks.spawn(log_liveness(source.updates(), self.shutdown.clone()));
        tasks.spawn(self.run(source.updates(), written));
    }

    /// Notifies for the start-up write, follows the source until shutdown, then stops the
    /// consumer's child. Fails when the source stops for good, and ends the helper with the
    /// child's code when the child decides (`cmd_restart = "never"`, or SIGQUIT).
    async fn run(
        mut self,
        updates: watch::Receiver<Arc<X509Snapshot>>,
        written: Option<Arc<X509Snapshot>>,
    ) -> Result<(), Fatal> {
        // The first write always notifies, even when the files were already current.
        self.notifier.x509_updated();
        let result = self.follow(updates, written).await;
        if let Some(code) = self.notifier.shutdown().await {
            let _ = self.child_exit.set(code);
        }
        result
    }

    async fn follow(
        &mut self,
        mut updates: watch::Receiver<Arc<X509Snapshot>>,
        written: Option<Arc<X509Snapshot>>,
    ) -> Result<(), Fatal> {
        let mut retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        // A rotation may have arrived between the start-up write and this subscription.
        let latest = updates.borrow_and_update().clone();
        let mut pending = match written {
            Some(written) if Arc::ptr_eq(&written, &latest) => None,
            _ => Some(latest),
        };
        loop {
            if let Some(context) = pending.take() {
                if self.apply(&context).await {
                    retry.reset();
                } else {
                    pending = Some(context);
                }
            }
            let wait = pending
                .as_ref()
                .map_or(Duration::MAX, |_| retry.next_delay());
            tokio::select! {
                // Shutdown first: the source closing during the drain is not a failure.
                biased;
                () = self.shutdown.cancelled() => return Ok(()),
                code = self.notifier.stopped() => return Err(Fatal::child_exited(code)),
                changed = updates.changed() => {
                    if changed.is_err() {
                        return Err(Fatal::failure(anyhow::anyhow!(
                            "the X.509 watch stopped for good; exiting"
                        )));
                    }
                    pending = Some(updates.borrow_and_update().clone());
                }
                () = tokio::time::sleep(wait), if pending.is_some() => {}
            }
        }
    }

    /// Writes one update and notifies. Returns false when the write should be retried.
    async fn apply(&mut self, snapshot: &Arc<X509Snapshot>) -> bool {
        if is_expired(snapshot) {
            return true;
        }
        match self.writer.x509_visible(snapshot.clone()).await {
            Ok((outcome, renamed)) => {
                // The consumer is told as soon as the new files are in place; the directory
                // fsync that makes the renames durable follows.
                if outcome.changed {
                    self.notifier.x509_updated();
                }
                self.writer.finish(&outcome, renamed).await;
                true
            }
            Err(err) => {
                tracing::error!("{err:#}; keeping the previous files");
                false
            }
        }
    }
}

/// An SVID already expired is an update the files should not take: every peer would reject it
/// and the one on disk is at least as good. Wait for the next update
/// (docs/behaviour.md#x509-updates).
fn is_expired(snapshot: &X509Snapshot) -> bool {
    let svid = snapshot.svid();
    let expired = svid.not_after() <= SystemTime::now();
    if expired {
        tracing::error!(
            spiffe_id = %svid.spiffe_id(),
            serial = %svid.serial_hex(),
            "the agent sent an X.509-SVID that has already expired; keeping the previous files"
        );
    }
    expired
}

async fn log_liveness(
    updates: watch::Receiver<Arc<X509Snapshot>>,
    shutdown: CancellationToken,
) -> Result<(), Fatal> {
    // One kernel timer: an idle daemon wakes once per line (src/tick.rs).
    let mut tick = crate::tick::Ticker::new(LIVENESS_LOG_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tick.tick() => {}
        }
        let snapshot = updates.borrow().clone();
        let svid = snapshot.svid();
        let expires_in = svid
            .not_after()
            .duration_since(SystemTime::now())
            .map_or(0, |left| left.as_secs());
        tracing::info!(spiffe_id = %svid.spiffe_id(), expires_in, "alive");
    }
}
