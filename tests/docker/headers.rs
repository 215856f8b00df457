//! What the backend sees, and what the operator sees: headers, upgrades, metrics.

use dockhand_testkit::assert_eventually;
use dockhand_testkit::http::{self, Request};

use crate::support::*;

#[test]
fn forwarded_headers_as_nginx_proxy_sends_them() {
    require_docker!();
    let host = unique("headers");
    let trusting = dockhand().start();
    let strict = dockhand().env("TRUST_DOWNSTREAM_PROXY", "false").start();
    let _web = backend().vhost(&host).start();
    trusting.wait_status(&host, "/", 200);
    strict.wait_status(&host, "/", 200);

    let send = |proxy: &Dockhand| {
        Request::get(proxy.http, "/p?q=1")
            .host(&format!("{host}:8080"))
            .header("X-Forwarded-For", "203.0.113.9")
            .header("X-Forwarded-Proto", "https")
            .header("Proxy", "http://evil.example")
            .header("Connection", "keep-alive, X-Secret")
            .header("X-Secret", "hop-by-hop")
            .send()
            .expect("request")
            .echo()
            .expect("echo")
    };
    let seen = send(&trusting);
    // nginx-proxy sends `$host:$server_port` (the client's port is dropped) off ports 80/443.
    let expected_host = format!("{host}:{}", trusting.http.port());
    assert_eq!(seen.header("host"), Some(expected_host.as_str()));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-host"), Some(host.as_str()));
    assert_eq!(
        seen.header("x-forwarded-port"),
        Some(trusting.http.port().to_string().as_str())
    );
    assert_eq!(seen.header("x-forwarded-ssl"), Some("on"));
    assert_eq!(seen.header("x-original-uri"), Some("/p?q=1"));
    assert_eq!(seen.header("proxy"), None);
    assert_eq!(seen.header("x-secret"), None);

    let seen = send(&strict);
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-ssl"), Some("off"));
}

#[test]
fn websockets_tunnel_through() {
    require_docker!();
    let host = unique("ws");
    let proxy = dockhand().start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 200);
    let answer = http::websocket_roundtrip(proxy.http, &host, "/ws", "hello through dockhand");
    assert_eq!(answer.expect("websocket echo"), "hello through dockhand");
}

#[test]
fn malformed_requests_get_4xx() {
    require_docker!();
    let proxy = dockhand().start();
    let raw = |bytes: &[u8]| -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(proxy.http).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(bytes).expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    assert!(
        raw(b"NOT HTTP AT ALL\r\n\r\n").starts_with("HTTP/1.1 400"),
        "garbage gets 400"
    );
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "x".repeat(100_000)
    );
    assert!(
        raw(huge.as_bytes()).starts_with("HTTP/1.1 431"),
        "oversized headers get 431"
    );
}

#[test]
fn metrics_and_admin_endpoints_report_routes_and_traffic() {
    require_docker!();
    let host = unique("metrics");
    let proxy = dockhand().start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 200);
    for _ in 0..3 {
        assert_eq!(proxy.status(&host, "/"), 200);
    }
    assert_eq!(proxy.status(&unique("nobody"), "/"), 503);
    // The container can be routed from its network `connect` event (it already runs when
    // inspected), before its `start` event is counted.
    let start_event = "dockhand_docker_events_total{action=\"start\",type=\"container\"}";
    assert_eventually!(
        proxy.metrics().lines().any(|l| l.starts_with(start_event)),
        std::time::Duration::from_secs(10)
    );

    let metrics = proxy.metrics();
    let has = |needle: &str| metrics.lines().any(|l| l.starts_with(needle));
    assert!(
        has(&format!(
            "dockhand_requests_total{{class=\"2xx\",method=\"GET\",vhost=\"{host}\"}}"
        )),
        "{metrics}"
    );
    assert!(has(
        "dockhand_requests_total{class=\"5xx\",method=\"GET\",vhost=\"_unknown\"}"
    ));
    assert!(has(&format!(
        "dockhand_request_duration_seconds_count{{vhost=\"{host}\"}}"
    )));
    assert!(has(&format!("dockhand_backends{{vhost=\"{host}\"}} 1")));
    assert!(has("dockhand_docker_up 1"));
    assert!(has("dockhand_route_table_swaps_total"));
    assert!(has("dockhand_route_table_generation"));
    assert!(has("dockhand_upstream_errors_total") || !metrics.contains("upstream_errors"));

    assert_eq!(
        proxy.admin_get("/healthz").map(|r| r.status.as_u16()),
        Some(200)
    );
    let ready = proxy.admin_get("/readyz").expect("readyz");
    assert_eq!(ready.status, 200);
    assert!(ready.text().contains("docker engine: up"));
    let dashboard = proxy.admin_get("/").expect("dashboard");
    assert!(dashboard.text().contains("/api/routes"));
    // The admin API is never on the public port.
    assert_eq!(proxy.status("admin", "/metrics"), 503);
    assert_eventually!(super::lifecycle::backends_of(&proxy, &host) == 1);
}

#[test]
fn network_access_internal_admits_private_clients() {
    require_docker!();
    let host = unique("internal");
    let proxy = dockhand().start();
    let _admin = backend()
        .vhost(&host)
        .env("NETWORK_ACCESS", "internal")
        .start();
    // The test client is on loopback, an internal address. (A public client cannot be made
    // here; the proxy crate's tests show it gets 403.)
    proxy.wait_status(&host, "/", 200);
    let routes = proxy.routes();
    let vhost = routes["table"]["vhosts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["host"] == host.as_str());
    assert_eq!(
        vhost.expect("listed")["paths"][0]["network_access"],
        "internal"
    );
}
