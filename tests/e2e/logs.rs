//! Logs (docs/behaviour.md#logs, docs/configuration.md `log_level` and `log_format`): JSON
//! lines with the event's fields at the top level, `RUST_LOG` overriding `log_level`, and an
//! unparsable `RUST_LOG` ignored with a warning. The daemon runs on the fake agent, which hands
//! it one SVID at once.

use std::process::Command;

use crate::faults::kit::{Fake, X509Files, wait_ready};
use crate::support::{HELPER, Helper, WORKLOAD, free_port, scratch, stop_cleanly, write_file};

/// Starts a daemon on a fresh fake agent with `settings` (the logging keys) and `RUST_LOG`
/// when given, waits until it has written its SVID, stops it and returns its log.
fn daemon_log(settings: &str, rust_log: Option<&str>) -> String {
    let fake = Fake::start();
    let serial = fake.push_fresh();
    let dir = scratch();
    let certs = dir.path().join("certs");
    let files = X509Files::in_dir(&certs);
    let port = free_port();
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "agent_address = \"{}\"\ncert_dir = \"{}\"\n{settings}\n\
             health_checks {{\n  listener_enabled = true\n  bind_port = {port}\n}}\n",
            fake.endpoint(),
            certs.display()
        ),
    );
    let mut cmd = Command::new(HELPER);
    cmd.arg("-config").arg(&config);
    if let Some(value) = rust_log {
        cmd.env("RUST_LOG", value);
    }
    let mut helper = Helper::spawn_command(cmd, &config);
    assert_eq!(wait_ready(&mut helper, &files.svid, port), serial);
    stop_cleanly(&mut helper);
    helper.log()
}

/// Lines of a text log at `level` (the level is the second word: `<timestamp> <LEVEL> ...`).
fn at_level(log: &str, level: &str) -> usize {
    log.lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(level))
        .count()
}

/// `log_format = "json"`: every line is one JSON object with `timestamp`, `level` and
/// `message`, and an event's fields are top-level members (`wrote X.509-SVID` carries
/// `spiffe_id`, `serial`, `expires_in`, `changed`).
#[test]
fn json_log_format_writes_one_object_per_line_with_the_event_fields() {
    let log = daemon_log("log_format = \"json\"\nlog_level = \"debug\"", None);
    let mut lines = 0;
    let mut wrote = None;
    for line in log.lines().filter(|l| !l.is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        assert!(value.is_object(), "a log line is not a JSON object: {line}");
        for key in ["timestamp", "level", "message"] {
            assert!(value.get(key).is_some(), "no {key:?} in {line}");
        }
        if value["message"] == "wrote X.509-SVID" {
            wrote = Some(value);
        }
        lines += 1;
    }
    let wrote = wrote.unwrap_or_else(|| panic!("no `wrote X.509-SVID` event in:\n{log}"));
    assert_eq!(wrote["level"], "INFO");
    assert_eq!(wrote["spiffe_id"], WORKLOAD);
    assert!(wrote["serial"].is_string(), "serial: {wrote}");
    assert!(wrote["expires_in"].is_u64(), "expires_in: {wrote}");
    assert_eq!(wrote["changed"], true);
    assert!(lines > 5, "only {lines} lines at debug level");
}

/// `RUST_LOG` overrides `log_level`: with `log_level = "error"` the daemon logs no `INFO`
/// line; `RUST_LOG=info` brings the info lines back (and no debug line), `RUST_LOG=debug` the
/// debug lines, and a `target=level` directive (`h2=info`) is honoured.
#[test]
fn rust_log_overrides_log_level() {
    let quiet = daemon_log("log_level = \"error\"", None);
    assert_eq!(
        at_level(&quiet, "INFO"),
        0,
        "log_level = error logs INFO:\n{quiet}"
    );

    let info = daemon_log("log_level = \"error\"", Some("info"));
    assert!(
        at_level(&info, "INFO") > 0,
        "RUST_LOG=info shows no INFO line"
    );
    assert_eq!(
        at_level(&info, "DEBUG"),
        0,
        "RUST_LOG=info shows DEBUG lines"
    );
    assert!(info.contains("wrote X.509-SVID"), "{info}");

    let debug = daemon_log("log_level = \"error\"", Some("debug"));
    assert!(
        at_level(&debug, "DEBUG") > 0,
        "RUST_LOG=debug shows no DEBUG line"
    );

    // Debug, but the HTTP/2 stack at info: its frame-by-frame debug lines are gone.
    let quieter_h2 = daemon_log("log_level = \"error\"", Some("debug,h2=info"));
    assert!(at_level(&quieter_h2, "DEBUG") > 0, "{quieter_h2}");
    assert!(
        at_level(&quieter_h2, "DEBUG") < at_level(&debug, "DEBUG"),
        "the h2=info directive is ignored: {} DEBUG lines with it, {} with RUST_LOG=debug",
        at_level(&quieter_h2, "DEBUG"),
        at_level(&debug, "DEBUG")
    );
}

/// An unparsable `RUST_LOG` is ignored with a warning naming it, and `log_level` applies.
#[test]
fn unparsable_rust_log_is_ignored_with_a_warning() {
    let log = daemon_log("log_level = \"info\"", Some("spiffe=loud"));
    let warning = log
        .lines()
        .find(|l| l.contains("ignoring RUST_LOG"))
        .unwrap_or_else(|| panic!("no warning about the unparsable RUST_LOG:\n{log}"));
    assert_eq!(warning.split_whitespace().nth(1), Some("WARN"), "{warning}");
    assert!(at_level(&log, "INFO") > 0, "log_level = info not applied");
    assert_eq!(
        at_level(&log, "DEBUG"),
        0,
        "DEBUG lines at log_level = info"
    );
}
