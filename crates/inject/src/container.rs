//! The helper container, shaped like the hand-written one in deploy/k8s/30-demo-sidecar.yaml:
//! non-root, read-only root filesystem, no privilege escalation, every capability dropped,
//! bounded resources; as a native sidecar with its three probes, or as a one-shot
//! initContainer without them.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, Probe, SeccompProfile,
    SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::annotations::{Mode, Requested};
use crate::helper_env::{CONFIG_DIR, LIVENESS_PATH, READINESS_PATH, SOCKET_DIR, Var};
use crate::settings::InjectorSettings;

/// The helper container's name; a pod that already has a container of this name is left
/// alone (docs/injection.md, "Idempotence").
pub const CONTAINER_NAME: &str = "spiffe-helper";
/// The certificate volume (an in-memory emptyDir).
pub const CERTS_VOLUME: &str = "spiffe-helper-certs";
/// The agent socket volume (hostPath or CSI).
pub const SOCKET_VOLUME: &str = "spiffe-helper-agent-socket";
/// The `config-map` volume.
pub const CONFIG_VOLUME: &str = "spiffe-helper-config";
/// The name of the health port.
const PORT_NAME: &str = "spiffe-health";
/// Seconds the startup probe allows beyond `startup_timeout`: the helper gives up first and
/// says why in its log before the kubelet restarts it (deploy/k8s/30-demo-sidecar.yaml).
const STARTUP_GRACE_SECS: u64 = 20;

/// A volume the application writes the pid file on, mounted read-only into the helper at the
/// same path, so the helper reads the file the application wrote.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PidVolume {
    pub mount: VolumeMount,
}

/// The helper container.
pub(crate) fn helper(
    req: &Requested,
    settings: &InjectorSettings,
    vars: &[Var],
    pid: Option<&PidVolume>,
) -> Container {
    let sidecar = req.mode == Mode::Sidecar;
    Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        // A native sidecar: started before the application containers, kept running
        // (Kubernetes 1.33+, "Sidecar containers").
        restart_policy: sidecar.then(|| "Always".to_owned()),
        args: args(req),
        env: Some(vars.iter().map(env_var).collect()),
        ports: sidecar.then(|| {
            vec![ContainerPort {
                name: Some(PORT_NAME.to_owned()),
                container_port: i32::from(settings.health_port),
                ..ContainerPort::default()
            }]
        }),
        startup_probe: sidecar.then(|| startup_probe(settings)),
        liveness_probe: sidecar.then(|| probe(settings, LIVENESS_PATH, 10, 8)),
        readiness_probe: sidecar.then(|| probe(settings, READINESS_PATH, 5, 3)),
        security_context: Some(security_context()),
        resources: Some(settings.resources.clone()),
        volume_mounts: Some(mounts(req, pid)),
        ..Container::default()
    }
}

/// `-config` for a `ConfigMap`, `-daemon-mode=false` for one-shot mode; none otherwise (the
/// environment is the whole configuration).
fn args(req: &Requested) -> Option<Vec<String>> {
    let mut args = Vec::new();
    if req.config_map.is_some() {
        args.extend(["-config".to_owned(), format!("{CONFIG_DIR}/helper.conf")]);
    }
    if req.mode == Mode::Init {
        args.push("-daemon-mode=false".to_owned());
    }
    (!args.is_empty()).then_some(args)
}

fn env_var(var: &Var) -> EnvVar {
    EnvVar {
        name: var.name.clone(),
        value: Some(var.value.clone()),
        ..EnvVar::default()
    }
}

/// Holds the application containers back until the files are written: the next container
/// starts once a sidecar's startup probe passes, and readiness means "the X.509 files are on
/// disk" (docs/behaviour.md).
fn startup_probe(settings: &InjectorSettings) -> Probe {
    let secs = (settings.startup_timeout.as_secs()).saturating_add(STARTUP_GRACE_SECS);
    Probe {
        period_seconds: Some(1),
        failure_threshold: Some(i32::try_from(secs).unwrap_or(i32::MAX)),
        ..probe(settings, READINESS_PATH, 1, 1)
    }
}

/// Liveness: 8 × 10 s as in the demo, because a restart cannot bring the agent back and the
/// helper reconnects on its own; readiness every 5 s takes the pod out of its Services.
fn probe(settings: &InjectorSettings, path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(i32::from(settings.health_port)),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// No user is set: the helper runs as the pod's `runAsUser` (or the image's 65532), the same
/// uid as the application, which must read the 0600 key and may own the pid file
/// (docs/injection.md, "Users and permissions").
fn security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

fn mounts(req: &Requested, pid: Option<&PidVolume>) -> Vec<VolumeMount> {
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    };
    let mut out = vec![
        mount(CERTS_VOLUME, &req.cert_dir, false),
        mount(SOCKET_VOLUME, SOCKET_DIR, true),
    ];
    if req.config_map.is_some() {
        out.push(mount(CONFIG_VOLUME, CONFIG_DIR, true));
    }
    if let Some(pid) = pid {
        out.push(pid.mount.clone());
    }
    out
}

/// The certificate volume as application containers mount it: read-only.
pub(crate) fn certs_mount(req: &Requested) -> VolumeMount {
    VolumeMount {
        name: CERTS_VOLUME.to_owned(),
        mount_path: req.cert_dir.clone(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}
