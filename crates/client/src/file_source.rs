//! [`X509FileSource`]: an X.509-SVID and bundles read from PEM files and re-read when the files
//! change, so that a Rust service can serve mTLS with what the helper writes to a shared volume,
//! rotations included, without talking to the agent itself
//! (docs/embedding.md#svids-that-do-not-come-from-an-agent).
//!
//! Change detection is a poll of the files' metadata (device, inode, size, modification and
//! change times): three `stat` calls per interval, no extra dependency, and it sees the
//! helper's write-then-rename (a new inode) as well as an in-place rewrite. A set read while the
//! helper is between renames (a new key with the old certificate) fails the key check and is
//! not applied: the source keeps serving the last good SVID and reads again at the next tick.

use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bundle::{BundleSource, X509Bundle};
use crate::source::DEFAULT_STARTUP_TIMEOUT;
use crate::svid_source::X509SvidSource;
use crate::{Error, TrustDomain, X509BundleSet, X509Svid};

/// How often [`X509FileSource`] looks at the files unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What one successful read produced.
struct Loaded {
    svid: Arc<X509Svid>,
    bundles: Arc<X509BundleSet>,
}

/// Follows an X.509-SVID, its key and bundles in PEM files, as the helper writes them
/// (`svid_file_name`, `svid_key_file_name`, `svid_bundle_file_name`).
///
/// [`X509FileSource::builder`] names the files; [`X509FileSourceBuilder::build`] waits (up to a
/// start-up deadline) until they hold a valid SVID whose key matches, then a background task
/// re-reads them whenever their metadata changes. A set that fails a check is never applied.
/// The own bundle file holds the authorities of the SVID's trust domain; federated trust
/// domains are added with [`X509FileSourceBuilder::federated_bundle`] (the helper's combined
/// bundle file mixes all domains into one list, which cannot say which CA signs for which
/// domain, so it is read as the own domain's bundle only).
///
/// Cheap to [`Clone`]; the task stops with [`Self::shutdown`] or when the last clone is dropped.
///
/// ```no_run
/// use std::time::Duration;
/// use spiffe_workload_client::X509FileSource;
///
/// # async fn run() -> Result<(), spiffe_workload_client::Error> {
/// let dir = std::path::Path::new("/run/spiffe/certs"); // the helper's cert_dir
/// let files = X509FileSource::builder(
///     dir.join("svid.pem"),
///     dir.join("svid_key.pem"),
///     dir.join("svid_bundle.pem"),
/// )
/// .poll_interval(Duration::from_millis(500))
/// .build()
/// .await?;
/// println!("serving as {}", files.svid().spiffe_id());
/// // Hand `&files` to spiffe-workload-tls's mtls_server_config like an X509Source.
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct X509FileSource {
    inner: Arc<Inner>,
}

struct Inner {
    loaded: watch::Receiver<Arc<Loaded>>,
    svid: watch::Receiver<Arc<X509Svid>>,
    last_error: Arc<Mutex<Option<String>>>,
    shutdown: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Configures an [`X509FileSource`].
#[must_use]
#[derive(Clone, Debug)]
pub struct X509FileSourceBuilder {
    files: Files,
    poll_interval: Duration,
    startup_timeout: Duration,
}

#[derive(Clone, Debug)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    bundle: PathBuf,
    federated: Vec<(TrustDomain, PathBuf)>,
}

