//! Byte layout against upstream, for real (docs/behaviour.md#output-files: "The byte layout is
//! upstream's"): the upstream Go `spiffe-helper` v0.11.0 and ours run in one-shot mode against
//! the same real SPIRE agent with the very same `helper.conf`, each in its own working
//! directory, and every output file must be byte-identical with the same mode (the JWT bundle's
//! keys may come in another order when a trust domain has several: upstream's is a Go map's).
//!
//! The upstream binary is built into the SPIRE cache by `make deps`
//! (`tests/spire/build-spire.sh --with-upstream-helper`); without it the test fails and says so.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;

use spiffe_helper_testkit::certs::TestCa;
use spiffe_helper_testkit::spire::{Entry, Spire, SpireOptions};

use crate::inspect::{audiences, jwt_parts, read_certs};
use crate::support::{
    Helper, PROPAGATION, WORKLOAD, mode, run_oneshot, scratch, wait_until, write_file,
};

/// The upstream binary, or a failure that says how to build it.
fn upstream_binary() -> PathBuf {
    let path = spiffe_helper_testkit::spire::bin_dir().join("spiffe-helper");
    assert!(
        path.is_file(),
        "the upstream spiffe-helper v0.11.0 is not at {}: run `make deps` (it runs \
         tests/spire/build-spire.sh --with-upstream-helper, which builds it into the cache)",
        path.display()
    );
    path
}

/// One SPIRE for every comparison: an `UpstreamAuthority "disk"` (so the SVID chain carries
/// SPIRE's intermediate CA), a federated trust domain `other.org` the entry federates with,
/// and an entry with a JWT-SVID; returns it once the agent serves the federated bundle.
fn federated_spire_with_intermediates() -> Spire {
    let spire = Spire::start_with(SpireOptions {
        upstream_authority: true,
        ..SpireOptions::default()
    });
    let other = TestCa::root("other.org");
    spire.set_federated_bundle("spiffe://other.org", &other.pem());
    spire.create_entry(&Entry::new(WORKLOAD).federates_with("spiffe://other.org"));
    spire.wait_for_svid(PROPAGATION);
    // The agent may serve the SVID before the federated bundle: wait until its CLI sees both.
    let probe = scratch();
    let federated = wait_until(PROPAGATION, || {
        spire.cli_fetch_x509(probe.path());
        fs::read_dir(probe.path()).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains("federated"))
        })
    });
    assert!(federated, "the agent never served other.org's bundle");
    spire
}

/// Output file names of [`CONF_HEAD`].
const OUTPUTS: [&str; 5] = [
    "svid.pem",
    "svid_key.pem",
    "svid_bundle.pem",
    "jwt_svid.token",
    "jwt_bundle.json",
];

/// The part of `helper.conf` every comparison shares: relative `cert_dir` (so the same file
/// serves both working directories), one-shot, the X.509 files, a JWT-SVID and the JWT
/// bundle. The agent address is a bare path, the form upstream reads. No
/// `jwt_extra_audiences`: upstream v0.11.0 drops them in one-shot mode, a documented
/// difference (docs/compatibility.md, row 28) checked on its own below.
const CONF_HEAD: &str = "cert_dir = \"certs\"\n\
daemon_mode = false\n\
svid_file_name = \"svid.pem\"\n\
svid_key_file_name = \"svid_key.pem\"\n\
svid_bundle_file_name = \"svid_bundle.pem\"\n\
jwt_svids = [{jwt_audience = \"db\", jwt_svid_file_name = \"jwt_svid.token\"}]\n\
jwt_bundle_file_name = \"jwt_bundle.json\"\n";

