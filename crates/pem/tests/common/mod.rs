//! Test support: certificates generated with rcgen, an independent PEM reference encoder.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc
)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};

/// 2030-01-01T00:00:00Z, the `NotAfter` of [`Pki::with_years`]`(2030, ..)`.
pub const Y2030: u64 = 1_893_456_000;

fn params(cn: &str, ca: bool, not_after_year: i32) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = date_time_ymd(2000, 1, 1);
    p.not_after = date_time_ymd(not_after_year, 1, 1);
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    p
}

/// A self-signed root's DER.
pub fn root(cn: &str) -> Vec<u8> {
    root_expiring(cn, 2100)
}

/// A self-signed root expiring on 1 January of `year`.
pub fn root_expiring(cn: &str, year: i32) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    CertifiedIssuer::self_signed(params(cn, true, year), key)
        .unwrap()
        .der()
        .to_vec()
}

/// root -> intermediate -> leaf, plus the leaf's PKCS#8 key.
pub struct Pki {
    pub root: Vec<u8>,
    pub intermediate: Vec<u8>,
    pub leaf: Vec<u8>,
    pub key: Vec<u8>,
}

impl Pki {
    pub fn new() -> Self {
        Self::with_years(2100, 2100)
    }

    /// Intermediate and leaf expiring on 1 January of the given years.
    pub fn with_years(intermediate_year: i32, leaf_year: i32) -> Self {
        let root_key = KeyPair::generate().unwrap();
        let root = CertifiedIssuer::self_signed(params("root", true, 2100), root_key).unwrap();
        let int_key = KeyPair::generate().unwrap();
        let int = CertifiedIssuer::signed_by(
            params("intermediate", true, intermediate_year),
            int_key,
            &root,
        )
        .unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = params("leaf", false, leaf_year)
            .signed_by(&leaf_key, &int)
            .unwrap();
        Self {
            root: root.der().to_vec(),
            intermediate: int.der().to_vec(),
            leaf: leaf.der().to_vec(),
            key: leaf_key.serialize_der(),
        }
    }
}

/// Reference encoding through the `pem` crate (LF, blocks concatenated): an implementation
/// independent of the crate under test.
pub fn reference(tag: &str, ders: &[&[u8]]) -> Vec<u8> {
    let cfg = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    ders.iter()
        .map(|d| pem::encode_config(&pem::Pem::new(tag, d.to_vec()), cfg))
        .collect::<String>()
        .into_bytes()
}

/// Reference `CERTIFICATE` blocks.
pub fn certs(ders: &[&[u8]]) -> Vec<u8> {
    reference("CERTIFICATE", ders)
}

/// Mode bits of a path (not following symlinks).
pub fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Names of hidden entries (temp files) in `dir`.
pub fn hidden_entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}
