//! What is recorded when a response ends: request metrics and the access log line.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Method, Request, StatusCode, Uri, Version};

use crate::config::{LogEscape, LogFormat, ProxyConfig};
use crate::metrics::VhostMetrics;
use crate::table::InFlight;
use crate::vars::{self, Var};

/// `tracing` target of access log lines.
pub const ACCESS_TARGET: &str = "dockhand::access";

/// The request fields of an access log line, captured without copying (refcounted bytes).
pub(crate) struct AccessLog {
    pub(crate) client: SocketAddr,
    pub(crate) host: Option<HeaderValue>,
    pub(crate) uri: Uri,
    pub(crate) upstream: Option<SocketAddr>,
    /// `LOG_FORMAT`, with what only it needs: the protocol, the local port, the
    /// `Authorization` header and the headers its `$http_…` variables name, in their order.
    format: Option<Box<Formatted>>,
}

struct Formatted {
    format: Arc<LogFormat>,
    version: Version,
    tls: bool,
    server_port: u16,
    authorization: Option<HeaderValue>,
    headers: Vec<Option<HeaderValue>>,
}

impl AccessLog {
    /// What the access log line of `req` needs, from client `peer` on local port
    /// `server_port` (over TLS when `tls`).
    pub(crate) fn new<B>(
        config: &ProxyConfig,
        (peer, server_port, tls): (SocketAddr, u16, bool),
        req: &Request<B>,
    ) -> AccessLog {
        let format = config.log_format.as_ref().map(|format| {
            Box::new(Formatted {
                headers: format
                    .template
                    .headers()
                    .map(|name| req.headers().get(name).cloned())
                    .collect(),
                format: format.clone(),
                version: req.version(),
                tls,
                server_port,
                authorization: req.headers().get(AUTHORIZATION).cloned(),
            })
        });
        AccessLog {
            client: peer,
            host: req.headers().get(HOST).cloned(),
            uri: req.uri().clone(),
            upstream: None,
            format,
        }
    }
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
        if let Some(formatted) = &log.format {
            let done = Done {
                method: &self.method,
                status: self.status,
                vhost: self.metrics.name(),
            };
            let line = formatted.line(&log, &done, elapsed, bytes);
            tracing::info!(target: ACCESS_TARGET, "{line}");
            return;
        }
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

/// The response side of a finished request.
struct Done<'a> {
    method: &'a Method,
    status: StatusCode,
    vhost: &'a str,
}

impl Formatted {
    /// The `LOG_FORMAT` line for a finished request.
    fn line(&self, log: &AccessLog, done: &Done<'_>, elapsed: Duration, bytes: u64) -> String {
        let mut out = String::with_capacity(160);
        let mut headers = self.headers.iter();
        let mut value = String::new();
        self.format.template.render(&mut out, |var, out| {
            value.clear();
            self.value(log, done, elapsed, bytes, var, &mut headers, &mut value);
            escape(self.format.escape, &value, out);
        });
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn value<'h>(
        &self,
        log: &AccessLog,
        done: &Done<'_>,
        elapsed: Duration,
        bytes: u64,
        var: &Var,
        headers: &mut impl Iterator<Item = &'h Option<HeaderValue>>,
        out: &mut String,
    ) {
        let host = || {
            log.host
                .as_ref()
                .and_then(|h| h.to_str().ok())
                .and_then(crate::host::normalize_host)
                .map(|h| h.into_owned())
                .unwrap_or_else(|| log.uri.host().unwrap_or_default().to_owned())
        };
        let target = log.uri.path_and_query().map_or("/", |p| p.as_str());
        let _ = match var {
            Var::TimeLocal => {
                vars::time_local(SystemTime::now(), out);
                Ok(())
            }
            Var::TimeIso8601 => {
                vars::time_iso8601(SystemTime::now(), out);
                Ok(())
            }
            Var::Msec => {
                vars::msec(SystemTime::now(), out);
                Ok(())
            }
            Var::Header(_) => {
                match headers.next().and_then(Option::as_ref) {
                    Some(v) => out.push_str(&String::from_utf8_lossy(v.as_bytes())),
                    // nginx logs a missing value as `-`.
                    None => out.push('-'),
                }
                Ok(())
            }
            Var::Scheme => write!(out, "{}", if self.tls { "https" } else { "http" }),
            Var::Host => write!(out, "{}", host()),
            Var::RequestUri => write!(out, "{target}"),
            Var::Uri => write!(out, "{}", log.uri.path()),
            Var::Args => write!(out, "{}", log.uri.query().unwrap_or_default()),
            Var::ServerPort => write!(out, "{}", self.server_port),
            Var::RemoteAddr => write!(out, "{}", log.client.ip().to_canonical()),
            Var::RemotePort => write!(out, "{}", log.client.port()),
            Var::RemoteUser => write!(out, "{}", remote_user(self.authorization.as_ref())),
            Var::Request => write!(out, "{} {target} {:?}", done.method, self.version),
            Var::RequestMethod => write!(out, "{}", done.method),
            Var::ServerProtocol => write!(out, "{:?}", self.version),
            Var::Status => write!(out, "{}", done.status.as_u16()),
            Var::BodyBytesSent => write!(out, "{bytes}"),
            Var::RequestTime => write!(out, "{:.3}", elapsed.as_secs_f64()),
            Var::UpstreamAddr => write!(out, "{}", Upstream(log.upstream)),
            Var::Vhost => write!(out, "{}", done.vhost),
        };
    }
}

/// The user name of a basic-auth `Authorization` header, or `-`.
fn remote_user(authorization: Option<&HeaderValue>) -> String {
    let user = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| {
            let raw = String::from_utf8_lossy(&raw).into_owned();
            raw.split_once(':').map(|(user, _)| user.to_owned())
        })
        .filter(|user| !user.is_empty());
    user.unwrap_or_else(|| "-".to_owned())
}

/// Appends `value` to `out`, escaped as nginx's `log_format … escape=`.
fn escape(mode: LogEscape, value: &str, out: &mut String) {
    match mode {
        LogEscape::None => out.push_str(value),
        LogEscape::Default => {
            for b in value.bytes() {
                match b {
                    b'"' | b'\\' | 0..=0x1f | 0x7f..=0xff => {
                        let _ = write!(out, "\\x{b:02X}");
                    }
                    _ => out.push(char::from(b)),
                }
            }
        }
        LogEscape::Json => {
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if u32::from(c) < 0x20 => {
                        let _ = write!(out, "\\u{:04x}", u32::from(c));
                    }
                    c => out.push(c),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut out = String::new();
        escape(LogEscape::Default, "a\"b\\c\u{1}é", &mut out);
        assert_eq!(out, "a\\x22b\\x5Cc\\x01\\xC3\\xA9");
        out.clear();
        escape(LogEscape::Json, "a\"b\\c\n\u{1}é", &mut out);
        assert_eq!(out, "a\\\"b\\\\c\\n\\u0001é");
        out.clear();
        escape(LogEscape::None, "a\"b", &mut out);
        assert_eq!(out, "a\"b");
    }

    #[test]
    fn basic_auth_user() {
        let v = HeaderValue::from_static("Basic dXNlcjpwYXNz");
        assert_eq!(remote_user(Some(&v)), "user");
        assert_eq!(remote_user(None), "-");
        assert_eq!(
            remote_user(Some(&HeaderValue::from_static("Bearer x"))),
            "-"
        );
    }
}
