//! The responses sent to the client: a backend's, with its headers rewritten, and the proxy's
//! own (error pages, redirects, ACME challenge files, basic-auth challenges), each with the
//! vhost's HSTS header.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{
    CONNECTION, CONTENT_TYPE, LOCATION, STRICT_TRANSPORT_SECURITY, WWW_AUTHENTICATE,
};
use http::{HeaderValue, Response, StatusCode};
use hyper::body::Incoming;

use super::Answer;
use crate::body::ProxyBody;
use crate::error::{self, ErrorKind};
use crate::forward;
use crate::table::InFlight;

/// The client's response to `answer`, with the HSTS header; and for a backend's answer, the
/// backend and the mark that keeps the request counted in flight until its body ends.
pub(super) fn respond(
    answer: Answer,
    hsts: Option<HeaderValue>,
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
        Answer::Error(kind) => (error_page(kind), None, None),
    };
    if let Some(hsts) = hsts {
        // Ours replaces a backend's own, on every answer including errors (nginx `always`).
        response
            .headers_mut()
            .insert(STRICT_TRANSPORT_SECURITY, hsts);
    }
    (response, upstream, in_flight)
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
fn error_page(kind: ErrorKind) -> Response<ProxyBody> {
    let mut response = page(error::status(kind));
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
