//! Harness options, registration entries and the server/agent configuration files.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options for [`super::Spire::start_with`].
#[derive(Clone, Debug)]
pub struct SpireOptions {
    /// Trust domain name (default `example.org`).
    pub trust_domain: String,
    /// Server `default_x509_svid_ttl` (default 1 h).
    pub default_x509_svid_ttl: Duration,
    /// Server `default_jwt_svid_ttl` (default 5 min).
    pub default_jwt_svid_ttl: Duration,
    /// Server `ca_ttl` (default 24 h); keep it at least 6x the longest SVID TTL.
    pub ca_ttl: Duration,
    /// When true the server gets `UpstreamAuthority "disk"` with a generated test root, so
    /// X.509-SVID chains carry SPIRE's intermediate CA (default false).
    pub upstream_authority: bool,
    /// The server's own federation bundle endpoint on 127.0.0.1 (`federation {
    /// bundle_endpoint { ... } }`), on a free port ([`super::Spire::bundle_endpoint_url`]);
    /// default none.
    pub bundle_endpoint: Option<BundleEndpoint>,
}

/// SPIRE's bundle endpoint profile (SPIFFE Trust Domain and Bundle §5.2).
#[derive(Clone, Debug)]
pub enum BundleEndpointProfile {
    /// `profile "https_spiffe" {}`: the endpoint presents the server's SVID,
    /// `spiffe://<td>/spire/server`.
    HttpsSpiffe,
    /// `profile "https_web" { serving_cert_file { ... } }`: the endpoint presents this
    /// certificate chain and key (PEM files).
    HttpsWeb {
        /// `cert_file_path`.
        cert_file: PathBuf,
        /// `key_file_path`.
        key_file: PathBuf,
    },
}

/// Options of the server's bundle endpoint.
#[derive(Clone, Debug)]
pub struct BundleEndpoint {
    /// The profile.
    pub profile: BundleEndpointProfile,
    /// `refresh_hint` (SPIRE's default is 5 min).
    pub refresh_hint: Option<Duration>,
}

impl Default for SpireOptions {
    fn default() -> Self {
        Self {
            trust_domain: "example.org".to_owned(),
            default_x509_svid_ttl: Duration::from_secs(3600),
            default_jwt_svid_ttl: Duration::from_secs(300),
            ca_ttl: Duration::from_secs(24 * 3600),
            upstream_authority: false,
            bundle_endpoint: None,
        }
    }
}

/// A registration entry for `spire-server entry create`; the parent is always the test agent
/// (`spiffe://<td>/agent`).
#[derive(Clone, Debug)]
pub struct Entry {
    /// `-spiffeID`.
    pub spiffe_id: String,
    /// `-selector`, one flag each (default `unix:uid:<current uid>`).
    pub selectors: Vec<String>,
    /// `-x509SVIDTTL` in seconds.
    pub x509_svid_ttl: Option<u32>,
    /// `-jwtSVIDTTL` in seconds.
    pub jwt_svid_ttl: Option<u32>,
    /// `-hint`.
    pub hint: Option<String>,
    /// `-entryID` (entries for one caller arrive sorted by it).
    pub entry_id: Option<String>,
    /// `-federatesWith`, trust domain IDs like `spiffe://other.org`.
    pub federates_with: Vec<String>,
    /// `-dns`.
    pub dns_names: Vec<String>,
    selectors_customised: bool,
}

impl Entry {
    /// An entry for `spiffe_id` selecting the current user (`unix:uid:<uid>`).
    pub fn new(spiffe_id: impl Into<String>) -> Self {
        Self {
            spiffe_id: spiffe_id.into(),
            selectors: vec![format!("unix:uid:{}", nix::unistd::getuid())],
            x509_svid_ttl: None,
            jwt_svid_ttl: None,
            hint: None,
            entry_id: None,
            federates_with: Vec::new(),
            dns_names: Vec::new(),
            selectors_customised: false,
        }
    }

    /// Sets `-x509SVIDTTL`.
    #[must_use]
    pub fn x509_ttl(mut self, secs: u32) -> Self {
        self.x509_svid_ttl = Some(secs);
        self
    }

    /// Sets `-jwtSVIDTTL`.
    #[must_use]
    pub fn jwt_ttl(mut self, secs: u32) -> Self {
        self.jwt_svid_ttl = Some(secs);
        self
    }

    /// Sets `-hint`.
    #[must_use]
    pub fn hint(mut self, h: &str) -> Self {
        self.hint = Some(h.to_owned());
        self
    }

    /// Sets `-entryID`.
    #[must_use]
    pub fn entry_id(mut self, id: &str) -> Self {
        self.entry_id = Some(id.to_owned());
        self
    }

    /// Adds `-federatesWith` (`other.org` is turned into `spiffe://other.org`).
    #[must_use]
    pub fn federates_with(mut self, td_id: &str) -> Self {
        self.federates_with.push(td_id_of(td_id));
        self
    }

    /// Adds `-dns`.
    #[must_use]
    pub fn dns(mut self, name: &str) -> Self {
        self.dns_names.push(name.to_owned());
        self
    }

    /// Adds a selector; the first call replaces the default `unix:uid:<uid>`.
    #[must_use]
    pub fn selector(mut self, s: &str) -> Self {
        if !self.selectors_customised {
            self.selectors.clear();
            self.selectors_customised = true;
        }
        self.selectors.push(s.to_owned());
        self
    }

