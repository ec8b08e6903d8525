//! Writing the rendered files: the X.509 triple in a safe order, and per-trust-domain
//! federated bundle files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic::{Renamed, Written, ensure_dir, replace_all, write_atomic};
use crate::error::{CertSource, IoOp, PemError};
use crate::render::render_certificates;

/// Where the three X.509 files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Paths {
    /// SVID certificate(s).
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// Trust bundle.
    pub bundle: PathBuf,
}

/// File modes of the X.509 files. The bundle file uses the cert mode (`cert_file_mode`
/// covers both, as upstream; docs/behaviour.md#x509-files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct X509Modes {
    /// Mode of the SVID and bundle files (default `0644`).
    pub cert: u32,
    /// Mode of the key file (default `0600`).
    pub key: u32,
}

/// Writes key, then cert, then bundle as one batch ([`crate::write_atomic_all`]): all three
/// are staged and fsynced first, then renamed in that order, then the directory is fsynced
/// once.
///
/// The key goes first because consumers reload when the certificate changes (they watch the
/// cert file, or are signalled after the update): when the new cert becomes visible, the
/// matching key is already in place, so a new cert is never paired with the old key. The
/// bundle goes last: it only adds trust, and the new cert chains to roots the old bundle
/// already had during a rotation. (Upstream writes cert, key, bundle, and for a moment offers
/// a new cert with the old key.)
///
/// # Errors
/// The first [`PemError::Io`]. A failure before the renames leaves all three files as they
/// were; a failed rename leaves the files before it in the order above already replaced.
pub fn write_x509(
    paths: &X509Paths,
    files: &crate::RenderedX509,
    modes: X509Modes,
) -> Result<Written, PemError> {
    replace_x509(paths, None, files, modes)?.finish()
}

/// [`write_x509`] plus the combined key-and-chain file at `combined` (docs/consumers.md), in
/// the same batch, renamed in the order **key, combined, cert, bundle**: like the key, the
/// combined file is in place before the new certificate becomes visible, so a consumer
/// signalled or watching the cert file never reads an old combined file. Its mode is the key
/// mode (it holds the key); its bytes are [`crate::render_combined`] of `files`.
///
/// # Errors
/// As [`write_x509`].
pub fn write_x509_with_combined(
    paths: &X509Paths,
    combined: &Path,
    files: &crate::RenderedX509,
    modes: X509Modes,
) -> Result<Written, PemError> {
    replace_x509(paths, Some(combined), files, modes)?.finish()
}

/// [`write_x509`] (or, with `combined`, [`write_x509_with_combined`]) up to the renames: the
/// new files are in place and readers see them; the directory fsync is left to
/// [`Renamed::finish`], so a daemon can signal its consumer first.
///
/// # Errors
/// As [`write_x509`], except the directory fsync.
pub fn replace_x509(
    paths: &X509Paths,
    combined: Option<&Path>,
    files: &crate::RenderedX509,
    modes: X509Modes,
) -> Result<Renamed, PemError> {
    let both = combined.map(|path| (path, crate::render::render_combined(files)));
    let holders: Vec<(&Path, &[u8])> = both
        .iter()
        .map(|(path, bytes)| (*path, bytes.as_bytes()))
        .collect();
    replace_all(&x509_batch(paths, files, &holders, modes))
}

/// The X.509 files of one update in rename order: the key, then `key_holders` (files written at
/// the key mode and in place before the certificate: the combined file, the PKCS#12 stores),
/// then the certificate, then the bundle. So a consumer that reloads on the certificate never
/// finds a file with the old key next to it (docs/behaviour.md#how-files-are-written).
#[must_use]
pub fn x509_batch<'a>(
    paths: &'a X509Paths,
    files: &'a crate::RenderedX509,
    key_holders: &[(&'a Path, &'a [u8])],
    modes: X509Modes,
) -> Vec<(&'a Path, &'a [u8], u32)> {
    let mut batch = Vec::with_capacity(3 + key_holders.len());
    batch.push((paths.key.as_path(), files.key.as_bytes(), modes.key));
    batch.extend(
        key_holders
            .iter()
            .map(|(path, bytes)| (*path, *bytes, modes.key)),
    );
    batch.push((paths.cert.as_path(), files.cert.as_slice(), modes.cert));
    batch.push((paths.bundle.as_path(), files.bundle.as_slice(), modes.cert));
    batch
}

