//! Prometheus metrics of TLS termination: handshakes and the loaded certificates.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// The TLS metric families (cheap to clone).
///
/// `dockhand_tls_handshakes_total{result="ok"|"failed"|"no_cert"}`,
/// `dockhand_tls_certificate_not_after_seconds{cert}` (the leaf's notAfter as unix seconds, one
/// series per loaded certificate name) and `dockhand_tls_certificates` (names loaded).
#[derive(Clone)]
pub struct TlsMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    ok: IntCounter,
    failed: IntCounter,
    no_cert: IntCounter,
    not_after: IntGaugeVec,
    certificates: IntGauge,
    /// `cert` label values currently published, so removed certificates lose their series.
    published: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for TlsMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMetrics").finish_non_exhaustive()
    }
}

impl TlsMetrics {
    /// Creates the families and registers them in `registry`.
    ///
    /// Fails when they are already registered there (call it once per registry).
    pub fn new(registry: &Registry) -> Result<TlsMetrics, prometheus::Error> {
        let handshakes = IntCounterVec::new(
            Opts::new(
                "dockhand_tls_handshakes_total",
                "TLS handshakes on the HTTPS listeners, by result (ok, failed, no_cert).",
            ),
            &["result"],
        )?;
        let not_after = IntGaugeVec::new(
            Opts::new(
                "dockhand_tls_certificate_not_after_seconds",
                "Expiry (notAfter, unix seconds) of the leaf certificate of each loaded pair.",
            ),
            &["cert"],
        )?;
        let certificates = IntGauge::new(
            "dockhand_tls_certificates",
            "Certificate pairs loaded from the certificate folder.",
        )?;
        registry.register(Box::new(handshakes.clone()))?;
        registry.register(Box::new(not_after.clone()))?;
        registry.register(Box::new(certificates.clone()))?;
        Ok(TlsMetrics {
            inner: Arc::new(Inner {
                ok: handshakes.with_label_values(&["ok"]),
                failed: handshakes.with_label_values(&["failed"]),
                no_cert: handshakes.with_label_values(&["no_cert"]),
                not_after,
                certificates,
                published: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// Counts a completed handshake.
    pub(crate) fn handshake_ok(&self) {
        self.inner.ok.inc();
    }

    /// Counts a handshake that failed or timed out.
    pub(crate) fn handshake_failed(&self) {
        self.inner.failed.inc();
    }

    /// Counts a handshake refused because no certificate fits the client's server name.
    pub(crate) fn handshake_no_cert(&self) {
        self.inner.no_cert.inc();
    }

    /// Publishes the loaded certificates as `(name, notAfter)` and removes the series of names
    /// no longer loaded. A certificate whose expiry could not be read has no series.
    pub(crate) fn publish(&self, certs: &[(&str, Option<i64>)]) {
        // A panic elsewhere while holding the lock leaves a set that is still consistent.
        let mut published = self
            .inner
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = HashSet::with_capacity(certs.len());
        for &(name, not_after) in certs {
            if let Some(secs) = not_after {
                self.inner.not_after.with_label_values(&[name]).set(secs);
                next.insert(name.to_owned());
            }
        }
        for gone in published.difference(&next) {
            // The series exists (we published it), so removal cannot fail in a way that matters.
            let _ = self.inner.not_after.remove_label_values(&[gone]);
        }
        *published = next;
        self.inner
            .certificates
            .set(i64::try_from(certs.len()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gather(registry: &Registry) -> String {
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn removed_certificates_lose_their_series() {
        let registry = Registry::new();
        let metrics = TlsMetrics::new(&registry).unwrap();
        metrics.publish(&[("a.example", Some(100)), ("b.example", Some(200))]);
        let text = gather(&registry);
        assert!(text.contains("dockhand_tls_certificate_not_after_seconds{cert=\"a.example\"} 100"));
        assert!(text.contains("dockhand_tls_certificates 2"));
        metrics.publish(&[("b.example", Some(300))]);
        let text = gather(&registry);
        assert!(!text.contains("cert=\"a.example\""), "{text}");
        assert!(text.contains("dockhand_tls_certificate_not_after_seconds{cert=\"b.example\"} 300"));
        assert!(text.contains("dockhand_tls_certificates 1"));
    }

    #[test]
    fn handshakes_are_counted_by_result() {
        let registry = Registry::new();
        let metrics = TlsMetrics::new(&registry).unwrap();
        metrics.handshake_ok();
        metrics.handshake_ok();
        metrics.handshake_no_cert();
        let text = gather(&registry);
        assert!(text.contains("dockhand_tls_handshakes_total{result=\"ok\"} 2"));
        assert!(text.contains("dockhand_tls_handshakes_total{result=\"no_cert\"} 1"));
        assert!(text.contains("dockhand_tls_handshakes_total{result=\"failed\"} 0"));
    }
}
