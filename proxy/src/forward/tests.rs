use super::*;

struct Ctx {
    peer: HeaderValue,
    port: HeaderValue,
    uri: HeaderValue,
}

fn ctx() -> Ctx {
    Ctx {
        peer: HeaderValue::from_static("10.1.2.3"),
        port: HeaderValue::from_static("80"),
        uri: HeaderValue::from_static("/a?b=c"),
    }
}

fn fwd(c: &Ctx) -> Forwarding<'_> {
    Forwarding {
        peer_ip: &c.peer,
        host: "web.tld",
        server_port: 80,
        server_port_value: &c.port,
        proxied_port: None,
        https: false,
        trust_downstream: true,
        original_uri: &c.uri,
        allow_upgrade: true,
        close: false,
        h2: false,
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

fn get<'a>(map: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    map.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[test]
fn plain_request_gets_every_forwarded_header() {
    let c = ctx();
    let mut h = headers(&[("host", "Web.TLD"), ("accept", "*/*")]);
    assert_eq!(rewrite_request(&mut h, &fwd(&c)), None);
    assert_eq!(get(&h, "host"), ["web.tld"]);
    assert_eq!(get(&h, "x-real-ip"), ["10.1.2.3"]);
    assert_eq!(get(&h, "x-forwarded-for"), ["10.1.2.3"]);
    assert_eq!(get(&h, "x-forwarded-host"), ["web.tld"]);
    assert_eq!(get(&h, "x-forwarded-proto"), ["http"]);
    assert_eq!(get(&h, "x-forwarded-ssl"), ["off"]);
    assert_eq!(get(&h, "x-forwarded-port"), ["80"]);
    assert_eq!(get(&h, "x-original-uri"), ["/a?b=c"]);
    assert_eq!(get(&h, "accept"), ["*/*"]);
    assert!(h.get("connection").is_none());
}

#[test]
fn host_carries_the_listener_port_unless_80_or_443() {
    let mut c = ctx();
    c.port = HeaderValue::from_static("8080");
    let mut f = fwd(&c);
    f.server_port = 8080;
    let mut h = headers(&[("host", "web.tld:8080")]);
    rewrite_request(&mut h, &f);
    assert_eq!(get(&h, "host"), ["web.tld:8080"]);
    assert_eq!(get(&h, "x-forwarded-host"), ["web.tld"]);
    assert_eq!(get(&h, "x-forwarded-port"), ["8080"]);
    let mut h = headers(&[("host", "web.tld:9")]);
    rewrite_request(&mut h, &f);
    assert_eq!(get(&h, "host"), ["web.tld:8080"]);
    let mut h = headers(&[("host", "web.tld:80")]);
    rewrite_request(&mut h, &fwd(&c));
    assert_eq!(get(&h, "host"), ["web.tld"]);
}

#[test]
fn trusted_client_values_are_kept_and_xff_appended() {
    let c = ctx();
    let mut h = headers(&[
        ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
        ("x-forwarded-for", "3.3.3.3"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "public.tld"),
        ("x-forwarded-port", "8443"),
        ("x-forwarded-ssl", "bogus"),
        ("x-real-ip", "6.6.6.6"),
    ]);
    rewrite_request(&mut h, &fwd(&c));
    assert_eq!(
        get(&h, "x-forwarded-for"),
        ["1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3"]
    );
    assert_eq!(get(&h, "x-forwarded-proto"), ["https"]);
    assert_eq!(get(&h, "x-forwarded-ssl"), ["on"]);
    assert_eq!(get(&h, "x-forwarded-host"), ["public.tld"]);
    assert_eq!(get(&h, "x-forwarded-port"), ["8443"]);
    assert_eq!(get(&h, "x-real-ip"), ["10.1.2.3"]);
}

#[test]
fn proxy_protocol_values_replace_the_clients_when_trusted() {
    // nginx-proxy with ENABLE_PROXY_PROTOCOL: X-Forwarded-For is `$proxy_protocol_addr` alone,
    // X-Forwarded-Port `$proxy_protocol_server_port`; the other headers follow the usual rules.
    let c = ctx();
    let balancer_port = HeaderValue::from_static("8443");
    let mut f = fwd(&c);
    f.proxied_port = Some(&balancer_port);
    let client = [
        ("x-forwarded-for", "1.1.1.1"),
        ("x-forwarded-port", "1"),
        ("x-forwarded-host", "public.tld"),
    ];
    let mut h = headers(&client);
    rewrite_request(&mut h, &f);
    assert_eq!(get(&h, "x-forwarded-for"), ["10.1.2.3"]);
    assert_eq!(get(&h, "x-forwarded-port"), ["8443"]);
    assert_eq!(get(&h, "x-forwarded-host"), ["public.tld"]);
    assert_eq!(get(&h, "x-real-ip"), ["10.1.2.3"]);
    let mut h = headers(&[]);
    rewrite_request(&mut h, &f);
    assert_eq!(get(&h, "x-forwarded-port"), ["8443"]);

    // Untrusted: the usual untrusted values (the listener's port), as nginx-proxy.
    f.trust_downstream = false;
    let mut h = headers(&client);
    rewrite_request(&mut h, &f);
    assert_eq!(get(&h, "x-forwarded-for"), ["10.1.2.3"]);
    assert_eq!(get(&h, "x-forwarded-port"), ["80"]);
}

#[test]
fn trusted_odd_proto_is_kept_and_ssl_is_off() {
    let c = ctx();
    let mut h = headers(&[("x-forwarded-proto", "f00")]);
    rewrite_request(&mut h, &fwd(&c));
    assert_eq!(get(&h, "x-forwarded-proto"), ["f00"]);
    assert_eq!(get(&h, "x-forwarded-ssl"), ["off"]);
}

#[test]
fn untrusted_client_values_are_replaced() {
    let c = ctx();
    let mut f = fwd(&c);
    f.trust_downstream = false;
    f.https = true;
    let mut h = headers(&[
        ("x-forwarded-for", "1.1.1.1"),
        ("x-forwarded-proto", "f00"),
        ("x-forwarded-host", "evil.tld"),
        ("x-forwarded-port", "1"),
    ]);
    rewrite_request(&mut h, &f);
    assert_eq!(get(&h, "x-forwarded-for"), ["10.1.2.3"]);
    assert_eq!(get(&h, "x-forwarded-proto"), ["https"]);
    assert_eq!(get(&h, "x-forwarded-ssl"), ["on"]);
    assert_eq!(get(&h, "x-forwarded-host"), ["web.tld"]);
    assert_eq!(get(&h, "x-forwarded-port"), ["80"]);
}

#[test]
fn hop_by_hop_and_listed_headers_are_removed() {
    let c = ctx();
    let mut h = headers(&[
        ("connection", "keep-alive, X-Secret"),
        ("connection", "x-other"),
        ("keep-alive", "timeout=5"),
        ("x-secret", "1"),
        ("x-other", "2"),
        ("te", "gzip"),
        ("trailer", "x"),
        ("transfer-encoding", "chunked"),
        ("proxy-connection", "keep-alive"),
        ("proxy", "http://evil"),
        ("expect", "100-continue"),
        ("proxy-authorization", "Basic x"),
        ("my_header", "dropped"),
        ("my-header", "kept"),
    ]);
    rewrite_request(&mut h, &fwd(&c));
    for gone in [
        "connection",
        "keep-alive",
        "x-secret",
        "x-other",
        "te",
        "trailer",
        "transfer-encoding",
        "proxy-connection",
        "proxy",
        "expect",
        "my_header",
    ] {
        assert!(h.get(gone).is_none(), "{gone} should be removed");
    }
    assert_eq!(get(&h, "proxy-authorization"), ["Basic x"]);
    assert_eq!(get(&h, "my-header"), ["kept"]);
}

#[test]
fn each_client_only_header_is_removed_on_its_own() {
    // The scan that decides whether anything must be stripped knows every name by itself.
    let c = ctx();
    let mut f = fwd(&c);
    f.allow_upgrade = false;
    for name in [
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "proxy-connection",
        "upgrade",
        "proxy",
        "expect",
        "my_header",
        "_",
    ] {
        let mut h = headers(&[("host", "web.tld"), (name, "1"), ("accept", "*/*")]);
        rewrite_request(&mut h, &f);
        assert!(h.get(name).is_none(), "{name} should be removed");
        assert_eq!(get(&h, "accept"), ["*/*"], "{name}");
    }
}

#[test]
fn forwarded_headers_named_by_connection_are_not_trusted() {
    let c = ctx();
    let mut h = headers(&[
        ("connection", "X-Forwarded-Proto, x-forwarded-for"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "1.1.1.1"),
        ("x-forwarded-host", "kept.tld"),
    ]);
    rewrite_request(&mut h, &fwd(&c));
    // Hop-by-hop for this hop: gone, then set by the proxy as if the client never sent them.
    assert_eq!(get(&h, "x-forwarded-proto"), ["http"]);
    assert_eq!(get(&h, "x-forwarded-ssl"), ["off"]);
    assert_eq!(get(&h, "x-forwarded-for"), ["10.1.2.3"]);
    assert_eq!(get(&h, "x-forwarded-host"), ["kept.tld"]);
}

#[test]
fn upgrade_is_forwarded_with_connection_upgrade() {
    let c = ctx();
    let mut h = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
    let up = rewrite_request(&mut h, &fwd(&c));
    assert_eq!(up, Some(HeaderValue::from_static("websocket")));
    assert_eq!(get(&h, "upgrade"), ["websocket"]);
    assert_eq!(get(&h, "connection"), ["upgrade"]);
}

#[test]
fn upgrade_is_dropped_when_not_allowed() {
    let c = ctx();
    let mut f = fwd(&c);
    f.allow_upgrade = false;
    let mut h = headers(&[("connection", "upgrade"), ("upgrade", "websocket")]);
    assert_eq!(rewrite_request(&mut h, &f), None);
    assert!(h.get("upgrade").is_none() && h.get("connection").is_none());
}

#[test]
fn h2c_upgrade_is_never_forwarded() {
    let c = ctx();
    for offer in ["h2c", "H2C", "websocket, h2c"] {
        let mut h = headers(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", offer),
            ("http2-settings", "AAMAAABkAAQAAP__"),
        ]);
        assert_eq!(rewrite_request(&mut h, &fwd(&c)), None, "{offer}");
        assert!(h.get("upgrade").is_none() && h.get("connection").is_none());
        assert!(h.get("http2-settings").is_none());
    }
}

