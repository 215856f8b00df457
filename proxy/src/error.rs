//! Why a request could not be proxied, and the one place that turns that into a status code.
//!
//! Every failure of the data plane is an [`ErrorKind`]; [`status`] alone decides what the client
//! sees (the approach of linkerd's `rescue` and pingora's error types), so the nginx-proxy status
//! contract lives in a single `match`.

use http::StatusCode;

/// Boxed error of the proxy's bodies (only built when a body actually fails).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong while routing or forwarding a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No vhost matches the `Host` and there is no usable `DEFAULT_HOST`.
    UnknownHost,
    /// The vhost exists but no location matches the path.
    NoPath,
    /// The location has no backend with an address (all unreachable or none at all).
    NoBackend,
    /// The location's reachable backends all fail their Docker health check (or have not
    /// passed it yet).
    Unhealthy,
    /// Every candidate refused the TCP connection.
    ConnectRefused,
    /// Connecting to the last candidate tried timed out.
    ConnectTimeout,
    /// Connecting failed for another reason (TLS handshake to an `https` backend, no route, …).
    ConnectFailed,
    /// The backend closed or reset the connection before a complete response head.
    UpstreamReset,
    /// The backend sent no response head within `response_timeout`.
    UpstreamTimeout,
    /// The request is malformed (no `Host` on HTTP/1.1, invalid host, path escaping the root, …).
    BadRequest,
    /// The method is refused by the proxy itself (`TRACE`, like nginx).
    MethodNotAllowed,
    /// The request header block is larger than `max_header_size`.
    HeaderTooLarge,
    /// `NETWORK_ACCESS=internal` and the client is outside the internal networks.
    Forbidden,
    /// The location is protected by an htpasswd file and the credentials are missing or wrong.
    Unauthorized,
    /// The request body's framing is broken or in doubt: a malformed chunk or the client gone
    /// half-way while it was forwarded (the client's fault, never the backend's), or `chunked`
    /// applied twice.
    BadBody,
    /// The client sent nothing of its request body for `body_read_timeout`.
    BodyTimeout,
    /// A `Transfer-Encoding` other than `chunked` alone (`gzip, chunked`): hyper would decode
    /// the chunks and drop the other coding, so the backend would get a different message.
    UnsupportedCoding,
}

impl ErrorKind {
    /// Every kind, in declaration order; `index()` is the position in this array.
    pub const ALL: [ErrorKind; 17] = [
        ErrorKind::UnknownHost,
        ErrorKind::NoPath,
        ErrorKind::NoBackend,
        ErrorKind::Unhealthy,
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::ConnectFailed,
        ErrorKind::UpstreamReset,
        ErrorKind::UpstreamTimeout,
        ErrorKind::BadRequest,
        ErrorKind::MethodNotAllowed,
        ErrorKind::HeaderTooLarge,
        ErrorKind::Forbidden,
        ErrorKind::Unauthorized,
        ErrorKind::BadBody,
        ErrorKind::BodyTimeout,
        ErrorKind::UnsupportedCoding,
    ];

    /// Dense index of this kind in [`ErrorKind::ALL`], for per-kind metric handle arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The `kind` label value of `dockhand_upstream_errors_total` (snake case, stable).
    pub const fn label(self) -> &'static str {
        match self {
            ErrorKind::UnknownHost => "unknown_host",
            ErrorKind::NoPath => "no_path",
            ErrorKind::NoBackend => "no_backend",
            ErrorKind::Unhealthy => "unhealthy",
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::ConnectFailed => "connect_failed",
            ErrorKind::UpstreamReset => "upstream_reset",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::HeaderTooLarge => "header_too_large",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::BadBody => "bad_body",
            ErrorKind::BodyTimeout => "body_timeout",
            ErrorKind::UnsupportedCoding => "unsupported_coding",
        }
    }

    /// Whether this kind is a failure to get an answer from a backend (counted in
    /// `dockhand_upstream_errors_total`), as opposed to a routing or client error.
    pub const fn is_upstream(self) -> bool {
        matches!(
            self,
            ErrorKind::NoBackend
                | ErrorKind::Unhealthy
                | ErrorKind::ConnectRefused
                | ErrorKind::ConnectTimeout
                | ErrorKind::ConnectFailed
                | ErrorKind::UpstreamReset
                | ErrorKind::UpstreamTimeout
        )
    }

    /// Whether the client's connection must close after this answer: the request's framing
    /// is broken or in doubt, so nothing after it on the connection can be trusted.
    pub const fn closes(self) -> bool {
        matches!(
            self,
            ErrorKind::BadBody | ErrorKind::BodyTimeout | ErrorKind::UnsupportedCoding
        )
    }

    /// Whether the request never reached the backend, so another candidate may be tried even for
    /// a non-idempotent method.
    pub const fn is_connect(self) -> bool {
        matches!(
            self,
            ErrorKind::ConnectRefused | ErrorKind::ConnectTimeout | ErrorKind::ConnectFailed
        )
    }
}

