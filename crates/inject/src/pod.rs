//! What the pod must allow for the helper to fit (free volume names and mount paths, a free
//! health port, a shareable process namespace, a volume holding the pid file), and the
//! volumes the injector adds.

use k8s_openapi::api::core::v1::{
    CSIVolumeSource, Container, EmptyDirVolumeSource, HostPathVolumeSource, PodSpec, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::annotations::{self as a, Mode, Requested};
use crate::container::{CERTS_VOLUME, CONFIG_VOLUME, PidVolume, SOCKET_VOLUME};
use crate::helper_env::{CONFIG_DIR, SOCKET_DIR};
use crate::refusal::Refusal;
use crate::settings::{AgentSocket, InjectorSettings};

/// Size limit of the in-memory certificate volume: a few PEM files and tokens (the demo's).
const CERTS_SIZE_LIMIT: &str = "1Mi";

/// Every container of the pod: init containers first, then the application containers.
pub(crate) fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
}

fn refuse(annotation: &str, reason: String) -> Refusal {
    Refusal::PodSpec {
        annotation: annotation.to_owned(),
        reason,
    }
}

/// Checks that the helper fits into the pod; returns the pid-file volume to share, if any.
pub(crate) fn check(
    spec: &PodSpec,
    req: &Requested,
    settings: &InjectorSettings,
) -> Result<Option<PidVolume>, Refusal> {
    for volume in spec.volumes.iter().flatten() {
        if [CERTS_VOLUME, SOCKET_VOLUME, CONFIG_VOLUME].contains(&volume.name.as_str()) {
            return Err(refuse(
                a::INJECT,
                format!(
                    "the pod already has a volume named {}, which the injector adds; rename it",
                    volume.name
                ),
            ));
        }
    }
    let pod_user = spec.security_context.as_ref().and_then(|sc| sc.run_as_user);
    if pod_user == Some(0) {
        return Err(refuse(
            a::INJECT,
            "the pod runs as root (securityContext.runAsUser: 0) and the helper runs as non-root, so the kubelet would not start it; set runAsUser on the containers that need root instead".to_owned(),
        ));
    }
    for container in all_containers(spec) {
        check_container(container, req, settings)?;
    }
    let Some(pid_file) = &req.pid_file_name else {
        return Ok(None);
    };
    if spec.share_process_namespace == Some(false) {
        return Err(refuse(
            a::PID_FILE_NAME,
            "the helper signals the pid-file process across containers, which needs shareProcessNamespace: true; the pod sets it to false".to_owned(),
        ));
    }
    pid_volume(spec, pid_file, req).map(Some)
}

fn check_container(
    container: &Container,
    req: &Requested,
    settings: &InjectorSettings,
) -> Result<(), Refusal> {
    for mount in container.volume_mounts.iter().flatten() {
        if mount.mount_path.trim_end_matches('/') == req.cert_dir {
            return Err(refuse(
                a::CERT_DIR,
                format!(
                    "container {} already mounts {} at {}; choose another cert-dir",
                    container.name, mount.name, req.cert_dir
                ),
            ));
        }
    }
    // Containers of a pod share one network namespace: a second listener on the health port
    // would fail to bind.
    let port = i32::from(settings.health_port);
    let taken = (container.ports.iter().flatten()).any(|p| p.container_port == port);
    if req.mode == Mode::Sidecar && taken {
        return Err(refuse(
            a::INJECT,
            format!(
                "container {} declares port {port}, the helper's health port; use inject-mode init or move the container's port",
                container.name
            ),
        ));
    }
    Ok(())
}

/// What the pod will probably trip over without being wrong: the helper writes the key 0600
/// as its own uid, so an application running as another uid cannot read it.
pub(crate) fn warnings(spec: &PodSpec) -> Vec<String> {
    let pod_user = spec.security_context.as_ref().and_then(|sc| sc.run_as_user);
    if pod_user.is_some() {
        return Vec::new();
    }
    vec![
        // Kubernetes asks for warnings of at most 120 characters where possible (API reference,
        // AdmissionResponse.warnings); the page says the rest.
        "spiffe-helper writes the key 0600 as the pod's runAsUser (unset: 65532); set it so the app can read it".to_owned(),
    ]
}

/// The helper reads the pid file in its own filesystem, so the file must be on a volume that
/// the application mounts: the injector mounts the same volume (read-only) at the same path
/// into the helper. The deepest mount holding the file wins, as in the kernel's lookup.
fn pid_volume(spec: &PodSpec, pid_file: &str, req: &Requested) -> Result<PidVolume, Refusal> {
    let holds = |m: &&VolumeMount| {
        let dir = m.mount_path.trim_end_matches('/');
        !dir.is_empty() && pid_file.starts_with(&format!("{dir}/"))
    };
    let found = all_containers(spec)
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .filter(holds)
        .max_by_key(|m| m.mount_path.trim_end_matches('/').len());
    let Some(app) = found else {
        return Err(refuse(
            a::PID_FILE_NAME,
            format!(
                "{pid_file} is not on a volume of any container, so the helper cannot read it; mount a volume (e.g. an emptyDir) at its directory in the application container"
            ),
        ));
    };
    let path = app.mount_path.trim_end_matches('/');
    if [req.cert_dir.as_str(), SOCKET_DIR, CONFIG_DIR].contains(&path) {
        return Err(refuse(
            a::PID_FILE_NAME,
            format!(
                "the pid file's volume is mounted at {path}, where the helper mounts its own; move the pid file"
            ),
        ));
    }
    Ok(PidVolume {
        mount: VolumeMount {
            read_only: Some(true),
            // The application may write through it (`mountPropagation` is not for us).
            mount_propagation: None,
            recursive_read_only: None,
            ..app.clone()
        },
    })
}

/// The volumes the injector adds.
pub(crate) fn volumes(req: &Requested, settings: &InjectorSettings) -> Vec<Volume> {
    let mut out = vec![
        Volume {
            name: CERTS_VOLUME.to_owned(),
            // In memory: the private key never reaches the node's disk.
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_owned()),
                size_limit: Some(Quantity(CERTS_SIZE_LIMIT.to_owned())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
        socket_volume(req.agent_socket, settings),
    ];
    if let Some(name) = &req.config_map {
        out.push(Volume {
            name: CONFIG_VOLUME.to_owned(),
            config_map: Some(k8s_openapi::api::core::v1::ConfigMapVolumeSource {
                name: name.clone(),
                ..Default::default()
            }),
            ..Volume::default()
        });
    }
    out
}

fn socket_volume(kind: AgentSocket, settings: &InjectorSettings) -> Volume {
    let mut volume = Volume {
        name: SOCKET_VOLUME.to_owned(),
        ..Volume::default()
    };
    match kind {
        AgentSocket::HostPath => {
            volume.host_path = Some(HostPathVolumeSource {
                path: settings.agent_socket_host_path.clone(),
                type_: Some("Directory".to_owned()),
            });
        }
        AgentSocket::Csi => {
            volume.csi = Some(CSIVolumeSource {
                driver: settings.agent_socket_csi_driver.clone(),
                read_only: Some(true),
                ..CSIVolumeSource::default()
            });
        }
    }
    volume
}
