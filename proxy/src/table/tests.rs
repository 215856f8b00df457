use std::sync::atomic::Ordering;

use super::*;
use crate::metrics::Metrics;
use crate::spec::{BackendSpec, PathSpec, TableSpec, VhostSpec, VhostUpdate};

fn backend(name: &str, addr: Option<&str>) -> BackendSpec {
    BackendSpec {
        addr: addr.map(|a| a.parse().unwrap()),
        name: name.to_owned(),
        id: format!("{name}-id"),
        readiness: Default::default(),
        origin: Default::default(),
    }
}

fn path(p: &str, backends: Vec<BackendSpec>) -> PathSpec {
    PathSpec {
        path: p.to_owned(),
        dest: None,
        proto: Proto::Http,
        balance: Balance::RoundRobin,
        keepalive: Keepalive::Auto,
        network_access: Default::default(),
        backends,
    }
}

fn vhost(host: &str, paths: Vec<PathSpec>) -> VhostSpec {
    VhostSpec {
        host: host.to_owned(),
        paths,
        https: Default::default(),
    }
}

fn build(spec: &TableSpec) -> (RouteTable, BackendRegistry, prometheus::Registry) {
    let prom = prometheus::Registry::new();
    let metrics = Metrics::new(&prom).unwrap();
    let registry = BackendRegistry::new();
    (
        RouteTable::build(spec, 7, &metrics, &registry),
        registry,
        prom,
    )
}

fn sample() -> TableSpec {
    TableSpec {
        vhosts: vec![
            vhost(
                "a.tld",
                vec![path("/", vec![backend("a1", Some("10.0.0.1:80"))])],
            ),
            vhost(
                "*.b.tld",
                vec![
                    path(
                        "/",
                        vec![backend("b1", Some("10.0.0.2:80")), backend("b2", None)],
                    ),
                    path("/api/", vec![backend("b3", Some("10.0.0.3:8080"))]),
                ],
            ),
            vhost("~^c\\.", vec![path("/", vec![])]),
            vhost("bad host", vec![path("/", vec![])]),
            vhost(
                "d.tld",
                vec![path("not-a-path", vec![]), path("/ok/", vec![])],
            ),
        ],
        default_host: None,
    }
}

#[test]
fn hosts_resolve_with_every_pattern_kind() {
    let (table, _, _) = build(&sample());
    assert_eq!(table.generation(), 7);
    assert_eq!(table.vhost("a.tld").unwrap().host, "a.tld");
    assert_eq!(table.vhost("x.y.b.tld").unwrap().host, "*.b.tld");
    assert_eq!(table.vhost("c.example").unwrap().host, "~^c\\.");
    assert!(table.vhost("unknown.tld").is_none());
}

#[test]
fn invalid_hosts_and_paths_are_skipped_not_fatal() {
    let (table, _, _) = build(&sample());
    assert!(table.vhosts.iter().all(|v| v.host != "bad host"));
    let d = table.vhost("d.tld").unwrap();
    assert_eq!(d.routes.len(), 1);
    assert_eq!(d.routes[0].path, "/ok/");
}

#[test]
fn default_host_answers_unknown_hosts_only_when_it_exists() {
    let mut spec = sample();
    spec.default_host = Some("a.tld".into());
    let (table, _, _) = build(&spec);
    assert_eq!(table.vhost("unknown.tld").unwrap().host, "a.tld");
    assert_eq!(table.vhost("q.b.tld").unwrap().host, "*.b.tld");
    spec.default_host = Some("missing.tld".into());
    let (table, _, _) = build(&spec);
    assert!(table.vhost("unknown.tld").is_none());
}

#[test]
fn only_backends_with_an_address_are_targets() {
    let (table, registry, _) = build(&sample());
    let b = table.vhost("q.b.tld").unwrap();
    let root = b.routes.iter().find(|r| r.path == "/").unwrap();
    assert_eq!(root.backends.len(), 2);
    assert_eq!(root.targets.len(), 1);
    assert_eq!(root.targets[0].authority.as_str(), "10.0.0.2:80");
    assert_eq!(registry.len(), 3);
}

