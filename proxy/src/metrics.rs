//! Prometheus metrics of the data plane, with per-vhost handles resolved off the hot path.
//!
//! Label values are hashed once per vhost and cell (on first use) and the handles are cached
//! across table swaps, so recording a request is a few atomic operations.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

mod vhost;

pub(crate) use vhost::{RetryReason, VhostMetrics};

/// The `vhost` label of requests that matched no vhost (never the raw `Host`: unbounded).
pub const UNKNOWN_VHOST: &str = "_unknown";

/// Request duration buckets in seconds, up to the default response timeout.
const BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Handles of `dockhand_upstream_connections_opened_total`, one per protocol.
#[derive(Clone, Debug)]
pub(crate) struct Opened {
    pub(crate) http: IntCounter,
    pub(crate) https: IntCounter,
    pub(crate) h2c: IntCounter,
}

impl Opened {
    /// The counter of HTTP/1.1 connections, plain or over TLS.
    pub(crate) fn http1(&self, tls: bool) -> &IntCounter {
        if tls {
            &self.https
        } else {
            &self.http
        }
    }
}

/// Counts something in a gauge while it lives, however it ends (a connection open or parked).
pub(crate) struct Counted(IntGauge);

impl Counted {
    pub(crate) fn new(gauge: &IntGauge) -> Counted {
        gauge.inc();
        Counted(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The data plane's metric families (cheap to clone).
///
/// `dockhand_requests_total{vhost,class,method}`, `dockhand_request_duration_seconds{vhost}`,
/// `dockhand_upstream_errors_total{vhost,kind}`, `dockhand_backends{vhost}`,
/// `dockhand_retries_total{vhost,reason}` (`reason` is `connect` or `reset`),
/// `dockhand_backend_ejections_total{vhost}`, `dockhand_h2_flood_closed_total`,
/// `dockhand_upstream_connections_opened_total{proto}`, `dockhand_upstream_parked_connections`,
/// and per client listener (`http`,
/// `https`) `dockhand_open_connections{listener}`, `dockhand_requests_bytes_total{listener}` and
/// `dockhand_responses_bytes_total{listener}`. The gauge
/// `dockhand_backends_ejected{vhost}` reads the route table, so it is registered on its own, by
/// [`register_ejected_gauge`](crate::register_ejected_gauge).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    families: Families,
    unknown: Arc<VhostMetrics>,
    /// `dockhand_h2_flood_closed_total`.
    h2_flood_closed: IntCounter,
    /// `dockhand_upstream_connections_opened_total{proto}`.
    upstream_opened: IntCounterVec,
    /// `dockhand_upstream_parked_connections`.
    upstream_parked: IntGauge,
    /// `dockhand_open_connections{listener}`, `dockhand_requests_bytes_total{listener}`,
    /// `dockhand_responses_bytes_total{listener}`.
    listeners: [ListenerMetrics; 2],
    /// Handles of the vhosts of the newest table, reused by the next build.
    vhosts: Mutex<HashMap<String, Arc<VhostMetrics>>>,
}

#[derive(Clone)]
struct Families {
    requests: IntCounterVec,
    duration: HistogramVec,
    errors: IntCounterVec,
    backends: IntGaugeVec,
    retries: IntCounterVec,
    ejections: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates the families and registers them in `registry`.
    ///
    /// Fails when they are already registered there (call it once per registry).
    pub fn new(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let families = Families::new()?;
        let h2_flood_closed = IntCounter::new(
            "dockhand_h2_flood_closed_total",
            "HTTP/2 client connections closed for flooding the server with control frames.",
        )?;
        let upstream_opened = IntCounterVec::new(
            Opts::new(
                "dockhand_upstream_connections_opened_total",
                "Connections opened to backends, by protocol (http, https, h2c). Flat under \
                 steady load when idle connections are reused.",
            ),
            &["proto"],
        )?;
        let upstream_parked = IntGauge::new(
            "dockhand_upstream_parked_connections",
            "Idle pooled backend connections parked: kept open without hyper's connection \
             and buffers until a request takes them.",
        )?;
        let (open, parked, received, sent) = listener_families()?;
        families.register(registry)?;
        registry.register(Box::new(h2_flood_closed.clone()))?;
        registry.register(Box::new(upstream_opened.clone()))?;
        registry.register(Box::new(upstream_parked.clone()))?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(parked.clone()))?;
        registry.register(Box::new(received.clone()))?;
        registry.register(Box::new(sent.clone()))?;
        let listeners = ["http", "https"].map(|name| ListenerMetrics {
            open: open.with_label_values(&[name]),
            parked: parked.with_label_values(&[name]),
            received: received.with_label_values(&[name]),
            sent: sent.with_label_values(&[name]),
        });
        let unknown = Arc::new(VhostMetrics::new(&families, UNKNOWN_VHOST));
        Ok(Metrics {
            inner: Arc::new(Inner {
                families,
                unknown,
                h2_flood_closed,
                upstream_opened,
                upstream_parked,
                listeners,
                vhosts: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The counter of connections closed for a control-frame flood.
    pub(crate) fn h2_flood_closed(&self) -> IntCounter {
        self.inner.h2_flood_closed.clone()
    }

    /// The counters of backend connections opened, one per protocol.
    pub(crate) fn upstream_opened(&self) -> Opened {
        let proto = |name: &str| self.inner.upstream_opened.with_label_values(&[name]);
        Opened {
            http: proto("http"),
            https: proto("https"),
            h2c: proto("h2c"),
        }
    }

    /// The gauge of parked backend connections.
    pub(crate) fn upstream_parked(&self) -> IntGauge {
        self.inner.upstream_parked.clone()
    }

    /// The handles of the plain HTTP listener (`tls` false) or the HTTPS one.
    pub(crate) fn listener(&self, tls: bool) -> ListenerMetrics {
        self.inner.listeners[usize::from(tls)].clone()
    }

    /// Handles for requests that matched no vhost.
    pub(crate) fn unknown(&self) -> Arc<VhostMetrics> {
        self.inner.unknown.clone()
    }

    /// Publishes the vhosts of a new table with their reachable backend counts, and returns their
    /// handles in the same order. Every series of a vhost that disappeared is removed.
    pub(crate) fn publish(&self, vhosts: &[(&str, usize)]) -> Vec<Arc<VhostMetrics>> {
        let keep: HashSet<&str> = vhosts.iter().map(|&(name, _)| name).collect();
        let gone: Vec<String> = self
            .cache()
            .keys()
            .filter(|name| !keep.contains(name.as_str()))
            .cloned()
            .collect();
        let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
        self.update(vhosts, &gone)
    }

    /// Publishes the changed vhosts of a new table with their reachable backend counts and
    /// returns their handles in the same order; removes every series of the `removed` ones.
    /// Other vhosts keep their handles and series untouched.
    pub(crate) fn update(
        &self,
        changed: &[(&str, usize)],
        removed: &[&str],
    ) -> Vec<Arc<VhostMetrics>> {
        let families = &self.inner.families;
        let mut cache = self.cache();
        for name in removed {
            if let Some(gone) = cache.remove(*name) {
                // The label may be absent if it was never set; nothing to undo then.
                let _ = families.backends.remove_label_values(&[name]);
                gone.remove_series();
            }
        }
        changed
            .iter()
            .map(|&(name, reachable)| {
                let handle = match cache.get(name) {
                    Some(handle) => handle.clone(),
                    None => {
                        let handle = Arc::new(VhostMetrics::new(families, name));
                        cache.insert(name.to_owned(), handle.clone());
                        handle
                    }
                };
                let count = i64::try_from(reachable).unwrap_or(i64::MAX);
                families.backends.with_label_values(&[name]).set(count);
                handle
            })
            .collect()
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<String, Arc<VhostMetrics>>> {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        self.inner
            .vhosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One client listener's handles: its open connections and the HTTP bytes its clients sent
/// and were sent (after TLS decryption, headers included).
#[derive(Clone)]
pub(crate) struct ListenerMetrics {
    pub(crate) open: IntGauge,
    /// Of the open ones, the idle HTTP/1 connections parked without hyper's buffers.
    pub(crate) parked: IntGauge,
    pub(crate) received: IntCounter,
    pub(crate) sent: IntCounter,
}

/// `dockhand_open_connections{listener}`, `dockhand_parked_connections{listener}`,
/// `dockhand_requests_bytes_total{listener}` and `dockhand_responses_bytes_total{listener}`.
type ListenerFamilies = (IntGaugeVec, IntGaugeVec, IntCounterVec, IntCounterVec);

/// The [`ListenerFamilies`], not registered anywhere yet.
fn listener_families() -> Result<ListenerFamilies, prometheus::Error> {
    let open = IntGaugeVec::new(
        Opts::new(
            "dockhand_open_connections",
            "Client connections open now, by listener (http, https).",
        ),
        &["listener"],
    )?;
    let parked = IntGaugeVec::new(
        Opts::new(
            "dockhand_parked_connections",
            "Of the open client connections, the idle HTTP/1 keep-alive ones parked without \
             buffers until their next request, by listener.",
        ),
        &["listener"],
    )?;
    let received = IntCounterVec::new(
        Opts::new(
            "dockhand_requests_bytes_total",
            "HTTP bytes received from clients (headers included, TLS excluded), by listener; \
             counted each time a connection goes idle and when it closes (an upgraded \
             connection's tunnel: when it ends).",
        ),
        &["listener"],
    )?;
    let sent = IntCounterVec::new(
        Opts::new(
            "dockhand_responses_bytes_total",
            "HTTP bytes sent to clients (headers included, TLS excluded), by listener; \
             counted each time a connection goes idle and when it closes (an upgraded \
             connection's tunnel: when it ends).",
        ),
        &["listener"],
    )?;
    Ok((open, parked, received, sent))
}

impl Families {
    /// The per-vhost families, not registered anywhere yet.
    fn new() -> Result<Families, prometheus::Error> {
        Ok(Families {
            requests: IntCounterVec::new(
                Opts::new(
                    "dockhand_requests_total",
                    "Requests answered, by vhost, status class and method.",
                ),
                &["vhost", "class", "method"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "dockhand_request_duration_seconds",
                    "Time from request head to the end of the response body, by vhost.",
                )
                .buckets(BUCKETS.to_vec()),
                &["vhost"],
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "dockhand_upstream_errors_total",
                    "Failures to get a response from a backend, by vhost and kind.",
                ),
                &["vhost", "kind"],
            )?,
            backends: IntGaugeVec::new(
                Opts::new(
                    "dockhand_backends",
                    "Backends with an address, by vhost, in the current route table.",
                ),
                &["vhost"],
            )?,
            retries: IntCounterVec::new(
                Opts::new(
                    "dockhand_retries_total",
                    "Requests sent again to another backend, by vhost and reason \
                 (connect failure, or reset before any response of an idempotent request).",
                ),
                &["vhost", "reason"],
            )?,
            ejections: IntCounterVec::new(
                Opts::new(
                    "dockhand_backend_ejections_total",
                    "Backends set aside by passive health after failing to connect, by vhost.",
                ),
                &["vhost"],
            )?,
        })
    }

    fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.requests.clone()))?;
        registry.register(Box::new(self.duration.clone()))?;
        registry.register(Box::new(self.errors.clone()))?;
        registry.register(Box::new(self.backends.clone()))?;
        registry.register(Box::new(self.retries.clone()))?;
        registry.register(Box::new(self.ejections.clone()))
    }
}

#[cfg(test)]
mod tests;
