//! `/metrics` as Prometheus reads it: the families Traefik users look for, and a scrape that
//! `promtool check metrics` accepts.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use dockhand_testkit::{assert_eventually, require_tool};

use crate::support::*;

/// The value of the sample `name{labels}` (labels written exactly as the text format has them,
/// in name order), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[test]
fn scrape_has_connections_bytes_backend_up_publish_time_and_process_and_passes_promtool() {
    require_docker!();
    let promtool = require_tool!("promtool", "prometheus");
    let host = unique("metrics");
    let proxy = dockhand().env("DOCKHAND_EJECT_AFTER", "1").start();
    let web = backend().name("web").vhost(&host).start();
    // Nothing listens on 81: its connects fail, it is ejected, and the retry goes to `web`.
    let broken = (backend().name("broken").vhost(&host))
        .env("VIRTUAL_PORT", "81")
        .start();
    proxy.wait_status(&host, "/", 200);
    for _ in 0..4 {
        proxy.status(&host, "/");
    }

    // A client connection held open shows in the gauge.
    let mut held = TcpStream::connect(proxy.http).expect("connect to the proxy");
    held.write_all(b"GET / HTTP/1.1\r\nHost: held\r\n")
        .expect("a partial head");
    let open = "dockhand_open_connections{listener=\"http\"}";
    assert_eventually!(
        sample(&proxy.metrics(), open).is_some_and(|n| n >= 1.0),
        Duration::from_secs(5),
        "{open} never counted the held connection:\n{}",
        proxy.metrics()
    );

    let up = |name: &str| format!("dockhand_backend_up{{backend=\"{name}\",vhost=\"{host}\"}}");
    // Ejection is passive: requests keep going until one has been sent to `broken` (the first
    // ones may all have gone out before discovery added it).
    assert_eventually!(
        {
            proxy.status(&host, "/");
            sample(&proxy.metrics(), &up(broken.name())) == Some(0.0)
        },
        Duration::from_secs(10),
        "the broken backend never showed down (requests: {})\n{}",
        proxy.status(&host, "/"),
        proxy.metrics()
    );
    let metrics = proxy.metrics();
    assert_eq!(sample(&metrics, &up(web.name())), Some(1.0), "{metrics}");
    let received = sample(&metrics, "dockhand_requests_bytes_total{listener=\"http\"}");
    let sent = sample(
        &metrics,
        "dockhand_responses_bytes_total{listener=\"http\"}",
    );
    assert!(
        received.is_some_and(|b| b > 100.0),
        "{received:?}\n{metrics}"
    );
    assert!(sent.is_some_and(|b| b > 100.0), "{sent:?}\n{metrics}");
    let published = sample(
        &metrics,
        "dockhand_route_table_last_publish_timestamp_seconds",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        published.is_some_and(|t| t > now - 600.0 && t <= now + 1.0),
        "{published:?}"
    );
    for family in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            sample(&metrics, family).is_some_and(|v| v > 0.0),
            "{family} missing or zero:\n{metrics}"
        );
    }
    drop(held);

    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics.as_bytes())
        .expect("feeding promtool");
    let output = check.wait_with_output().expect("promtool ends");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
