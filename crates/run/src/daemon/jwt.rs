//! The JWT tasks: the client crate's [`JwtSource`] follows the bundles and refreshes every
//! JWT-SVID by itself (docs/behaviour.md#jwt-svid-refresh); these tasks only carry what it
//! produces into the files, and report the agent connection when no X.509 source does.

use std::sync::Arc;
use std::time::Duration;

use spiffe_helper_health::HealthState;
use spiffe_workload_client::{Backoff, JwtSource, JwtSvid};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Fatal;
use crate::writer::Writer;

/// Retry schedule of a failed JWT file write.
const WRITE_RETRY_FIRST: Duration = Duration::from_secs(1);
const WRITE_RETRY_MAX: Duration = Duration::from_secs(60);

/// What the JWT tasks share.
pub struct Tasks {
    /// Bundles and JWT-SVIDs, kept fresh.
    pub source: JwtSource,
    /// Writes the files and reports to health.
    pub writer: Writer,
    /// Connection state goes here when no X.509 source reports it.
    pub health: HealthState,
    /// Stops the tasks.
    pub shutdown: CancellationToken,
}

impl Tasks {
    /// Spawns the bundle follower (when a bundle file is configured), the connection
    /// reporter (JWT-only configs) and one follower per JWT-SVID (in `jwt_svids` order).
    pub fn spawn(
        self,
        tasks: &mut JoinSet<Result<(), Fatal>>,
        bundle: bool,
        svids: Vec<watch::Receiver<Arc<JwtSvid>>>,
    ) {
        if self.writer.outputs().x509.is_none() {
            tasks.spawn(super::report_connection(
                self.source.connection(),
                self.health.clone(),
            ));
        }
        if bundle {
            let (writer, updates) = (self.writer.clone(), self.source.updates());
            tasks.spawn(follow(updates, self.shutdown.clone(), move |set| {
                let writer = writer.clone();
                async move { writer.jwt_bundle((*set).clone()).await }
            }));
        }
        for (index, updates) in svids.into_iter().enumerate() {
            let writer = self.writer.clone();
            tasks.spawn(follow(updates, self.shutdown.clone(), move |svid| {
                let writer = writer.clone();
                async move { writer.jwt_svid(index, (*svid).clone()).await }
            }));
        }
    }
}

/// Writes every new value of `updates` (the start-up already wrote the current one). A failed
/// write is retried after 1 s doubling to 60 s, until it succeeds or a newer value replaces it.
async fn follow<T, F, Fut>(
    mut updates: watch::Receiver<Arc<T>>,
    shutdown: CancellationToken,
    mut write: F,
) -> Result<(), Fatal>
where
    F: FnMut(Arc<T>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut retry = Backoff::exact(WRITE_RETRY_FIRST, WRITE_RETRY_MAX);
    updates.borrow_and_update();
    let mut pending: Option<Arc<T>> = None;
    loop {
        if let Some(value) = pending.take() {
            match write(value.clone()).await {
                Ok(()) => retry.reset(),
                Err(err) => {
                    tracing::error!("{err:#}");
                    pending = Some(value);
                }
            }
        }
        let wait = pending
            .as_ref()
            .map_or(Duration::MAX, |_| retry.next_delay());
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            changed = updates.changed() => {
                if changed.is_err() {
                    // The source stopped (shutdown): nothing more will come.
                    return Ok(());
                }
                pending = Some(updates.borrow_and_update().clone());
            }
            () = tokio::time::sleep(wait), if pending.is_some() => {}
        }
    }
}
