//! The atomic, mode-exact file writer (docs/behaviour.md#how-files-are-written).
//!
//! Steps for one file:
//! 1. If the target is a regular file with the same mode and the same bytes: done,
//!    [`Written::Unchanged`], nothing touched.
//! 2. Create `.<name>.tmp-<12 random alphanumerics>` in the target's directory with
//!    `O_CREAT | O_EXCL | O_NOFOLLOW` and creation mode `0000`: an existing entry at that
//!    name, symlink or not, makes the open fail (another random name is tried), so a planted
//!    symlink is never followed, and the file is never more open than the final mode.
//! 3. `fchmod` to the exact mode (umask plays no part) before the first byte is written.
//! 4. Write everything, `fsync`, `rename` over the target, `fsync` the directory.
//!    `rename` needs write permission on the directory only, so a `0444` target is replaced
//!    as easily as a `0644` one. On any failure before the rename the temp file is removed.
//! 5. Stray temp files of this same target (exact pattern above, e.g. left by a writer that
//!    was killed between steps 2 and 4) are removed. The pattern is specific enough that the
//!    temp files of another target in the same directory never match, but two processes
//!    writing the *same* target at the same moment is not supported (one may remove the
//!    other's in-flight temp file, which then fails its write cleanly).

use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use zeroize::Zeroizing;

use crate::error::{IoOp, PemError};

/// Outcome of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Written {
    /// The file was (re)written: its content or its mode differed, or it did not exist.
    Changed,
    /// The file already had exactly this content and mode; nothing was written.
    Unchanged,
}

impl Written {
    /// True for [`Written::Changed`].
    #[must_use]
    pub fn is_changed(self) -> bool {
        self == Self::Changed
    }

    /// `Changed` if either is `Changed`.
    pub fn or(self, other: Self) -> Self {
        if self.is_changed() || other.is_changed() {
            Self::Changed
        } else {
            Self::Unchanged
        }
    }
}

const TEMP_MARK: &[u8] = b".tmp-";
const TEMP_RANDOM_LEN: usize = 12;
const TEMP_ATTEMPTS: usize = 16;

/// Writes `contents` to `path` atomically with exactly `mode` (permission bits, `& 0o7777`),
/// unless the file already holds these bytes with this mode. See the module docs for the
/// steps. A symlink at `path` itself is replaced by a regular file, never written through.
///
/// # Errors
/// [`PemError::Io`] naming the failed step (create temp, set mode, write, fsync, rename,
/// fsync dir). When the error is from a step before the rename, the target is untouched and
/// the temp file is removed; a failing directory fsync means the new file is in place but
/// its durability is unknown.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<Written, PemError> {
    write_atomic_with(path, contents, mode, &mut fastrand::Rng::new())
}

/// [`write_atomic`] with the random source for temp names supplied (tests make it
/// predictable to plant symlinks at the exact names the writer will try).
pub(crate) fn write_atomic_with(
    path: &Path,
    contents: &[u8],
    mode: u32,
    rng: &mut fastrand::Rng,
) -> Result<Written, PemError> {
    write_all_with(&[(path, contents, mode)], rng)
}

/// Writes several files as one update, in the order given: every changed file is first staged
/// (temp file created with its mode, written, fsynced), then the temp files are renamed over
/// their targets in order, then each directory is fsynced once. Same guarantees per file as
/// [`write_atomic`]; the batch saves one directory fsync per extra file, which is most of the
/// cost of an update on a slow disk.
///
/// # Errors
/// As [`write_atomic`]. A failure while staging leaves every target untouched; a failed
/// rename leaves the files before it (in the given order) replaced and the rest untouched.
/// No temp file is left behind either way.
pub fn write_atomic_all(files: &[(&Path, &[u8], u32)]) -> Result<Written, PemError> {
    write_all_with(files, &mut fastrand::Rng::new())
}

/// A filled and fsynced temp file waiting to be renamed over `target`.
struct Staged<'a> {
    tmp: PathBuf,
    target: &'a Path,
    dir: &'a Path,
    mode: u32,
}

fn write_all_with(
    files: &[(&Path, &[u8], u32)],
    rng: &mut fastrand::Rng,
) -> Result<Written, PemError> {
    let mut staged: Vec<Staged<'_>> = Vec::with_capacity(files.len());
    for &(path, contents, mode) in files {
        let mode = mode & 0o7777;
        let (dir, name) = split(path)?;
        if is_current(path, contents, mode) {
            continue;
        }
        match stage(dir, name, path, contents, mode, rng) {
            Ok(tmp) => staged.push(Staged {
                tmp,
                target: path,
                dir,
                mode,
            }),
            Err(e) => {
                discard(&staged);
                return Err(e);
            }
        }
    }
    for (index, file) in staged.iter().enumerate() {
        if let Err(e) = fs::rename(&file.tmp, file.target) {
            discard(&staged[index..]);
            return Err(PemError::io(IoOp::Rename, file.target, e));
        }
    }
    let mut synced: Vec<&Path> = Vec::new();
    for file in &staged {
        if !synced.contains(&file.dir) {
            fsync_dir(file.dir, file.target)?;
            synced.push(file.dir);
        }
        let mode = file.mode;
        tracing::debug!(path = %file.target.display(), mode = format_args!("{mode:o}"), "file written");
    }
    for &(path, _, _) in files {
        let (dir, name) = split(path)?;
        remove_stray_temps(dir, name);
    }
    Ok(if staged.is_empty() {
        Written::Unchanged
    } else {
        Written::Changed
    })
}

