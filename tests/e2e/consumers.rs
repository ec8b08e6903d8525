//! Real consumers of the helper's files: docs/behaviour.md#pid-file (nginx reloading on SIGHUP through
//! `pid_file_name`; a mutual-TLS pair from two helpers selecting identities by hint).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use spiffe_helper_testkit::spire::{Entry, Spire};

use crate::inspect::{cert_info, leaf, pem_blocks, read_certs, since_minted, wait_for_rotation};
use crate::support::spire_with;
use crate::support::{
    Helper, PROPAGATION, Proc, ROTATION, WORKLOAD, base_config, epoch, free_port, run_oneshot,
    scratch, stop_cleanly, wait_until, write_file,
};

/// nginx from Debian's package; also the wrapped child of `wrapper`.
pub(super) const NGINX: &str = "/usr/sbin/nginx";

/// Fails the test with what to install when nginx is missing.
pub(super) fn require_nginx() {
    assert!(
        Path::new(NGINX).exists(),
        "{NGINX} not found: run `make deps` (installs the Debian package nginx-light)"
    );
}

/// An nginx configuration in `dir` serving TLS on 127.0.0.1:port from the helper's files in
/// `certs`, its pid in `dir/nginx.pid`. It says nothing of `daemon`: nginx daemonizes by
/// default, and `wrapper` keeps it in the foreground with `-g "daemon off;"`.
pub(super) fn nginx_conf(dir: &Path, port: u16, certs: &Path) -> PathBuf {
    let d = dir.display();
    write_file(
        dir,
        "nginx.conf",
        &format!(
            "user root;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/nginx-error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/t-body;\n  \
             proxy_temp_path {d}/t-proxy;\n  fastcgi_temp_path {d}/t-fcgi;\n  \
             uwsgi_temp_path {d}/t-uwsgi;\n  scgi_temp_path {d}/t-scgi;\n  \
             server {{\n    listen 127.0.0.1:{port} ssl;\n    \
             ssl_certificate {c}/svid.pem;\n    ssl_certificate_key {c}/svid_key.pem;\n    \
             location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n",
            c = certs.display()
        ),
    )
}

/// The pid in a pid file, when it holds one > 0.
pub(super) fn pid_in(file: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(file).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    (pid > 0).then(|| Pid::from_raw(pid))
}

/// A daemonized nginx, stopped by the pid in its pid file on drop.
struct Nginx {
    pid_file: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, port: u16, certs: &Path) -> Nginx {
        require_nginx();
        let conf = nginx_conf(dir, port, certs);
        let out = Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("nginx-error.log"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nginx did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let nginx = Nginx {
            pid_file: dir.join("nginx.pid"),
        };
        assert!(
            wait_until(Duration::from_secs(10), || nginx.pid().is_some()),
            "nginx wrote no pid file"
        );
        nginx
    }

    fn pid(&self) -> Option<Pid> {
        pid_in(&self.pid_file)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, Signal::SIGTERM);
            if !wait_until(Duration::from_secs(5), || kill(pid, None).is_err()) {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
    }
}

/// The serial of the certificate a TLS server on 127.0.0.1:port presents.
fn served_serial(port: u16) -> Option<String> {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (_, der) = pem_blocks(&text).into_iter().next()?;
    Some(cert_info(&der).serial)
}

/// nginx serves TLS from the helper's files; `pid_file_name` is nginx's pid file and
/// `renew_signal = "SIGHUP"`; after a rotation nginx serves the new certificate.
#[test]
fn nginx_serves_the_rotated_svid_after_the_pid_file_signal() {
    let spire = spire_with(&Entry::new(WORKLOAD).x509_ttl(30));
    let dir = scratch();
    let certs = dir.path().join("certs");
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}pid_file_name = \"{}\"\nrenew_signal = \"SIGHUP\"\n",
            base_config(&spire.endpoint(), &certs),
            dir.path().join("nginx.pid").display()
        ),
    );
    let mut helper = Helper::spawn(&config, &[]);
    let svid = certs.join("svid.pem");
    assert!(
        wait_until(Duration::from_secs(30), || leaf(&svid).is_some()),
        "no SVID written; log:\n{}",
        helper.log_tail()
    );
    let port = free_port();
    let nginx = Nginx::start(dir.path(), port, &certs);
    let serial = leaf(&svid).unwrap().serial;
    assert!(
        wait_until(Duration::from_secs(10), || served_serial(port).as_ref()
            == Some(&serial)),
        "nginx does not serve the helper's SVID"
    );

    let Some((new, at)) = wait_for_rotation(&svid, &serial, ROTATION) else {
        panic!(
            "no rotation within {ROTATION:?}; log:\n{}",
            helper.log_tail()
        );
    };
    let served = wait_until(Duration::from_secs(10), || {
        served_serial(port).as_ref() == Some(&new.serial)
    });
    assert!(
        served,
        "nginx still serves the old SVID 10 s after the rotation; log:\n{}",
        helper.log_tail()
    );
    eprintln!(
        "MEASURE nginx served the rotated SVID {:.2}s after the file changed ({:.2}s after minting)",
        epoch(std::time::SystemTime::now()) - epoch(at),
        since_minted(&new, at)
    );
    helper.assert_running("after the rotation");
    stop_cleanly(&mut helper);
    drop(nginx);
}

