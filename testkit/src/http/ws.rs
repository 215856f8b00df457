//! WebSocket client helpers for tests.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

use super::{connect, run_blocking, HttpError, DEFAULT_TIMEOUT};

pub use tokio_tungstenite::tungstenite::Message;

/// An open client WebSocket over plain TCP: a `Stream` of incoming [`Message`]s and a `Sink` for
/// outgoing ones (use `futures_util::{SinkExt, StreamExt}`).
pub type WebSocket = WebSocketStream<TcpStream>;

/// Opens a WebSocket to `ws://host{path}` over a TCP connection to `addr`.
///
/// # Errors
/// Connection failures, or a handshake the server refused (e.g. a 404 or 502 from a proxy).
pub async fn websocket(
    addr: impl Into<SocketAddr>,
    host: &str,
    path: &str,
) -> Result<WebSocket, HttpError> {
    let request = format!("ws://{host}{path}")
        .into_client_request()
        .map_err(|e| HttpError::Invalid(format!("WebSocket target {host}{path}: {e}")))?;
    let tcp = connect(addr.into()).await?;
    let (socket, _response) = tokio_tungstenite::client_async(request, tcp).await?;
    Ok(socket)
}

/// Opens a WebSocket, sends `text`, and returns the first text or binary message that comes
/// back (as text), closing the socket afterwards. Blocks; the whole exchange is limited to
/// [`DEFAULT_TIMEOUT`].
///
/// # Errors
/// See [`websocket`]; also a socket closed before any answer.
pub fn websocket_roundtrip(
    addr: impl Into<SocketAddr>,
    host: &str,
    path: &str,
    text: &str,
) -> Result<String, HttpError> {
    let (addr, host, path, text) = (
        addr.into(),
        host.to_owned(),
        path.to_owned(),
        text.to_owned(),
    );
    run_blocking(DEFAULT_TIMEOUT, async move {
        let mut socket = websocket(addr, &host, &path).await?;
        socket.send(Message::text(text)).await?;
        while let Some(message) = socket.next().await {
            let answer = match message? {
                Message::Text(t) => t.as_str().to_owned(),
                Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                _ => continue,
            };
            // The answer is in hand; a failed close handshake changes nothing for the caller.
            let _ = socket.close(None).await;
            return Ok(answer);
        }
        Err(HttpError::Invalid(
            "the WebSocket closed before answering".to_owned(),
        ))
    })
}
