use dockhand_spec::{Balance, HttpsMethod, HttpsPolicy, Keepalive, Proto, Readiness};

use super::*;
use crate::contract::tests::{container, fixture};
use crate::contract::{
    container_address, parse_container, Reach, KEEPALIVE_LABEL, LOADBALANCE_LABEL,
};

/// A parsed container named `name` (ID `<name>-id`) with this environment and these labels.
fn routed(name: &str, env: &[&str], labels: &[(&str, &str)], ip: Option<&str>) -> RoutedContainer {
    let mut c = container(env, labels, &[]);
    c.name = Some(format!("/{name}"));
    c.id = Some(format!("{name}-id"));
    RoutedContainer {
        routes: parse_container(&c).unwrap().unwrap(),
        address: ip.map(|ip| ip.parse().unwrap()),
        readiness: Readiness::Unchecked,
    }
}

fn from_fixture(name: &str) -> RoutedContainer {
    let c = fixture(name);
    RoutedContainer {
        routes: parse_container(&c).unwrap().unwrap(),
        address: container_address(&c, &Reach::AnyNetwork),
        readiness: crate::contract::health(&c),
    }
}

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

/// (host, path, [(container, addr)]).
type Row = (String, String, Vec<(String, Option<SocketAddr>)>);

/// A [`Row`] for every location, in spec order.
fn shape(spec: &TableSpec) -> Vec<Row> {
    let mut out = Vec::new();
    for v in &spec.vhosts {
        for p in &v.paths {
            let backends = p
                .backends
                .iter()
                .map(|b| (b.name.clone(), b.addr))
                .collect();
            out.push((v.host.clone(), p.path.clone(), backends));
        }
    }
    out
}

fn row(host: &str, path: &str, backends: &[(&str, &str)]) -> Row {
    let backends = backends
        .iter()
        .map(|&(c, a)| (c.to_owned(), addr(a)))
        .collect();
    (host.to_owned(), path.to_owned(), backends)
}

#[test]
fn fixtures_group_into_sorted_vhosts() {
    let all: Vec<RoutedContainer> = [
        "virtual-port",
        "single-port",
        "multiports",
        "two-networks",
        "host-network",
    ]
    .into_iter()
    .map(from_fixture)
    .collect();
    let spec = build_spec(&all, None, &HttpsPolicy::default());
    let want = vec![
        row(
            "a.example.com",
            "/api/",
            &[("fx-virtual-port", "172.17.0.5:9000")],
        ),
        row(
            "b.example.com",
            "/api/",
            &[("fx-virtual-port", "172.17.0.5:9000")],
        ),
        row(
            "hostnet.example.com",
            "/",
            &[("fx-host-network", "127.0.0.1:8088")],
        ),
        row(
            "mp.example.com",
            "/",
            &[("fx-multiports", "172.17.0.6:8080")],
        ),
        row(
            "mp.example.com",
            "/admin/",
            &[("fx-multiports", "172.17.0.6:9090")],
        ),
        row(
            "other.example.com",
            "/",
            &[("fx-multiports", "172.17.0.6:80")],
        ),
        row(
            "single.example.com",
            "/",
            &[("fx-single-port", "172.17.0.2:8080")],
        ),
        row(
            "two.example.com",
            "/",
            &[("fx-two-networks", "172.18.0.2:83")],
        ),
    ];
    assert_eq!(shape(&spec), want);
    let api = &spec.vhosts[0].paths[0];
    assert_eq!((api.proto, api.dest.as_deref()), (Proto::Https, Some("/")));
    let admin = &spec.vhosts[3].paths[1];
    assert_eq!(
        (admin.proto, admin.dest.as_deref()),
        (Proto::H2c, Some("/"))
    );
    assert_eq!(spec.default_host, None);
    assert_eq!(spec.vhosts[0].paths[0].backends[0].id.len(), 64);
}

