//! Containers come and go; the routes follow within a second, and replicas share the load.

use std::collections::BTreeMap;

use std::time::Duration;

use dockhand_testkit::{assert_eventually, http};

use crate::support::*;

#[test]
fn a_started_container_is_routed_and_a_stopped_one_removed_within_a_second() {
    require_docker!();
    let host = unique("appear");
    let proxy = dockhand().start();
    assert_eq!(proxy.status(&host, "/"), 503);

    let web = backend().vhost(&host).start();
    assert_eventually!(
        proxy.status(&host, "/") == 200,
        PROPAGATION,
        "not routed after start"
    );

    web.stop();
    // Judged on the table: a request racing the event would wait on the vanished address
    // (an ARP timeout) and use up the window by itself.
    assert_eventually!(
        proxy.backends(&host).is_empty(),
        PROPAGATION,
        "still routed after stop"
    );
    assert_eq!(proxy.status(&host, "/"), 503);

    web.start();
    assert_eventually!(
        proxy.status(&host, "/") == 200,
        PROPAGATION,
        "not routed after restart"
    );
    let generation = proxy.routes()["table"]["generation"]
        .as_u64()
        .expect("generation");
    assert!(
        generation >= 3,
        "each change published a table (generation {generation})"
    );
}

#[test]
fn scaled_compose_replicas_share_requests_round_robin() {
    require_docker!();
    let host = unique("scale");
    let proxy = dockhand().start();
    let compose = Compose::up(&compose_web(&host), &["--scale", "web=3"]);
    assert_eventually!(
        backends_of(&proxy, &host) == 3,
        PROPAGATION * 10,
        "3 replicas not routed"
    );

    let mut counts = BTreeMap::<String, usize>::new();
    for _ in 0..30 {
        let served = proxy
            .served_by(&host, "/")
            .expect("every request answered 200");
        *counts.entry(served).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "all replicas served: {counts:?}");
    assert!(
        counts.values().all(|&n| n == 10),
        "round robin is even: {counts:?}"
    );

    compose.run(&["up", "-d", "--scale", "web=1"]);
    assert_eventually!(
        backends_of(&proxy, &host) == 1,
        PROPAGATION * 10,
        "scale down not seen"
    );
    assert_eq!(proxy.status(&host, "/"), 200);
}

#[test]
fn a_refused_backend_is_retried_on_the_next_one() {
    require_docker!();
    let host = unique("refused");
    let proxy = dockhand().start();
    // Nothing listens on 81 in this one: every connect is refused.
    let _broken = backend()
        .name("broken")
        .vhost(&host)
        .env("VIRTUAL_PORT", "81")
        .start();
    let _good = backend().name("good").vhost(&host).start();
    assert_eventually!(backends_of(&proxy, &host) == 2, PROPAGATION * 5);

    for _ in 0..10 {
        assert_eq!(proxy.served_by(&host, "/").as_deref(), Some("good"));
    }
    // Passive health: after repeated refusals the broken one is ejected, visibly.
    let broken = proxy.backends(&host).into_iter().find(|b| {
        b["container"]
            .as_str()
            .is_some_and(|c| c.ends_with("broken"))
    });
    let broken = broken.expect("the broken backend is listed");
    assert_eq!(broken["ejected"], true, "{broken}");
    let metrics = proxy.metrics();
    let ejections = format!("dockhand_backend_ejections_total{{vhost=\"{host}\"}}");
    assert!(
        metrics.lines().any(|l| l.starts_with(&ejections)),
        "{metrics}"
    );
    let retries = format!("dockhand_retries_total{{reason=\"connect\",vhost=\"{host}\"}}");
    assert!(
        metrics.lines().any(|l| l.starts_with(&retries)),
        "{metrics}"
    );
}

