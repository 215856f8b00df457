//! The Swarm provider's poll at 1,000 tasks: N services × M tasks made from the saved
//! fixtures `tests/fixtures/swarm/fx-swarm-a.service.json` and `fx-swarm-a.tasks.json`, each
//! service with its own ID, name and `VIRTUAL_HOST` (`s<i>.swarm.test`), each task with its own
//! ID, slot, container and address on `fx-swarm-net` (the network dockhand shares).
//!
//! The engine's answers are built as JSON bodies, in an order that is not the tasks' ID order
//! (the engine's is not stable, and the poll sorts). Steps of one poll (`swarm/poll.rs`):
//!
//! * `parse_tasks`: the `/tasks` body into `Vec<SwarmTask>` with `serde_json::from_slice`, as
//!   `fetch::get_json` does;
//! * `parse_services`: the `/services` body into `Vec<Service>`, as bollard's `list_services`
//!   does;
//! * `group`: the poll's step between fetching and describing, [`group_tasks`]: sort the tasks
//!   by service and ID, and key each service's slice of them by its ID;
//! * `swarm_vhosts`: the descriptions of every service and its tasks;
//! * `unchanged`: the poller's "nothing new" test, `published == Some(&vhosts)` on a
//!   `Vec<VhostSpec>` equal to (but built apart from) the last publication;
//! * `steady_poll`: all of the above in a row, a poll that finds nothing new (the I/O apart).
//!
//! For comparison, not what the poller does: `parse_tasks_bollard`, the same body into
//! bollard's `Vec<Task>` (no `#[serde(flatten)]`, no addresses), and `parse_tasks_slim`, into
//! a struct holding only the fields the contract reads.

use std::collections::{BTreeSet, HashMap};
use std::hint::black_box;
use std::net::Ipv4Addr;

use bollard::models::{Service, Task, TaskState};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dockhand_discovery::contract::Reach;
use dockhand_discovery::swarm::{group_tasks, swarm_vhosts, NetworkAttachment, SwarmTask};
use dockhand_spec::{HttpsPolicy, VhostSpec};
use serde::Deserialize;
use serde_json::{json, Value};

/// The dockhand binary's allocator, as in `scale.rs`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Services × tasks per service: 1,000 tasks each way.
const SHAPES: [(usize, usize); 2] = [(100, 10), (10, 100)];

/// The overlay network the fixture's tasks are on, and dockhand with them.
const NETWORK: &str = "fx-swarm-net";

fn load(file: &str) -> Value {
    let path = format!("{}/tests/fixtures/swarm/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The engine's two answers for `services` × `per_service` tasks: `/services` and `/tasks`.
struct Bodies {
    services: Vec<u8>,
    tasks: Vec<u8>,
}

fn bodies(services: usize, per_service: usize) -> Bodies {
    let service_fixture = load("fx-swarm-a.service.json");
    let task_fixture = load("fx-swarm-a.tasks.json")[0].clone();
    // The fixture's task runs on the overlay only: its first attachment is the one routed.
    assert_eq!(
        task_fixture["NetworksAttachments"][0]["Network"]["Spec"]["Name"],
        NETWORK
    );
    let total = services * per_service;
    let service_id = |i: usize| format!("svc{i:022}");
    let all_services: Vec<Value> = (0..services)
        .map(|i| {
            let mut s = service_fixture.clone();
            s["ID"] = json!(service_id(i));
            s["Spec"]["Name"] = json!(format!("bench-svc-{i}"));
            s["Spec"]["Labels"] = json!({ "VIRTUAL_HOST": format!("s{i}.swarm.test") });
            s["Spec"]["Mode"]["Replicated"]["Replicas"] = json!(per_service);
            s
        })
        .collect();
    // Listed slot by slot across services; IDs a permutation of 0..total (7,919 is prime and
    // divides neither count), so sorting by ID has work to do.
    let all_tasks: Vec<Value> = (0..total)
        .map(|k| {
            let (slot, service) = (k / services, k % services);
            let mut t = task_fixture.clone();
            t["ID"] = json!(format!("task{:021}", (k * 7_919) % total));
            t["ServiceID"] = json!(service_id(service));
            t["Slot"] = json!(slot + 1);
            t["Status"]["ContainerStatus"]["ContainerID"] = json!(format!("{k:064x}"));
            let [_, _, b, c] = u32::try_from(k + 2).map_or([0; 4], u32::to_be_bytes);
            let address = format!("{}/16", Ipv4Addr::new(10, 0, b, c));
            t["NetworksAttachments"][0]["Addresses"] = json!([address]);
            t
        })
        .collect();
    Bodies {
        services: serde_json::to_vec(&all_services).expect("JSON values serialize"),
        tasks: serde_json::to_vec(&all_tasks).expect("JSON values serialize"),
    }
}

fn parse_tasks(body: &[u8]) -> Vec<SwarmTask> {
    serde_json::from_slice(body).expect("the tasks body parses")
}

fn parse_services(body: &[u8]) -> Vec<Service> {
    serde_json::from_slice(body).expect("the services body parses")
}

/// Only what `swarm/contract.rs` reads of a task: for comparison with [`SwarmTask`].
#[derive(Deserialize)]
#[allow(dead_code)] // parsed to be timed, never read
struct SlimTask {
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "ServiceID")]
    service_id: Option<String>,
    #[serde(rename = "Slot")]
    slot: Option<i64>,
    #[serde(rename = "NodeID")]
    node_id: Option<String>,
    #[serde(rename = "DesiredState")]
    desired_state: Option<TaskState>,
    #[serde(rename = "Status")]
    status: Option<SlimStatus>,
    #[serde(rename = "NetworksAttachments")]
    networks: Option<Vec<NetworkAttachment>>,
}

