use dockhand_proxy::spec::HttpsPolicy;

use super::*;

fn args(extra: &[&str]) -> Args {
    let mut argv = vec!["dockhand"];
    argv.extend_from_slice(extra);
    Args::try_parse_from(argv).expect("flags parse")
}

#[test]
fn defaults_are_valid() {
    let config = args(&[]).validate().expect("defaults are valid");
    assert_eq!(config.http.port(), 80);
    assert_eq!(config.admin, SocketAddr::from(([127, 0, 0, 1], 9180)));
    assert_eq!(config.proxy.response_timeout, Duration::from_secs(60));
    assert!(config.proxy.trust_downstream_proxy);
    assert!(config.proxy.access_log);
}

#[test]
fn flag_defaults_are_the_library_defaults() {
    // Each default is written twice (clap's text, ProxyConfig::default): they must agree.
    let config = args(&[]).validate().expect("defaults are valid");
    assert_eq!(config.proxy, ProxyConfig::default());
    let config = args(&["--body-read-timeout", "300ms"])
        .validate()
        .expect("valid");
    assert_eq!(config.proxy.body_read_timeout, Duration::from_millis(300));
}

#[test]
fn tunnel_idle_timeout_is_a_duration_and_zero_turns_it_off() {
    assert_eq!(
        args(&[])
            .validate()
            .expect("valid")
            .proxy
            .tunnel_idle_timeout,
        Duration::from_secs(3600)
    );
    let config = args(&["--tunnel-idle-timeout", "0"])
        .validate()
        .expect("valid");
    assert_eq!(config.proxy.tunnel_idle_timeout, Duration::ZERO);
    let errors = args(&["--tunnel-idle-timeout", "forever"])
        .validate()
        .expect_err("invalid");
    assert_eq!(errors[0].name, "DOCKHAND_TUNNEL_IDLE_TIMEOUT");
}

#[test]
fn h2_control_frame_limits_are_set_by_flags() {
    let config = args(&[
        "--h2-max-control-frames",
        "0",
        "--h2-control-frames-per-second",
        "5",
    ])
    .validate()
    .expect("valid");
    assert_eq!(config.proxy.h2_max_control_frames, 0);
    assert_eq!(config.proxy.h2_control_frames_per_second, 5);
    let errors = args(&["--h2-max-control-frames", "lots"])
        .validate()
        .expect_err("invalid");
    assert_eq!(errors[0].name, "DOCKHAND_H2_MAX_CONTROL_FRAMES");
}

#[test]
fn every_bad_setting_is_reported() {
    let errors = args(&[
        "--http-port",
        "eighty",
        "--admin",
        "nowhere",
        "--connect-timeout",
        "5 parsecs",
        "--docker-host",
        "ftp://x",
    ])
    .validate()
    .expect_err("invalid");
    let names: Vec<_> = errors.iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            "HTTP_PORT",
            "DOCKHAND_ADMIN",
            "DOCKER_HOST",
            "DOCKHAND_CONNECT_TIMEOUT"
        ]
    );
    assert!(errors[0]
        .to_string()
        .starts_with("HTTP_PORT=\"eighty\" is not valid"));
}

#[test]
fn https_settings_use_nginx_proxy_names_and_defaults() {
    let config = args(&[]).validate().expect("valid");
    assert_eq!(config.https.port(), 443);
    assert_eq!(config.discovery.https, HttpsPolicy::default());
    let config = args(&[
        "--hsts",
        "off",
        "--https-method",
        "noredirect",
        "--non-get-redirect",
        "308",
    ])
    .validate()
    .expect("valid");
    assert_eq!(config.discovery.https.hsts, None);
    assert_eq!(config.discovery.https.non_get_redirect, 308);
    let errors = args(&[
        "--https-method",
        "sometimes",
        "--trust-default-cert",
        "perhaps",
    ])
    .validate()
    .expect_err("invalid");
    let names: Vec<_> = errors.iter().map(|e| e.name).collect();
    assert_eq!(names, ["HTTPS_METHOD", "TRUST_DEFAULT_CERT"]);
}

#[test]
fn ipv6_binds_the_unspecified_v6_address() {
    let config = args(&["--enable-ipv6", "true", "--http-port", "8080"])
        .validate()
        .expect("valid");
    assert_eq!(config.http, "[::]:8080".parse().expect("literal"));
}

