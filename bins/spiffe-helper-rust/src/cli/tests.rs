use super::*;

fn parse(args: &[&str]) -> Result<Cli, CliExit> {
    parse_args(
        std::iter::once("spiffe-helper-rust")
            .chain(args.iter().copied())
            .map(OsString::from),
    )
}

fn cli(config: &str, daemon_mode: Option<bool>, validate: bool) -> Cli {
    Cli {
        config: PathBuf::from(config),
        config_format: spiffe_helper_config::ConfigFormat::Auto,
        daemon_mode,
        validate,
        child_argv: None,
    }
}

fn argv(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

#[test]
fn everything_after_double_dash_is_the_child_argv_verbatim() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[
                "-config",
                "helper.conf",
                "--",
                "/usr/sbin/nginx",
                "-g",
                "daemon off;",
            ],
            &["/usr/sbin/nginx", "-g", "daemon off;"],
        ),
        // Flags after `--` belong to the child, also ours and Go-style ones.
        (
            &[
                "--",
                "app",
                "-config",
                "x",
                "--daemon-mode=false",
                "--",
                "-h",
            ],
            &["app", "-config", "x", "--daemon-mode=false", "--", "-h"],
        ),
        (
            &["--", "sh", "-c", "echo \"a  b\""],
            &["sh", "-c", "echo \"a  b\""],
        ),
    ];
    for (args, child) in cases {
        let got = parse(args).unwrap();
        assert_eq!(got.child_argv, Some(argv(child)), "{args:?}");
    }
    let got = parse(&["-daemon-mode=true", "--", "app"]).unwrap();
    assert_eq!(got.daemon_mode, Some(true));
    assert_eq!(got.config, PathBuf::from("helper.conf"));
}

#[test]
fn double_dash_without_a_program_and_with_cmd_are_usage_errors() {
    let exit = parse(&["-config", "x", "--"]).unwrap_err();
    assert_eq!(exit.code, 2);
    assert!(exit.message.contains("'--'"), "{}", exit.message);
    assert!(exit.message.contains("Usage:"), "{}", exit.message);

    let wrapped = parse(&["--", "app"]).unwrap();
    let exit = check_child_conflict(&wrapped, true).unwrap_err();
    assert_eq!(exit.code, 2);
    assert!(exit.message.contains("`cmd`"), "{}", exit.message);
    assert!(check_child_conflict(&wrapped, false).is_ok());
    assert!(check_child_conflict(&parse(&[]).unwrap(), true).is_ok());
    assert_eq!(check_child_runs(&wrapped, false).unwrap_err().code, 2);
    assert!(check_child_runs(&wrapped, true).is_ok());
    assert!(check_child_runs(&parse(&[]).unwrap(), false).is_ok());
}

#[test]
fn config_and_validate_flags_parse_in_go_and_gnu_spellings() {
    let cases: &[(&[&str], Cli)] = &[
        (&[], cli("helper.conf", None, false)),
        (&["--config", "x.conf"], cli("x.conf", None, false)),
        (&["--config=x.conf"], cli("x.conf", None, false)),
        (&["-config", "x.conf"], cli("x.conf", None, false)),
        (&["-config=x.conf"], cli("x.conf", None, false)),
        (&["--validate"], cli("helper.conf", None, true)),
        (
            &["-validate", "-config", "y.conf"],
            cli("y.conf", None, true),
        ),
        (
            &["-config", "-odd-name.conf"],
            cli("-odd-name.conf", None, false),
        ),
        (&["-config", "a", "-config", "b"], cli("b", None, false)),
    ];
    for (args, want) in cases {
        assert_eq!(parse(args).as_ref(), Ok(want), "args {args:?}");
    }
}

#[test]
fn daemon_mode_flag_parses_in_go_and_gnu_spellings_with_go_booleans() {
    let off = || cli("helper.conf", Some(false), false);
    let on = || cli("helper.conf", Some(true), false);
    let cases: &[(&[&str], Cli)] = &[
        (&["--daemon-mode", "false"], off()),
        (&["--daemon-mode=false"], off()),
        (&["-daemon-mode=false"], off()),
        (&["-daemon-mode", "false"], off()),
        (&["--daemon-mode", "true"], on()),
        (&["-daemon-mode=true"], on()),
        (&["--daemon-mode"], on()),
        (&["-daemon-mode"], on()),
        (&["-daemon-mode=0"], off()),
        (&["-daemon-mode=F"], off()),
        (
            &["--daemon-mode", "-config", "x"],
            cli("x", Some(true), false),
        ),
        (
            &["-daemon-mode=false", "-config", "/etc/helper.conf"],
            cli("/etc/helper.conf", Some(false), false),
        ),
    ];
    for (args, want) in cases {
        assert_eq!(parse(args).as_ref(), Ok(want), "args {args:?}");
    }
}

#[test]
fn help_and_version_exit_0() {
    for args in [&["--help"][..], &["-help"], &["-h"]] {
        let exit = parse(args).unwrap_err();
        assert_eq!(exit.code, 0, "{args:?}");
        assert!(
            exit.message.contains("--daemon-mode"),
            "{args:?}: {}",
            exit.message
        );
        assert!(
            exit.message.contains("--validate"),
            "{args:?}: {}",
            exit.message
        );
    }
    for args in [&["--version"][..], &["-version"], &["-V"]] {
        let exit = parse(args).unwrap_err();
        assert_eq!(exit.code, 0, "{args:?}");
        assert_eq!(
            exit.message,
            format!("spiffe-helper-rust {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--nope"], "'--nope'"),
        (&["-nope"], "'-nope'"),
        (&["-exitWhenReady"], "'-exitWhenReady'"),
        (&["--daemon-mode=maybe"], "'maybe'"),
        (&["-daemon-mode=yes"], "--daemon-mode"),
        (&["--config"], "--config"),
        (&["stray"], "'stray'"),
    ];
    for (args, needle) in cases {
        let exit = parse(args).unwrap_err();
        assert_eq!(exit.code, 2, "{args:?}");
        assert!(exit.message.contains(needle), "{args:?}: {}", exit.message);
        assert!(
            exit.message.contains("Usage:"),
            "{args:?}: {}",
            exit.message
        );
    }
}

#[test]
fn config_format_takes_go_and_gnu_spellings_and_refuses_unknown_names() {
    use spiffe_helper_config::ConfigFormat;
    for args in [
        &["-config-format", "yaml"][..],
        &["--config-format=yaml"],
        &["-config-format=YAML"],
    ] {
        assert_eq!(
            parse(args).unwrap().config_format,
            ConfigFormat::Yaml,
            "{args:?}"
        );
    }
    assert_eq!(parse(&[]).unwrap().config_format, ConfigFormat::Auto);
    let err = parse(&["-config-format", "toml"]).unwrap_err();
    assert_eq!(err.code, 2);
    assert!(
        err.message.contains("-config-format") && err.message.contains("hcl, json, yaml or auto"),
        "{}",
        err.message
    );
}
