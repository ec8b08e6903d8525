//! The command line (docs/behaviour.md#command-line): clap, after rewriting Go-style single-dash long flags.
//!
//! Deployments of the Go `spiffe-helper` pass `-config x`, `-daemon-mode=false`, `-version`;
//! Go's `flag` package treats `-name` and `--name` alike, clap does not, so single-dash long
//! flags are rewritten to `--name` before clap sees them. `parse_args` never exits the process:
//! it returns a [`CliExit`] that `main` reports, so every spelling is unit-tested here.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cli {
    /// The configuration file (`--config`, default `helper.conf`).
    pub config: PathBuf,
    /// `--config-format`: how to read it (default: by name and content).
    pub config_format: spiffe_helper_config::ConfigFormat,
    /// `--daemon-mode`, only when given (it overrides `daemon_mode` from the file).
    pub daemon_mode: Option<bool>,
    /// `--validate`: check the configuration, print the effective one, exit.
    pub validate: bool,
    /// Wrapper mode (docs/consumers.md, "Wrapper mode and the restart policy"): everything after `--`, verbatim (no `cmd_args` splitting),
    /// program first. `None` without `--`; never `Some` of an empty list (that is a usage
    /// error). It replaces `cmd`/`cmd_args`: both set is a usage error, see [`check_child_conflict`].
    pub child_argv: Option<Vec<OsString>>,
}

/// The command line did not ask to run: help or version text (code 0, stdout) or a usage
/// error (code 2, stderr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliExit {
    /// The text to print (help, version, or the error with usage).
    pub message: String,
    /// Process exit code: 0 for help/version, 2 for usage errors.
    pub code: u8,
}

impl CliExit {
    /// Prints the message (stdout for code 0, stderr otherwise) and returns the exit code.
    #[expect(
        clippy::print_stdout,
        clippy::print_stderr,
        reason = "help, version and usage errors go to the terminal before logging starts"
    )]
    pub fn report(self) -> ExitCode {
        if self.code == 0 {
            print!("{}", self.message);
        } else {
            eprint!("{}", self.message);
        }
        ExitCode::from(self.code)
    }
}

/// Fetches SPIFFE X.509 and JWT SVIDs from the Workload API, writes them to disk and keeps
/// them fresh.
#[derive(Debug, Parser)]
#[command(
    name = "spiffe-helper-rust",
    bin_name = "spiffe-helper-rust",
    version,
    args_override_self = true,
    after_help = "Go-style spellings also work: -config x, -daemon-mode=false, -validate, -version, -help."
)]
struct Args {
    /// Configuration file (HCL; JSON when its first character is `{` or its name ends in
    /// .json; YAML when its name ends in .yaml or .yml). `SPIFFE_HLP_<KEY>` variables override
    /// its keys; when it does not exist, they are the whole configuration.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "helper.conf",
        allow_hyphen_values = true
    )]
    config: PathBuf,

    /// The configuration file's syntax.
    #[arg(
        long = "config-format",
        value_name = "hcl|json|yaml|auto",
        default_value = "auto"
    )]
    config_format: spiffe_helper_config::ConfigFormat,

    /// Override `daemon_mode` from the file: true keeps the files fresh, false fetches once and
    /// exits. `--daemon-mode` alone means true.
    #[arg(
        long = "daemon-mode",
        value_name = "true|false",
        num_args = 0..=1,
        require_equals = false,
        default_missing_value = "true",
        value_parser = parse_go_bool
    )]
    daemon_mode: Option<bool>,

    /// Check the configuration and print the effective configuration (every default filled
    /// in), then exit 0 if it is valid or 1 if not. Never contacts the agent.
    #[arg(long)]
    validate: bool,

    /// Wrapper mode: run PROGRAM with ARGS (as given, no splitting) as the child instead of
    /// `cmd`; it starts after the first write, and the helper exits with its exit code.
    #[arg(
        last = true,
        value_name = "PROGRAM [ARGS]",
        allow_hyphen_values = true,
        num_args = 0..
    )]
    child: Option<Vec<OsString>>,
}

/// Go's `strconv.ParseBool` spellings, which `-daemon-mode=...` accepted upstream.
fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// Long flags that take a separate value (`-config x`): the value is never rewritten.
const TAKES_VALUE: &[&str] = &["--config", "--config-format"];