#[test]
fn keepalive_disabled_sends_connection_close() {
    let c = ctx();
    let mut f = fwd(&c);
    f.close = true;
    let mut h = headers(&[("connection", "keep-alive")]);
    rewrite_request(&mut h, &f);
    assert_eq!(get(&h, "connection"), ["close"]);
    let mut h = headers(&[("upgrade", "websocket")]);
    rewrite_request(&mut h, &f);
    assert_eq!(get(&h, "connection"), ["upgrade"]);
}

#[test]
fn h2_backends_keep_te_trailers_only() {
    let c = ctx();
    let mut f = fwd(&c);
    f.h2 = true;
    let mut h = headers(&[("te", "gzip, Trailers")]);
    rewrite_request(&mut h, &f);
    assert_eq!(get(&h, "te"), ["trailers"]);
    let mut h = headers(&[("te", "gzip")]);
    rewrite_request(&mut h, &f);
    assert!(h.get("te").is_none());
}

#[test]
fn response_hop_by_hop_headers_are_removed() {
    let mut h = headers(&[
        ("connection", "close, x-internal"),
        ("x-internal", "1"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("content-type", "text/plain"),
    ]);
    rewrite_response(&mut h, false);
    assert_eq!(h.len(), 1);
    assert_eq!(get(&h, "content-type"), ["text/plain"]);
}

#[test]
fn switching_protocols_keeps_the_upgrade() {
    let mut h = headers(&[
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-accept", "x"),
    ]);
    rewrite_response(&mut h, true);
    assert_eq!(get(&h, "upgrade"), ["websocket"]);
    assert_eq!(get(&h, "connection"), ["upgrade"]);
    assert_eq!(get(&h, "sec-websocket-accept"), ["x"]);
}
