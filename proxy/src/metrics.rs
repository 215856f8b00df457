//! Prometheus metrics of the data plane, with per-vhost handles resolved off the hot path.
//!
//! Label values are hashed once per vhost and cell (on first use) and the handles are cached
//! across table swaps, so recording a request is a few atomic operations.

mod ejected;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use http::{Method, StatusCode};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::error::ErrorKind;
use crate::table::TableReader;
use ejected::Ejected;

/// The `vhost` label of requests that matched no vhost (never the raw `Host`: unbounded).
pub const UNKNOWN_VHOST: &str = "_unknown";

/// `method` label values; anything else is `other`.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];
/// `class` label values.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Request duration buckets in seconds, up to the default response timeout.
const BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The data plane's metric families (cheap to clone).
///
/// `dockhand_requests_total{vhost,class,method}`, `dockhand_request_duration_seconds{vhost}`,
/// `dockhand_upstream_errors_total{vhost,kind}`, `dockhand_backends{vhost}`,
/// `dockhand_retries_total{vhost,reason}` (`reason` is `connect` or `reset`),
/// `dockhand_backend_ejections_total{vhost}`, `dockhand_backends_ejected{vhost}` (computed
/// from the current table when scraped) and `dockhand_h2_flood_closed_total`.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    families: Families,
    unknown: Arc<VhostMetrics>,
    ejected: Ejected,
    /// `dockhand_h2_flood_closed_total`.
    h2_flood_closed: IntCounter,
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

/// Why a request was sent to another backend: the `reason` label of `dockhand_retries_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryReason {
    /// The previous backend could not be connected to; any method.
    Connect,
    /// The previous connection broke before a response head; idempotent methods only.
    Reset,
}

impl RetryReason {
    const ALL: [RetryReason; 2] = [RetryReason::Connect, RetryReason::Reset];

