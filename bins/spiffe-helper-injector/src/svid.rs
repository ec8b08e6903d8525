//! What the serving certificate must carry for the kube-apiserver: it calls the webhook at
//! `https://<service>.<namespace>.svc` and verifies the certificate's DNS SANs against that
//! name (Go's `crypto/x509` ignores the URI SAN that makes it an SVID). SPIRE puts DNS SANs in
//! an X.509-SVID when the registration entry has `-dns` names.

use std::time::SystemTime;

use spiffe_workload_client::X509Svid;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// The DNS SANs of a DER certificate (none when it does not parse).
pub fn dns_names(leaf: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect()
}

/// Logs the SVID being served, and warns when the API server could not verify it.
pub fn check(svid: &X509Svid, service_dns: Option<&str>) {
    let names = dns_names(svid.leaf());
    let expires_in = svid
        .not_after()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tracing::info!(
        spiffe_id = %svid.spiffe_id(),
        serial = %svid.serial_hex(),
        dns_names = ?names,
        expires_in = ?expires_in,
        "serving with this X.509-SVID"
    );
    let carries = |expected: &str| names.iter().any(|n| n.eq_ignore_ascii_case(expected));
    match service_dns {
        Some(expected) if !carries(expected) => tracing::warn!(
            spiffe_id = %svid.spiffe_id(),
            expected,
            dns_names = ?names,
            "the X.509-SVID does not carry the Service name the kube-apiserver calls: add \
             -dns {expected} to the registration entry"
        ),
        None if names.is_empty() => tracing::warn!(
            spiffe_id = %svid.spiffe_id(),
            "the X.509-SVID has no DNS name: the kube-apiserver verifies the webhook's \
             certificate against its Service name (<service>.<namespace>.svc); add it to the \
             registration entry (-dns)"
        ),
        _ => {}
    }
}
