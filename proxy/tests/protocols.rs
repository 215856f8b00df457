//! Upgrades, HTTPS backends and tunnels that outlive table swaps.

mod support;

use dockhand_proxy::Proto;
use std::time::Duration;
use support::faulty::greeting_upgrade;
use support::*;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn websocket_is_tunnelled() {
    let ws = backend("ws").websocket().start().await;
    let proxy = proxy()
        .start(table().vhost("ws.tld", vec![path("/", &[&ws])]).spec())
        .await;
    let mut socket = websocket(proxy.addr, "ws.tld").await;
    assert_eq!(echo(&mut socket, "hello").await, "hello");
    assert_eq!(echo(&mut socket, "again").await, "again");
}

/// The sample `name` of a Prometheus text exposition.
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_websockets_bytes_are_counted_when_its_tunnel_ends() {
    let ws = backend("ws").websocket().start().await;
    let proxy = proxy()
        .start(table().vhost("ws.tld", vec![path("/", &[&ws])]).spec())
        .await;
    let received = "dockhand_requests_bytes_total{listener=\"http\"}";
    let sent = "dockhand_responses_bytes_total{listener=\"http\"}";
    let mut socket = websocket(proxy.addr, "ws.tld").await;
    let text = "x".repeat(100_000);
    for _ in 0..3 {
        assert_eq!(echo(&mut socket, &text).await.len(), text.len());
    }
    socket.close(None).await.unwrap();
    drop(socket);
    // 300 kB each way went through the tunnel, after the handshake was counted.
    assert_eventually!(
        sample(&proxy.metrics_text(), received) > 300_000
            && sample(&proxy.metrics_text(), sent) > 300_000,
        "tunnel bytes not counted:\n{}",
        proxy.metrics_text()
    );
}

#[tokio::test]
async fn table_swap_does_not_cut_an_open_websocket() {
    let ws = backend("ws").websocket().start().await;
    let other = backend("other").start().await;
    let mut proxy = proxy()
        .start(table().vhost("ws.tld", vec![path("/", &[&ws])]).spec())
        .await;
    let mut socket = websocket(proxy.addr, "ws.tld").await;
    assert_eq!(echo(&mut socket, "before").await, "before");
    // The vhost disappears entirely: new requests get 503, the tunnel stays.
    proxy.swap(
        &table()
            .vhost("other.tld", vec![path("/", &[&other])])
            .spec(),
    );
    assert_eq!(get(proxy.addr, "ws.tld", "/").await.status, 503);
    assert_eq!(echo(&mut socket, "after").await, "after");
}

#[tokio::test]
async fn https_backends_with_self_signed_certificates_are_reached() {
    let secure = backend("secure").https().start().await;
    let proxy = proxy()
        .start(
            table()
                .vhost("s.tld", vec![path("/", &[&secure]).proto(Proto::Https)])
                .spec(),
        )
        .await;
    let reply = get(proxy.addr, "s.tld", "/tls").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.backend(), "secure");
    assert_eq!(reply.uri(), "/tls");
}

#[tokio::test]
async fn plain_http_to_an_https_backend_fails_with_502() {
    let secure = backend("secure").https().start().await;
    let proxy = proxy()
        .start(table().vhost("s.tld", vec![path("/", &[&secure])]).spec())
        .await;
    assert_eq!(get(proxy.addr, "s.tld", "/").await.status, 502);
}

#[tokio::test]
async fn websocket_survives_its_vhost_being_removed_and_added_back() {
    let ws = backend("ws").websocket().start().await;
    let other = backend("other").start().await;
    let with_ws = || {
        table()
            .vhost("ws.tld", vec![path("/", &[&ws])])
            .vhost("other.tld", vec![path("/", &[&other])])
            .spec()
    };
    let mut proxy = proxy().start(with_ws()).await;
    let mut socket = websocket(proxy.addr, "ws.tld").await;
    assert_eq!(echo(&mut socket, "one").await, "one");
    proxy.swap(
        &table()
            .vhost("other.tld", vec![path("/", &[&other])])
            .spec(),
    );
    assert_eq!(echo(&mut socket, "two").await, "two");
    proxy.swap(&with_ws());
    assert_eq!(echo(&mut socket, "three").await, "three");
    // A new connection uses the re-added vhost, next to the old tunnel.
    let mut fresh = websocket(proxy.addr, "ws.tld").await;
    assert_eq!(echo(&mut fresh, "fresh").await, "fresh");
    assert_eq!(echo(&mut socket, "four").await, "four");
}

#[tokio::test]
async fn websocket_survives_unrelated_swaps() {
    let ws = backend("ws").websocket().start().await;
    let other = backend("other").start().await;
    let mut proxy = proxy()
        .start(table().vhost("ws.tld", vec![path("/", &[&ws])]).spec())
        .await;
    let mut socket = websocket(proxy.addr, "ws.tld").await;
    for i in 0..20 {
        let mut spec = table().vhost("ws.tld", vec![path("/", &[&ws])]);
        if i % 2 == 0 {
            spec = spec.vhost(&format!("other{i}.tld"), vec![path("/", &[&other])]);
        }
        proxy.swap(&spec.spec());
        let text = format!("message {i}");
        assert_eq!(echo(&mut socket, &text).await, text);
    }
}