/// The status code the client gets for `kind`: the nginx-proxy contract.
///
/// Unknown host 503 (the caller serves `DEFAULT_HOST` instead when it is set and known); a known
/// host whose backends are all unreachable or refuse connections 502; a known host whose
/// backends all fail their health check 503; no matching path 404; no
/// response head in time 504; malformed request 400; `TRACE` 405; header block too large 431;
/// `NETWORK_ACCESS=internal` refusing the client 403; missing or wrong basic-auth credentials 401;
/// a broken request body 400, one that stalls 408 (nginx's `client_body_timeout`); a transfer
/// coding other than `chunked` 501 (nginx's answer too).
pub const fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::UnknownHost | ErrorKind::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::NoPath => StatusCode::NOT_FOUND,
        ErrorKind::NoBackend
        | ErrorKind::ConnectRefused
        | ErrorKind::ConnectTimeout
        | ErrorKind::ConnectFailed
        | ErrorKind::UpstreamReset => StatusCode::BAD_GATEWAY,
        ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::BadRequest | ErrorKind::BadBody => StatusCode::BAD_REQUEST,
        ErrorKind::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorKind::UnsupportedCoding => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
    }
}

/// The short HTML page sent with a status the proxy generates itself, shaped like nginx's.
///
/// Static so that error responses allocate nothing; unknown codes get a generic page.
pub const fn page(status: StatusCode) -> &'static str {
    macro_rules! page {
        ($title:literal) => {
            concat!(
                "<html>\r\n<head><title>",
                $title,
                "</title></head>\r\n<body>\r\n<center><h1>",
                $title,
                "</h1></center>\r\n<hr><center>dockhand</center>\r\n</body>\r\n</html>\r\n"
            )
        };
    }
    match status.as_u16() {
        301 => page!("301 Moved Permanently"),
        307 => page!("307 Temporary Redirect"),
        308 => page!("308 Permanent Redirect"),
        400 => page!("400 Bad Request"),
        401 => page!("401 Authorization Required"),
        403 => page!("403 Forbidden"),
        404 => page!("404 Not Found"),
        405 => page!("405 Not Allowed"),
        408 => page!("408 Request Time-out"),
        431 => page!("431 Request Header Fields Too Large"),
        501 => page!("501 Not Implemented"),
        502 => page!("502 Bad Gateway"),
        503 => page!("503 Service Temporarily Unavailable"),
        504 => page!("504 Gateway Time-out"),
        _ => page!("500 Internal Server Error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_nginx_proxy_contract() {
        let expected = [
            (ErrorKind::UnknownHost, 503),
            (ErrorKind::NoPath, 404),
            (ErrorKind::NoBackend, 502),
            (ErrorKind::ConnectRefused, 502),
            (ErrorKind::ConnectTimeout, 502),
            (ErrorKind::ConnectFailed, 502),
            (ErrorKind::UpstreamReset, 502),
            (ErrorKind::UpstreamTimeout, 504),
            (ErrorKind::BadRequest, 400),
            (ErrorKind::MethodNotAllowed, 405),
            (ErrorKind::HeaderTooLarge, 431),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::Unauthorized, 401),
            (ErrorKind::Unhealthy, 503),
            (ErrorKind::BadBody, 400),
            (ErrorKind::BodyTimeout, 408),
            (ErrorKind::UnsupportedCoding, 501),
        ];
        assert_eq!(expected.len(), ErrorKind::ALL.len());
        for (kind, code) in expected {
            assert_eq!(status(kind).as_u16(), code, "{kind:?}");
        }
    }

    #[test]
    fn index_is_the_position_in_all() {
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }

    #[test]
    fn labels_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            let label = kind.label();
            assert!(label.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!(seen.insert(label), "duplicate label {label}");
        }
    }

    #[test]
    fn only_connect_failures_are_retryable() {
        let retryable: Vec<_> = ErrorKind::ALL
            .into_iter()
            .filter(|k| k.is_connect())
            .collect();
        assert_eq!(
            retryable,
            [
                ErrorKind::ConnectRefused,
                ErrorKind::ConnectTimeout,
                ErrorKind::ConnectFailed
            ]
        );
    }

    #[test]
    fn client_faults_are_not_upstream_errors() {
        for kind in [
            ErrorKind::BadRequest,
            ErrorKind::BadBody,
            ErrorKind::BodyTimeout,
            ErrorKind::UnsupportedCoding,
        ] {
            assert!(!kind.is_upstream() && !kind.is_connect(), "{kind:?}");
        }
        let closing: Vec<_> = ErrorKind::ALL.into_iter().filter(|k| k.closes()).collect();
        assert_eq!(
            closing,
            [
                ErrorKind::BadBody,
                ErrorKind::BodyTimeout,
                ErrorKind::UnsupportedCoding
            ]
        );
    }

    #[test]
    fn pages_carry_the_nginx_title() {
        let body = page(StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("<title>503 Service Temporarily Unavailable</title>"));
        assert!(page(StatusCode::BAD_GATEWAY).contains("502 Bad Gateway"));
        assert!(page(StatusCode::REQUEST_TIMEOUT).contains("408 Request Time-out"));
        assert!(page(StatusCode::NOT_IMPLEMENTED).contains("501 Not Implemented"));
        assert!(page(StatusCode::IM_A_TEAPOT).contains("500"));
    }
}