/// Name of the ownership record kept in a federated bundle directory.
pub const FEDERATED_MANIFEST: &str = ".spiffe-helper-federated";

/// Writes one `<trust-domain>.pem` (roots as `CERTIFICATE` blocks) per federated domain into
/// `dir` (created like [`ensure_dir`]), and removes the files of domains that disappeared.
///
/// Ownership rule for removals: the names written are recorded in the file
/// [`FEDERATED_MANIFEST`] in `dir`; only `<name>.pem` files listed there by an earlier call
/// and absent now are removed. Any other file in the directory (a `svid.pem`, a hand-placed
/// `other.pem`) is never touched, so `dir` may be shared with other files. Order: new files,
/// then removals, then the manifest, so a crash can at worst leave one stale file behind,
/// never remove a file that was not ours.
///
/// # Errors
/// [`PemError::InvalidTrustDomainName`] for a name outside the SPIFFE trust-domain alphabet
/// (`a-z 0-9 . - _`, not `.`/`..`), checked before anything is written;
/// [`PemError::InvalidCertificate`] for unparsable DER; [`PemError::Io`] from the writes.
pub fn write_federated_bundles(
    dir: &Path,
    federated: &BTreeMap<String, Vec<Vec<u8>>>,
    mode: u32,
) -> Result<Written, PemError> {
    for (td, roots) in federated {
        if !is_valid_td_name(td) {
            return Err(PemError::InvalidTrustDomainName { name: td.clone() });
        }
        check_parses(td, roots)?;
    }
    ensure_dir(dir)?;
    let mut written = Written::Unchanged;
    for (td, roots) in federated {
        let path = dir.join(format!("{td}.pem"));
        written = written.or(write_atomic(&path, &render_certificates(roots), mode)?);
    }
    let manifest = dir.join(FEDERATED_MANIFEST);
    for gone in read_manifest(&manifest)?
        .iter()
        .filter(|td| !federated.contains_key(*td))
    {
        if remove_owned(&dir.join(format!("{gone}.pem")))? {
            written = Written::Changed;
        }
    }
    let mut record = String::new();
    for td in federated.keys() {
        record.push_str(td);
        record.push('\n');
    }
    let _ = write_atomic(&manifest, record.as_bytes(), 0o644)?;
    Ok(written)
}

/// SPIFFE trust-domain names: lowercase letters, digits, `.`, `-`, `_` (SPIFFE-ID spec §2.1).
pub(crate) fn is_valid_td_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

fn check_parses(td: &str, roots: &[Vec<u8>]) -> Result<(), PemError> {
    for (index, der) in roots.iter().enumerate() {
        let reason = match x509_parser::parse_x509_certificate(der) {
            Ok(([], _)) => continue,
            Ok((rest, _)) => format!("{} trailing bytes", rest.len()),
            Err(e) => e.to_string(),
        };
        return Err(PemError::InvalidCertificate {
            source_kind: CertSource::Federated(td.to_owned()),
            index,
            reason,
        });
    }
    Ok(())
}

/// Names recorded by an earlier call; lines that are not valid names are ignored, so an
/// edited manifest can never point a removal outside the directory.
pub(crate) fn read_manifest(path: &Path) -> Result<BTreeSet<String>, PemError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter(|l| is_valid_td_name(l))
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(PemError::io(IoOp::Read, path, e)),
    }
}

/// Removes a file we wrote earlier; true if something was removed. A directory at that name
/// is left alone (we never create directories there).
pub(crate) fn remove_owned(path: &Path) -> Result<bool, PemError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(false),
        Ok(_) => match fs::remove_file(path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed the bundle of a trust domain that is no longer delivered");
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(PemError::io(IoOp::Remove, path, e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(PemError::io(IoOp::Remove, path, e)),
    }
}
