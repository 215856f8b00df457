//! Passive health: backends that keep refusing connections are ejected, skipped while others
//! answer, tried when none does, and probed back in after their back-off.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::faulty::Dormant;
use support::*;

/// The `/api/routes` entry of backend `name` of the first location of `host`.
fn backend_json(proxy: &TestProxy, host: &str, name: &str) -> Value {
    let routes = proxy.routes();
    let vhost = routes["vhosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["host"] == host)
        .unwrap()
        .clone();
    vhost["paths"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["container"] == name)
        .unwrap()
        .clone()
}

fn refusals(proxy: &TestProxy) -> u64 {
    let series = r#"dockhand_upstream_errors_total{kind="connect_refused",vhost="s.tld"} "#;
    proxy
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(series).map(|v| v.parse().unwrap()))
        .unwrap_or(0)
}

/// Sends GETs (all answered 200) until backend `name` is ejected.
async fn until_ejected(proxy: &TestProxy, name: &str) {
    assert_eventually!(
        {
            let reply = get(proxy.addr, "s.tld", "/").await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            backend_json(proxy, "s.tld", name)["ejected"] == true
        },
        "{name} never ejected"
    );
}

#[tokio::test]
async fn a_refusing_backend_is_ejected_and_then_skipped() {
    let (a, b) = (backend("a").start().await, backend("b").start().await);
    let dead = Dormant::new();
    let proxy = proxy()
        .config(|c| c.eject_backoff = Duration::from_secs(600))
        .start(
            table()
                .vhost(
                    "s.tld",
                    vec![path("/", &[&a, &b]).backend_at("dead", Some(dead.addr))],
                )
                .spec(),
        )
        .await;
    until_ejected(&proxy, "dead").await;
    let dead_json = backend_json(&proxy, "s.tld", "dead");
    assert_eq!(dead_json["consecutive_failures"], 3, "{dead_json}");
    assert!(dead_json["ejected_for_ms"].as_u64().unwrap() > 0);
    assert_eq!(backend_json(&proxy, "s.tld", "a")["ejected"], false);
    assert_eq!(refusals(&proxy), 3);

    let before = a.requests() + b.requests();
    for _ in 0..30 {
        assert_eq!(get(proxy.addr, "s.tld", "/").await.status, 200);
    }
    assert_eq!(a.requests() + b.requests(), before + 30);
    assert_eq!(refusals(&proxy), 3, "an ejected backend was tried");
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains(r#"dockhand_backend_ejections_total{vhost="s.tld"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"dockhand_backends_ejected{vhost="s.tld"} 1"#));
    assert!(metrics.contains(r#"dockhand_retries_total{reason="connect",vhost="s.tld"} 3"#));
}

#[tokio::test]
async fn an_ejected_backend_is_probed_after_its_back_off_and_comes_back() {
    let good = backend("good").start().await;
    let dormant = Dormant::new();
    let proxy = proxy()
        .config(|c| c.eject_backoff = Duration::from_millis(100))
        .start(
            table()
                .vhost(
                    "s.tld",
                    vec![path("/", &[&good]).backend_at("revived", Some(dormant.addr))],
                )
                .spec(),
        )
        .await;
    until_ejected(&proxy, "revived").await;
    let revived = dormant.wake("revived");
    // After the back-off the next request in turn tries it again, and finds it listening.
    assert_eventually!(
        get(proxy.addr, "s.tld", "/").await.backend() == "revived",
        "the revived backend was never probed"
    );
    assert!(revived.requests() >= 1);
    let json = backend_json(&proxy, "s.tld", "revived");
    assert_eq!(json["ejected"], false, "{json}");
    assert_eq!(json["consecutive_failures"], 0, "{json}");
    assert_eq!(json["ejected_for_ms"], 0, "{json}");
}

#[tokio::test]
async fn when_every_backend_is_ejected_they_are_still_tried() {
    let (first, second) = (Dormant::new(), Dormant::new());
    let proxy = proxy()
        .config(|c| c.eject_backoff = Duration::from_secs(600))
        .start(
            table()
                .vhost(
                    "s.tld",
                    vec![path("/", &[])
                        .backend_at("first", Some(first.addr))
                        .backend_at("second", Some(second.addr))],
                )
                .spec(),
        )
        .await;
    assert_eventually!(
        {
            assert_eq!(get(proxy.addr, "s.tld", "/").await.status, 502);
            let ejected = |name| backend_json(&proxy, "s.tld", name)["ejected"] == true;
            ejected("first") && ejected("second")
        },
        "both backends never ejected"
    );
    assert!(proxy
        .metrics_text()
        .contains(r#"dockhand_backends_ejected{vhost="s.tld"} 2"#));
    let _second = second.wake("second");
    let reply = get(proxy.addr, "s.tld", "/").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.backend(), "second");
    assert_eq!(backend_json(&proxy, "s.tld", "second")["ejected"], false);
    assert_eq!(backend_json(&proxy, "s.tld", "first")["ejected"], true);
}

#[tokio::test]
async fn an_ejected_backend_is_the_last_resort_when_the_others_refuse() {
    // A rolling deploy: the new replica refused a few connects while starting and was ejected;
    // then the old one stops. Skipping the new one would answer 502 with a live backend at hand.
    let old = backend("old").start().await;
    let new = Dormant::new();
    let new_addr = new.addr;
    let mut proxy = proxy()
        .config(|c| c.eject_backoff = Duration::from_secs(600))
        .start(
            table()
                .vhost(
                    "s.tld",
                    vec![path("/", &[&old]).backend_at("new", Some(new_addr))],
                )
                .spec(),
        )
        .await;
    until_ejected(&proxy, "new").await;
    let new = new.wake("new");

    let stopped = support::backend::closed_port().await;
    proxy.swap(
        &table()
            .vhost(
                "s.tld",
                vec![path("/", &[])
                    .backend_at("old", Some(stopped))
                    .backend_at("new", Some(new_addr))],
            )
            .spec(),
    );
    assert_eq!(backend_json(&proxy, "s.tld", "new")["ejected"], true);
    for _ in 0..4 {
        let reply = get(proxy.addr, "s.tld", "/").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.backend(), "new");
    }
    assert!(new.requests() >= 4);
}