#[derive(Deserialize)]
#[allow(dead_code)] // parsed to be timed, never read
struct SlimStatus {
    #[serde(rename = "State")]
    state: Option<TaskState>,
}

fn describe(
    services: &[Service],
    by_service: &HashMap<&str, &[SwarmTask]>,
    reach: &Reach,
    https: &HttpsPolicy,
) -> Vec<VhostSpec> {
    let pairs = services.iter().map(|s| {
        let id = s.id.as_deref().unwrap_or_default();
        (s, by_service.get(id).copied().unwrap_or(&[]))
    });
    let (vhosts, errors) = swarm_vhosts(pairs, reach, https);
    assert!(errors.is_empty(), "no service refused: {errors:?}");
    vhosts
}

/// One whole poll that finds `published` again: true when nothing is new.
fn steady_poll(
    bodies: &Bodies,
    reach: &Reach,
    https: &HttpsPolicy,
    published: &Option<Vec<VhostSpec>>,
) -> bool {
    let services = parse_services(&bodies.services);
    let mut tasks = parse_tasks(&bodies.tasks);
    let by_service = group_tasks(&mut tasks);
    let vhosts = describe(&services, &by_service, reach, https);
    published.as_ref() == Some(&vhosts)
}

fn poll(c: &mut Criterion) {
    let reach = Reach::Networks(BTreeSet::from([NETWORK.to_owned()]));
    let https = HttpsPolicy::default();
    for (services, per_service) in SHAPES {
        let total = services * per_service;
        let bodies = bodies(services, per_service);
        let shape = format!("{services}x{per_service}");

        // The inputs take the branch measured: every task parsed, every service routed, one
        // backend per task, each at its own address, and a rebuilt description equal.
        let service_list = parse_services(&bodies.services);
        let mut tasks = parse_tasks(&bodies.tasks);
        assert_eq!((service_list.len(), tasks.len()), (services, total));
        let by_service = group_tasks(&mut tasks);
        let vhosts = describe(&service_list, &by_service, &reach, &https);
        assert_eq!(vhosts.len(), services, "one vhost per service");
        let backends: Vec<_> = (vhosts.iter())
            .flat_map(|v| &v.paths)
            .flat_map(|p| &p.backends)
            .collect();
        assert_eq!(backends.len(), total, "one backend per task");
        let addresses: BTreeSet<_> = backends.iter().map(|b| b.addr).collect();
        assert_eq!(addresses.len(), total, "addresses must be distinct");
        assert!(addresses.iter().all(Option::is_some));
        let slim: Vec<SlimTask> = serde_json::from_slice(&bodies.tasks).expect("slim parse");
        assert!(slim
            .iter()
            .all(|t| t.networks.as_ref().is_some_and(|n| !n.is_empty())));
        assert_eq!(slim.len(), total);
        let mut again = parse_tasks(&bodies.tasks);
        let published = Some(describe(
            &service_list,
            &group_tasks(&mut again),
            &reach,
            &https,
        ));
        assert!(steady_poll(&bodies, &reach, &https, &published));

        let mut bench = c.benchmark_group(format!("swarm_poll/{shape}"));
        bench.throughput(Throughput::Elements(total as u64));
        bench.bench_function("parse_tasks", |b| {
            b.iter(|| parse_tasks(black_box(&bodies.tasks)));
        });
        bench.bench_function("parse_tasks_bollard", |b| {
            b.iter(|| {
                serde_json::from_slice::<Vec<Task>>(black_box(&bodies.tasks)).map(|t| t.len())
            });
        });
        bench.bench_function("parse_tasks_slim", |b| {
            b.iter(|| {
                serde_json::from_slice::<Vec<SlimTask>>(black_box(&bodies.tasks)).map(|t| t.len())
            });
        });
        bench.bench_function("parse_services", |b| {
            b.iter(|| parse_services(black_box(&bodies.services)));
        });
        bench.bench_function("group", |b| {
            b.iter_batched_ref(
                || parse_tasks(&bodies.tasks),
                |tasks| group_tasks(black_box(tasks)).len(),
                BatchSize::LargeInput,
            );
        });
        bench.bench_function("swarm_vhosts", |b| {
            b.iter(|| describe(black_box(&service_list), &by_service, &reach, &https));
        });
        bench.bench_function("unchanged", |b| {
            b.iter(|| black_box(&published).as_ref() == Some(black_box(&vhosts)));
        });
        bench.bench_function("steady_poll", |b| {
            b.iter(|| steady_poll(black_box(&bodies), &reach, &https, &published));
        });
        bench.finish();
    }
}

criterion_group!(benches, poll);
criterion_main!(benches);
