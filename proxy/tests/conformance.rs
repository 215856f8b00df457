//! RFC 9112 conformance at the client edge, with exact bytes over raw TCP: what is refused
//! never reaches the backend, what is accepted arrives in one unambiguous form, and a client's
//! broken or stalled body is the client's error, not the backend's. `docs/http-conformance.md`
//! is the table of these cases.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A stalled body is cut after this (the default is 60 s).
const BODY_TIMEOUT: Duration = Duration::from_millis(300);

/// `c.tld` served by `web` (an echo backend), with a short body read timeout.
async fn setup(web: &Backend) -> TestProxy {
    proxy()
        .config(|c| {
            c.body_read_timeout = BODY_TIMEOUT;
            c.eject_after = 1;
        })
        .start(table().vhost("c.tld", vec![path("/", &[web])]).spec())
        .await
}

/// A raw client connection that reads responses framed by `Content-Length`.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// One response: status code, head text (lower-cased) and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The values of request header `name` the echo backend received.
    fn sent(&self, name: &str) -> Vec<String> {
        let values = self.json()["headers"][name].as_array().cloned();
        let values = values.unwrap_or_default().into_iter();
        values
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .collect()
    }
}

impl Raw {
    async fn open(addr: std::net::SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more, within the deadline; false at end of stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0; 4096];
        let read = tokio::time::timeout(DEADLINE, self.stream.read(&mut chunk)).await;
        let n = read.expect("no answer in time").unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next response, or `None` when the proxy closed the connection first.
    async fn answer(&mut self) -> Option<Answer> {
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).expect(&head);
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        while self.buf.len() < end + length {
            assert!(self.fill().await, "body cut short: {head}");
        }
        let body = String::from_utf8_lossy(&self.buf[end..end + length]).into_owned();
        self.buf.drain(..end + length);
        Some(Answer { status, head, body })
    }

    /// Whether the proxy closes the connection (reading and dropping anything else).
    async fn closed(&mut self) -> bool {
        while self.fill().await {}
        true
    }
}

/// Sends `bytes` on a new connection and reads the first response.
async fn exchange(proxy: &TestProxy, bytes: &[u8]) -> Answer {
    let mut raw = Raw::open(proxy.addr).await;
    raw.send(bytes).await;
    let text = String::from_utf8_lossy(bytes).into_owned();
    raw.answer()
        .await
        .unwrap_or_else(|| panic!("closed: {text}"))
}

