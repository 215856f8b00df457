//! Swarm contract tests: services and tasks saved from a single-node swarm
//! (`tests/fixtures/swarm/`), then hand-edited variants of them.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use bollard::models::{Service, TaskSpecContainerSpec, TaskState};
use dockhand_spec::{HttpsPolicy, PathSpec, Readiness, VhostSpec};
use serde::de::DeserializeOwned;

use super::*;
use crate::contract::Reach;

const NET: &str = "fx-swarm-net";
const NET_ID: &str = "b2hl90egu8ahlks0izu5z2gug";
const A_ID: &str = "zd152f52bkerxsgdrzlzbk4ho";
const A_TASK_1: &str = "tg22uwy70dt42uan0ygkyi6rr";
const A_TASK_2: &str = "7qmlz9e41wy6dhwkh2uq620di";
const B_TASK_1: &str = "uke515fnnseqok3dre8c4w6zv";
const NODE: &str = "mjcg2imggzj5ijepfjfmtjw8v";

fn load<T: DeserializeOwned>(file: &str) -> T {
    let path = format!("{}/tests/fixtures/swarm/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn service(name: &str) -> Service {
    load(&format!("{name}.service.json"))
}

fn tasks(name: &str) -> Vec<SwarmTask> {
    load(&format!("{name}.tasks.json"))
}

fn reach(networks: &[&str]) -> Reach {
    Reach::Networks(
        networks
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>(),
    )
}

fn vhosts(name: &str, tasks: &[SwarmTask], reach: &Reach) -> Vec<VhostSpec> {
    let service = service(name);
    let (vhosts, errors) = swarm_vhosts([(&service, tasks)], reach, &HttpsPolicy::default());
    assert_eq!(errors, []);
    vhosts
}

fn only_path(vhosts: &[VhostSpec]) -> &PathSpec {
    assert_eq!(vhosts.len(), 1, "{vhosts:?}");
    assert_eq!(vhosts[0].paths.len(), 1, "{vhosts:?}");
    &vhosts[0].paths[0]
}

fn backend_ids(vhosts: &[VhostSpec]) -> Vec<&str> {
    only_path(vhosts)
        .backends
        .iter()
        .map(|b| b.id.as_str())
        .collect()
}

fn addr(ip: &str, port: u16) -> Option<SocketAddr> {
    Some(SocketAddr::new(ip.parse::<IpAddr>().ok()?, port))
}

fn container_spec(s: &mut Service) -> &mut TaskSpecContainerSpec {
    s.spec
        .as_mut()
        .and_then(|s| s.task_template.as_mut())
        .and_then(|t| t.container_spec.as_mut())
        .expect("fixture has a container spec")
}

/// Service `fx-swarm-a` with its service labels replaced by `service`, its container spec's
/// labels by `container` and its env by `env`.
fn service_with(
    env: &[&str],
    container: &[(&str, &str)],
    service_labels: &[(&str, &str)],
) -> Service {
    let map = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let mut s = service("fx-swarm-a");
    if let Some(spec) = s.spec.as_mut() {
        spec.labels = Some(map(service_labels));
    }
    let c = container_spec(&mut s);
    c.labels = Some(map(container));
    c.env = Some(env.iter().map(|e| (*e).to_owned()).collect());
    s
}

#[test]
fn service_label_routes_every_running_task_on_port_80() {
    let vhosts = vhosts("fx-swarm-a", &tasks("fx-swarm-a"), &reach(&[NET]));
    assert_eq!(vhosts[0].host, "a.swarm.test");
    let path = only_path(&vhosts);
    assert_eq!(path.path, "/");
    let backends: Vec<_> = path
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.id.as_str(), b.addr, b.readiness))
        .collect();
    assert_eq!(
        backends,
        [
            (
                "fx-swarm-a.1",
                A_TASK_1,
                addr("10.0.1.3", 80),
                Readiness::Ready
            ),
            (
                "fx-swarm-a.2",
                A_TASK_2,
                addr("10.0.1.4", 80),
                Readiness::Ready
            ),
        ]
    );
}

