//! The checks of annotation values one by one: paths, file names, object names, audiences.
//! What the helper itself checks (signals, rules between keys) is left to its own validation
//! (`helper_env`), so the two cannot disagree.

use crate::annotations::{CERT_DIR, JWT_AUDIENCES, JwtFile, PID_FILE_NAME};
use crate::helper_env::{CONFIG_DIR, SOCKET_DIR};
use crate::refusal::Refusal;

/// Top-level directories of a Linux root filesystem (Filesystem Hierarchy Standard 3.0, ch. 3):
/// a volume mounted at one of them would hide the image's own files from every container.
const SYSTEM_DIRS: [&str; 17] = [
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt", "/proc",
    "/root", "/run", "/sbin", "/sys", "/tmp", "/usr",
];

pub(crate) fn invalid(annotation: &str, value: &str, expected: impl Into<String>) -> Refusal {
    Refusal::InvalidAnnotation {
        annotation: annotation.to_owned(),
        value: value.to_owned(),
        expected: expected.into(),
    }
}

/// An absolute directory for a volume mount: no `.`/`..` components, not `/` itself, no `:`
/// (Kubernetes refuses it in a mountPath).
pub(crate) fn check_dir(annotation: &str, value: &str) -> Result<(), Refusal> {
    const EXPECTED: &str = "an absolute directory path below / without \".\", \"..\", \"//\" or \":\", e.g. /run/spiffe/certs";
    let trimmed = value.trim_end_matches('/');
    let ok = trimmed.starts_with('/')
        && !value.contains(':')
        && trimmed
            .split('/')
            .skip(1)
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(invalid(annotation, value, EXPECTED))
    }
}

/// The certificate directory: a clean absolute directory that hides nothing of the image's
/// (not a top-level system directory) and does not overlap the helper's own mounts (the agent
/// socket, the `ConfigMap`), which would give one container two mounts at one path.
pub(crate) fn check_cert_dir(value: &str) -> Result<(), Refusal> {
    check_dir(CERT_DIR, value)?;
    let dir = value.trim_end_matches('/');
    if SYSTEM_DIRS.contains(&dir) {
        return Err(invalid(
            CERT_DIR,
            value,
            format!(
                "a directory of its own, not {dir}: the volume would hide the image's {dir} in every container"
            ),
        ));
    }
    let overlaps = |other: &str| {
        dir == other
            || other.starts_with(&format!("{dir}/"))
            || dir.starts_with(&format!("{other}/"))
    };
    if let Some(other) = [SOCKET_DIR, CONFIG_DIR].into_iter().find(|o| overlaps(o)) {
        return Err(invalid(
            CERT_DIR,
            value,
            format!(
                "a directory apart from {other}, where the helper mounts the agent socket or its ConfigMap"
            ),
        ));
    }
    Ok(())
}

/// A name inside the certificate directory: the helper resolves relative names against
/// `cert_dir` (docs/configuration.md, "Output files"), and only that directory is writable
/// in the helper (read-only root filesystem), so a path elsewhere would fail at the first write.
pub(crate) fn check_file_name(annotation: &'static str, value: &str) -> Result<String, Refusal> {
    let ok = !value.is_empty()
        && value != "."
        && value != ".."
        && value.len() <= 255
        && !value.contains(['/', '\0']);
    if ok {
        Ok(value.to_owned())
    } else {
        Err(invalid(
            annotation,
            value,
            "a file name inside cert-dir (no \"/\"), e.g. svid.pem",
        ))
    }
}

/// The pid file is written by an application container, so it cannot be in the certificate
/// directory (read-only in application containers).
pub(crate) fn check_pid_file(value: &str, cert_dir: &str) -> Result<String, Refusal> {
    if value.ends_with('/') || check_dir(PID_FILE_NAME, value).is_err() {
        return Err(invalid(
            PID_FILE_NAME,
            value,
            "the absolute path of the pid file in the application container, e.g. /run/nginx/nginx.pid",
        ));
    }
    let dir = cert_dir.trim_end_matches('/');
    if value.starts_with(&format!("{dir}/")) {
        return Err(invalid(
            PID_FILE_NAME,
            value,
            format!(
                "a path outside cert-dir ({dir} is read-only in application containers); use a directory the application writes"
            ),
        ));
    }
    Ok(value.to_owned())
}

/// A Kubernetes object name (a DNS subdomain, RFC 1123): lower-case letters, digits, `-` and
/// `.`, starting and ending with a letter or digit, at most 253 characters.
pub(crate) fn check_object_name(annotation: &str, value: &str) -> Result<(), Refusal> {
    let bytes = value.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = !bytes.is_empty()
        && bytes.len() <= 253
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-' || *b == b'.');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            annotation,
            value,
            "the name of a ConfigMap in the pod's namespace (lower-case letters, digits, '-' and '.')",
        ))
    }
}

/// `a, b` → one JWT-SVID file per audience, named `jwt_<audience>.token` with every character
/// other than letters, digits, `.`, `_` and `-` replaced by `_` (an audience is often a URL).
pub(crate) fn jwt_files(value: &str) -> Result<Vec<JwtFile>, Refusal> {
    let mut files: Vec<JwtFile> = Vec::new();
    for audience in value.split(',').map(str::trim) {
        if audience.is_empty() {
            return Err(invalid(
                JWT_AUDIENCES,
                value,
                "comma-separated audiences, none empty, e.g. \"api.example.org, vault\"",
            ));
        }
        let safe: String = audience
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
                _ => '_',
            })
            .collect();
        let file_name = format!("jwt_{safe}.token");
        if file_name.len() > 255 {
            return Err(invalid(
                JWT_AUDIENCES,
                value,
                "audiences of at most 245 bytes each: the file name jwt_<audience>.token must fit in 255",
            ));
        }
        if let Some(other) = files.iter().find(|f| f.file_name == file_name) {
            return Err(invalid(
                JWT_AUDIENCES,
                value,
                format!(
                    "audiences with distinct file names: {:?} and {:?} would both be written to {file_name}",
                    other.audience, audience
                ),
            ));
        }
        files.push(JwtFile {
            audience: audience.to_owned(),
            file_name,
        });
    }
    Ok(files)
}
