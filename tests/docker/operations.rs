//! Running dockhand: bad configuration, logs, signals.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use dockhand_testkit::http::Request;

use crate::support::*;

#[test]
fn invalid_configuration_names_every_bad_setting_and_binds_nothing() {
    let output = Command::new(DOCKHAND)
        .env_clear()
        .env("HTTP_PORT", "eighty")
        .env("DOCKHAND_CONNECT_TIMEOUT", "soon")
        .env("DOCKER_HOST", "ssh://somewhere")
        .args(["--admin", "127.0.0.1:1"])
        .output()
        .expect("dockhand runs");
    assert_eq!(output.status.code(), Some(64), "EX_USAGE");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in [
        "HTTP_PORT=\"eighty\"",
        "DOCKHAND_CONNECT_TIMEOUT=\"soon\"",
        "DOCKER_HOST=\"ssh://somewhere\"",
    ] {
        assert!(stderr.contains(name), "{name} not named in:\n{stderr}");
    }
}

#[test]
fn access_logs_are_text_json_or_off() {
    require_docker!();
    let host = unique("logs");
    let text = dockhand().env("DOCKHAND_LOG", "info").start();
    let json = dockhand()
        .env("DOCKHAND_LOG", "info")
        .env("LOG_JSON", "true")
        .start();
    let off = dockhand()
        .env("DOCKHAND_LOG", "info")
        .env("DISABLE_ACCESS_LOGS", "true")
        .start();
    let _web = backend().vhost(&host).start();
    for proxy in [&text, &json, &off] {
        proxy.wait_status(&host, "/logged?x=1", 200);
    }
    let access = |proxy: &Dockhand| -> Vec<String> {
        let log = proxy.log();
        log.lines()
            .filter(|l| l.contains("dockhand::access") && l.contains(&host))
            .map(str::to_owned)
            .collect()
    };
    let line = access(&text).pop().expect("a text access line");
    assert!(
        line.contains("status=200") && line.contains("/logged?x=1"),
        "{line}"
    );

    let line = access(&json).pop().expect("a JSON access line");
    let entry: serde_json::Value = serde_json::from_str(&line).expect("access line is JSON");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["host"], host.as_str());
    // The backend that answered, filled in once the exchange is over.
    let upstream = entry["upstream"].as_str().unwrap_or_default();
    assert!(
        upstream.parse::<std::net::SocketAddr>().is_ok(),
        "upstream {upstream:?} in {line}"
    );
    // Route changes are logged in JSON too, naming the container.
    assert!(json
        .log()
        .lines()
        .any(|l| l.starts_with('{') && l.contains("backend added") && l.contains(&host)));

    assert!(
        access(&off).is_empty(),
        "DISABLE_ACCESS_LOGS still logged requests"
    );
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    require_docker!();
    let host = unique("drain");
    let mut proxy = dockhand().env("DOCKHAND_SHUTDOWN_GRACE", "10s").start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 200);

    let (addr, slow_host) = (proxy.http, host.clone());
    let slow = thread::spawn(move || {
        Request::get(addr, "/delay/1500")
            .host(&slow_host)
            .timeout(Duration::from_secs(10))
            .send()
    });
    // The request is in flight once the backend holds it; give the proxy its headers first.
    dockhand_testkit::assert_eventually!(
        backend_in_flight(&proxy, &host) == 1,
        Duration::from_secs(5)
    );
    let signalled = Instant::now();
    proxy.process().terminate();

    let response = slow
        .join()
        .expect("client thread")
        .expect("in-flight request answered");
    assert_eq!(response.status, 200, "the in-flight request finished");
    let status = proxy
        .process()
        .wait_timeout(Duration::from_secs(10))
        .expect("dockhand exited");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exited within the grace period"
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer accepting"
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    require_docker!();
    let host = unique("impatient");
    let mut proxy = dockhand().env("DOCKHAND_SHUTDOWN_GRACE", "60s").start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 200);

    let (addr, slow_host) = (proxy.http, host.clone());
    let _slow = thread::spawn(move || {
        Request::get(addr, "/delay/30000")
            .host(&slow_host)
            .timeout(Duration::from_secs(40))
            .send()
    });
    dockhand_testkit::assert_eventually!(
        backend_in_flight(&proxy, &host) == 1,
        Duration::from_secs(5)
    );
    proxy.process().terminate();
    // Still draining: the slow request holds it for up to the 60 s grace period.
    assert!(
        proxy
            .process()
            .wait_timeout(Duration::from_millis(500))
            .is_none(),
        "exited before draining"
    );
    proxy.process().terminate();
    let status = proxy
        .process()
        .wait_timeout(Duration::from_secs(5))
        .expect("second signal exits");
    assert_eq!(status.code(), Some(130));
}

fn backend_in_flight(proxy: &Dockhand, host: &str) -> u64 {
    proxy
        .backends(host)
        .iter()
        .filter_map(|b| b["in_flight"].as_u64())
        .sum()
}
