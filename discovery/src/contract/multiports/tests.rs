use dockhand_spec::Proto;

use super::*;

fn parse(raw: &str) -> Vec<HostRoutes> {
    parse_multiports(raw, 3000).unwrap()
}

fn error(raw: &str) -> ContractError {
    parse_multiports(raw, 3000).unwrap_err()
}

fn route(path: &str, port: u16, proto: Proto, dest: Option<&str>) -> PathRoute {
    PathRoute {
        path: path.to_owned(),
        port,
        proto,
        dest: dest.map(str::to_owned),
    }
}

#[test]
fn yaml_hosts_paths_and_options() {
    let hosts = parse(
        "Api.Example.com:\n  /: \n  /v2/:\n    port: 8081\n    proto: h2c\n    dest: /\n\
         \x20 external_http_port: 8080\n  external_https_port: \"8443\"\n",
    );
    assert_eq!(hosts.len(), 1);
    let h = &hosts[0];
    assert_eq!(h.host, "api.example.com");
    assert_eq!(h.external_http_port, Some(8080));
    assert_eq!(h.external_https_port, Some(8443));
    let want = vec![
        route("/", 3000, Proto::Http, None),
        route("/v2/", 8081, Proto::H2c, Some("/")),
    ];
    assert_eq!(h.paths, want);
}

#[test]
fn json_is_accepted() {
    let hosts =
        parse(r#"{"a.example": {"/": {"port": "9000", "proto": "https"}}, "b.example": {}}"#);
    assert_eq!(hosts[0].paths, vec![route("/", 9000, Proto::Https, None)]);
    assert_eq!(hosts[1].host, "b.example");
    assert_eq!(hosts[1].paths, vec![route("/", 3000, Proto::Http, None)]);
}

#[test]
fn null_or_pathless_host_means_root() {
    let hosts = parse("a.example:\nb.example: {external_http_port: 81, comment: hi}\n");
    for h in &hosts {
        assert_eq!(
            h.paths,
            vec![route("/", 3000, Proto::Http, None)],
            "{}",
            h.host
        );
    }
    assert_eq!(hosts[1].external_http_port, Some(81));
}

#[test]
fn default_port_forms() {
    let hosts = parse("a.example: {/a: {port: default}, /b: {port: null}, /c: {dest: ''}}");
    assert!(hosts[0]
        .paths
        .iter()
        .all(|p| p.port == 3000 && p.dest.is_none()));
}

#[test]
fn non_path_keys_are_ignored_even_regex_looking_ones() {
    let hosts = parse("a.example: {'~ ^/x': {port: 1}, 'api': {port: 2}, /y: {port: 3, x: 1}}");
    assert_eq!(hosts[0].paths, vec![route("/y", 3, Proto::Http, None)]);
}

#[test]
fn hosts_keep_their_written_order() {
    let hosts = parse("z.example:\na.example:\n");
    let names: Vec<&str> = hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(names, ["z.example", "a.example"]);
}

#[test]
fn duplicate_keys_are_refused_at_every_level() {
    for raw in [
        "a.example:\na.example:\n",
        r#"{"a.example": {}, "a.example": {}}"#,
        "a.example: {/: {port: 1}, /: {port: 2}}",
        "a.example: {/: {port: 1, port: 2}}",
    ] {
        let e = error(raw);
        assert!(e.reason.contains("duplicate entry"), "{raw}: {e}");
        assert_eq!(e.variable, VARIABLE);
    }
}

#[test]
fn keys_meaning_the_same_host_or_path_are_refused() {
    let e = error("A.example:\na.example:\n");
    assert!(e.reason.contains("listed twice"), "{e}");
    let e = error("a.example: {'/x': {}, '/x ': {}}");
    assert!(e.reason.contains("`/x` is listed twice"), "{e}");
}

#[test]
fn invalid_documents_are_refused_with_their_position() {
    let cases = [
        ("not yaml: [", VARIABLE, "not valid YAML"),
        ("just a string", VARIABLE, "map from host names"),
        ("[a.example]", VARIABLE, "map from host names"),
        (
            "a.example: [/]",
            "VIRTUAL_HOST_MULTIPORTS[a.example]",
            "map of paths",
        ),
        ("a.example\nb.example:\n", VARIABLE, "not valid YAML"),
        ("1: {}", VARIABLE, "must be strings"),
        (
            "a.example:80:",
            "VIRTUAL_HOST_MULTIPORTS[a.example:80]",
            "ports are not supported",
        ),
        (
            "a.example: {/: 8080}",
            "VIRTUAL_HOST_MULTIPORTS[a.example][/]",
            "map of port",
        ),
        (
            "a.example: {/a b: {}}",
            "VIRTUAL_HOST_MULTIPORTS[a.example][/a b]",
            "not allowed",
        ),
        (
            "a.example: {/: {port: 0}}",
            "VIRTUAL_HOST_MULTIPORTS[a.example][/].port",
            "1 to 65535",
        ),
        (
            "a.example: {/: {port: x}}",
            "VIRTUAL_HOST_MULTIPORTS[a.example][/].port",
            "1 to 65535",
        ),
        (
            "a.example: {/: {port: [1]}}",
            "VIRTUAL_HOST_MULTIPORTS[a.example][/].port",
            "number",
        ),
        (
            "a.example: {/: {proto: grpcs}}",
            "VIRTUAL_HOST_MULTIPORTS[a.example][/].proto",
            "`grpcs`",
        ),
        (
            "a.example: {/: {proto: 1}}",
            "VIRTUAL_HOST_MULTIPORTS[a.example][/].proto",
            "string",
        ),
        (
            "a.example: {/: {dest: x}}",
            "VIRTUAL_HOST_MULTIPORTS[a.example][/].dest",
            "start with",
        ),
        (
            "a.example: {external_http_port: default}",
            "VIRTUAL_HOST_MULTIPORTS[a.example].external_http_port",
            "1 to 65535",
        ),
    ];
    for (raw, variable, why) in cases {
        let e = error(raw);
        assert_eq!(e.variable, variable, "{raw}: {e}");
        assert!(e.reason.contains(why), "{raw}: {e}");
    }
}

#[test]
fn error_value_shows_the_offending_part() {
    let e = error("a.example: {/: {port: 70000}}");
    assert_eq!(e.value, "70000");
    assert_eq!(
        e.to_string(),
        "invalid VIRTUAL_HOST_MULTIPORTS[a.example][/].port \"70000\": \
         a port is a number from 1 to 65535"
    );
}

#[test]
fn empty_map_names_no_host() {
    assert!(parse("{}").is_empty());
}