/// Removes the temp files of a batch that will not be renamed.
fn discard(staged: &[Staged<'_>]) {
    for file in staged {
        if let Err(rm) = fs::remove_file(&file.tmp) {
            tracing::warn!(path = %file.tmp.display(), error = %rm, "cannot remove temporary file");
        }
    }
}

/// Creates `dir` and its missing parents with mode `0755` (minus the umask, like Go's
/// `os.MkdirAll(dir, 0755)` upstream). An existing directory is left as it is.
///
/// # Errors
/// [`PemError::Io`] with [`IoOp::Mkdir`], e.g. when a path component is a regular file.
pub fn ensure_dir(dir: &Path) -> Result<(), PemError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| PemError::io(IoOp::Mkdir, dir, e))
}

fn split(path: &Path) -> Result<(&Path, &OsStr), PemError> {
    let Some(name) = path.file_name() else {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "path has no file name");
        return Err(PemError::io(IoOp::CreateTemp, path, e));
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// True when `path` is a regular file (not a symlink) with exactly `mode` and `contents`.
/// Any doubt (unreadable, vanished) means "not current": the write then replaces it.
fn is_current(path: &Path, contents: &[u8], mode: u32) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file()
        || meta.permissions().mode() & 0o7777 != mode
        || meta.len() != contents.len() as u64
    {
        return false;
    }
    let Ok(mut file) = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)
    else {
        return false;
    };
    // Zeroized: when the target is the key file this buffer holds the previous key.
    let mut old = Zeroizing::new(Vec::with_capacity(contents.len() + 1));
    // Read one byte past the expected size to notice a file that grew meanwhile.
    match (&mut file)
        .take(contents.len() as u64 + 1)
        .read_to_end(&mut old)
    {
        Ok(_) => old.as_slice() == contents,
        Err(_) => false,
    }
}

fn temp_prefix(name: &OsStr) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(name.len() + 1 + TEMP_MARK.len());
    prefix.push(b'.');
    prefix.extend_from_slice(name.as_bytes());
    prefix.extend_from_slice(TEMP_MARK);
    prefix
}

/// `.<name>.tmp-<12 random alphanumerics>`.
pub(crate) fn temp_name(name: &OsStr, rng: &mut fastrand::Rng) -> OsString {
    let mut bytes = temp_prefix(name);
    // Alphanumeric chars are ASCII, so each is exactly one byte.
    bytes.extend((0..TEMP_RANDOM_LEN).map(|_| rng.alphanumeric() as u8));
    OsString::from_vec(bytes)
}

fn is_temp_of(entry: &OsStr, prefix: &[u8]) -> bool {
    entry.as_bytes().strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == TEMP_RANDOM_LEN && rest.iter().all(u8::is_ascii_alphanumeric)
    })
}

/// Creates, fills and fsyncs a temp file for `path`; removes it again on failure.
fn stage(
    dir: &Path,
    name: &OsStr,
    path: &Path,
    contents: &[u8],
    mode: u32,
    rng: &mut fastrand::Rng,
) -> Result<PathBuf, PemError> {
    let (tmp, file) = create_temp(dir, name, path, rng)?;
    if let Err(e) = fill(file, contents, mode, path) {
        if let Err(rm) = fs::remove_file(&tmp) {
            tracing::warn!(path = %tmp.display(), error = %rm, "cannot remove temporary file");
        }
        return Err(e);
    }
    Ok(tmp)
}

fn create_temp(
    dir: &Path,
    name: &OsStr,
    path: &Path,
    rng: &mut fastrand::Rng,
) -> Result<(PathBuf, File), PemError> {
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let tmp = dir.join(temp_name(name, rng));
        // create_new = O_CREAT|O_EXCL; std adds O_CLOEXEC. Mode 0000 at creation: the file
        // is never wider than the final mode, whatever the umask; fchmod sets it next.
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o000)
            .custom_flags(OFlag::O_NOFOLLOW.bits())
            .open(&tmp);
        match opened {
            Ok(file) => return Ok((tmp, file)),
            // Something (maybe a planted symlink) is there already: pick another name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(PemError::io(IoOp::CreateTemp, path, e)),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists));
    Err(PemError::io(IoOp::CreateTemp, path, e))
}

fn fill(mut file: File, contents: &[u8], mode: u32, path: &Path) -> Result<(), PemError> {
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| PemError::io(IoOp::SetMode, path, e))?;
    file.write_all(contents)
        .map_err(|e| PemError::io(IoOp::Write, path, e))?;
    file.sync_all()
        .map_err(|e| PemError::io(IoOp::Fsync, path, e))
}

fn fsync_dir(dir: &Path, path: &Path) -> Result<(), PemError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PemError::io(IoOp::FsyncDir, path, e))
}

/// Best effort: a failure here never fails the write that just succeeded.
fn remove_stray_temps(dir: &Path, name: &OsStr) {
    let prefix = temp_prefix(name);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list directory to remove stray temporary files");
            return;
        }
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        if !is_temp_of(&entry_name, &prefix) || entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // unlink never follows a symlink: at worst it removes a link planted at our name.
        match fs::remove_file(entry.path()) {
            Ok(()) => {
                tracing::info!(path = %entry.path().display(), "removed stray temporary file");
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove stray temporary file");
            }
        }
    }
}

#[cfg(test)]
#[path = "atomic_tests.rs"]
mod tests;
