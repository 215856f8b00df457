//! A user who ran nginx-proxy keeps every container's variables and gets the same routing.

use crate::support::*;

#[test]
fn every_virtual_host_form_routes_with_nginx_priority() {
    require_docker!();
    let zone = unique("forms");
    let proxy = dockhand().start();
    let _exact = backend()
        .name("exact")
        .vhost(&format!("www.{zone}"))
        .start();
    let _leading = backend()
        .name("leading")
        .vhost(&format!("*.{zone}"))
        .start();
    let _trailing = backend()
        .name("trailing")
        .vhost(&format!("www.{zone}.*"))
        .start();
    let _regex = backend()
        .name("regex")
        .vhost(&format!("~^api-\\d+\\.{}$", zone.replace('.', "\\.")))
        .start();
    let _list = backend()
        .name("list")
        .env("VIRTUAL_HOST", &format!(" one.{zone} , ,two.{zone},"))
        .start();

    // Wait for each container itself: the wildcards answer 200 for the others' names earlier.
    for (host, name) in [("www", "exact"), ("x", "leading"), ("one", "list")] {
        assert_eventually_served(&proxy, &format!("{host}.{zone}"), "/", name);
    }
    assert_eventually_served(&proxy, &format!("www.{zone}.org"), "/", "trailing");
    let served = |host: &str| proxy.served_by(host, "/").unwrap_or_default();
    // Exact beats the leading wildcard that also matches it.
    assert_eq!(served(&format!("www.{zone}")), "exact");
    // Case and port are ignored.
    assert_eq!(
        served(&format!("WWW.{}:8080", zone.to_uppercase())),
        "exact"
    );
    assert_eq!(served(&format!("deep.sub.{zone}")), "leading");
    assert_eq!(served(&format!("www.{zone}.org")), "trailing");
    // The leading wildcard outranks the regex for a name both match.
    assert_eq!(served(&format!("api-7.{zone}")), "leading");
    assert_eq!(served(&format!("one.{zone}")), "list");
    assert_eq!(served(&format!("two.{zone}")), "list");
    assert_eq!(proxy.status(&format!("nothing-{zone}"), "/"), 503);
}

#[test]
fn regex_hosts_match_when_nothing_else_does() {
    require_docker!();
    let zone = unique("regex");
    let proxy = dockhand().start();
    let pattern = format!("~^api-\\d+\\.{}$", zone.replace('.', "\\."));
    let _regex = backend().name("regex").vhost(&pattern).start();
    proxy.wait_status(&format!("api-42.{zone}"), "/", 200);
    assert_eq!(
        proxy.served_by(&format!("API-42.{zone}"), "/").as_deref(),
        Some("regex")
    );
    assert_eq!(proxy.status(&format!("api-x.{zone}"), "/"), 503);
}

#[test]
fn ports_follow_virtual_port_then_the_single_exposed_port_then_80() {
    require_docker!();
    let zone = unique("ports");
    let proxy = dockhand().start();
    // Listens on 80 and 8081; VIRTUAL_PORT picks 8081.
    let _explicit = backend()
        .vhost(&format!("explicit.{zone}"))
        .port(80)
        .port(8081)
        .env("VIRTUAL_PORT", "8081")
        .start();
    // Exposes and listens on 8082 only: the single exposed port is used.
    let _single = backend()
        .vhost(&format!("single.{zone}"))
        .port(8082)
        .start();
    // Exposes two ports, listens on 80 too: nginx-proxy falls back to 80.
    let _several = backend()
        .vhost(&format!("several.{zone}"))
        .port(80)
        .port(81)
        .port(82)
        .start();

    for (host, port) in [("explicit", 8081), ("single", 8082), ("several", 80)] {
        let host = format!("{host}.{zone}");
        proxy.wait_status(&host, "/", 200);
        assert_eq!(
            proxy.get(&host, "/").echo().expect("echo").port,
            port,
            "{host}"
        );
    }
}

#[test]
fn paths_pick_the_longest_prefix_and_dest_replaces_it() {
    require_docker!();
    let host = unique("paths");
    let proxy = dockhand().start();
    let _root = backend().name("root").vhost(&host).start();
    let _api = backend()
        .name("api")
        .vhost(&host)
        .env("VIRTUAL_PATH", "/api/")
        .env("VIRTUAL_DEST", "/")
        .start();
    let _v2 = backend()
        .name("v2")
        .vhost(&host)
        .env("VIRTUAL_PATH", "/api/v2/")
        .start();

    assert_eventually_served(&proxy, &host, "/api/v2/x", "v2");
    assert_eventually_served(&proxy, &host, "/api/users?id=3", "api");
    let api = proxy.get(&host, "/api/users?id=3").echo().expect("echo");
    assert_eq!(api.uri, "/users?id=3");
    assert_eq!(api.header("x-original-uri"), Some("/api/users?id=3"));
    assert_eq!(proxy.served_by(&host, "/api/v2/x").as_deref(), Some("v2"));
    assert_eq!(
        proxy.get(&host, "/api/v2/x").echo().expect("echo").uri,
        "/api/v2/x"
    );
    assert_eq!(
        proxy.served_by(&host, "/elsewhere").as_deref(),
        Some("root")
    );
}

