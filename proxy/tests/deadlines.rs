//! Every phase of a client connection has a deadline: silent, slow and non-reading clients are
//! closed, and at the connection limit idle clients make room for new ones.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Short deadlines, so that each test takes about a second.
fn short(c: &mut dockhand_proxy::ProxyConfig) {
    c.header_read_timeout = Duration::from_millis(300);
    c.keepalive_timeout = Duration::from_millis(300);
    c.send_timeout = Duration::from_millis(300);
    c.lingering_timeout = Duration::from_millis(300);
    c.lingering_time = Duration::from_secs(2);
}

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
/// GOAWAY's frame type.
const GOAWAY: u8 = 7;

/// Reads until the proxy closes the connection; fails if that takes longer than the deadline.
/// Returns what was read and how long it took.
async fn closed_by_proxy(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the proxy kept the connection open");
    (out, start.elapsed())
}

/// The frame types of a server's HTTP/2 byte stream.
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

async fn simple_proxy(
    change: impl FnOnce(&mut dockhand_proxy::ProxyConfig),
) -> (TestProxy, Backend) {
    let web = backend("web").start().await;
    let proxy = proxy()
        .config(|c| {
            short(c);
            change(c);
        })
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    (proxy, web)
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let (proxy, _web) = simple_proxy(|_| {}).await;
    let mut silent = TcpStream::connect(proxy.addr).await.unwrap();
    let (read, _) = closed_by_proxy(&mut silent).await;
    assert!(read.is_empty(), "{read:?}");
}

#[tokio::test]
async fn half_an_http2_preface_is_closed() {
    let (proxy, _web) = simple_proxy(|_| {}).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client.write_all(&HTTP2_PREFACE[..10]).await.unwrap();
    closed_by_proxy(&mut client).await;
}

#[tokio::test]
async fn an_h2c_connection_quiet_after_its_settings_gets_goaway_then_is_closed() {
    let (proxy, _web) = simple_proxy(|_| {}).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client.write_all(HTTP2_PREFACE).await.unwrap();
    client.write_all(SETTINGS).await.unwrap();
    let (read, _) = closed_by_proxy(&mut client).await;
    let types = frame_types(&read);
    assert!(types.contains(&GOAWAY), "no GOAWAY among frames {types:?}");
}

