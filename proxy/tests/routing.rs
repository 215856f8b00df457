//! Requests through the real listener reach the right backend with the right head.

mod support;

use bytes::Bytes;
use dockhand_proxy::{Balance, Keepalive, Proto};
use http::Request;
use http_body_util::Full;
use support::client::h2c_get;
use support::*;

#[tokio::test]
async fn hosts_route_by_exact_wildcard_and_regex_names() {
    let exact = backend("exact").start().await;
    let wild = backend("wild").start().await;
    let regex = backend("regex").start().await;
    let proxy = proxy()
        .start(
            table()
                .vhost("www.example.tld", vec![path("/", &[&exact])])
                .vhost("*.example.tld", vec![path("/", &[&wild])])
                .vhost("~^api[0-9]+\\.", vec![path("/", &[&regex])])
                .spec(),
        )
        .await;
    assert_eq!(
        get(proxy.addr, "www.example.tld", "/").await.backend(),
        "exact"
    );
    assert_eq!(
        get(proxy.addr, "WWW.Example.tld:80", "/").await.backend(),
        "exact"
    );
    assert_eq!(
        get(proxy.addr, "a.b.example.tld", "/").await.backend(),
        "wild"
    );
    assert_eq!(
        get(proxy.addr, "api42.other.tld", "/").await.backend(),
        "regex"
    );
    assert_eq!(get(proxy.addr, "example.tld", "/").await.status, 503);
}

#[tokio::test]
async fn paths_pick_the_longest_prefix_and_rewrite_with_dest() {
    let root = backend("root").start().await;
    let api = backend("api").start().await;
    let app = backend("app").start().await;
    let proxy = proxy()
        .start(
            table()
                .vhost(
                    "site.tld",
                    vec![
                        path("/", &[&root]),
                        path("/api/", &[&api]),
                        path("/app1/", &[&app]).dest("/"),
                    ],
                )
                .spec(),
        )
        .await;
    let reply = get(proxy.addr, "site.tld", "/api/v1/users?x=1").await;
    assert_eq!(
        (reply.backend(), reply.uri()),
        ("api".into(), "/api/v1/users?x=1".into())
    );
    let reply = get(proxy.addr, "site.tld", "/app1/foo?q=2").await;
    assert_eq!(
        (reply.backend(), reply.uri()),
        ("app".into(), "/foo?q=2".into())
    );
    assert_eq!(reply.sent("x-original-uri"), ["/app1/foo?q=2"]);
    assert_eq!(
        get(proxy.addr, "site.tld", "/other").await.backend(),
        "root"
    );
    // Dot segments cannot dodge a location.
    let reply = get(proxy.addr, "site.tld", "/x/../api/y").await;
    assert_eq!(reply.backend(), "api");
}

#[tokio::test]
async fn missing_trailing_slash_redirects_with_port_and_query() {
    let app = backend("app").start().await;
    let proxy = proxy()
        .start(
            table()
                .vhost("site.tld", vec![path("/foo/", &[&app])])
                .spec(),
        )
        .await;
    let reply = get(proxy.addr, "site.tld", "/foo?a=1").await;
    assert_eq!(reply.status, 301);
    let expected = format!("http://site.tld:{}/foo/?a=1", proxy.addr.port());
    assert_eq!(reply.headers["location"], expected.as_str());
    assert_eq!(app.requests(), 0);
}

#[tokio::test]
async fn default_host_serves_unknown_hosts() {
    let web1 = backend("web1").start().await;
    let proxy = proxy()
        .start(
            table()
                .vhost("web1.tld", vec![path("/", &[&web1])])
                .default_host("web1.tld")
                .spec(),
        )
        .await;
    let reply = get(proxy.addr, "unknown.tld", "/port").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend(), "web1");
}

#[tokio::test]
async fn round_robin_spreads_requests_over_three_backends() {
    let backends = [
        backend("b0").start().await,
        backend("b1").start().await,
        backend("b2").start().await,
    ];
    let refs: Vec<&Backend> = backends.iter().collect();
    let proxy = proxy()
        .start(table().vhost("rr.tld", vec![path("/", &refs)]).spec())
        .await;
    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(get(proxy.addr, "rr.tld", "/").await.backend());
    }
    assert_eq!(order, ["b0", "b1", "b2", "b0", "b1", "b2"]);
}

