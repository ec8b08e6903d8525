//! Arbitrary text as an agent address: never a panic; an accepted address is an absolute Unix
//! path or an IP literal with a port, and its display form parses back to the same endpoint.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spiffe_workload_client::Endpoint;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(endpoint) = Endpoint::parse(text) {
        let shown = endpoint.to_string();
        assert_eq!(
            Endpoint::parse(&shown).ok().as_ref(),
            Some(&endpoint),
            "{text:?} -> {shown:?}"
        );
        if let Some(path) = endpoint.unix_path_ref() {
            assert!(path.is_absolute(), "{text:?}: relative path accepted");
        }
    }
});
