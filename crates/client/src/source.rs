//! [`X509Source`]: the latest X.509 context, always at hand, kept fresh in the background.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::{Backoff, Error, WatchEvent, WorkloadApiClient, X509Context};

/// Whether the background watch currently has a working stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// The last thing received was a valid message.
    Connected,
    /// The stream broke; the source is reconnecting. The last context stays current.
    Disconnected {
        /// The error that broke it (display form).
        last_error: String,
    },
}

/// Keeps the caller's current X.509 context in memory, like rust-spiffe's `X509Source`.
///
/// [`X509Source::start`] waits for the first valid context; a background task then follows the
/// agent's updates (reconnecting with backoff), and callers read [`X509Source::current`] or
/// await changes through [`X509Source::subscribe`]. Identical consecutive contexts (for example
/// the snapshot re-sent after a reconnect) do not notify subscribers.
///
/// Dropping the source stops the background task too; [`X509Source::shutdown`] also waits for it.
#[derive(Debug)]
pub struct X509Source {
    context: watch::Receiver<Arc<X509Context>>,
    connection: watch::Receiver<ConnectionState>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl X509Source {
    /// Starts watching and waits for the first valid context.
    ///
    /// Retryable errors (agent not up yet, `PermissionDenied` while the entry propagates,
    /// invalid messages) are retried with the default [`Backoff`] until `startup_timeout`.
    ///
    /// # Errors
    /// A non-retryable error (for example `InvalidArgument`) at once; [`Error::Timeout`] with the
    /// last error seen when the deadline passes.
    pub async fn start(
        client: WorkloadApiClient,
        startup_timeout: Duration,
    ) -> Result<Self, Error> {
        Self::start_with_backoff(client, startup_timeout, Backoff::default()).await
    }

    /// [`Self::start`] with a custom reconnect backoff.
    ///
    /// # Errors
    /// As [`Self::start`].
    pub async fn start_with_backoff(
        client: WorkloadApiClient,
        startup_timeout: Duration,
        backoff: Backoff,
    ) -> Result<Self, Error> {
        let shutdown = CancellationToken::new();
        let mut events = Box::pin(client.watch_x509_context_retrying(backoff, shutdown.clone()));
        let deadline = tokio::time::Instant::now() + startup_timeout;
        let mut last_error = None;
        let first = loop {
            let event = match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(Some(event)) => event,
                Ok(None) => return Err(Error::Closed),
                Err(_) => {
                    shutdown.cancel();
                    return Err(Error::Timeout {
                        after: startup_timeout,
                        last_error: last_error.map(Box::new),
                    });
                }
            };
            match event? {
                WatchEvent::Update(context) => break context,
                WatchEvent::Disconnected { error, .. } | WatchEvent::Invalid(error) => {
                    last_error = Some(error);
                }
            }
        };
        tracing::info!(spiffe_id = %first.default_svid().spiffe_id(), "received first X.509 context");
        let (context_tx, context) = watch::channel(Arc::new(first));
        let (connection_tx, connection) = watch::channel(ConnectionState::Connected);
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Ok(WatchEvent::Update(update)) => {
                        context_tx.send_if_modified(|current| {
                            let changed = **current != update;
                            if changed {
                                *current = Arc::new(update);
                            }
                            changed
                        });
                        connection_tx.send_replace(ConnectionState::Connected);
                    }
                    Ok(WatchEvent::Disconnected { error, .. }) | Err(error) => {
                        connection_tx.send_replace(ConnectionState::Disconnected {
                            last_error: error.to_string(),
                        });
                    }
                    Ok(WatchEvent::Invalid(_)) => {}
                }
            }
        });
        Ok(Self {
            context,
            connection,
            shutdown,
            task: Some(task),
        })
    }

    /// The latest valid context.
    #[must_use]
    pub fn current(&self) -> Arc<X509Context> {
        self.context.borrow().clone()
    }

    /// A receiver that is notified whenever the context changes.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Arc<X509Context>> {
        self.context.clone()
    }

    /// A receiver for the connection state.
    #[must_use]
    pub fn connection(&self) -> watch::Receiver<ConnectionState> {
        self.connection.clone()
    }

    /// Stops the background task and waits for it to finish.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::error!(%error, "X.509 source task failed");
        }
    }
}

impl Drop for X509Source {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