#[test]
fn input_order_does_not_matter() {
    let a = routed(
        "a",
        &["VIRTUAL_HOST=x.com,y.com", "VIRTUAL_PROTO=https"],
        &[],
        Some("10.0.0.1"),
    );
    let b = routed(
        "b",
        &["VIRTUAL_HOST=x.com", "VIRTUAL_PROTO=h2c"],
        &[],
        Some("10.0.0.2"),
    );
    let c = routed("c", &["VIRTUAL_HOST=y.com", "VIRTUAL_PATH=/c/"], &[], None);
    let first = build_spec([&a, &b, &c], Some("x.com"), &HttpsPolicy::default());
    for order in [[&c, &b, &a], [&b, &a, &c], [&c, &a, &b]] {
        assert_eq!(
            build_spec(order, Some("x.com"), &HttpsPolicy::default()),
            first
        );
    }
}

#[test]
fn containers_sharing_a_location_are_backends_sorted_by_name() {
    let web2 = routed(
        "web-2",
        &["VIRTUAL_HOST=x.com", "VIRTUAL_PORT=81"],
        &[],
        Some("10.0.0.2"),
    );
    let web1 = routed("web-1", &["VIRTUAL_HOST=X.com"], &[], Some("10.0.0.1"));
    let down = routed("web-0", &["VIRTUAL_HOST=x.com"], &[], None);
    let spec = build_spec([&web2, &web1, &down], None, &HttpsPolicy::default());
    let want = vec![row(
        "x.com",
        "/",
        &[("web-1", "10.0.0.1:80"), ("web-2", "10.0.0.2:81")],
    )];
    let mut got = shape(&spec);
    // The unreachable container is a backend without an address (its vhost answers 502).
    assert_eq!(got[0].2.remove(0), ("web-0".to_owned(), None));
    assert_eq!(got, want);
}

#[test]
fn disagreeing_settings_come_from_the_first_name() {
    let lb = [(LOADBALANCE_LABEL, "least_conn;"), (KEEPALIVE_LABEL, "4")];
    let b = routed(
        "b",
        &["VIRTUAL_HOST=x.com", "VIRTUAL_DEST=/b"],
        &lb,
        Some("10.0.0.2"),
    );
    let a = routed(
        "a",
        &["VIRTUAL_HOST=x.com", "VIRTUAL_PROTO=https"],
        &[],
        Some("10.0.0.1"),
    );
    let spec = build_spec([&b, &a], None, &HttpsPolicy::default());
    let path = &spec.vhosts[0].paths[0];
    assert_eq!(path.proto, Proto::Https);
    assert_eq!(path.dest, None);
    assert_eq!(path.balance, Balance::RoundRobin);
    assert_eq!(path.keepalive, Keepalive::Auto);
    assert_eq!(path.backends.len(), 2);
    let only_b = build_spec([&b], None, &HttpsPolicy::default());
    let path = &only_b.vhosts[0].paths[0];
    assert_eq!(
        (path.balance, path.keepalive),
        (Balance::LeastConn, Keepalive::Max(4))
    );
}

#[test]
fn multiports_and_virtual_host_merge_and_multiports_settings_win() {
    let plain = routed(
        "a-plain",
        &["VIRTUAL_HOST=x.com", "VIRTUAL_PROTO=https"],
        &[],
        Some("10.0.0.1"),
    );
    let multi = routed(
        "z-multi",
        &["VIRTUAL_HOST_MULTIPORTS=x.com: {/: {port: 9000, proto: h2c}, /admin: {}}"],
        &[],
        Some("10.0.0.2"),
    );
    let spec = build_spec([&plain, &multi], None, &HttpsPolicy::default());
    let want = vec![
        row(
            "x.com",
            "/",
            &[("a-plain", "10.0.0.1:80"), ("z-multi", "10.0.0.2:9000")],
        ),
        row("x.com", "/admin", &[("z-multi", "10.0.0.2:80")]),
    ];
    assert_eq!(shape(&spec), want);
    assert_eq!(spec.vhosts[0].paths[0].proto, Proto::H2c);
}

