//! The forwarded-header rewrite ([`forward::rewrite_request`] and
//! [`forward::rewrite_response`]) for a typical browser navigation over HTTP/1.1: a Chrome-like
//! request head with cookies, and an ordinary HTML response head.
//!
//! The header maps are cloned outside the timed part, so only the rewrite is measured.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use dockhand_proxy::forward::{self, Forwarding, X_FORWARDED_FOR, X_REAL_IP};
use http::{HeaderMap, HeaderName, HeaderValue};

/// A browser's request head, as sent to a proxy on port 80.
const REQUEST: [(&str, &str); 14] = [
    ("host", "app.example.com"),
    ("connection", "keep-alive"),
    ("cache-control", "max-age=0"),
    ("sec-ch-ua", "\"Chromium\";v=\"124\", \"Not-A.Brand\";v=\"99\""),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", "\"Linux\""),
    ("upgrade-insecure-requests", "1"),
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
    ("sec-fetch-site", "none"),
    ("sec-fetch-mode", "navigate"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("accept-language", "en-GB,en;q=0.9,fr;q=0.8"),
    ("cookie", "session=3f9a1c2e7b; theme=dark; _ga=GA1.1.123456789.1700000000"),
];

/// An application's response head.
const RESPONSE: [(&str, &str); 7] = [
    ("content-type", "text/html; charset=utf-8"),
    ("content-length", "5123"),
    ("connection", "keep-alive"),
    ("keep-alive", "timeout=5"),
    ("cache-control", "no-cache"),
    ("set-cookie", "session=3f9a1c2e7b; Path=/; HttpOnly"),
    ("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
];

fn head(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
        .collect()
}

fn rewrite(c: &mut Criterion) {
    let request = head(&REQUEST);
    let peer_ip = HeaderValue::from_static("203.0.113.7");
    let port = HeaderValue::from_static("80");
    let original_uri = HeaderValue::from_static("/dashboard?tab=overview");
    let fwd = Forwarding {
        peer_ip: &peer_ip,
        host: "app.example.com",
        server_port: 80,
        server_port_value: &port,
        proxied_port: None,
        https: false,
        trust_downstream: false,
        original_uri: &original_uri,
        allow_upgrade: true,
        close: false,
        h2: false,
    };
    let mut checked = request.clone();
    assert!(forward::rewrite_request(&mut checked, &fwd).is_none());
    assert_eq!(checked.get(X_REAL_IP), Some(&peer_ip));
    assert_eq!(checked.get(X_FORWARDED_FOR), Some(&peer_ip));
    assert!(!checked.contains_key(http::header::CONNECTION));

    c.bench_function("forward_rewrite_request", |b| {
        b.iter_batched_ref(
            || request.clone(),
            |headers| forward::rewrite_request(black_box(headers), black_box(&fwd)),
            BatchSize::SmallInput,
        );
    });
    let response = head(&RESPONSE);
    c.bench_function("forward_rewrite_response", |b| {
        b.iter_batched_ref(
            || response.clone(),
            |headers| forward::rewrite_response(black_box(headers), false),
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, rewrite);
criterion_main!(benches);
