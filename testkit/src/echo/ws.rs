//! WebSocket echo at `/ws`: hyper performs the HTTP/1.1 upgrade, tokio-tungstenite speaks the
//! protocol on the upgraded connection.

use futures_util::{SinkExt, StreamExt};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::routes::{empty, text, wants_websocket, Body};

/// Answers the handshake and spawns the echo loop on the upgraded connection.
pub(super) fn upgrade(mut req: Request<Incoming>) -> Response<Body> {
    if !wants_websocket(req.headers()) {
        return text(
            StatusCode::UPGRADE_REQUIRED,
            "expected a WebSocket upgrade\n",
        );
    }
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "bad accept key\n");
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        // The upgrade fails only when the client goes away first: nothing to echo then.
        if let Ok(upgraded) = on_upgrade.await {
            let io = TokioIo::new(upgraded);
            echo_messages(WebSocketStream::from_raw_socket(io, Role::Server, None).await).await;
        }
    });
    let mut response = empty(StatusCode::SWITCHING_PROTOCOLS);
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// Sends every text and binary message back; pings and the closing handshake are answered by
/// tungstenite itself as long as the stream is polled, so the loop runs until it ends.
async fn echo_messages<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = ws.next().await {
        if matches!(message, Message::Text(_) | Message::Binary(_))
            && ws.send(message).await.is_err()
        {
            return;
        }
    }
}
