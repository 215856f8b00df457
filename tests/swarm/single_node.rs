//! On a single-node swarm: services routed by service labels and by container-spec env, one
//! backend per task, scaling followed, rolling updates (start-first and stop-first) and a killed
//! task container under steady load with no failed request, and removal → 503.

use std::collections::BTreeSet;
use std::time::Duration;

use dockhand_testkit::assert_eventually;

use crate::support::*;
use crate::Test;

pub const TESTS: &[Test] = &[
    (
        "a_service_label_routes_tasks_whose_containers_lack_it",
        a_service_label_routes_tasks_whose_containers_lack_it,
    ),
    (
        "container_spec_env_with_virtual_port_routes",
        container_spec_env_with_virtual_port_routes,
    ),
    (
        "tasks_are_balanced_one_backend_each_and_scaling_is_followed",
        tasks_are_balanced_one_backend_each_and_scaling_is_followed,
    ),
    (
        "rolling_updates_start_first_and_stop_first_lose_nothing",
        rolling_updates_start_first_and_stop_first_lose_nothing,
    ),
    (
        "a_killed_task_container_loses_nothing",
        a_killed_task_container_loses_nothing,
    ),
    (
        "a_removed_service_answers_503",
        a_removed_service_answers_503,
    ),
];

/// Client threads of the steady load.
const CLIENTS: usize = 4;

/// Limit on one request of the load: above dockhand's connect timeout (5 s), so that a request
/// retried on another backend after a connect to a vanished task timed out counts as served.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

fn a_service_label_routes_tasks_whose_containers_lack_it(cluster: &Cluster) {
    let host = "label.swarm.test";
    let vhost = format!("VIRTUAL_HOST={host}");
    let service = cluster.service("label", &["--label", &vhost]);
    cluster.proxy.wait_routed(cluster, host, &service, 1);
    assert_eq!(cluster.proxy.status(host), 200);

    // The label is the service's own: the task's container carries neither it nor the env.
    let (task, node, container) = cluster.running_tasks(&service).remove(0);
    let config = cluster.swarm.docker(&[
        "inspect",
        "--format",
        "{{json .Config.Labels}} {{json .Config.Env}}",
        &container,
    ]);
    assert!(!config.contains("VIRTUAL_HOST"), "{config}");

    // /api/routes says where the backend comes from.
    let backends = cluster.proxy.backends(host);
    assert_eq!(backends.len(), 1, "{backends:?}");
    let backend = &backends[0];
    assert_eq!(backend["provider"], "swarm", "{backend}");
    assert_eq!(backend["swarm"]["service"], "label", "{backend}");
    assert_eq!(backend["swarm"]["task"], task.as_str(), "{backend}");
    assert_eq!(backend["swarm"]["slot"], 1, "{backend}");
    assert_eq!(backend["swarm"]["node"], node.as_str(), "{backend}");
    assert_eq!(node, cluster.swarm.manager().id());

    // No VIRTUAL_PORT and no EXPOSE known for a service: port 80, said once.
    assert!(backend["addr"].as_str().is_some_and(|a| a.ends_with(":80")));
    let log = cluster.proxy.log();
    assert_eq!(
        log.matches("no VIRTUAL_PORT and no known EXPOSE; using port 80")
            .count(),
        1,
        "{log}"
    );
    // The route log names the task, its service and its node.
    assert!(
        log.lines().any(|l| l.contains("backend added")
            && l.contains(host)
            && l.contains(&task[..12])
            && l.contains("service label")
            && l.contains(&node[..12])),
        "{log}"
    );
    // The dashboard shows it too (its script renders /api/routes' `swarm` object).
    let dashboard = cluster.proxy.admin_get("/").expect("dashboard").text();
    assert!(dashboard.contains("swarm: service"), "{dashboard}");
}

fn container_spec_env_with_virtual_port_routes(cluster: &Cluster) {
    let host = "env.swarm.test";
    let vhost = format!("VIRTUAL_HOST={host}");
    let args = [
        "--env",
        vhost.as_str(),
        "--env",
        "VIRTUAL_PORT=8081",
        "--env",
        "LISTEN_PORTS=8081",
    ];
    let service = cluster.service("env", &args);
    cluster.proxy.wait_routed(cluster, host, &service, 1);
    let response = dockhand_testkit::http::get(cluster.proxy.http, host, "/").expect("answers");
    assert_eq!(response.status, 200);
    assert_eq!(response.echo().expect("echo").port, 8081);
}

