//! The real listener on 127.0.0.1:0 with a table the test swaps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dockhand_proxy::{
    serve, BackendRegistry, Metrics, Proxy, ProxyConfig, RouteTable, SharedTable, TableSpec,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A proxy being configured.
pub fn proxy() -> ProxyBuilder {
    ProxyBuilder {
        config: ProxyConfig::default(),
        grace: Duration::from_secs(10),
    }
}

/// A proxy whose shutdown waits at most `grace` for open requests.
pub fn proxy_with_grace(grace: Duration) -> ProxyBuilder {
    ProxyBuilder {
        config: ProxyConfig::default(),
        grace,
    }
}

/// Settings of a test proxy.
pub struct ProxyBuilder {
    config: ProxyConfig,
    grace: Duration,
}

impl ProxyBuilder {
    /// Changes the proxy configuration.
    pub fn config(mut self, change: impl FnOnce(&mut ProxyConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Serves `spec` on 127.0.0.1:0.
    pub async fn start(self, spec: TableSpec) -> TestProxy {
        let registry = prometheus::Registry::new();
        let metrics = Metrics::new(&registry).unwrap();
        let table: SharedTable = Arc::new(ArcSwap::from_pointee(RouteTable::empty()));
        let proxy = Proxy::new(self.config, table.clone(), metrics.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve(listener, proxy, shutdown, self.grace));
        let test = TestProxy {
            addr,
            table,
            metrics,
            prometheus: registry,
            backends: BackendRegistry::new(),
            generation: 0,
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
    table: SharedTable,
    metrics: Metrics,
    prometheus: prometheus::Registry,
    backends: BackendRegistry,
    generation: u64,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestProxy {
    fn with(mut self, spec: TableSpec) -> Self {
        self.swap(&spec);
        self
    }

    /// Builds `spec` and makes it the current table, as discovery does.
    pub fn swap(&mut self, spec: &TableSpec) {
        self.generation += 1;
        let table = RouteTable::build(spec, self.generation, &self.metrics, &self.backends);
        self.table.store(Arc::new(table));
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

    /// Signals shutdown without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
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
