//! What goes where: the settings of every output file, taken from the config once, and the
//! mapping of what the agent sent onto those files (docs/behaviour.md, "Output files").
//! Rendering and the atomic writes live in `spiffe-helper-pem`; this module only chooses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use spiffe_helper_config::{Config, JwtSvidOutput};
use spiffe_helper_pem::{
    self as files, Renamed, Written, X509Material, X509Modes, X509Options, X509Paths,
};
use spiffe_workload_client::{JwtBundleSet, JwtSvid, X509Snapshot};

/// The settings of every output, without the rest of the config.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// X.509 files; `None` for a JWT-only config.
    pub x509: Option<X509Files>,
    /// The JWT bundle file and its mode.
    pub jwt_bundle: Option<(PathBuf, u32)>,
    /// One entry per `jwt_svids` element, in config order.
    pub jwt_svids: Vec<JwtSvidOutput>,
    /// Mode of the JWT-SVID files.
    pub jwt_svid_mode: u32,
    /// The SVID selection hint.
    pub hint: Option<String>,
}

/// The X.509 files and how to compose them.
#[derive(Debug, Clone)]
pub struct X509Files {
    paths: X509Paths,
    /// `svid_combined_file_name`: key and chain in one file, renamed before the cert.
    combined: Option<PathBuf>,
    modes: X509Modes,
    add_intermediates_to_bundle: bool,
    include_federated_domains: bool,
    omit_expired: bool,
    federated_dir: Option<PathBuf>,
    /// `filesystem_delivery_dir` (docs/consumers.md, "The SPIFFE filesystem-delivery layout").
    delivery_dir: Option<PathBuf>,
}

/// What one X.509 write did.
#[derive(Debug)]
pub struct X509Outcome {
    /// Whether any file's content changed.
    pub changed: bool,
    /// The SPIFFE ID of the SVID written.
    pub spiffe_id: String,
    /// Its serial number, hex.
    pub serial: String,
    /// Its `NotAfter`.
    pub not_after: SystemTime,
}

impl Outputs {
    /// Takes the output settings out of a validated config.
    #[must_use]
    pub fn from_config(config: &Config) -> Self {
        let x509 = config.x509.as_ref().map(|paths| X509Files {
            paths: X509Paths {
                cert: paths.svid.clone(),
                key: paths.key.clone(),
                bundle: paths.bundle.clone(),
            },
            combined: paths.combined.clone(),
            modes: X509Modes {
                cert: config.cert_file_mode.bits(),
                key: config.key_file_mode.bits(),
            },
            add_intermediates_to_bundle: config.add_intermediates_to_bundle,
            include_federated_domains: config.include_federated_domains,
            omit_expired: config.omit_expired,
            federated_dir: config.federated_bundle_dir.clone(),
            delivery_dir: config.filesystem_delivery_dir.clone(),
        });
        Self {
            x509,
            jwt_bundle: config
                .jwt_bundle
                .clone()
                .map(|path| (path, config.jwt_bundle_file_mode.bits())),
            jwt_svids: config.jwt_svids.clone(),
            jwt_svid_mode: config.jwt_svid_file_mode.bits(),
            hint: config.hint.clone(),
        }
    }
}

/// Renders and writes cert, key and bundle (with the combined file, renamed before the cert,
/// when configured), then the per-domain bundles and the filesystem-delivery folder when
/// configured. The files are in place when this returns; the directory fsync is left to the caller
/// ([`Renamed::finish`]), so that the consumer can be told first.
///
/// # Errors
/// A certificate that cannot be rendered, or a failed write.
pub fn write_x509(
    files_cfg: &X509Files,
    snapshot: &X509Snapshot,
) -> anyhow::Result<(X509Outcome, Renamed)> {
    let (svid, context) = (snapshot.svid(), snapshot.context());
    let own = svid.spiffe_id().trust_domain();
    let federated: BTreeMap<String, Vec<Vec<u8>>> = context
        .federated_bundles()
        .iter()
        .filter(|(domain, _)| *domain != own)
        .map(|(domain, roots)| (domain.name().to_owned(), roots.clone()))
        .collect();
    let material = X509Material {
        chain: svid.cert_chain(),
        key_pkcs8_der: svid.private_key().der(),
        bundle: svid.bundle(),
        federated: &federated,
    };
    let options = X509Options {
        add_intermediates_to_bundle: files_cfg.add_intermediates_to_bundle,
        include_federated_domains: files_cfg.include_federated_domains,
        omit_expired: files_cfg.omit_expired,
        now: SystemTime::now(),
    };
    let rendered = files::render_x509(&material, &options)?;
    let combined = files_cfg.combined.as_deref();
    let renamed = files::replace_x509(&files_cfg.paths, combined, &rendered, files_cfg.modes)?;
    let mut changed = renamed.written().is_changed();
    if let Some(dir) = &files_cfg.federated_dir {
        changed |=
            files::write_federated_bundles(dir, &federated, files_cfg.modes.cert)?.is_changed();
    }
    if let Some(dir) = &files_cfg.delivery_dir {
        let delivery = files::render_filesystem_delivery(&material, own.name(), &options)?;
        let modes = files_cfg.modes;
        changed |=
            files::write_filesystem_delivery(dir, &delivery, modes.key, modes.cert)?.is_changed();
    }
    let outcome = X509Outcome {
        changed,
        spiffe_id: svid.spiffe_id().to_string(),
        serial: svid.serial_hex(),
        not_after: svid.not_after(),
    };
    Ok((outcome, renamed))
}

/// Writes the JWT bundle file: every domain's JWKS in one JSON object (docs/behaviour.md,
/// "JWT bundle").
///
/// # Errors
/// A failed write.
pub fn write_jwt_bundle(
    (path, mode): &(PathBuf, u32),
    bundles: &JwtBundleSet,
) -> anyhow::Result<Written> {
    let by_name: BTreeMap<String, Vec<u8>> = bundles
        .bundles()
        .iter()
        .map(|(domain, jwks)| (domain.name().to_owned(), jwks.clone()))
        .collect();
    Ok(files::write_atomic(
        path,
        &files::render_jwt_bundle(&by_name),
        *mode,
    )?)
}

/// Writes one JWT-SVID token file: the raw token, no newline (docs/behaviour.md,
/// "JWT-SVIDs").
///
/// # Errors
/// A failed write.
pub fn write_jwt_svid(
    path: &std::path::Path,
    mode: u32,
    svid: &JwtSvid,
) -> anyhow::Result<Written> {
    Ok(files::write_atomic(
        path,
        svid.token().as_str().as_bytes(),
        mode,
    )?)
}
