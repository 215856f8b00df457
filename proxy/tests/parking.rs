//! Idle HTTP/1 keep-alive connections are parked without hyper's buffers, and a parked
//! connection serves its next request, a request that arrives in pieces, and an upgrade, as if it
//! had never been parked.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PARKED: &str = "dockhand_parked_connections{listener=\"http\"}";

/// The value of the gauge of parked connections.
fn parked(proxy: &TestProxy) -> i64 {
    let metrics = proxy.metrics_text();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(PARKED)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads one whole response (it must have a `Content-Length`) and returns its head.
async fn response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() >= end + 4 + length {
                    return head;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed mid-response: {}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("no response in time")
}

/// One GET on `stream` (answered whatever the status), then the wait until the proxy parks it.
async fn get_then_park(proxy: &TestProxy, stream: &mut TcpStream, host: &str) {
    let before = parked(proxy);
    let head = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = response(stream).await;
    assert!(answer.starts_with("http/1.1 "), "{answer}");
    assert_eventually!(
        parked(proxy) > before,
        "the idle connection was not parked:\n{}",
        proxy.metrics_text()
    );
}

#[tokio::test]
async fn a_parked_connection_serves_its_next_request_even_one_sent_in_pieces() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    get_then_park(&proxy, &mut stream, "web.tld").await;
    assert_eq!(web.requests(), 1);

    // The first bytes wake it; the rest of the head follows on the new hyper connection.
    stream
        .write_all(b"GET /second HTTP/1.1\r\nHo")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(b"st: web.tld\r\n\r\n").await.unwrap();
    assert!(response(&mut stream).await.starts_with("http/1.1 200"));

    // Two pipelined requests in one write, after parking again.
    assert_eventually!(parked(&proxy) == 1, "not parked again");
    let two = b"GET /a HTTP/1.1\r\nHost: web.tld\r\n\r\nGET /b HTTP/1.1\r\nHost: web.tld\r\n\r\n";
    stream.write_all(two).await.unwrap();
    assert!(response(&mut stream).await.starts_with("http/1.1 200"));
    assert!(response(&mut stream).await.starts_with("http/1.1 200"));
    assert_eq!(web.requests(), 4);

    // A client that closes a parked connection leaves nothing parked.
    assert_eventually!(parked(&proxy) == 1, "not parked again");
    drop(stream);
    assert_eventually!(parked(&proxy) == 0, "a closed connection still counts");
}

#[tokio::test]
async fn a_parked_connection_is_closed_at_the_keep_alive_timeout() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .config(|c| c.keepalive_timeout = Duration::from_secs(1))
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    get_then_park(&proxy, &mut stream, "web.tld").await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "a parked connection outlived the keep-alive timeout"
    );
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert_eventually!(parked(&proxy) == 0, "a closed connection still counts");
}

#[tokio::test]
async fn a_websocket_upgrade_on_a_parked_connection_is_tunnelled() {
    let ws = backend("ws").websocket().start().await;
    let proxy = proxy()
        .start(table().vhost("ws.tld", vec![path("/", &[&ws])]).spec())
        .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    get_then_park(&proxy, &mut stream, "ws.tld").await;
    let (mut socket, answer) = tokio_tungstenite::client_async("ws://ws.tld/chat", stream)
        .await
        .unwrap();
    assert_eq!(answer.status(), 101);
    assert_eq!(echo(&mut socket, "after parking").await, "after parking");
}
