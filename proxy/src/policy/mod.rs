//! Per-request HTTPS policies: the `HTTPS_METHOD` matrix, the HTTP → HTTPS redirect, HSTS, the
//! ACME challenge location, basic auth and `NETWORK_ACCESS`.
//!
//! The decisions are pure functions of a vhost's [`HttpsPolicy`], whether it has a usable
//! certificate and a few facts about the request, so the whole matrix is tested without TLS. The
//! service applies them: [`gate`] before location routing, [`network`] and [`auth`] after it,
//! [`hsts_applies`] on every response.

pub mod acme;
pub mod auth;
pub mod htpasswd;
pub mod network;

use std::fmt::Write;

use http::{Method, StatusCode};

use crate::spec::{AcmeChallenge, HttpsMethod, HttpsPolicy};

/// What the vhost's HTTPS policy does with a request, before its location is looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Route and proxy it (then `NETWORK_ACCESS` and basic auth apply).
    Proxy,
    /// Answer with a redirect to HTTPS.
    Redirect {
        /// 301 for GET and HEAD, else the vhost's `non_get_redirect`.
        status: StatusCode,
        /// `https://<host>[:<https_port>]<path and query>`.
        location: String,
    },
    /// Serve `<acme_webroot>/.well-known/acme-challenge/<token>`; the token is a single,
    /// validated path segment.
    Acme(String),
    /// The ACME location was asked for a name that cannot be a token: 404.
    NotFound,
    /// The vhost does not serve this scheme: answer like an unknown host (503).
    Unknown,
}

/// The facts about a request that the gate looks at.
#[derive(Clone, Copy, Debug)]
pub struct RequestFacts<'a> {
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// The request method.
    pub method: &'a Method,
    /// The requested host, lower-case and without port (the vhost name when none was sent).
    pub host: &'a str,
    /// The raw path and query (`/` when the request has none).
    pub path_and_query: &'a str,
    /// The public HTTPS port, written into redirects unless it is 443.
    pub https_port: u16,
}

/// Where the ACME HTTP-01 challenge files are asked for.
pub const ACME_PREFIX: &str = "/.well-known/acme-challenge/";

/// The method in force for a vhost: its `HTTPS_METHOD`, except that `redirect` and `nohttp`
/// become `noredirect` when the vhost has no usable certificate and `http_on_missing_cert` is set.
pub fn effective_method(policy: &HttpsPolicy, cert_ok: bool) -> HttpsMethod {
    match policy.method {
        HttpsMethod::Redirect | HttpsMethod::NoHttp if !cert_ok && policy.http_on_missing_cert => {
            HttpsMethod::NoRedirect
        }
        method => method,
    }
}

/// Whether a response carries the vhost's `Strict-Transport-Security`: only over TLS, and only
/// when the effective method is `redirect` or `nohttp` (never `noredirect`).
pub fn hsts_applies(effective: HttpsMethod, tls: bool) -> bool {
    tls && matches!(effective, HttpsMethod::Redirect | HttpsMethod::NoHttp)
}

/// Decides what happens to a request for a known vhost whose effective method is `effective`.
///
/// Plain HTTP: `nohttp` → [`Gate::Unknown`] (ACME paths included); then the ACME location when
/// `acme_challenge` is enabled, or `legacy` with `redirect`; then `redirect` → [`Gate::Redirect`];
/// anything else is proxied. HTTPS: `nohttps` → [`Gate::Unknown`], anything else is proxied.
pub fn gate(policy: &HttpsPolicy, effective: HttpsMethod, req: &RequestFacts<'_>) -> Gate {
    if req.tls {
        return match effective {
            HttpsMethod::NoHttps => Gate::Unknown,
            _ => Gate::Proxy,
        };
    }
    if effective == HttpsMethod::NoHttp {
        return Gate::Unknown;
    }
    let acme = match policy.acme_challenge {
        AcmeChallenge::Enabled => true,
        AcmeChallenge::Disabled => false,
        AcmeChallenge::Legacy => effective == HttpsMethod::Redirect,
    };
    if acme {
        let path = req.path_and_query.split('?').next().unwrap_or_default();
        if let Some(token) = path.strip_prefix(ACME_PREFIX) {
            return match acme::is_token(token) {
                true => Gate::Acme(token.to_owned()),
                false => Gate::NotFound,
            };
        }
    }
    match effective {
        HttpsMethod::Redirect => Gate::Redirect {
            status: redirect_status(req.method, policy.non_get_redirect),
            location: https_location(req.host, req.https_port, req.path_and_query),
        },
        _ => Gate::Proxy,
    }
}

/// 301 for GET and HEAD; `non_get_redirect` (301, 307 or 308; anything else counts as 301)
/// for every other method.
fn redirect_status(method: &Method, non_get_redirect: u16) -> StatusCode {
    if method == Method::GET || method == Method::HEAD {
        return StatusCode::MOVED_PERMANENTLY;
    }
    match non_get_redirect {
        307 => StatusCode::TEMPORARY_REDIRECT,
        308 => StatusCode::PERMANENT_REDIRECT,
        _ => StatusCode::MOVED_PERMANENTLY,
    }
}

/// `https://<host>[:<port>]<path and query>`, the port omitted when it is 443.
fn https_location(host: &str, port: u16, path_and_query: &str) -> String {
    let mut out = String::with_capacity(host.len() + path_and_query.len() + 16);
    out.push_str("https://");
    out.push_str(host);
    if port != 443 {
        // Writing to a String cannot fail.
        let _ = write!(out, ":{port}");
    }
    if !path_and_query.starts_with('/') {
        out.push('/');
    }
    out.push_str(path_and_query);
    out
}

#[cfg(test)]
mod tests;