/// Runs both helpers with `helper.conf` = the agent address + [`CONF_HEAD`] + `extra` and
/// compares every output (bytes and mode). Returns the number of certificates in the SVID and
/// bundle files, for the caller to check that the case exercised what it names.
fn compare(spire: &Spire, upstream: &Path, case: &str, extra: &str) -> (usize, usize) {
    let conf = format!(
        "agent_address = \"{}\"\n{CONF_HEAD}{extra}",
        spire.socket_path().display()
    );
    let root = scratch();
    let (theirs, ours) = run_both(root.path(), upstream, case, &conf);
    let (theirs, ours) = (&theirs, &ours);
    let mut identical = 0;
    for name in OUTPUTS {
        let (a, b) = (
            theirs.join("certs").join(name),
            ours.join("certs").join(name),
        );
        let (upstream_bytes, our_bytes) = (
            fs::read(&a).unwrap_or_else(|e| panic!("{case}: upstream wrote no {name}: {e}")),
            fs::read(&b).unwrap_or_else(|e| panic!("{case}: we wrote no {name}: {e}")),
        );
        if upstream_bytes == our_bytes {
            identical += 1;
        } else if name == "jwt_bundle.json" {
            same_jwt_bundle(case, &upstream_bytes, &our_bytes);
        } else {
            // Never print key or token bytes: say where they differ.
            let at = upstream_bytes
                .iter()
                .zip(&our_bytes)
                .position(|(x, y)| x != y)
                .unwrap_or(upstream_bytes.len().min(our_bytes.len()));
            // Certificate files are public: show them.
            let public = if matches!(name, "svid.pem" | "svid_bundle.pem") {
                format!(
                    "\n--- upstream:\n{}\n--- ours:\n{}",
                    String::from_utf8_lossy(&upstream_bytes),
                    String::from_utf8_lossy(&our_bytes)
                )
            } else {
                String::new()
            };
            panic!(
                "{case}: {name} differs from upstream's at byte {at} (upstream {} bytes, ours {}){public}",
                upstream_bytes.len(),
                our_bytes.len()
            );
        }
        assert_eq!(mode(&a), mode(&b), "{case}: mode of {name}");
    }
    let certs = |name: &str| read_certs(&ours.join("certs").join(name)).len();
    let counts = (certs("svid.pem"), certs("svid_bundle.pem"));
    eprintln!(
        "upstream byte layout, {case}: {identical} of {} files byte-identical (svid.pem {} certificates, svid_bundle.pem {})",
        OUTPUTS.len(),
        counts.0,
        counts.1
    );
    counts
}

/// Writes `conf` as `helper.conf` into `root/upstream` and `root/ours`, runs each helper there
/// to completion (both must exit 0); returns the two directories.
fn run_both(root: &Path, upstream: &Path, case: &str, conf: &str) -> (PathBuf, PathBuf) {
    let [theirs, ours] = ["upstream", "ours"].map(|who| {
        let dir = root.join(who);
        // Upstream requires cert_dir to exist; ours creates it. Give both the same start.
        fs::create_dir_all(dir.join("certs")).unwrap();
        write_file(&dir, "helper.conf", conf);
        dir
    });
    let mut cmd = Command::new(upstream);
    cmd.arg("-config").arg(theirs.join("helper.conf"));
    let mut helper = Helper::spawn_command(cmd, &theirs.join("helper.conf"));
    let status = helper.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "{case}: upstream one-shot failed ({status:?}); log:\n{}",
        helper.log_tail()
    );
    let run = run_oneshot(&ours.join("helper.conf"), Duration::from_secs(60));
    assert_eq!(
        run.code(),
        0,
        "{case}: ours failed; log:\n{}",
        run.helper.log_tail()
    );
    (theirs, ours)
}

/// docs/compatibility.md, row 28: in one-shot mode upstream v0.11.0 fetches a JWT-SVID for
/// `jwt_audience` only; ours adds `jwt_extra_audiences`, as both do in daemon mode.
fn extra_audiences_differ_as_documented(spire: &Spire, upstream: &Path) {
    let conf = format!(
        "agent_address = \"{}\"\ncert_dir = \"certs\"\ndaemon_mode = false\n\
         jwt_svids = [{{jwt_audience = \"db\", jwt_extra_audiences = [\"cache\"], jwt_svid_file_name = \"jwt_svid.token\"}}]\n",
        spire.socket_path().display()
    );
    let root = scratch();
    let (theirs, ours) = run_both(root.path(), upstream, "jwt_extra_audiences", &conf);
    let aud = |dir: &Path| {
        let token = fs::read_to_string(dir.join("certs/jwt_svid.token")).unwrap();
        let mut aud = audiences(&jwt_parts(&token).1);
        aud.sort();
        aud
    };
    assert_eq!(aud(&theirs), ["db"], "upstream's one-shot audiences");
    assert_eq!(aud(&ours), ["cache", "db"], "our one-shot audiences");
    eprintln!(
        "upstream one-shot drops jwt_extra_audiences, ours keeps them (compatibility.md row 28)"
    );
}

