//! The single-valued settings: ports, protocols, balancing, keepalive and the HTTPS options.
//!
//! Every parser takes a trimmed, non-empty value (an empty value means "unset" and never gets
//! here) and returns the reason when it refuses it. Keywords are matched ASCII
//! case-insensitively.

pub use dockhand_spec::{AcmeChallenge, HttpsMethod, NetworkAccess, SslPolicy, VerifyClient};
use dockhand_spec::{Balance, Keepalive, Proto};

/// `HSTS` on a container. Default (unset): the proxy-wide setting, itself `max-age=31536000`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Hsts {
    /// `off`: no `Strict-Transport-Security` header.
    Off,
    /// The header value to send, as written (trimmed).
    Value(String),
}

/// The `…non-get-redirect` label: the status of the HTTP→HTTPS redirect for methods other than
/// GET and HEAD. Default (unset): the proxy-wide `NON_GET_REDIRECT`, itself 301.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NonGetRedirect {
    /// 301 Moved Permanently (clients may turn a POST into a GET).
    MovedPermanently,
    /// 307 Temporary Redirect (method and body kept).
    Temporary,
    /// 308 Permanent Redirect (method and body kept).
    Permanent,
}

impl NonGetRedirect {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            Self::MovedPermanently => 301,
            Self::Temporary => 307,
            Self::Permanent => 308,
        }
    }
}

/// `VIRTUAL_PORT`, or a `port` in `VIRTUAL_HOST_MULTIPORTS`: 1..=65535.
pub(crate) fn parse_port(raw: &str) -> Result<u16, String> {
    match raw.parse::<u16>() {
        Ok(0) | Err(_) => Err("a port is a number from 1 to 65535".to_owned()),
        Ok(port) => Ok(port),
    }
}

/// `VIRTUAL_PROTO`, or a `proto` in `VIRTUAL_HOST_MULTIPORTS`.
pub(crate) fn parse_proto(raw: &str) -> Result<Proto, String> {
    match raw.to_ascii_lowercase().as_str() {
        "http" => Ok(Proto::Http),
        "https" => Ok(Proto::Https),
        "h2c" | "grpc" => Ok(Proto::H2c),
        other @ ("uwsgi" | "fastcgi" | "grpcs") => Err(format!(
            "`{other}` is not supported by dockhand; supported: http, https, h2c, grpc"
        )),
        _ => Err("unknown protocol; supported: http, https, h2c, grpc".to_owned()),
    }
}

/// The `…loadbalance` label: an nginx `upstream` directive, `;` optional, spacing free.
pub(crate) fn parse_balance(raw: &str) -> Result<Balance, String> {
    let directive = raw.strip_suffix(';').unwrap_or(raw);
    let words: Vec<&str> = directive.split_whitespace().collect();
    match words.join(" ").to_ascii_lowercase().as_str() {
        "hash $remote_addr" | "ip_hash" => Ok(Balance::ClientIp),
        "least_conn" => Ok(Balance::LeastConn),
        _ => Err(
            "supported: `hash $remote_addr;`, `ip_hash;` (client-IP affinity), \
                  `least_conn;`, or unset (round robin)"
                .to_owned(),
        ),
    }
}

/// The `…keepalive` label: `auto`, `disabled`, or a pool size of at least 1.
pub(crate) fn parse_keepalive(raw: &str) -> Result<Keepalive, String> {
    match raw.to_ascii_lowercase().as_str() {
        "auto" => Ok(Keepalive::Auto),
        "disabled" => Ok(Keepalive::Disabled),
        n => match n.parse::<usize>() {
            Ok(max) if max > 0 => Ok(Keepalive::Max(max)),
            _ => Err(
                "supported: `auto`, `disabled`, or a number of idle connections \
                      (at least 1)"
                    .to_owned(),
            ),
        },
    }
}

/// `HTTPS_METHOD`.
pub fn parse_https_method(raw: &str) -> Result<HttpsMethod, String> {
    match raw.to_ascii_lowercase().as_str() {
        "redirect" => Ok(HttpsMethod::Redirect),
        "noredirect" => Ok(HttpsMethod::NoRedirect),
        "nohttp" => Ok(HttpsMethod::NoHttp),
        "nohttps" => Ok(HttpsMethod::NoHttps),
        _ => Err("supported: redirect, noredirect, nohttp, nohttps".to_owned()),
    }
}

/// `HSTS`: `off`, or a header value (nginx-proxy does not validate it further; dockhand only
/// refuses what cannot be sent in a header).
pub fn parse_hsts(raw: &str) -> Result<Hsts, String> {
    if raw.eq_ignore_ascii_case("off") {
        return Ok(Hsts::Off);
    }
    // Tab, visible ASCII and obs-text are what an HTTP header value may hold.
    let sendable = |b: u8| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80;
    if raw.bytes().all(sendable) {
        Ok(Hsts::Value(raw.to_owned()))
    } else {
        Err("control characters cannot be sent in a header".to_owned())
    }
}

