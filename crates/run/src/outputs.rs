//! What goes where: the settings of every output file, taken from the config once, and the
//! mapping of what the agent sent onto those files (docs/behaviour.md, "Output files").
//! Rendering and the atomic writes live in `spiffe-helper-pem`; this module only chooses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use spiffe_helper_config::{CertDirLayout, Config, JwtSvidOutput};
use spiffe_helper_pem::{
    self as files, Renamed, VersionedDir, Written, X509Material, X509Modes, X509Options, X509Paths,
};
use spiffe_workload_client::{JwtBundleSet, JwtSvid, X509Snapshot};

/// The settings of every output, without the rest of the config.
#[derive(Debug)]
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
    /// `cert_dir_layout = "versioned"`: every file of `cert_dir` goes through it.
    pub versioned: Option<Arc<Versioned>>,
}

/// The versioned layout of `cert_dir` (docs/consumers.md, "The whole set at once"), shared by
/// the X.509, JWT bundle and JWT-SVID writes so that each version holds the whole set.
#[derive(Debug)]
pub struct Versioned {
    dir: PathBuf,
    /// Every file name the config writes into `cert_dir`.
    names: Vec<String>,
    /// Opened at the first write (it reads the live version a previous run left).
    state: Mutex<Option<VersionedDir>>,
}

impl Versioned {
    /// Replaces `updates` (paths in `cert_dir`) in the live set; the switch is visible on
    /// return, durable after [`Renamed::finish`].
    ///
    /// # Errors
    /// A failed write; the live version stays as it was.
    pub fn update(&self, updates: &[(&Path, &[u8], u32)]) -> anyhow::Result<Renamed> {
        let named: Vec<(&str, &[u8], u32)> = updates
            .iter()
            .map(|(path, bytes, mode)| {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| anyhow::anyhow!("{} has no file name", path.display()))?;
                Ok((name, *bytes, *mode))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let layout = state.get_or_insert_with(|| {
            let owned: Vec<&str> = self.names.iter().map(String::as_str).collect();
            VersionedDir::open(&self.dir, &owned)
        });
        Ok(layout.update(&named)?)
    }
}

/// The X.509 files and how to compose them.
#[derive(Debug)]
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
    /// The PKCS#12 keystore and truststore, when configured (docs/consumers.md, "Java
    /// keystores").
    pkcs12: Option<Pkcs12Files>,
}

/// The PKCS#12 outputs and what they were last rendered from.
#[derive(Debug)]
struct Pkcs12Files {
    keystore: Option<PathBuf>,
    truststore: Option<PathBuf>,
    settings: spiffe_helper_config::Pkcs12Settings,
    /// PKCS#12 encryption is salted at random: the same input rendered twice gives other bytes.
    /// Each file's last rendering is kept with the PEM it came from, so that unchanged input
    /// writes an unchanged file (and notifies nobody): the keystore from the key and
    /// certificate PEM, the truststore from the bundle PEM.
    last: Mutex<Pkcs12Cache>,
}

#[derive(Default)]
struct Pkcs12Cache {
    keystore: Option<(files::SecretBytes, files::SecretBytes)>,
    truststore: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Pkcs12Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pkcs12Cache(<redacted>)")
    }
}

impl Pkcs12Files {
    /// The keystore and truststore bytes for this SVID: each the previous one when its input
    /// is the same, else rendered anew.
    fn render(
        &self,
        chain: &[Vec<u8>],
        key_der: &[u8],
        rendered: &files::RenderedX509,
    ) -> anyhow::Result<(files::SecretBytes, Vec<u8>)> {
        let mut joined = Vec::with_capacity(rendered.key.as_bytes().len() + rendered.cert.len());
        joined.extend_from_slice(rendered.key.as_bytes());
        joined.extend_from_slice(&rendered.cert);
        let key_input = files::SecretBytes::new(joined);
        let password = &self.settings.password;
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let keystore = match &last.keystore {
            Some((from, bytes)) if from.as_bytes() == key_input.as_bytes() => bytes.clone(),
            _ => {
                let bytes = files::render_pkcs12_keystore(
                    chain,
                    key_der,
                    &self.settings.key_alias,
                    password,
                )?;
                last.keystore = Some((key_input, bytes.clone()));
                bytes
            }
        };
        let truststore = match &last.truststore {
            Some((from, bytes)) if *from == rendered.bundle => bytes.clone(),
            _ => {
                let authorities = files::certificate_ders(&rendered.bundle);
                let bytes = files::render_pkcs12_truststore(&authorities, "spiffe-ca", password)?;
                last.truststore = Some((rendered.bundle.clone(), bytes.clone()));
                bytes
            }
        };
        Ok((keystore, truststore))
    }
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
            pkcs12: config.pkcs12.clone().and_then(|settings| {
                (paths.pkcs12_keystore.is_some() || paths.pkcs12_truststore.is_some()).then(|| {
                    Pkcs12Files {
                        keystore: paths.pkcs12_keystore.clone(),
                        truststore: paths.pkcs12_truststore.clone(),
                        settings,
                        last: Mutex::new(Pkcs12Cache::default()),
                    }
                })
            }),
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
            versioned: versioned(config),
        }
    }
}