#[test]
fn health_checks_hold_backends_back_and_mark_the_route() {
    let mut starting = backend("starting", Some("10.0.0.5:80"));
    starting.readiness = crate::spec::Readiness::Starting;
    let mut healthy = backend("healthy", Some("10.0.0.6:80"));
    healthy.readiness = crate::spec::Readiness::Ready;
    let spec = TableSpec {
        vhosts: vec![
            vhost(
                "mixed.tld",
                vec![path("/", vec![starting.clone(), healthy])],
            ),
            vhost("waiting.tld", vec![path("/", vec![starting])]),
            vhost("gone.tld", vec![path("/", vec![backend("gone", None)])]),
        ],
        default_host: None,
    };
    let (table, _, _) = build(&spec);
    let route = |host: &str| table.vhost(host).unwrap().routes[0].clone();
    let mixed = route("mixed.tld");
    assert_eq!(mixed.targets.len(), 1);
    assert_eq!(mixed.targets[0].authority.as_str(), "10.0.0.6:80");
    assert!(
        route("waiting.tld").targets.is_empty() && route("waiting.tld").held_back,
        "503"
    );
    assert!(
        !route("gone.tld").held_back,
        "unreachable, not unhealthy: 502"
    );
}

#[test]
fn registry_state_survives_rebuilds_and_is_pruned() {
    let prom = prometheus::Registry::new();
    let metrics = Metrics::new(&prom).unwrap();
    let registry = BackendRegistry::new();
    let first = RouteTable::build(&sample(), 1, &metrics, &registry);
    let state = first.vhost("a.tld").unwrap().routes[0].targets[0]
        .state
        .clone();
    let guard = state.begin();
    let second = RouteTable::build(&sample(), 2, &metrics, &registry);
    let again = &second.vhost("a.tld").unwrap().routes[0].targets[0].state;
    assert!(Arc::ptr_eq(&state, again));
    assert_eq!(again.in_flight(), 1);
    drop(guard);
    assert_eq!(again.in_flight(), 0);
    let mut smaller = sample();
    smaller.vhosts.retain(|v| v.host == "a.tld");
    RouteTable::build(&smaller, 3, &metrics, &registry);
    assert_eq!(registry.len(), 1);
}

