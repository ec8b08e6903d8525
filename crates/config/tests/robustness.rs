//! A stable-toolchain cousin of the cargo-fuzz target (`fuzz/`): deterministic mutations of
//! real configurations never panic, and whatever is accepted survives the effective-config
//! round trip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use std::path::Path;

use spiffe_helper_config::{Config, Overrides, split_cmd_args};

const SEEDS: &[&str] = &[
    include_str!("../fuzz/seeds/parse_config/ghostunnel.conf"),
    include_str!("../fuzz/seeds/parse_config/blocks.conf"),
    include_str!("../fuzz/seeds/parse_config/json.conf"),
];

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    "=",
    ",",
    "\n",
    " ",
    "#",
    "/*",
    "*/",
    "<<EOF\n",
    "\nEOF\n",
    "${",
    "%{",
    "0899",
    "-1",
    "0644",
    "true",
    "null",
    "1e99",
    "99999999999999999999",
    "jwt_svids",
    "health_checks",
    "listener_enabled",
    "cert_dir",
    "\"\"",
    "\\",
    "é",
    "\u{feff}",
    "::",
    "./",
    "..",
    "/",
    ".",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(chars.len() + 1);
        match rng.below(4) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                chars.splice(at..at, token.chars());
            }
            2 => chars.truncate(at),
            _ => {
                let byte = char::from(rng.below(128) as u8);
                chars.insert(at, byte);
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_configs_never_panic_and_round_trip() {
    let env =
        |name: &str| (name == "SPIFFE_ENDPOINT_SOCKET").then(|| "unix:///fuzz.sock".to_owned());
    let file = Path::new("fuzz.conf");
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let mut accepted = 0;
    for i in 0..4000 {
        let text = mutate(&mut rng, SEEDS[i % SEEDS.len()]);
        let _ = split_cmd_args(&text);
        if let Ok((config, _)) = Config::parse_str(&text, file, &Overrides::default(), &env) {
            accepted += 1;
            let effective = config.effective();
            let (again, _) = Config::parse_str(&effective, file, &Overrides::default(), &env)
                .unwrap_or_else(|e| {
                    panic!("effective form does not parse: {e}\n{effective}\n--- from:\n{text}")
                });
            assert_eq!(
                again, config,
                "effective form changes meaning:\n{effective}\n--- from:\n{text}"
            );
        }
    }
    // The mutations must leave a good share valid, or the round trip is not exercised.
    assert!(
        accepted > 200,
        "only {accepted} mutated configs were accepted"
    );
}
