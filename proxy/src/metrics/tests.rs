use std::time::Duration;

use http::{Method, StatusCode};

use super::vhost::class_index;
use super::*;
use crate::error::ErrorKind;

fn text(registry: &Registry) -> String {
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    prometheus::Encoder::encode(&encoder, &registry.gather(), &mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn requests_are_labelled_by_class_and_method() {
    let registry = Registry::new();
    let metrics = Metrics::new(&registry).unwrap();
    let vhost = &metrics.publish(&[("a.tld", 2)])[0];
    vhost.request(&Method::GET, StatusCode::OK, Duration::from_millis(3));
    vhost.request(
        &Method::from_bytes(b"PROPFIND").unwrap(),
        StatusCode::BAD_GATEWAY,
        Duration::ZERO,
    );
    metrics.unknown().request(
        &Method::POST,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::ZERO,
    );
    let out = text(&registry);
    assert!(
        out.contains(r#"dockhand_requests_total{class="2xx",method="GET",vhost="a.tld"} 1"#),
        "{out}"
    );
    assert!(out.contains(r#"dockhand_requests_total{class="5xx",method="other",vhost="a.tld"} 1"#));
    assert!(
        out.contains(r#"dockhand_requests_total{class="5xx",method="POST",vhost="_unknown"} 1"#)
    );
    assert!(out.contains(r#"dockhand_request_duration_seconds_count{vhost="a.tld"} 2"#));
    assert!(out.contains(r#"dockhand_backends{vhost="a.tld"} 2"#));
}

#[test]
fn errors_are_counted_by_kind() {
    let registry = Registry::new();
    let metrics = Metrics::new(&registry).unwrap();
    let vhost = &metrics.publish(&[("a.tld", 1)])[0];
    vhost.error(ErrorKind::ConnectRefused);
    vhost.error(ErrorKind::ConnectRefused);
    let out = text(&registry);
    assert!(
        out.contains(r#"dockhand_upstream_errors_total{kind="connect_refused",vhost="a.tld"} 2"#),
        "{out}"
    );
}

#[test]
fn series_of_vanished_vhosts_are_removed_and_handles_reused() {
    let registry = Registry::new();
    let metrics = Metrics::new(&registry).unwrap();
    let first = metrics.publish(&[("a.tld", 1), ("b.tld", 0)]);
    first[1].request(&Method::GET, StatusCode::OK, Duration::ZERO);
    first[1].error(ErrorKind::UpstreamReset);
    let second = metrics.publish(&[("a.tld", 3)]);
    assert!(Arc::ptr_eq(&first[0], &second[0]));
    let out = text(&registry);
    assert!(out.contains(r#"dockhand_backends{vhost="a.tld"} 3"#));
    assert!(!out.contains(r#"vhost="b.tld""#), "{out}");
}

#[test]
fn retries_and_ejections_are_counted_and_removed_with_the_vhost() {
    let registry = Registry::new();
    let metrics = Metrics::new(&registry).unwrap();
    let vhost = &metrics.publish(&[("a.tld", 2)])[0];
    vhost.retry(RetryReason::Reset);
    vhost.retry(RetryReason::Connect);
    vhost.retry(RetryReason::Connect);
    vhost.ejection();
    let out = text(&registry);
    assert!(
        out.contains(r#"dockhand_retries_total{reason="connect",vhost="a.tld"} 2"#),
        "{out}"
    );
    assert!(out.contains(r#"dockhand_retries_total{reason="reset",vhost="a.tld"} 1"#));
    assert!(out.contains(r#"dockhand_backend_ejections_total{vhost="a.tld"} 1"#));
    metrics.publish(&[]);
    let out = text(&registry);
    assert!(!out.contains(r#"vhost="a.tld""#), "{out}");
}

#[test]
fn registering_twice_fails() {
    let registry = Registry::new();
    assert!(Metrics::new(&registry).is_ok());
    assert!(Metrics::new(&registry).is_err());
}

#[test]
fn status_classes() {
    assert_eq!(class_index(StatusCode::SWITCHING_PROTOCOLS), 0);
    assert_eq!(class_index(StatusCode::NOT_FOUND), 3);
    assert_eq!(class_index(StatusCode::from_u16(999).unwrap()), 4);
}