#[test]
fn load_balancing_and_keepalive_labels() {
    require_docker!();
    let (sticky, closing) = (unique("sticky"), unique("close"));
    let proxy = dockhand().start();
    let lb = "com.github.nginx-proxy.nginx-proxy.loadbalance";
    let _a = backend()
        .name("a")
        .vhost(&sticky)
        .label(lb, "hash $remote_addr;")
        .start();
    let _b = backend()
        .name("b")
        .vhost(&sticky)
        .label(lb, "hash $remote_addr;")
        .start();
    let _c = backend()
        .vhost(&closing)
        .label("com.github.nginx-proxy.nginx-proxy.keepalive", "disabled")
        .start();
    assert_eventually!(backends_of(&proxy, &sticky) == 2, PROPAGATION * 5);

    let first = served_without_retry(&proxy, &sticky);
    for _ in 0..10 {
        let next = proxy.served_by(&sticky, "/");
        // Only a failed attempt (counted in the metrics) may move a client to another backend.
        assert_eq!(
            next.as_deref(),
            Some(first.as_str()),
            "same client, same backend; retries and errors of {sticky}:\n{}",
            proxy
                .metrics()
                .lines()
                .filter(|l| l.contains(&sticky) && (l.contains("retr") || l.contains("error")))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    proxy.wait_status(&closing, "/", 200);
    let echo = proxy.get(&closing, "/").echo().expect("echo");
    assert_eq!(echo.header("connection"), Some("close"));
}

/// The backend that answers `host` at the first request that needed no retry.
///
/// Right after a container starts, a connect to it can fail ("No route to host" while the
/// bridge still holds a stale neighbour entry for its recycled IP), and dockhand then rightly
/// fails over to another replica: affinity is judged from requests that went straight through.
fn served_without_retry(proxy: &Dockhand, host: &str) -> String {
    let deadline = std::time::Instant::now() + PROPAGATION * 5;
    loop {
        let before = retries_of(proxy, host);
        let served = proxy.served_by(host, "/");
        if let Some(name) = served.filter(|_| retries_of(proxy, host) == before) {
            return name;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{host} never answered without a retry"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Requests for `host` that dockhand sent to another backend after a failed attempt.
fn retries_of(proxy: &Dockhand, host: &str) -> u64 {
    proxy
        .metrics()
        .lines()
        .filter(|l| l.starts_with("dockhand_retries_total") && l.contains(host))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// How many reachable backends `/api/routes` lists for `host`.
pub fn backends_of(proxy: &Dockhand, host: &str) -> usize {
    proxy
        .backends(host)
        .iter()
        .filter(|b| !b["addr"].is_null())
        .count()
}

#[test]
fn health_checks_move_containers_in_and_out_of_rotation() {
    require_docker!();
    let host = unique("health");
    let net = network().start();
    let proxy = dockhand().start();
    let web = backend()
        .vhost(&host)
        .network(&net)
        .healthcheck(Duration::from_millis(300))
        .start();
    let direct = web.addr(&net, 80);

    // Known, but not healthy yet: 503 (never 404), then routed once Docker says healthy.
    assert_eventually!(
        {
            let status = proxy.status(&host, "/");
            assert!(
                matches!(status, 200 | 503),
                "starting container answered {status}"
            );
            status == 200
        },
        Duration::from_secs(10),
        "never healthy"
    );
    assert_eq!(web.health().as_deref(), Some("healthy"));

    // The health check is failed from inside the container; out of rotation within a second
    // of Docker reporting it.
    http::get(direct, &host, "/health/fail").expect("backend answers directly");
    assert_eventually!(
        web.health().as_deref() == Some("unhealthy"),
        Duration::from_secs(10)
    );
    assert_eventually!(
        proxy.status(&host, "/") == 503,
        PROPAGATION,
        "unhealthy still routed"
    );

    http::get(direct, &host, "/health/ok").expect("backend answers directly");
    assert_eventually!(
        web.health().as_deref() == Some("healthy"),
        Duration::from_secs(10)
    );
    assert_eventually!(
        proxy.status(&host, "/") == 200,
        PROPAGATION,
        "healthy not routed again"
    );
}