/// The JWT bundle must be upstream's bytes too (docs/compatibility.md: upstream re-encodes each
/// JWKS through go-spiffe, and so do we). The one freedom: upstream orders several keys of one
/// trust domain by a Go map's iteration (random), so when a domain holds more than one key
/// (SPIRE publishes its next JWT key ahead of use) the keys are compared as a set, each key's
/// JSON still byte for byte. The file is public (keys, no secrets): shown on a difference.
fn same_jwt_bundle(case: &str, upstream: &[u8], ours: &[u8]) {
    let parse = |bytes: &[u8]| -> Vec<(String, Vec<String>)> {
        let outer: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(bytes).expect("the JWT bundle file is not a JSON object");
        outer
            .into_iter()
            .map(|(domain, b64)| {
                let jwks = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_str().expect("a JWKS value is not a string"))
                    .expect("a JWKS value is not padded standard base64");
                let doc: serde_json::Value =
                    serde_json::from_slice(&jwks).expect("a JWKS is not JSON");
                let mut keys: Vec<String> = doc["keys"]
                    .as_array()
                    .map(|keys| keys.iter().map(ToString::to_string).collect())
                    .unwrap_or_default();
                keys.sort();
                (domain, keys)
            })
            .collect()
    };
    let (theirs, mine) = (parse(upstream), parse(ours));
    let several = mine.iter().any(|(_, keys)| keys.len() > 1);
    assert!(
        several && theirs == mine,
        "{case}: jwt_bundle.json differs from upstream's\n--- upstream:\n{}\n--- ours:\n{}",
        String::from_utf8_lossy(upstream),
        String::from_utf8_lossy(ours)
    );
    eprintln!(
        "upstream byte layout, {case}: jwt_bundle.json holds the same keys in another order \
         (a trust domain has several, and upstream orders them by a Go map)"
    );
}

/// X.509 (the chain with SPIRE's intermediate in the SVID file), a JWT-SVID and the JWT
/// bundle; then `add_intermediates_to_bundle` (the intermediate moves to the bundle file); then
/// `include_federated_domains` (other.org's root appended to the bundle): ours writes the
/// same bytes as upstream v0.11.0 every time. Then the documented difference of
/// row 28 (extra audiences in one-shot mode), checked for real.
#[test]
fn oneshot_files_are_upstreams_bytes() {
    let upstream = upstream_binary();
    let spire = federated_spire_with_intermediates();

    let (svid, bundle) = compare(&spire, &upstream, "X.509 + JWT", "");
    assert_eq!(
        svid, 2,
        "the SVID file should hold the leaf and SPIRE's intermediate"
    );
    let plain_bundle = bundle;

    let (svid, bundle) = compare(
        &spire,
        &upstream,
        "add_intermediates_to_bundle",
        "add_intermediates_to_bundle = true\n",
    );
    assert_eq!(
        svid, 1,
        "with add_intermediates_to_bundle the SVID file holds the leaf only"
    );
    assert_eq!(
        bundle,
        plain_bundle + 1,
        "the intermediate did not move to the bundle"
    );

    let (_, bundle) = compare(
        &spire,
        &upstream,
        "include_federated_domains",
        "include_federated_domains = true\n",
    );
    assert_eq!(
        bundle,
        plain_bundle + 1,
        "other.org's root is not in the bundle"
    );

    extra_audiences_differ_as_documented(&spire, &upstream);
}
