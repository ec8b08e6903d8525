//! The versioned layout of a cert directory (`cert_dir_layout = "versioned"`;
//! docs/consumers.md, "The whole set at once"): the kubelet's layout for Secret volumes.
//!
//! ```text
//! cert_dir/
//!   ..version-<nanos>-<random>/   one complete set: svid.pem, svid_key.pem, svid_bundle.pem, ...
//!   ..data -> ..version-...       the live version, switched by one rename
//!   svid.pem -> ..data/svid.pem   each configured name, a link through ..data
//! ```
//!
//! An update writes every file of the new set into a fresh version directory (created with
//! mode `0000`, `fchmod` to the exact mode, written, all fsynced, then the directory fsynced),
//! then points a temporary link at it and renames that link over `..data`: readers switch from
//! the whole old set to the whole new set at once. The per-name links are created (or a regular
//! file of the per-file layout replaced by one, by rename) after the switch; the parent
//! directory is fsynced by [`Renamed::finish`], and only then are older versions removed, so a
//! crash at any point leaves `..data` on a complete version. A reader that wants a consistent
//! pair opens the directory through `..data` once and reads each file relative to it; a version
//! removed under it makes the open fail (try again), never mixes two sets.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::OFlag;
use zeroize::Zeroizing;

use crate::atomic::{Renamed, Written, ensure_dir, fill, fsync_dir, start_writeback};
use crate::error::{IoOp, PemError};

/// The link naming the live version.
pub const DATA_LINK: &str = "..data";
/// How version directories are named: this prefix, then nanoseconds and a random part.
pub const VERSION_PREFIX: &str = "..version-";
/// The temporary link renamed over [`DATA_LINK`].
const DATA_TMP: &str = "..data_tmp";

/// One file of a version.
#[derive(Clone, PartialEq, Eq)]
struct Entry {
    /// Zeroized: the key file is one of them.
    bytes: Zeroizing<Vec<u8>>,
    mode: u32,
}

/// A cert directory in the versioned layout, with the set it holds now.
pub struct VersionedDir {
    dir: PathBuf,
    files: BTreeMap<String, Entry>,
    rng: fastrand::Rng,
}

