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
//! 4. Write everything, `fsync`, `rename` over the target, `fsync` the directory (a batch of
//!    files: all written, then all fsynced, then all renamed, then each directory fsynced once;
//!    [`replace_all`] leaves the directory fsyncs to the caller, after it has notified).
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
/// (temp file created with its mode and written), then all of them are fsynced, then renamed
/// over their targets in order, then each directory is fsynced once. Same guarantees per file
/// as [`write_atomic`]; the batch saves one directory fsync per extra file, which is most of
/// the cost of an update on a slow disk.
///
/// # Errors
/// As [`write_atomic`]. A failure while staging leaves every target untouched; a failed
/// rename leaves the files before it (in the given order) replaced and the rest untouched.
/// No temp file is left behind either way.
pub fn write_atomic_all(files: &[(&Path, &[u8], u32)]) -> Result<Written, PemError> {
    replace_all(files)?.finish()
}

/// The first half of [`write_atomic_all`]: every changed file's new content is durable and
/// renamed into place, so readers see it now; the directory fsyncs that make the renames
/// themselves survive a crash are left to [`Renamed::finish`]. A caller that notifies a
/// consumer does so in between: a crash before `finish` can only bring back the complete old
/// file, never an empty or torn one, because each file's data was synced before its rename.
///
/// # Errors
/// As [`write_atomic_all`], except the directory fsync.
pub fn replace_all(files: &[(&Path, &[u8], u32)]) -> Result<Renamed, PemError> {
    replace_all_with(files, &mut fastrand::Rng::new())
}

/// Files renamed into place whose directories still need an fsync (see [`replace_all`]).
#[derive(Debug)]
#[must_use = "call finish() so the renames are durable"]
pub struct Renamed {
    written: Written,
    /// Each target, with its directory and file name, in write order.
    targets: Vec<(PathBuf, PathBuf, OsString)>,
    /// Directories to remove once the renames are durable (old versions of the versioned
    /// layout: removed only after the switch away from them survives a crash).
    cleanup: Vec<PathBuf>,
}

impl Renamed {
    /// A rename of `target` (in `dir`) done by other code, to be made durable by
    /// [`Self::finish`], which then removes the `cleanup` directories.
    pub(crate) fn done(written: Written, dir: &Path, target: &Path, cleanup: Vec<PathBuf>) -> Self {
        let name = target.file_name().unwrap_or_default().to_os_string();
        Self {
            written,
            targets: vec![(dir.to_path_buf(), target.to_path_buf(), name)],
            cleanup,
        }
    }

    /// Whether any file changed.
    pub fn written(&self) -> Written {
        self.written
    }

    /// Fsyncs each directory once and removes stray temp files of these targets (one
    /// directory listing per directory). Returns whether any file changed.
    ///
    /// # Errors
    /// [`PemError::Io`] with [`IoOp::FsyncDir`]: the new files are in place, their
    /// durability is unknown.
    pub fn finish(self) -> Result<Written, PemError> {
        let mut dirs: Vec<(&Path, &Path, Vec<&OsStr>)> = Vec::new();
        for (dir, target, name) in &self.targets {
            match dirs.iter_mut().find(|(d, _, _)| d == dir) {
                Some((_, _, names)) => names.push(name),
                None => dirs.push((dir, target, vec![name])),
            }
        }
        for (dir, target, _) in &dirs {
            if self.written.is_changed() {
                fsync_dir(dir, target)?;
            }
        }
        for (dir, _, names) in &dirs {
            remove_stray_temps(dir, names);
        }
        for old in &self.cleanup {
            match fs::remove_dir_all(old) {
                Ok(()) => tracing::debug!(path = %old.display(), "removed an old version"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %old.display(), error = %e, "cannot remove an old version");
                }
            }
        }
        Ok(self.written)
    }
}

/// A filled temp file waiting to be synced and renamed over `target`.
struct Staged<'a> {
    tmp: PathBuf,
    target: &'a Path,
    mode: u32,
}

fn write_all_with(
    files: &[(&Path, &[u8], u32)],
    rng: &mut fastrand::Rng,
) -> Result<Written, PemError> {
    replace_all_with(files, rng)?.finish()
}

