//! Stable-Rust property tests: many random and mutated inputs through the parsers a hostile or
//! careless user or agent controls. They complement the cargo-fuzz targets in
//! `crates/client/fuzz` (which need nightly) and run in every `cargo test`.
//!
//! Each test prints how many inputs it fed and how many were accepted, for docs/reliability.md.

use std::str::FromStr;
use std::time::{Duration, Instant};

use spiffe_helper_config::{Config, Overrides, split_cmd_args};
use spiffe_helper_testkit::certs::{self, TestCa};
use spiffe_workload_client::{Endpoint, SpiffeId, WorkloadApiClient};

use crate::faults::kit::Fake;
use crate::support::WORKLOAD;

/// xorshift64*: deterministic, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n as u64)).unwrap()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next().to_le_bytes()[0]).collect()
    }
    /// A string mixing an interesting prefix with characters that matter to URL-ish parsers.
    fn text(&mut self, prefixes: &[&str], max: usize) -> String {
        const CHARS: &[char] = &[
            'a', 'z', 'A', '0', '9', '/', ':', '.', '-', '_', '?', '#', '@', '%', '[', ']', ' ',
            '"', '\\', '\'', '=', '{', '}', '\n', '\t', '\0', 'é', '\u{202e}', '1', '2', '7',
        ];
        let mut s = (*self.pick(prefixes)).to_owned();
        for _ in 0..self.below(max + 1) {
            s.push(*self.pick(CHARS));
        }
        s
    }
    /// Random bytes half of the time, structured text otherwise.
    fn input(&mut self, prefixes: &[&str], max: usize) -> String {
        if self.below(2) == 0 {
            String::from_utf8_lossy(&self.bytes(max)).into_owned()
        } else {
            self.text(prefixes, max)
        }
    }
}

const INPUTS: usize = 100_000;

/// Agent addresses: never a panic; every accepted address is absolute unix or IP tcp, and its
/// display form parses back to the same endpoint.
#[test]
fn endpoint_parser_survives_100k_random_addresses() {
    let prefixes = [
        "",
        "unix://",
        "unix:",
        "unix:///",
        "/",
        "tcp://",
        "tcp://127.0.0.1:",
        "tcp://[::1]:",
        "tcp://localhost:",
        "UNIX://",
        "unix://host/",
        "./",
        "spiffe://",
    ];
    let mut rng = Rng(0x5eed_0001);
    let mut accepted = 0;
    for _ in 0..INPUTS {
        let input = rng.input(&prefixes, 40);
        if let Ok(endpoint) = Endpoint::parse(&input) {
            accepted += 1;
            let shown = endpoint.to_string();
            assert_eq!(
                Endpoint::parse(&shown).as_ref(),
                Ok(&endpoint),
                "{input:?} accepted as {shown:?}, which does not parse back"
            );
            if let Some(path) = endpoint.unix_path_ref() {
                assert!(path.is_absolute(), "{input:?}: relative unix path accepted");
            }
        }
    }
    eprintln!("endpoint parser: {INPUTS} inputs, {accepted} accepted, no panic");
    assert!(
        accepted > 100,
        "the generator hardly reaches the accepting paths"
    );
}

/// SPIFFE IDs: never a panic; accepted IDs round-trip through their display form.
#[test]
fn spiffe_id_parser_survives_100k_random_ids() {
    let prefixes = [
        "",
        "spiffe://",
        "spiffe://example.org",
        "spiffe://example.org/",
        "SPIFFE://",
    ];
    let mut rng = Rng(0x5eed_0002);
    let mut accepted = 0;
    for _ in 0..INPUTS {
        let input = rng.input(&prefixes, 30);
        if let Ok(id) = SpiffeId::from_str(&input) {
            accepted += 1;
            assert_eq!(
                SpiffeId::from_str(&id.to_string()).ok().as_ref(),
                Some(&id),
                "{input:?}"
            );
            assert!(
                !id.trust_domain().name().is_empty(),
                "{input:?}: empty trust domain"
            );
        }
    }
    eprintln!("SPIFFE ID parser: {INPUTS} inputs, {accepted} accepted, no panic");
    assert!(accepted > 100);
}