#[test]
fn a_container_listed_twice_counts_once() {
    let a = routed("a", &["VIRTUAL_HOST=x.com"], &[], Some("10.0.0.1"));
    let spec = build_spec([&a, &a.clone()], None, &HttpsPolicy::default());
    assert_eq!(spec.vhosts[0].paths[0].backends.len(), 1);
}

#[test]
fn paths_and_hosts_are_sorted() {
    let a = routed(
        "a",
        &["VIRTUAL_HOST=b.com,~^a,*.c.com", "VIRTUAL_PATH=/z"],
        &[],
        None,
    );
    let b = routed("b", &["VIRTUAL_HOST=b.com", "VIRTUAL_PATH=/a"], &[], None);
    let spec = build_spec([&a, &b], None, &HttpsPolicy::default());
    let hosts: Vec<&str> = spec.vhosts.iter().map(|v| v.host.as_str()).collect();
    assert_eq!(hosts, ["*.c.com", "b.com", "~^a"]);
    let paths: Vec<&str> = spec.vhosts[1]
        .paths
        .iter()
        .map(|p| p.path.as_str())
        .collect();
    assert_eq!(paths, ["/a", "/z"]);
}

#[test]
fn default_host_is_normalised() {
    let none: [&RoutedContainer; 0] = [];
    assert_eq!(
        build_spec(none, Some(" Main.COM "), &HttpsPolicy::default())
            .default_host
            .as_deref(),
        Some("main.com")
    );
    assert_eq!(
        build_spec(none, Some("  "), &HttpsPolicy::default()).default_host,
        None
    );
    assert_eq!(
        build_spec(none, None, &HttpsPolicy::default()),
        TableSpec::default()
    );
}

#[test]
fn diff_of_identical_specs_is_empty() {
    let spec = build_spec(
        &[from_fixture("single-port")],
        Some("a.com"),
        &HttpsPolicy::default(),
    );
    assert_eq!(diff(&spec, &spec), vec![]);
}

#[test]
fn diff_lists_added_and_removed_vhosts_and_backends() {
    let single = from_fixture("single-port");
    let spec = build_spec([&single], None, &HttpsPolicy::default());
    let lines: Vec<String> = diff(&TableSpec::default(), &spec)
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "vhost added: single.example.com",
            "backend added: single.example.com / → fx-single-port (3e6545f28ab6) at 172.17.0.2:8080",
        ]
    );
    let lines: Vec<String> = diff(&spec, &TableSpec::default())
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "backend removed: single.example.com / → fx-single-port (3e6545f28ab6) at 172.17.0.2:8080",
            "vhost removed: single.example.com",
        ]
    );
}

#[test]
fn diff_reports_address_settings_and_default_host_changes() {
    let before = routed("a", &["VIRTUAL_HOST=x.com"], &[], Some("10.0.0.1"));
    let mut moved = before.clone();
    moved.address = None;
    let changed = routed(
        "a",
        &[
            "VIRTUAL_HOST=x.com",
            "VIRTUAL_PROTO=https",
            "VIRTUAL_DEST=/d",
        ],
        &[],
        None,
    );
    let old = build_spec([&before], None, &HttpsPolicy::default());
    let new = build_spec([&changed], Some("x.com"), &HttpsPolicy::default());
    let changes = diff(&old, &new);
    let lines: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        lines,
        [
            "default host changed: none → x.com",
            "backend removed: x.com / → a (a-id) at 10.0.0.1:80",
            "backend added: x.com / → a (a-id) at (unreachable)",
            "settings changed: x.com /: dest none → /d, proto Http → Https",
        ]
    );
    let just_moved = diff(&old, &build_spec([&moved], None, &HttpsPolicy::default()));
    assert_eq!(just_moved.len(), 2);
    assert!(matches!(
        just_moved[0],
        RouteChange::BackendRemoved { addr: Some(_), .. }
    ));
    assert!(matches!(
        just_moved[1],
        RouteChange::BackendAdded { addr: None, .. }
    ));
}

