//! Every rejected configuration names file, line, column, key and what would be valid
//! (docs/configuration.md, "Error messages"). The expected texts are the exact messages users
//! see.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::error;

/// `agent_address` and `cert_dir` on lines 1-2, then the case's lines from line 3.
fn with_base(rest: &str) -> String {
    format!("agent_address = \"/a.sock\"\ncert_dir = \"c\"\n{rest}")
}

#[test]
fn value_and_type_errors() {
    let cases = [
        (
            "cert_file_mode = 0899\n",
            "helper.conf:3:18: cert_file_mode = 0899: not an octal mode (digits 0-7, at most 0777)",
        ),
        (
            "key_file_mode = 1000\n",
            "helper.conf:3:17: key_file_mode = 1000: not an octal mode (digits 0-7, at most 0777)",
        ),
        (
            "key_file_mode = -1\n",
            "helper.conf:3:17: key_file_mode = -1: a file mode cannot be negative (digits 0-7, at most 0777)",
        ),
        (
            "key_file_mode = \"rw\"\n",
            "helper.conf:3:17: key_file_mode = \"rw\": not an octal mode (digits 0-7, at most 0777)",
        ),
        (
            "key_file_mode = true\n",
            "helper.conf:3:17: key_file_mode = true: expected an octal file mode such as 0644, found a boolean",
        ),
        (
            "cmd = 123\n",
            "helper.conf:3:7: cmd = 123: expected a string in double quotes, found a number",
        ),
        (
            "cmd = var.x\n",
            "helper.conf:3:7: cmd = var.x: expected a string in double quotes, found an attribute reference",
        ),
        (
            "cmd = \"${x}\"\n",
            "helper.conf:3:7: cmd = \"${x}\": expected a string in double quotes, found an interpolation (${...})",
        ),
        (
            "daemon_mode = \"false\"\n",
            "helper.conf:3:15: daemon_mode = \"false\": expected true or false (without quotes), found a string",
        ),
        (
            "startup_timeout = \"soon\"\n",
            "helper.conf:3:19: startup_timeout = \"soon\": not a duration (for example \"30s\", \"2m\", \"1m30s\", or whole seconds such as 30)",
        ),
        (
            "startup_timeout = 0\n",
            "helper.conf:3:19: startup_timeout = 0: must be greater than zero",
        ),
        (
            "log_level = \"loud\"\n",
            "helper.conf:3:13: log_level = \"loud\": unknown log level (trace, debug, info, warn, error)",
        ),
        (
            "log_format = \"xml\"\n",
            "helper.conf:3:14: log_format = \"xml\": unknown log format (text or json)",
        ),
        (
            "renew_signal = \"SIGFOO\"\n",
            "helper.conf:3:16: renew_signal = \"SIGFOO\": unknown signal name (for example SIGHUP, SIGUSR1, SIGINT)",
        ),
        (
            "jwt_svids = \"x\"\n",
            "helper.conf:3:13: jwt_svids = \"x\": expected a list of objects ([{ jwt_audience = \"...\", jwt_svid_file_name = \"...\" }]), found a string",
        ),
        (
            "jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"a\", jwt_extra_audiences = \"b\" }]\n",
            "helper.conf:3:84: jwt_svids[0].jwt_extra_audiences = \"b\": expected a list of strings ([\"aud1\", \"aud2\"]), found a string",
        ),
    ];
    for (rest, want) in cases {
        assert_eq!(error(&with_base(rest)), want, "input: {rest}");
    }
}

