//! A small HTTP client for tests, on hyper's connection API.
//!
//! Tests need what a browser-like client hides: any `Host` header whatever the address, no
//! redirect following (a 301 is an answer to check), one fresh connection per request (so a
//! pooled connection never masks a routing change), h2c by prior knowledge, and TLS that accepts
//! any certificate but reports which one it got. hyper's `client::conn` gives exactly that.
//!
//! [`Request::send`] blocks: it runs the exchange on a private single-threaded runtime in its own
//! thread, so it works from plain `#[test]`s and from inside a Tokio runtime alike.
//! [`Request::send_async`] is the same exchange for async tests.

pub mod tls;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use crate::echo::Echo;

pub use tls::TlsInfo;
pub use ws::{websocket, websocket_roundtrip, Message, WebSocket};

/// Default limit on one whole exchange: connect, request, and reading the full body.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `GET path` to `addr` with header `Host: host` over HTTP/1.1.
///
/// # Errors
/// Connection, protocol or timeout failures (see [`HttpError`]); any HTTP status is `Ok`.
pub fn get(addr: impl Into<SocketAddr>, host: &str, path: &str) -> Result<Response, HttpError> {
    Request::get(addr, path).host(host).send()
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request could not be built (bad header name or value, bad path).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The TCP connection failed.
    #[error("connect to {addr} failed: {source}")]
    Connect {
        /// Address dialled.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// The HTTP exchange failed (connection closed, malformed response...).
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    /// The WebSocket handshake or a message exchange failed.
    #[error("WebSocket failed: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The whole exchange took longer than the request's timeout.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// The private runtime of a blocking call could not start.
    #[error("could not start a runtime: {0}")]
    Runtime(std::io::Error),
}

/// Which protocol a [`Request`] speaks.
#[derive(Clone, Debug)]
enum Mode {
    Http1,
    H2c,
    Tls { sni: Option<String>, h2: bool },
}

/// One request, built step by step and sent on a fresh connection.
#[derive(Clone, Debug)]
pub struct Request {
    method: Method,
    addr: SocketAddr,
    path: String,
    host: Option<String>,
    headers: Vec<(String, String)>,
    body: Bytes,
    mode: Mode,
    timeout: Duration,
    preamble: Bytes,
}

/// A complete response: the body is read to the end.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Protocol version the server answered with.
    pub version: Version,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// What the TLS handshake negotiated, for HTTPS requests.
    pub tls: Option<TlsInfo>,
}

impl Request {
    /// A request with `method` for `path` (which may carry a query) to `addr`. Defaults: HTTP/1.1,
    /// `Host` = `addr`, no body, [`DEFAULT_TIMEOUT`].
    pub fn new(method: Method, addr: impl Into<SocketAddr>, path: &str) -> Request {
        Request {
            method,
            addr: addr.into(),
            path: path.to_owned(),
            host: None,
            headers: Vec::new(),
            body: Bytes::new(),
            mode: Mode::Http1,
            timeout: DEFAULT_TIMEOUT,
            preamble: Bytes::new(),
        }
    }

    /// A `GET` request; see [`Request::new`].
    pub fn get(addr: impl Into<SocketAddr>, path: &str) -> Request {
        Request::new(Method::GET, addr, path)
    }

    /// Sets the `Host` header (HTTP/1.1) or `:authority` (h2), port included if wanted, and the
    /// TLS server name unless [`Request::sni`] says otherwise.
    pub fn host(mut self, host: &str) -> Request {
        self.host = Some(host.to_owned());
        self
    }

    /// Adds a header; sending several with the same name sends them all, in order.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the request body (no `Content-Type` is added).
    pub fn body(mut self, body: impl Into<Bytes>) -> Request {
        self.body = body.into();
        self
    }

    /// Speaks HTTP/2 without TLS, by prior knowledge (h2c).
    pub fn h2c(mut self) -> Request {
        self.mode = Mode::H2c;
        self
    }

    /// Speaks TLS (accepting any certificate), offering h2 and HTTP/1.1 by ALPN; the server name
    /// sent is the host without its port, if it is a DNS name or an IP address.
    pub fn https(mut self) -> Request {
        if let Mode::Tls { .. } = self.mode {
            return self;
        }
        self.mode = Mode::Tls {
            sni: None,
            h2: true,
        };
        self
    }

    /// Speaks TLS like [`Request::https`] but offers only HTTP/1.1 by ALPN.
    pub fn https_http1(mut self) -> Request {
        self.mode = Mode::Tls {
            sni: None,
            h2: false,
        };
        self
    }

    /// Speaks TLS and sends `name` as the server name whatever the `Host` header says.
    pub fn sni(mut self, name: &str) -> Request {
        let h2 = !matches!(self.mode, Mode::Tls { h2: false, .. });
        self.mode = Mode::Tls {
            sni: Some(name.to_owned()),
            h2,
        };
        self
    }