/// The versioned layout when the config asks for it (the config crate checked that every
/// output is a plain name in `cert_dir`).
fn versioned(config: &Config) -> Option<Arc<Versioned>> {
    if config.cert_dir_layout != CertDirLayout::Versioned {
        return None;
    }
    let dir = config.cert_dir.clone()?;
    let mut paths: Vec<&PathBuf> = Vec::new();
    if let Some(x509) = &config.x509 {
        paths.extend([&x509.svid, &x509.key, &x509.bundle]);
        paths.extend(x509.combined.as_ref());
        paths.extend(x509.pkcs12_keystore.as_ref());
        paths.extend(x509.pkcs12_truststore.as_ref());
    }
    paths.extend(config.jwt_bundle.as_ref());
    paths.extend(config.jwt_svids.iter().map(|jwt| &jwt.path));
    let names = paths
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    Some(Arc::new(Versioned {
        dir,
        names,
        state: Mutex::new(None),
    }))
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
    versioned: Option<&Versioned>,
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
    let (paths, modes) = (&files_cfg.paths, files_cfg.modes);
    let both = combined.map(|path| (path, files::render_combined(&rendered)));
    let pkcs12 = match &files_cfg.pkcs12 {
        Some(p12) => Some((
            p12,
            p12.render(svid.cert_chain(), svid.private_key().der(), &rendered)?,
        )),
        None => None,
    };
    let mut holders: Vec<(&Path, &[u8])> = Vec::new();
    if let Some((path, bytes)) = &both {
        holders.push((path, bytes.as_bytes()));
    }
    if let Some((p12, (keystore, truststore))) = &pkcs12 {
        if let Some(path) = &p12.keystore {
            holders.push((path, keystore.as_bytes()));
        }
        if let Some(path) = &p12.truststore {
            holders.push((path, truststore));
        }
    }
    let set = files::x509_batch(paths, &rendered, &holders, modes);
    let renamed = match versioned {
        // One version holds the whole set: the order no longer matters.
        Some(layout) => layout.update(&set)?,
        None => files::replace_all(&set)?,
    };
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
    versioned: Option<&Versioned>,
    bundles: &JwtBundleSet,
) -> anyhow::Result<Written> {
    let by_name: BTreeMap<String, Vec<u8>> = bundles
        .bundles()
        .iter()
        .map(|(domain, jwks)| (domain.name().to_owned(), jwks.clone()))
        .collect();
    let rendered = files::render_jwt_bundle(&by_name);
    write_one(versioned, path, &rendered, *mode)
}

/// One file, on its own or as a new version of the whole set.
fn write_one(
    versioned: Option<&Versioned>,
    path: &Path,
    contents: &[u8],
    mode: u32,
) -> anyhow::Result<Written> {
    match versioned {
        Some(layout) => Ok(layout.update(&[(path, contents, mode)])?.finish()?),
        None => Ok(files::write_atomic(path, contents, mode)?),
    }
}

/// Writes one JWT-SVID token file: the raw token, no newline (docs/behaviour.md,
/// "JWT-SVIDs").
///
/// # Errors
/// A failed write.
pub fn write_jwt_svid(
    path: &Path,
    mode: u32,
    versioned: Option<&Versioned>,
    svid: &JwtSvid,
) -> anyhow::Result<Written> {
    write_one(versioned, path, svid.token().as_str().as_bytes(), mode)
}