/// `CERT_NAME`: a file name (without `.crt`/`.key`) inside the certificate folder.
pub(crate) fn parse_cert_name(raw: &str) -> Result<String, String> {
    // The name is joined to the certificate folder: it must not climb out of it.
    if raw == "." || raw == ".." || raw.contains('/') || raw.contains('\\') {
        return Err(
            "a certificate name is a file name in the certificate folder, \
                    without `/` or `..`"
                .to_owned(),
        );
    }
    if raw.chars().any(char::is_control) {
        return Err("control characters are not allowed in a certificate name".to_owned());
    }
    Ok(raw.to_owned())
}

/// `NETWORK_ACCESS`.
///
/// nginx-proxy treats any value but `internal` as `external`; dockhand refuses unknown values,
/// because a typo (`interal`) would silently expose an internal service.
pub(crate) fn parse_network_access(raw: &str) -> Result<NetworkAccess, String> {
    match raw.to_ascii_lowercase().as_str() {
        "external" => Ok(NetworkAccess::External),
        "internal" => Ok(NetworkAccess::Internal),
        _ => Err("supported: external, internal".to_owned()),
    }
}

/// The `…non-get-redirect` label.
pub fn parse_non_get_redirect(raw: &str) -> Result<NonGetRedirect, String> {
    match raw {
        "301" => Ok(NonGetRedirect::MovedPermanently),
        "307" => Ok(NonGetRedirect::Temporary),
        "308" => Ok(NonGetRedirect::Permanent),
        _ => Err("supported: 301, 307, 308".to_owned()),
    }
}

/// A yes/no setting (`ENABLE_HTTP_ON_MISSING_CERT`, the `…trust-default-cert` label), spelled as
/// nginx-proxy's users do.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("supported: true or false".to_owned()),
    }
}

/// `SSL_POLICY`: one of nginx-proxy's policy names (see [`SslPolicy::NAMES`]).
pub fn parse_ssl_policy(raw: &str) -> Result<SslPolicy, String> {
    SslPolicy::parse(raw).ok_or_else(|| {
        format!(
            "unknown policy; supported: {}, and ELBSecurityPolicy-… for each AWS-…",
            SslPolicy::NAMES.join(", ")
        )
    })
}

/// The `…ssl_verify_client` label: `on`, `optional`, `optional_no_ca` or `off`.
pub(crate) fn parse_verify_client(raw: &str) -> Result<VerifyClient, String> {
    match raw.to_ascii_lowercase().as_str() {
        "on" => Ok(VerifyClient::On),
        "optional" => Ok(VerifyClient::Optional),
        "optional_no_ca" => Ok(VerifyClient::OptionalNoCa),
        "off" => Ok(VerifyClient::Off),
        _ => Err("supported: on, optional, optional_no_ca, off".to_owned()),
    }
}

/// `ACME_HTTP_CHALLENGE_LOCATION`: `true`, `false` or `legacy`.
pub fn parse_acme_challenge(raw: &str) -> Result<AcmeChallenge, String> {
    match raw.to_ascii_lowercase().as_str() {
        "true" => Ok(AcmeChallenge::Enabled),
        "false" => Ok(AcmeChallenge::Disabled),
        "legacy" => Ok(AcmeChallenge::Legacy),
        _ => Err("supported: true, false, legacy".to_owned()),
    }
}

