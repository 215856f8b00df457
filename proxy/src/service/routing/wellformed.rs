//! What is refused before routing, whatever the host: malformed or ambiguous request heads
//! (RFC 9112, RFC 9113, and what nginx refuses itself), and where a request names its host.

use std::borrow::Cow;

use http::header::{HOST, TRANSFER_ENCODING};
use http::request::Parts;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Method, Version};

use crate::error::ErrorKind;
use crate::host::normalize_host;

/// Where the request names its host: the URI authority (HTTP/2, absolute-form) wins over `Host`.
pub(super) enum HostSource {
    Authority(Authority),
    Header(HeaderValue),
}

impl HostSource {
    /// Where `parts` names its host (`None`: nowhere), or 400 when that is ambiguous: more than
    /// one `Host` line (RFC 9112 §3.2: the field must name one host, and a backend could pick
    /// another line than the one routed on); an HTTP/1.1 request without a valid `Host`, even
    /// in absolute-form (§3.2, as nginx); an HTTP/2 `host` naming another authority than
    /// `:authority` (RFC 9113 §8.3.1). An HTTP/1.1 absolute-form target's authority wins over a
    /// different `Host` (§3.2.3), which is then replaced by the routed one.
    pub(super) fn of(parts: &Parts) -> Result<Option<HostSource>, ErrorKind> {
        let mut lines = parts.headers.get_all(HOST).iter();
        let header = lines.next();
        if lines.next().is_some() {
            return Err(ErrorKind::BadRequest);
        }
        let Some(authority) = parts.uri.authority() else {
            return Ok(header.cloned().map(HostSource::Header));
        };
        let agrees = |header: &HeaderValue| match parts.version {
            Version::HTTP_2 => same_authority(authority, header, parts.uri.scheme()),
            _ => header.to_str().ok().and_then(normalize_host).is_some(),
        };
        match header {
            Some(header) if !agrees(header) => Err(ErrorKind::BadRequest),
            None if parts.version == Version::HTTP_11 => Err(ErrorKind::BadRequest),
            _ => Ok(Some(HostSource::Authority(authority.clone()))),
        }
    }

    pub(super) fn normalized(&self) -> Option<Cow<'_, str>> {
        match self {
            HostSource::Authority(a) => normalize_host(a.host()),
            HostSource::Header(h) => normalize_host(h.to_str().ok()?),
        }
    }
}

/// Whether a `Host` value names the same host and port as `authority` (case-insensitively,
/// with the scheme's default port when none is written).
fn same_authority(authority: &Authority, host: &HeaderValue, scheme: Option<&Scheme>) -> bool {
    let Ok(text) = host.to_str() else {
        return false;
    };
    // Normalizing the whole value also checks its port (an `Authority` takes `a.tld:x`).
    let (Some(name), Ok(other)) = (normalize_host(text), text.parse::<Authority>()) else {
        return false;
    };
    let default = if scheme == Some(&Scheme::HTTPS) {
        443
    } else {
        80
    };
    let port = |a: &Authority| a.port_u16().unwrap_or(default);
    port(authority) == port(&other) && normalize_host(authority.host()).is_some_and(|n| n == name)
}

/// Requests refused before routing, whatever their host: `CONNECT` (dockhand is no forward
/// proxy); a target in authority-form (only `CONNECT` may use it) or asterisk-form (there is no
/// server-wide `OPTIONS`); and a `Transfer-Encoding` other than one `chunked` (RFC 9112 §6.1:
/// hyper decodes any list ending in `chunked`, and the backend would get the body without the
/// other codings, or undone chunking it never sees): 501 for an unknown coding, as nginx, 400
/// for repeated lines or `chunked` applied twice; both close the connection, since where the
/// body ends is in doubt.
pub(super) fn malformed(parts: &Parts) -> Option<ErrorKind> {
    if parts.method == Method::CONNECT {
        return Some(ErrorKind::BadRequest);
    }
    let uri = &parts.uri;
    let authority_form = uri.scheme().is_none() && uri.authority().is_some();
    if authority_form || uri.path() == "*" {
        return Some(ErrorKind::BadRequest);
    }
    let mut codings = parts.headers.get_all(TRANSFER_ENCODING).iter();
    let coding = codings.next()?;
    if codings.next().is_some() {
        return Some(ErrorKind::BadBody);
    }
    let list = coding.to_str().ok().unwrap_or("");
    let mut names = list.split(',').map(str::trim);
    if names.all(|name| name.eq_ignore_ascii_case("chunked")) {
        // `chunked` alone is the one coding forwarded as it came; more than once, it is invalid.
        return (list.split(',').count() > 1).then_some(ErrorKind::BadBody);
    }
    Some(ErrorKind::UnsupportedCoding)
}

/// Methods nginx refuses itself, and HTTP/2 header blocks over the limit (hyper enforces the
/// HTTP/1 limit while parsing and answers 431 on its own).
pub(super) fn refused_head(parts: &Parts, max_header_size: usize) -> Option<ErrorKind> {
    if parts.method == Method::TRACE {
        return Some(ErrorKind::MethodNotAllowed);
    }
    if parts.version == Version::HTTP_2 {
        // HPACK's accounting: name + value + 32 per field.
        let size: usize = parts
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        if size > max_header_size {
            return Some(ErrorKind::HeaderTooLarge);
        }
    }
    None
}
