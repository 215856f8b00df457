//! Backend connections are kept alive and reused, within the route's idle limit (none by
//! default) and the idle timeout, and never reused half-read.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use dockhand_proxy::{Keepalive, Proto};
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::faulty::closing_idle;
use support::*;

/// A plain backend at `web.tld` and a TLS one at `s.tld`, behind a proxy.
async fn plain_and_tls() -> (Backend, Backend, TestProxy) {
    let web = backend("web").start().await;
    let secure = backend("secure").https().start().await;
    let proxy = proxy()
        .start(
            table()
                .vhost("web.tld", vec![path("/", &[&web])])
                .vhost("s.tld", vec![path("/", &[&secure]).proto(Proto::Https)])
                .spec(),
        )
        .await;
    (web, secure, proxy)
}

#[tokio::test]
async fn sequential_requests_share_one_backend_connection() {
    let (web, secure, proxy) = plain_and_tls().await;
    for _ in 0..20 {
        assert_eq!(get(proxy.addr, "web.tld", "/").await.status, 200);
        assert_eq!(get(proxy.addr, "s.tld", "/").await.status, 200);
    }
    assert_eq!(web.connections(), 1);
    assert_eq!(secure.connections(), 1, "TLS connections are pooled too");
}

#[tokio::test]
async fn bodies_of_every_framing_give_their_connection_back() {
    let chunked = backend("chunked").streaming().start().await;
    chunked.release();
    let web = backend("web").start().await;
    let proxy = proxy()
        .start(
            table()
                .vhost("chunked.tld", vec![path("/", &[&chunked])])
                .vhost("web.tld", vec![path("/", &[&web])])
                .spec(),
        )
        .await;
    for _ in 0..5 {
        let reply = get(proxy.addr, "chunked.tld", "/").await;
        assert_eq!(reply.body, "chunk0\nchunk1\nchunk2\n");
        // HEAD: a length but no body, so the response ends with its head.
        let head = Request::head("/")
            .header("host", "web.tld")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let reply = request(proxy.addr, head).await;
        assert_eq!(reply.status, 200);
        assert!(reply.body.is_empty());
        // A request body, sent in full before the connection is idle again.
        let post = Request::post("/")
            .header("host", "web.tld")
            .body(Full::new(Bytes::from("x".repeat(100_000))))
            .unwrap();
        assert_eq!(
            request(proxy.addr, post).await.json()["body"]
                .as_str()
                .map(str::len),
            Some(100_000)
        );
    }
    assert_eq!(chunked.connections(), 1, "chunked responses");
    assert_eq!(web.connections(), 1, "HEAD responses and request bodies");
}

#[tokio::test]
async fn the_keepalive_label_caps_idle_connections() {
    let capped = backend("capped").held().start().await;
    let auto = backend("auto").held().start().await;
    let proxy = proxy()
        .start(
            table()
                .vhost(
                    "capped.tld",
                    vec![path("/", &[&capped]).keepalive(Keepalive::Max(1))],
                )
                .vhost("auto.tld", vec![path("/", &[&auto])])
                .spec(),
        )
        .await;
    let requests: Vec<_> = ["capped.tld", "auto.tld"]
        .iter()
        .flat_map(|host| (0..4).map(move |_| tokio::spawn(get(proxy.addr, host, "/"))))
        .collect();
    assert_eventually!(
        capped.requests() == 4 && auto.requests() == 4,
        "four requests each should be waiting at the backends"
    );
    capped.release();
    auto.release();
    for request in requests {
        assert_eq!(request.await.unwrap().status, 200);
    }
    // The least recently used idle connections beyond the cap are closed.
    assert_eventually!(capped.open() == 1, "{} left open", capped.open());
    assert_eq!(auto.open(), 4, "no default limit: all four are kept");
    assert_eq!(auto.connections(), 4);
}