#[test]
fn diff_reports_a_recreated_container() {
    let old = routed("web", &["VIRTUAL_HOST=x.com"], &[], Some("10.0.0.1"));
    let mut new = old.clone();
    new.routes.id = "fresh-id".to_owned();
    let changes = diff(
        &build_spec([&old], None, &HttpsPolicy::default()),
        &build_spec([&new], None, &HttpsPolicy::default()),
    );
    assert_eq!(changes.len(), 2, "{changes:?}");
}

#[test]
fn every_accepted_form_parses_in_the_data_plane_as_written() {
    let hosts =
        r"VIRTUAL_HOST=Exact.com,*.Lead.com,trail.*,~^Re\d+\.x$,~ spaced,10.0.0.1,[FD00::1]";
    let paths = [
        "/",
        "/api/",
        "= /exact",
        "^~/static/",
        r"~ ^/(a|b)/",
        r"~*\.PNG$",
    ];
    let all: Vec<RoutedContainer> = paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let env = [hosts, &format!("VIRTUAL_PATH={path}")];
            routed(&format!("c{i}"), &env, &[], None)
        })
        .collect();
    let spec = build_spec(&all, None, &HttpsPolicy::default());
    assert_eq!(spec.vhosts.len(), 7);
    for vhost in &spec.vhosts {
        let parsed = dockhand_proxy::HostPattern::parse(&vhost.host);
        assert!(parsed.is_ok(), "{}: {parsed:?}", vhost.host);
        assert_eq!(vhost.paths.len(), paths.len());
        for path in &vhost.paths {
            let pattern = dockhand_proxy::PathPattern::parse(&path.path);
            let source = pattern.map(|p| p.source());
            assert_eq!(source.as_deref(), Ok(path.path.as_str()), "{}", path.path);
        }
    }
}

#[test]
fn https_settings_come_from_the_first_container_that_sets_them_else_the_defaults() {
    let a = routed(
        "a",
        &["VIRTUAL_HOST=s.test", "HTTPS_METHOD=noredirect"],
        &[],
        None,
    );
    let b = routed(
        "b",
        &[
            "VIRTUAL_HOST=s.test",
            "HTTPS_METHOD=nohttp",
            "HSTS=off",
            "CERT_NAME=shared",
        ],
        &[(
            "com.github.nginx-proxy.nginx-proxy.trust-default-cert",
            "false",
        )],
        None,
    );
    let defaults = HttpsPolicy {
        non_get_redirect: 308,
        ..HttpsPolicy::default()
    };
    let spec = build_spec([&b, &a], None, &defaults);
    let policy = &spec.vhosts[0].https;
    assert_eq!(policy.method, HttpsMethod::NoRedirect, "a sorts first");
    assert_eq!(policy.hsts, None, "b turned HSTS off and a left it unset");
    assert_eq!(policy.cert_name.as_deref(), Some("shared"));
    assert!(!policy.trust_default_cert);
    assert_eq!(
        policy.non_get_redirect, 308,
        "nobody set it: the proxy-wide value"
    );

    let plain = build_spec(
        [&routed("c", &["VIRTUAL_HOST=p.test"], &[], None)],
        None,
        &defaults,
    );
    assert_eq!(plain.vhosts[0].https, defaults);
}

#[test]
fn unhealthy_containers_stay_listed_with_their_health() {
    let mut sick = routed("sick", &["VIRTUAL_HOST=h.test"], &[], Some("10.0.0.2"));
    sick.readiness = Readiness::Failing;
    let well = routed("well", &["VIRTUAL_HOST=h.test"], &[], Some("10.0.0.3"));
    let spec = build_spec([&sick, &well], None, &HttpsPolicy::default());
    let healths: Vec<_> = spec.vhosts[0].paths[0]
        .backends
        .iter()
        .map(|b| b.readiness)
        .collect();
    assert_eq!(healths, [Readiness::Failing, Readiness::Unchecked]);
}

