//! Times full X.509 writes (key + cert + bundle, each staged as temp + fchmod + fsync, then renamed in order, then one
//! directory fsync) with realistic sizes. Usage:
//! `cargo run --release -p spiffe-helper-pem --example write_timing [DIR] [N]`
//! (DIR defaults to a fresh temporary directory; pick one on the disk you care about).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use spiffe_helper_pem::{X509Material, X509Modes, X509Options, X509Paths, render_x509, write_x509};

fn pki() -> (Vec<Vec<u8>>, Vec<u8>, Vec<Vec<u8>>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let root = CertifiedIssuer::self_signed(ca.clone(), KeyPair::generate().unwrap()).unwrap();
    let int = CertifiedIssuer::signed_by(ca, KeyPair::generate().unwrap(), &root).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["spiffe://example.org/w".to_owned()])
        .unwrap()
        .signed_by(&key, &int)
        .unwrap();
    (
        vec![leaf.der().to_vec(), int.der().to_vec()],
        key.serialize_der(),
        vec![root.der().to_vec()],
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .next()
        .filter(|s| !s.is_empty())
        .map_or_else(|| tmp.path().to_owned(), PathBuf::from);
    let n: usize = args.next().map_or(200, |s| s.parse().unwrap());
    let federated = std::collections::BTreeMap::new();
    let options = X509Options {
        add_intermediates_to_bundle: false,
        include_federated_domains: false,
        omit_expired: true,
        now: SystemTime::now(),
    };
    let versions: Vec<_> = (0..2)
        .map(|_| {
            let (chain, key, bundle) = pki();
            let m = X509Material {
                chain: &chain,
                key_pkcs8_der: &key,
                bundle: &bundle,
                federated: &federated,
            };
            render_x509(&m, &options).unwrap()
        })
        .collect();
    let paths = X509Paths {
        cert: dir.join("svid.pem"),
        key: dir.join("svid_key.pem"),
        bundle: dir.join("svid_bundle.pem"),
    };
    let modes = X509Modes {
        cert: 0o644,
        key: 0o600,
    };

    let (chain, key, bundle) = pki();
    let m = X509Material {
        chain: &chain,
        key_pkcs8_der: &key,
        bundle: &bundle,
        federated: &federated,
    };
    let t = Instant::now();
    for _ in 0..n {
        let _ = render_x509(&m, &options).unwrap();
    }
    let render = t.elapsed() / u32::try_from(n).unwrap();

    let mut changed = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        assert!(
            write_x509(&paths, &versions[i % 2], modes)
                .unwrap()
                .is_changed()
        );
        changed.push(t.elapsed());
    }
    let t = Instant::now();
    for _ in 0..n {
        assert!(
            !write_x509(&paths, &versions[(n - 1) % 2], modes)
                .unwrap()
                .is_changed()
        );
    }
    let unchanged = t.elapsed() / u32::try_from(n).unwrap();
    changed.sort();
    let pct = |p: usize| changed[(changed.len() - 1) * p / 100];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("dir {} , {n} writes", dir.display());
    println!(
        "render_x509 (parse 3 certs, encode 3 files): {:.3} ms",
        ms(render)
    );
    println!(
        "write_x509 changed (3 files, 3 file fsyncs + 1 directory fsync): median {:.3} ms, p90 {:.3} ms, max {:.3} ms",
        ms(pct(50)),
        ms(pct(90)),
        ms(pct(100))
    );
    println!(
        "write_x509 unchanged (compare only): {:.3} ms",
        ms(unchanged)
    );
}
