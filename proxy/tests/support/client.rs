//! Clients that talk to the proxy over fresh connections: HTTP/1.1, h2c and raw bytes.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket client connection through the proxy.
pub type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

/// A response as the test sees it.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON (an echo backend's answer).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// Which echo backend answered.
    pub fn backend(&self) -> String {
        self.json()["backend"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The values of request header `name` the backend received.
    pub fn sent(&self, name: &str) -> Vec<String> {
        self.json()["headers"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The URI the backend received.
    pub fn uri(&self) -> String {
        self.json()["uri"].as_str().unwrap_or_default().to_owned()
    }
}

/// `GET path` with `Host: host` over HTTP/1.1.
pub async fn get(proxy: SocketAddr, host: &str, path: &str) -> Reply {
    let req = Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    request(proxy, req).await
}

/// Sends `req` over a new HTTP/1.1 connection.
pub async fn request(proxy: SocketAddr, req: Request<Full<Bytes>>) -> Reply {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let response = sender.send_request(req).await.unwrap();
    collect(response).await
}

/// `GET http://host/path` over HTTP/2 with prior knowledge.
pub async fn h2c_get(proxy: SocketAddr, host: &str, path: &str) -> Reply {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://{host}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    collect(response).await
}

/// Reads a whole response into a [`Reply`].
pub async fn collect(response: http::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Writes `bytes` on a new connection and returns everything read until the proxy closes it.
pub async fn raw(proxy: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(super::DEADLINE, stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "proxy did not close the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens a WebSocket to `ws://host/chat` through the proxy; asserts the 101.
pub async fn websocket(proxy: SocketAddr, host: &str) -> Socket {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let url = format!("ws://{host}/chat");
    let (socket, response) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    assert_eq!(response.status(), 101);
    socket
}

/// Sends `text` and returns the echoed text, within the deadline.
pub async fn echo(socket: &mut Socket, text: &str) -> String {
    use futures_util::{SinkExt, StreamExt};
    let exchange = async {
        socket.send(Message::text(text)).await.unwrap();
        match socket.next().await {
            Some(Ok(Message::Text(reply))) => reply.to_string(),
            other => panic!("unexpected frame: {other:?}"),
        }
    };
    tokio::time::timeout(super::DEADLINE, exchange)
        .await
        .expect("no echo in time")
}
