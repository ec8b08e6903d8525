//! A reader that is not signalled and reads (certificate, key) in a loop while the files rotate
//! as fast as the writer can write them (docs/consumers.md, "The whole set at once"):
//!
//! - with the per-file layout it catches pairs whose certificate and key do not belong together
//!   (the renames are one by one), which shows this reader can fail;
//! - with the versioned layout, reading both files relative to the version `..data` names, it
//!   never does, over at least as many rotations.
//!
//! Each rotation writes one of a few real key pairs (rcgen, P-256) and its certificate; the
//! reader knows which certificate belongs to which key and counts every mismatch.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::too_many_lines,
    reason = "test code: one writer and one reader in one function"
)]

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use spiffe_helper_pem::{
    DATA_LINK, RenderedX509, SecretBytes, VersionedDir, X509Modes, X509Paths, write_x509,
};

const PAIRS: usize = 4;
/// The per-file layout runs until the reader caught this many mismatches (or the limit).
const WANT_MISMATCHES: usize = 3;
const LIMIT: Duration = Duration::from_secs(20);
/// The versioned layout runs at least this many rotations (and at least as many as the
/// per-file run needed).
const MIN_ROTATIONS: usize = 500;

struct Pair {
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn pairs() -> Vec<Pair> {
    (0..PAIRS)
        .map(|i| {
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(vec![format!("pair-{i}.example")]).unwrap();
            let cert = params.self_signed(&key).unwrap();
            Pair {
                cert: cert.pem().into_bytes(),
                key: key.serialize_pem().into_bytes(),
            }
        })
        .collect()
}

#[derive(Debug, Default)]
struct Counts {
    rotations: usize,
    reads: usize,
    mismatches: usize,
    /// Reads that found a file missing (a version removed under the reader): retried.
    retries: usize,
}

enum Layout {
    Files,
    Versioned,
}

/// Rotates the files in `dir` with `layout` while a reader thread reads them, until `done`
/// says so; returns the counts.
fn run(layout: &Layout, dir: &Path, done: impl Fn(&Counts) -> bool) -> Counts {
    let pairs = Arc::new(pairs());
    let cert_of_key: Arc<HashMap<Vec<u8>, usize>> = Arc::new(
        pairs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key.clone(), i))
            .collect(),
    );
    let index_of_cert: Arc<HashMap<Vec<u8>, usize>> = Arc::new(
        pairs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.cert.clone(), i))
            .collect(),
    );
    let modes = X509Modes {
        cert: 0o644,
        key: 0o600,
    };
    let paths = X509Paths {
        cert: dir.join("svid.pem"),
        key: dir.join("svid_key.pem"),
        bundle: dir.join("svid_bundle.pem"),
    };
    let mut versioned = VersionedDir::open(dir, &["svid.pem", "svid_key.pem", "svid_bundle.pem"]);
    let mut write = |pair: &Pair| match layout {
        Layout::Files => {
            let files = RenderedX509 {
                cert: pair.cert.clone(),
                key: SecretBytes::new(pair.key.clone()),
                bundle: b"bundle\n".to_vec(),
            };
            let _ = write_x509(&paths, &files, modes).unwrap();
        }
        Layout::Versioned => {
            let _ = versioned
                .update(&[
                    ("svid_key.pem", &pair.key, modes.key),
                    ("svid.pem", &pair.cert, modes.cert),
                    ("svid_bundle.pem", b"bundle\n", modes.cert),
                ])
                .unwrap()
                .finish()
                .unwrap();
        }
    };
    write(&pairs[0]);

    let stop = Arc::new(AtomicBool::new(false));
    let (reads, mismatches, retries) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let reader = {
        let (stop, reads, mismatches, retries) = (
            stop.clone(),
            reads.clone(),
            mismatches.clone(),
            retries.clone(),
        );
        let dir = dir.to_path_buf();
        let (cert_of_key, index_of_cert) = (cert_of_key.clone(), index_of_cert.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match read_pair(&dir) {
                    Ok((cert, key)) => {
                        reads.fetch_add(1, Ordering::Relaxed);
                        let (Some(c), Some(k)) = (index_of_cert.get(&cert), cert_of_key.get(&key))
                        else {
                            panic!("a file held bytes no rotation wrote (partial file?)");
                        };
                        if c != k {
                            mismatches.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        retries.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("read failed: {e}"),
                }
            }
        })
    };

    let start = Instant::now();
    let mut counts = Counts::default();
    let mut next = 1;
    loop {
        write(&pairs[next % PAIRS]);
        next += 1;
        counts.rotations += 1;
        counts.reads = reads.load(Ordering::Relaxed);
        counts.mismatches = mismatches.load(Ordering::Relaxed);
        counts.retries = retries.load(Ordering::Relaxed);
        if done(&counts) || start.elapsed() > LIMIT {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    counts.reads = reads.load(Ordering::Relaxed);
    counts.mismatches = mismatches.load(Ordering::Relaxed);
    counts.retries = retries.load(Ordering::Relaxed);
    counts
}

/// The reader: certificate, then key, both relative to the directory `..data` names when there
/// is one (resolved once per pair, as a consumer of the versioned layout does), else straight
/// from `dir`.
fn read_pair(dir: &Path) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let base: PathBuf = match fs::read_link(dir.join(DATA_LINK)) {
        Ok(version) => dir.join(version),
        Err(e) if e.kind() == io::ErrorKind::NotFound => dir.to_path_buf(),
        Err(e) => return Err(e),
    };
    let cert = fs::read(base.join("svid.pem"))?;
    let key = fs::read(base.join("svid_key.pem"))?;
    Ok((cert, key))
}

#[test]
fn a_polling_reader_sees_mixed_pairs_per_file_and_never_with_the_versioned_layout() {
    let files_dir = tempfile::tempdir().unwrap();
    let files = run(&Layout::Files, files_dir.path(), |c| {
        c.mismatches >= WANT_MISMATCHES && c.reads >= 1000
    });
    eprintln!("MEASURE per-file layout: {files:?}");
    assert!(
        files.mismatches > 0,
        "the reader caught no mixed pair with the per-file layout in {} rotations and {} reads: it cannot tell the layouts apart",
        files.rotations,
        files.reads
    );

    let versioned_dir = tempfile::tempdir().unwrap();
    let want = files.rotations.max(MIN_ROTATIONS);
    let versioned = run(&Layout::Versioned, versioned_dir.path(), |c| {
        c.rotations >= want && c.reads >= files.reads.min(1000)
    });
    eprintln!("MEASURE versioned layout: {versioned:?}");
    assert!(
        versioned.rotations >= want,
        "only {} rotations in {LIMIT:?}",
        versioned.rotations
    );
    assert_eq!(
        versioned.mismatches, 0,
        "the versioned layout let the reader pair a certificate with another key"
    );
    assert!(versioned.reads >= 1000, "too few reads: {versioned:?}");
}