fn tasks_are_balanced_one_backend_each_and_scaling_is_followed(cluster: &Cluster) {
    let host = "balanced.swarm.test";
    let vhost = format!("VIRTUAL_HOST={host}");
    let service = cluster.service("balanced", &["--label", &vhost, "--replicas", "2"]);
    cluster.proxy.wait_routed(cluster, host, &service, 2);
    assert_served_by_every_task(cluster, host, &service);

    cluster
        .swarm
        .docker(&["service", "scale", "--detach", "balanced=3"]);
    cluster.proxy.wait_routed(cluster, host, &service, 3);
    assert_eq!(
        cluster.proxy.backends(host).len(),
        3,
        "one backend per task"
    );
    assert_served_by_every_task(cluster, host, &service);
}

/// Round robin reaches each running task's container (the echo's hostname is its short ID).
fn assert_served_by_every_task(cluster: &Cluster, host: &str, service: &str) {
    let containers: BTreeSet<String> = cluster
        .running_tasks(service)
        .into_iter()
        .map(|(_, _, container)| container[..12].to_owned())
        .collect();
    let served: BTreeSet<String> = (0..containers.len() * 4)
        .filter_map(|_| cluster.proxy.served_by(host))
        .collect();
    assert_eq!(served, containers);
}

fn rolling_updates_start_first_and_stop_first_lose_nothing(cluster: &Cluster) {
    let host = "rolling.swarm.test";
    let vhost = format!("VIRTUAL_HOST={host}");
    let args = [
        "--label",
        vhost.as_str(),
        "--replicas",
        "2",
        "--update-parallelism",
        "1",
        "--update-delay",
        "0s",
        "--update-monitor",
        "1s",
    ];
    let service = cluster.service("rolling", &args);
    cluster.proxy.wait_routed(cluster, host, &service, 2);

    let load = Load::start(&cluster.proxy, host, CLIENTS, REQUEST_TIMEOUT);
    load.wait_for_more(50);
    for (order, version) in [("start-first", "1"), ("stop-first", "2")] {
        let before = cluster.proxy.routed_tasks(host);
        let env = format!("VERSION={version}");
        // Without --detach the CLI returns once the update converged.
        cluster.swarm.docker(&[
            "service",
            "update",
            "--quiet",
            "--update-order",
            order,
            "--env-add",
            &env,
            &service,
        ]);
        cluster.proxy.wait_routed(cluster, host, &service, 2);
        let after = cluster.proxy.routed_tasks(host);
        assert!(before.is_disjoint(&after), "{order}: every task replaced");
        load.wait_for_more(100);
    }
    assert_nothing_lost(&load.finish());
}

fn a_killed_task_container_loses_nothing(cluster: &Cluster) {
    let host = "killed.swarm.test";
    let vhost = format!("VIRTUAL_HOST={host}");
    let service = cluster.service("killed", &["--label", &vhost, "--replicas", "2"]);
    cluster.proxy.wait_routed(cluster, host, &service, 2);

    let load = Load::start(&cluster.proxy, host, CLIENTS, REQUEST_TIMEOUT);
    load.wait_for_more(50);
    let (victim, _, container) = cluster.running_tasks(&service).remove(0);
    cluster.swarm.docker(&["kill", &container]);
    // The orchestrator replaces it (as restart=always would), and the new task is routed.
    assert_eventually!(
        !cluster.proxy.routed_tasks(host).contains(&victim),
        CONVERGE
    );
    cluster.proxy.wait_routed(cluster, host, &service, 2);
    load.wait_for_more(100);
    let report = load.finish();
    println!(
        "killed task container: {} requests ok, {} slower than 1 s, {} failed",
        report.ok,
        report.slow,
        report.failures.len()
    );
    assert_nothing_lost(&report);
}

fn a_removed_service_answers_503(cluster: &Cluster) {
    let host = "removed.swarm.test";
    let vhost = format!("VIRTUAL_HOST={host}");
    let service = cluster.service("removed", &["--label", &vhost]);
    cluster.proxy.wait_routed(cluster, host, &service, 1);
    assert_eq!(cluster.proxy.status(host), 200);
    cluster.swarm.docker(&["service", "rm", &service]);
    assert_eventually!(
        cluster.proxy.status(host) == 503,
        CONVERGE,
        "{host} still answers {}",
        cluster.proxy.status(host)
    );
    assert!(cluster.proxy.backends(host).is_empty());
}
