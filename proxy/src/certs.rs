//! What the request path needs to know about certificates, whoever loads them.
//!
//! The TLS module's certificate store implements this; the HTTPS policies (redirects, HSTS, the
//! missing-certificate fallback) only ask the question, so they can be tested without files.

use crate::spec::HttpsPolicy;

/// Answers "can this vhost be served over HTTPS right now?".
pub trait CertLookup: Send + Sync + 'static {
    /// True when a certificate would be presented for `host` (lower-case, no port) under
    /// `policy`: `CERT_NAME`, else the exact host, else its parent domain (one level), else
    /// `default.crt` when `policy.trust_default_cert`.
    fn has_usable_cert(&self, host: &str, policy: &HttpsPolicy) -> bool;
}

/// No certificates at all: every vhost is plain HTTP (the state before any is loaded).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCerts;

impl CertLookup for NoCerts {
    fn has_usable_cert(&self, _host: &str, _policy: &HttpsPolicy) -> bool {
        false
    }
}