/// Two one-shot helpers pick two identities by hint; `openssl s_server -Verify` and
/// `s_client -verify_return_error` complete a mutual TLS handshake with their files, each side
/// seeing the other's SPIFFE ID. A client without a certificate is refused.
#[test]
fn two_hinted_identities_complete_a_mutual_tls_handshake() {
    const SERVER: &str = "spiffe://example.org/server";
    const CLIENT: &str = "spiffe://example.org/client";
    let spire = Spire::start();
    spire.create_entry(&Entry::new(SERVER).hint("server").entry_id("00-server"));
    spire.create_entry(&Entry::new(CLIENT).hint("client").entry_id("10-client"));
    spire.wait_for_svid(PROPAGATION);
    let dir = scratch();
    for (hint, id) in [("client", CLIENT), ("server", SERVER)] {
        let certs = dir.path().join(hint);
        let config = write_file(
            dir.path(),
            &format!("{hint}.conf"),
            &format!(
                "{}hint = \"{hint}\"\n",
                base_config(&spire.endpoint(), &certs)
            ),
        );
        let run = run_oneshot(&config, Duration::from_secs(40));
        assert_eq!(run.code(), 0, "{hint}: log:\n{}", run.helper.log_tail());
        assert_eq!(
            leaf(&certs.join("svid.pem")).unwrap().uris,
            [id],
            "{hint}: identity"
        );
    }
    let file = |side: &str, name: &str| dir.path().join(side).join(name).display().to_string();

    let port = free_port();
    let mut server = Command::new("openssl");
    server.args([
        "s_server",
        "-accept",
        &format!("127.0.0.1:{port}"),
        "-cert",
        &file("server", "svid.pem"),
        "-key",
        &file("server", "svid_key.pem"),
        "-CAfile",
        &file("server", "svid_bundle.pem"),
        "-Verify",
        "1",
        "-verify_return_error",
        "-www",
    ]);
    let _server = Proc::spawn(server);
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "openssl s_server did not start"
    );

    let with_cert = [
        "-cert",
        &file("client", "svid.pem"),
        "-key",
        &file("client", "svid_key.pem"),
    ];
    let page = s_client(port, &file("client", "svid_bundle.pem"), &with_cert);
    assert!(
        page.contains("Verify return code: 0 (ok)"),
        "the client did not verify the server"
    );
    let certs = pem_blocks(&page);
    let (_, server_seen) = certs
        .first()
        .expect("s_client printed the server certificate");
    assert_eq!(
        cert_info(server_seen).uris,
        [SERVER],
        "the client sees the server's ID"
    );
    assert!(
        page.contains("Client certificate"),
        "the server saw no client certificate"
    );
    assert!(
        page.contains(&format!("URI:{CLIENT}")),
        "the server does not see the client's SPIFFE ID"
    );
    let (_, client_seen) = certs.last().unwrap();
    assert_eq!(
        client_seen,
        &read_certs(&dir.path().join("client/svid.pem"))[0],
        "the server saw another client certificate"
    );

    let refused = s_client(port, &file("client", "svid_bundle.pem"), &[]);
    assert!(
        !refused.contains("Client certificate"),
        "s_server -Verify served a client without a certificate"
    );
}

/// `openssl s_client` to 127.0.0.1:port sending one HTTP request; its stdout (bounded 15 s).
fn s_client(port: u16, ca: &str, extra: &[&str]) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
            ca,
        ])
        .args(["-verify_return_error", "-ign_eof"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"GET / HTTP/1.0\r\n\r\n");
    drop(stdin);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
