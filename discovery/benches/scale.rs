//! Discovery at scale: 1,000 and 10,000 synthetic containers cloned from the saved
//! `docker inspect` fixture `app-web-1.json`, each with its own name, ID, `VIRTUAL_HOST`
//! (`app<i>.example.com`) and IP address.
//!
//! * `rebuild`: every container into a new [`SpecIndex`], then its spec through
//!   [`RouteTable::build`] from nothing: the initial sync, as the event loop does it.
//! * `one_change`: one container's address changes in a [`SpecIndex`], then
//!   [`SpecIndex::take_changes`] and [`RouteTable::apply`] on the served table, as the event
//!   loop does: only the changed vhost's spec and routes are rebuilt, the others are shared.
//! * `one_change_full_pass`: the same change through [`table::build_spec`] over every container
//!   and [`RouteTable::rebuild`] (which compares every vhost's spec), for comparison.
//! * `parse_container`: [`contract::parse_container`] for one container (the fixture's shape).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use bollard::models::ContainerInspectResponse;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dockhand_discovery::contract::{self, container_address, parse_container, Reach};
use dockhand_discovery::table::{self, RoutedContainer, SpecIndex};
use dockhand_proxy::{BackendRegistry, Metrics, RouteTable};
use dockhand_spec::HttpsPolicy;

/// The dockhand binary's allocator: glibc's malloc would dominate these figures otherwise.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Container counts measured.
const SIZES: [usize; 2] = [1_000, 10_000];

/// The fixture every synthetic container is made from.
fn fixture() -> ContainerInspectResponse {
    let path = format!(
        "{}/tests/fixtures/app-web-1.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Container `i`: the fixture renamed, re-identified, re-hosted and re-addressed (10.x.y.z, so
/// 10,000 containers get distinct addresses).
fn synthetic(base: &ContainerInspectResponse, i: usize) -> ContainerInspectResponse {
    let mut c = base.clone();
    c.id = Some(format!("{i:064x}"));
    c.name = Some(format!("/bench-app-{i}"));
    let config = c.config.get_or_insert_with(Default::default);
    config.env = Some(vec![format!("VIRTUAL_HOST=app{i}.example.com")]);
    // 10.0.0.1 upward: i + 1 keeps every address distinct (10.0.1.0 is a fine host address here).
    let [_, b, cc, d] = u32::try_from(i + 1).map_or([0; 4], u32::to_be_bytes);
    let ip = Ipv4Addr::new(10, b, cc, d).to_string();
    let networks = c
        .network_settings
        .as_mut()
        .and_then(|n| n.networks.as_mut())
        // app-web-1.json is a container on a compose network: the fixture itself proves it.
        .expect("the fixture has networks");
    for endpoint in networks.values_mut() {
        endpoint.ip_address = Some(ip.clone());
    }
    c
}

/// What the event loop keeps per container: parsed routes, address and health.
fn routed(c: &ContainerInspectResponse) -> RoutedContainer {
    let routes = match parse_container(c) {
        Ok(Some(routes)) => routes,
        other => panic!("synthetic container not routed: {other:?}"),
    };
    RoutedContainer {
        routes,
        address: container_address(c, &Reach::AnyNetwork),
        readiness: contract::health(c),
    }
}

/// `size` synthetic containers as the event loop keeps them.
fn containers(size: usize) -> Vec<RoutedContainer> {
    let base = fixture();
    (0..size).map(|i| routed(&synthetic(&base, i))).collect()
}

/// `containers` in a new index, as the initial sync puts them, changes taken.
fn indexed(containers: &[RoutedContainer], https: &HttpsPolicy) -> SpecIndex {
    let mut index = SpecIndex::new(None, https.clone());
    for routed in containers {
        index.upsert(&routed.routes.id, routed.clone());
    }
    index.take_changes();
    index
}

/// What a table build publishes into: fresh metrics and backend registry.
fn sinks() -> (Metrics, BackendRegistry) {
    let metrics = Metrics::new(&prometheus::Registry::new()).expect("a fresh registry is empty");
    (metrics, BackendRegistry::new())
}

fn rebuild(c: &mut Criterion) {
    let (metrics, registry) = sinks();
    let https = HttpsPolicy::default();
    let mut group = c.benchmark_group("rebuild");
    group.sample_size(10);
    for size in SIZES {
        let containers = containers(size);
        let addresses: std::collections::BTreeSet<Option<IpAddr>> =
            containers.iter().map(|r| r.address).collect();
        assert_eq!(addresses.len(), size, "addresses must be distinct");
        let spec = table::build_spec(&containers, None, &https);
        assert_eq!(spec.vhosts.len(), size);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &containers, |b, all| {
            let mut generation = 0;
            b.iter(|| {
                generation += 1;
                let index = indexed(black_box(all), &https);
                RouteTable::build(&index.spec(), generation, &metrics, &registry)
            });
        });
    }
    group.finish();
}

/// Two addresses no synthetic container has (10.255.x.x is beyond 10,000).
const MOVES: [Option<IpAddr>; 2] = [
    Some(IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1))),
    Some(IpAddr::V4(Ipv4Addr::new(10, 255, 0, 2))),
];

fn one_change(c: &mut Criterion) {
    let (metrics, registry) = sinks();
    let https = HttpsPolicy::default();
    let mut group = c.benchmark_group("one_change");
    group.sample_size(20);
    for size in SIZES {
        let containers = containers(size);
        let mut index = indexed(&containers, &https);
        let mut served = RouteTable::build(&index.spec(), 1, &metrics, &registry);
        let mut changed = containers[size / 2].clone();
        let mut generation = 1;
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| {
                generation += 1;
                changed.address = MOVES[(generation % 2) as usize];
                index.upsert(&changed.routes.id, changed.clone());
                let changes = index.take_changes();
                assert_eq!(changes.updates.len(), 1, "one vhost changes");
                served = served.apply(&changes.updates, generation, &metrics, &registry);
            });
        });
    }
    group.finish();
}

fn one_change_full_pass(c: &mut Criterion) {
    let (metrics, registry) = sinks();
    let https = HttpsPolicy::default();
    let mut group = c.benchmark_group("one_change_full_pass");
    group.sample_size(20);
    for size in SIZES {
        let mut containers = containers(size);
        let spec = table::build_spec(&containers, None, &https);
        let mut served = RouteTable::build(&spec, 1, &metrics, &registry);
        let changed = size / 2;
        let mut generation = 1;
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| {
                generation += 1;
                containers[changed].address = MOVES[(generation % 2) as usize];
                let spec = table::build_spec(black_box(&containers), None, &https);
                served = served.rebuild(&spec, generation, &metrics, &registry);
            });
        });
    }
    group.finish();
}

fn parse(c: &mut Criterion) {
    let one = synthetic(&fixture(), 42);
    c.bench_function("parse_container", |b| {
        b.iter(|| parse_container(black_box(&one)).map(|r| r.is_some()));
    });
}

criterion_group!(benches, rebuild, one_change, one_change_full_pass, parse);
criterion_main!(benches);
