//! nginx variables (`$host`, `$request_uri`, `$status`, …) in the few settings that take them:
//! `DEFAULT_ROOT` and `LOG_FORMAT`. A text is compiled once, when the configuration is read,
//! into literal pieces and variables; a request only looks its variables up.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderName;

/// One nginx variable dockhand knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    /// `$scheme`: `http` or `https`.
    Scheme,
    /// `$host`: the request host, lower-cased, without port.
    Host,
    /// `$request_uri`: the path and query as the client sent them.
    RequestUri,
    /// `$uri`: the path.
    Uri,
    /// `$args` / `$query_string`: the query, without `?`.
    Args,
    /// `$server_port`: the port the client connected to.
    ServerPort,
    /// `$remote_addr`: the client's IP.
    RemoteAddr,
    /// `$remote_port`: the client's port.
    RemotePort,
    /// `$remote_user`: the basic-auth user name, if any.
    RemoteUser,
    /// `$request`: `METHOD /uri HTTP/x.y`.
    Request,
    /// `$request_method`.
    RequestMethod,
    /// `$server_protocol`: `HTTP/1.1`, `HTTP/2.0`.
    ServerProtocol,
    /// `$status`: the response status.
    Status,
    /// `$body_bytes_sent` (also `$bytes_sent`, which dockhand counts the same way).
    BodyBytesSent,
    /// `$request_time`: seconds with milliseconds, from the request head to the body's end.
    RequestTime,
    /// `$upstream_addr`: the backend's `ip:port`, or `-`.
    UpstreamAddr,
    /// `$time_local`: `05/Dec/2026:07:58:00 +0000` (UTC).
    TimeLocal,
    /// `$time_iso8601`: `2026-12-05T07:58:00+00:00` (UTC).
    TimeIso8601,
    /// `$msec`: seconds since the epoch, with milliseconds.
    Msec,
    /// `$vhost`: the name of the vhost that served the request (dockhand's own).
    Vhost,
    /// `$http_<name>`: a request header (`_` for `-`).
    Header(HeaderName),
}

/// The variables a request knows before it is answered, as `DEFAULT_ROOT` may use.
pub fn request_var(var: &Var) -> bool {
    matches!(
        var,
        Var::Scheme
            | Var::Host
            | Var::RequestUri
            | Var::Uri
            | Var::Args
            | Var::ServerPort
            | Var::RemoteAddr
            | Var::RequestMethod
    )
}

/// A text with variables: literal pieces and variables in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// The names `$…` may take, for error messages.
const KNOWN: &str = "$scheme, $host, $request_uri, $uri, $args, $query_string, $server_port, \
    $remote_addr, $remote_port, $remote_user, $request, $request_method, $server_protocol, \
    $status, $body_bytes_sent, $bytes_sent, $request_time, $upstream_addr, $time_local, \
    $time_iso8601, $msec, $vhost, $http_<header>";

impl Template {
    /// Compiles `raw`: `$name` or `${name}` is a variable (names are letters, digits and `_`);
    /// a `$` not followed by a name is literal. A variable that is unknown, or that `allowed`
    /// refuses, is an error naming it.
    pub fn compile(raw: &str, allowed: impl Fn(&Var) -> bool) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = raw;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, next) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| format!("`${{` without `}}` in {raw:?}"))?;
                (&braced[..end], &braced[end + 1..])
            } else {
                let len = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..len], &after[len..])
            };
            if name.is_empty() {
                text.push('$');
                rest = after;
                continue;
            }
            let var = parse_var(name)
                .ok_or_else(|| format!("unknown variable ${name}; supported: {KNOWN}"))?;
            if !allowed(&var) {
                return Err(format!("${name} is not known at this point"));
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Var(var));
            rest = next;
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// The headers `$http_…` variables read, in order of appearance (repeats included).
    pub fn headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(Var::Header(name)) => Some(name),
            _ => None,
        })
    }

    /// Writes the text into `out`, each variable through `value` (which appends its value).
    pub fn render(&self, out: &mut String, mut value: impl FnMut(&Var, &mut String)) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var(var) => value(var, out),
            }
        }
    }
}

