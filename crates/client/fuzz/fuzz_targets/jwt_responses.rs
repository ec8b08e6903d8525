//! Arbitrary bytes as a `JWTSVIDResponse` (first byte even) or a `JWTBundlesResponse` (odd),
//! served by the fake agent and fetched through the public client: never a panic or a hang; an
//! accepted JWT-SVID has an audience and its token is the one served.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use spiffe_helper_testkit::pb::{JwtBundlesResponse, JwtsvidResponse};

use spiffe_workload_client_fuzz as common;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let peer = common::peer();
    if which % 2 == 0 {
        let Ok(response) = JwtsvidResponse::decode(rest) else {
            return;
        };
        let served: Vec<String> = response.svids.iter().map(|s| s.svid.clone()).collect();
        peer.fake.set_jwt_svids(response);
        let audiences = vec!["fuzz".to_owned()];
        if let Ok(svids) = common::bounded(&peer.rt, peer.client.fetch_jwt_svids(&audiences, None))
        {
            for svid in &svids {
                assert!(!svid.audience().is_empty());
                assert!(served.iter().any(|t| t == svid.token().as_str()));
            }
        }
    } else {
        let Ok(response) = JwtBundlesResponse::decode(rest) else {
            return;
        };
        peer.fake.push_jwt_bundles(response);
        let _ = common::bounded(&peer.rt, peer.client.fetch_jwt_bundles());
    }
});