impl std::fmt::Debug for VersionedDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedDir")
            .field("dir", &self.dir)
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl VersionedDir {
    /// The layout in `dir`, taking over the files named `names` from the live version a
    /// previous run left (so that a file written later in this run, such as a JWT-SVID, is not
    /// missing from the versions written before it). Other files of old versions are dropped
    /// with them. Nothing is written until [`Self::update`].
    #[must_use]
    pub fn open(dir: &Path, names: &[&str]) -> Self {
        let mut files = BTreeMap::new();
        let live = dir.join(DATA_LINK);
        for name in names {
            if let Some(entry) = read_regular(&live.join(name)) {
                files.insert((*name).to_owned(), entry);
            }
        }
        if !files.is_empty() {
            tracing::debug!(dir = %dir.display(), files = files.len(), "took over the live version's files");
        }
        Self {
            dir: dir.to_path_buf(),
            files,
            rng: fastrand::Rng::new(),
        }
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the files `updates` (`(name, contents, mode)`, each name a plain file name in
    /// the directory) and keeps the others of the live set: when anything differs, or a link
    /// is missing, a new version with the whole set is written and switched to. The new set is
    /// visible when this returns; [`Renamed::finish`] makes the switch durable and removes the
    /// old versions.
    ///
    /// # Errors
    /// [`PemError::Io`] naming the step. Before the switch the live version is untouched and the
    /// new directory removed; after it (a link that cannot be made) the new set is live.
    pub fn update(&mut self, updates: &[(&str, &[u8], u32)]) -> Result<Renamed, PemError> {
        let mut next = self.files.clone();
        for &(name, contents, mode) in updates {
            check_name(&self.dir, name)?;
            next.insert(
                name.to_owned(),
                Entry {
                    bytes: Zeroizing::new(contents.to_vec()),
                    mode: mode & 0o7777,
                },
            );
        }
        let data = self.dir.join(DATA_LINK);
        if next == self.files && self.is_live(&next) {
            return Ok(Renamed::done(
                Written::Unchanged,
                &self.dir,
                &data,
                Vec::new(),
            ));
        }
        ensure_dir(&self.dir)?;
        let version = self.write_version(&next)?;
        if let Err(e) = self.switch(&version) {
            remove_version(&self.dir.join(&version));
            return Err(e);
        }
        self.files = next;
        let names: Vec<String> = self.files.keys().cloned().collect();
        for name in &names {
            self.link(name)?;
        }
        let cleanup = self.old_versions(&version);
        tracing::debug!(dir = %self.dir.display(), version = %version.to_string_lossy(), "switched to a new version");
        Ok(Renamed::done(Written::Changed, &self.dir, &data, cleanup))
    }

    /// Whether the directory shows exactly `set` through `..data` and the links, as after our
    /// own last update (a restart or someone's edit makes it write a version again).
    fn is_live(&self, set: &BTreeMap<String, Entry>) -> bool {
        let live = self.dir.join(DATA_LINK);
        set.iter().all(|(name, entry)| {
            link_target(&self.dir.join(name)).is_some_and(|t| t == link_path(name))
                && read_regular(&live.join(name)).is_some_and(|on_disk| on_disk == *entry)
        })
    }

    /// A new version directory holding `set`, every file and the directory fsynced.
    fn write_version(&mut self, set: &BTreeMap<String, Entry>) -> Result<OsString, PemError> {
        let (name, path) = self.create_version_dir()?;
        let written = (|| {
            let mut opened = Vec::with_capacity(set.len());
            for (file_name, entry) in set {
                let target = path.join(file_name);
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o000)
                    .custom_flags(OFlag::O_NOFOLLOW.bits())
                    .open(&target)
                    .map_err(|e| PemError::io(IoOp::CreateTemp, &target, e))?;
                fill(&mut file, &entry.bytes, entry.mode, &target)?;
                start_writeback(&file);
                opened.push((target, file));
            }
            for (target, file) in &opened {
                file.sync_all()
                    .map_err(|e| PemError::io(IoOp::Fsync, target, e))?;
            }
            fsync_dir(&path, &path)
        })();
        match written {
            Ok(()) => Ok(name),
            Err(e) => {
                remove_version(&path);
                Err(e)
            }
        }
    }

    fn create_version_dir(&mut self) -> Result<(OsString, PathBuf), PemError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut last = None;
        for _ in 0..16 {
            let random: String = (0..6).map(|_| self.rng.alphanumeric()).collect();
            let name = OsString::from(format!("{VERSION_PREFIX}{nanos}-{random}"));
            let path = self.dir.join(&name);
            match DirBuilder::new().mode(0o755).create(&path) {
                Ok(()) => return Ok((name, path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(PemError::io(IoOp::Mkdir, &path, e)),
            }
        }
        let e = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists));
        Err(PemError::io(IoOp::Mkdir, &self.dir, e))
    }

    /// Points `..data` at `version` with one rename of a fresh link.
    fn switch(&self, version: &OsString) -> Result<(), PemError> {
        let tmp = self.dir.join(DATA_TMP);
        remove_link(&tmp)?;
        std::os::unix::fs::symlink(version, &tmp)
            .map_err(|e| PemError::io(IoOp::Symlink, &tmp, e))?;
        let data = self.dir.join(DATA_LINK);
        fs::rename(&tmp, &data).map_err(|e| PemError::io(IoOp::Rename, &data, e))
    }

    /// Makes `name` a link to `..data/name`, replacing whatever file is there by one rename.
    fn link(&mut self, name: &str) -> Result<(), PemError> {
        let path = self.dir.join(name);
        let target = link_path(name);
        if link_target(&path).is_some_and(|t| t == target) {
            return Ok(());
        }
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            let e = io::Error::new(io::ErrorKind::IsADirectory, "a directory is in the way");
            return Err(PemError::io(IoOp::Symlink, &path, e));
        }
        let random: String = (0..12).map(|_| self.rng.alphanumeric()).collect();
        let tmp = self.dir.join(format!(".{name}.link-{random}"));
        std::os::unix::fs::symlink(&target, &tmp)
            .map_err(|e| PemError::io(IoOp::Symlink, &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            PemError::io(IoOp::Rename, &path, e)
        })
    }

    /// Every version directory but `keep`.
    fn old_versions(&self, keep: &OsString) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                name != *keep
                    && name.as_bytes().starts_with(VERSION_PREFIX.as_bytes())
                    && e.file_type().is_ok_and(|t| t.is_dir())
            })
            .map(|e| e.path())
            .collect()
    }
}

/// `..data/<name>`, the target of each per-name link.
fn link_path(name: &str) -> PathBuf {
    Path::new(DATA_LINK).join(name)
}

fn link_target(path: &Path) -> Option<PathBuf> {
    fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_symlink())
        .and_then(|_| fs::read_link(path).ok())
}

/// A plain name the layout may own: one component, not hidden behind `..`.
fn check_name(dir: &Path, name: &str) -> Result<(), PemError> {
    let plain = !name.is_empty()
        && !name.contains('/')
        && !name.starts_with("..")
        && name != "."
        && !name.contains('\0');
    if plain {
        Ok(())
    } else {
        let e = io::Error::new(
            io::ErrorKind::InvalidInput,
            "the versioned layout holds plain file names only",
        );
        Err(PemError::io(IoOp::CreateTemp, dir.join(name), e))
    }
}

/// The contents and mode of a regular file (through `..data`, which is a link; the file itself
/// must not be one).
fn read_regular(path: &Path) -> Option<Entry> {
    let mut file = File::options()
        .read(true)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes).ok()?;
    Some(Entry {
        bytes,
        mode: meta.mode() & 0o7777,
    })
}

fn remove_link(path: &Path) -> Result<(), PemError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PemError::io(IoOp::Remove, path, e)),
    }
}

fn remove_version(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove an unfinished version");
    }
}

#[cfg(test)]
mod tests;