    /// The `entry create` flags (without `-socketPath`/`-parentID`).
    pub(crate) fn args(&self) -> Vec<String> {
        let mut a = vec!["-spiffeID".to_owned(), self.spiffe_id.clone()];
        for s in &self.selectors {
            a.extend(["-selector".to_owned(), s.clone()]);
        }
        if let Some(t) = self.x509_svid_ttl {
            a.extend(["-x509SVIDTTL".to_owned(), t.to_string()]);
        }
        if let Some(t) = self.jwt_svid_ttl {
            a.extend(["-jwtSVIDTTL".to_owned(), t.to_string()]);
        }
        if let Some(h) = &self.hint {
            a.extend(["-hint".to_owned(), h.clone()]);
        }
        if let Some(id) = &self.entry_id {
            a.extend(["-entryID".to_owned(), id.clone()]);
        }
        for f in &self.federates_with {
            a.extend(["-federatesWith".to_owned(), f.clone()]);
        }
        for d in &self.dns_names {
            a.extend(["-dns".to_owned(), d.clone()]);
        }
        a
    }
}

/// `spiffe://x` for `x`; already prefixed IDs are kept.
pub(crate) fn td_id_of(td: &str) -> String {
    if td.starts_with("spiffe://") {
        td.to_owned()
    } else {
        format!("spiffe://{td}")
    }
}

/// Paths and values the config files need.
pub(crate) struct Layout<'a> {
    pub dir: &'a Path,
    pub port: u16,
    pub opts: &'a SpireOptions,
    /// (cert, key) PEM files of the upstream root, when enabled.
    pub upstream: Option<(&'a Path, &'a Path)>,
    /// The bundle endpoint's port, when enabled.
    pub bundle_endpoint_port: Option<u16>,
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

pub(crate) fn server_conf(l: &Layout<'_>) -> String {
    let d = l.dir.display();
    let upstream = l.upstream.map_or_else(String::new, |(cert, key)| {
        format!(
            r#"
  UpstreamAuthority "disk" {{
    plugin_data {{
      cert_file_path = "{}"
      key_file_path = "{}"
    }}
  }}"#,
            cert.display(),
            key.display()
        )
    });
    let federation = match (&l.opts.bundle_endpoint, l.bundle_endpoint_port) {
        (Some(endpoint), Some(port)) => federation_conf(endpoint, port),
        _ => String::new(),
    };
    format!(
        r#"server {{
  bind_address = "127.0.0.1"
  bind_port = "{port}"
  socket_path = "{d}/server.sock"
  trust_domain = "{td}"
  data_dir = "{d}/sd"
  log_level = "DEBUG"
  default_x509_svid_ttl = "{x509}"
  default_jwt_svid_ttl = "{jwt}"
  ca_ttl = "{ca}"
  agent_ttl = "1h"
  experimental {{
    cache_reload_interval = "1s"
  }}{federation}
}}

plugins {{
  DataStore "sql" {{
    plugin_data {{
      database_type = "sqlite3"
      connection_string = "{d}/sd/datastore.sqlite3"
    }}
  }}
  KeyManager "disk" {{
    plugin_data {{
      keys_path = "{d}/sd/keys.json"
    }}
  }}
  NodeAttestor "join_token" {{
    plugin_data {{}}
  }}{upstream}
}}
"#,
        port = l.port,
        td = l.opts.trust_domain,
        x509 = secs(l.opts.default_x509_svid_ttl),
        jwt = secs(l.opts.default_jwt_svid_ttl),
        ca = secs(l.opts.ca_ttl),
    )
}

/// SPIRE 1.13's `federation { bundle_endpoint { ... } }` block (`conf/server/server_full.conf`).
/// 1.13.3 refuses to start without `file_sync_interval` ("time: invalid duration").
fn federation_conf(endpoint: &BundleEndpoint, port: u16) -> String {
    let profile = match &endpoint.profile {
        BundleEndpointProfile::HttpsSpiffe => "profile \"https_spiffe\" {}".to_owned(),
        BundleEndpointProfile::HttpsWeb {
            cert_file,
            key_file,
        } => format!(
            r#"profile "https_web" {{
        serving_cert_file {{
          cert_file_path = "{}"
          key_file_path = "{}"
          file_sync_interval = "1h"
        }}
      }}"#,
            cert_file.display(),
            key_file.display()
        ),
    };
    let hint = endpoint.refresh_hint.map_or_else(String::new, |h| {
        format!("\n      refresh_hint = \"{}\"", secs(h))
    });
    format!(
        r#"
  federation {{
    bundle_endpoint {{
      address = "127.0.0.1"
      port = {port}{hint}
      {profile}
    }}
  }}"#
    )
}

pub(crate) fn agent_conf(l: &Layout<'_>) -> String {
    let d = l.dir.display();
    format!(
        r#"agent {{
  data_dir = "{d}/ad"
  log_level = "DEBUG"
  server_address = "127.0.0.1"
  server_port = "{port}"
  socket_path = "{d}/agent.sock"
  trust_domain = "{td}"
  insecure_bootstrap = true
  experimental {{
    sync_interval = "1s"
  }}
}}

plugins {{
  NodeAttestor "join_token" {{
    plugin_data {{}}
  }}
  KeyManager "disk" {{
    plugin_data {{
      directory = "{d}/ad"
    }}
  }}
  WorkloadAttestor "unix" {{
    plugin_data {{}}
  }}
}}
"#,
        port = l.port,
        td = l.opts.trust_domain,
    )
}

#[cfg(test)]
mod tests;
