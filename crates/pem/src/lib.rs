//! PEM rendering and atomic, mode-exact file persistence for `spiffe-helper-rust`.
//!
//! This crate turns the DER material received from the SPIFFE Workload API into the exact
//! bytes the Go `spiffe-helper` v0.11.0 writes (docs/behaviour.md#output-files), and puts
//! files on disk so that a reader never sees an empty, partial or wrong-mode file
//! (docs/behaviour.md#how-files-are-written). It knows
//! nothing of the Workload API client or the configuration: it takes bytes, paths and modes,
//! and the binary maps its own types onto [`X509Material`] and [`X509Options`].
//!
//! - [`render_x509`], [`render_certificates`], [`render_private_key`], [`render_jwt_bundle`]:
//!   pure functions, DER in, file bytes out.
//! - [`write_atomic`]: one file, temp + `fchmod` + `fsync` + `rename` + directory `fsync`;
//!   returns [`Written::Unchanged`] without touching anything when content and mode match.
//! - [`write_atomic_all`]: several files as one update: all staged and fsynced, then renamed
//!   in order, then one directory `fsync`.
//! - [`write_x509`]: the three X.509 files as one batch, renamed in the order **key, cert,
//!   bundle**. Consumers
//!   reload when the certificate changes; writing the key first means a new certificate is
//!   never visible next to the old key.
//! - [`write_federated_bundles`]: opt-in per-trust-domain bundle files.
//! - [`render_combined`] + [`write_x509_with_combined`]: the one-PEM key-and-chain file
//!   (`HAProxy` `crt`, `ghostunnel --keystore`), renamed after the key and before the cert.
//! - [`render_filesystem_delivery`] + [`write_filesystem_delivery`]: the SPIFFE
//!   filesystem-delivery folder (draft, spiffe/spiffe PR #376):
//!   [`CREDENTIAL_BUNDLE_FILE`] and one `<trust-domain>`[`TRUST_BUNDLE_SUFFIX`] per domain.
//!
//! - [`render_pkcs12_keystore`], [`render_pkcs12_truststore`]: PKCS#12 files for JVM consumers.
//! - [`VersionedDir`]: the versioned layout (`cert_dir_layout = "versioned"`): each version of
//!   the whole set in its own directory, switched by one rename of the [`DATA_LINK`] link.
//!
//! Key material stays in [`SecretBytes`] (zeroized on drop, redacted `Debug`).
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use std::path::PathBuf;
//! use std::time::SystemTime;
//! use spiffe_helper_pem::{X509Material, X509Modes, X509Options, X509Paths, render_x509, write_x509};
//!
//! # fn demo(chain: Vec<Vec<u8>>, key: Vec<u8>, roots: Vec<Vec<u8>>) -> Result<(), spiffe_helper_pem::PemError> {
//! let federated = BTreeMap::new();
//! let material = X509Material { chain: &chain, key_pkcs8_der: &key, bundle: &roots, federated: &federated };
//! let options = X509Options {
//!     add_intermediates_to_bundle: false,
//!     include_federated_domains: false,
//!     omit_expired: false,
//!     now: SystemTime::now(),
//! };
//! let files = render_x509(&material, &options)?;
//! let dir = PathBuf::from("/run/certs");
//! spiffe_helper_pem::ensure_dir(&dir)?;
//! let paths = X509Paths { cert: dir.join("svid.pem"), key: dir.join("svid_key.pem"), bundle: dir.join("svid_bundle.pem") };
//! if write_x509(&paths, &files, X509Modes { cert: 0o644, key: 0o600 })?.is_changed() {
//!     // signal the consumer
//! }
//! # Ok(()) }
//! ```

mod atomic;
mod delivery;
mod error;
mod files;
mod jwks;
mod pkcs12;
mod render;
mod secret;
mod versioned;

pub use atomic::{Renamed, Written, ensure_dir, replace_all, write_atomic, write_atomic_all};
pub use delivery::{
    CREDENTIAL_BUNDLE_FILE, DELIVERY_MANIFEST, RenderedDelivery, TRUST_BUNDLE_SUFFIX,
    render_filesystem_delivery, write_filesystem_delivery,
};
pub use error::{CertSource, IoOp, PemError};
pub use files::{
    FEDERATED_MANIFEST, X509Modes, X509Paths, replace_x509, write_federated_bundles, write_x509,
    write_x509_with_combined, x509_batch,
};
pub use pkcs12::{certificate_ders, render_pkcs12_keystore, render_pkcs12_truststore};
pub use render::{
    RenderedX509, X509Material, X509Options, render_certificates, render_combined,
    render_jwt_bundle, render_private_key, render_x509,
};
pub use secret::SecretBytes;
pub use versioned::{DATA_LINK, VERSION_PREFIX, VersionedDir};
