//! `deploy/compose.yaml` as users run it, with locally built images: dockhand in a container,
//! the app scaled, and Prometheus (Debian's binary in a local image) scraping dockhand.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dockhand_testkit::http::{self, Response};
use dockhand_testkit::{assert_eventually, free_port, images, require_tool};
use serde_json::Value;

use crate::support::*;

/// A project of `deploy/compose.yaml` (plus a test override), brought down with its volumes on
/// drop, whatever happened.
struct Stack {
    project: String,
    override_file: PathBuf,
    env: Vec<(String, String)>,
}

impl Stack {
    fn compose(&self, args: &[&str]) -> std::process::Output {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose.yaml");
        Command::new("docker-compose")
            .args(["-p", &self.project])
            .arg("-f")
            .arg(file)
            .arg("-f")
            .arg(&self.override_file)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("docker-compose runs")
    }

    fn run(&self, args: &[&str]) {
        let output = self.compose(args);
        assert!(
            output.status.success(),
            "docker-compose {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn logs(&self) -> String {
        let output = self.compose(&["logs", "--no-color", "--tail", "50"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "-t", "1", "--remove-orphans"]);
        let _ = std::fs::remove_file(&self.override_file);
    }
}

/// `text` with every byte outside RFC 3986's unreserved set percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn get(addr: SocketAddr, host: &str, path: &str) -> Option<Response> {
    http::get(addr, host, path).ok()
}

fn json(addr: SocketAddr, path: &str) -> Option<Value> {
    get(addr, "localhost", path).and_then(|r| r.json().ok())
}

/// The backends dockhand's admin API lists for `host`.
fn backends(admin: SocketAddr, host: &str) -> usize {
    let Some(routes) = json(admin, "/api/routes") else {
        return 0;
    };
    let vhosts = routes["table"]["vhosts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (vhosts.iter())
        .filter(|v| v["host"] == host)
        .flat_map(|v| v["paths"].as_array().cloned().unwrap_or_default())
        .map(|p| p["backends"].as_array().map_or(0, Vec::len))
        .sum()
}

#[test]
fn compose_stack_is_scraped_by_prometheus_balances_and_scales_down_without_loss() {
    require_docker!();
    let prometheus = require_tool!("prometheus", "prometheus");
    let prometheus = images::host_program_image(
        &prometheus,
        "dockhand-test-prometheus",
        &["/prometheus", "/tmp"],
        &[],
    )
    .expect("a local Prometheus image");
    static N: AtomicU64 = AtomicU64::new(0);
    let project = format!(
        "i21stack{}n{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let host = unique("stack");
    let (http, admin, prom) = (free_port(), free_port(), free_port());
    let override_file = std::env::temp_dir().join(format!("{project}.override.yaml"));
    // The echo backend's image has a HEALTHCHECK; replicas are routed once it passes, which
    // takes its interval: off here, so scaling is seen at once.
    std::fs::write(
        &override_file,
        "services:\n  app:\n    healthcheck:\n      disable: true\n",
    )
    .expect("writing the override");
    let env = [
        ("DOCKHAND_IMAGE", images::proxy_image(Path::new(DOCKHAND))),
        ("APP_IMAGE", images::backend_image().to_owned()),
        ("PROMETHEUS_IMAGE", prometheus),
        ("APP_HOST", host.clone()),
        ("DOCKHAND_HTTP_PORT", http.to_string()),
        ("DOCKHAND_ADMIN_PORT", admin.to_string()),
        ("PROMETHEUS_PORT", prom.to_string()),
    ];
    let stack = Stack {
        project,
        override_file,
        env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    };
    stack.run(&["up", "-d"]);
    let http = SocketAddr::from(([127, 0, 0, 1], http));
    let admin = SocketAddr::from(([127, 0, 0, 1], admin));
    let prom = SocketAddr::from(([127, 0, 0, 1], prom));

    assert_eventually!(
        get(http, &host, "/").is_some_and(|r| r.status == 200),
        Duration::from_secs(30),
        "the app never answered through dockhand:\n{}",
        stack.logs()
    );
    for _ in 0..20 {
        get(http, &host, "/");
    }

    // Prometheus scrapes dockhand, and has its request counter for the app's vhost.
    let target_up = || {
        json(prom, "/api/v1/targets").is_some_and(|t| {
            let targets = t["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            targets
                .iter()
                .any(|t| t["labels"]["job"] == "dockhand" && t["health"] == "up")
        })
    };
    assert_eventually!(
        target_up(),
        Duration::from_secs(60),
        "Prometheus never scraped dockhand: {:?}\n{}",
        json(prom, "/api/v1/targets"),
        stack.logs()
    );
    let counted = || {
        json(prom, "/api/v1/query?query=dockhand_requests_total").is_some_and(|q| {
            let series = q["data"]["result"].as_array().cloned().unwrap_or_default();
            series.iter().any(|s| s["metric"]["vhost"] == host.as_str())
        })
    };
    assert_eventually!(
        counted(),
        Duration::from_secs(60),
        "no dockhand_requests_total for {host} in Prometheus: {:?}",
        json(prom, "/api/v1/query?query=dockhand_requests_total")
    );

    // Every query of the Grafana dashboard is valid PromQL for this Prometheus.
    let dashboard =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dashboards/dockhand.json");
    let dashboard: Value =
        serde_json::from_slice(&std::fs::read(dashboard).expect("the dashboard JSON"))
            .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let queries: Vec<String> = (panels.iter())
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(queries.len() >= 15, "{queries:?}");
    for query in &queries {
        let query = query
            .replace("$vhost", ".*")
            .replace("$__rate_interval", "1m");
        let path = format!("/api/v1/query?query={}", percent_encode(&query));
        let answer = json(prom, &path);
        assert_eq!(
            answer.as_ref().map(|a| a["status"].clone()),
            Some(Value::from("success")),
            "{query}: {answer:?}"
        );
    }

    // --scale app=3: three backends, balanced.
    stack.run(&["up", "-d", "--scale", "app=3"]);
    assert_eventually!(
        backends(admin, &host) == 3,
        Duration::from_secs(30),
        "dockhand never listed 3 replicas (has {})",
        backends(admin, &host)
    );
    let mut served: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..300 {
        let response = get(http, &host, "/").expect("a response");
        assert_eq!(response.status, 200, "{}", response.text());
        let name = response.echo().expect("an echo").name;
        *served.entry(name).or_default() += 1;
    }
    assert_eq!(served.len(), 3, "{served:?}");
    assert!(
        served.values().all(|&n| (80..=120).contains(&n)),
        "unbalanced: {served:?}"
    );

    // Scaling down under load loses no request.
    let load = Load::start_at(http, &host, 4);
    load.wait_for_more(200);
    stack.run(&["up", "-d", "--scale", "app=1"]);
    assert_eventually!(
        backends(admin, &host) == 1,
        Duration::from_secs(30),
        "dockhand still lists {} replicas",
        backends(admin, &host)
    );
    load.wait_for_more(200);
    let report = load.finish();
    assert!(
        report.failures.is_empty(),
        "{} of {} requests failed while scaling down: {:?}",
        report.failures.len(),
        report.ok + report.failures.len() as u64,
        &report.failures[..report.failures.len().min(5)]
    );
}