#[tokio::test]
async fn ambiguous_or_malformed_heads_never_reach_the_backend() {
    let web = backend("web").start().await;
    let proxy = setup(&web).await;
    let cases: &[(&str, &[u8], u16)] = &[
        ("two Host lines", b"GET / HTTP/1.1\r\nHost: c.tld\r\nHost: evil.tld\r\n\r\n", 400),
        ("two equal Host lines", b"GET / HTTP/1.1\r\nHost: c.tld\r\nHost: c.tld\r\n\r\n", 400),
        ("no Host", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("absolute-form, no Host", b"GET http://c.tld/ HTTP/1.1\r\n\r\n", 400),
        ("authority-form GET", b"GET c.tld:80 HTTP/1.1\r\nHost: c.tld\r\n\r\n", 400),
        ("asterisk-form", b"OPTIONS * HTTP/1.1\r\nHost: c.tld\r\n\r\n", 400),
        ("CONNECT", b"CONNECT c.tld:443 HTTP/1.1\r\nHost: c.tld:443\r\n\r\n", 400),
        ("two spaces", b"GET  / HTTP/1.1\r\nHost: c.tld\r\n\r\n", 400),
        ("HTTP/2.0 line", b"GET / HTTP/2.0\r\nHost: c.tld\r\n\r\n", 400),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : c.tld\r\n\r\n", 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: c.tld\r\nX-A: a\r\n b\r\n\r\n", 400),
        ("bare CR", b"GET / HTTP/1.1\r\nHost: c.tld\r\nX-A: a\rb\r\n\r\n", 400),
        (
            "differing Content-Length",
            b"POST / HTTP/1.1\r\nHost: c.tld\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            400,
        ),
        (
            "Content-Length list",
            b"POST / HTTP/1.1\r\nHost: c.tld\r\nContent-Length: 2, 2\r\n\r\nab",
            400,
        ),
        ("signed Content-Length", b"POST / HTTP/1.1\r\nHost: c.tld\r\nContent-Length: +2\r\n\r\nab", 400),
        (
            "chunked not last",
            b"POST / HTTP/1.1\r\nHost: c.tld\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "unknown coding",
            b"POST / HTTP/1.1\r\nHost: c.tld\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
        (
            "chunked twice",
            b"POST / HTTP/1.1\r\nHost: c.tld\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "HTTP/1.0 with Transfer-Encoding",
            b"POST / HTTP/1.0\r\nHost: c.tld\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        ("TRACE", b"TRACE / HTTP/1.1\r\nHost: c.tld\r\n\r\n", 405),
    ];
    for (case, bytes, status) in cases {
        let answer = exchange(&proxy, bytes).await;
        assert_eq!(answer.status, *status, "{case}: {}", answer.head);
    }
    assert_eq!(web.requests(), 0, "a refused request reached the backend");
}

#[tokio::test]
async fn refused_codings_close_the_connection() {
    let web = backend("web").start().await;
    let proxy = setup(&web).await;
    for coding in ["gzip, chunked", "chunked, chunked"] {
        let mut raw = Raw::open(proxy.addr).await;
        let head = format!("POST / HTTP/1.1\r\nHost: c.tld\r\nTransfer-Encoding: {coding}\r\n\r\n");
        raw.send(head.as_bytes()).await;
        let answer = raw.answer().await.expect("an answer");
        assert!(
            answer.head.contains("connection: close"),
            "{coding}: {}",
            answer.head
        );
        assert!(raw.closed().await);
    }
    assert_eq!(web.requests(), 0);
}

#[tokio::test]
async fn accepted_heads_reach_the_backend_in_one_form() {
    let web = backend("web").start().await;
    let proxy = setup(&web).await;
    let port = proxy.addr.port();

    // RFC 9112 §3.2.3: the absolute-form target wins; `Host` is replaced by the routed host.
    let answer = exchange(
        &proxy,
        b"GET http://c.tld/x?q HTTP/1.1\r\nHost: evil.tld\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.sent("host"), [format!("c.tld:{port}")]);
    assert_eq!(answer.json()["uri"], "/x?q");

    // Bare LF line endings are accepted (§2.2) and forwarded as CRLF by hyper's writer.
    let answer = exchange(&proxy, b"GET /lf HTTP/1.1\nHost: c.tld\n\n").await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    // Headers named in `Connection` are hop-by-hop (RFC 9110 §7.6.1).
    let answer = exchange(
        &proxy,
        b"GET / HTTP/1.1\r\nHost: c.tld\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\r\n",
    )
    .await;
    assert!(answer.sent("x-secret").is_empty(), "{}", answer.body);
    assert!(answer.sent("connection").is_empty(), "{}", answer.body);

    // An h2c upgrade is not forwarded: the tunnel would bypass routing ("h2c smuggling").
    let answer = exchange(
        &proxy,
        b"GET / HTTP/1.1\r\nHost: c.tld\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.sent("upgrade").is_empty(), "{}", answer.body);
    assert!(answer.sent("http2-settings").is_empty(), "{}", answer.body);

    // Equal Content-Length lines are one length; a method is a case-sensitive token.
    let answer = exchange(
        &proxy,
        b"post / HTTP/1.1\r\nHost: c.tld\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
    )
    .await;
    assert_eq!(answer.json()["method"], "post");
    assert_eq!(answer.sent("content-length"), ["2"]);
    assert_eq!(answer.json()["body"], "ab");
}

#[tokio::test]
async fn chunked_bodies_are_decoded_and_sent_again_without_extensions_or_trailers() {
    let web = backend("web").start().await;
    let proxy = setup(&web).await;
    let answer = exchange(
        &proxy,
        b"POST / HTTP/1.1\r\nHost: c.tld\r\nTransfer-Encoding: chunked\r\n\r\n\
          3;ext=\"v\"\r\nhel\r\n2\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["body"], "hello");
    assert_eq!(answer.sent("transfer-encoding"), ["chunked"]);
}

#[tokio::test]
async fn transfer_encoding_wins_over_content_length_and_the_connection_closes() {
    let web = backend("web").start().await;
    let proxy = setup(&web).await;
    let mut raw = Raw::open(proxy.addr).await;
    // The classic smuggling shape: a length that would end the body early, and a second
    // request hidden in the chunked body's wake.
    raw.send(
        b"POST / HTTP/1.1\r\nHost: c.tld\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: c.tld\r\n\r\n",
    )
    .await;
    let answer = raw.answer().await.expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.sent("content-length").is_empty(), "{}", answer.body);
    assert!(
        raw.answer().await.is_none(),
        "the hidden request was served"
    );
    assert_eq!(web.requests(), 1);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let web = backend("web").start().await;
    let proxy = setup(&web).await;
    let mut raw = Raw::open(proxy.addr).await;
    raw.send(
        b"GET /1 HTTP/1.1\r\nHost: c.tld\r\n\r\nGET /2 HTTP/1.1\r\nHost: c.tld\r\nConnection: close\r\n\r\n",
    )
    .await;
    let first = raw.answer().await.expect("first");
    let second = raw.answer().await.expect("second");
    assert_eq!(
        (first.json()["uri"].clone(), second.json()["uri"].clone()),
        ("/1".into(), "/2".into())
    );
    assert!(raw.closed().await);
}

/// No upstream error, retry or ejection was counted for `c.tld`.
fn assert_backend_not_blamed(proxy: &TestProxy) {
    let metrics = proxy.metrics_text();
    for family in [
        "dockhand_upstream_errors_total{",
        "dockhand_retries_total{",
        "dockhand_backend_ejections_total{",
    ] {
        let blamed = metrics
            .lines()
            .any(|l| l.starts_with(family) && l.contains("c.tld"));
        assert!(!blamed, "{family} counted:\n{metrics}");
    }
}

#[tokio::test]
async fn malformed_chunked_body_is_400_and_not_the_backends_fault() {
    let web = backend("web").start().await;
    let proxy = setup(&web).await;
    let bodies: [&[u8]; 4] = [
        b"zz\r\n",
        b"fffffffffffffffffff\r\n",
        b"-1\r\n",
        b"3\r\nabcXX",
    ];
    for body in bodies {
        // PUT is idempotent: a body failure must not be taken for a reset worth retrying.
        let mut bytes =
            b"PUT / HTTP/1.1\r\nHost: c.tld\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        bytes.extend_from_slice(body);
        let mut raw = Raw::open(proxy.addr).await;
        raw.send(&bytes).await;
        let answer = raw.answer().await.expect("an answer");
        assert_eq!(answer.status, 400, "{}", String::from_utf8_lossy(body));
        assert!(raw.closed().await);
    }
    assert_backend_not_blamed(&proxy);
    // The backend is not ejected: it still serves.
    assert_eq!(get(proxy.addr, "c.tld", "/").await.status, 200);
}

#[tokio::test]
async fn stalled_body_is_408_and_not_the_backends_fault() {
    let web = backend("web").start().await;
    let proxy = setup(&web).await;
    let mut raw = Raw::open(proxy.addr).await;
    raw.send(b"POST / HTTP/1.1\r\nHost: c.tld\r\nContent-Length: 10\r\n\r\nabc")
        .await;
    let answer = raw.answer().await.expect("an answer");
    assert_eq!(answer.status, 408, "{}", answer.head);
    assert!(answer.head.contains("connection: close"), "{}", answer.head);
    assert!(raw.closed().await);
    assert_backend_not_blamed(&proxy);
    assert_eq!(get(proxy.addr, "c.tld", "/").await.status, 200);
}

#[tokio::test]
async fn body_read_timeout_bounds_each_gap_not_the_whole_body() {
    let web = backend("web").start().await;
    let proxy = setup(&web).await;
    let mut raw = Raw::open(proxy.addr).await;
    raw.send(b"POST / HTTP/1.1\r\nHost: c.tld\r\nContent-Length: 6\r\n\r\n")
        .await;
    // Six bytes, a third of the timeout apart: twice the timeout in all.
    for byte in b"abcdef".chunks(1) {
        tokio::time::sleep(BODY_TIMEOUT / 3).await;
        raw.send(byte).await;
    }
    let answer = raw.answer().await.expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["body"], "abcdef");
}

#[tokio::test]
async fn http2_host_must_agree_with_authority() {
    let web = backend("web").start().await;
    let proxy = setup(&web).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for (host, status) in [("evil.tld", 400), ("C.tld", 200)] {
        let req = Request::get("http://c.tld/")
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let reply = collect(sender.send_request(req).await.unwrap()).await;
        assert_eq!(reply.status, status, "{host}: {}", reply.body);
    }
    assert_eq!(web.requests(), 1);
}

#[tokio::test]
async fn a_stalled_upload_is_not_taken_for_a_slow_backend() {
    let web = backend("web").start().await;
    // The backend's clock would run out first if it ran during the upload.
    let proxy = proxy()
        .config(|c| {
            c.body_read_timeout = Duration::from_millis(600);
            c.response_timeout = Duration::from_millis(200);
        })
        .start(table().vhost("c.tld", vec![path("/", &[&web])]).spec())
        .await;
    let mut raw = Raw::open(proxy.addr).await;
    raw.send(b"POST / HTTP/1.1\r\nHost: c.tld\r\nContent-Length: 4\r\n\r\nab")
        .await;
    let answer = raw.answer().await.expect("an answer");
    assert_eq!(answer.status, 408, "{}", answer.head);
    assert_backend_not_blamed(&proxy);

    // A slow but steady upload, longer in all than the response timeout, is answered.
    let mut raw = Raw::open(proxy.addr).await;
    raw.send(b"POST / HTTP/1.1\r\nHost: c.tld\r\nContent-Length: 4\r\n\r\n")
        .await;
    for byte in b"abcd".chunks(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        raw.send(byte).await;
    }
    let answer = raw.answer().await.expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["body"], "abcd");
}
