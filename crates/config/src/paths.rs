//! Output paths: names resolved against `cert_dir`, and no two outputs on one file
//! (docs/configuration.md, "Output files").

use std::path::{Component, Path, PathBuf};

use crate::decode::Decoder;
use crate::error::ConfigError;
use crate::keys::{JwtKey, Key, Table};
use crate::raw::{self, Fields, Raw};
use crate::tree::Pos;
use crate::{JwtSvidOutput, X509Output};

/// The three X.509 file names, in the order their paths are checked for collisions.
const SVID_KEYS: [Key; 3] = [
    Key::SvidFileName,
    Key::SvidKeyFileName,
    Key::SvidBundleFileName,
];

/// Every output path of a configuration, resolved.
pub(crate) struct Outputs {
    pub x509: Option<X509Output>,
    pub jwt_svids: Vec<JwtSvidOutput>,
    pub jwt_bundle: Option<PathBuf>,
    pub federated_bundle_dir: Option<PathBuf>,
    pub filesystem_delivery_dir: Option<PathBuf>,
}

/// Resolves every output name the file gives (or defaults) against `cert_dir`.
pub(crate) fn outputs(
    d: &Decoder<'_>,
    raw: &Raw,
    cert_dir: Option<&Path>,
) -> Result<Outputs, ConfigError> {
    let mut paths = Paths {
        d,
        cert_dir,
        taken: Vec::new(),
    };
    let x509 = if x509_on(raw) {
        Some(paths.x509(raw)?)
    } else {
        None
    };
    let jwt_svids = (raw.jwt_svids().iter().enumerate())
        .map(|(i, entry)| paths.jwt_svid(i, entry))
        .collect::<Result<_, _>>()?;
    Ok(Outputs {
        x509,
        jwt_svids,
        jwt_bundle: paths.optional(raw, Key::JwtBundleFileName)?,
        federated_bundle_dir: paths.optional(raw, Key::FederatedBundleDir)?,
        filesystem_delivery_dir: paths.optional(raw, Key::FilesystemDeliveryDir)?,
    })
}

/// X.509 output is on unless the file is JWT-only: it sets `jwt_svids` or
/// `jwt_bundle_file_name` and none of the `svid_*` names.
fn x509_on(raw: &Raw) -> bool {
    let svid_set = (SVID_KEYS.iter().chain(&[
        Key::SvidCombinedFileName,
        Key::Pkcs12KeystoreFileName,
        Key::Pkcs12TruststoreFileName,
    ]))
    .any(|key| raw.text(*key).is_some());
    let jwt_set = !raw.jwt_svids().is_empty() || raw.text(Key::JwtBundleFileName).is_some();
    svid_set || !jwt_set
}

/// The paths resolved so far, to refuse a second output on the same file.
struct Paths<'a> {
    d: &'a Decoder<'a>,
    cert_dir: Option<&'a Path>,
    taken: Vec<(String, PathBuf)>,
}

impl Paths<'_> {
    /// `name` as an absolute path, or under `cert_dir`; `label` names it in messages.
    fn resolve(&mut self, label: String, name: &str, pos: Pos) -> Result<PathBuf, ConfigError> {
        let path = match self.cert_dir {
            _ if Path::new(name).is_absolute() => PathBuf::from(name),
            Some(dir) => dir.join(name),
            None => return Err(self.cert_dir_required(&label, name, pos)),
        };
        let normal = normalize(&path);
        if let Some((other, _)) = self.taken.iter().find(|(_, p)| *p == normal) {
            return Err(ConfigError::Conflict {
                location: self.d.loc(pos),
                message: format!(
                    "{label} and {other} both resolve to {}; each output needs its own file",
                    path.display()
                ),
            });
        }
        self.taken.push((label, normal));
        Ok(path)
    }

    fn cert_dir_required(&self, label: &str, name: &str, pos: Pos) -> ConfigError {
        ConfigError::Missing {
            location: self.d.loc(pos),
            key: Key::CertDir.name().into(),
            hint: Some(format!(
                "{label} = \"{name}\" is relative and relative names are resolved against cert_dir; set cert_dir or use absolute paths"
            )),
        }
    }

    /// The three X.509 files; a name the file does not set takes the table's default.
    fn x509(&mut self, raw: &Raw) -> Result<X509Output, ConfigError> {
        let mut path = |key: Key| {
            let (name, pos) = raw.text(key).map_or_else(
                || (raw::default(key), Pos::default()),
                |v| (v.value.clone(), v.pos),
            );
            self.resolve(key.name().to_owned(), &name, pos)
        };
        let [svid, key, bundle] = SVID_KEYS;
        let (svid, key, bundle) = (path(svid)?, path(key)?, path(bundle)?);
        Ok(X509Output {
            svid,
            key,
            bundle,
            combined: self.optional(raw, Key::SvidCombinedFileName)?,
            pkcs12_keystore: self.optional(raw, Key::Pkcs12KeystoreFileName)?,
            pkcs12_truststore: self.optional(raw, Key::Pkcs12TruststoreFileName)?,
        })
    }

    /// One `jwt_svids` entry: both `jwt_audience` and `jwt_svid_file_name` are required.
    fn jwt_svid(
        &mut self,
        index: usize,
        entry: &Fields<JwtKey>,
    ) -> Result<JwtSvidOutput, ConfigError> {
        let label = |key: JwtKey| format!("{}[{index}].{}", Key::JwtSvids.name(), key.name());
        let required = |key: JwtKey| {
            entry.text(key).ok_or_else(|| ConfigError::Missing {
                location: self.d.loc(entry.pos),
                key: label(key),
                hint: None,
            })
        };
        let audience = required(JwtKey::Audience)?.value.clone();
        let file = required(JwtKey::SvidFileName)?;
        let path = self.resolve(label(JwtKey::SvidFileName), &file.value, file.pos)?;
        Ok(JwtSvidOutput {
            audience,
            extra_audiences: entry.strings(JwtKey::ExtraAudiences).to_vec(),
            path,
        })
    }

    fn optional(&mut self, raw: &Raw, key: Key) -> Result<Option<PathBuf>, ConfigError> {
        raw.text(key)
            .map(|v| self.resolve(key.name().to_owned(), &v.value, v.pos))
            .transpose()
    }
}

/// `certs/./svid.pem` and `certs/svid.pem` are the same file; `..` is kept (symlinks).
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}