#[tokio::test]
async fn an_idle_http2_connection_gets_goaway_after_its_requests() {
    let (proxy, _web) = simple_proxy(|_| {}).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let driver = tokio::spawn(conn);
    let req = http::Request::get("http://web.tld/")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    // The connection ends by itself once the proxy's GOAWAY has been answered.
    let ended = tokio::time::timeout(DEADLINE, driver).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection was kept open");
    assert!(
        sender.ready().await.is_err(),
        "the connection still takes requests"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let (proxy, web) = simple_proxy(|c| c.keepalive_timeout = Duration::from_millis(500)).await;
    let mut idle = TcpStream::connect(proxy.addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: web.tld\r\n\r\n")
        .await
        .unwrap();
    let (read, took) = closed_by_proxy(&mut idle).await;
    assert!(String::from_utf8_lossy(&read).starts_with("HTTP/1.1 200"));
    assert!(took >= Duration::from_millis(400), "closed after {took:?}");
    assert_eq!(web.requests(), 1);
}

#[tokio::test]
async fn a_request_head_sent_byte_by_byte_is_cut_at_the_header_timeout() {
    let (proxy, web) = simple_proxy(|c| c.keepalive_timeout = Duration::from_secs(60)).await;
    let mut slow = TcpStream::connect(proxy.addr).await.unwrap();
    let head = b"GET / HTTP/1.1\r\nHost: web.tld\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let start = Instant::now();
    for byte in head {
        if slow.write_all(&[*byte]).await.is_err() {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "still sending after the deadline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (read, _) = closed_by_proxy(&mut slow).await;
    assert!(
        start.elapsed() < Duration::from_millis(head.len() as u64 * 50),
        "the whole head got in"
    );
    assert!(!String::from_utf8_lossy(&read).contains("200"), "{read:?}");
    assert_eq!(web.requests(), 0);
}

/// A backend that answers every request with an endless body, counting how long it could write.
async fn endless_backend() -> (SocketAddr, tokio::sync::oneshot::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cut, cut_seen) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 4096];
        let _ = stream.read(&mut head).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
            .await;
        let chunk = vec![b'x'; 64 * 1024];
        while stream.write_all(&chunk).await.is_ok() {}
        let _ = cut.send(());
    });
    (addr, cut_seen)
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_after_the_send_timeout() {
    let (addr, cut_seen) = endless_backend().await;
    let proxy = proxy()
        .config(short)
        .start(
            table()
                .vhost(
                    "big.tld",
                    vec![path("/", &[]).backend_at("big", Some(addr))],
                )
                .spec(),
        )
        .await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: big.tld\r\n\r\n")
        .await
        .unwrap();
    // The client reads nothing more; the proxy gives up and lets go of the backend.
    let cut = tokio::time::timeout(DEADLINE, cut_seen).await;
    assert!(
        cut.is_ok(),
        "the backend connection is still held for a client that does not read"
    );
}

#[tokio::test]
async fn an_answer_before_the_upload_ends_reaches_the_client_lingering_close() {
    // A backend that answers 413 as soon as it has the head, reads a little more of the upload
    // and closes: the proxy is left with a client still sending.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 16 * 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n")
                .await;
            let until = Instant::now() + Duration::from_millis(200);
            while Instant::now() < until {
                let read = tokio::time::timeout_at(until.into(), stream.read(&mut buf)).await;
                if !matches!(read, Ok(Ok(n)) if n > 0) {
                    break;
                }
            }
        }
    });
    let proxy = proxy()
        .config(short)
        .start(
            table()
                .vhost("up.tld", vec![path("/", &[]).backend_at("up", Some(addr))])
                .spec(),
        )
        .await;
    // The client sends its whole upload before it reads (as simple clients do): without a
    // lingering close the proxy's close resets the connection and the answer is lost.
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    let size = 4 * 1024 * 1024;
    let head = format!("POST /upload HTTP/1.1\r\nHost: up.tld\r\nContent-Length: {size}\r\n\r\n");
    let upload = async {
        client.write_all(head.as_bytes()).await?;
        let chunk = vec![b'u'; 16 * 1024];
        for _ in 0..size / chunk.len() {
            client.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let sent = tokio::time::timeout(DEADLINE, upload).await;
    assert!(matches!(sent, Ok(Ok(()))), "upload cut: {sent:?}");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(DEADLINE, client.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "the proxy kept the connection open");
    assert!(
        read.unwrap().is_ok(),
        "the connection was reset: the answer is lost ({answer:?})"
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(answer.ends_with("too big\n"), "{answer:?}");
}

#[tokio::test]
async fn at_the_connection_limit_idle_clients_make_room_for_new_ones() {
    let (proxy, web) = simple_proxy(|c| {
        c.max_connections = 50;
        // Nothing times out during the test: only eviction can admit the new client.
        c.header_read_timeout = Duration::from_secs(60);
        c.keepalive_timeout = Duration::from_secs(60);
    })
    .await;
    // One keep-alive client busy with a request that the backend holds, then 60 silent ones.
    let mut silent = Vec::new();
    for _ in 0..60 {
        silent.push(TcpStream::connect(proxy.addr).await.unwrap());
    }
    let start = Instant::now();
    let reply = tokio::time::timeout(DEADLINE, get(proxy.addr, "web.tld", "/")).await;
    assert!(reply.is_ok(), "a new client waited behind idle ones");
    assert_eq!(reply.unwrap().status, 200);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "admitted after {:?}",
        start.elapsed()
    );
    assert_eq!(web.requests(), 1);
    drop(silent);
}

#[tokio::test]
async fn thousands_of_silent_sockets_cannot_deny_service() {
    // The attack scaled to the test process's descriptors: twice the limit in silent
    // sockets (benches/silent.sh runs it with 10,000 against the release binary).
    let (proxy, _web) = simple_proxy(|c| {
        c.max_connections = 1000;
        c.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..2000 {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(proxy.addr)).await {
            Ok(Ok(stream)) => silent.push(stream),
            _ => break,
        }
    }
    assert!(
        silent.len() >= 1500,
        "only {} silent sockets opened",
        silent.len()
    );
    for _ in 0..20 {
        let reply = tokio::time::timeout(DEADLINE, get(proxy.addr, "web.tld", "/")).await;
        assert!(
            reply.is_ok(),
            "a normal client was kept out by silent sockets"
        );
        assert_eq!(reply.unwrap().status, 200);
    }
    drop(silent);
}

#[tokio::test]
async fn at_the_limit_heads_arriving_for_over_a_second_make_room_when_none_is_idle() {
    let (proxy, web) = simple_proxy(|c| {
        c.max_connections = 20;
        c.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    // Slowloris: every slot holds a head that never ends.
    let mut slow = Vec::new();
    for _ in 0..30 {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: web.tld\r\nX-Slow: 1")
            .await
            .unwrap();
        slow.push(stream);
    }
    let start = Instant::now();
    let reply = tokio::time::timeout(DEADLINE, get(proxy.addr, "web.tld", "/")).await;
    assert!(reply.is_ok(), "a normal client was kept out by slow heads");
    assert_eq!(reply.unwrap().status, 200);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "admitted after {:?}",
        start.elapsed()
    );
    assert_eq!(web.requests(), 1, "no slow head was ever completed");
    drop(slow);
}