/// The former default kept 64 idle connections per backend: with more requests in flight than
/// that, every response beyond it closed its connection and the next request opened one.
#[tokio::test]
async fn no_connection_churn_beyond_the_old_idle_limit() {
    const CLIENTS: usize = 100;
    let web = backend("web").held().start().await;
    let proxy = proxy()
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let held: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(get(proxy.addr, "web.tld", "/")))
        .collect();
    assert_eventually!(
        web.requests() == CLIENTS,
        "{} requests reached the backend",
        web.requests()
    );
    web.release();
    for request in held {
        assert_eq!(request.await.unwrap().status, 200);
    }
    assert_eq!(web.open(), CLIENTS, "every freed connection is kept idle");
    // Never more than CLIENTS in flight again, so no connection needs opening.
    let addr = proxy.addr;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..5 {
                    assert_eq!(get(addr, "web.tld", "/").await.status, 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(
        web.connections(),
        CLIENTS,
        "later requests reuse the first ones'"
    );
    let opened = format!("dockhand_upstream_connections_opened_total{{proto=\"http\"}} {CLIENTS}");
    assert!(
        proxy.metrics_text().contains(&opened),
        "{}",
        proxy.metrics_text()
    );
}

const PARKED: &str = "dockhand_upstream_parked_connections";

/// A connection idle in the pool for a while is parked (hyper's connection and buffers freed,
/// the stream kept); the next request makes a new hyper connection over the same stream.
#[tokio::test]
async fn an_idle_pooled_connection_is_parked_then_reused() {
    let (web, secure, proxy) = plain_and_tls().await;
    assert_eq!(get(proxy.addr, "web.tld", "/").await.status, 200);
    assert_eq!(get(proxy.addr, "s.tld", "/").await.status, 200);
    assert_eventually!(
        proxy.metric(PARKED) == 2,
        "{} of the two idle connections parked",
        proxy.metric(PARKED)
    );
    for _ in 0..3 {
        assert_eq!(
            get(proxy.addr, "web.tld", "/").await.json()["method"],
            "GET"
        );
        assert_eq!(get(proxy.addr, "s.tld", "/").await.status, 200);
    }
    assert_eq!(proxy.metric(PARKED), 0, "taken again");
    assert_eq!(web.connections(), 1, "the parked connection was reused");
    assert_eq!(
        secure.connections(),
        1,
        "the parked TLS connection was reused"
    );
}

/// A parked connection the backend closed meanwhile is not reused: the request goes out on a
/// new connection, and nothing is retried or lost.
#[tokio::test]
async fn a_parked_connection_the_backend_closed_is_replaced() {
    let (closing, close, closed) = closing_idle("closing").await;
    let proxy = proxy()
        .start(
            table()
                .vhost(
                    "c.tld",
                    vec![path("/", &[]).backend_at("closing", Some(closing.addr))],
                )
                .spec(),
        )
        .await;
    assert_eq!(get(proxy.addr, "c.tld", "/").await.backend(), "closing");
    assert_eventually!(
        proxy.metric(PARKED) == 1,
        "the idle connection was not parked"
    );
    close.send_replace(true);
    assert_eventually!(
        closed.load(Ordering::SeqCst) == 1,
        "the backend kept it open"
    );
    close.send_replace(false);
    assert_eq!(get(proxy.addr, "c.tld", "/").await.backend(), "closing");
    assert_eq!(closing.connections(), 2);
    assert_eq!(
        proxy.metric(r#"dockhand_retries_total{reason="reset",vhost="c.tld"}"#),
        0,
        "the closed connection was tried"
    );
    assert_eq!(proxy.metric(PARKED), 0);
}

#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .config(|c| c.pool_idle_timeout = Duration::from_millis(100))
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    assert_eq!(get(proxy.addr, "web.tld", "/").await.status, 200);
    // (That it was pooled at all is `sequential_requests_share_one_backend_connection`'s.)
    assert_eventually!(web.open() == 0, "the idle connection was never closed");
    assert_eq!(get(proxy.addr, "web.tld", "/").await.status, 200);
    assert_eq!(web.connections(), 2);
}

#[tokio::test]
async fn a_client_leaving_mid_body_closes_its_backend_connection() {
    let stream = backend("stream").streaming().start().await;
    let proxy = proxy()
        .start(table().vhost("s.tld", vec![path("/", &[&stream])]).spec())
        .await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: s.tld\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0; 1024];
    let n = client.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &head[..n]);
    drop(client);
    assert_eventually!(stream.open() == 0, "the backend connection stayed open");
    stream.release();
    let reply = get(proxy.addr, "s.tld", "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "chunk0\nchunk1\nchunk2\n");
    assert_eq!(
        stream.connections(),
        2,
        "the half-read connection was reused"
    );
}
