//! `dockhand check` on a Swarm manager, against testkit's synthetic engine playing one: every
//! service is checked with its running tasks, as the Swarm provider reads them.

use std::net::SocketAddr;

use dockhand_discovery::check::{self, Kind, Verdict};
use dockhand_discovery::{Config, SwarmMode};
use dockhand_testkit::synthetic::SyntheticEngine;
use serde_json::{json, Value};
use tokio::net::UnixListener;

fn service(id: &str, name: &str, labels: Value) -> Value {
    json!({
        "ID": id,
        "Spec": {
            "Name": name,
            "Labels": labels,
            "TaskTemplate": { "ContainerSpec": { "Image": "echo:test" } },
            "Mode": { "Replicated": { "Replicas": 2 } }
        }
    })
}

fn task(service: &str, slot: u8, desired: &str) -> Value {
    json!({
        "ID": format!("{service}-task-{slot}"),
        "ServiceID": service,
        "NodeID": "synthetic-node",
        "Slot": slot,
        "DesiredState": desired,
        "Status": { "State": "running" },
        "NetworksAttachments": [
            { "Network": { "ID": "net-app", "Spec": { "Name": "app_net" } },
              "Addresses": [format!("10.0.9.{slot}/24")] }
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_swarm_services_and_their_running_tasks() {
    let fixture = serde_json::from_str(include_str!("../discovery/tests/fixtures/app-web-1.json"))
        .expect("the fixture is JSON");
    let engine = SyntheticEngine::new(fixture, SocketAddr::from(([127, 0, 0, 1], 80)));
    engine.enable_swarm();
    engine.set_service(service(
        "svc-web",
        "web",
        json!({ "VIRTUAL_HOST": "web.swarm.local", "VIRTUAL_PORT": "8080" }),
    ));
    engine.set_service(service(
        "svc-bad",
        "bad",
        json!({ "VIRTUAL_HOST": "bad.swarm.local", "VIRTUAL_PORT": "eighty" }),
    ));
    engine.set_tasks(vec![
        task("svc-web", 1, "running"),
        task("svc-web", 2, "running"),
        // Being stopped: not a backend any more.
        task("svc-web", 3, "shutdown"),
    ]);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let socket = dir.path().join("engine.sock");
    let listener = UnixListener::bind(&socket).expect("the engine's socket binds");
    let serving = tokio::spawn(engine.clone().serve(listener));
    let config = Config {
        docker_host: format!("unix://{}", socket.display()),
        swarm: SwarmMode::Auto,
        ..Config::default()
    };

    let checks = check::check(&config).await.expect("the engine answers");
    serving.abort();
    let web = checks
        .iter()
        .find(|c| c.name == "web")
        .expect("web checked");
    assert_eq!(
        (web.kind, web.verdict),
        (Kind::Service, Verdict::Routed),
        "{checks:#?}"
    );
    assert_eq!(web.routes[0].port, 8080);
    let mut tasks: Vec<(&str, String)> = (checks.iter())
        .filter(|c| c.kind == Kind::Task)
        .map(|c| {
            (
                c.name.as_str(),
                c.address.map(|a| a.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    tasks.sort();
    assert_eq!(
        tasks,
        [
            ("web.1", "10.0.9.1".to_owned()),
            ("web.2", "10.0.9.2".to_owned())
        ],
        "{checks:#?}"
    );
    let bad = checks
        .iter()
        .find(|c| c.name == "bad")
        .expect("bad checked");
    assert_eq!(bad.verdict, Verdict::Skipped, "{bad:?}");
    assert!(bad.problems[0].contains("VIRTUAL_PORT"), "{bad:?}");

    // DOCKHAND_SWARM=false: the Swarm provider would not run, so no service is checked.
    let listener = UnixListener::bind(dir.path().join("again.sock")).expect("binds");
    let serving = tokio::spawn(engine.clone().serve(listener));
    let off = Config {
        docker_host: format!("unix://{}", dir.path().join("again.sock").display()),
        swarm: SwarmMode::Off,
        ..Config::default()
    };
    let checks = check::check(&off).await.expect("the engine answers");
    serving.abort();
    assert!(
        checks.iter().all(|c| c.kind == Kind::Container),
        "{checks:#?}"
    );
}
