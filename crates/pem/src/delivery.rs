//! The SPIFFE filesystem-delivery layout (draft standard, spiffe/spiffe PR #376, as of
//! December 2026): one folder holding
//!
//! - `credential-bundle.private-key.pem`: the PKCS#8 `PRIVATE KEY` block first, then the
//!   X.509-SVID chain (leaf first), and
//! - one `<trust-domain>.x509.pem` per trust domain, that domain's roots as `CERTIFICATE`
//!   blocks, never merged with another domain's.
//!
//! Each file is written atomically (consumers read each file in one open/read/close), and the
//! file of a trust domain that disappeared is removed.

use std::collections::BTreeMap;
use std::path::Path;

use crate::atomic::{Written, ensure_dir, write_atomic, write_atomic_all};
use crate::error::{CertSource, PemError};
use crate::files::{is_valid_td_name, read_manifest, remove_owned};
use crate::render::{
    X509Material, X509Options, check_all, render_cert_refs, render_key_and_chain, unix_nanos,
};
use crate::secret::SecretBytes;

/// Name of the credential bundle in a filesystem-delivery folder.
pub const CREDENTIAL_BUNDLE_FILE: &str = "credential-bundle.private-key.pem";
/// Suffix of a trust-bundle file in a filesystem-delivery folder (`<trust-domain>.x509.pem`).
pub const TRUST_BUNDLE_SUFFIX: &str = ".x509.pem";
/// Name of the ownership record kept in a filesystem-delivery folder (hidden, so it never
/// matches a consumer's `*.x509.pem`).
pub const DELIVERY_MANIFEST: &str = ".spiffe-helper-delivery";

/// The files of a filesystem-delivery folder, rendered.
#[derive(Debug, Clone)]
pub struct RenderedDelivery {
    /// `credential-bundle.private-key.pem`: key, then the chain.
    pub credential: SecretBytes,
    /// Trust-domain name (no `spiffe://`) to its `<name>.x509.pem` bytes.
    pub trust_bundles: BTreeMap<String, Vec<u8>>,
}

/// Renders the filesystem-delivery files from the same material as [`crate::render_x509`].
///
/// - Credential bundle: the key, then the whole chain as received (the draft wants the
///   X.509-SVID chain; `add_intermediates_to_bundle` does not apply here).
/// - `<own_trust_domain>.x509.pem`: the own domain's roots; with `include_federated_domains`
///   also one file per federated domain. Intermediates never go into a trust bundle.
/// - `omit_expired` drops expired certificates from every file, as for the X.509 files; an
///   expired leaf is an error.
///
/// # Errors
/// As [`crate::render_x509`], plus [`PemError::InvalidTrustDomainName`] for a name that
/// cannot be a file name.
pub fn render_filesystem_delivery(
    m: &X509Material<'_>,
    own_trust_domain: &str,
    o: &X509Options,
) -> Result<RenderedDelivery, PemError> {
    if m.key_pkcs8_der.is_empty() {
        return Err(PemError::EmptyKey);
    }
    let chain = check_all(m.chain, &CertSource::Chain)?;
    let Some(leaf) = chain.first() else {
        return Err(PemError::EmptyChain);
    };
    let now = unix_nanos(o.now);
    let keep =
        |not_after_unix: i64| !o.omit_expired || i128::from(not_after_unix) * 1_000_000_000 >= now;
    if !keep(leaf.not_after_unix) {
        return Err(PemError::LeafExpired {
            not_after_unix: leaf.not_after_unix,
        });
    }
    let mut domains: Vec<(&str, &[Vec<u8>], CertSource)> =
        vec![(own_trust_domain, m.bundle, CertSource::Bundle)];
    if o.include_federated_domains {
        for (td, roots) in m.federated {
            domains.push((td, roots, CertSource::Federated(td.clone())));
        }
    }
    let mut trust_bundles = BTreeMap::new();
    for (td, roots, source) in domains {
        if !is_valid_td_name(td) {
            return Err(PemError::InvalidTrustDomainName {
                name: td.to_owned(),
            });
        }
        let checked = check_all(roots, &source)?;
        let bytes = render_cert_refs(
            checked
                .iter()
                .filter(|c| keep(c.not_after_unix))
                .map(|c| c.der),
        );
        trust_bundles.insert(td.to_owned(), bytes);
    }
    let kept: Vec<&[u8]> = chain
        .iter()
        .filter(|c| keep(c.not_after_unix))
        .map(|c| c.der)
        .collect();
    Ok(RenderedDelivery {
        credential: render_key_and_chain(m.key_pkcs8_der, &kept),
        trust_bundles,
    })
}

/// Maintains the filesystem-delivery folder `dir` (created like [`ensure_dir`]).
///
/// Order: the trust bundles first, then the credential bundle, as one batch
/// ([`write_atomic_all`]: staged and fsynced, renamed in that order, one directory fsync), so
/// a consumer that reloads when its credential changes already finds the trust it goes with.
/// Then the files of trust domains written by an earlier call and absent now are removed, then
/// the ownership record [`DELIVERY_MANIFEST`] is updated (same rule as
/// [`crate::write_federated_bundles`]: nothing this crate did not write is ever removed).
/// Modes: `key_mode` for the credential bundle, `bundle_mode` for the trust bundles.
///
/// # Errors
/// [`PemError::InvalidTrustDomainName`] (checked before anything is written) or the first
/// [`PemError::Io`].
pub fn write_filesystem_delivery(
    dir: &Path,
    files: &RenderedDelivery,
    key_mode: u32,
    bundle_mode: u32,
) -> Result<Written, PemError> {
    if let Some(bad) = files.trust_bundles.keys().find(|td| !is_valid_td_name(td)) {
        return Err(PemError::InvalidTrustDomainName { name: bad.clone() });
    }
    ensure_dir(dir)?;
    let paths: Vec<_> = files
        .trust_bundles
        .keys()
        .map(|td| dir.join(format!("{td}{TRUST_BUNDLE_SUFFIX}")))
        .collect();
    let credential = dir.join(CREDENTIAL_BUNDLE_FILE);
    let mut batch: Vec<(&Path, &[u8], u32)> = paths
        .iter()
        .zip(files.trust_bundles.values())
        .map(|(path, bytes)| (path.as_path(), bytes.as_slice(), bundle_mode))
        .collect();
    batch.push((&credential, files.credential.as_bytes(), key_mode));
    let mut written = write_atomic_all(&batch)?;

    let manifest = dir.join(DELIVERY_MANIFEST);
    for gone in read_manifest(&manifest)?
        .iter()
        .filter(|td| !files.trust_bundles.contains_key(*td))
    {
        if remove_owned(&dir.join(format!("{gone}{TRUST_BUNDLE_SUFFIX}")))? {
            written = Written::Changed;
        }
    }
    let mut record = String::new();
    for td in files.trust_bundles.keys() {
        record.push_str(td);
        record.push('\n');
    }
    let _ = write_atomic(&manifest, record.as_bytes(), 0o644)?;
    Ok(written)
}
