//! Tiny real backends on 127.0.0.1:0: an echo server answering with the request as JSON, and
//! variants that hang, wait for a release, stream chunk by chunk, speak TLS or WebSocket.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use dockhand_proxy::BackendSpec;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A backend named `name`, echoing requests unless told otherwise.
pub fn backend(name: &str) -> BackendBuilder {
    BackendBuilder {
        name: name.to_owned(),
        kind: Kind::Echo,
        tls: false,
    }
}

/// How a backend behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Echo,
    Hang,
    Held,
    Stream,
    WebSocket,
}

/// Chunks a streaming backend sends.
pub const STREAM_CHUNKS: usize = 3;

/// A backend being configured.
pub struct BackendBuilder {
    name: String,
    kind: Kind,
    tls: bool,
}

impl BackendBuilder {
    /// Reads requests but never answers.
    pub fn hanging(mut self) -> Self {
        self.kind = Kind::Hang;
        self
    }

    /// Answers only once [`Backend::release`] is called.
    pub fn held(mut self) -> Self {
        self.kind = Kind::Held;
        self
    }

    /// Answers 200 at once, then sends [`STREAM_CHUNKS`] chunks `chunk<i>\n`, each only once
    /// [`Backend::release_one`] allows it.
    pub fn streaming(mut self) -> Self {
        self.kind = Kind::Stream;
        self
    }

    /// A WebSocket server echoing every message.
    pub fn websocket(mut self) -> Self {
        self.kind = Kind::WebSocket;
        self
    }

    /// Serves HTTPS with a fresh self-signed certificate.
    pub fn https(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Binds 127.0.0.1:0 and serves until the [`Backend`] drops.
    pub async fn start(self) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.start_on(listener)
    }

    /// Serves on `listener` until the [`Backend`] drops.
    pub fn start_on(self, listener: TcpListener) -> Backend {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let state = State {
            name: self.name.clone(),
            kind: self.kind,
            seen: seen.clone(),
            gate: Arc::new(Semaphore::new(0)),
        };
        let gate = state.gate.clone();
        let tls = self.tls.then(acceptor);
        let task = tokio::spawn(accept_loop(listener, state, tls));
        Backend {
            name: self.name,
            addr,
            seen,
            gate,
            task,
        }
    }
}

/// A running backend.
pub struct Backend {
    /// Its name, echoed in every answer.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Seen>,
    gate: Arc<Semaphore>,
    task: JoinHandle<()>,
}

/// What a backend has received.
#[derive(Default)]
pub struct Seen {
    requests: AtomicUsize,
    connections: AtomicUsize,
    open: AtomicUsize,
}

impl Backend {
    /// This backend as a route table entry.
    pub fn spec(&self) -> BackendSpec {
        BackendSpec {
            addr: Some(self.addr),
            name: self.name.clone(),
            id: format!("{}-id", self.name),
            readiness: Default::default(),
            origin: Default::default(),
        }
    }

    /// Requests (or WebSocket connections) received so far.
    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    /// Connections open now (the backend has not seen them close yet).
    pub fn open(&self) -> usize {
        self.seen.open.load(Ordering::SeqCst)
    }

    /// Lets one more held request be answered, or one more chunk be streamed.
    pub fn release_one(&self) {
        self.gate.add_permits(1);
    }

    /// Lets every held request (and later ones) be answered.
    pub fn release(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address nothing listens on: connecting is refused.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[derive(Clone)]
struct State {
    name: String,
    kind: Kind,
    seen: Arc<Seen>,
    gate: Arc<Semaphore>,
}

async fn accept_loop(listener: TcpListener, state: State, tls: Option<TlsAcceptor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        let tls = tls.clone();
        state.seen.connections.fetch_add(1, Ordering::SeqCst);
        state.seen.open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let seen = state.seen.clone();
            match tls {
                Some(tls) => {
                    if let Ok(stream) = tls.accept(stream).await {
                        serve_http(TokioIo::new(stream), state).await;
                    }
                }
                None if state.kind == Kind::WebSocket => serve_websocket(stream, state).await,
                None => serve_http(TokioIo::new(stream), state).await,
            }
            seen.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn serve_http<I>(io: I, state: State)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| answer(req, state.clone()));
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(io, service)
        .await;
}

async fn serve_websocket(stream: TcpStream, state: State) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    state.seen.requests.fetch_add(1, Ordering::SeqCst);
    while let Some(Ok(message)) = ws.next().await {
        if message.is_close() || ws.send(message).await.is_err() {
            break;
        }
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn answer(req: Request<Incoming>, state: State) -> Result<Response<Body>, Infallible> {
    state.seen.requests.fetch_add(1, Ordering::SeqCst);
    match state.kind {
        Kind::Hang => std::future::pending::<()>().await,
        Kind::Held => drop(state.gate.acquire().await),
        Kind::Stream => return Ok(Response::new(stream(state.gate.clone()))),
        Kind::Echo | Kind::WebSocket => {}
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(value);
    }
    let echo = serde_json::json!({
        "backend": state.name,
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut response = Response::new(Full::new(Bytes::from(echo.to_string())).boxed());
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A body of [`STREAM_CHUNKS`] chunks, each sent once `gate` gives a permit.
fn stream(gate: Arc<Semaphore>) -> Body {
    let chunks = futures_util::stream::unfold(0, move |i| {
        let gate = gate.clone();
        async move {
            if i >= STREAM_CHUNKS {
                return None;
            }
            gate.acquire().await.ok()?.forget();
            let chunk = Frame::data(Bytes::from(format!("chunk{i}\n")));
            Some((Ok(chunk), i + 1))
        }
    });
    BodyExt::boxed(StreamBody::new(chunks))
}

fn acceptor() -> TlsAcceptor {
    let cert = rcgen::generate_simple_self_signed(vec!["backend.invalid".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}
