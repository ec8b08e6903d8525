//! The wiring: probes first (so the kubelet sees a live process while the SVID is awaited),
//! then the X.509 source, the webhook server, the SVID logger and the caBundle updater, all
//! stopped by one cancellation token.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use spiffe_helper_inject::InjectorSettings;
use spiffe_workload_client::{Backoff, Endpoint, X509Snapshot, X509Source};
use spiffe_workload_tls::SpiffeAcceptor;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::Cli;
use crate::health::Readiness;
use crate::http::Server;
use crate::kube_api::KubeWebhookApi;
use crate::{ca_bundle, health, svid, webhook};

/// Runs until SIGTERM/SIGINT: exit 0 after the drain, 1 when start-up fails.
pub async fn run(cli: Cli, settings: InjectorSettings) -> ExitCode {
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let result = start(&cli, settings, &shutdown, &mut tasks).await;
    if let Err(err) = &result {
        tracing::error!("{err:#}");
        shutdown.cancel();
    }
    // Every task watches `shutdown` and drains within --drain-timeout.
    while tasks.join_next().await.is_some() {}
    match result {
        Ok(Some(source)) => {
            source.shutdown().await;
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// Starts everything and waits for the stop signal. `Ok(None)`: stopped before the SVID came.
async fn start(
    cli: &Cli,
    settings: InjectorSettings,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<Option<X509Source>> {
    cancel_on_signal(shutdown.clone()).context("cannot install signal handlers")?;
    // One crypto provider for the serving TLS and the kube client: the tls crate's, installed
    // as the process default (rustls refuses to guess when a build enables two).
    let _ = rustls::crypto::CryptoProvider::install_default(
        (*spiffe_workload_tls::builtin_provider()).clone(),
    );
    // Everything that can be wrong in the pod spec fails before the wait for the SVID.
    let endpoint = agent_endpoint()?;
    let api = match &cli.webhook_configuration {
        Some(name) => Some(KubeWebhookApi::in_cluster(name)?),
        None => None,
    };
    let webhook_listener = bind(cli.listen, "--listen").await?;
    let health_listener = bind(cli.health_listen, "--health-listen").await?;
    tracing::info!(webhook = %cli.listen, health = %cli.health_listen, "listening");
    let readiness = Arc::new(Readiness::new(api.is_some()));
    let probes = Server {
        listener: health_listener,
        tls: None,
        drain: cli.drain_timeout,
        name: "health",
    };
    let ready = readiness.clone();
    tasks.spawn(probes.serve(
        move |req| std::future::ready(health::handle(&ready, &req)),
        shutdown.clone(),
    ));

    let building = X509Source::builder()
        .endpoint(endpoint)
        .startup_timeout(cli.startup_timeout)
        .build();
    let source = tokio::select! {
        () = shutdown.cancelled() => return Ok(None),
        built = building => built.context(
            "no X.509-SVID from the SPIRE agent (is a registration entry for the injector in place?)",
        )?,
    };
    readiness.svid_source(source.clone());
    let webhook = Server {
        listener: webhook_listener,
        tls: Some(SpiffeAcceptor::new(
            spiffe_workload_tls::tls_server_config(&source)
                .context("cannot build the TLS server config")?,
        )),
        drain: cli.drain_timeout,
        name: "webhook",
    };
    let settings = Arc::new(settings);
    tasks.spawn(webhook.serve(
        move |req| webhook::handle(settings.clone(), req),
        shutdown.clone(),
    ));
    tasks.spawn(log_rotations(
        source.updates(),
        cli.service_dns.clone(),
        shutdown.clone(),
    ));
    if let Some(api) = api {
        let bundle = own_bundle(source.updates(), shutdown.clone(), tasks);
        tasks.spawn(ca_bundle::run(
            api,
            bundle,
            readiness.clone(),
            Backoff::default(),
            shutdown.clone(),
        ));
    }
    shutdown.cancelled().await;
    readiness.stopping();
    Ok(Some(source))
}

fn agent_endpoint() -> anyhow::Result<Endpoint> {
    match Endpoint::from_env() {
        Ok(Some(endpoint)) => Ok(endpoint),
        Ok(None) => anyhow::bail!(
            "SPIFFE_ENDPOINT_SOCKET is not set: set it to the SPIRE agent's Workload API socket \
             (unix:///run/spire/agent-sockets/agent.sock)"
        ),
        Err(err) => {
            Err(anyhow::anyhow!(err).context("SPIFFE_ENDPOINT_SOCKET is not a usable address"))
        }
    }
}

async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({flag}): is the port taken?"))
}

/// Logs the SVID at start and on every rotation, with the DNS SAN check.
async fn log_rotations(
    mut updates: watch::Receiver<Arc<X509Snapshot>>,
    service_dns: Option<String>,
    shutdown: CancellationToken,
) {
    let mut serial = String::new();
    loop {
        let svid = updates.borrow_and_update().svid_arc();
        if svid.serial_hex() != serial {
            serial = svid.serial_hex();
            svid::check(&svid, service_dns.as_deref());
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = updates.changed() => if changed.is_err() { return },
        }
    }
}

/// The PEM of the own trust domain's X.509 bundle, sent only when it changes (an SVID
/// rotation alone does not wake the caBundle updater).
fn own_bundle(
    mut updates: watch::Receiver<Arc<X509Snapshot>>,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> watch::Receiver<Vec<u8>> {
    let (tx, rx) = watch::channel(bundle_pem(&updates.borrow_and_update()));
    tasks.spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = updates.changed() => if changed.is_err() { return },
            }
            let pem = bundle_pem(&updates.borrow_and_update());
            tx.send_if_modified(|current| {
                let changed = *current != pem;
                if changed {
                    *current = pem;
                }
                changed
            });
        }
    });
    rx
}

/// The authorities of the SVID's own trust domain, as concatenated LF-ended PEM blocks.
fn bundle_pem(snapshot: &X509Snapshot) -> Vec<u8> {
    let trust_domain = snapshot.svid().spiffe_id().trust_domain();
    let Some(bundle) = snapshot.bundle_set().get(trust_domain) else {
        return Vec::new();
    };
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    bundle
        .authorities()
        .iter()
        .map(|der| pem::encode_config(&pem::Pem::new("CERTIFICATE", der.clone()), config))
        .collect::<String>()
        .into_bytes()
}

fn cancel_on_signal(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; draining"),
            _ = int.recv() => tracing::info!("SIGINT received; draining"),
        }
        shutdown.cancel();
    });
    Ok(())
}
