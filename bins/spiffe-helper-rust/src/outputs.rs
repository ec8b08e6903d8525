//! Maps what the agent sent onto the files the config names (SPEC §4). The rendering and the
//! atomic writes live in `spiffe-helper-pem`; this module only chooses what goes where.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context as _;
use spiffe_helper_config::Config;
use spiffe_helper_pem::{self as files, Written, X509Material, X509Modes, X509Options, X509Paths};
use spiffe_workload_client::{Error as ApiError, JwtBundleSet, JwtSvid, X509Context, X509Svid};

/// What one X.509 write did.
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

/// The SVID chosen by the hint rule of SPEC §4.2.
///
/// # Errors
/// When a hint is set and no SVID carries it.
pub fn select_x509<'a>(
    context: &'a X509Context,
    hint: Option<&str>,
) -> anyhow::Result<&'a X509Svid> {
    match hint {
        None => Ok(context.default_svid()),
        Some(hint) => context
            .svid_with_hint(hint)
            .with_context(|| format!("no X.509-SVID with hint {hint:?} in the agent's update")),
    }
}

/// The JWT-SVID chosen by the hint rule of SPEC §4.2.
///
/// # Errors
/// When the list is empty or no SVID carries the hint.
pub fn select_jwt(svids: Vec<JwtSvid>, hint: Option<&str>) -> Result<JwtSvid, ApiError> {
    let mut svids = svids.into_iter();
    let chosen = match hint {
        None => svids.next(),
        Some(hint) => svids.find(|svid| svid.hint() == hint),
    };
    chosen.ok_or_else(|| ApiError::InvalidResponse {
        reason: match hint {
            None => "the agent returned no JWT-SVID".to_owned(),
            Some(hint) => format!("no JWT-SVID with hint {hint:?}"),
        },
    })
}

/// Renders and writes cert, key and bundle (and per-domain bundles when configured).
///
/// # Errors
/// Hint mismatch, a certificate that cannot be rendered, or a failed write.
pub fn write_x509(config: &Config, context: &X509Context) -> anyhow::Result<X509Outcome> {
    let Some(paths) = &config.x509 else {
        anyhow::bail!("X.509 output is not configured");
    };
    let svid = select_x509(context, config.hint.as_deref())?;
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
        add_intermediates_to_bundle: config.add_intermediates_to_bundle,
        include_federated_domains: config.include_federated_domains,
        omit_expired: config.omit_expired,
        now: SystemTime::now(),
    };
    let rendered = files::render_x509(&material, &options)?;
    let target = X509Paths {
        cert: paths.svid.clone(),
        key: paths.key.clone(),
        bundle: paths.bundle.clone(),
    };
    let modes = X509Modes {
        cert: config.cert_file_mode.bits(),
        key: config.key_file_mode.bits(),
    };
    let mut changed = matches!(
        files::write_x509(&target, &rendered, modes)?,
        Written::Changed
    );
    if let Some(dir) = &config.federated_bundle_dir {
        let written =
            files::write_federated_bundles(dir, &federated, config.cert_file_mode.bits())?;
        changed |= matches!(written, Written::Changed);
    }
    Ok(X509Outcome {
        changed,
        spiffe_id: svid.spiffe_id().to_string(),
        serial: svid.serial_hex(),
        not_after: svid.not_after(),
    })
}

/// Writes the JWT bundle file (SPEC §4.4).
///
/// # Errors
/// A failed write.
pub fn write_jwt_bundle(config: &Config, bundles: &JwtBundleSet) -> anyhow::Result<Written> {
    let Some(path) = &config.jwt_bundle else {
        anyhow::bail!("JWT bundle output is not configured");
    };
    let by_name: BTreeMap<String, Vec<u8>> = bundles
        .bundles()
        .iter()
        .map(|(domain, jwks)| (domain.name().to_owned(), jwks.clone()))
        .collect();
    let contents = files::render_jwt_bundle(&by_name);
    Ok(files::write_atomic(
        path,
        &contents,
        config.jwt_bundle_file_mode.bits(),
    )?)
}

/// Writes one JWT-SVID token file: the raw token, no newline (SPEC §4.3).
///
/// # Errors
/// A failed write.
pub fn write_jwt_svid(config: &Config, path: &Path, svid: &JwtSvid) -> anyhow::Result<Written> {
    let token = svid.token().as_str().as_bytes();
    Ok(files::write_atomic(
        path,
        token,
        config.jwt_svid_file_mode.bits(),
    )?)
}
