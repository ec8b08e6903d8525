//! A Rust service that serves mTLS with the files the helper writes
//! (docs/embedding.md#svids-that-do-not-come-from-an-agent): `X509FileSource` follows the
//! helper's `svid.pem`, `svid_key.pem` and `svid_bundle.pem` while a real SPIRE rotates the SVID
//! every few seconds, and a client with its own `X509Source` keeps connecting. Every handshake
//! must succeed, and the server must present each new SVID soon after the helper wrote it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spiffe_helper_testkit::spire::Entry;
use spiffe_workload_client::{Endpoint, WorkloadApiClient, X509FileSource, X509Source};
use spiffe_workload_tls::{
    Authorizer, SpiffeAcceptor, SpiffeConnector, mtls_client_config, mtls_server_config,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::inspect::leaf;
use crate::support::{Helper, WORKLOAD, base_config, scratch, spire_with, wait_until, write_file};

/// How long the service is exercised: with a 10 s X.509-SVID, SPIRE rotates it several times.
const EXERCISE: Duration = Duration::from_secs(25);

#[test]
fn a_service_on_the_file_source_serves_mtls_across_rotations_of_the_helpers_files() {
    let spire = spire_with(&Entry::new(WORKLOAD).x509_ttl(10));
    let dir = scratch();
    let certs = dir.path().join("certs");
    let config = write_file(
        dir.path(),
        "helper.conf",
        &base_config(&spire.endpoint(), &certs),
    );
    let mut helper = Helper::spawn(&config, &[]);
    let svid = certs.join("svid.pem");
    assert!(
        wait_until(Duration::from_secs(30), || leaf(&svid).is_some()),
        "no SVID written within 30 s; log:\n{}",
        helper.log_tail()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let endpoint = spire.endpoint();
    let svid_path = svid.clone();
    let report = runtime.block_on(async move {
        let files = X509FileSource::builder(
            certs.join("svid.pem"),
            certs.join("svid_key.pem"),
            certs.join("svid_bundle.pem"),
        )
        .poll_interval(Duration::from_millis(100))
        .build()
        .await
        .expect("the file source reads the helper's files");
        let client_source = X509Source::builder()
            .client(WorkloadApiClient::new(Endpoint::parse(&endpoint).unwrap()))
            .build()
            .await
            .expect("the client's own X509Source");
        exercise(files, client_source, &svid_path).await
    });
    helper.assert_running("while the service used its files");
    crate::support::stop_cleanly(&mut helper);

    eprintln!(
        "MEASURE file source: {} handshakes, {} failed, {} file reloads, {} server SVIDs presented, longest file→presented lag {} ms",
        report.handshakes,
        report.failures.len(),
        report.reloads,
        report.presented.len(),
        report.worst_lag.as_millis()
    );
    assert!(
        report.failures.is_empty(),
        "{} of {} handshakes failed: {:?}",
        report.failures.len(),
        report.handshakes,
        report.failures.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        report.reloads >= 2 && report.presented.len() >= 3,
        "the server presented {} SVIDs after {} reloads in {EXERCISE:?}: it does not follow the files",
        report.presented.len(),
        report.reloads
    );
    assert!(
        report.presented.is_subset(&report.written),
        "the server presented an SVID the file source never loaded: {:?} vs {:?}",
        report.presented,
        report.written
    );
    // Each serial the server presented was in the helper's file at some point (sampled every
    // ~50 ms; a 10 s SVID stays there for seconds).
    assert!(
        report.presented.is_subset(&report.on_disk),
        "the server presented an SVID never seen in svid.pem: {:?} vs {:?}",
        report.presented,
        report.on_disk
    );
}

struct Report {
    handshakes: usize,
    failures: Vec<String>,
    reloads: usize,
    /// Leaf serials the client saw the server present.
    presented: BTreeSet<String>,
    /// Leaf serials the file source loaded.
    written: BTreeSet<String>,
    /// Leaf serials read straight from the helper's `svid.pem` during the run.
    on_disk: BTreeSet<String>,
    /// Longest time from a serial appearing in the file to the server presenting it.
    worst_lag: Duration,
}

fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial_as_string().replace(':', "")
}

async fn exercise(
    files: X509FileSource,
    client_source: X509Source,
    svid_path: &std::path::Path,
) -> Report {
    let td = "example.org".parse().unwrap();
    let acceptor = SpiffeAcceptor::new(
        mtls_server_config(&files, Authorizer::member_of(td)).expect("server config"),
    );
    let presented: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let record = presented.clone();
    let connector = SpiffeConnector::new(
        mtls_client_config(
            &client_source,
            Authorizer::from_fn(move |id, chain| {
                if id.to_string() != WORKLOAD {
                    return Err(format!("unexpected server {id}"));
                }
                record
                    .lock()
                    .unwrap()
                    .push((serial_of(chain[0].as_ref()), Instant::now()));
                Ok(())
            }),
        )
        .expect("client config"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok((mut stream, _peer)) = acceptor.accept(tcp).await {
                    let mut buf = [0_u8; 5];
                    if stream.read_exact(&mut buf).await.is_ok() {
                        let _ = stream.write_all(&buf).await;
                        let _ = stream.shutdown().await;
                    }
                }
            });
        }
    });

    // Which serial the helper's file holds, and since when (from the file source's updates).
    let mut updates = files.updates();
    let mut written: Vec<(String, Instant)> =
        vec![(serial_of(files.svid().leaf()), Instant::now())];
    let mut on_disk = BTreeSet::new();
    let mut reloads = 0;
    let mut handshakes = 0;
    let mut failures = Vec::new();
    let end = Instant::now() + EXERCISE;
    while Instant::now() < end {
        if updates.has_changed().unwrap_or(false) {
            let svid = updates.borrow_and_update().clone();
            written.push((serial_of(svid.leaf()), Instant::now()));
            reloads += 1;
        }
        if let Some(cert) = leaf(svid_path) {
            on_disk.insert(cert.serial.replace(':', ""));
        }
        handshakes += 1;
        let attempt = tokio::time::timeout(Duration::from_secs(5), async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            let (mut stream, _peer) = connector
                .connect(addr.ip().into(), tcp)
                .await
                .map_err(|e| e.to_string())?;
            stream
                .write_all(b"hello")
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = [0_u8; 5];
            stream
                .read_exact(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            if &buf == b"hello" {
                Ok(())
            } else {
                Err("echo differs".to_owned())
            }
        })
        .await
        .unwrap_or_else(|_| Err("handshake timed out".to_owned()));
        if let Err(error) = attempt {
            failures.push(error);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.abort();

    let presented = presented.lock().unwrap().clone();
    let mut worst_lag = Duration::ZERO;
    for (serial, written_at) in &written {
        if let Some((_, first)) = presented.iter().find(|(s, _)| s == serial) {
            worst_lag = worst_lag.max(first.saturating_duration_since(*written_at));
        }
    }
    Report {
        handshakes,
        failures,
        reloads,
        presented: presented.into_iter().map(|(s, _)| s).collect(),
        written: written.into_iter().map(|(s, _)| s).collect(),
        on_disk,
        worst_lag,
    }
}