#[test]
fn unknown_and_removed_keys() {
    let cases = [
        (
            "cert_dri = \"x\"\n",
            "helper.conf:3:1: unknown key `cert_dri` (did you mean `cert_dir`?)",
        ),
        (
            "svid_filename = \"x\"\n",
            "helper.conf:3:1: unknown key `svid_filename` (did you mean `svid_file_name`?)",
        ),
        (
            "frobnicate = 1\n",
            "helper.conf:3:1: unknown key `frobnicate`",
        ),
        (
            "svidFileName = \"x\"\n",
            "helper.conf:3:1: `svidFileName` is no longer supported; camelCase keys were renamed: write `svid_file_name`",
        ),
        (
            "exit_when_ready = true\n",
            "helper.conf:3:1: `exit_when_ready` is no longer supported; one-shot mode replaced it: set `daemon_mode = false` (or pass -daemon-mode=false)",
        ),
        (
            "exitWhenReady = true\n",
            "helper.conf:3:1: `exitWhenReady` is no longer supported; one-shot mode replaced it: set `daemon_mode = false` (or pass -daemon-mode=false)",
        ),
        (
            "timeout = \"10s\"\n",
            "helper.conf:3:1: `timeout` is no longer supported; the deadline for the first X.509 fetch is now `startup_timeout` (for example startup_timeout = \"30s\")",
        ),
        (
            "health_checks {\n  listener_enabled = true\n  port = 1\n}\n",
            "helper.conf:5:3: unknown key `health_checks.port`",
        ),
        (
            "health_checks {\n  listener_enabled = true\n  bind_prt = 1\n}\n",
            "helper.conf:5:3: unknown key `health_checks.bind_prt` (did you mean `health_checks.bind_port`?)",
        ),
        (
            "jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_nam = \"a\" }]\n",
            "helper.conf:3:36: unknown key `jwt_svids[0].jwt_svid_file_nam` (did you mean `jwt_svids[0].jwt_svid_file_name`?)",
        ),
    ];
    for (rest, want) in cases {
        assert_eq!(error(&with_base(rest)), want, "input: {rest}");
    }
    assert_eq!(
        error("agentAddress = \"/a.sock\"\n"),
        "helper.conf:1:1: `agentAddress` is no longer supported; camelCase keys were renamed: write `agent_address`"
    );
}

#[test]
fn settings_that_need_or_exclude_each_other_are_refused_with_the_reason() {
    let cases = [
        (
            "pid_file_name = \"/p\"\n",
            "helper.conf:3:1: pid_file_name needs renew_signal (the signal sent to the process whose pid is in the file)",
        ),
        (
            "daemon_mode = false\npid_file_name = \"/p\"\nrenew_signal = \"HUP\"\n",
            "helper.conf:4:1: pid_file_name is only used in daemon mode; remove it or set daemon_mode = true",
        ),
        (
            "jwt_svids = [\n  { jwt_audience = \"a\", jwt_svid_file_name = \"a\" },\n  { jwt_svid_file_name = \"b\" },\n]\n",
            "helper.conf:5:3: jwt_svids[1].jwt_audience is required",
        ),
        (
            "jwt_svids = [{ jwt_audience = \"a\" }]\n",
            "helper.conf:3:14: jwt_svids[0].jwt_svid_file_name is required",
        ),
        (
            "jwt_svids = [{ jwt_audience = \"\", jwt_svid_file_name = \"a\" }]\n",
            "helper.conf:3:14: jwt_svids[0].jwt_audience is required",
        ),
        (
            "svid_file_name = \"x.pem\"\nsvid_key_file_name = \"x.pem\"\n",
            "helper.conf:4:22: svid_key_file_name and svid_file_name both resolve to c/x.pem; each output needs its own file",
        ),
        (
            "svid_file_name = \"a.pem\"\njwt_bundle_file_name = \"./a.pem\"\n",
            "helper.conf:4:24: jwt_bundle_file_name and svid_file_name both resolve to c/./a.pem; each output needs its own file",
        ),
        (
            "jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"t\" }, { jwt_audience = \"b\", jwt_svid_file_name = \"t\" }]\n",
            "helper.conf:3:107: jwt_svids[1].jwt_svid_file_name and jwt_svids[0].jwt_svid_file_name both resolve to c/t; each output needs its own file",
        ),
        (
            "health_checks {\n  listener_enabled = true\n  liveness_path = \"/x\"\n  readiness_path = \"/x\"\n}\n",
            "helper.conf:6:20: health_checks.liveness_path and readiness_path are both /x; they must differ",
        ),
        (
            "health_checks {\n  listener_enabled = true\n  liveness_path = \"live\"\n}\n",
            "helper.conf:5:19: health_checks.liveness_path = \"live\": a URL path must start with / (for example /health/live)",
        ),
        (
            "health_checks {\n  listener_enabled = true\n  bind_port = 70000\n}\n",
            "helper.conf:5:15: health_checks.bind_port = 70000: not a TCP port (1-65535)",
        ),
        (
            "health_checks {\n  listener_enabled = true\n  bind_port = 0\n}\n",
            "helper.conf:5:15: health_checks.bind_port = 0: not a TCP port (1-65535)",
        ),
        (
            "health_checks {\n  bind_port = 8080\n}\n",
            "helper.conf:3:1: health_checks.listener_enabled is required (true starts the health server, false disables it)",
        ),
        (
            "cmd = \"x\"\ncmd_args = \"a \\\"b c\"\n",
            "helper.conf:4:12: cmd_args: the quote at column 3 is never closed (add a closing \")",
        ),
        (
            "cmd = \"x\"\ncmd_args = \"ab\\\"c\"\n",
            "helper.conf:4:12: cmd_args: stray quote at column 3: a quote may only start an argument; quote the whole argument and double inner quotes (\"a\"\"b\")",
        ),
        (
            "cmd = \"x\"\ncmd_args = <<EOF\nline one\nline two\nEOF\n",
            "helper.conf:4:12: cmd_args: line break at column 9 outside quotes; cmd_args is a single line (quote an argument to keep a line break in it)",
        ),
        (
            "cert_dir = \"d\"\n",
            "helper.conf:3:1: `cert_dir` is set twice (first at line 2)",
        ),
        (
            "CERT_DIR = \"d\"\n",
            "helper.conf:3:1: `cert_dir` is set twice (first at line 2)",
        ),
    ];
    for (rest, want) in cases {
        assert_eq!(error(&with_base(rest)), want, "input: {rest}");
    }
}