/// `SERVER_TOKENS`: nginx's `server_tokens` values. `on` and `build` send the version in the
/// `Server` header (dockhand has no separate build name), `off` sends the name alone.
pub(crate) fn parse_server_tokens(raw: &str) -> Result<bool, String> {
    match raw.to_ascii_lowercase().as_str() {
        "on" | "build" => Ok(true),
        "off" => Ok(false),
        _ => Err("supported: on, off, build".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_tokens() {
        assert_eq!(parse_server_tokens("on"), Ok(true));
        assert_eq!(parse_server_tokens("OFF"), Ok(false));
        assert_eq!(parse_server_tokens("build"), Ok(true));
        assert!(parse_server_tokens("nginx/1.2")
            .unwrap_err()
            .contains("on, off, build"));
    }

    #[test]
    fn yes_no_and_acme_settings() {
        assert_eq!(parse_bool("FALSE"), Ok(false));
        assert_eq!(parse_bool("true"), Ok(true));
        assert!(parse_bool("maybe").is_err());
        assert_eq!(parse_acme_challenge("legacy"), Ok(AcmeChallenge::Legacy));
        assert_eq!(parse_acme_challenge("false"), Ok(AcmeChallenge::Disabled));
        assert!(parse_acme_challenge("sometimes").is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("1"), Ok(1));
        assert_eq!(parse_port("65535"), Ok(65535));
        for bad in ["0", "65536", "-1", "80/tcp", "http", "8 0"] {
            assert!(parse_port(bad).unwrap_err().contains("1 to 65535"), "{bad}");
        }
    }

    #[test]
    fn protos() {
        assert_eq!(parse_proto("http"), Ok(Proto::Http));
        assert_eq!(parse_proto("HTTPS"), Ok(Proto::Https));
        assert_eq!(parse_proto("h2c"), Ok(Proto::H2c));
        assert_eq!(parse_proto("grpc"), Ok(Proto::H2c));
        for unsupported in ["uwsgi", "fastcgi", "grpcs"] {
            let e = parse_proto(unsupported).unwrap_err();
            assert!(
                e.contains(&format!("`{unsupported}` is not supported")),
                "{e}"
            );
        }
        assert!(parse_proto("ftp").unwrap_err().contains("unknown protocol"));
    }

    #[test]
    fn balance() {
        for raw in [
            "hash $remote_addr;",
            "hash   $remote_addr",
            "ip_hash;",
            "ip_hash",
        ] {
            assert_eq!(parse_balance(raw), Ok(Balance::ClientIp), "{raw}");
        }
        assert_eq!(parse_balance("least_conn;"), Ok(Balance::LeastConn));
        assert_eq!(parse_balance("least_conn ;"), Ok(Balance::LeastConn));
        for bad in ["random;", "hash $request_uri;", "least_conn;;", "hash;"] {
            let e = parse_balance(bad).unwrap_err();
            assert!(
                e.contains("`hash $remote_addr;`") && e.contains("least_conn"),
                "{e}"
            );
        }
    }

    #[test]
    fn keepalive() {
        assert_eq!(parse_keepalive("auto"), Ok(Keepalive::Auto));
        assert_eq!(parse_keepalive("Disabled"), Ok(Keepalive::Disabled));
        assert_eq!(parse_keepalive("16"), Ok(Keepalive::Max(16)));
        for bad in ["0", "-2", "on", "1.5"] {
            assert!(
                parse_keepalive(bad).unwrap_err().contains("`auto`"),
                "{bad}"
            );
        }
    }

    #[test]
    fn https_method() {
        assert_eq!(parse_https_method("redirect"), Ok(HttpsMethod::Redirect));
        assert_eq!(
            parse_https_method("noredirect"),
            Ok(HttpsMethod::NoRedirect)
        );
        assert_eq!(parse_https_method("nohttp"), Ok(HttpsMethod::NoHttp));
        assert_eq!(parse_https_method("NOHTTPS"), Ok(HttpsMethod::NoHttps));
        assert!(parse_https_method("always")
            .unwrap_err()
            .contains("nohttps"));
    }

    #[test]
    fn hsts() {
        assert_eq!(parse_hsts("off"), Ok(Hsts::Off));
        assert_eq!(
            parse_hsts("max-age=60; preload"),
            Ok(Hsts::Value("max-age=60; preload".to_owned()))
        );
        assert!(parse_hsts("max-age=1\r\nX: y")
            .unwrap_err()
            .contains("control"));
    }

    #[test]
    fn cert_name() {
        assert_eq!(
            parse_cert_name("shared.example"),
            Ok("shared.example".to_owned())
        );
        for bad in ["..", ".", "../etc/passwd", "a/b", "a\\b"] {
            assert!(
                parse_cert_name(bad).unwrap_err().contains("without `/`"),
                "{bad}"
            );
        }
        assert!(parse_cert_name("a\u{7}").unwrap_err().contains("control"));
    }

    #[test]
    fn network_access() {
        assert_eq!(
            parse_network_access("internal"),
            Ok(NetworkAccess::Internal)
        );
        assert_eq!(
            parse_network_access("External"),
            Ok(NetworkAccess::External)
        );
        assert!(parse_network_access("interal")
            .unwrap_err()
            .contains("internal"));
    }

    #[test]
    fn non_get_redirect() {
        assert_eq!(
            parse_non_get_redirect("301").map(NonGetRedirect::status),
            Ok(301)
        );
        assert_eq!(
            parse_non_get_redirect("307").map(NonGetRedirect::status),
            Ok(307)
        );
        assert_eq!(
            parse_non_get_redirect("308").map(NonGetRedirect::status),
            Ok(308)
        );
        assert!(parse_non_get_redirect("302")
            .unwrap_err()
            .contains("301, 307, 308"));
    }
}