fn replace_all_with(
    files: &[(&Path, &[u8], u32)],
    rng: &mut fastrand::Rng,
) -> Result<Renamed, PemError> {
    let mut targets = Vec::with_capacity(files.len());
    let mut staged: Vec<(Staged<'_>, File)> = Vec::with_capacity(files.len());
    for &(path, contents, mode) in files {
        let mode = mode & 0o7777;
        let (dir, name) = split(path)?;
        targets.push((dir.to_path_buf(), path.to_path_buf(), name.to_os_string()));
        if is_current(path, contents, mode) {
            continue;
        }
        match stage(dir, name, path, contents, mode, rng) {
            Ok((tmp, file)) => staged.push((
                Staged {
                    tmp,
                    target: path,
                    mode,
                },
                file,
            )),
            Err(e) => {
                discard(staged.iter().map(|(s, _)| s));
                return Err(e);
            }
        }
    }
    let staged = sync_staged(staged)?;
    for (index, file) in staged.iter().enumerate() {
        if let Err(e) = fs::rename(&file.tmp, file.target) {
            discard(&staged[index..]);
            return Err(PemError::io(IoOp::Rename, file.target, e));
        }
        let mode = file.mode;
        tracing::debug!(path = %file.target.display(), mode = format_args!("{mode:o}"), "file written");
    }
    let written = if staged.is_empty() {
        Written::Unchanged
    } else {
        Written::Changed
    };
    Ok(Renamed {
        written,
        targets,
        cleanup: Vec::new(),
    })
}

/// Makes every staged file's data durable before any rename. Writeback of all of them is
/// started first, so the first fsync's journal commit carries every file and the later
/// fsyncs find little left to do: on ext4 this took a three-file update from ~0.95 ms to
/// ~0.7 ms (docs/benchmarks.md).
fn sync_staged(staged: Vec<(Staged<'_>, File)>) -> Result<Vec<Staged<'_>>, PemError> {
    for (_, file) in &staged {
        start_writeback(file);
    }
    let mut failed = None;
    for (file, handle) in &staged {
        if let Err(e) = handle.sync_all() {
            failed = Some(PemError::io(IoOp::Fsync, file.target, e));
            break;
        }
    }
    let staged: Vec<Staged<'_>> = staged.into_iter().map(|(s, _)| s).collect();
    match failed {
        Some(e) => {
            discard(&staged);
            Err(e)
        }
        None => Ok(staged),
    }
}

/// Asks the kernel to start writing `file`'s dirty pages now, without waiting (Linux
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`). Only a hint: the fsync that follows is what
/// makes the data durable, so a failure here is ignored.
#[cfg(target_os = "linux")]
pub(crate) fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd as _;
    #[expect(
        unsafe_code,
        reason = "sync_file_range has no safe wrapper in nix; it takes a descriptor we own and two plain integers"
    )]
    // SAFETY: the descriptor is open for the duration of the call; no memory is passed.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn start_writeback(_file: &File) {}

/// Removes the temp files of a batch that will not be renamed.
fn discard<'s, 'a: 's>(staged: impl IntoIterator<Item = &'s Staged<'a>>) {
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

/// Creates and fills a temp file for `path` (not yet synced); removes it again on failure.
fn stage(
    dir: &Path,
    name: &OsStr,
    path: &Path,
    contents: &[u8],
    mode: u32,
    rng: &mut fastrand::Rng,
) -> Result<(PathBuf, File), PemError> {
    let (tmp, mut file) = create_temp(dir, name, path, rng)?;
    if let Err(e) = fill(&mut file, contents, mode, path) {
        if let Err(rm) = fs::remove_file(&tmp) {
            tracing::warn!(path = %tmp.display(), error = %rm, "cannot remove temporary file");
        }
        return Err(e);
    }
    Ok((tmp, file))
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

pub(crate) fn fill(
    file: &mut File,
    contents: &[u8],
    mode: u32,
    path: &Path,
) -> Result<(), PemError> {
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| PemError::io(IoOp::SetMode, path, e))?;
    file.write_all(contents)
        .map_err(|e| PemError::io(IoOp::Write, path, e))
}

pub(crate) fn fsync_dir(dir: &Path, path: &Path) -> Result<(), PemError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PemError::io(IoOp::FsyncDir, path, e))
}

/// Best effort: a failure here never fails the write that just succeeded.
fn remove_stray_temps(dir: &Path, names: &[&OsStr]) {
    let prefixes: Vec<Vec<u8>> = names.iter().map(|name| temp_prefix(name)).collect();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list directory to remove stray temporary files");
            return;
        }
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        let ours = prefixes
            .iter()
            .any(|prefix| is_temp_of(&entry_name, prefix));
        if !ours || entry.file_type().is_ok_and(|t| t.is_dir()) {
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
mod tests;