impl X509FileSource {
    /// Follows the certificate chain file `cert`, the PKCS#8 key file `key` and the own trust
    /// domain's bundle file `bundle`.
    pub fn builder(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        bundle: impl Into<PathBuf>,
    ) -> X509FileSourceBuilder {
        X509FileSourceBuilder {
            files: Files {
                cert: cert.into(),
                key: key.into(),
                bundle: bundle.into(),
                federated: Vec::new(),
            },
            poll_interval: DEFAULT_POLL_INTERVAL,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }

    /// The current SVID.
    #[must_use]
    pub fn svid(&self) -> Arc<X509Svid> {
        self.inner.svid.borrow().clone()
    }

    /// The current bundles (own and federated).
    #[must_use]
    pub fn bundle_set(&self) -> Arc<X509BundleSet> {
        self.inner.loaded.borrow().bundles.clone()
    }

    /// A receiver notified whenever a changed, valid set of files was applied.
    #[must_use]
    pub fn updates(&self) -> watch::Receiver<Arc<X509Svid>> {
        self.inner.svid.clone()
    }

    /// Why the files' latest change was not applied (for example a key that does not match
    /// the certificate, or a missing file), `None` once a read succeeds again.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.inner
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the source still follows the files and its SVID has not expired.
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        let running = !self.inner.shutdown.is_cancelled()
            && self
                .inner
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|task| !task.is_finished());
        running && self.inner.svid.borrow().not_after() > SystemTime::now()
    }

    /// Stops following the files (for all clones) and waits for the task to end. The last SVID
    /// stays readable.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::error!(%error, "X.509 file source task failed");
        }
    }
}

impl X509FileSourceBuilder {
    /// Also trust `trust_domain` with the authorities in the PEM file `path`, re-read with the
    /// others.
    pub fn federated_bundle(mut self, trust_domain: TrustDomain, path: impl Into<PathBuf>) -> Self {
        self.files.federated.push((trust_domain, path.into()));
        self
    }