fn parse_var(name: &str) -> Option<Var> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "scheme" => Var::Scheme,
        "host" => Var::Host,
        "request_uri" => Var::RequestUri,
        "uri" | "document_uri" => Var::Uri,
        "args" | "query_string" => Var::Args,
        "server_port" => Var::ServerPort,
        "remote_addr" => Var::RemoteAddr,
        "remote_port" => Var::RemotePort,
        "remote_user" => Var::RemoteUser,
        "request" => Var::Request,
        "request_method" => Var::RequestMethod,
        "server_protocol" => Var::ServerProtocol,
        "status" => Var::Status,
        "body_bytes_sent" | "bytes_sent" => Var::BodyBytesSent,
        "request_time" => Var::RequestTime,
        "upstream_addr" => Var::UpstreamAddr,
        "time_local" => Var::TimeLocal,
        "time_iso8601" => Var::TimeIso8601,
        "msec" => Var::Msec,
        "vhost" => Var::Vhost,
        other => {
            let header = other.strip_prefix("http_")?.replace('_', "-");
            Var::Header(HeaderName::try_from(header).ok()?)
        }
    })
}

/// `$time_local` for `now`: `05/Dec/2026:07:58:00 +0000` (dockhand logs in UTC).
pub fn time_local(now: SystemTime, out: &mut String) {
    let (y, mo, d, h, mi, s) = civil(now);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS[usize::from(mo - 1)];
    let _ = write!(out, "{d:02}/{month}/{y}:{h:02}:{mi:02}:{s:02} +0000");
}

/// `$time_iso8601` for `now`: `2026-12-05T07:58:00+00:00`.
pub fn time_iso8601(now: SystemTime, out: &mut String) {
    let (y, mo, d, h, mi, s) = civil(now);
    let _ = write!(out, "{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+00:00");
}

/// `$msec` for `now`.
pub fn msec(now: SystemTime, out: &mut String) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let _ = write!(out, "{}.{:03}", since.as_secs(), since.subsec_millis());
}

/// Year, month, day, hour, minute, second (UTC) of `t`.
fn civil(t: SystemTime) -> (i64, u8, u8, u64, u64, u64) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u8::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u8::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(t: &Template) -> String {
        let mut out = String::new();
        t.render(&mut out, |var, out| out.push_str(&format!("<{var:?}>")));
        out
    }

    #[test]
    fn variables_and_literals() {
        let t = Template::compile("$scheme://${host}:8$request_uri?$ x$", |_| true).unwrap();
        assert_eq!(rendered(&t), "<Scheme>://<Host>:8<RequestUri>?$ x$");
        let t = Template::compile("\"$http_user_agent\" $HTTP_X_FORWARDED_FOR", |_| true).unwrap();
        let names: Vec<&str> = t.headers().map(HeaderName::as_str).collect();
        assert_eq!(names, ["user-agent", "x-forwarded-for"]);
    }

    #[test]
    fn unknown_or_refused_variables_are_named() {
        let e = Template::compile("$host $nonsense", |_| true).unwrap_err();
        assert!(e.contains("unknown variable $nonsense"), "{e}");
        let e = Template::compile("$status", request_var).unwrap_err();
        assert!(e.contains("$status"), "{e}");
        assert!(Template::compile("${host", |_| true).is_err());
    }

    #[test]
    fn times() {
        // 2026-12-05T07:58:09Z
        let t = UNIX_EPOCH + Duration::from_millis(1_796_457_489_042);
        let mut out = String::new();
        time_local(t, &mut out);
        out.push(' ');
        time_iso8601(t, &mut out);
        out.push(' ');
        msec(t, &mut out);
        assert_eq!(
            out,
            "05/Dec/2026:07:58:09 +0000 2026-12-05T07:58:09+00:00 1796457489.042"
        );
    }
}
