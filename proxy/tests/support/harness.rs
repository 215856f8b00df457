//! The real listener on 127.0.0.1:0 with a table the test swaps.

use std::net::SocketAddr;
use std::time::Duration;

use dockhand_proxy::spec::{ProviderId, Publication, Publish};
use dockhand_proxy::{
    register_ejected_gauge, serve, Metrics, ProviderHandle, Proxy, ProxyConfig, Publisher,
    SharedListener, TableReader, TableSpec,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A proxy being configured.
pub fn proxy() -> ProxyBuilder {
    ProxyBuilder {
        config: ProxyConfig::default(),
        grace: Duration::from_secs(10),
        workers: None,
    }
}

/// A proxy whose shutdown waits at most `grace` for open requests.
pub fn proxy_with_grace(grace: Duration) -> ProxyBuilder {
    ProxyBuilder {
        config: ProxyConfig::default(),
        grace,
        workers: None,
    }
}

/// Settings of a test proxy.
pub struct ProxyBuilder {
    config: ProxyConfig,
    grace: Duration,
    /// Worker runtimes sharing the port, as dockhand runs them; `None` serves on the test's own.
    workers: Option<usize>,
}

impl ProxyBuilder {
    /// Changes the proxy configuration.
    pub fn config(mut self, change: impl FnOnce(&mut ProxyConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Serves the port from `count` threads, each with a current-thread runtime of its own and
    /// a [`SharedListener`] socket, as dockhand's workers do.
    pub fn workers(mut self, count: usize) -> Self {
        self.workers = Some(count);
        self
    }

    /// Serves `spec` on 127.0.0.1:0; its `DEFAULT_HOST` stays for later swaps.
    pub async fn start(self, spec: TableSpec) -> TestProxy {
        let registry = prometheus::Registry::new();
        let metrics = Metrics::new(&registry).unwrap();
        let publisher = Publisher::new(spec.default_host.as_deref(), metrics.clone(), &registry);
        let publisher = publisher.unwrap();
        let table = publisher.reader();
        register_ejected_gauge(&registry, table.clone()).unwrap();
        let proxy = Proxy::new(self.config, table.clone(), metrics);
        let (stop, stopped) = watch::channel(false);
        let (addr, task) = match self.workers {
            None => {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let task = tokio::spawn(serve(listener, proxy, until(stopped), self.grace));
                (addr, task)
            }
            Some(count) => {
                let addr = "127.0.0.1:0".parse().unwrap();
                let max = proxy.config().max_connections;
                let listener = SharedListener::bind(addr, count, max).unwrap();
                let addr = listener.local_addr().unwrap();
                let threads: Vec<_> = listener
                    .split()
                    .into_iter()
                    .map(|part| {
                        let (proxy, stopped) = (proxy.with_own_pools(), stopped.clone());
                        let serve = serve(part, proxy, until(stopped), self.grace);
                        std::thread::spawn(move || {
                            let runtime = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .unwrap();
                            runtime.block_on(serve)
                        })
                    })
                    .collect();
                let joined = tokio::task::spawn_blocking(move || {
                    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
                    results.into_iter().collect::<std::io::Result<()>>()
                });
                (addr, tokio::spawn(async move { joined.await.unwrap() }))
            }
        };
        let test = TestProxy {
            addr,
            table,
            provider: publisher.provider(ProviderId::new("test")),
            prometheus: registry,
            stop: Some(stop),
            task: Some(task),
        };
        test.with(spec)
    }
}

/// A running proxy.
pub struct TestProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    table: TableReader,
    provider: ProviderHandle,
    prometheus: prometheus::Registry,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestProxy {
    fn with(mut self, spec: TableSpec) -> Self {
        self.swap(&spec);
        self
    }

    /// Publishes the vhosts of `spec` as a provider's whole description, as discovery does
    /// after a sync (`DEFAULT_HOST` stays the one the proxy started with).
    pub fn swap(&mut self, spec: &TableSpec) {
        let vhosts = spec.vhosts.clone();
        self.provider.publish(Publication::Full(vhosts));
    }

    /// The current table, as `/api/routes` would show it.
    pub fn routes(&self) -> serde_json::Value {
        serde_json::to_value(&**self.table.load()).unwrap()
    }

    /// The Prometheus text exposition.
    pub fn metrics_text(&self) -> String {
        let mut buf = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &self.prometheus.gather(),
            &mut buf,
        )
        .unwrap();
        String::from_utf8(buf).unwrap()
    }

    /// The value of the sample `name` (family and labels, as exposed), 0 when absent.
    pub fn metric(&self, name: &str) -> u64 {
        self.metrics_text()
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Signals shutdown without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }

    /// Whether `serve` is still running.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Waits for `serve` to return.
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        let task = self.task.take().expect("already stopped");
        task.await.unwrap()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn until(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
