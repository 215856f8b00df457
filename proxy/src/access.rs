//! What is recorded when a response ends: request metrics and the access log line.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, StatusCode, Uri};

use crate::metrics::VhostMetrics;
use crate::table::InFlight;

/// `tracing` target of access log lines.
pub const ACCESS_TARGET: &str = "dockhand::access";

/// The request fields of an access log line, captured without copying (refcounted bytes).
pub(crate) struct AccessLog {
    pub(crate) client: SocketAddr,
    pub(crate) host: Option<HeaderValue>,
    pub(crate) uri: Uri,
    pub(crate) upstream: Option<SocketAddr>,
}

/// Everything needed to account for one exchange once its response body is done.
pub(crate) struct Completion {
    pub(crate) metrics: Arc<VhostMetrics>,
    pub(crate) method: Method,
    pub(crate) status: StatusCode,
    pub(crate) start: Instant,
    /// Boxed: the body carrying this moves a dozen times per request, and with access logs off
    /// (the case that has to be fast) this is one null pointer instead of 190 bytes to copy.
    pub(crate) log: Option<Box<AccessLog>>,
    /// Held until the body ends so that `least_conn` sees the request as in flight.
    pub(crate) in_flight: Option<InFlight>,
}

impl Completion {
    pub(crate) fn finish(self, bytes: u64) {
        let elapsed = self.start.elapsed();
        self.metrics.request(&self.method, self.status, elapsed);
        drop(self.in_flight);
        let Some(log) = self.log else { return };
        tracing::info!(
            target: ACCESS_TARGET,
            client = %log.client.ip(),
            method = %self.method,
            host = log.host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("-"),
            uri = %log.uri,
            status = self.status.as_u16(),
            upstream = %Upstream(log.upstream),
            vhost = self.metrics.name(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            bytes,
        );
    }
}

/// `ip:port` of the backend, or `-` when the proxy answered itself.
struct Upstream(Option<SocketAddr>);

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("-"),
        }
    }
}