#[test]
fn access_logs_can_be_disabled_nginx_proxy_style() {
    let config = args(&["--disable-access-logs", "yes"])
        .validate()
        .expect("valid");
    assert!(!config.proxy.access_log);
}

#[test]
fn swarm_is_auto_by_default_and_checked() {
    use dockhand_discovery::SwarmMode;
    let config = args(&[]).validate().expect("defaults are valid");
    let defaults = dockhand_discovery::Config::default();
    assert_eq!(config.discovery.swarm, SwarmMode::Auto);
    assert_eq!(config.discovery.swarm, defaults.swarm);
    assert_eq!(
        config.discovery.swarm_poll_interval,
        defaults.swarm_poll_interval
    );
    let config = args(&["--swarm=false", "--swarm-poll-interval=250ms"])
        .validate()
        .expect("valid");
    assert_eq!(config.discovery.swarm, SwarmMode::Off);
    assert_eq!(
        config.discovery.swarm_poll_interval,
        Duration::from_millis(250)
    );
    let errors = args(&["--swarm=maybe", "--swarm-poll-interval=0s"])
        .validate()
        .expect_err("both are refused");
    let names: Vec<&str> = errors.iter().map(|e| e.name).collect();
    assert_eq!(names, ["DOCKHAND_SWARM", "DOCKHAND_SWARM_POLL_INTERVAL"]);
}

#[test]
fn upstream_idle_connections_are_uncapped_unless_a_number_is_given() {
    let config = args(&[]).validate().expect("valid");
    assert_eq!(config.proxy.pool_max_idle_per_host, usize::MAX);
    let config = args(&["--upstream-max-idle", "32"])
        .validate()
        .expect("valid");
    assert_eq!(config.proxy.pool_max_idle_per_host, 32);
    let errors = args(&["--upstream-max-idle", "lots"])
        .validate()
        .unwrap_err();
    assert_eq!(errors[0].name, "DOCKHAND_UPSTREAM_MAX_IDLE");
}

#[test]
fn proxy_protocol_and_http2_are_booleans() {
    let config = args(&[]).validate().expect("defaults are valid");
    assert!(!config.proxy.proxy_protocol);
    assert!(config.proxy.http2);
    let config = args(&["--enable-proxy-protocol", "true", "--enable-http2", "false"])
        .validate()
        .expect("valid");
    assert!(config.proxy.proxy_protocol);
    assert!(!config.proxy.http2);
    let errors = args(&["--enable-proxy-protocol", "maybe", "--enable-http2", "2"])
        .validate()
        .expect_err("invalid");
    let mut names: Vec<&str> = errors.iter().map(|e| e.name).collect();
    names.sort_unstable();
    assert_eq!(names, ["ENABLE_HTTP2", "ENABLE_PROXY_PROTOCOL"]);
}

#[test]
fn ssl_policy_is_a_known_name() {
    let config = args(&[]).validate().expect("defaults are valid");
    assert_eq!(config.tls.ssl_policy.name(), "Mozilla-Intermediate");
    assert_eq!(
        config.discovery.https.ssl_policy.name(),
        "Mozilla-Intermediate"
    );
    let config = args(&["--ssl-policy", "ELBSecurityPolicy-TLS13-1-3-2021-06"])
        .validate()
        .expect("valid");
    assert_eq!(config.tls.ssl_policy.name(), "AWS-TLS13-1-3-2021-06");
    let errors = args(&["--ssl-policy", "Mozilla-Ancient"])
        .validate()
        .expect_err("invalid");
    assert_eq!(errors[0].name, "SSL_POLICY");
    let config = args(&["--enable-http2", "off"]).validate().expect("valid");
    assert!(!config.tls.http2 && !config.discovery.https.http2 && !config.proxy.http2);
}

