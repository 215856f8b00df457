//! Every failure maps to the nginx-proxy status, and connect failures fail over.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::backend::closed_port;
use support::*;

#[tokio::test]
async fn unknown_host_is_503_with_nginx_like_page() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let reply = get(proxy.addr, "other.tld", "/").await;
    assert_eq!(reply.status, 503);
    assert!(
        reply
            .body
            .contains("<title>503 Service Temporarily Unavailable</title>"),
        "{}",
        reply.body
    );
    assert_eq!(web.requests(), 0);
}

#[tokio::test]
async fn known_host_without_reachable_backend_is_502() {
    let proxy = proxy()
        .start(
            table()
                .vhost("none.tld", vec![path("/", &[])])
                .vhost(
                    "offnet.tld",
                    vec![path("/", &[]).backend_at("offnet", None)],
                )
                .spec(),
        )
        .await;
    assert_eq!(get(proxy.addr, "none.tld", "/").await.status, 502);
    assert_eq!(get(proxy.addr, "offnet.tld", "/").await.status, 502);
    assert_eventually!(
        proxy
            .metrics_text()
            .contains(r#"dockhand_upstream_errors_total{kind="no_backend",vhost="offnet.tld"} 1"#),
        "no_backend not counted"
    );
}

#[tokio::test]
async fn no_matching_path_is_404() {
    let api = backend("api").start().await;
    let proxy = proxy()
        .start(table().vhost("s.tld", vec![path("/api/", &[&api])]).spec())
        .await;
    assert_eq!(get(proxy.addr, "s.tld", "/other").await.status, 404);
}

#[tokio::test]
async fn backend_that_never_answers_is_504() {
    let slow = backend("slow").hanging().start().await;
    let proxy = proxy()
        .config(|c| c.response_timeout = Duration::from_millis(200))
        .start(table().vhost("slow.tld", vec![path("/", &[&slow])]).spec())
        .await;
    let reply = get(proxy.addr, "slow.tld", "/").await;
    assert_eq!(reply.status, 504);
    assert_eq!(slow.requests(), 1);
}

#[tokio::test]
async fn refused_connection_is_retried_on_the_next_backend() {
    let good = backend("good").start().await;
    let refused = closed_port().await;
    let proxy = proxy()
        .start(
            table()
                .vhost(
                    "s.tld",
                    vec![path("/", &[])
                        .backend_at("dead", Some(refused))
                        .backend_at("good", Some(good.addr))],
                )
                .spec(),
        )
        .await;
    // Round robin starts at the dead backend; a POST body must survive the failover.
    let req = Request::post("/submit")
        .header("host", "s.tld")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let reply = request(proxy.addr, req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend(), "good");
    assert_eq!(reply.json()["body"], "payload");
    assert_eventually!(
        proxy
            .metrics_text()
            .contains(r#"dockhand_upstream_errors_total{kind="connect_refused",vhost="s.tld"} 1"#),
        "refusal not counted"
    );
}

#[tokio::test]
async fn every_backend_refusing_is_502() {
    let (a, b) = (closed_port().await, closed_port().await);
    let proxy = proxy()
        .start(
            table()
                .vhost(
                    "s.tld",
                    vec![path("/", &[])
                        .backend_at("a", Some(a))
                        .backend_at("b", Some(b))],
                )
                .spec(),
        )
        .await;
    let reply = get(proxy.addr, "s.tld", "/").await;
    assert_eq!(reply.status, 502);
    assert!(reply.body.contains("502 Bad Gateway"));
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let reply = raw(proxy.addr, b"GARBAGE\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let reply = raw(proxy.addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 400"), "missing Host: {reply}");
    let reply = raw(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "bad Host: {reply}");
    let reply = raw(
        proxy.addr,
        b"GET /../x HTTP/1.1\r\nHost: web.tld\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        reply.starts_with("HTTP/1.1 400"),
        "path above root: {reply}"
    );
    assert_eq!(web.requests(), 0);
}

#[tokio::test]
async fn oversized_header_block_is_431() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .config(|c| c.max_header_size = 16 * 1024)
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let big = "a".repeat(32 * 1024);
    let head = format!("GET / HTTP/1.1\r\nHost: web.tld\r\nX-Big: {big}\r\n\r\n");
    let reply = raw(proxy.addr, head.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert_eq!(web.requests(), 0);
}

#[tokio::test]
async fn trace_is_refused_with_405() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let req = Request::builder()
        .method("TRACE")
        .uri("/")
        .header("host", "web.tld")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(request(proxy.addr, req).await.status, 405);
}