#[test]
fn container_spec_env_and_label_route_with_virtual_port() {
    let vhosts = vhosts("fx-swarm-b", &tasks("fx-swarm-b"), &reach(&[NET]));
    assert_eq!(vhosts[0].host, "b.swarm.test");
    let path = only_path(&vhosts);
    // VIRTUAL_PATH comes from the container spec's label (`--container-label`).
    assert_eq!(path.path, "/b/");
    assert_eq!(path.backends.len(), 1);
    assert_eq!(path.backends[0].name, "fx-swarm-b.1");
    assert_eq!(path.backends[0].id, B_TASK_1);
    assert_eq!(path.backends[0].addr, addr("10.0.1.6", 8080));
}

#[test]
fn services_sharing_a_host_share_its_vhost() {
    let a = service("fx-swarm-a");
    // fx-swarm-b moved onto a's host and path.
    let mut b = service("fx-swarm-b");
    let container = container_spec(&mut b);
    container.env = Some(vec!["VIRTUAL_HOST=a.swarm.test".to_owned()]);
    container.labels = None;
    let (a_tasks, mut b_tasks) = (tasks("fx-swarm-a"), tasks("fx-swarm-b"));
    b_tasks.truncate(1);
    let (vhosts, errors) = swarm_vhosts(
        [(&a, &a_tasks[..]), (&b, &b_tasks[..])],
        &reach(&[NET]),
        &HttpsPolicy::default(),
    );
    assert_eq!(errors, []);
    assert_eq!(backend_ids(&vhosts), [A_TASK_1, A_TASK_2, B_TASK_1]);
}

#[test]
fn tasks_are_reached_by_network_id_or_from_the_host() {
    let by_id = vhosts("fx-swarm-a", &tasks("fx-swarm-a"), &reach(&[NET_ID]));
    assert_eq!(backend_ids(&by_id), [A_TASK_1, A_TASK_2]);
    let anywhere = vhosts("fx-swarm-a", &tasks("fx-swarm-a"), &Reach::AnyNetwork);
    assert_eq!(backend_ids(&anywhere), [A_TASK_1, A_TASK_2]);
}

#[test]
fn tasks_on_unshared_networks_are_not_routed() {
    let vhosts = vhosts("fx-swarm-a", &tasks("fx-swarm-a"), &reach(&["other"]));
    assert_eq!(vhosts, []);
}

#[test]
fn desired_state_shutdown_is_not_routed() {
    let mut tasks = tasks("fx-swarm-a");
    // As during an update or scale-down: still running, but leaving.
    tasks[0].desired_state = Some(TaskState::SHUTDOWN);
    assert!(!is_routable_task(&tasks[0]));
    let vhosts = vhosts("fx-swarm-a", &tasks, &reach(&[NET]));
    assert_eq!(backend_ids(&vhosts), [A_TASK_2]);
}

#[test]
fn observed_state_starting_is_not_routed() {
    let mut tasks = tasks("fx-swarm-a");
    if let Some(status) = tasks[1].status.as_mut() {
        status.state = Some(TaskState::STARTING);
    }
    assert!(!is_routable_task(&tasks[1]));
    let vhosts = vhosts("fx-swarm-a", &tasks, &reach(&[NET]));
    assert_eq!(backend_ids(&vhosts), [A_TASK_1]);
}

#[test]
fn no_running_task_means_no_vhost() {
    let mut tasks = tasks("fx-swarm-a");
    for t in &mut tasks {
        t.status = None;
    }
    assert_eq!(vhosts("fx-swarm-a", &tasks, &reach(&[NET])), []);
}

