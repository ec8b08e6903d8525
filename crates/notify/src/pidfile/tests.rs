use std::fs;
use std::os::unix::fs::{PermissionsExt as _, chown};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;
use nix::unistd::geteuid;

use super::{check_owner_and_mode, parse_pid, read_pid_file, signal_pid_file};

/// A real `PostgreSQL` 15 `postmaster.pid` (pid on the first line, seven more lines).
const POSTMASTER_PID: &str = "4242\n/var/lib/postgresql/15/main\n1764621234\n5432\n/var/run/postgresql\n*\n  5432001         0\nready   \n";

fn pid_file(dir: &Path, body: &str, mode: u32) -> PathBuf {
    let path = dir.join("app.pid");
    fs::write(&path, body).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn the_pid_is_the_first_line_trimmed_and_the_rest_is_ignored() {
    assert_eq!(parse_pid(" 1234\n"), Ok(1234));
    assert_eq!(parse_pid("1234"), Ok(1234));
    assert_eq!(parse_pid("\t77 \r\nanything\nelse"), Ok(77));
    assert_eq!(parse_pid(POSTMASTER_PID), Ok(4242));
    for bad in [
        "0",
        "-1",
        "",
        "\n1234",
        "abc",
        "12x",
        "99999999999",
        "12 34",
    ] {
        assert!(parse_pid(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn group_or_other_writable_or_foreign_owned_files_are_refused() {
    let me = 1000;
    assert!(check_owner_and_mode(me, 0o100_644, me).is_ok());
    assert!(check_owner_and_mode(0, 0o100_600, me).is_ok());
    assert!(check_owner_and_mode(0, 0o100_444, me).is_ok());
    let group = check_owner_and_mode(me, 0o100_664, me).unwrap_err();
    assert!(group.contains("0664"), "{group}");
    assert!(check_owner_and_mode(me, 0o100_646, me).is_err());
    assert!(check_owner_and_mode(0, 0o100_666, me).is_err());
    let foreign = check_owner_and_mode(1001, 0o100_600, me).unwrap_err();
    assert!(foreign.contains("uid 1001"), "{foreign}");
    // Run as root, every non-root owner is foreign.
    assert!(check_owner_and_mode(101, 0o100_600, 0).is_err());
}

#[test]
fn real_files_by_mode_and_owner() {
    let dir = tempfile::tempdir().unwrap();
    let ok = pid_file(dir.path(), POSTMASTER_PID, 0o600);
    assert_eq!(read_pid_file(&ok), Ok(4242));
    let wide = pid_file(dir.path(), "4242\n", 0o666);
    assert!(read_pid_file(&wide).unwrap_err().contains("0666"));
    let own = pid_file(dir.path(), &format!("{}\n", std::process::id()), 0o644);
    assert!(read_pid_file(&own).unwrap_err().contains("helper itself"));
    assert!(read_pid_file(&dir.path().join("missing")).is_err());
    let zero = pid_file(dir.path(), "0\nmore\n", 0o644);
    assert!(read_pid_file(&zero).unwrap_err().contains("process group"));
}

#[test]
fn a_pid_file_owned_by_another_user_is_refused_and_one_owned_by_root_is_trusted() {
    // Needs a file owned by another uid, which only root can make (CI runs as root).
    assert!(
        geteuid().is_root(),
        "this test must run as root: it chowns a pid file to another uid"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = pid_file(dir.path(), "4242\n", 0o644);
    chown(&path, Some(12345), None).unwrap();
    assert!(read_pid_file(&path).unwrap_err().contains("uid 12345"));
    chown(&path, Some(0), None).unwrap();
    assert_eq!(read_pid_file(&path), Ok(4242));
}

#[test]
fn a_postmaster_style_file_signals_the_process_on_its_first_line() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let body = POSTMASTER_PID.replacen("4242", &sleeper.id().to_string(), 1);
    let path = pid_file(dir.path(), &body, 0o600);
    let pid = signal_pid_file(&path, Signal::SIGTERM).unwrap();
    assert_eq!(u32::try_from(pid).unwrap(), sleeper.id());
    let status = sleeper.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
}

#[test]
fn a_fifo_at_the_pid_file_path_is_refused_without_waiting_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.pid");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // A blocking open would wait here for a writer that never comes.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(read_pid_file(&path)));
    let read = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("reading a FIFO pid file hung");
    assert_eq!(read, Err("not a regular file".to_owned()));
}
