//! The Swarm provider in process, against testkit's synthetic engine playing a Swarm manager:
//! a service routed by a service label, one backend per task on the task's own address (never
//! on `ingress`), scaling followed, a task leaving before its container stops, removal → 503;
//! `/readyz` waits for the first poll, and says why with `--swarm=true` off a manager.

mod in_process;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use dockhand_testkit::echo;
use in_process::{eventually, get, start, synthetic};
use serde_json::{json, Value};

const HOST: &str = "web.swarm.local";
/// The Swarm provider on, polling often.
const SWARM: &[&str] = &["--swarm=true", "--swarm-poll-interval=50ms"];

/// Every backend in `/api/routes` as `task ID@address`.
async fn backends(admin: SocketAddr) -> BTreeSet<String> {
    fn collect(value: &Value, into: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                if let (Some(id), Some(addr)) = (map.get("container_id"), map.get("addr")) {
                    into.insert(format!("{}@{}", id.as_str().unwrap_or(""), addr));
                }
                map.values().for_each(|v| collect(v, into));
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, into)),
            _ => {}
        }
    }
    let (_, body) = get(admin, "admin", "/api/routes").await;
    let mut found = BTreeSet::new();
    collect(
        &serde_json::from_str(&body).unwrap_or(Value::Null),
        &mut found,
    );
    found
}

/// Service `web`, routed by service labels only: its container spec sets nothing.
fn service(port: u16, replicas: u64) -> Value {
    json!({
        "ID": "svc-web",
        "Spec": {
            "Name": "web",
            "Labels": { "VIRTUAL_HOST": HOST, "VIRTUAL_PORT": port.to_string() },
            "TaskTemplate": { "ContainerSpec": { "Image": "echo:test" } },
            "Mode": { "Replicated": { "Replicas": replicas } }
        }
    })
}

/// Task `slot` of `web` at 127.0.0.`slot` on `app_net`, and on `ingress` at an address that
/// must never be used.
fn task(slot: u8, desired: &str) -> Value {
    json!({
        "ID": format!("task-{slot}"),
        "ServiceID": "svc-web",
        "NodeID": "synthetic-node",
        "Slot": slot,
        "DesiredState": desired,
        "Status": { "State": "running" },
        "NetworksAttachments": [
            { "Network": { "ID": "net-ingress", "Spec": { "Name": "ingress", "Ingress": true } },
              "Addresses": ["10.255.0.9/16"] },
            { "Network": { "ID": "net-app", "Spec": { "Name": "app_net" } },
              "Addresses": [format!("127.0.0.{slot}/8")] }
        ]
    })
}

fn expected(port: u16, slots: &[u8]) -> BTreeSet<String> {
    (slots.iter())
        .map(|s| format!("task-{s}@\"127.0.0.{s}:{port}\""))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_services_are_routed_to_their_tasks_and_followed() {
    let backend = echo::spawn(echo::Config {
        ports: vec![0],
        name: "task".to_owned(),
        ..echo::Config::default()
    })
    .expect("the echo backend starts");
    let port = backend.addr().port();
    let engine = synthetic(port);
    engine.enable_swarm();
    engine.set_service(service(port, 2));
    engine.set_tasks(vec![task(1, "running"), task(2, "running")]);
    let app = start(&engine, SWARM).await;
    let (http, admin) = (app.http, app.admin);

    // Ready only once the first poll is published: the tasks are in the table by then.
    eventually("/readyz 200", || async {
        get(admin, "admin", "/readyz").await.0 == 200
    })
    .await;
    assert_eq!(backends(admin).await, expected(port, &[1, 2]));
    let (_, routes) = get(admin, "admin", "/api/routes").await;
    let routes: Value = serde_json::from_str(&routes).expect("JSON");
    let first = &routes["table"]["vhosts"][0]["paths"][0]["backends"][0];
    assert_eq!(first["provider"], "swarm", "{first}");
    let origin = json!({"service": "web", "task": "task-1", "slot": 1, "node": "synthetic-node"});
    assert_eq!(first["swarm"], origin, "{first}");

    // One backend per task, each on its own overlay address (never ingress, never a VIP).
    eventually("two tasks routed", || async {
        backends(admin).await == expected(port, &[1, 2])
    })
    .await;
    for _ in 0..4 {
        assert_eq!(get(http, HOST, "/").await.0, 200);
    }

    // Scale 2 → 3.
    engine.set_service(service(port, 3));
    engine.set_tasks(vec![
        task(1, "running"),
        task(2, "running"),
        task(3, "running"),
    ]);
    eventually("the third task routed", || async {
        backends(admin).await == expected(port, &[1, 2, 3])
    })
    .await;

    // Task 2 is to stop: it leaves while its container still runs (observed `running`).
    engine.set_tasks(vec![
        task(1, "running"),
        task(2, "shutdown"),
        task(3, "running"),
    ]);
    eventually("task 2 out of rotation", || async {
        backends(admin).await == expected(port, &[1, 3])
    })
    .await;
    assert_eq!(get(http, HOST, "/").await.0, 200);

    // The service is removed: its host is unknown again.
    engine.remove_service("svc-web");
    engine.set_tasks(Vec::new());
    eventually("503 once removed", || async {
        get(http, HOST, "/").await.0 == 503
    })
    .await;
    let (_, metrics) = get(admin, "admin", "/metrics").await;
    assert!(metrics.contains("dockhand_swarm_polls_total"), "{metrics}");

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_true_without_a_manager_is_not_ready_and_says_why() {
    let engine = synthetic(9);
    let app = start(&engine, SWARM).await;
    eventually("/readyz 503 naming the swarm", || async {
        let (status, body) = get(app.admin, "admin", "/readyz").await;
        status == 503 && body.contains("not in a swarm")
    })
    .await;
    let (_, routes) = get(app.admin, "admin", "/api/routes").await;
    assert!(routes.contains("\"ready\": false"), "{routes}");
    app.stop().await;
}
