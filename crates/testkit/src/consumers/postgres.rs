//! A real `PostgreSQL` server (Debian's `postgresql-15`) with `ssl = on` and its certificate
//! paths pointing at files the test chooses (normally the helper's `svid.pem` and
//! `svid_key.pem`), run as the unprivileged `postgres` user (see the [module
//! docs](super) for why the helper runs as that user too).

use std::fs::{self, File, Permissions};
use std::os::unix::fs::{PermissionsExt as _, chown};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::User;

use super::{read_lossy, stop_child, wait_until};
use crate::must;

/// Where the `PostgreSQL` server binaries are: `$PG_BIN_DIR`, else Debian's
/// `/usr/lib/postgresql/15/bin`.
#[must_use]
pub fn bin_dir() -> PathBuf {
    std::env::var_os("PG_BIN_DIR").map_or_else(
        || PathBuf::from("/usr/lib/postgresql/15/bin"),
        PathBuf::from,
    )
}

/// True when `postgres` and `initdb` are installed and the `postgres` user exists.
#[must_use]
pub fn available() -> bool {
    let bin = bin_dir();
    bin.join("postgres").is_file() && bin.join("initdb").is_file() && PgUser::lookup_opt().is_some()
}

/// The unprivileged user `PostgreSQL` runs as (the Debian package's `postgres`).
#[derive(Clone, Debug)]
pub struct PgUser {
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
}

impl PgUser {
    fn lookup_opt() -> Option<PgUser> {
        let user = User::from_name("postgres").ok().flatten()?;
        Some(PgUser {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }

    /// The `postgres` user.
    ///
    /// # Panics
    /// If there is no such user (the `postgresql` package is not installed).
    #[must_use]
    pub fn lookup() -> PgUser {
        Self::lookup_opt().unwrap_or_else(|| panic!("testkit: no `postgres` user; run make deps"))
    }

    /// The SPIRE selector of a workload running as this user.
    #[must_use]
    pub fn selector(&self) -> String {
        format!("unix:uid:{}", self.uid)
    }

    /// Makes `path` owned by this user (files the user must write or own).
    ///
    /// # Panics
    /// If `chown` fails (the tests run as root).
    pub fn own(&self, path: &Path) {
        must(
            chown(path, Some(self.uid), Some(self.gid)),
            "chown to postgres",
        );
    }

    /// Lets this user traverse `dir` (adds `o+x`; nothing becomes readable or writable).
    ///
    /// # Panics
    /// If the mode cannot be read or set.
    pub fn share_dir(&self, dir: &Path) {
        let mode = must(fs::metadata(dir), "stat a dir to share")
            .permissions()
            .mode();
        must(
            fs::set_permissions(dir, Permissions::from_mode((mode & 0o7777) | 0o001)),
            "chmod o+x",
        );
    }

    /// `cmd` will run as this user (uid and gid; std drops supplementary groups).
    pub fn apply(&self, cmd: &mut Command) {
        // std drops the supplementary groups (setgroups(0)) when root sets a uid.
        cmd.uid(self.uid).gid(self.gid);
    }
}

/// A running `PostgreSQL` server on `127.0.0.1:<port>`. Stopped (SIGINT, a fast shutdown; then
/// SIGKILL) on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    user: PgUser,
    child: Option<Child>,
}

impl Postgres {
    /// [`Postgres::init`], then [`Postgres::run`].
    ///
    /// # Panics
    /// As those.
    #[must_use]
    pub fn start(cert: &Path, key: &Path) -> Postgres {
        let mut pg = Postgres::init(cert, key);
        pg.run();
        pg
    }

    /// `initdb` a fresh cluster in a temp dir owned by `postgres`, configured with `ssl = on`,
    /// `ssl_cert_file = cert` and `ssl_key_file = key`, without starting it, so that
    /// [`Postgres::pid_file`] can go into the helper's config before the helper writes the
    /// files the server needs to start.
    ///
    /// # Panics
    /// If `initdb` fails.
    #[must_use]
    pub fn init(cert: &Path, key: &Path) -> Postgres {
        let user = PgUser::lookup();
        let dir = must(
            tempfile::Builder::new().prefix("pg").tempdir_in("/tmp"),
            "creating the PostgreSQL temp dir",
        );
        user.own(dir.path());
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin_dir().join("initdb"));
        initdb
            .args([
                "--no-sync",
                "--auth=trust",
                "--username=postgres",
                "--locale=C",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .env("LC_ALL", "C")
            .current_dir(dir.path())
            .stdin(Stdio::null());
        user.apply(&mut initdb);
        let out = must(initdb.output(), "running initdb");
        assert!(
            out.status.success(),
            "testkit: initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = super::free_port();
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{sock}'\n\
             ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n\
             fsync = off\nmax_connections = 10\nshared_buffers = 16MB\n",
            sock = dir.path().display(),
            cert = cert.display(),
            key = key.display(),
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = must(fs::read_to_string(&conf_path), "reading postgresql.conf");
        text.push_str(&conf);
        must(fs::write(&conf_path, text), "writing postgresql.conf");
        Postgres {
            dir,
            port,
            user,
            child: None,
        }
    }

    /// Starts the server (as `postgres`) and waits until it serves TLS. The certificate and
    /// key must exist and suit `PostgreSQL` (key owned by `postgres` with mode 0600, or by root
    /// with 0640), in a directory `postgres` can traverse.
    ///
    /// # Panics
    /// If it does not serve TLS within 30 s; the message carries the server log.
    pub fn run(&mut self) {
        let log = self.dir.path().join("postgres.log");
        let out = must(File::create(&log), "creating the PostgreSQL log");
        self.user.own(&log);
        let mut cmd = Command::new(bin_dir().join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .env("LC_ALL", "C")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(must(out.try_clone(), "cloning the log handle"))
            .stderr(out)
            .process_group(0);
        self.user.apply(&mut cmd);
        self.child = Some(must(cmd.spawn(), "starting postgres"));
        let port = self.port;
        let up = wait_until(Duration::from_secs(30), || {
            self.is_ready() && super::probe::served_serial(port, Some("postgres")).is_some()
        });
        if !up {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "testkit: `PostgreSQL` did not serve TLS within 30 s (exit: {exited:?}); log:\n{}",
                self.log()
            );
        }
    }

    /// The TCP port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `$PGDATA/postmaster.pid`: the pid on its first line, then seven more lines.
    #[must_use]
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("data/postmaster.pid")
    }

    /// The postmaster's pid (0 before [`Postgres::run`]).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// True once `postmaster.pid` says `ready` (its eighth line).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        fs::read_to_string(self.pid_file())
            .is_ok_and(|t| t.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
    }

    /// The serial `PostgreSQL` presents now (`openssl s_client -starttls postgres`).
    #[must_use]
    pub fn served_serial(&self) -> Option<String> {
        super::probe::served_serial(self.port, Some("postgres"))
    }

    /// The server log so far.
    #[must_use]
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("postgres.log"))
    }

    /// Sends `signal` to the postmaster (SIGHUP reloads the configuration and the TLS files).
    ///
    /// # Panics
    /// If the signal cannot be sent.
    pub fn signal(&self, signal: Signal) {
        let pid = must(i32::try_from(self.pid()), "postmaster pid");
        must(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal),
            "signalling postgres",
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            stop_child(child, Signal::SIGINT, Duration::from_secs(10));
        }
    }
}
