//! The SPIRE harness against real SPIRE v1.13.3 processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
use std::time::{Duration, Instant};

use spiffe_helper_testkit::spire::{Entry, Spire, SpireOptions};
use x509_parser::prelude::*;

const WAIT: Duration = Duration::from_secs(60);

/// Parses every certificate of a PEM file.
fn pem_certs(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    Pem::iter_from_buffer(&data)
        .map(|p| p.unwrap().contents)
        .collect()
}

fn uri_sans(der: &[u8]) -> Vec<String> {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some((*u).to_owned()),
            _ => None,
        })
        .collect()
}

/// Pids of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn spire_serves_registered_id_survives_agent_restart_and_cleans_up() {
    let t0 = Instant::now();
    let mut spire = Spire::start();
    eprintln!("Spire::start() took {:?}", t0.elapsed());
    let dir = spire.dir().to_string_lossy().into_owned();
    assert!(spire.socket_path().as_os_str().len() < 108);
    assert!(spire.endpoint().starts_with("unix:///tmp/"));

    let id = "spiffe://example.org/workload";
    let entry_id = spire.create_entry(&Entry::new(id).x509_ttl(120).hint("main"));
    assert!(!entry_id.is_empty());
    let t1 = Instant::now();
    spire.wait_for_svid(WAIT);
    eprintln!("entry propagation took {:?}", t1.elapsed());

    let out = spire.dir().join("fetch1");
    std::fs::create_dir(&out).unwrap();
    spire.cli_fetch_x509(&out);
    let chain = pem_certs(&out.join("svid.0.pem"));
    assert_eq!(uri_sans(&chain[0]), [id]);
    assert!(spire.bundle_pem().contains("BEGIN CERTIFICATE"));

    let old_pid = spire.agent_pid().unwrap();
    spire.kill_agent();
    assert_eq!(spire.agent_pid(), None);
    let t2 = Instant::now();
    spire.start_agent();
    spire.wait_for_svid(WAIT);
    eprintln!("agent restart to SVID took {:?}", t2.elapsed());
    assert_ne!(spire.agent_pid(), Some(old_pid));

    let server_pid = spire.server_pid().unwrap();
    let agent_pid = spire.agent_pid().unwrap();
    assert!(processes_mentioning(&dir).contains(&server_pid));
    drop(spire);
    assert!(
        processes_mentioning(&dir).is_empty(),
        "spire processes left behind (agent {agent_pid}, server {server_pid})"
    );
    assert!(!Path::new(&dir).exists(), "scratch dir not removed");
}

#[test]
fn upstream_authority_puts_an_intermediate_in_the_chain() {
    let spire = Spire::start_with(SpireOptions {
        upstream_authority: true,
        ..SpireOptions::default()
    });
    spire.create_entry(&Entry::new("spiffe://example.org/up"));
    spire.wait_for_svid(WAIT);
    let out = spire.dir().join("fetch");
    std::fs::create_dir(&out).unwrap();
    spire.cli_fetch_x509(&out);
    let chain = pem_certs(&out.join("svid.0.pem"));
    assert_eq!(chain.len(), 2, "leaf + SPIRE intermediate expected");
    let (_, inter) = X509Certificate::from_der(&chain[1]).unwrap();
    assert!(inter.is_ca());
    let root_pem = spire.upstream_ca_pem().unwrap();
    let bundle = pem_certs(&out.join("bundle.0.pem"));
    let root = Pem::iter_from_buffer(root_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .contents;
    assert_eq!(bundle, [root], "the bundle should be the upstream root");
    assert!(
        spire
            .bundle_pem()
            .contains(root_pem.lines().nth(1).unwrap())
    );
}

/// After a server restart, deleting the only entry makes the agent answer the workload with
/// SPIRE's "no identity issued" `PermissionDenied` (what the helper treats as "not registered
/// yet"), not with any other failure.
#[test]
fn deleted_entry_stops_issuing_and_server_restarts() {
    let mut spire = Spire::start();
    let id = spire.create_entry(&Entry::new("spiffe://example.org/gone"));
    spire.wait_for_svid(WAIT);
    spire.stop_server();
    spire.start_server();
    spire.delete_entry(&id);
    let sock = spire.socket_path().to_string_lossy().into_owned();
    let bin = spire.bin_dir().join("spire-agent");
    let deadline = Instant::now() + WAIT;
    let denied = loop {
        let out = std::process::Command::new(&bin)
            .args([
                "api",
                "fetch",
                "x509",
                "-socketPath",
                &sock,
                "-timeout",
                "2s",
            ])
            .output()
            .unwrap();
        if !out.status.success() {
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                said.contains("PermissionDenied") && said.contains("no identity issued"),
                "the fetch failed, but not because the entry is gone ({}): {said}",
                out.status
            );
            break said;
        }
        assert!(Instant::now() < deadline, "SVID still served after delete");
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("after delete: {}", denied.trim());
}

#[test]
fn a_panicking_test_still_kills_spire() {
    let dir = std::sync::Mutex::new(String::new());
    let result = std::panic::catch_unwind(|| {
        let spire = Spire::start();
        *dir.lock().unwrap() = spire.dir().to_string_lossy().into_owned();
        assert!(!processes_mentioning(&dir.lock().unwrap()).is_empty());
        panic!("simulated test failure");
    });
    assert!(result.is_err());
    let dir = dir.into_inner().unwrap();
    assert!(!dir.is_empty());
    assert!(
        processes_mentioning(&dir).is_empty(),
        "spire processes survived a panicking test"
    );
}
