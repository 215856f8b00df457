//! Wiring, built then run: metrics, the table publisher, discovery (the containers and Swarm
//! providers publishing to it), certificates, the admin and public listeners (readers of its
//! table). [`App::build`] binds the ports; [`App::run`] serves until a shutdown future
//! completes ([`signals`] in the binary). This runs on the control-plane runtime; the public
//! listeners are served by every worker runtime (see [`crate::runtime`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use dockhand_discovery::{DiscoveryMetrics, Status, SwarmMode};
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

/// dockhand built: its listeners bound, its parts made, nothing started yet. Building binds
/// every port it is configured with (port 0 picks a free one; see [`App::http_addr`]), so that
/// a test or a supervisor learns the addresses before anything is served.
pub struct App {
    config: Config,
    workers: Vec<Handle>,
    public: SharedListener,
    http: SocketAddr,
    admin: TcpListener,
    admin_addr: SocketAddr,
    registry: Registry,
    proxy_metrics: Metrics,
    discovery_metrics: DiscoveryMetrics,
    certs: CertStore,
    publisher: Publisher,
}

impl App {
    /// Registers the metrics, makes the table publisher, binds the public HTTP port (one socket
    /// per runtime of `workers`) and the admin listener. The HTTPS port is bound when the app
    /// runs (see `serve_https`).
    pub async fn build(config: Config, workers: Vec<Handle>) -> Result<App, AppError> {
        let registry = Registry::new();
        let proxy_metrics = Metrics::new(&registry)?;
        let discovery_metrics = DiscoveryMetrics::new(&registry)?;
        let certs = CertStore::new(config.certs_dir.clone(), TlsMetrics::new(&registry)?);
        let default_host = config.default_host.as_deref();
        let publisher = Publisher::new(default_host, proxy_metrics.clone(), &registry)?;
        dockhand_proxy::register_ejected_gauge(&registry, publisher.reader())?;
        crate::process::register(&registry)?;
        let public = listen(config.http, workers.len(), &config)?;
        let http = local_addr(config.http, public.local_addr())?;
        let admin = bind(config.admin).await?;
        let admin_addr = local_addr(config.admin, admin.local_addr())?;
        Ok(App {
            config,
            workers,
            public,
            http,
            admin,
            admin_addr,
            registry,
            proxy_metrics,
            discovery_metrics,
            certs,
            publisher,
        })
    }

    /// The address the public HTTP listener is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The address the admin listener is bound to.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Serves until `shutdown` completes, then stops accepting and drains within the grace
    /// period. The public listeners are served on each runtime the app was built with.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let version = env!("CARGO_PKG_VERSION");
        info!(version, http = %self.http, admin = %self.admin_addr, "dockhand starting");
        let config = self.config;
        let report = self.certs.reload();
        info!(dir = %config.certs_dir.display(), ?report, "certificates loaded");
        tokio::spawn(self.certs.clone().watch(config.certs_poll_interval));
        let table = self.publisher.reader();
        let status = Status::with_swarm(config.discovery.swarm);
        let providers = spawn_providers(
            &config,
            &self.publisher,
            &status,
            self.discovery_metrics.clone(),
        );
        let admin = Admin {
            table: table.clone(),
            status,
            registry: self.registry,
            certs: self.certs.clone(),
            traffic: admin::Traffic::default(),
            started: std::time::Instant::now(),
        };
        let admin = tokio::spawn(admin::serve(self.admin, admin));
        let proxy = Proxy::new(config.proxy.clone(), table.clone(), self.proxy_metrics)
            .with_certs(Arc::new(self.certs.clone()));
        // The custom 5xx page is checked as often as the certificate folder.
        tokio::spawn(proxy.error_page().watch(config.certs_poll_interval));
        // One set of upstream pools per worker (see `Proxy::with_own_pools`).
        let workers: Vec<(Handle, Proxy)> = (self.workers.into_iter())
            .map(|worker| (worker, proxy.with_own_pools()))
            .collect();
        let stop = stop_when(shutdown);
        let https = serve_https(
            config.clone(),
            workers.clone(),
            self.certs,
            table,
            stop.clone(),
        );
        let https = tokio::spawn(https);
        join(serve_http(
            &workers,
            self.public,
            &stop,
            config.shutdown_grace,
        ))
        .await?;
        if let Ok(Err(e)) = https.await {
            error!(error = %e, "HTTPS listener failed");
        }
        providers.iter().for_each(JoinHandle::abort);
        admin.abort();
        info!("dockhand stopped");
        Ok(())
    }
}

