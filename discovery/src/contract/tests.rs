//! Contract tests: real `docker inspect` fixtures, then hand-written edge cases.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::models::{ContainerConfig, ContainerState};

use super::*;

/// A saved `docker inspect` object from `discovery/tests/fixtures/<name>.json`.
pub(crate) fn fixture(name: &str) -> ContainerInspectResponse {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A running container with this environment, these labels and exposed ports.
pub(crate) fn container(
    env: &[&str],
    labels: &[(&str, &str)],
    exposed: &[&str],
) -> ContainerInspectResponse {
    let labels: HashMap<String, String> = labels
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    ContainerInspectResponse {
        id: Some("0123456789ab".repeat(5) + "cdef"),
        name: Some("/hand-made".to_owned()),
        state: Some(ContainerState {
            running: Some(true),
            ..Default::default()
        }),
        config: Some(ContainerConfig {
            env: Some(env.iter().map(|e| (*e).to_owned()).collect()),
            labels: Some(labels),
            exposed_ports: Some(exposed.iter().map(|p| (*p).to_owned()).collect()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn routes(c: &ContainerInspectResponse) -> ContainerRoutes {
    parse_container(c).unwrap().unwrap()
}

fn error(env: &[&str], labels: &[(&str, &str)]) -> String {
    parse_container(&container(env, labels, &[]))
        .unwrap_err()
        .to_string()
}

fn hosts(r: &ContainerRoutes) -> Vec<&str> {
    r.hosts.iter().map(|h| h.host.as_str()).collect()
}

fn only_path(r: &ContainerRoutes) -> &PathRoute {
    assert!(r.hosts.iter().all(|h| h.paths.len() == 1));
    &r.hosts[0].paths[0]
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn networks(names: &[&str]) -> Reach {
    Reach::Networks(names.iter().map(|n| (*n).to_owned()).collect())
}

#[test]
fn fixture_single_exposed_port() {
    let c = fixture("single-port");
    let r = routes(&c);
    assert_eq!(r.name, "fx-single-port");
    assert_eq!(r.id.len(), 64);
    assert_eq!(r.source, RouteSource::VirtualHost);
    assert_eq!(hosts(&r), ["single.example.com"]);
    let want = PathRoute {
        path: "/".to_owned(),
        port: 8080,
        proto: Proto::Http,
        dest: None,
    };
    assert_eq!(only_path(&r), &want);
    assert_eq!(r.balance, Balance::RoundRobin);
    assert_eq!(r.keepalive, Keepalive::Auto);
    assert_eq!(r.network_access, NetworkAccess::External);
    assert_eq!(
        (r.https_method, &r.hsts, &r.cert_name),
        (None, &None, &None)
    );
    assert_eq!(container_address(&c, &Reach::AnyNetwork), ip("172.17.0.2"));
    assert_eq!(
        container_address(&c, &networks(&["bridge"])),
        ip("172.17.0.2")
    );
    assert_eq!(container_address(&c, &networks(&["fx-net-a"])), None);
}

#[test]
fn fixture_several_exposed_ports_fall_back_to_80() {
    assert_eq!(only_path(&routes(&fixture("several-ports"))).port, 80);
}

#[test]
fn fixture_udp_ports_do_not_count() {
    assert_eq!(only_path(&routes(&fixture("udp-and-tcp"))).port, 8081);
}

#[test]
fn fixture_virtual_port_path_dest_proto() {
    let r = routes(&fixture("virtual-port"));
    assert_eq!(hosts(&r), ["a.example.com", "b.example.com"]);
    for h in &r.hosts {
        let want = PathRoute {
            path: "/api/".to_owned(),
            port: 9000,
            proto: Proto::Https,
            dest: Some("/".to_owned()),
        };
        assert_eq!(h.paths, vec![want]);
    }
}

#[test]
fn fixture_multiports_overrides_virtual_host_and_port() {
    let r = routes(&fixture("multiports"));
    assert_eq!(r.source, RouteSource::Multiports);
    assert_eq!(hosts(&r), ["mp.example.com", "other.example.com"]);
    let mp = &r.hosts[0];
    assert_eq!(mp.external_https_port, Some(8443));
    assert_eq!(mp.external_http_port, None);
    let paths: Vec<(&str, u16, Proto, Option<&str>)> = mp
        .paths
        .iter()
        .map(|p| (p.path.as_str(), p.port, p.proto, p.dest.as_deref()))
        .collect();
    let want = [
        ("/", 8080, Proto::Http, None),
        ("/admin/", 9090, Proto::H2c, Some("/")),
    ];
    assert_eq!(paths, want);
    // Two ports exposed and VIRTUAL_PORT=1234 overridden: the default port is 80.
    assert_eq!(r.hosts[1].paths[0].port, 80);
}

#[test]
fn fixture_labels_override_env_and_set_options() {
    let r = routes(&fixture("labels"));
    assert_eq!(hosts(&r), ["label.example.com"]);
    assert_eq!(only_path(&r).port, 82);
    assert_eq!(r.balance, Balance::ClientIp);
    assert_eq!(r.keepalive, Keepalive::Disabled);
    assert_eq!(r.non_get_redirect, Some(NonGetRedirect::Temporary));
    assert_eq!(r.https_method, Some(HttpsMethod::NoRedirect));
    assert_eq!(r.hsts, Some(Hsts::Off));
    assert_eq!(r.cert_name.as_deref(), Some("shared"));
    assert_eq!(r.network_access, NetworkAccess::Internal);
}

#[test]
fn fixture_two_networks_use_the_first_shared_by_name() {
    let c = fixture("two-networks");
    assert_eq!(only_path(&routes(&c)).port, 83);
    assert_eq!(container_address(&c, &Reach::AnyNetwork), ip("172.18.0.2"));
    let both = networks(&["fx-net-b", "fx-net-a"]);
    assert_eq!(container_address(&c, &both), ip("172.18.0.2"));
    assert_eq!(
        container_address(&c, &networks(&["fx-net-b"])),
        ip("172.19.0.2")
    );
}

#[test]
fn fixture_no_shared_network_is_unreachable() {
    let c = fixture("no-shared-network");
    assert!(parse_container(&c).unwrap().is_some());
    let reach = networks(&["bridge", "fx-net-a"]);
    assert_eq!(container_address(&c, &reach), None);
    assert_eq!(container_address(&c, &Reach::AnyNetwork), ip("172.20.0.2"));
}

#[test]
fn fixture_host_network() {
    let c = fixture("host-network");
    assert_eq!(only_path(&routes(&c)).port, 8088);
    assert_eq!(container_address(&c, &Reach::AnyNetwork), ip("127.0.0.1"));
    assert_eq!(container_address(&c, &networks(&["bridge"])), None);
}

#[test]
fn fixture_compose_style_container() {
    let c = fixture("app-web-1");
    let r = routes(&c);
    assert_eq!(r.name, "fx-app-web-1");
    assert_eq!(only_path(&r).port, 3000);
    assert_eq!(
        container_address(&c, &networks(&["fx-net-a"])),
        ip("172.18.0.3")
    );
}

#[test]
fn fixture_states() {
    for name in ["single-port", "labels", "host-network", "plain"] {
        assert!(is_routable_state(&fixture(name)), "{name}");
    }
    assert!(!is_routable_state(&fixture("stopped")));
    assert!(!is_routable_state(&fixture("paused")));
}

#[test]
fn fixture_without_virtual_host_is_not_proxied() {
    assert_eq!(parse_container(&fixture("plain")), Ok(None));
}

#[test]
fn restarting_or_stateless_containers_are_not_routable() {
    let mut c = container(&[], &[], &[]);
    assert!(is_routable_state(&c));
    if let Some(state) = c.state.as_mut() {
        state.restarting = Some(true);
    }
    assert!(!is_routable_state(&c));
    assert!(!is_routable_state(&ContainerInspectResponse::default()));
}

#[test]
fn nothing_set_means_not_proxied() {
    assert_eq!(
        parse_container(&ContainerInspectResponse::default()),
        Ok(None)
    );
    assert_eq!(
        parse_container(&container(&["PATH=/bin"], &[], &[])),
        Ok(None)
    );
    assert_eq!(
        parse_container(&container(&["VIRTUAL_HOST= , ,"], &[], &[])),
        Ok(None)
    );
    assert_eq!(
        parse_container(&container(&["VIRTUAL_HOST_MULTIPORTS={}"], &[], &[])),
        Ok(None)
    );
}

#[test]
fn virtual_host_entries_are_trimmed_deduplicated_and_lower_cased() {
    let c = container(&["VIRTUAL_HOST= , A.com ,,b.com, a.com , "], &[], &[]);
    assert_eq!(hosts(&routes(&c)), ["a.com", "b.com"]);
}

#[test]
fn regex_host_and_regex_path() {
    let env = [
        r"VIRTUAL_HOST=~^Web\d\.example$,*.Example.org",
        r"VIRTUAL_PATH=~* \.PNG$",
    ];
    let r = routes(&container(&env, &[], &[]));
    assert_eq!(hosts(&r), [r"~^Web\d\.example$", "*.example.org"]);
    assert_eq!(only_path(&r).path, r"~* \.PNG$");
}

#[test]
fn label_wins_over_env_even_when_blank() {
    let c = container(
        &["VIRTUAL_HOST=env.com"],
        &[("VIRTUAL_HOST", "label.com")],
        &[],
    );
    assert_eq!(hosts(&routes(&c)), ["label.com"]);
    let c = container(&["VIRTUAL_HOST=env.com"], &[("VIRTUAL_HOST", " ")], &[]);
    assert_eq!(parse_container(&c), Ok(None));
    let c = container(
        &["VIRTUAL_HOST=a.com", "VIRTUAL_PORT=1"],
        &[("VIRTUAL_PORT", "2")],
        &[],
    );
    assert_eq!(only_path(&routes(&c)).port, 2);
}

#[test]
fn env_splits_at_the_first_equals_and_later_entries_win() {
    let env = [
        "VIRTUAL_HOST=old.com",
        "HSTS=max-age=60",
        "NOVALUE",
        "VIRTUAL_HOST=new.com",
    ];
    let r = routes(&container(&env, &[], &[]));
    assert_eq!(hosts(&r), ["new.com"]);
    assert_eq!(r.hsts, Some(Hsts::Value("max-age=60".to_owned())));
}

#[test]
fn default_port_counts_exposed_tcp_ports_only() {
    let port = |exposed: &[&str]| default_port(&container(&[], &[], exposed));
    assert_eq!(port(&[]), 80);
    assert_eq!(port(&["8080/tcp"]), 8080);
    assert_eq!(port(&["8080"]), 8080);
    assert_eq!(port(&["8080/tcp", "9090/tcp"]), 80);
    assert_eq!(port(&["53/udp"]), 80);
    assert_eq!(port(&["53/udp", "5000/tcp", "7/sctp"]), 5000);
    assert_eq!(port(&["junk/tcp", "81/tcp"]), 81);
    let c = container(
        &["VIRTUAL_HOST=a.com", "VIRTUAL_PORT=9"],
        &[],
        &["8080/tcp"],
    );
    assert_eq!(only_path(&routes(&c)).port, 9);
}

#[test]
fn multiports_ignores_the_single_route_variables() {
    let env = [
        "VIRTUAL_HOST=a.com:80",
        "VIRTUAL_PORT=nope",
        "VIRTUAL_PATH=nope",
        "VIRTUAL_HOST_MULTIPORTS=b.com:",
    ];
    let r = routes(&container(&env, &[], &["8080/tcp"]));
    assert_eq!(hosts(&r), ["b.com"]);
    assert_eq!(only_path(&r).port, 8080);
}

#[test]
fn invalid_multiports_is_an_error_even_with_a_valid_virtual_host() {
    let env = ["VIRTUAL_HOST=a.com", "VIRTUAL_HOST_MULTIPORTS=b.com: [1"];
    assert!(error(&env, &[])
        .starts_with("invalid VIRTUAL_HOST_MULTIPORTS \"b.com: [1\": not valid YAML"));
}

/// Environment, labels, and the start of the expected error message.
type ErrorCase<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn invalid_values_name_the_variable_value_and_reason() {
    let lb = LOADBALANCE_LABEL;
    let cases: Vec<ErrorCase<'_>> = vec![
        (vec!["VIRTUAL_HOST=a.com:8080"], vec![], "invalid VIRTUAL_HOST \"a.com:8080\": ports are not supported"),
        (vec!["VIRTUAL_HOST=ok.com,*bad"], vec![], "invalid VIRTUAL_HOST \"*bad\": `*` is only allowed"),
        (vec!["VIRTUAL_HOST=~(", "VIRTUAL_PORT=1"], vec![], "invalid VIRTUAL_HOST \"~(\": the regular expression does not compile"),
        (vec!["VIRTUAL_HOST=a.com", "VIRTUAL_PORT= 99999 "], vec![], "invalid VIRTUAL_PORT \"99999\": a port is a number from 1 to 65535"),
        (vec!["VIRTUAL_HOST=a.com", "VIRTUAL_PATH=api"], vec![], "invalid VIRTUAL_PATH \"api\": it must start with `/`"),
        (vec!["VIRTUAL_HOST=a.com", "VIRTUAL_PATH=~ ^/a", "VIRTUAL_DEST=/"], vec![], "invalid VIRTUAL_DEST \"/\": VIRTUAL_DEST cannot be used with the regex path `~ ^/a`"),
        (vec!["VIRTUAL_HOST=a.com", "VIRTUAL_PROTO=uwsgi"], vec![], "invalid VIRTUAL_PROTO \"uwsgi\": `uwsgi` is not supported by dockhand"),
        (vec!["VIRTUAL_HOST=a.com", "VIRTUAL_PROTO=grpcs"], vec![], "invalid VIRTUAL_PROTO \"grpcs\": `grpcs` is not supported"),
        (vec!["VIRTUAL_HOST=a.com", "VIRTUAL_PROTO=fastcgi"], vec![], "invalid VIRTUAL_PROTO \"fastcgi\": `fastcgi` is not supported"),
        (vec!["VIRTUAL_HOST=a.com"], vec![(lb, "random;")], "invalid com.github.nginx-proxy.nginx-proxy.loadbalance \"random;\": supported: `hash $remote_addr;`"),
        (vec!["VIRTUAL_HOST=a.com"], vec![(KEEPALIVE_LABEL, "0")], "invalid com.github.nginx-proxy.nginx-proxy.keepalive \"0\": supported: `auto`"),
        (vec!["VIRTUAL_HOST=a.com"], vec![(NON_GET_REDIRECT_LABEL, "302")], "invalid com.github.nginx-proxy.nginx-proxy.non-get-redirect \"302\": supported: 301, 307, 308"),
        (vec!["VIRTUAL_HOST=a.com", "HTTPS_METHOD=always"], vec![], "invalid HTTPS_METHOD \"always\": supported: redirect"),
        (vec!["VIRTUAL_HOST=a.com", "NETWORK_ACCESS=interal"], vec![], "invalid NETWORK_ACCESS \"interal\": supported: external, internal"),
        (vec!["VIRTUAL_HOST=a.com", "CERT_NAME=../x"], vec![], "invalid CERT_NAME \"../x\": a certificate name is a file name"),
        (vec!["VIRTUAL_HOST=a.com", "HSTS=a\u{1}b"], vec![], "invalid HSTS \"a\\u{1}b\": control characters"),
    ];
    for (env, labels, want) in cases {
        let got = error(&env, &labels);
        assert!(
            got.starts_with(want),
            "{env:?} {labels:?}\n got: {got}\nwant: {want}…"
        );
    }
}

#[test]
fn loadbalance_and_keepalive_tolerate_spacing() {
    let labels = [
        (LOADBALANCE_LABEL, "  least_conn  "),
        (KEEPALIVE_LABEL, " 8 "),
    ];
    let r = routes(&container(&["VIRTUAL_HOST=a.com"], &labels, &[]));
    assert_eq!(r.balance, Balance::LeastConn);
    assert_eq!(r.keepalive, Keepalive::Max(8));
}

#[test]
fn dest_with_exact_and_priority_paths_is_allowed() {
    for (path, canonical) in [("=/x", "= /x"), ("^~ /static/", "^~ /static/")] {
        let env = [
            "VIRTUAL_HOST=a.com",
            &format!("VIRTUAL_PATH={path}"),
            "VIRTUAL_DEST=/y",
        ];
        let r = routes(&container(&env, &[], &[]));
        assert_eq!(only_path(&r).path, canonical);
        assert_eq!(only_path(&r).dest.as_deref(), Some("/y"));
    }
}

#[test]
fn grpc_is_h2c() {
    let env = ["VIRTUAL_HOST=a.com", "VIRTUAL_PROTO=grpc"];
    assert_eq!(
        only_path(&routes(&container(&env, &[], &[]))).proto,
        Proto::H2c
    );
}

#[test]
fn health_comes_from_the_health_check_state() {
    use dockhand_spec::Readiness;
    let with = |status: &str| {
        let json =
            format!(r#"{{"State": {{"Running": true, "Health": {{"Status": "{status}"}}}}}}"#);
        serde_json::from_str::<ContainerInspectResponse>(&json).unwrap()
    };
    assert_eq!(health(&with("starting")), Readiness::Starting);
    assert_eq!(health(&with("healthy")), Readiness::Ready);
    assert_eq!(health(&with("unhealthy")), Readiness::Failing);
    assert_eq!(health(&with("none")), Readiness::Unchecked);
    let plain: ContainerInspectResponse =
        serde_json::from_str(r#"{"State": {"Running": true}}"#).unwrap();
    assert_eq!(health(&plain), Readiness::Unchecked);
    assert!(
        !Readiness::Starting.routable()
            && Readiness::Ready.routable()
            && Readiness::Unchecked.routable()
    );
}

#[test]
fn bad_ssl_policy_or_http2_label_names_the_setting() {
    let e = error(&["VIRTUAL_HOST=a.test", "SSL_POLICY=Mozilla-Ancient"], &[]);
    assert!(
        e.contains("SSL_POLICY") && e.contains("Mozilla-Modern"),
        "{e}"
    );
    let e = error(
        &["VIRTUAL_HOST=a.test"],
        &[(
            "com.github.nginx-proxy.nginx-proxy.http2.enable",
            "sometimes",
        )],
    );
    assert!(e.contains("http2.enable"), "{e}");
    let e = error(
        &["VIRTUAL_HOST=a.test"],
        &[(
            "com.github.nginx-proxy.nginx-proxy.ssl_verify_client",
            "maybe",
        )],
    );
    assert!(
        e.contains("ssl_verify_client") && e.contains("optional_no_ca"),
        "{e}"
    );
    let r = routes(&container(
        &["VIRTUAL_HOST=a.test"],
        &[(
            "com.github.nginx-proxy.nginx-proxy.ssl_verify_client",
            "Optional_No_CA",
        )],
        &[],
    ));
    assert_eq!(r.verify_client, Some(VerifyClient::OptionalNoCa));
}

#[test]
fn server_tokens_external_ports_and_debug_endpoint() {
    let r = routes(&container(
        &[
            "VIRTUAL_HOST=a.test,b.test",
            "SERVER_TOKENS=off",
            "EXTERNAL_HTTP_PORT=8080",
            "EXTERNAL_HTTPS_PORT=8443",
        ],
        &[(DEBUG_ENDPOINT_LABEL, "true")],
        &[],
    ));
    assert_eq!(r.server_tokens, Some(false));
    assert_eq!(r.debug_endpoint, Some(true));
    for host in &r.hosts {
        assert_eq!(host.external_http_port, Some(8080));
        assert_eq!(host.external_https_port, Some(8443));
    }
    let plain = routes(&container(&["VIRTUAL_HOST=a.test"], &[], &[]));
    assert_eq!(
        (plain.server_tokens, plain.debug_endpoint),
        (None, None),
        "unset: the proxy-wide values"
    );
    assert_eq!(plain.hosts[0].external_http_port, None);

    let e = error(&["VIRTUAL_HOST=a.test", "SERVER_TOKENS=maybe"], &[]);
    assert!(
        e.contains("SERVER_TOKENS") && e.contains("on, off, build"),
        "{e}"
    );
    let e = error(&["VIRTUAL_HOST=a.test", "EXTERNAL_HTTPS_PORT=0"], &[]);
    assert!(
        e.contains("EXTERNAL_HTTPS_PORT") && e.contains("1 to 65535"),
        "{e}"
    );
    let e = error(&["VIRTUAL_HOST=a.test"], &[(DEBUG_ENDPOINT_LABEL, "sure")]);
    assert!(e.contains("debug-endpoint"), "{e}");
}