#[tokio::test]
async fn client_ip_affinity_sticks_to_one_backend() {
    let b0 = backend("b0").start().await;
    let b1 = backend("b1").start().await;
    let proxy = proxy()
        .start(
            table()
                .vhost(
                    "s.tld",
                    vec![path("/", &[&b0, &b1]).balance(Balance::ClientIp)],
                )
                .spec(),
        )
        .await;
    let first = get(proxy.addr, "s.tld", "/").await.backend();
    for _ in 0..5 {
        assert_eq!(get(proxy.addr, "s.tld", "/").await.backend(), first);
    }
}

#[tokio::test]
async fn forwarded_headers_follow_nginx_proxy_when_trusted() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let port = proxy.addr.port().to_string();
    let req = Request::get("/a?b=c")
        .header("host", format!("web.tld:{port}"))
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .header("proxy", "http://evil")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = request(proxy.addr, req).await;
    assert_eq!(reply.sent("host"), [format!("web.tld:{port}")]);
    assert_eq!(reply.sent("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(reply.sent("x-forwarded-for"), ["1.2.3.4, 127.0.0.1"]);
    assert_eq!(reply.sent("x-forwarded-proto"), ["https"]);
    assert_eq!(reply.sent("x-forwarded-ssl"), ["on"]);
    assert_eq!(reply.sent("x-forwarded-host"), ["web.tld"]);
    assert_eq!(reply.sent("x-forwarded-port"), [port]);
    assert_eq!(reply.sent("x-original-uri"), ["/a?b=c"]);
    for gone in ["proxy", "x-hop", "connection"] {
        assert!(reply.sent(gone).is_empty(), "{gone} was forwarded");
    }
}

#[tokio::test]
async fn forwarded_headers_are_replaced_when_untrusted() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .config(|c| c.trust_downstream_proxy = false)
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let req = Request::get("/")
        .header("host", "web.tld")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.tld")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = request(proxy.addr, req).await;
    assert_eq!(reply.sent("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(reply.sent("x-forwarded-proto"), ["http"]);
    assert_eq!(reply.sent("x-forwarded-ssl"), ["off"]);
    assert_eq!(reply.sent("x-forwarded-host"), ["web.tld"]);
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let reply = h2c_get(proxy.addr, "web.tld", "/h2?x=1").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.uri(), "/h2?x=1");
    assert_eq!(reply.json()["version"], "HTTP/1.1");
}

#[tokio::test]
async fn h2c_backends_get_http2() {
    let grpc = backend("grpc").start().await;
    let proxy = proxy()
        .start(
            table()
                .vhost("g.tld", vec![path("/", &[&grpc]).proto(Proto::H2c)])
                .spec(),
        )
        .await;
    let reply = get(proxy.addr, "g.tld", "/svc/Method").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["version"], "HTTP/2.0");
    // HTTP/2 carries the backend address as `:authority`; the virtual host travels in `Host`.
    assert_eq!(reply.uri(), format!("http://{}/svc/Method", grpc.addr));
    assert_eq!(reply.sent("host"), [format!("g.tld:{}", proxy.addr.port())]);
}

#[tokio::test]
async fn keepalive_disabled_sends_connection_close_upstream() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .start(
            table()
                .vhost(
                    "closed.tld",
                    vec![path("/", &[&web]).keepalive(Keepalive::Disabled)],
                )
                .vhost("pooled.tld", vec![path("/", &[&web])])
                .spec(),
        )
        .await;
    assert_eq!(
        get(proxy.addr, "closed.tld", "/").await.sent("connection"),
        ["close"]
    );
    assert!(get(proxy.addr, "pooled.tld", "/")
        .await
        .sent("connection")
        .is_empty());
}

#[tokio::test]
async fn routes_api_and_metrics_reflect_traffic() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    assert_eq!(get(proxy.addr, "web.tld", "/").await.status, 200);
    assert_eq!(get(proxy.addr, "nope.tld", "/").await.status, 503);
    let routes = proxy.routes();
    assert_eq!(routes["vhosts"][0]["host"], "web.tld");
    assert_eq!(
        routes["vhosts"][0]["paths"][0]["backends"][0]["addr"],
        web.addr.to_string()
    );
    let text = proxy.metrics_text();
    // Metrics are recorded when the response body ends, just after the client saw it.
    assert_eventually!(
        proxy
            .metrics_text()
            .contains(r#"dockhand_requests_total{class="2xx",method="GET",vhost="web.tld"} 1"#),
        "2xx not counted: {text}"
    );
    assert_eventually!(
        proxy
            .metrics_text()
            .contains(r#"dockhand_requests_total{class="5xx",method="GET",vhost="_unknown"} 1"#),
        "503 not counted"
    );
    assert!(
        text.contains(r#"dockhand_backends{vhost="web.tld"} 1"#),
        "{text}"
    );
}
