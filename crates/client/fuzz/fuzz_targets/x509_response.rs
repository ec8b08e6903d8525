//! Arbitrary bytes as an `X509SVIDResponse`, served by the fake agent and fetched through the
//! public client: the conversion answers with a context or an error, never a panic or a hang,
//! and an accepted context keeps its invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use spiffe_helper_testkit::pb::X509svidResponse;

use spiffe_workload_client_fuzz as common;

fuzz_target!(|data: &[u8]| {
    let Ok(response) = X509svidResponse::decode(data) else {
        return;
    };
    let peer = common::peer();
    peer.fake.push_x509(response);
    if let Ok(context) = common::bounded(&peer.rt, peer.client.fetch_x509_context()) {
        assert!(!context.svids().is_empty());
        for svid in context.svids() {
            assert!(!svid.cert_chain().is_empty());
            assert!(!svid.bundle().is_empty());
            assert_eq!(svid.leaf(), svid.cert_chain()[0].as_slice());
            assert!(!svid.private_key().der().is_empty());
        }
    }
});