#[tokio::test]
async fn a_streaming_response_survives_swaps() {
    use http_body_util::BodyExt;
    use support::backend::STREAM_CHUNKS;
    let stream = backend("stream").streaming().start().await;
    let other = backend("other").start().await;
    let with_stream = || {
        table()
            .vhost("stream.tld", vec![path("/", &[&stream])])
            .spec()
    };
    let mut proxy = proxy().start(with_stream()).await;
    let conn = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(conn);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", "stream.tld")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let swaps = [
        table()
            .vhost("other.tld", vec![path("/", &[&other])])
            .spec(),
        with_stream(),
        table().spec(),
    ];
    for (i, swap) in swaps.iter().enumerate().take(STREAM_CHUNKS) {
        stream.release_one();
        let frame = tokio::time::timeout(DEADLINE, body.frame())
            .await
            .expect("no chunk in time")
            .expect("body ended early")
            .expect("body failed");
        let data = frame.into_data().expect("a data frame");
        assert_eq!(data, format!("chunk{i}\n").as_bytes());
        proxy.swap(swap);
    }
    let end = tokio::time::timeout(DEADLINE, body.frame()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
}

/// What a backend sends right behind its `101` head (read with it, in one piece) reaches the
/// client first, then the tunnel carries both ways.
#[tokio::test]
async fn bytes_sent_with_the_101_head_reach_the_client() {
    let upgrading = greeting_upgrade().await;
    let proxy = proxy()
        .start(
            table()
                .vhost(
                    "u.tld",
                    vec![path("/", &[]).backend_at("up", Some(upgrading.addr))],
                )
                .spec(),
        )
        .await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(
            b"GET /chat HTTP/1.1\r\nHost: u.tld\r\nConnection: upgrade\r\nUpgrade: custom\r\n\r\n",
        )
        .await
        .unwrap();
    let seen = read_until(&mut client, b"hello").await;
    assert!(seen.starts_with("HTTP/1.1 101"), "{seen}");
    client.write_all(b"ping").await.unwrap();
    assert_eq!(read_until(&mut client, b"ping").await, "ping");
}

/// Reads until what was read ends with `end`.
async fn read_until(stream: &mut TcpStream, end: &[u8]) -> String {
    let mut seen = Vec::new();
    let mut buf = [0; 1024];
    while !seen.ends_with(end) {
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await;
        let n = read.expect("nothing more came").unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// A tunnel through which nothing has moved for the tunnel idle timeout is closed; traffic
/// either way keeps it open past it.
#[tokio::test]
async fn an_idle_tunnel_is_closed_after_the_tunnel_idle_timeout() {
    use futures_util::StreamExt;
    let ws = backend("ws").websocket().start().await;
    let proxy = proxy()
        .config(|c| c.tunnel_idle_timeout = Duration::from_secs(1))
        .start(table().vhost("ws.tld", vec![path("/", &[&ws])]).spec())
        .await;
    let mut socket = websocket(proxy.addr, "ws.tld").await;
    let started = tokio::time::Instant::now();
    for i in 0..8 {
        assert_eq!(echo(&mut socket, &i.to_string()).await, i.to_string());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "outlived the timeout"
    );
    let end = tokio::time::timeout(DEADLINE, socket.next()).await;
    match end.expect("the idle tunnel stayed open") {
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
        Some(Ok(other)) => panic!("unexpected frame {other:?}"),
    }
}

/// An upgraded connection keeps its place under the connection limit, and in
/// `dockhand_open_connections`, until its tunnel closes.
#[tokio::test]
async fn a_tunnel_keeps_its_connection_counted_until_it_closes() {
    const OPEN: &str = "dockhand_open_connections{listener=\"http\"}";
    let ws = backend("ws").websocket().start().await;
    let web = backend("web").start().await;
    let proxy = proxy()
        .config(|c| c.max_connections = 1)
        .start(
            table()
                .vhost("ws.tld", vec![path("/", &[&ws])])
                .vhost("web.tld", vec![path("/", &[&web])])
                .spec(),
        )
        .await;
    let mut socket = websocket(proxy.addr, "ws.tld").await;
    assert_eq!(echo(&mut socket, "hello").await, "hello");
    assert_eq!(proxy.metric(OPEN), 1);
    // The only slot is the tunnel's: a new client waits for it. (Before tunnels kept their
    // slot, it was admitted at once and answered within the first of these round trips.)
    let waiting = tokio::spawn(get(proxy.addr, "web.tld", "/"));
    for i in 0..5 {
        assert_eq!(echo(&mut socket, &i.to_string()).await, i.to_string());
    }
    assert!(
        !waiting.is_finished(),
        "admitted while the tunnel held the slot"
    );
    assert_eq!(proxy.metric(OPEN), 1);
    drop(socket);
    let reply = tokio::time::timeout(DEADLINE, waiting).await;
    assert_eq!(reply.expect("never admitted").unwrap().status, 200);
    assert_eventually!(proxy.metric(OPEN) == 0, "{} still open", proxy.metric(OPEN));
}