#[test]
fn ingress_only_task_has_no_backend() {
    let mut tasks = tasks("fx-swarm-a");
    let ingress: NetworkAttachment = serde_json::from_str(
        r#"{"Network": {"ID": "qbqqyu0spjj28tpwybn5ihym0",
            "Spec": {"Name": "ingress", "Ingress": true}}, "Addresses": ["10.0.0.7/24"]}"#,
    )
    .expect("valid attachment");
    tasks[0].networks = Some(vec![ingress.clone()]);
    // Even from the host, where every network is reachable, ingress is never used.
    assert_eq!(task_address(&tasks[0], &Reach::AnyNetwork), None);
    let vhosts = vhosts("fx-swarm-a", &tasks, &Reach::AnyNetwork);
    assert_eq!(backend_ids(&vhosts), [A_TASK_2]);
    // Beside a shared overlay, the overlay address is used, whatever the order.
    let overlay = tasks[1].networks.as_ref().expect("fixture networks")[0].clone();
    tasks[1].networks = Some(vec![ingress, overlay]);
    assert_eq!(
        task_address(&tasks[1], &Reach::AnyNetwork),
        "10.0.1.4".parse().ok()
    );
}

#[test]
fn malformed_addresses_are_skipped() {
    let mut tasks = tasks("fx-swarm-a");
    let attachment = &mut tasks[0].networks.as_mut().expect("fixture networks")[0];
    attachment.addresses = Some(vec![
        "nonsense".into(),
        "fd00::3/64".into(),
        "10.0.1.9/24".into(),
    ]);
    assert_eq!(
        task_address(&tasks[0], &reach(&[NET])),
        "10.0.1.9".parse().ok()
    );
    attachment_addresses(&mut tasks[0], &["fd00::3/64"]);
    assert_eq!(
        task_address(&tasks[0], &reach(&[NET])),
        "fd00::3".parse().ok()
    );
    attachment_addresses(&mut tasks[0], &[]);
    assert_eq!(task_address(&tasks[0], &reach(&[NET])), None);
    tasks[0].networks = None;
    assert_eq!(task_address(&tasks[0], &Reach::AnyNetwork), None);
}

fn attachment_addresses(task: &mut SwarmTask, addresses: &[&str]) {
    if let Some(a) = task.networks.as_mut().and_then(|n| n.first_mut()) {
        a.addresses = Some(addresses.iter().map(|s| (*s).to_owned()).collect());
    }
}

#[test]
fn service_labels_win_over_container_labels_over_env() {
    let s = service_with(
        &[
            "VIRTUAL_HOST=env.test",
            "VIRTUAL_PORT=81",
            "VIRTUAL_PATH=/env/",
        ],
        &[("VIRTUAL_HOST", "container.test"), ("VIRTUAL_PORT", "82")],
        &[("VIRTUAL_HOST", "service.test")],
    );
    let routes = parse_service(&s).expect("valid").expect("routed");
    assert_eq!(routes.hosts.len(), 1);
    assert_eq!(routes.hosts[0].host, "service.test");
    let path = &routes.hosts[0].paths[0];
    assert_eq!((path.path.as_str(), path.port), ("/env/", 82));
    assert_eq!(routes.id, A_ID);
    assert_eq!(routes.name, "fx-swarm-a");
}

#[test]
fn default_port_is_80_whatever_else_is_set() {
    let s = service_with(&["VIRTUAL_HOST=x.test", "LISTEN_PORTS=8080"], &[], &[]);
    let routes = parse_service(&s).expect("valid").expect("routed");
    assert_eq!(routes.hosts[0].paths[0].port, 80);
}

#[test]
fn port_80_is_noted_only_without_virtual_port_or_multiports() {
    assert!(uses_fallback_port(&service("fx-swarm-a")));
    assert!(!uses_fallback_port(&service("fx-swarm-b")));
    let labelled = service_with(&["VIRTUAL_HOST=x.test"], &[("VIRTUAL_PORT", "81")], &[]);
    assert!(!uses_fallback_port(&labelled));
    assert!(!uses_fallback_port(&service_with(&[], &[], &[])));
}

