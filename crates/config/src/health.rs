//! The health server's settings (the `health_checks` block), typed. Its defaults come from the
//! key table through `raw`, so this module sits above both (`values` stays a leaf).

use std::net::IpAddr;

use crate::keys::HealthKey;
use crate::raw;

/// The health server (`health_checks` with `listener_enabled = true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// Address to bind (`bind_address`, an IP literal); `0.0.0.0`, all interfaces, by default.
    pub bind_address: IpAddr,
    /// TCP port.
    pub bind_port: u16,
    /// Liveness URL path (starts with `/`).
    pub liveness_path: String,
    /// Readiness URL path (starts with `/`, differs from the liveness path).
    pub readiness_path: String,
}

impl Default for HealthConfig {
    /// Upstream's defaults, from the key table: all interfaces, port 8080, `/health/live`,
    /// `/health/ready`.
    fn default() -> Self {
        Self {
            bind_address: IpAddr::from([0, 0, 0, 0]),
            bind_port: raw::default(HealthKey::BindPort),
            liveness_path: raw::default(HealthKey::LivenessPath),
            readiness_path: raw::default(HealthKey::ReadinessPath),
        }
    }
}
