//! Retry waits that end early when the agent comes back (docs/behaviour.md#retries).
//!
//! An agent that starts or restarts binds its Unix socket anew. While a retry waits out its
//! backoff delay (up to 30 s), the socket path is looked at every [`POLL`]; a socket file that
//! was not there when the attempt failed ends the wait, so the next attempt reaches the new
//! agent within a fraction of a second instead of at the end of the delay.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;
use std::time::Duration;

use crate::{Endpoint, WorkloadApiClient};

/// How often a retry wait looks at the agent's socket file.
const POLL: Duration = Duration::from_millis(250);

/// Which file is at the agent's socket path at one moment: taken when an attempt fails, and
/// compared against while the retry waits ([`WorkloadApiClient::wait_to_retry`]).
///
/// A socket recreated by a restarted agent differs in inode or in change time, even when the
/// file system hands out the same inode number again. For a TCP endpoint there is nothing to
/// look at and every mark is alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentSocket(Option<SocketFile>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SocketFile {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
}

impl SocketFile {
    /// The socket at `path`; `None` when there is none (or something else is there).
    fn at(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        meta.file_type().is_socket().then(|| Self {
            dev: meta.dev(),
            ino: meta.ino(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

impl WorkloadApiClient {
    /// What is at the agent's socket path now; take it when an attempt fails, before
    /// [`Self::wait_to_retry`].
    #[must_use]
    pub fn agent_socket(&self) -> AgentSocket {
        match self.endpoint() {
            Endpoint::Unix(path) => AgentSocket(SocketFile::at(path)),
            Endpoint::Tcp(_) => AgentSocket(None),
        }
    }

    /// Waits `delay` before retrying a failed attempt, or less: for a Unix socket endpoint the
    /// wait ends as soon as a socket other than `failed_with` is at the path (an agent that
    /// started or restarted since). Returns `true` when it ended early; a caller with a
    /// [`Backoff`](crate::Backoff) should then reset it, as it faces a new agent.
    ///
    /// One `stat` of the socket path every 250 ms, only while waiting.
    pub async fn wait_to_retry(&self, delay: Duration, failed_with: AgentSocket) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => false,
            () = self.socket_replaced(failed_with) => {
                tracing::debug!(endpoint = %self.endpoint(), "the agent's socket is back; retrying now");
                true
            }
        }
    }

    async fn socket_replaced(&self, before: AgentSocket) {
        let Endpoint::Unix(path) = self.endpoint() else {
            return std::future::pending().await;
        };
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            poll.tick().await;
            if let Some(now) = SocketFile::at(path)
                && before.0 != Some(now)
            {
                return;
            }
        }
    }
}