#[test]
fn ssl_policy_and_http2_label_are_per_vhost_settings() {
    let modern = routed(
        "a",
        &["VIRTUAL_HOST=m.test", "SSL_POLICY=Mozilla-Modern"],
        &[("com.github.nginx-proxy.nginx-proxy.http2.enable", "false")],
        None,
    );
    let plain = routed("b", &["VIRTUAL_HOST=p.test"], &[], None);
    let defaults = HttpsPolicy {
        ssl_policy: dockhand_spec::SslPolicy::parse("AWS-FS-1-2-Res-2020-10").unwrap(),
        ..HttpsPolicy::default()
    };
    let spec = build_spec([&modern, &plain], None, &defaults);
    let m = &spec.vhosts[0].https;
    assert_eq!((m.ssl_policy.name(), m.http2), ("Mozilla-Modern", false));
    let p = &spec.vhosts[1].https;
    assert_eq!(
        (p.ssl_policy.name(), p.http2),
        ("AWS-FS-1-2-Res-2020-10", true)
    );
}

#[test]
fn per_vhost_wire_settings_come_from_the_first_container_that_sets_them() {
    let a = routed(
        "a",
        &["VIRTUAL_HOST=w.test", "EXTERNAL_HTTPS_PORT=8443"],
        &[],
        None,
    );
    let b = routed(
        "b",
        &[
            "VIRTUAL_HOST=w.test",
            "SERVER_TOKENS=off",
            "EXTERNAL_HTTPS_PORT=9443",
        ],
        &[("com.github.nginx-proxy.nginx-proxy.debug-endpoint", "false")],
        None,
    );
    let defaults = HttpsPolicy {
        debug_endpoint: true,
        ..HttpsPolicy::default()
    };
    let spec = build_spec([&b, &a], None, &defaults);
    let policy = &spec.vhosts[0].https;
    assert!(!policy.server_tokens, "only b sets it");
    assert_eq!(policy.external_https_port, Some(8443), "a sorts first");
    assert_eq!(policy.external_http_port, None);
    assert!(
        !policy.debug_endpoint,
        "b's label wins over the proxy-wide default"
    );
}

#[test]
fn diff_names_a_swarm_task_with_its_service_slot_and_node() {
    use dockhand_spec::{BackendSpec, Origin, PathSpec, TableSpec, TaskOrigin, VhostSpec};
    let old = build_spec(
        [&routed(
            "web",
            &["VIRTUAL_HOST=x.com"],
            &[],
            Some("10.0.0.1"),
        )],
        None,
        &HttpsPolicy::default(),
    );
    let mut vhost: VhostSpec = old.vhosts[0].clone();
    let path: &mut PathSpec = &mut vhost.paths[0];
    path.backends = vec![BackendSpec {
        name: "app.1".to_owned(),
        id: "t1aaaaaaaaaaaaaaaaaaaaaaa".to_owned(),
        addr: Some("10.0.1.5:80".parse().expect("address")),
        readiness: Readiness::default(),
        origin: Origin::Task(TaskOrigin {
            service: "app".to_owned(),
            task: "t1aaaaaaaaaaaaaaaaaaaaaaa".to_owned(),
            slot: Some(1),
            node: Some("n1bbbbbbbbbbbbbbbbbbbbbbb".to_owned()),
        }),
    }];
    let new = TableSpec {
        vhosts: vec![vhost],
        default_host: None,
    };
    let lines: Vec<String> = diff(&old, &new).iter().map(|c| c.to_string()).collect();
    assert_eq!(
        lines[1],
        "backend added: x.com / → app.1 (t1aaaaaaaaaa) at 10.0.1.5:80 \
         [swarm service app task t1aaaaaaaaaa slot 1 node n1bbbbbbbbbb]"
    );
}