/// `cmd_args`: never a panic; without quotes the result is exactly a split on single spaces.
#[test]
fn cmd_args_splitter_survives_100k_random_strings() {
    let mut rng = Rng(0x5eed_0003);
    let (mut accepted, mut unquoted) = (0, 0);
    for _ in 0..INPUTS {
        let input = rng.input(&["", "\"", "a \"b c\" d", "\"\"\""], 24);
        if let Ok(args) = split_cmd_args(&input) {
            accepted += 1;
            // One trailing line break (a heredoc's) ends the record, as in CSV.
            let record = input
                .strip_suffix('\n')
                .map_or(input.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
            if !record.contains('"') && !record.is_empty() {
                unquoted += 1;
                let expected: Vec<String> = record.split(' ').map(str::to_owned).collect();
                assert_eq!(args, expected, "{input:?}");
            }
        }
    }
    eprintln!(
        "cmd_args splitter: {INPUTS} inputs, {accepted} accepted ({unquoted} unquoted checked)"
    );
    // Both sides: a splitter that refused everything, or accepted everything, would not do.
    assert!(
        accepted > INPUTS / 5,
        "only {accepted} of {INPUTS} accepted: the splitter rejects what it should split"
    );
    assert!(
        INPUTS - accepted > INPUTS / 20,
        "only {} of {INPUTS} rejected: stray and unclosed quotes are accepted",
        INPUTS - accepted
    );
    assert!(
        unquoted > INPUTS / 10,
        "only {unquoted} unquoted inputs checked"
    );
}

/// `cmd_args` built from known arguments (plain words, and quoted ones holding spaces, doubled
/// quotes, line breaks and backslashes), joined the way a user writes them: every one is
/// accepted and splits back into exactly the arguments it was built from.
#[test]
fn cmd_args_splitter_gives_back_the_arguments_a_line_was_built_from() {
    const PLAIN: &[char] = &['a', 'Z', '0', '-', '=', '/', '\\', '\'', '$', '*', 'é', ':'];
    const QUOTED: &[char] = &['a', ' ', '"', '\n', '\\', '\'', '-', 'x', '\t'];
    let mut rng = Rng(0x5eed_0006);
    let runs = 20_000;
    let mut quoted_args = 0;
    for _ in 0..runs {
        let args: Vec<String> = (0..=rng.below(5))
            .map(|_| {
                let pool = if rng.below(3) == 0 { QUOTED } else { PLAIN };
                (0..rng.below(8)).map(|_| *rng.pick(pool)).collect()
            })
            .collect();
        let line = args
            .iter()
            .map(|a| {
                if a.is_empty() || a.contains([' ', '"', '\n', '\t']) {
                    quoted_args += 1;
                    format!("\"{}\"", a.replace('"', "\"\""))
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        // A line holding one empty argument is "" (an empty line is no argument at all).
        let got = split_cmd_args(&line);
        assert_eq!(got.as_ref(), Ok(&args), "{line:?}");
    }
    eprintln!(
        "cmd_args splitter: {runs} built lines all split back ({quoted_args} quoted arguments)"
    );
    assert!(quoted_args > runs / 4);
}

/// The config parser on 30k random HCL/JSON-ish documents built from real keys: never a panic,
/// and an accepted config survives a round trip through its effective form.
#[test]
fn config_parser_survives_30k_random_documents() {
    let fragments = [
        "agent_address = \"unix:///tmp/a.sock\"\n",
        "cert_dir = \"/tmp/c\"\n",
        "daemon_mode = false\n",
        "cmd = \"/bin/x\"\n",
        "cmd_args = \"a \\\"b\\\"\"\n",
        "renew_signal = \"SIGHUP\"\n",
        "pid_file_name = \"/tmp/p\"\n",
        "key_file_mode = 0400\n",
        "cert_file_mode = 999\n",
        "jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"t\" }]\n",
        "jwt_svids \"x\" { jwt_audience = \"b\" }\n",
        "health_checks { listener_enabled = true bind_port = 8080 }\n",
        "health_checks = { listener_enabled = false }\n",
        "startup_timeout = \"5s\"\n",
        "log_level = \"debug\"\n",
        "# comment\n",
        "/* c */",
        "{",
        "}",
        "\"",
        "= ",
        "<<EOT\nx\nEOT\n",
        "{\"cert_dir\": \"/tmp/j\", \"agent_address\": \"/a\"}",
    ];
    let env = |name: &str| (name == "SPIFFE_ENDPOINT_SOCKET").then(|| "unix:///e.sock".to_owned());
    let file = std::path::Path::new("prop.conf");
    let mut rng = Rng(0x5eed_0004);
    let (mut accepted, docs) = (0, 30_000);
    for _ in 0..docs {
        let mut text = String::new();
        for _ in 0..rng.below(8) {
            let i = rng.below(fragments.len());
            text.push_str(fragments[i]);
            if rng.below(6) == 0 {
                text.push_str(&rng.text(&[""], 4));
            }
        }
        if let Ok((config, _)) = Config::parse_str(&text, file, &Overrides::default(), &env) {
            accepted += 1;
            let effective = config.effective();
            let again = Config::parse_str(&effective, file, &Overrides::default(), &env);
            assert!(
                again.as_ref().is_ok_and(|(c, _)| *c == config),
                "effective form does not round-trip:\n--- input\n{text}\n--- effective\n{effective}\n--- {again:?}"
            );
        }
    }
    eprintln!("config parser: {docs} documents, {accepted} accepted, no panic");
    // Both sides: random fragments are mostly wrong, but not always.
    assert!(
        accepted > docs / 100,
        "only {accepted} of {docs} accepted: the generator or the parser rejects everything"
    );
    assert!(
        docs - accepted > docs / 2,
        "{accepted} of {docs} accepted: duplicate keys, stray braces and bad values pass"
    );
}

/// Valid documents built from a random subset of known settings, in random order, as HCL or
/// JSON: every one is accepted and every setting it holds is in the resulting `Config`, every
/// setting it leaves out has its documented default.
#[test]
fn config_parser_accepts_valid_documents_and_keeps_every_setting() {
    // (HCL line, JSON member, check on the Config when present, check when absent)
    type Check = fn(&Config) -> bool;
    let settings: &[(&str, &str, Check, Check)] = &[
        (
            "cert_dir = \"/tmp/c\"",
            "\"cert_dir\": \"/tmp/c\"",
            |c| c.cert_dir.as_deref() == Some(std::path::Path::new("/tmp/c")),
            |c| c.cert_dir.is_none(),
        ),
        (
            "agent_address = \"unix:///tmp/a.sock\"",
            "\"agent_address\": \"unix:///tmp/a.sock\"",
            |c| c.agent_address.to_string() == "unix:///tmp/a.sock",
            |c| c.agent_address.to_string() == "unix:///e.sock",
        ),
        (
            "daemon_mode = false",
            "\"daemon_mode\": false",
            |c| !c.daemon_mode,
            |c| c.daemon_mode,
        ),
        (
            "cmd = \"/bin/x\"\ncmd_args = \"a \\\"b c\\\"\"",
            "\"cmd\": \"/bin/x\", \"cmd_args\": \"a \\\"b c\\\"\"",
            // One-shot mode ignores cmd and cmd_args (with a warning, checked below).
            |c| {
                if c.daemon_mode {
                    c.cmd.as_deref() == Some("/bin/x") && c.cmd_args == ["a", "b c"]
                } else {
                    c.cmd.is_none() && c.cmd_args.is_empty()
                }
            },
            |c| c.cmd.is_none() && c.cmd_args.is_empty(),
        ),
        (
            "renew_signal = \"SIGUSR1\"",
            "\"renew_signal\": \"SIGUSR1\"",
            |c| {
                c.renew_signal
                    == c.daemon_mode
                        .then_some(spiffe_helper_config::Signal::SIGUSR1)
            },
            |c| c.renew_signal.is_none(),
        ),
        (
            "key_file_mode = 0400",
            "\"key_file_mode\": 400", // octal however written
            |c| c.key_file_mode.bits() == 0o400,
            |c| c.key_file_mode.bits() == 0o600,
        ),
        (
            "startup_timeout = \"5s\"",
            "\"startup_timeout\": \"5s\"",
            |c| c.startup_timeout == Duration::from_secs(5),
            |c| c.startup_timeout == Duration::from_secs(30),
        ),
        (
            "log_level = \"debug\"",
            "\"log_level\": \"debug\"",
            |c| c.log_level == spiffe_helper_config::LogLevel::Debug,
            |c| c.log_level == spiffe_helper_config::LogLevel::Info,
        ),
        (
            "jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"/tmp/t\" }]",
            "\"jwt_svids\": [{\"jwt_audience\": \"a\", \"jwt_svid_file_name\": \"/tmp/t\"}]",
            // A file with jwt_svids and no svid_* name is JWT-only: no X.509 output.
            |c| c.jwt_svids.len() == 1 && c.jwt_svids[0].audience == "a" && c.x509.is_none(),
            |c| c.jwt_svids.is_empty() && c.x509.is_some(),
        ),
    ];
    let env = |name: &str| (name == "SPIFFE_ENDPOINT_SOCKET").then(|| "unix:///e.sock".to_owned());
    let file = std::path::Path::new("prop.conf");
    let mut rng = Rng(0x5eed_0007);
    let docs = 5_000;
    for _ in 0..docs {
        // The X.509 files need a cert_dir; keep it in every document, the rest at random.
        let mut chosen: Vec<usize> = vec![0];
        chosen.extend((1..settings.len()).filter(|_| rng.below(2) == 0));
        for i in (1..chosen.len()).rev() {
            chosen.swap(i, rng.below(i + 1));
        }
        let json = rng.below(3) == 0;
        let text = if json {
            let members: Vec<&str> = chosen.iter().map(|&i| settings[i].1).collect();
            format!("{{{}}}", members.join(", "))
        } else {
            let lines: Vec<&str> = chosen.iter().map(|&i| settings[i].0).collect();
            lines.join("\n") + "\n"
        };
        let parsed = Config::parse_str(&text, file, &Overrides::default(), &env);
        let Ok((config, warnings)) = parsed else {
            panic!("a valid document was refused:\n{text}\n--- {parsed:?}");
        };
        let ignored = !config.daemon_mode && (chosen.contains(&3) || chosen.contains(&4));
        assert_eq!(
            !warnings.is_empty(),
            ignored,
            "warnings {warnings:?} for:\n{text}"
        );
        for (i, (hcl, _, present, absent)) in settings.iter().enumerate() {
            if chosen.contains(&i) {
                assert!(present(&config), "{hcl:?} lost:\n{text}\n--- {config:?}");
            } else {
                assert!(
                    absent(&config),
                    "no default where {hcl:?} is left out:\n{text}"
                );
            }
        }
    }
    eprintln!("config parser: {docs} valid documents accepted, every setting kept");
}

/// Response -> domain conversion through the public client: a fake agent serves 3000 mutated
/// X.509 responses (bit flips, truncation, garbage appended, foreign keys, odd IDs and
/// federated keys); the client answers each one with a value or an error, never a panic or a
/// hang, and every accepted value keeps the invariants (leaf URI SAN = SPIFFE ID).
#[test]
fn client_conversion_survives_3000_mutated_responses() {
    let fake = Fake::start();
    let ca = TestCa::root("example.org");
    let other = TestCa::root("other.org");
    let good = ca.issue(WORKLOAD, Duration::from_secs(3600));
    let foreign = other.issue("spiffe://other.org/w", Duration::from_secs(3600));
    let client = WorkloadApiClient::new(Endpoint::parse(&fake.endpoint()).unwrap());
    let mut rng = Rng(0x5eed_0005);
    let (mut ok, mut rejected, mut intact, runs) = (0, 0, 0, 3000);
    let start = Instant::now();
    for _ in 0..runs {
        let mut r = certs::x509_response(
            &[(&good, "h")],
            &[ca.der()],
            &[("other.org", vec![other.der()])],
        );
        let mut chain_touched = false;
        for _ in 0..=rng.below(3) {
            let svid = &mut r.svids[0];
            let flip = |bytes: &mut Vec<u8>, rng: &mut Rng| {
                if !bytes.is_empty() {
                    let at = rng.below(bytes.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
            };
            match rng.below(12) {
                0 => {
                    flip(&mut svid.x509_svid, &mut rng);
                    chain_touched = true;
                }
                1 => flip(&mut svid.x509_svid_key, &mut rng),
                2 => flip(&mut svid.bundle, &mut rng),
                3 => {
                    let keep = rng.below(svid.x509_svid.len() + 1);
                    svid.x509_svid.truncate(keep);
                    chain_touched = true;
                }
                4 => {
                    svid.x509_svid.extend(rng.bytes(64));
                    chain_touched = true;
                }
                5 => svid.x509_svid_key = foreign.key_pkcs8.clone(),
                6 => {
                    svid.x509_svid = foreign.chain_der();
                    chain_touched = true;
                }
                7 => svid.spiffe_id = rng.text(&["spiffe://example.org", "spiffe://", ""], 12),
                8 => svid.bundle = rng.bytes(300),
                9 => {
                    let key = rng.text(&["spiffe://", "", "spiffe://example.org"], 8);
                    r.federated_bundles.insert(key, rng.bytes(200));
                }
                10 => svid.x509_svid_key = rng.bytes(150),
                _ => r.svids.push(r.svids[0].clone()),
            }
        }
        fake.push(r);
        let got = fake.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), client.fetch_x509_context()).await
        });
        match got.expect("fetch hung on a mutated response") {
            Ok(context) => {
                ok += 1;
                assert!(!context.svids().is_empty(), "accepted with no SVID");
                for svid in context.svids() {
                    assert_eq!(uri_sans(svid.leaf()), vec![svid.spiffe_id().to_string()]);
                    assert!(!svid.bundle().is_empty());
                }
                // The certificate bytes were not mutated: the first SVID is the good one,
                // chain unchanged.
                let first = &context.svids()[0];
                if !chain_touched {
                    assert_eq!(first.spiffe_id().to_string(), WORKLOAD);
                    assert_eq!(first.cert_chain(), good.chain.as_slice(), "chain altered");
                    intact += 1;
                }
            }
            Err(_) => rejected += 1,
        }
    }
    // Control: the unmutated response is accepted and converted exactly, so the counts above
    // measure the mutations, not a client that refuses everything.
    fake.push(certs::x509_response(
        &[(&good, "h")],
        &[ca.der()],
        &[("other.org", vec![other.der()])],
    ));
    let context = fake
        .rt
        .block_on(client.fetch_x509_context())
        .expect("the unmutated response was refused");
    let svid = &context.svids()[0];
    assert_eq!(svid.spiffe_id().to_string(), WORKLOAD);
    assert_eq!(svid.leaf(), good.chain[0].as_slice());
    assert_eq!(svid.hint(), "h");
    eprintln!(
        "client conversion: {runs} mutated responses in {:?}: {ok} accepted ({intact} with the good SVID intact), {rejected} rejected, no panic",
        start.elapsed()
    );
    assert!(
        rejected > runs / 2,
        "mutations hardly ever produced an invalid response"
    );
    assert!(
        ok > runs / 50,
        "only {ok} of {runs} accepted: harmless mutations (a federated key, a duplicate SVID) are refused"
    );
}

/// The URI SANs of a DER certificate (any validity dates, unlike `inspect::cert_info`).
fn uri_sans(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