#[test]
fn agent_address_and_cert_dir_requirements() {
    assert_eq!(
        error("cert_dir = \"c\"\n"),
        "helper.conf: agent_address is required (set it in the file, or set SPIFFE_ENDPOINT_SOCKET, e.g. unix:///run/spire/agent.sock)"
    );
    assert_eq!(
        error("agent_address = \"a.sock\"\ncert_dir = \"c\"\n"),
        "helper.conf:1:17: agent_address: invalid agent address: \"a.sock\": unix socket path must be absolute (for example unix:///run/spire/sockets/agent.sock)"
    );
    assert_eq!(
        error("agent_address = \"tcp://localhost:1\"\ncert_dir = \"c\"\n"),
        "helper.conf:1:17: agent_address: invalid agent address: \"tcp://localhost:1\": tcp address must use an IP literal, not a host name (for example tcp://127.0.0.1:8081)"
    );
    assert_eq!(
        error("agent_address = \"/a.sock\"\n"),
        "helper.conf: cert_dir is required (svid_file_name = \"svid.pem\" is relative and relative names are resolved against cert_dir; set cert_dir or use absolute paths)"
    );
    assert_eq!(
        error("agent_address = \"/a.sock\"\njwt_bundle_file_name = \"b.json\"\n"),
        "helper.conf:2:24: cert_dir is required (jwt_bundle_file_name = \"b.json\" is relative and relative names are resolved against cert_dir; set cert_dir or use absolute paths)"
    );
}

#[test]
fn syntax_errors_have_positions() {
    assert_eq!(
        error("agent_address = \"/a\"\ncert_dir = = 1\n"),
        "helper.conf:2:12: syntax error: invalid expression; expected `\"`, `[`, `{`, `-`, `!`, `(`, `_`, `<`, letter or digit"
    );
    assert_eq!(
        error("{\n  \"agent_address\": \"/a\",\n  \"cert_dir\": \"c\",\n}\n"),
        "helper.conf:4:1: syntax error: trailing comma"
    );
    assert_eq!(
        error("{\n  \"agent_address\": \"/a\",\n  \"cert_dir\": \"c\",\n  \"cmd\": 5\n}\n"),
        "helper.conf:4:10: cmd = 5: expected a string in double quotes, found a number"
    );
    assert_eq!(
        error("{\n  \"agent_address\": \"/a\",\n  \"certdir\": \"c\"\n}\n"),
        "helper.conf:3:3: unknown key `certdir` (did you mean `cert_dir`?)"
    );
    assert_eq!(
        error("[1, 2]"),
        "helper.conf:1:1: syntax error: unexpected token"
    );
}