#[test]
fn nginx_proxy_wire_settings_parse_and_bad_ones_are_named() {
    let config = args(&[
        "--default-root",
        "301 https://$host/web$request_uri",
        "--debug-endpoint",
        "true",
        "--acme-http-challenge-accept-unknown-host",
        "true",
        "--log-format",
        "$remote_addr \"$request\" $status $http_user_agent",
        "--log-format-escape",
        "json",
    ])
    .validate()
    .expect("valid");
    assert!(matches!(
        config.proxy.default_root,
        dockhand_proxy::DefaultRoot::Return {
            status: 301,
            text: Some(_)
        }
    ));
    assert!(config.proxy.debug_endpoint);
    assert!(config.discovery.https.debug_endpoint);
    assert!(config.proxy.acme_accept_unknown_host);
    assert!(config.proxy.preserve_header_case, "on by default");
    let off = args(&["--preserve-header-case", "false"])
        .validate()
        .expect("valid");
    assert!(!off.proxy.preserve_header_case);
    let format = config.proxy.log_format.expect("a format");
    assert_eq!(format.escape, dockhand_proxy::LogEscape::Json);

    let errors = args(&[
        "--default-root",
        "teapot",
        "--log-format",
        "$remote_addr $no_such_variable",
        "--log-format-escape",
        "yaml",
        "--debug-endpoint",
        "perhaps",
    ])
    .validate()
    .expect_err("invalid");
    let named: Vec<&str> = errors.iter().map(|e| e.name).collect();
    for name in [
        "DEFAULT_ROOT",
        "LOG_FORMAT",
        "LOG_FORMAT_ESCAPE",
        "DEBUG_ENDPOINT",
    ] {
        assert_eq!(
            named.iter().filter(|n| **n == name).count(),
            1,
            "{name}: {named:?}"
        );
    }
    let text = errors.iter().map(ToString::to_string).collect::<String>();
    assert!(
        text.contains("unknown variable $no_such_variable"),
        "{text}"
    );
}

#[test]
fn docker_tls_verify_reads_the_cert_path_at_start() {
    let tcp = [
        "--docker-tls-verify",
        "1",
        "--docker-host",
        "tcp://engine:2376",
    ];
    let config = args(&["--docker-tls-verify", "1"])
        .validate()
        .expect("unix");
    assert_eq!(
        config.discovery.docker_tls, None,
        "ignored on a unix socket"
    );
    let config = args(&["--docker-host", "tcp://engine:2375"]).validate();
    assert_eq!(config.expect("plain").discovery.docker_tls, None);

    // Missing files: refused at start, naming the file.
    let empty = tempfile::tempdir().expect("temp dir");
    let path = empty.path().to_str().expect("utf-8");
    let errors = args(&[&tcp[..], &["--docker-cert-path", path]].concat())
        .validate()
        .expect_err("no ca.pem");
    assert_eq!(errors[0].name, "DOCKER_CERT_PATH");
    assert!(errors[0].to_string().contains("ca.pem"), "{}", errors[0]);

    // Docker's layout: ca.pem, cert.pem, key.pem.
    let ca = dockhand_testkit::certs::TestCa::new();
    let client = ca.issue(&["dockhand"]);
    let dir = dockhand_testkit::certs::CertDir::new();
    dir.write("ca.pem", &ca.pem());
    dir.write("cert.pem", &client.cert_pem);
    dir.write("key.pem", &client.key_pem);
    let path = dir.path().to_str().expect("utf-8");
    let config = args(&[&tcp[..], &["--docker-cert-path", path]].concat())
        .validate()
        .expect("usable certificates");
    assert_eq!(config.discovery.docker_tls.as_deref(), Some(dir.path()));

    // A key that is not PEM is named too.
    dir.write("key.pem", "not a key");
    let errors = args(&[&tcp[..], &["--docker-cert-path", path]].concat())
        .validate()
        .expect_err("broken key");
    assert!(errors[0].to_string().contains("key.pem"), "{}", errors[0]);

    let errors = args(&["--docker-tls-verify", "1", "--docker-host", "http://e:2375"])
        .validate()
        .expect_err("http:// is plain");
    assert_eq!(errors[0].name, "DOCKER_TLS_VERIFY");
}

#[test]
fn container_filters_and_prefer_ipv6_are_checked() {
    let config = args(&[
        "--docker-container-filters",
        "label=proxied,network=front",
        "--prefer-ipv6-network",
        "true",
    ])
    .validate()
    .expect("valid");
    assert_eq!(config.discovery.container_filters.len(), 2);
    assert!(config.discovery.prefer_ipv6);
    let errors = args(&["--docker-container-filters", "colour=red"])
        .validate()
        .expect_err("invalid");
    assert_eq!(errors[0].name, "DOCKER_CONTAINER_FILTERS");
}