    const fn label(self) -> &'static str {
        match self {
            RetryReason::Connect => "connect",
            RetryReason::Reset => "reset",
        }
    }
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
        let families = Families {
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
        };
        let ejected = Ejected::new()?;
        let h2_flood_closed = IntCounter::new(
            "dockhand_h2_flood_closed_total",
            "HTTP/2 client connections closed for flooding the server with control frames.",
        )?;
        registry.register(Box::new(families.requests.clone()))?;
        registry.register(Box::new(families.duration.clone()))?;
        registry.register(Box::new(families.errors.clone()))?;
        registry.register(Box::new(families.backends.clone()))?;
        registry.register(Box::new(families.retries.clone()))?;
        registry.register(Box::new(families.ejections.clone()))?;
        registry.register(Box::new(ejected.clone()))?;
        registry.register(Box::new(h2_flood_closed.clone()))?;
        let unknown = Arc::new(VhostMetrics::new(&families, UNKNOWN_VHOST));
        Ok(Metrics {
            inner: Arc::new(Inner {
                families,
                unknown,
                ejected,
                h2_flood_closed,
                vhosts: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Makes `dockhand_backends_ejected` report from `table` (the proxy's, set by
    /// [`crate::Proxy::new`]; the last one set wins).
    pub(crate) fn watch(&self, table: TableReader) {
        self.inner.ejected.watch(table);
    }

    /// The counter of connections closed for a control-frame flood.
    pub(crate) fn h2_flood_closed(&self) -> IntCounter {
        self.inner.h2_flood_closed.clone()
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

/// Pre-resolved handles of one vhost.
pub(crate) struct VhostMetrics {
    name: String,
    families: Families,
    duration: OnceLock<Histogram>,
    requests: [[OnceLock<IntCounter>; METHODS.len()]; CLASSES.len()],
    errors: [OnceLock<IntCounter>; ErrorKind::ALL.len()],
    retries: [OnceLock<IntCounter>; RetryReason::ALL.len()],
    ejections: OnceLock<IntCounter>,
}

impl VhostMetrics {
    fn new(families: &Families, name: &str) -> VhostMetrics {
        VhostMetrics {
            name: name.to_owned(),
            families: families.clone(),
            duration: OnceLock::new(),
            requests: Default::default(),
            errors: Default::default(),
            retries: Default::default(),
            ejections: OnceLock::new(),
        }
    }

    /// The `vhost` label value.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Counts one answered request and observes its duration.
    pub(crate) fn request(&self, method: &Method, status: StatusCode, elapsed: Duration) {
        let m = method_index(method);
        let c = class_index(status);
        self.requests[c][m]
            .get_or_init(|| {
                // Three labels for a three-label family: cannot panic.
                self.families
                    .requests
                    .with_label_values(&[&self.name, CLASSES[c], METHODS[m]])
            })
            .inc();
        self.duration
            // One label for a one-label family: cannot panic.
            .get_or_init(|| self.families.duration.with_label_values(&[&self.name]))
            .observe(elapsed.as_secs_f64());
    }

    /// Removes the series this vhost created, once it is gone from the table, so that vhost
    /// churn does not grow `/metrics` forever. Requests still finishing on an old table then
    /// count into detached handles, which is harmless.
    fn remove_series(&self) {
        let name = self.name.as_str();
        if self.duration.get().is_some() {
            let _ = self.families.duration.remove_label_values(&[name]);
        }
        for (c, row) in self.requests.iter().enumerate() {
            for (m, cell) in row.iter().enumerate() {
                if cell.get().is_some() {
                    let _ = self
                        .families
                        .requests
                        .remove_label_values(&[name, CLASSES[c], METHODS[m]]);
                }
            }
        }
        for (reason, cell) in RetryReason::ALL.iter().zip(&self.retries) {
            if cell.get().is_some() {
                let _ = self
                    .families
                    .retries
                    .remove_label_values(&[name, reason.label()]);
            }
        }
        if self.ejections.get().is_some() {
            let _ = self.families.ejections.remove_label_values(&[name]);
        }
        for (kind, cell) in ErrorKind::ALL.iter().zip(&self.errors) {
            if cell.get().is_some() {
                let _ = self
                    .families
                    .errors
                    .remove_label_values(&[name, kind.label()]);
            }
        }
    }

    /// Counts one upstream failure.
    pub(crate) fn error(&self, kind: ErrorKind) {
        self.errors[kind.index()]
            .get_or_init(|| {
                // Two labels for a two-label family: cannot panic.
                self.families
                    .errors
                    .with_label_values(&[&self.name, kind.label()])
            })
            .inc();
    }
}

impl VhostMetrics {
    /// Counts one request sent again to another backend.
    pub(crate) fn retry(&self, reason: RetryReason) {
        self.retries[reason as usize]
            .get_or_init(|| {
                // Two labels for a two-label family: cannot panic.
                self.families
                    .retries
                    .with_label_values(&[&self.name, reason.label()])
            })
            .inc();
    }

    /// Counts one backend ejected by passive health while serving this vhost.
    pub(crate) fn ejection(&self) {
        self.ejections
            // One label for a one-label family: cannot panic.
            .get_or_init(|| self.families.ejections.with_label_values(&[&self.name]))
            .inc();
    }
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

fn class_index(status: StatusCode) -> usize {
    usize::from(status.as_u16() / 100).clamp(1, 5) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(registry: &Registry) -> String {
        let mut buf = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        prometheus::Encoder::encode(&encoder, &registry.gather(), &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn requests_are_labelled_by_class_and_method() {
        let registry = Registry::new();
        let metrics = Metrics::new(&registry).unwrap();
        let vhost = &metrics.publish(&[("a.tld", 2)])[0];
        vhost.request(&Method::GET, StatusCode::OK, Duration::from_millis(3));
        vhost.request(
            &Method::from_bytes(b"PROPFIND").unwrap(),
            StatusCode::BAD_GATEWAY,
            Duration::ZERO,
        );
        metrics.unknown().request(
            &Method::POST,
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::ZERO,
        );
        let out = text(&registry);
        assert!(
            out.contains(r#"dockhand_requests_total{class="2xx",method="GET",vhost="a.tld"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"dockhand_requests_total{class="5xx",method="other",vhost="a.tld"} 1"#)
        );
        assert!(out
            .contains(r#"dockhand_requests_total{class="5xx",method="POST",vhost="_unknown"} 1"#));
        assert!(out.contains(r#"dockhand_request_duration_seconds_count{vhost="a.tld"} 2"#));
        assert!(out.contains(r#"dockhand_backends{vhost="a.tld"} 2"#));
    }

    #[test]
    fn errors_are_counted_by_kind() {
        let registry = Registry::new();
        let metrics = Metrics::new(&registry).unwrap();
        let vhost = &metrics.publish(&[("a.tld", 1)])[0];
        vhost.error(ErrorKind::ConnectRefused);
        vhost.error(ErrorKind::ConnectRefused);
        let out = text(&registry);
        assert!(
            out.contains(
                r#"dockhand_upstream_errors_total{kind="connect_refused",vhost="a.tld"} 2"#
            ),
            "{out}"
        );
    }

    #[test]
    fn series_of_vanished_vhosts_are_removed_and_handles_reused() {
        let registry = Registry::new();
        let metrics = Metrics::new(&registry).unwrap();
        let first = metrics.publish(&[("a.tld", 1), ("b.tld", 0)]);
        first[1].request(&Method::GET, StatusCode::OK, Duration::ZERO);
        first[1].error(ErrorKind::UpstreamReset);
        let second = metrics.publish(&[("a.tld", 3)]);
        assert!(Arc::ptr_eq(&first[0], &second[0]));
        let out = text(&registry);
        assert!(out.contains(r#"dockhand_backends{vhost="a.tld"} 3"#));
        assert!(!out.contains(r#"vhost="b.tld""#), "{out}");
    }

    #[test]
    fn retries_and_ejections_are_counted_and_removed_with_the_vhost() {
        let registry = Registry::new();
        let metrics = Metrics::new(&registry).unwrap();
        let vhost = &metrics.publish(&[("a.tld", 2)])[0];
        vhost.retry(RetryReason::Reset);
        vhost.retry(RetryReason::Connect);
        vhost.retry(RetryReason::Connect);
        vhost.ejection();
        let out = text(&registry);
        assert!(
            out.contains(r#"dockhand_retries_total{reason="connect",vhost="a.tld"} 2"#),
            "{out}"
        );
        assert!(out.contains(r#"dockhand_retries_total{reason="reset",vhost="a.tld"} 1"#));
        assert!(out.contains(r#"dockhand_backend_ejections_total{vhost="a.tld"} 1"#));
        metrics.publish(&[]);
        let out = text(&registry);
        assert!(!out.contains(r#"vhost="a.tld""#), "{out}");
    }

    #[test]
    fn registering_twice_fails() {
        let registry = Registry::new();
        assert!(Metrics::new(&registry).is_ok());
        assert!(Metrics::new(&registry).is_err());
    }

    #[test]
    fn status_classes() {
        assert_eq!(class_index(StatusCode::SWITCHING_PROTOCOLS), 0);
        assert_eq!(class_index(StatusCode::NOT_FOUND), 3);
        assert_eq!(class_index(StatusCode::from_u16(999).unwrap()), 4);
    }
}
