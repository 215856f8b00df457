//! Idempotent requests whose connection broke before any answer are retried once elsewhere;
//! others are not.

mod support;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use support::faulty::{one_shot, resetting, Faulty};
use support::*;

/// One vhost per name, each routing `/` to the resetting backend first, then to `good`.
async fn resetting_first(names: &[&str]) -> (Faulty, Backend, TestProxy) {
    let reset = resetting().await;
    let good = backend("good").start().await;
    let mut spec = table();
    for name in names {
        spec = spec.vhost(
            name,
            vec![path("/", &[])
                .backend_at("reset", Some(reset.addr))
                .backend_at("good", Some(good.addr))],
        );
    }
    let proxy = proxy().start(spec.spec()).await;
    (reset, good, proxy)
}

fn empty(method: Method, host: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("/")
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The value of `dockhand_retries_total` for `host` and `reason` ("0" when absent).
fn retries(proxy: &TestProxy, host: &str, reason: &str) -> String {
    let series = format!(r#"dockhand_retries_total{{reason="{reason}",vhost="{host}"}} "#);
    proxy
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&series).map(str::to_owned))
        .unwrap_or_else(|| "0".to_owned())
}

#[tokio::test]
async fn get_reset_before_answer_is_retried_on_the_other_backend() {
    let (reset, good, proxy) = resetting_first(&["s.tld"]).await;
    let reply = get(proxy.addr, "s.tld", "/").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.backend(), "good");
    assert_eq!(reset.connections(), 1);
    assert_eq!(good.requests(), 1);
    assert_eventually!(
        retries(&proxy, "s.tld", "reset") == "1",
        "reset retry not counted"
    );
    assert_eq!(retries(&proxy, "s.tld", "connect"), "0");
}

#[tokio::test]
async fn head_put_delete_and_options_without_body_are_retried() {
    let hosts = ["head.tld", "put.tld", "delete.tld", "options.tld"];
    let methods = [Method::HEAD, Method::PUT, Method::DELETE, Method::OPTIONS];
    let (reset, good, proxy) = resetting_first(&hosts).await;
    for (host, method) in hosts.iter().zip(methods) {
        let reply = request(proxy.addr, empty(method.clone(), host)).await;
        assert_eq!(reply.status, 200, "{method}: {}", reply.body);
        assert_eventually!(
            retries(&proxy, host, "reset") == "1",
            "{method} retry not counted"
        );
    }
    assert_eq!(reset.connections(), 4);
    assert_eq!(good.requests(), 4);
}

#[tokio::test]
async fn post_with_a_body_is_not_retried() {
    let (reset, good, proxy) = resetting_first(&["s.tld"]).await;
    let req = Request::post("/submit")
        .header("host", "s.tld")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let reply = request(proxy.addr, req).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reset.connections(), 1);
    assert_eq!(good.requests(), 0);
    assert_eventually!(
        proxy
            .metrics_text()
            .contains(r#"dockhand_upstream_errors_total{kind="upstream_reset",vhost="s.tld"} 1"#),
        "reset not counted"
    );
    assert_eq!(retries(&proxy, "s.tld", "reset"), "0");
}

#[tokio::test]
async fn upgrades_are_not_retried() {
    let (reset, good, proxy) = resetting_first(&["ws.tld"]).await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let refused = tokio_tungstenite::client_async("ws://ws.tld/chat", stream).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 502);
        }
        other => panic!("expected a 502, got {other:?}"),
    }
    assert_eq!(reset.connections(), 1);
    assert_eq!(good.requests(), 0);
}

#[tokio::test]
async fn a_second_reset_is_final() {
    let (a, b) = (resetting().await, resetting().await);
    let proxy = proxy()
        .start(
            table()
                .vhost(
                    "s.tld",
                    vec![path("/", &[])
                        .backend_at("a", Some(a.addr))
                        .backend_at("b", Some(b.addr))],
                )
                .spec(),
        )
        .await;
    assert_eq!(get(proxy.addr, "s.tld", "/").await.status, 502);
    assert_eq!(
        a.connections() + b.connections(),
        2,
        "each backend tried once"
    );
}

#[tokio::test]
async fn replicas_resetting_together_still_leave_the_good_one() {
    // Two of three replicas stop at once (compose scale-down): a retry may hit the other dying
    // one, so resets move on through the route, each backend at most once.
    let (a, b) = (resetting().await, resetting().await);
    let good = backend("good").start().await;
    let proxy = proxy()
        .start(
            table()
                .vhost(
                    "s.tld",
                    vec![path("/", &[&good])
                        .backend_at("a", Some(a.addr))
                        .backend_at("b", Some(b.addr))],
                )
                .spec(),
        )
        .await;
    for _ in 0..12 {
        assert_eq!(get(proxy.addr, "s.tld", "/").await.status, 200);
    }
    assert_eq!(good.requests(), 12);
}

/// A proxy routing `s.tld` to a backend that closes each connection when it is reused.
async fn one_shot_behind_proxy() -> (Faulty, TestProxy) {
    let backend = one_shot("oneshot").await;
    let proxy = proxy()
        .start(
            table()
                .vhost(
                    "s.tld",
                    vec![path("/", &[]).backend_at("oneshot", Some(backend.addr))],
                )
                .spec(),
        )
        .await;
    (backend, proxy)
}

#[tokio::test]
async fn pooled_connections_closed_by_the_backend_fail_no_request() {
    let (backend, proxy) = one_shot_behind_proxy().await;
    for i in 0..200 {
        let reply = get(proxy.addr, "s.tld", "/").await;
        assert_eq!(reply.status, 200, "request {i}: {}", reply.body);
        assert_eq!(reply.backend(), "oneshot");
    }
    // Pooled connections were reused, found dead, and the requests retried.
    assert!(backend.connections() >= 200);
    let retried: u64 = retries(&proxy, "s.tld", "reset").parse().unwrap();
    assert!(retried >= 1, "no pooled connection was reused");
}

#[tokio::test]
async fn concurrent_clients_of_a_backend_closing_reused_connections_all_get_answers() {
    let (_backend, proxy) = one_shot_behind_proxy().await;
    // Eight clients at once, so that pooled connections are taken and given back concurrently
    // while the backend closes each one as it is reused.
    let clients: Vec<_> = (0..8)
        .map(|client| {
            tokio::spawn(async move {
                for i in 0..25 {
                    let reply = get(proxy.addr, "s.tld", "/").await;
                    assert_eq!(
                        reply.status, 200,
                        "client {client}, request {i}: {}",
                        reply.body
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let retried: u64 = retries(&proxy, "s.tld", "reset").parse().unwrap();
    assert!(retried >= 1, "no pooled connection was reused");
}