#[test]
fn backends_say_which_service_task_slot_and_node_they_come_from() {
    let vhosts = vhosts("fx-swarm-a", &tasks("fx-swarm-a"), &reach(&[NET]));
    let origin = &only_path(&vhosts).backends[0].origin;
    assert_eq!(origin.provider(), "swarm");
    let expected = dockhand_spec::TaskOrigin {
        service: "fx-swarm-a".to_owned(),
        task: A_TASK_1.to_owned(),
        slot: Some(1),
        node: Some(NODE.to_owned()),
    };
    assert_eq!(origin.task(), Some(&expected));
}

#[test]
fn multiports_and_balancing_come_through_the_container_contract() {
    let s = service_with(
        &[],
        &[],
        &[
            (
                "VIRTUAL_HOST_MULTIPORTS",
                "m.test:\n  \"/api/\":\n    port: 9000\n",
            ),
            (crate::contract::LOADBALANCE_LABEL, "least_conn;"),
        ],
    );
    let (vhosts, errors) = swarm_vhosts(
        [(&s, &tasks("fx-swarm-a")[..])],
        &reach(&[NET]),
        &HttpsPolicy::default(),
    );
    assert_eq!(errors, []);
    let path = only_path(&vhosts);
    assert_eq!(path.path, "/api/");
    assert_eq!(path.balance, dockhand_spec::Balance::LeastConn);
    assert_eq!(path.backends[0].addr, addr("10.0.1.3", 9000));
}

#[test]
fn unrouted_service_yields_nothing() {
    let s = service_with(&["LISTEN_PORTS=80"], &[], &[]);
    assert_eq!(parse_service(&s), Ok(None));
}

#[test]
fn bad_virtual_host_skips_the_service_and_names_it() {
    let bad = service_with(&[], &[], &[("VIRTUAL_HOST", "~^(unclosed")]);
    let good = service("fx-swarm-b");
    let (a_tasks, b_tasks) = (tasks("fx-swarm-a"), tasks("fx-swarm-b"));
    let (vhosts, errors) = swarm_vhosts(
        [(&bad, &a_tasks[..]), (&good, &b_tasks[..])],
        &reach(&[NET]),
        &HttpsPolicy::default(),
    );
    assert_eq!(vhosts.len(), 1);
    assert_eq!(vhosts[0].host, "b.swarm.test");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].service, "fx-swarm-a");
    assert_eq!(errors[0].error.variable, "VIRTUAL_HOST");
    let shown = errors[0].to_string();
    assert!(
        shown.starts_with("service fx-swarm-a: invalid VIRTUAL_HOST"),
        "{shown}"
    );
}

#[test]
fn tasks_of_other_services_are_ignored() {
    let vhosts = vhosts("fx-swarm-a", &tasks("fx-swarm-b"), &reach(&[NET]));
    assert_eq!(vhosts, []);
}

#[test]
fn task_names_follow_slot_then_node_then_id() {
    let mut t = tasks("fx-swarm-a").remove(0);
    assert_eq!(task_name("web", &t), "web.1");
    t.slot = None;
    assert_eq!(task_name("web", &t), format!("web.{NODE}"));
    t.node_id = None;
    assert_eq!(task_name("web", &t), format!("web.{A_TASK_1}"));
    t.id = None;
    assert_eq!(task_name("web", &t), "web.");
}

#[test]
fn empty_objects_do_not_panic() {
    let empty = Service::default();
    assert_eq!(parse_service(&empty), Ok(None));
    assert_eq!(service_name(&empty), "");
    let task: SwarmTask = serde_json::from_str("{}").expect("an empty task parses");
    assert!(!is_routable_task(&task));
    assert_eq!(task_address(&task, &Reach::AnyNetwork), None);
    let nulls: SwarmTask = serde_json::from_str(
        r#"{"NetworksAttachments": [{"Network": null, "Addresses": null}, {}]}"#,
    )
    .expect("nulls parse");
    assert_eq!(task_address(&nulls, &Reach::AnyNetwork), None);
}
