//! The JWT tasks: follow the JWT bundles into their file, and keep each JWT-SVID file fresh
//! (docs/behaviour.md, "JWT-SVIDs").

use std::time::{Duration, SystemTime};

use spiffe_helper_health::HealthState;
use spiffe_workload_client::{Backoff, JwtSvid, WatchEvent, WorkloadApiClient};
use tokio::task::JoinSet;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;

use super::Fatal;
use crate::startup::fetch_jwt;
use crate::writer::Writer;

/// First retry after a failed JWT-SVID refresh, doubling up to [`JWT_RETRY_MAX`].
const JWT_RETRY_FIRST: Duration = Duration::from_secs(1);
const JWT_RETRY_MAX: Duration = Duration::from_secs(60);

/// What the JWT tasks share.
pub struct Tasks {
    /// The agent.
    pub client: WorkloadApiClient,
    /// Writes the files and reports to health.
    pub writer: Writer,
    /// Connection state goes here when no X.509 source reports it.
    pub health: HealthState,
    /// Stops the tasks.
    pub shutdown: CancellationToken,
}

impl Tasks {
    /// Spawns the bundle watch (when a bundle file is configured) and one refresh schedule
    /// per JWT-SVID fetched at start-up (in `jwt_svids` order).
    pub fn spawn(self, tasks: &mut JoinSet<Result<(), Fatal>>, bundle: bool, svids: Vec<JwtSvid>) {
        if bundle {
            tasks.spawn(watch_bundles(
                self.client.clone(),
                self.writer.clone(),
                self.health.clone(),
                self.shutdown.clone(),
            ));
        }
        for (index, svid) in svids.into_iter().enumerate() {
            let refresh = Refresh {
                client: self.client.clone(),
                writer: self.writer.clone(),
                index,
                shutdown: self.shutdown.clone(),
            };
            tasks.spawn(refresh.run(svid.expiry()));
        }
    }
}

async fn watch_bundles(
    client: WorkloadApiClient,
    writer: Writer,
    health: HealthState,
    shutdown: CancellationToken,
) -> Result<(), Fatal> {
    // With X.509 on, the X.509 source reports the agent connection; otherwise this watch does.
    let reports_connection = writer.outputs().x509.is_none();
    let stream = client.watch_jwt_bundles_retrying(Backoff::default(), shutdown);
    tokio::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(WatchEvent::Update(bundles)) => {
                if reports_connection {
                    health.agent_connected(true);
                }
                if let Err(err) = writer.jwt_bundle(bundles).await {
                    tracing::error!("{err:#}");
                }
            }
            Ok(WatchEvent::Disconnected { error, retry_in }) => {
                if reports_connection {
                    health.agent_connected(false);
                }
                tracing::warn!(error = %error, ?retry_in, "JWT bundle watch interrupted; reconnecting");
            }
            Ok(_) => {}
            Err(err) => {
                tracing::error!(error = %err, "JWT bundle watch stopped");
                break;
            }
        }
    }
    Ok(())
}

/// One JWT-SVID file's refresh schedule.
struct Refresh {
    client: WorkloadApiClient,
    writer: Writer,
    index: usize,
    shutdown: CancellationToken,
}

impl Refresh {
    /// Refreshes at half the remaining lifetime + 1 s (at least 1 s); on failure retries
    /// after 1 s doubling to 60 s.
    async fn run(self, mut expiry: SystemTime) -> Result<(), Fatal> {
        let mut retry = Backoff::exact(JWT_RETRY_FIRST, JWT_RETRY_MAX);
        let mut next = refresh_after(expiry, SystemTime::now());
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(next) => {}
            }
            match self.once().await {
                Ok(svid_expiry) => {
                    expiry = svid_expiry;
                    retry.reset();
                    next = refresh_after(expiry, SystemTime::now());
                }
                Err(err) => {
                    next = retry.next_delay();
                    let audience = self.audience();
                    tracing::warn!(audience, retry_in = ?next, "refreshing JWT-SVID: {err:#}");
                }
            }
        }
    }

    async fn once(&self) -> anyhow::Result<SystemTime> {
        let outputs = self.writer.outputs();
        let Some(entry) = outputs.jwt_svids.get(self.index) else {
            anyhow::bail!("no jwt_svids entry {}", self.index);
        };
        let svid = fetch_jwt(&self.client, entry, outputs.hint.as_deref()).await?;
        let expiry = svid.expiry();
        self.writer.jwt_svid(self.index, svid).await?;
        Ok(expiry)
    }

    fn audience(&self) -> &str {
        self.writer
            .outputs()
            .jwt_svids
            .get(self.index)
            .map_or("", |entry| entry.audience.as_str())
    }
}

fn refresh_after(expiry: SystemTime, now: SystemTime) -> Duration {
    let left = expiry.duration_since(now).unwrap_or_default();
    (left / 2 + Duration::from_secs(1)).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::refresh_after;
    use std::time::{Duration, SystemTime};

    #[test]
    fn jwt_refresh_is_half_the_remaining_lifetime_plus_one_second() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let at = |secs| refresh_after(now + Duration::from_secs(secs), now);
        assert_eq!(at(300), Duration::from_secs(151));
        assert_eq!(at(0), Duration::from_secs(1));
        assert_eq!(
            refresh_after(now - Duration::from_secs(5), now),
            Duration::from_secs(1)
        );
    }
}