/// Starts the providers publishing to `publisher`: the containers provider, and the Swarm
/// provider unless `DOCKHAND_SWARM=false` (idle while the engine is not a Swarm manager).
fn spawn_providers(
    config: &Config,
    publisher: &Publisher,
    status: &Arc<Status>,
    metrics: DiscoveryMetrics,
) -> Vec<JoinHandle<()>> {
    let containers = dockhand_discovery::run(
        config.discovery.clone(),
        publisher.provider(dockhand_discovery::PROVIDER),
        status.clone(),
        metrics.clone(),
    );
    let mut providers = vec![tokio::spawn(containers)];
    if config.discovery.swarm != SwarmMode::Off {
        providers.push(tokio::spawn(dockhand_discovery::swarm::run(
            config.discovery.clone(),
            publisher.provider(dockhand_discovery::swarm::PROVIDER),
            status.clone(),
            metrics,
        )));
    }
    providers
}

/// Serves the public HTTP port on every worker, each from its own socket of `public`.
fn serve_http(
    workers: &[(Handle, Proxy)],
    public: SharedListener,
    stop: &watch::Receiver<bool>,
    grace: std::time::Duration,
) -> Vec<JoinHandle<std::io::Result<()>>> {
    (workers.iter().zip(public.split()))
        .map(|((worker, proxy), part)| {
            worker.spawn(dockhand_proxy::serve(
                part,
                proxy.clone(),
                stopped(stop),
                grace,
            ))
        })
        .collect()
}

/// The address a listener got, or the bind error for `addr`.
fn local_addr(addr: SocketAddr, got: std::io::Result<SocketAddr>) -> Result<SocketAddr, AppError> {
    got.map_err(|source| AppError::Bind { addr, source })
}

/// Serves HTTPS on every worker from the start, as nginx-proxy's default server listens on 443
/// even without certificates: a client naming a host with no usable certificate is refused with
/// an `unrecognized_name` alert, not a refused connection. Only when the port cannot be bound
/// while the folder holds no certificate (a proxy run unprivileged, without HTTPS, on port 443)
/// is that a warning, and binding is tried again once a certificate appears.
async fn serve_https(
    config: Config,
    workers: Vec<(Handle, Proxy)>,
    certs: CertStore,
    table: TableReader,
    stop: watch::Receiver<bool>,
) -> Result<(), AppError> {
    let listener = match listen(config.https, workers.len(), &config) {
        Ok(listener) => listener,
        Err(e) if certs.is_empty() => {
            warn!(error = %e, "HTTPS not served until a certificate exists");
            let mut poll = tokio::time::interval(config.certs_poll_interval);
            while certs.is_empty() {
                tokio::select! {
                    () = stopped(&stop) => return Ok(()),
                    _ = poll.tick() => {}
                }
            }
            listen(config.https, workers.len(), &config)?
        }
        Err(e) => return Err(e),
    };
    info!(https = %config.https, "listening for HTTPS");
    let server = tls::server_config(certs.clone(), table, config.tls);
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

/// A stop flag that flips to true once `shutdown` completes; every accept loop waits on it.
fn stop_when(shutdown: impl Future<Output = ()> + Send + 'static) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    rx
}

/// Completes on the first SIGTERM or SIGINT (then dockhand drains); a second one exits at once.
pub fn signals() -> Result<impl Future<Output = ()> + Send + 'static, AppError> {
    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signal)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: draining"),
            _ = int.recv() => info!("SIGINT: draining"),
        }
        let _ = tx.send(());
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        warn!("second signal: exiting now");
        std::process::exit(130);
    });
    Ok(async move {
        let _ = rx.await;
    })
}
