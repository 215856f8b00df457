//! The echo server's request handler: one function per route.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};

use super::{ws, Echo, HeaderValues, MAX_DELAY_MS, MAX_STREAM_CHUNKS, STREAM_INTERVAL};

/// Response body of every route.
pub(super) type Body = BoxBody<Bytes, Infallible>;

/// Server-wide state.
pub(super) struct State {
    pub(super) name: String,
    pub(super) hostname: String,
    pub(super) x_backend: HeaderValue,
    pub(super) healthy: AtomicBool,
}

/// Per-connection facts the echo reports.
pub(super) struct Conn {
    pub(super) local_port: u16,
    pub(super) remote: SocketAddr,
    pub(super) tls: bool,
    /// The bytes read on the connection, for the header names' case.
    pub(super) seen: super::raw::Seen,
}

const X_BACKEND: HeaderName = HeaderName::from_static("x-backend");

/// Routes one request; never fails (bad input gets a 4xx).
pub(super) async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
    conn: Arc<Conn>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let mut response = match path.as_str() {
        "/ws" => ws::upgrade(req),
        "/healthz" => healthz(&state),
        "/health/ok" | "/health/fail" => {
            state.healthy.store(path == "/health/ok", Ordering::Relaxed);
            echo(req, &state, &conn, StatusCode::OK).await
        }
        _ => {
            if let Some(code) = path.strip_prefix("/status/") {
                status(req, &state, &conn, code).await
            } else if let Some(ms) = path.strip_prefix("/delay/") {
                delay(req, &state, &conn, ms).await
            } else if let Some(n) = path.strip_prefix("/stream/") {
                stream(n)
            } else {
                echo(req, &state, &conn, StatusCode::OK).await
            }
        }
    };
    response
        .headers_mut()
        .insert(X_BACKEND, state.x_backend.clone());
    Ok(response)
}

async fn status(req: Request<Incoming>, state: &State, conn: &Conn, code: &str) -> Response<Body> {
    match code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        // A 1xx cannot be a final response.
        Some(code) if !code.is_informational() => echo(req, state, conn, code).await,
        _ => text(
            StatusCode::BAD_REQUEST,
            "status must be a number from 200 to 999\n",
        ),
    }
}

async fn delay(req: Request<Incoming>, state: &State, conn: &Conn, ms: &str) -> Response<Body> {
    let Ok(ms) = ms.parse::<u64>() else {
        return text(
            StatusCode::BAD_REQUEST,
            "delay must be a number of milliseconds\n",
        );
    };
    tokio::time::sleep(Duration::from_millis(ms.min(MAX_DELAY_MS))).await;
    echo(req, state, conn, StatusCode::OK).await
}

fn stream(n: &str) -> Response<Body> {
    let Ok(n) = n.parse::<u64>() else {
        return text(StatusCode::BAD_REQUEST, "stream needs a number of chunks\n");
    };
    let n = n.min(MAX_STREAM_CHUNKS);
    let chunks = futures_util::stream::unfold(0u64, move |i| async move {
        if i >= n {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(STREAM_INTERVAL).await;
        }
        let frame = Frame::data(Bytes::from(format!("chunk {i}\n")));
        Some((Ok::<_, Infallible>(frame), i + 1))
    });
    let mut response = Response::new(StreamBody::new(chunks).boxed());
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn healthz(state: &State) -> Response<Body> {
    if state.healthy.load(Ordering::Relaxed) {
        text(StatusCode::OK, "ok\n")
    } else {
        text(StatusCode::INTERNAL_SERVER_ERROR, "fail\n")
    }
}

/// Reads the whole body (counting, not keeping it) and answers with the [`Echo`] JSON.
async fn echo(
    req: Request<Incoming>,
    state: &State,
    conn: &Conn,
    code: StatusCode,
) -> Response<Body> {
    let (parts, mut body) = req.into_parts();
    let mut body_len = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_len += data.len() as u64;
                }
            }
            Err(_) => return text(StatusCode::BAD_REQUEST, "could not read the body\n"),
        }
    }
    let report = Echo {
        hostname: state.hostname.clone(),
        name: state.name.clone(),
        port: conn.local_port,
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        version: format!("{:?}", parts.version),
        tls: conn.tls,
        headers: headers_of(&parts.headers),
        header_names: super::raw::header_names(
            &conn.seen,
            &format!("{} {} {:?}", parts.method, parts.uri, parts.version),
        ),
        remote: conn.remote.to_string(),
        body_len,
    };
    let json = match serde_json::to_vec_pretty(&report) {
        Ok(json) => json,
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "could not encode\n"),
    };
    let body = if no_body(code) {
        Bytes::new()
    } else {
        json.into()
    };
    let mut response = Response::new(Full::new(body).boxed());
    *response.status_mut() = code;
    if !no_body(code) {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    response
}

/// Statuses that must not carry a body.
fn no_body(code: StatusCode) -> bool {
    matches!(code.as_u16(), 204 | 205 | 304)
}

fn headers_of(headers: &HeaderMap) -> BTreeMap<String, HeaderValues> {
    let mut out = BTreeMap::new();
    for name in headers.keys() {
        let mut values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let value = if values.len() == 1 {
            HeaderValues::One(values.remove(0))
        } else {
            HeaderValues::Many(values)
        };
        out.insert(name.as_str().to_owned(), value);
    }
    out
}

/// A small plain-text response.
pub(super) fn text(code: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *response.status_mut() = code;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// An empty response with `code`, used by the WebSocket handshake.
pub(super) fn empty(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().boxed());
    *response.status_mut() = code;
    response
}

/// Whether the request asks to switch to WebSocket.
pub(super) fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}
