//! Interop with go-spiffe v2 (`spiffetls` `MTLSServerWithSource` / `MTLSClientWithSource`,
//! `tlsconfig.AuthorizeID` / `AuthorizeMemberOf`) on a real SPIRE 1.13.3: the Rust examples
//! `mtls_server` / `mtls_client` against the Go peer of `tests/interop/go`, both ways, with
//! rejections by each side's authorizer, a federated peer accepted only once its bundle is
//! there, and a rotation served to the next handshake by a server that keeps running.
//!
//! The examples are built by `cargo test` (it compiles a package's examples); the Go peer by
//! `tests/interop/build-go-peer.sh` into a cache outside the repository.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use spiffe_helper_testkit::spire::{Entry, Spire, SpireOptions};

const TD: &str = "example.org";
const SERVER: &str = "spiffe://example.org/server";
const CLIENT: &str = "spiffe://example.org/client";
const INTRUDER: &str = "spiffe://example.org/intruder";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The go-spiffe peer, built once per test process (under a lock shared with other builds).
fn go_peer() -> PathBuf {
    static PEER: OnceLock<PathBuf> = OnceLock::new();
    PEER.get_or_init(|| {
        let script = repo_root().join("tests/interop/build-go-peer.sh");
        let out = Command::new("flock")
            .arg("/tmp/shr-go-peer.lock")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("running build-go-peer.sh");
        assert!(out.status.success(), "building the Go interop peer failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

/// `target/<profile>/examples/<name>`, next to this test's own `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p spiffe-workload-tls --examples`) first",
        path.display()
    );
    path
}

#[derive(Clone, Copy, Debug)]
enum Side {
    Rust,
    Go,
}

impl Side {
    fn command(self, role: &str, spire: &Spire) -> Command {
        let mut cmd = match self {
            Side::Rust => Command::new(example(&format!("mtls_{role}"))),
            Side::Go => {
                let mut cmd = Command::new(go_peer());
                cmd.arg(role);
                cmd
            }
        };
        cmd.env("SPIFFE_ENDPOINT_SOCKET", spire.endpoint())
            .env("RUST_LOG", "off")
            .stdin(Stdio::null());
        cmd
    }

    fn name(self) -> &'static str {
        match self {
            Side::Rust => "rust",
            Side::Go => "go",
        }
    }
}

/// A running server; killed (by its pid) on drop.
struct Server {
    child: Child,
    addr: String,
    stderr: Option<ChildStderr>,
}

impl Server {
    fn start(side: Side, spire: &Spire, args: &[&str]) -> Server {
        Self::spawn(side.command("server", spire), args)
    }

    fn spawn(mut cmd: Command, args: &[&str]) -> Server {
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("server did not start: {line:?} {err}");
        };
        let addr = addr.to_owned();
        let stderr = child.stderr.take();
        Server {
            child,
            addr,
            stderr,
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Stops the server and returns what it wrote to stderr.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        err
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn serial(&self) -> &str {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix("serial="))
            .expect("serial= line")
    }
}

fn client(side: Side, spire: &Spire, server: &Server, args: &[&str]) -> Outcome {
    let out = side
        .command("client", spire)
        .args(["--connect", &server.addr, "--send", "ping"])
        .args(args)
        .output()
        .unwrap();
    Outcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn spire_with(entries: &[Entry]) -> Spire {
    let spire = Spire::start();
    for entry in entries {
        spire.create_entry(entry);
    }
    spire.wait_for_svid(Duration::from_secs(60));
    spire
}

fn entries() -> Vec<Entry> {
    vec![
        Entry::new(SERVER).entry_id("00-server").hint("server"),
        Entry::new(CLIENT).entry_id("10-client").hint("client"),
        Entry::new(INTRUDER)
            .entry_id("20-intruder")
            .hint("intruder"),
    ]
}

/// Rust server ↔ Go client and Go server ↔ Rust client, then each side refusing a peer its
/// authorizer does not allow, as server and as client.
#[test]
fn rust_and_go_spiffe_interoperate_and_enforce_authorizers() {
    let (_go, _rust) = (go_peer(), example("mtls_server"));
    let spire = spire_with(&entries());
    for (server_side, client_side) in [(Side::Rust, Side::Go), (Side::Go, Side::Rust)] {
        let row = format!(
            "{} server / {} client",
            server_side.name(),
            client_side.name()
        );
        let server = Server::start(
            server_side,
            &spire,
            &["--hint", "server", "--allow", CLIENT],
        );

        let ok = client(
            client_side,
            &spire,
            &server,
            &["--hint", "client", "--expect", SERVER],
        );
        assert!(ok.ok, "{row}: {} {}", ok.stdout, ok.stderr);
        assert_eq!(
            ok.stdout.lines().next().unwrap(),
            format!("hello {CLIENT} from {}", server_side.name()),
            "{row}"
        );
        assert!(!ok.serial().is_empty());

        // The server's authorizer refuses the intruder.
        let refused = client(
            client_side,
            &spire,
            &server,
            &["--hint", "intruder", "--expect", SERVER],
        );
        assert!(!refused.ok, "{row}: intruder accepted: {}", refused.stdout);
        assert_eq!(
            refused.stderr.trim().lines().count(),
            1,
            "{row}: one line: {}",
            refused.stderr
        );

        // The client's authorizer refuses a server that is not the one it expects.
        let wrong = client(
            client_side,
            &spire,
            &server,
            &[
                "--hint",
                "client",
                "--expect",
                "spiffe://example.org/someone-else",
            ],
        );
        assert!(
            !wrong.ok,
            "{row}: unexpected server accepted: {}",
            wrong.stdout
        );
        assert_eq!(
            wrong.stderr.trim().lines().count(),
            1,
            "{row}: {}",
            wrong.stderr
        );
        if matches!(client_side, Side::Rust) {
            assert!(
                wrong.stderr.contains("not authorized"),
                "{row}: {}",
                wrong.stderr
            );
        }
        // Member-of: the whole trust domain is fine.
        let td = client(
            client_side,
            &spire,
            &server,
            &["--hint", "client", "--expect-td", TD],
        );
        assert!(td.ok, "{row}: {}", td.stderr);

        let log = server.stop();
        if matches!(server_side, Side::Rust) {
            assert!(
                log.contains(&format!("peer {INTRUDER} is not authorized")),
                "{row}: server log: {log}"
            );
        }
    }
}

/// The tonic pair: a gRPC call over SPIFFE mTLS, the handler seeing the caller's ID, and the
/// server's authorizer refusing an intruder before tonic sees the connection.
#[test]
fn grpc_examples_authenticate_and_authorize_by_spiffe_id() {
    let spire = spire_with(&entries());
    let mut cmd = Command::new(example("grpc_server"));
    cmd.env("SPIFFE_ENDPOINT_SOCKET", spire.endpoint());
    let server = Server::spawn(cmd, &["--hint", "server", "--allow", CLIENT]);
    let call = |hint: &str| {
        Command::new(example("grpc_client"))
            .args([
                "--connect",
                &server.addr,
                "--expect",
                SERVER,
                "--hint",
                hint,
            ])
            .env("SPIFFE_ENDPOINT_SOCKET", spire.endpoint())
            .output()
            .unwrap()
    };
    let ok = call("client");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        format!("hello {CLIENT} from rust grpc (ping)")
    );
    let refused = call("intruder");
    assert_eq!(refused.status.code(), Some(1));
    let log = server.stop();
    assert!(
        log.contains(&format!("peer {INTRUDER} is not authorized")),
        "{log}"
    );
}

/// A peer of another trust domain (its own SPIRE) is refused while our agent has no bundle for
/// it, and accepted by the same running server once the bundle is federated: a Rust server
/// with a Go client of the other trust domain, and a Go server with a Rust client.
#[test]
fn federated_go_peer_is_accepted_only_with_its_bundle() {
    let (_go, _rust) = (go_peer(), example("mtls_server"));
    let ours = spire_with(&[Entry::new(SERVER).entry_id("00-server").hint("server")]);
    let theirs = Spire::start_with(SpireOptions {
        trust_domain: "other.org".to_owned(),
        ..SpireOptions::default()
    });
    // They trust us from the start, so what is tested is our side.
    theirs.set_federated_bundle("spiffe://example.org", &ours.bundle_pem());
    theirs.create_entry(
        &Entry::new("spiffe://other.org/client").federates_with("spiffe://example.org"),
    );
    theirs.wait_for_svid(Duration::from_secs(60));

    // One server of each kind on our side, both running across the federation change.
    let mut servers: Vec<(Side, Server)> = [Side::Rust, Side::Go]
        .into_iter()
        .map(|side| {
            (
                side,
                Server::start(
                    side,
                    &ours,
                    &["--hint", "server", "--allow-td", "other.org"],
                ),
            )
        })
        .collect();
    let foreign = |side: Side| match side {
        Side::Rust => Side::Go,
        Side::Go => Side::Rust,
    };
    for (side, server) in &servers {
        let refused = client(foreign(*side), &theirs, server, &["--expect", SERVER]);
        assert!(
            !refused.ok,
            "{side:?} server accepted a peer without its bundle: {}",
            refused.stdout
        );
    }

    ours.set_federated_bundle("spiffe://other.org", &theirs.bundle_pem());
    ours.create_entry(
        &Entry::new("spiffe://example.org/federated")
            .entry_id("50-federated")
            .hint("federated")
            .federates_with("spiffe://other.org"),
    );
    for (side, server) in &mut servers {
        let deadline = Instant::now() + Duration::from_secs(60);
        let accepted = loop {
            let attempt = client(foreign(*side), &theirs, server, &["--expect", SERVER]);
            if attempt.ok || Instant::now() > deadline {
                break attempt;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        assert!(
            accepted.ok,
            "{side:?} server still refuses the federated peer: {}",
            accepted.stderr
        );
        assert_eq!(
            accepted.stdout.lines().next().unwrap(),
            format!("hello spiffe://other.org/client from {}", side.name())
        );
        assert!(server.is_running(), "the {side:?} server was not restarted");
    }
    let (_, rust_server) = servers.remove(0);
    let log = rust_server.stop();
    assert!(
        log.contains("no X.509 bundle for trust domain other.org"),
        "{log}"
    );
}

/// With a 30 s X.509-SVID the agent rotates the server's SVID after ~15-20 s: the running Rust
/// server presents the new one to the next Go handshake, and the Rust client accepts the
/// rotated SVID of a running Go server.
#[test]
fn rotation_is_served_to_the_next_handshake_without_restart() {
    let (_go, _rust) = (go_peer(), example("mtls_server"));
    let spire = spire_with(&[
        Entry::new(SERVER)
            .entry_id("00-server")
            .hint("server")
            .x509_ttl(30),
        Entry::new(CLIENT).entry_id("10-client").hint("client"),
    ]);
    for (server_side, client_side) in [(Side::Rust, Side::Go), (Side::Go, Side::Rust)] {
        let mut server = Server::start(server_side, &spire, &["--hint", "server"]);
        let args = ["--hint", "client", "--expect", SERVER];
        let first = client(client_side, &spire, &server, &args);
        assert!(first.ok, "{}", first.stderr);
        let first_serial = first.serial().to_owned();
        let deadline = Instant::now() + Duration::from_secs(75);
        let rotated = loop {
            std::thread::sleep(Duration::from_secs(2));
            let next = client(client_side, &spire, &server, &args);
            assert!(next.ok, "handshake failed during rotation: {}", next.stderr);
            if next.serial() != first_serial {
                break next.serial().to_owned();
            }
            assert!(Instant::now() < deadline, "no rotation within 75 s");
        };
        assert_ne!(rotated, first_serial);
        assert!(server.is_running(), "{server_side:?} server restarted");
        server.stop();
    }
}
