//! Looking at what the helper wrote: PEM blocks, certificates (x509-parser and the `openssl`
//! CLI), JWTs, and HTTP status codes.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use crate::support::epoch;

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// The PEM blocks of `text`: (label, DER).
pub fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            current = Some((label.to_owned(), String::new()));
        } else if line.starts_with("-----END ") {
            if let Some((label, b64)) = current.take() {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap();
                out.push((label, der));
            }
        } else if let Some((_, b64)) = current.as_mut() {
            b64.push_str(line.trim());
        }
    }
    out
}

/// The certificates (DER) in a PEM file; empty when the file is missing.
pub fn read_certs(path: &Path) -> Vec<Vec<u8>> {
    let text = fs::read_to_string(path).unwrap_or_default();
    pem_blocks(&text)
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| der)
        .collect()
}

/// What the tests look at in a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    pub serial: String,
    pub uris: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// Parses one DER certificate.
pub fn cert_info(der: &[u8]) -> CertInfo {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let uris = cert
        .subject_alternative_name()
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
        .unwrap_or_default();
    let at = |t: x509_parser::time::ASN1Time| {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap())
    };
    CertInfo {
        serial: cert.raw_serial_as_string(),
        uris,
        not_before: at(cert.validity().not_before),
        not_after: at(cert.validity().not_after),
    }
}

/// The leaf certificate of an SVID file, or None when missing, empty or unparsable.
pub fn leaf(path: &Path) -> Option<CertInfo> {
    let text = fs::read_to_string(path).ok()?;
    let (label, der) = pem_blocks(&text).into_iter().next()?;
    (label == "CERTIFICATE").then(|| cert_info(&der))
}

/// Runs `openssl` with `args` (stdin closed).
pub fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `openssl verify -CAfile bundle cert` (with the SVID file's other certs as untrusted
/// intermediates) succeeds.
pub fn openssl_verify(bundle: &Path, svid: &Path) -> Result<(), String> {
    let out = openssl(&[
        "verify",
        "-CAfile",
        bundle.to_str().unwrap(),
        svid.to_str().unwrap(),
    ]);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The key file holds the private key of the SVID file's leaf (public keys compared).
pub fn key_matches_cert(key: &Path, cert: &Path) -> bool {
    let from_key = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    let from_cert = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"]);
    from_key.status.success()
        && from_cert.status.success()
        && !from_key.stdout.is_empty()
        && from_key.stdout == from_cert.stdout
}

/// Polls the SVID file until its leaf's serial differs from `previous` (returns the new leaf
/// and when it was seen). While waiting, panics if the file ever holds an expired leaf or
/// cannot be read as a certificate.
pub fn wait_for_rotation(
    svid: &Path,
    previous: &str,
    timeout: Duration,
) -> Option<(CertInfo, SystemTime)> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let now = SystemTime::now();
        let Some(current) = leaf(svid) else {
            panic!("{} is missing, empty or not a certificate", svid.display());
        };
        assert!(
            current.not_after > now,
            "{} holds an expired SVID (serial {})",
            svid.display(),
            current.serial
        );
        if current.serial != previous {
            return Some((current, now));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// When SPIRE minted `cert`, in epoch seconds: its `NotBefore` plus SPIRE's 10 s back-dating.
pub fn minted(cert: &CertInfo) -> f64 {
    epoch(cert.not_before) + 10.0
}

/// Seconds from when SPIRE minted `cert` to `t`.
pub fn since_minted(cert: &CertInfo, t: SystemTime) -> f64 {
    epoch(t) - minted(cert)
}

// ---------------------------------------------------------------------------------------------
// JWT and HTTP
// ---------------------------------------------------------------------------------------------

/// The decoded header and claims of a compact JWT.
pub fn jwt_parts(token: &str) -> (serde_json::Value, serde_json::Value) {
    let mut parts = token.split('.');
    let mut decode = || {
        let b64 = parts.next().expect("JWT has three parts");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64.trim_end_matches('='))
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    let header = decode();
    let claims = decode();
    (header, claims)
}

/// The `aud` claim as a list (it may be a string or an array).
pub fn audiences(claims: &serde_json::Value) -> Vec<String> {
    match &claims["aud"] {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The `exp` claim.
pub fn expiry(claims: &serde_json::Value) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(claims["exp"].as_u64().unwrap())
}

/// `GET path` on 127.0.0.1:port: (status, body), or None if nothing answered.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// The status code of `GET path`, or None if nothing answered.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    http_get(port, path).map(|(status, _)| status)
}
