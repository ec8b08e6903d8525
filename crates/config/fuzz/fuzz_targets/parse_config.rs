//! Arbitrary bytes never make the config parser panic, and every accepted configuration
//! survives a round trip through its effective form.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spiffe_helper_config::{split_cmd_args, Config, Overrides};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = |name: &str| (name == "SPIFFE_ENDPOINT_SOCKET").then(|| "unix:///fuzz.sock".to_owned());
    let file = Path::new("fuzz.conf");
    let _ = split_cmd_args(text);
    for overrides in [Overrides::default(), Overrides { daemon_mode: Some(false), ..Overrides::default() }, Overrides { wrapper_mode: true, ..Overrides::default() }] {
        if let Ok((config, _)) = Config::parse_str(text, file, &overrides, &env) {
            let effective = config.effective();
            let again = Config::parse_str(&effective, file, &Overrides::default(), &env);
            match again {
                Ok((again, _)) => assert_eq!(again, config, "effective form changes meaning:\n{effective}"),
                Err(e) => panic!("effective form does not parse: {e}\n{effective}"),
            }
        }
    }
});
