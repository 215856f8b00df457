//! On a 3-node swarm (node 1 the manager, where dockhand runs): tasks on the other nodes are
//! routed over the overlay, and a worker powered off under steady load leaves the rotation as
//! soon as it is marked down while its replacements are routed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dockhand_testkit::{assert_eventually, free_port, Process};

use crate::support::*;
use crate::Test;

pub const TESTS: &[Test] = &[
    (
        "tasks_on_every_node_are_routed_from_the_manager",
        tasks_on_every_node_are_routed_from_the_manager,
    ),
    (
        "dockhand_on_a_worker_is_not_ready_and_says_why",
        dockhand_on_a_worker_is_not_ready_and_says_why,
    ),
    (
        "a_powered_off_worker_leaves_the_rotation_once_marked_down",
        a_powered_off_worker_leaves_the_rotation_once_marked_down,
    ),
];

/// Client threads of the steady load.
const CLIENTS: usize = 4;

/// Limit on one request of the load: above dockhand's connect timeout (5 s), so a request sent
/// to the dead node and retried on another backend counts as served (slowly), not failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

fn tasks_on_every_node_are_routed_from_the_manager(cluster: &Cluster) {
    let host = "spread.swarm.test";
    let vhost = format!("VIRTUAL_HOST={host}");
    let args = [
        "--label",
        vhost.as_str(),
        "--replicas",
        "3",
        "--replicas-max-per-node",
        "1",
    ];
    let service = cluster.service("spread", &args);
    cluster.proxy.wait_routed(cluster, host, &service, 3);

    let nodes: BTreeSet<String> = cluster
        .proxy
        .backends(host)
        .iter()
        .filter_map(|b| b["swarm"]["node"].as_str().map(str::to_owned))
        .collect();
    let all: BTreeSet<String> = cluster
        .swarm
        .nodes()
        .iter()
        .map(|n| n.id().to_owned())
        .collect();
    assert_eq!(nodes, all, "one task on each node, each routed");
    let containers: BTreeSet<String> = cluster
        .running_tasks(&service)
        .into_iter()
        .map(|(_, _, container)| container[..12].to_owned())
        .collect();
    let served: BTreeSet<String> = (0..12)
        .filter_map(|_| cluster.proxy.served_by(host))
        .collect();
    assert_eq!(
        served, containers,
        "every node's task answers through dockhand"
    );
    cluster.swarm.docker(&["service", "rm", &service]);
}

/// `DOCKHAND_SWARM=true` against a worker's engine: `/readyz` answers 503 naming the reason,
/// and the log says dockhand must run on a manager.
fn dockhand_on_a_worker_is_not_ready_and_says_why(cluster: &Cluster) {
    let worker = cluster.swarm.node(2);
    let (http, https, admin) = (free_port(), free_port(), free_port());
    // setpriv: dies with this test's thread even if the test process is killed.
    let mut command = std::process::Command::new("setpriv");
    command
        .args(["--pdeathsig", "KILL", "--", DOCKHAND])
        .env_clear()
        .args(["--http-port", &http.to_string()])
        .args(["--https-port", &https.to_string()])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .env("DOCKER_HOST", worker.host())
        .env("DOCKHAND_SWARM", "true")
        .env("DOCKHAND_CERTS_DIR", "/nonexistent/dockhand-test-certs")
        .env("DOCKHAND_LOG", "info,dockhand::access=off");
    let process = Process::spawn(&mut command);
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
    let readyz = || dockhand_testkit::http::get(admin, "admin", "/readyz").ok();
    assert_eventually!(
        readyz().is_some_and(|r| r.status == 503 && r.text().contains("worker")),
        Duration::from_secs(20),
        "readyz: {:?}\n{}",
        readyz().map(|r| (r.status, r.text())),
        process.log()
    );
    assert!(
        process.log().contains("must run on a manager") || process.log().contains("not a manager"),
        "{}",
        process.log()
    );
}

fn a_powered_off_worker_leaves_the_rotation_once_marked_down(cluster: &Cluster) {
    let host = "down.swarm.test";
    let vhost = format!("VIRTUAL_HOST={host}");
    // Spread placement puts one task on each node; two per node leaves room for the lost one.
    let args = [
        "--label",
        vhost.as_str(),
        "--replicas",
        "3",
        "--replicas-max-per-node",
        "2",
    ];
    let service = cluster.service("down", &args);
    cluster.proxy.wait_routed(cluster, host, &service, 3);
    let worker = cluster.swarm.node(3);
    let on_worker = |tasks: &[(String, String, String)]| -> Vec<String> {
        tasks
            .iter()
            .filter(|(_, node, _)| node == worker.id())
            .map(|(task, _, _)| task.clone())
            .collect()
    };
    let lost = on_worker(&cluster.running_tasks(&service));
    assert_eq!(lost.len(), 1, "spread placed one task on {}", worker.name());
    let lost = lost[0].clone();

    let load = Load::start(&cluster.proxy, host, CLIENTS, REQUEST_TIMEOUT);
    load.wait_for_more(100);
    let off_at = load.elapsed();
    let start = Instant::now();
    worker.power_off();
    let (mut down, mut left, mut replaced) = (None, None, None);
    while replaced.is_none() && start.elapsed() < CONVERGE {
        if down.is_none()
            && cluster
                .swarm
                .docker(&["node", "inspect", "-f", "{{.Status.State}}", worker.id()])
                == "down"
        {
            down = Some(start.elapsed());
        }
        let routed = cluster.proxy.routed_tasks(host);
        if left.is_none() && !routed.contains(&lost) {
            left = Some(start.elapsed());
        }
        if left.is_some() && routed.len() == 3 {
            let running: BTreeSet<String> = cluster
                .running_tasks(&service)
                .into_iter()
                .map(|(task, _, _)| task)
                .collect();
            if routed == running {
                replaced = Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    load.wait_for_more(200);
    let report = load.finish();
    println!(
        "node down: marked down after {down:?}, its task left the rotation after {left:?}, \
         replacement routed after {replaced:?}; {} requests ok, {} failed, {} slower than 1 s",
        report.ok,
        report.failures.len(),
        report.slow
    );
    for (at, failure) in &report.failures {
        let since = at
            .checked_sub(off_at)
            .map_or(-(off_at - *at).as_secs_f64(), |d| d.as_secs_f64());
        println!("  failed: sent {since:+.2} s after the power-off: {failure}");
    }
    let (down, left) = (down.expect("node marked down"), left.expect("task left"));
    assert!(replaced.is_some(), "the replacement was routed");
    assert!(
        left <= down + Duration::from_secs(1),
        "the lost task left {left:?}, the node was down at {down:?}"
    );
    // A request can only fail if it was already on its way to the dead node: sent before the
    // lost task left the rotation, on a connection the power cut left hanging.
    for (at, failure) in &report.failures {
        assert!(
            *at < off_at + left,
            "a request sent after the lost task left the rotation failed: {failure}"
        );
    }
    assert!(report.failures.len() <= CLIENTS, "{:?}", report.failures);
    assert_eventually!(cluster.proxy.routed_tasks(host).len() == 3, CONVERGE);
}
