//! The Swarm provider in process, against testkit's synthetic engine playing a Swarm manager:
//! a service routed by a service label, one backend per task on the task's own address (never
//! on `ingress`), scaling followed, a task leaving before its container stops, removal → 503;
//! `/readyz` waits for the first poll, and says why with `--swarm=true` off a manager.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dockhand::app::App;
use dockhand::config::Args;
use dockhand_testkit::echo;
use dockhand_testkit::synthetic::SyntheticEngine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener};

const DEADLINE: Duration = Duration::from_secs(10);
const HOST: &str = "web.swarm.local";

/// `GET path` with `Host: host` on a new connection: status (0 when nothing answered) and body.
async fn get(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = (answer.split(' ').nth(1)).and_then(|code| code.parse().ok());
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status.unwrap_or(0), body.unwrap_or_default())
}

/// Polls `check` until it holds, or fails with `what` after the deadline.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {DEADLINE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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

/// dockhand running in process against `engine` with `--swarm=true`.
struct Running {
    http: SocketAddr,
    admin: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<Result<(), dockhand::app::AppError>>,
    engine: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(engine: &Arc<SyntheticEngine>) -> Running {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let socket = dir.path().join("engine.sock");
    let listener = UnixListener::bind(&socket).expect("the engine's socket binds");
    let serving_engine = tokio::spawn(engine.clone().serve(listener));
    let args = Args::try_parse_from([
        "dockhand",
        "--bind=127.0.0.1",
        "--http-port=0",
        "--https-port=0",
        "--admin=127.0.0.1:0",
        &format!("--docker-host=unix://{}", socket.display()),
        &format!("--certs-dir={}", dir.path().display()),
        "--shutdown-grace=1s",
        "--swarm=true",
        "--swarm-poll-interval=50ms",
    ])
    .expect("flags parse");
    let config = args.validate().expect("a valid configuration");
    let app = App::build(config, vec![tokio::runtime::Handle::current()])
        .await
        .expect("the app builds");
    let (http, admin) = (app.http_addr(), app.admin_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    Running {
        http,
        admin,
        stop,
        running,
        engine: serving_engine,
        _dir: dir,
    }
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).expect("the app is still running");
        let ended = tokio::time::timeout(DEADLINE, self.running).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        self.engine.abort();
    }
}

fn synthetic(port: u16) -> Arc<SyntheticEngine> {
    let fixture = serde_json::from_str(include_str!("../discovery/tests/fixtures/app-web-1.json"))
        .expect("the fixture is JSON");
    SyntheticEngine::new(fixture, SocketAddr::from(([127, 0, 0, 1], port)))
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
    let app = start(&engine).await;
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
    let app = start(&engine).await;
    eventually("/readyz 503 naming the swarm", || async {
        let (status, body) = get(app.admin, "admin", "/readyz").await;
        status == 503 && body.contains("not in a swarm")
    })
    .await;
    let (_, routes) = get(app.admin, "admin", "/api/routes").await;
    assert!(routes.contains("\"ready\": false"), "{routes}");
    app.stop().await;
}
