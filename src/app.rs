//! Wiring: metrics, the table publisher, discovery (a provider publishing to it), certificates,
//! the admin and public listeners (readers of its table), signals. This runs on the control-plane runtime; the public listeners are served
//! by every worker runtime (see [`crate::runtime`]).

use std::future::Future;
use std::sync::Arc;

use dockhand_discovery::{DiscoveryMetrics, Status};
use dockhand_proxy::tls::{self, CertStore, TlsMetrics};
use dockhand_proxy::{Metrics, Proxy, Publisher, SharedListener, TableReader};
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::admin::{self, Admin};
use crate::config::Config;

/// Why dockhand could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// Metrics could not be registered (a programming error: duplicate names).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Signal handlers could not be installed.
    #[error("signals: {0}")]
    Signal(std::io::Error),
    /// A public listener failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// Runs dockhand until SIGTERM/SIGINT, then drains within the grace period. The public
/// listeners are served on each runtime of `workers`.
pub async fn run(config: Config, workers: Vec<Handle>) -> Result<(), AppError> {
    info!(version = env!("CARGO_PKG_VERSION"), "dockhand starting");
    let registry = Registry::new();
    let proxy_metrics = Metrics::new(&registry)?;
    let discovery_metrics = DiscoveryMetrics::new(&registry)?;
    let certs = CertStore::new(config.certs_dir.clone(), TlsMetrics::new(&registry)?);
    let default_host = config.default_host.as_deref();
    let publisher = Publisher::new(default_host, proxy_metrics.clone(), &registry)?;
    let table = publisher.reader();
    dockhand_proxy::register_ejected_gauge(&registry, table.clone())?;
    let status = Status::new();

    let public = listen(config.http, workers.len(), &config)?;
    let admin_listener = bind(config.admin).await?;
    info!(http = %config.http, admin = %config.admin, "listening");

    let report = certs.reload();
    info!(dir = %config.certs_dir.display(), ?report, "certificates loaded");
    tokio::spawn(certs.clone().watch(config.certs_poll_interval));

    let discovery = dockhand_discovery::run(
        config.discovery.clone(),
        publisher.provider(dockhand_discovery::PROVIDER),
        status.clone(),
        discovery_metrics,
    );
    let discovery = tokio::spawn(discovery);
    let admin = Admin {
        table: table.clone(),
        status,
        registry,
    };
    let admin = tokio::spawn(admin::serve(admin_listener, admin));

    let proxy = Proxy::new(config.proxy.clone(), table.clone(), proxy_metrics)
        .with_certs(Arc::new(certs.clone()));
    // One set of upstream pools per worker (see `Proxy::with_own_pools`).
    let workers: Vec<(Handle, Proxy)> = workers
        .into_iter()
        .map(|worker| (worker, proxy.with_own_pools()))
        .collect();
    let stop = stop_on_signal()?;
    let https = tokio::spawn(serve_https(
        config.clone(),
        workers.clone(),
        certs,
        table,
        stop.clone(),
    ));
    let serving = workers
        .iter()
        .zip(public.split())
        .map(|((worker, proxy), part)| {
            let serve =
                dockhand_proxy::serve(part, proxy.clone(), stopped(&stop), config.shutdown_grace);
            worker.spawn(serve)
        });
    join(serving.collect()).await?;
    if let Ok(Err(e)) = https.await {
        error!(error = %e, "HTTPS listener failed");
    }
    discovery.abort();
    admin.abort();
    info!("dockhand stopped");
    Ok(())
}

/// Serves HTTPS on every worker once the certificate folder holds a certificate (nginx-proxy
/// listens on 443 only then too), so a proxy without certificates never needs the privileged
/// port.
async fn serve_https(
    config: Config,
    workers: Vec<(Handle, Proxy)>,
    certs: CertStore,
    table: TableReader,
    stop: watch::Receiver<bool>,
) -> Result<(), AppError> {
    let mut poll = tokio::time::interval(config.certs_poll_interval);
    while certs.is_empty() {
        tokio::select! {
            () = stopped(&stop) => return Ok(()),
            _ = poll.tick() => {}
        }
    }
    let listener = listen(config.https, workers.len(), &config)?;
    info!(https = %config.https, "listening for HTTPS");
    let server = tls::server_config(certs.clone(), table);
    let serving = workers
        .into_iter()
        .zip(listener.split())
        .map(|((worker, proxy), part)| {
            worker.spawn(dockhand_proxy::serve_tls(
                part,
                proxy,
                server.clone(),
                certs.metrics().clone(),
                stopped(&stop),
                config.shutdown_grace,
            ))
        });
    join(serving.collect()).await
}

/// Waits for every worker's accept loop of one listener; the first error is returned once all
/// have ended.
async fn join(serving: Vec<JoinHandle<std::io::Result<()>>>) -> Result<(), AppError> {
    let mut result = Ok(());
    for task in serving {
        let ended = match task.await {
            Ok(ended) => ended,
            Err(e) => Err(std::io::Error::other(e)),
        };
        if let (Ok(()), Err(e)) = (&result, ended) {
            result = Err(AppError::Serve(e));
        }
    }
    result
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })
}

/// A public port, with a socket for each of `workers`.
fn listen(
    addr: std::net::SocketAddr,
    workers: usize,
    config: &Config,
) -> Result<SharedListener, AppError> {
    SharedListener::bind(addr, workers, config.proxy.max_connections)
        .map_err(|source| AppError::Bind { addr, source })
}

/// A future that resolves once `stop` says so; one per accept loop.
fn stopped(stop: &watch::Receiver<bool>) -> impl Future<Output = ()> + use<> {
    let mut stop = stop.clone();
    async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    }
}

/// Flips to true on the first SIGTERM or SIGINT; a second one exits at once.
fn stop_on_signal() -> Result<watch::Receiver<bool>, AppError> {
    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signal)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: draining"),
            _ = int.recv() => info!("SIGINT: draining"),
        }
        let _ = tx.send(true);
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        warn!("second signal: exiting now");
        std::process::exit(130);
    });
    Ok(rx)
}