    /// Writes `bytes` on the connection before anything else (before the TLS handshake for
    /// HTTPS): a load balancer's PROXY protocol header, say. Default: nothing.
    pub fn preamble(mut self, bytes: impl Into<Bytes>) -> Request {
        self.preamble = bytes.into();
        self
    }

    /// Limits the whole exchange. Default: [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = timeout;
        self
    }

    /// Sends the request and waits for the whole response, blocking the calling thread.
    ///
    /// # Errors
    /// See [`HttpError`]; any HTTP status is `Ok`.
    pub fn send(self) -> Result<Response, HttpError> {
        run_blocking(self.timeout, self.exchange())
    }

    /// Sends the request and waits for the whole response.
    ///
    /// # Errors
    /// See [`HttpError`]; any HTTP status is `Ok`.
    pub async fn send_async(self) -> Result<Response, HttpError> {
        with_timeout(self.timeout, self.exchange()).await
    }

    async fn exchange(self) -> Result<Response, HttpError> {
        let mut tcp = connect(self.addr).await?;
        if !self.preamble.is_empty() {
            tokio::io::AsyncWriteExt::write_all(&mut tcp, &self.preamble)
                .await
                .map_err(|source| HttpError::Connect {
                    addr: self.addr,
                    source,
                })?;
        }
        match &self.mode {
            Mode::Http1 => send_http1(TokioIo::new(tcp), self.build(false)?, None).await,
            Mode::H2c => send_h2(TokioIo::new(tcp), self.build(true)?, None).await,
            Mode::Tls { sni, h2 } => {
                let name = sni.clone().unwrap_or_else(|| self.authority());
                let (stream, info) = tls::connect(tcp, &name, *h2).await?;
                if info.alpn.as_deref() == Some(b"h2") {
                    send_h2(TokioIo::new(stream), self.build(true)?, Some(info)).await
                } else {
                    send_http1(TokioIo::new(stream), self.build(false)?, Some(info)).await
                }
            }
        }
    }

    /// `Host` value: the given host, else the address.
    fn authority(&self) -> String {
        self.host.clone().unwrap_or_else(|| self.addr.to_string())
    }

    /// The hyper request: origin-form target plus `Host` for HTTP/1.1, absolute URI for h2.
    fn build(&self, h2: bool) -> Result<http::Request<Full<Bytes>>, HttpError> {
        let uri: Uri = if h2 {
            let scheme = if matches!(self.mode, Mode::Tls { .. }) {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}{}", self.authority(), self.path).parse()
        } else {
            self.path.parse()
        }
        .map_err(|e| HttpError::Invalid(format!("target {:?}: {e}", self.path)))?;
        let mut builder = http::Request::builder()
            .method(self.method.clone())
            .uri(uri);
        if !h2 {
            builder = builder.header(HOST, header_value(&self.authority())?);
        }
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| HttpError::Invalid(format!("header name {name:?}: {e}")))?;
            builder = builder.header(name, header_value(value)?);
        }
        builder
            .body(Full::new(self.body.clone()))
            .map_err(|e| HttpError::Invalid(e.to_string()))
    }
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON into `T` (use `serde_json::Value` for anything).
    ///
    /// # Errors
    /// The body is not JSON of that shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body parsed as the echo backend's report.
    ///
    /// # Errors
    /// The body is not an echo report (e.g. the proxy answered by itself).
    pub fn echo(&self) -> Result<Echo, serde_json::Error> {
        self.json()
    }

    /// First value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Runs `exchange` to completion on a private single-threaded runtime in its own thread, so the
/// caller may be a plain test or a task inside another runtime (which must not nest runtimes).
fn run_blocking<T: Send + 'static>(
    limit: Duration,
    exchange: impl Future<Output = Result<T, HttpError>> + Send + 'static,
) -> Result<T, HttpError> {
    let worker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(HttpError::Runtime)?;
        runtime.block_on(with_timeout(limit, exchange))
    });
    match worker.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

async fn with_timeout<T>(
    limit: Duration,
    exchange: impl Future<Output = Result<T, HttpError>>,
) -> Result<T, HttpError> {
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| HttpError::Timeout(limit))?
}

fn header_value(value: &str) -> Result<HeaderValue, HttpError> {
    HeaderValue::from_str(value)
        .map_err(|e| HttpError::Invalid(format!("header value {value:?}: {e}")))
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, HttpError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| HttpError::Connect { addr, source })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

async fn send_http1<I>(
    io: I,
    request: http::Request<Full<Bytes>>,
    tls: Option<TlsInfo>,
) -> Result<Response, HttpError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    // The connection task ends with the exchange; its error, if any, surfaces in send_request.
    tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    collect(response, tls).await
}

async fn send_h2<I>(
    io: I,
    request: http::Request<Full<Bytes>>,
    tls: Option<TlsInfo>,
) -> Result<Response, HttpError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
    tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    collect(response, tls).await
}

async fn collect(
    response: http::Response<hyper::body::Incoming>,
    tls: Option<TlsInfo>,
) -> Result<Response, HttpError> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
        tls,
    })
}