#[test]
fn a_vhost_without_a_matching_path_answers_404() {
    require_docker!();
    let host = unique("nopath");
    let proxy = dockhand().start();
    let _api = backend().vhost(&host).env("VIRTUAL_PATH", "/api/").start();
    proxy.wait_status(&host, "/api/x", 200);
    assert_eq!(proxy.status(&host, "/other"), 404);
}

#[test]
fn multiports_yaml_and_json_override_the_plain_variables() {
    require_docker!();
    let (yaml_host, json_host, bare_host) = (unique("yaml"), unique("json"), unique("bare"));
    let proxy = dockhand().start();
    let yaml = format!(
        "{yaml_host}:\n  \"/\":\n    port: 8081\n  \"/admin\":\n    port: 8082\n    dest: \"/\"\n{bare_host}:\n"
    );
    let _yaml = backend()
        .port(80)
        .port(8081)
        .port(8082)
        .env("VIRTUAL_HOST", "ignored.when.multiports.test")
        .env("VIRTUAL_HOST_MULTIPORTS", &yaml)
        .start();
    let json = format!(r#"{{"{json_host}": {{"/": {{"port": 8081}}}}}}"#);
    let _json = backend()
        .port(8081)
        .label("VIRTUAL_HOST_MULTIPORTS", &json)
        .start();

    proxy.wait_status(&yaml_host, "/", 200);
    assert_eq!(proxy.get(&yaml_host, "/").echo().expect("echo").port, 8081);
    let admin = proxy.get(&yaml_host, "/admin/panel").echo().expect("echo");
    assert_eq!((admin.port, admin.uri.as_str()), (8082, "/panel"));
    // A host with no value gets "/" on the default port (80: several ports are exposed).
    assert_eq!(proxy.get(&bare_host, "/").echo().expect("echo").port, 80);
    proxy.wait_status(&json_host, "/", 200);
    assert_eq!(proxy.get(&json_host, "/").echo().expect("echo").port, 8081);
    assert_eq!(proxy.status("ignored.when.multiports.test", "/"), 503);
}

#[test]
fn default_host_answers_unknown_hosts() {
    require_docker!();
    let fallback = unique("fallback");
    let proxy = dockhand().env("DEFAULT_HOST", &fallback).start();
    let _site = backend().name("fallback").vhost(&fallback).start();
    proxy.wait_status(&fallback, "/", 200);
    assert_eq!(
        proxy.served_by(&unique("unknown"), "/").as_deref(),
        Some("fallback")
    );
}

#[test]
fn containers_with_invalid_settings_are_skipped_and_named() {
    require_docker!();
    let zone = unique("bad");
    let proxy = dockhand().start();
    let bad_regex = backend()
        .name("bad-regex")
        .vhost(&format!("~^(unclosed.{zone}"))
        .start();
    let bad_yaml = backend()
        .name("bad-yaml")
        .env("VIRTUAL_HOST_MULTIPORTS", "a: [b\nc")
        .start();
    let bad_port = backend()
        .name("bad-port")
        .vhost(&format!("port.{zone}"))
        .env("VIRTUAL_PORT", "http")
        .start();
    let bad_balance = backend()
        .name("bad-lb")
        .vhost(&format!("lb.{zone}"))
        .label("com.github.nginx-proxy.nginx-proxy.loadbalance", "random;")
        .start();
    let _good = backend()
        .name("good")
        .vhost(&format!("good.{zone}"))
        .start();

    proxy.wait_status(&format!("good.{zone}"), "/", 200);
    for skipped in [&bad_regex, &bad_yaml, &bad_port, &bad_balance] {
        let name = skipped.name().to_owned();
        dockhand_testkit::assert_eventually!(
            proxy
                .log()
                .lines()
                .any(|l| l.contains("skipping container") && l.contains(&name)),
            std::time::Duration::from_secs(5),
            "no warning names {name}:\n{}",
            proxy.log()
        );
    }
    assert_eq!(proxy.status(&format!("port.{zone}"), "/"), 503);
    assert_eq!(proxy.status(&format!("lb.{zone}"), "/"), 503);
    assert_eq!(
        proxy.served_by(&format!("good.{zone}"), "/").as_deref(),
        Some("good")
    );
}

#[test]
fn backend_protocols_https_and_h2c() {
    require_docker!();
    let (tls, h2c) = (unique("tls"), unique("h2c"));
    let proxy = dockhand().start();
    let _tls = backend()
        .vhost(&tls)
        .port(80)
        .expose(443)
        .env("TLS_PORT", "443")
        .env("VIRTUAL_PORT", "443")
        .env("VIRTUAL_PROTO", "https")
        .start();
    let _h2c = backend().vhost(&h2c).env("VIRTUAL_PROTO", "h2c").start();
    proxy.wait_status(&tls, "/", 200);
    assert!(
        proxy.get(&tls, "/").echo().expect("echo").tls,
        "the backend saw TLS"
    );
    proxy.wait_status(&h2c, "/", 200);
    assert_eq!(
        proxy.get(&h2c, "/").echo().expect("echo").version,
        "HTTP/2.0"
    );
}

fn assert_eventually_served(proxy: &Dockhand, host: &str, path: &str, name: &str) {
    dockhand_testkit::assert_eventually!(
        proxy.served_by(host, path).as_deref() == Some(name),
        PROPAGATION * 5,
        "{host}{path} was not served by {name}"
    );
}