/// Rewrites `-name[=v]` (more than one character after a single dash) to `--name[=v]`; stops at
/// `--`. Returns the new arguments, the (rewritten, original) pairs for error messages, and
/// whether a `--` was seen.
fn normalize(args: Vec<OsString>) -> (Vec<OsString>, Vec<(String, String)>, bool) {
    let mut out = Vec::with_capacity(args.len());
    let mut renamed = Vec::new();
    let mut iter = args.into_iter();
    if let Some(program) = iter.next() {
        out.push(program);
    }
    let mut value_next = false;
    let mut rest_verbatim = false;
    for arg in iter {
        if value_next || rest_verbatim {
            value_next = false;
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            rest_verbatim = true;
            out.push(arg);
            continue;
        }
        let long = if text.starts_with("--") {
            text.to_owned()
        } else if let Some(name) = text
            .strip_prefix('-')
            .filter(|n| n.split('=').next().is_some_and(|n| n.chars().count() > 1))
        {
            let rewritten = format!("--{name}");
            renamed.push((
                rewritten.split('=').next().unwrap_or_default().to_owned(),
                text.split('=').next().unwrap_or_default().to_owned(),
            ));
            rewritten
        } else {
            out.push(arg);
            continue;
        };
        value_next = TAKES_VALUE.contains(&long.as_str());
        out.push(OsString::from(long));
    }
    (out, renamed, rest_verbatim)
}

/// Parses the command line (including the program name as the first item).
///
/// # Errors
/// [`CliExit`] with code 0 and the text for `--help`/`--version`, or code 2 and a message
/// naming the flag (plus usage) for unknown flags and bad values.
pub fn parse_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Cli, CliExit> {
    let (args, renamed, double_dash) = normalize(args.into_iter().collect());
    match Args::try_parse_from(args) {
        Ok(args) => {
            if double_dash && args.child.as_ref().is_none_or(Vec::is_empty) {
                return Err(usage_error("'--' must be followed by the program to run"));
            }
            Ok(Cli {
                config: args.config,
                config_format: args.config_format,
                daemon_mode: args.daemon_mode,
                validate: args.validate,
                child_argv: args.child,
            })
        }
        Err(err) => {
            let code = match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => 2,
            };
            let mut message = err.render().to_string();
            if code != 0 {
                // Name the flag as the user typed it (`-nope`, not the rewritten `--nope`).
                for (rewritten, original) in &renamed {
                    message = message.replace(&format!("'{rewritten}'"), &format!("'{original}'"));
                }
                // clap leaves the usage out of bad-value errors; docs/behaviour.md#command-line
                // promises it on every usage error.
                if !message.contains("Usage:") {
                    let usage = format!("{}\n\n", Args::command().render_usage());
                    message = match message.find("For more information") {
                        Some(at) => format!("{}{usage}{}", &message[..at], &message[at..]),
                        None => format!("{message}\n{usage}"),
                    };
                }
            }
            Err(CliExit { message, code })
        }
    }
}

/// A usage error (exit 2) with `message` and the usage text, like clap's own.
fn usage_error(message: &str) -> CliExit {
    CliExit {
        message: format!(
            "error: {message}\n\n{}\n\nFor more information, try '--help'.\n",
            Args::command().render_usage()
        ),
        code: 2,
    }
}

/// Wrapper mode replaces `cmd`: a command line with `--` and a config that sets `cmd` is a
/// usage error (exit 2). Called once the config is loaded (`cmd_set`: the config has a
/// non-empty `cmd`).
///
/// # Errors
/// [`CliExit`] with code 2 naming both.
pub fn check_child_conflict(cli: &Cli, cmd_set: bool) -> Result<(), CliExit> {
    if cli.child_argv.is_some() && cmd_set {
        return Err(usage_error(
            "the config sets `cmd` and the command line gives a program after '--'; use one",
        ));
    }
    Ok(())
}

/// The child starts at the first X.509 write: a program after `--` with a JWT-only config
/// would never run, so that is a usage error too (`x509_on`: the config writes X.509 files).
///
/// # Errors
/// [`CliExit`] with code 2.
pub fn check_child_runs(cli: &Cli, x509_on: bool) -> Result<(), CliExit> {
    if cli.child_argv.is_some() && !x509_on {
        return Err(usage_error(
            "a program after '--' starts after the first X.509 write, and the config writes only JWT files",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