    /// How often the files' metadata is checked (default [`DEFAULT_POLL_INTERVAL`]; at least
    /// 10 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long [`Self::build`] waits for a valid set of files (default 30 s; zero: one try).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Reads the files (retrying each poll interval until they are there and valid, or the
    /// start-up deadline passes) and starts following them. Needs a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Timeout`] with the last reason ([`Error::Io`] naming a missing file,
    /// [`Error::Invalid`] naming the check that failed) when the deadline passes.
    pub async fn build(self) -> Result<X509FileSource, Error> {
        let files = Arc::new(self.files);
        let deadline = tokio::time::Instant::now() + self.startup_timeout;
        let (stamp, loaded) = loop {
            match read_blocking(&files).await {
                Ok(ok) => break ok,
                Err(error) if tokio::time::Instant::now() >= deadline => {
                    return Err(Error::Timeout {
                        after: self.startup_timeout,
                        last_error: Some(Box::new(error)),
                    });
                }
                Err(error) => {
                    tracing::debug!(error = %error.report(), "waiting for the SVID files");
                    tokio::time::sleep(self.poll_interval).await;
                }
            }
        };
        tracing::info!(
            spiffe_id = %loaded.svid.spiffe_id(),
            serial = %loaded.svid.serial_hex(),
            cert = %files.cert.display(),
            "read the X.509-SVID from files"
        );
        let (svid_tx, svid) = watch::channel(loaded.svid.clone());
        let (loaded_tx, loaded) = watch::channel(Arc::new(loaded));
        let last_error = Arc::new(Mutex::new(None));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(follow(
            files,
            self.poll_interval,
            stamp,
            Senders {
                loaded: loaded_tx,
                svid: svid_tx,
                last_error: last_error.clone(),
            },
            shutdown.clone(),
        ));
        Ok(X509FileSource {
            inner: Arc::new(Inner {
                loaded,
                svid,
                last_error,
                shutdown,
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

struct Senders {
    loaded: watch::Sender<Arc<Loaded>>,
    svid: watch::Sender<Arc<X509Svid>>,
    last_error: Arc<Mutex<Option<String>>>,
}

async fn follow(
    files: Arc<Files>,
    interval: Duration,
    mut applied: Stamp,
    tx: Senders,
    shutdown: CancellationToken,
) {
    // The stamp of the last failed read: a set that failed is read again only once it changes,
    // except that a failure is retried on the next tick anyway (a read that raced a rename).
    let mut failed: Option<Stamp> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = stamp(&files);
        if now == applied && failed.is_none() {
            continue;
        }
        match read_blocking(&files).await {
            Ok((stamp, loaded)) => {
                applied = stamp;
                failed = None;
                *tx.last_error.lock().unwrap_or_else(PoisonError::into_inner) = None;
                if *loaded.svid == **tx.svid.borrow() {
                    tx.loaded.send_replace(Arc::new(loaded));
                    continue;
                }
                tracing::info!(
                    spiffe_id = %loaded.svid.spiffe_id(),
                    serial = %loaded.svid.serial_hex(),
                    "re-read the X.509-SVID from files"
                );
                tx.svid.send_replace(loaded.svid.clone());
                tx.loaded.send_replace(Arc::new(loaded));
            }
            Err(error) => {
                let report = error.report();
                // A mixed set mid-rotation is normal once; say so loudly only when the same
                // files fail twice.
                if failed.as_ref() == Some(&now) {
                    tracing::warn!(error = %report, "SVID files are not usable; keeping the current SVID");
                } else {
                    tracing::debug!(error = %report, "SVID files changed but are not usable yet");
                }
                failed = Some(now);
                *tx.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
            }
        }
    }
}

/// The metadata of every file, in order; a file that cannot be stat'ed counts as `None`.
type Stamp = Vec<Option<(u64, u64, u64, i64, i64, i64, i64)>>;

fn stamp(files: &Files) -> Stamp {
    files
        .paths()
        .map(|path| {
            std::fs::metadata(path).ok().map(|m| {
                (
                    m.dev(),
                    m.ino(),
                    m.len(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec(),
                )
            })
        })
        .collect()
}

impl Files {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [&self.cert, &self.key, &self.bundle]
            .into_iter()
            .chain(self.federated.iter().map(|(_, path)| path))
            .map(PathBuf::as_path)
    }
}

/// [`read_consistent`] on tokio's blocking pool: file reads and the short waits between
/// attempts stay off the runtime's workers.
async fn read_blocking(files: &Arc<Files>) -> Result<(Stamp, Loaded), Error> {
    let files = files.clone();
    tokio::task::spawn_blocking(move || read_consistent(&files))
        .await
        .unwrap_or_else(|error| {
            Err(Error::Invalid {
                what: "X.509-SVID files",
                reason: format!("the read task failed: {error}"),
            })
        })
}

/// Reads every file, and accepts the result only when no file changed while it was being read
/// (else a writer was mid-set: try again, a few times).
fn read_consistent(files: &Files) -> Result<(Stamp, Loaded), Error> {
    let mut last = None;
    for _ in 0..3 {
        let before = stamp(files);
        let loaded = read(files);
        let after = stamp(files);
        match loaded {
            Ok(loaded) if before == after => return Ok((after, loaded)),
            Ok(_) => {}
            Err(error) if before == after => return Err(error),
            Err(error) => last = Some(error),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(last.unwrap_or(Error::Invalid {
        what: "X.509-SVID files",
        reason: "they kept changing while being read".into(),
    }))
}

fn read(files: &Files) -> Result<Loaded, Error> {
    let svid = X509Svid::load(&files.cert, &files.key)?;
    let own = X509Bundle::load(svid.spiffe_id().trust_domain().clone(), &files.bundle)?;
    let mut bundles = vec![own];
    for (td, path) in &files.federated {
        bundles.push(X509Bundle::load(td.clone(), path)?);
    }
    Ok(Loaded {
        svid: Arc::new(svid),
        bundles: Arc::new(X509BundleSet::new(bundles)),
    })
}

impl BundleSource for X509FileSource {
    type Bundle = X509Bundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<X509Bundle>> {
        self.inner.loaded.borrow().bundles.bundle_for(trust_domain)
    }
}

impl X509SvidSource for X509FileSource {
    fn x509_svid(&self) -> Arc<X509Svid> {
        self.svid()
    }
}

impl fmt::Debug for X509FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509FileSource")
            .field("svid", &*self.inner.svid.borrow())
            .field("last_error", &self.last_error())
            .finish_non_exhaustive()
    }
}
