//! Consumer-notification faults (fake agent, so updates come on demand): `cmd` missing, `cmd`
//! exiting at once every time, a pid file naming a dead process, pid file values <= 0.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use crate::faults::kit::{
    Fake, Running, X509Files, daemon_config, live, log_has, ready, start_daemon, wait_ready,
};
use crate::inspect::leaf;
use crate::support::{
    Proc, count_signals, free_port, recorded_starts, scratch, signal_recorder, stop_cleanly,
    wait_until, write_file,
};

/// Pushes a fresh SVID and waits until the helper has written it.
fn rotate(fake: &Fake, files: &X509Files, helper: &mut crate::support::Helper) {
    let serial = fake.push_fresh();
    assert!(
        wait_until(Duration::from_secs(10), || leaf(&files.svid)
            .is_some_and(|l| l.serial == serial)),
        "update not written; log:\n{}",
        crate::faults::kit::tail(helper)
    );
    helper.assert_running("after an update");
}

/// `cmd` does not exist: logged at every update, the helper keeps writing and stays healthy.
#[test]
fn missing_cmd_is_logged_and_the_helper_keeps_running() {
    let extra = "cmd = \"/nonexistent/consumer\"\ncmd_args = \"-x\"\nrenew_signal = \"SIGHUP\"\n";
    let Running {
        fake,
        mut helper,
        files,
        port,
        dir: _dir,
    } = Running::start(extra);
    for _ in 0..3 {
        rotate(&fake, &files, &mut helper);
    }
    let log = helper.log();
    let attempts = log
        .lines()
        .filter(|l| {
            l.contains("cannot start cmd")
                || (l.contains("/nonexistent/consumer") && l.contains("No such file"))
        })
        .count();
    assert!(
        attempts >= 4,
        "expected a logged failure per update (4), saw {attempts}; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    assert_eq!(live(port), Some(200));
    assert_eq!(ready(port), Some(200));
    stop_cleanly(&mut helper);
}

/// `cmd` exits at once every time: started again at each update (not in a loop between
/// updates), the helper keeps running.
#[test]
fn cmd_exiting_at_once_is_restarted_only_at_updates() {
    let fake = Fake::start();
    fake.push_fresh();
    let dir = scratch();
    let certs = dir.path().join("certs");
    let files = X509Files::in_dir(&certs);
    let script = write_file(
        dir.path(),
        "quick.sh",
        "#!/bin/sh\necho \"$$\" >> \"$1/starts\"\nexit 3\n",
    );
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let extra = format!(
        "cmd = \"{}\"\ncmd_args = \"{}\"\nrenew_signal = \"SIGHUP\"\n",
        script.display(),
        dir.path().display()
    );
    let mut helper = start_daemon(
        dir.path(),
        &daemon_config(&fake.endpoint(), &certs, port, &extra),
    );
    wait_ready(&mut helper, &files.svid, port);
    assert!(wait_until(Duration::from_secs(5), || recorded_starts(
        dir.path()
    )
    .len()
        == 1));
    let exits = |helper: &crate::support::Helper| {
        helper
            .log()
            .lines()
            .filter(|l| l.contains("cmd exited"))
            .count()
    };
    for n in 2..=4 {
        // The previous child has exited and the helper has reaped it (its "cmd exited" line).
        assert!(
            wait_until(Duration::from_secs(5), || exits(&helper) == n - 1),
            "start {} did not end in a logged exit; log:\n{}",
            n - 1,
            crate::faults::kit::tail(&helper)
        );
        rotate(&fake, &files, &mut helper);
        assert!(
            wait_until(Duration::from_secs(5), || recorded_starts(dir.path()).len()
                == n),
            "cmd not restarted at update {n}; log:\n{}",
            crate::faults::kit::tail(&helper)
        );
    }
    assert!(
        wait_until(Duration::from_secs(5), || exits(&helper) == 4),
        "the fourth start did not end in a logged exit; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    // Not an event to wait for: a window in which nothing may happen (a restart loop would
    // start the child again within milliseconds).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        recorded_starts(dir.path()).len(),
        4,
        "cmd restarted without an update"
    );
    assert_eq!(live(port), Some(200));
    stop_cleanly(&mut helper);
}

/// The pid file names a process that is gone: logged, retried, the helper keeps running and a
/// SIGTERM still stops it at once (pending retries do not hold it).
#[test]
fn pid_file_naming_a_dead_pid_is_logged_and_shutdown_stays_prompt() {
    let fake = Fake::start();
    fake.push_fresh();
    let dir = scratch();
    let certs = dir.path().join("certs");
    let files = X509Files::in_dir(&certs);
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let pid_file = write_file(dir.path(), "app.pid", &format!("{dead}\n"));
    let port = free_port();
    let extra = format!(
        "pid_file_name = \"{}\"\nrenew_signal = \"SIGHUP\"\n",
        pid_file.display()
    );
    let mut helper = start_daemon(
        dir.path(),
        &daemon_config(&fake.endpoint(), &certs, port, &extra),
    );
    wait_ready(&mut helper, &files.svid, port);
    rotate(&fake, &files, &mut helper);
    assert!(
        wait_until(Duration::from_secs(5), || log_has(
            &helper.log(),
            &["pid", &dead.to_string()]
        )),
        "the dead pid is not logged; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    // A few retries (100 ms doubling), each logged.
    let refusals = || {
        helper
            .log()
            .lines()
            .filter(|l| l.contains("not signalling pid file") && l.contains(&dead.to_string()))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(10), || refusals() >= 3),
        "fewer than 3 logged attempts for the dead pid; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    helper.assert_running("with a dead pid in the pid file");
    assert_eq!(live(port), Some(200));
    let took = stop_cleanly(&mut helper);
    eprintln!("dead pid: SIGTERM during pid-file retries took {took:?}");
}

/// pid file "0" or "-<pgid>": never signalled (0 would signal the helper's own process group,
/// a negative value another group). A positive pid of a live process is signalled (control).
#[test]
fn pid_file_zero_or_negative_is_never_signalled() {
    let fake = Fake::start();
    fake.push_fresh();
    let dir = scratch();
    let certs = dir.path().join("certs");
    let files = X509Files::in_dir(&certs);
    // A bystander in its own process group, recording any SIGHUP it gets.
    let bystander_dir = dir.path().join("bystander");
    fs::create_dir(&bystander_dir).unwrap();
    let recorder = signal_recorder(&bystander_dir);
    let mut cmd = Command::new(&recorder);
    cmd.arg(&bystander_dir);
    let bystander = Proc::spawn(cmd);
    assert!(wait_until(Duration::from_secs(5), || !recorded_starts(
        &bystander_dir
    )
    .is_empty()));

    let pid_file = write_file(dir.path(), "app.pid", "0\n");
    let port = free_port();
    let extra = format!(
        "pid_file_name = \"{}\"\nrenew_signal = \"SIGHUP\"\n",
        pid_file.display()
    );
    // The helper runs in its own process group (support::Helper): signalling "0" would SIGHUP
    // the helper itself, whose default action is to terminate.
    let mut helper = start_daemon(
        dir.path(),
        &daemon_config(&fake.endpoint(), &certs, port, &extra),
    );
    wait_ready(&mut helper, &files.svid, port);
    assert!(
        wait_until(Duration::from_secs(5), || log_has(
            &helper.log(),
            &["not > 0"]
        ) || log_has(
            &helper.log(),
            &["process group"]
        )),
        "pid 0 not refused in the log; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    helper.assert_running("after pid file 0");

    write_file(dir.path(), "app.pid", &format!("-{}\n", bystander.pid()));
    rotate(&fake, &files, &mut helper);
    // Refused at the update and again at the first retry (100 ms later): the bystander is
    // left alone across both.
    let negative = format!("pid -{} is not > 0", bystander.pid());
    assert!(
        wait_until(Duration::from_secs(5), || helper
            .log()
            .lines()
            .filter(|l| l.contains(&negative))
            .count()
            >= 2),
        "the negative pid was not refused twice in the log; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    assert_eq!(
        count_signals(&bystander_dir, "HUP"),
        0,
        "a negative pid reached a process group"
    );
    helper.assert_running("after pid file -pgid");

    // Control: the same process by its positive pid does get the signal (from the update, or
    // already from a retry still pending for the previous one, which reads the file anew).
    write_file(dir.path(), "app.pid", &format!("{}\n", bystander.pid()));
    rotate(&fake, &files, &mut helper);
    assert!(
        wait_until(Duration::from_secs(5), || count_signals(
            &bystander_dir,
            "HUP"
        ) >= 1),
        "positive pid not signalled; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    stop_cleanly(&mut helper);
}
