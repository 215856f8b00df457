//! The responses sent to the client: a backend's, with its headers rewritten, and the proxy's
//! own (error pages, redirects, ACME challenge files, basic-auth challenges), each with the
//! vhost's HSTS header.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{
    CONNECTION, CONTENT_TYPE, LOCATION, SERVER, STRICT_TRANSPORT_SECURITY, WWW_AUTHENTICATE,
};
use http::{HeaderValue, Response, StatusCode};
use hyper::body::Incoming;

use super::Answer;
use crate::body::ProxyBody;
use crate::error::{self, ErrorKind};
use crate::forward;
use crate::pages::ErrorPage;
use crate::table::InFlight;

/// `Server` with `SERVER_TOKENS` on (nginx's default): the name and version.
const SERVER_TOKENS_ON: HeaderValue =
    HeaderValue::from_static(concat!("dockhand/", env!("CARGO_PKG_VERSION")));
/// `Server` with `SERVER_TOKENS=off`, and for unknown hosts (as nginx-proxy's fallback server).
const SERVER_TOKENS_OFF: HeaderValue = HeaderValue::from_static("dockhand");

/// What every answer of a vhost carries: its HSTS header, and its `Server` header's form.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stamp {
    /// The `Strict-Transport-Security` value, when it applies.
    pub(crate) hsts: Option<HeaderValue>,
    /// `SERVER_TOKENS`: the version in `Server` (default false: unknown hosts).
    pub(crate) server_tokens: bool,
}

/// The client's response to `answer`, with the vhost's headers; and for a backend's answer,
/// the backend and the mark that keeps the request counted in flight until its body ends.
pub(super) fn respond(
    answer: Answer,
    stamp: Stamp,
    pages: &ErrorPage,
) -> (Response<ProxyBody>, Option<SocketAddr>, Option<InFlight>) {
    let (mut response, upstream, in_flight) = match answer {
        Answer::Upstream {
            response,
            lease,
            addr,
            in_flight,
        } => (
            response.map(|body| ProxyBody::upstream(body, lease)),
            Some(addr),
            in_flight,
        ),
        Answer::Redirect(status, location) => (redirect(status, &location), None, None),
        Answer::Text(bytes) => (text(bytes), None, None),
        Answer::Challenge(realm) => (challenge(realm), None, None),
        Answer::Error(kind) => (error_page(kind, pages), None, None),
        Answer::Status(status, body) => (returned(status, body, pages), None, None),
        Answer::Json(bytes) => (json(bytes), None, None),
    };
    // Ours replaces a backend's own, as nginx hides the upstream's `Server`.
    let server = if stamp.server_tokens {
        SERVER_TOKENS_ON
    } else {
        SERVER_TOKENS_OFF
    };
    response.headers_mut().insert(SERVER, server);
    if let Some(hsts) = stamp.hsts {
        // Ours replaces a backend's own, on every answer including errors (nginx `always`).
        response
            .headers_mut()
            .insert(STRICT_TRANSPORT_SECURITY, hsts);
    }
    (response, upstream, in_flight)
}

/// A page of the proxy's own (error statuses): the custom `50x.html` for 500, 502, 503 and
/// 504 when there is one.
fn page_or_custom(status: StatusCode, pages: &ErrorPage) -> Response<ProxyBody> {
    let custom = matches!(status.as_u16(), 500 | 502 | 503 | 504)
        .then(|| pages.get())
        .flatten();
    match custom {
        Some(bytes) => {
            let mut response = page(status);
            *response.body_mut() = ProxyBody::full(bytes);
            response
        }
        None => page(status),
    }
}

/// A page of the proxy's own (error statuses).
fn page(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(Bytes::from_static(
        error::page(status).as_bytes(),
    )));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

/// The page for `kind`; when the request's framing is in doubt it also closes the connection,
/// so that nothing the client sent after it is read as another request (hyper drops the header
/// from HTTP/2 answers, where streams are framed on their own).
fn error_page(kind: ErrorKind, pages: &ErrorPage) -> Response<ProxyBody> {
    let mut response = page_or_custom(error::status(kind), pages);
    if kind.closes() {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A redirect: the 301 that adds a location's trailing slash, or HTTP → HTTPS (301/307/308).
fn redirect(status: StatusCode, location: &str) -> Response<ProxyBody> {
    let mut response = page(status);
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(LOCATION, value);
            response
        }
        // Built from a validated host and a location name: unreachable in practice.
        Err(_) => page(StatusCode::BAD_REQUEST),
    }
}

/// A `DEFAULT_ROOT` return: the text as the body when there is one, else the status's page.
fn returned(status: StatusCode, body: Option<Bytes>, pages: &ErrorPage) -> Response<ProxyBody> {
    match body {
        Some(body) => {
            let mut response = text(body);
            *response.status_mut() = status;
            response
        }
        // A status dockhand has a page for (else nginx sends no body either).
        None if has_page(status) => page_or_custom(status, pages),
        None => {
            let mut response = Response::new(ProxyBody::full(Bytes::new()));
            *response.status_mut() = status;
            response
        }
    }
}

/// Whether `error::page` has a page of its own for `status`.
fn has_page(status: StatusCode) -> bool {
    let generic = error::page(StatusCode::INTERNAL_SERVER_ERROR);
    status == StatusCode::INTERNAL_SERVER_ERROR || error::page(status) != generic
}

/// The debug endpoint's answer.
fn json(bytes: Bytes) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(bytes));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An ACME challenge file.
fn text(bytes: Bytes) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(bytes));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// The 401 asking for basic-auth credentials.
fn challenge(realm: HeaderValue) -> Response<ProxyBody> {
    let mut response = page(error::status(ErrorKind::Unauthorized));
    response.headers_mut().insert(WWW_AUTHENTICATE, realm);
    response
}

/// Response headers for the client, shared by plain and upgraded exchanges.
pub(crate) fn client_response(mut response: Response<Incoming>) -> Response<Incoming> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    forward::rewrite_response(response.headers_mut(), switching);
    response
}
