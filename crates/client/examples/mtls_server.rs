//! A server that always presents its current SPIFFE identity, reloaded on every rotation.
//!
//! This is the shape of an mTLS server built on [`X509Source`]: the source keeps the latest
//! X.509-SVID in memory, a rotation loop rebuilds the server's identity from it, and every new
//! connection uses whatever identity is current at accept time, so the process never restarts
//! and never reads files. The TLS handshake itself needs a TLS library (rustls), which this
//! workspace does not depend on; the place where its `ServerConfig` would be built is marked
//! below, and `docs/embedding.md` shows the rustls code. Instead of a handshake, each
//! connection gets one line describing the identity it would have been served with.
//!
//! ```text
//! make env-up     # a local SPIRE agent at /tmp/shr-env/agent.sock
//! SPIFFE_ENDPOINT_SOCKET=unix:///tmp/shr-env/agent.sock \
//!   cargo run -p spiffe-workload-client --example mtls_server -- 127.0.0.1:8443
//! exec 3<>/dev/tcp/127.0.0.1/8443; cat <&3   # in another shell, before and after a rotation
//! ```
#![expect(
    clippy::print_stdout,
    reason = "an example reports what it does on stdout"
)]

use std::error::Error;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use spiffe_workload_client::{WorkloadApiClient, X509Context, X509Source};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;

/// What a TLS server needs from the SVID: in a real server, an `Arc<rustls::ServerConfig>`.
struct ServerIdentity {
    spiffe_id: String,
    serial: String,
    not_after: SystemTime,
    /// DER certificates, leaf first: the chain the server presents.
    chain_len: usize,
    /// DER roots of the trust domain: what client certificates are verified against.
    trusted_roots: usize,
}

impl ServerIdentity {
    /// Builds the identity from the SVID the agent marks as default (the first one).
    fn from_context(context: &X509Context) -> Self {
        let svid = context.default_svid();
        // With rustls, this is where the server configuration is rebuilt:
        //   certs = svid.cert_chain() → Vec<CertificateDer>
        //   key   = svid.private_key().der() → PrivatePkcs8KeyDer
        //   roots = svid.bundle() → RootCertStore → WebPkiClientVerifier
        //   ServerConfig::builder().with_client_cert_verifier(..).with_single_cert(certs, key)
        Self {
            spiffe_id: svid.spiffe_id().to_string(),
            serial: svid.serial_hex(),
            not_after: svid.not_after(),
            chain_len: svid.cert_chain().len(),
            trusted_roots: svid.bundle().len(),
        }
    }

    fn describe(&self) -> String {
        let expires_in = self
            .not_after
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .as_secs();
        format!(
            "{} serial {} (expires in {expires_in}s, chain of {}, {} trusted root(s))",
            self.spiffe_id, self.serial, self.chain_len, self.trusted_roots
        )
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8443".to_owned());

    // SPIFFE_ENDPOINT_SOCKET names the agent, as for every SPIFFE library.
    let client = WorkloadApiClient::from_env()?;
    // Waits for the first SVID, retrying while the agent starts or the entry propagates.
    let source = X509Source::start(client, Duration::from_secs(30)).await?;

    let identity = Arc::new(RwLock::new(ServerIdentity::from_context(&source.current())));
    println!("serving as {}", read(&identity).describe());

    // The rotation loop: rebuild the identity whenever the agent sends a new SVID or bundle.
    let mut updates = source.subscribe();
    let rotations = {
        let identity = Arc::clone(&identity);
        tokio::spawn(async move {
            while updates.changed().await.is_ok() {
                let next = ServerIdentity::from_context(&updates.borrow_and_update());
                println!("rotated: now serving as {}", next.describe());
                match identity.write() {
                    Ok(mut current) => *current = next,
                    Err(poisoned) => *poisoned.into_inner() = next,
                }
            }
        })
    };

    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (mut stream, peer) = accepted?;
                // A TLS server would hand `stream` to the acceptor built from the current config.
                let line = format!("would handshake as {}\n", read(&identity).describe());
                println!("connection from {peer}");
                tokio::spawn(async move {
                    // The peer may hang up first; nothing to do about it here.
                    let _ = stream.write_all(line.as_bytes()).await;
                });
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }

    // Stopping the source closes the update channel, which ends the rotation loop.
    source.shutdown().await;
    rotations.await?;
    Ok(())
}

/// Reads the current identity; a panicked writer cannot leave it half-updated (the assignment
/// is a single move), so a poisoned lock is still safe to read.
fn read(identity: &RwLock<ServerIdentity>) -> std::sync::RwLockReadGuard<'_, ServerIdentity> {
    identity
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