#[test]
fn serializes_for_the_routes_api() {
    let (table, _, _) = build(&sample());
    let json = serde_json::to_value(&table).unwrap();
    assert_eq!(json["generation"], 7);
    assert_eq!(json["default_host"], serde_json::Value::Null);
    let b = json["vhosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["host"] == "*.b.tld")
        .unwrap();
    let root = &b["paths"][0];
    assert_eq!(root["path"], "/");
    assert_eq!(root["proto"], "http");
    assert_eq!(root["balance"], "round_robin");
    assert_eq!(root["keepalive"], "auto");
    assert_eq!(root["dest"], serde_json::Value::Null);
    assert_eq!(root["backends"][0]["container"], "b1");
    assert_eq!(root["backends"][0]["container_id"], "b1-id");
    assert_eq!(root["backends"][0]["addr"], "10.0.0.2:80");
    assert_eq!(root["backends"][0]["in_flight"], 0);
    assert_eq!(root["backends"][0]["reachable"], true);
    assert_eq!(root["backends"][1]["addr"], serde_json::Value::Null);
    assert_eq!(root["backends"][1]["reachable"], false);
}

#[test]
fn backend_gauge_counts_distinct_reachable_addresses() {
    let (_, _, prom) = build(&sample());
    let mut buf = Vec::new();
    prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &prom.gather(), &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(
        text.contains(r#"dockhand_backends{vhost="*.b.tld"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"dockhand_backends{vhost="~^c\\."} 0"#),
        "{text}"
    );
}

#[test]
fn empty_table_routes_nothing() {
    let table = RouteTable::empty();
    assert_eq!(table.generation(), 0);
    assert!(table.vhost("a.tld").is_none());
    let json = serde_json::to_value(&table).unwrap();
    assert_eq!(json["vhosts"], serde_json::json!([]));
}

#[test]
fn a_rebuild_shares_unchanged_vhosts_and_keeps_round_robin_positions() {
    let prom = prometheus::Registry::new();
    let metrics = Metrics::new(&prom).unwrap();
    let registry = BackendRegistry::new();
    let first = RouteTable::build(&sample(), 1, &metrics, &registry);
    first.vhost("x.b.tld").unwrap().routes[0]
        .cursor
        .store(5, Ordering::Relaxed);

    let mut changed = sample();
    let a = changed
        .vhosts
        .iter_mut()
        .find(|v| v.host == "a.tld")
        .unwrap();
    a.paths[0].backends.push(backend("a2", Some("10.0.0.9:80")));
    let second = first.rebuild(&changed, 2, &metrics, &registry);

    let b1 = first.vhost("x.b.tld").unwrap();
    let b2 = second.vhost("x.b.tld").unwrap();
    assert!(Arc::ptr_eq(b1, b2), "an unchanged vhost is shared");
    assert!(!Arc::ptr_eq(
        first.vhost("a.tld").unwrap(),
        second.vhost("a.tld").unwrap()
    ));
    assert_eq!(second.vhost("a.tld").unwrap().routes[0].targets.len(), 2);

    // A changed vhost keeps its position: one more backend must not restart the rotation.
    second.vhost("a.tld").unwrap().routes[0]
        .cursor
        .store(3, Ordering::Relaxed);
    let mut again = changed.clone();
    let a = again.vhosts.iter_mut().find(|v| v.host == "a.tld").unwrap();
    a.paths[0].backends.pop();
    let third = second.rebuild(&again, 3, &metrics, &registry);
    assert_eq!(
        third.vhost("a.tld").unwrap().routes[0]
            .cursor
            .load(Ordering::Relaxed),
        3
    );
    assert_eq!(
        third.vhost("x.b.tld").unwrap().routes[0]
            .cursor
            .load(Ordering::Relaxed),
        5
    );
    assert_eq!(registry.len(), 3, "a2's state is dropped with it");
}

#[test]
fn apply_gives_the_table_a_rebuild_would_and_touches_only_the_updated_vhosts() {
    let prom = prometheus::Registry::new();
    let metrics = Metrics::new(&prom).unwrap();
    let registry = BackendRegistry::new();
    let mut spec = sample();
    spec.default_host = Some("new.tld".into());
    let first = RouteTable::build(&spec, 1, &metrics, &registry);
    assert!(first.vhost("unknown.tld").is_none(), "no new.tld yet");

    let new = vhost(
        "new.tld",
        vec![path("/", vec![backend("n1", Some("10.0.0.7:80"))])],
    );
    let updates = [
        VhostUpdate::Set(new.clone()),
        VhostUpdate::Remove("a.tld".into()),
        VhostUpdate::Remove("absent.tld".into()),
        // Shadowed by the first update of the same name.
        VhostUpdate::Remove("new.tld".into()),
    ];
    let applied = first.apply(&updates, 2, &metrics, &registry);

    let mut expected = spec.clone();
    expected.vhosts.retain(|v| v.host != "a.tld");
    expected.vhosts.push(new);
    let rebuilt = first.rebuild(&expected, 2, &metrics, &BackendRegistry::new());
    assert_eq!(
        serde_json::to_value(&applied).unwrap(),
        serde_json::to_value(&rebuilt).unwrap()
    );
    assert_eq!(
        applied.vhost("unknown.tld").unwrap().host,
        "new.tld",
        "DEFAULT_HOST kept"
    );
    assert!(applied.named("a.tld").is_none());
    assert!(Arc::ptr_eq(
        first.vhost("x.b.tld").unwrap(),
        applied.vhost("x.b.tld").unwrap()
    ));
    assert_eq!(registry.len(), 3, "a1's state went with a.tld; n1's came");

    let text = {
        use prometheus::Encoder;
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&prom.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    };
    assert!(
        text.contains(r#"dockhand_backends{vhost="new.tld"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"dockhand_backends{vhost="*.b.tld"} 2"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"vhost="a.tld""#),
        "a.tld's series are gone: {text}"
    );
}

#[test]
fn apply_skips_an_update_whose_host_does_not_parse_and_drops_the_old_vhost_of_that_name() {
    let (first, registry, prom) = build(&sample());
    let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
    drop(prom);
    let bad = vhost("bad host", vec![path("/", vec![])]);
    let applied = first.apply(&[VhostUpdate::Set(bad)], 8, &metrics, &registry);
    assert_eq!(applied.vhosts.len(), first.vhosts.len());
    assert!(
        applied.vhosts.windows(2).all(|w| w[0].host < w[1].host),
        "still sorted"
    );
}

#[test]
fn apply_indexes_every_host_a_rebuild_would() {
    let (first, registry, _prom) = build(&sample());
    let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
    let updates = [
        VhostUpdate::Set(vhost(
            "*.new.tld",
            vec![path("/", vec![backend("n1", Some("10.0.0.7:80"))])],
        )),
        VhostUpdate::Set(vhost(
            "~^c\\.",
            vec![path("/", vec![backend("c1", Some("10.0.0.8:80"))])],
        )),
        VhostUpdate::Remove("*.b.tld".into()),
    ];
    let applied = first.apply(&updates, 2, &metrics, &registry);
    let host = |name: &str| applied.vhost(name).map(|v| v.host.as_str());
    assert_eq!(host("x.new.tld"), Some("*.new.tld"));
    assert_eq!(host("a.tld"), Some("a.tld"));
    assert_eq!(host("x.b.tld"), None, "removed");
    let regex = applied.vhost("c.example").unwrap();
    assert_eq!(
        regex.routes[0].targets.len(),
        1,
        "the new version of ~^c\\."
    );
    // b1 (10.0.0.2) and b3 (10.0.0.3) went with *.b.tld; a1, n1 and c1 are routed.
    let mut routed: Vec<SocketAddr> = registry.states.iter().map(|e| *e.key()).collect();
    routed.sort();
    let expected: Vec<SocketAddr> = ["10.0.0.1:80", "10.0.0.7:80", "10.0.0.8:80"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(routed, expected);
}

#[test]
fn apply_keeps_the_state_of_a_backend_another_vhost_still_routes_to() {
    let shared = || vec![path("/", vec![backend("s", Some("10.0.0.9:80"))])];
    let spec = TableSpec {
        vhosts: vec![vhost("one.tld", shared()), vhost("two.tld", shared())],
        default_host: None,
    };
    let (first, registry, _prom) = build(&spec);
    let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
    let applied = first.apply(
        &[VhostUpdate::Remove("one.tld".into())],
        2,
        &metrics,
        &registry,
    );
    assert_eq!(registry.len(), 1, "two.tld still routes to it");
    let applied = applied.apply(
        &[VhostUpdate::Remove("two.tld".into())],
        3,
        &metrics,
        &registry,
    );
    assert!(registry.is_empty());
    assert!(applied.vhost("two.tld").is_none());
}

#[test]
fn when_two_names_make_one_pattern_the_first_serves_until_it_goes() {
    // Names differing only in case are one host: the first by name serves it, as nginx would.
    let spec = TableSpec {
        vhosts: vec![
            vhost(
                "a.tld",
                vec![path("/", vec![backend("lower", Some("10.0.0.1:80"))])],
            ),
            vhost(
                "A.TLD",
                vec![path("/", vec![backend("upper", Some("10.0.0.2:80"))])],
            ),
        ],
        default_host: None,
    };
    let (first, registry, _prom) = build(&spec);
    assert_eq!(first.vhost("a.tld").unwrap().host, "A.TLD");
    let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
    let applied = first.apply(
        &[VhostUpdate::Remove("A.TLD".into())],
        2,
        &metrics,
        &registry,
    );
    assert_eq!(
        applied.vhost("a.tld").unwrap().host,
        "a.tld",
        "the other takes over"
    );
    let readded = vhost(
        "A.TLD",
        vec![path("/", vec![backend("upper", Some("10.0.0.2:80"))])],
    );
    let applied = applied.apply(&[VhostUpdate::Set(readded)], 3, &metrics, &registry);
    assert_eq!(applied.vhost("a.tld").unwrap().host, "A.TLD");
}
