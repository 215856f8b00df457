//! What sits in front of dockhand and how clients reach it, as nginx-proxy's settings describe
//! it: the PROXY protocol from a load balancer (`ENABLE_PROXY_PROTOCOL`), HTTP/2 turned off
//! (`ENABLE_HTTP2`, the `…http2.enable` label) and TLS policies (`SSL_POLICY`); and which
//! containers it routes (`DOCKER_CONTAINER_FILTERS`); client certificates (mTLS).

use std::net::SocketAddr;
use std::time::Duration;

use dockhand_testkit::certs::{CertDir, TestCa};
use dockhand_testkit::http::Request;
use ppp::v2;

use crate::support::*;

/// A PROXY v1 line for a TCP4 client `client` reaching `server`.
fn proxy_v1(client: &str, server: SocketAddr) -> Vec<u8> {
    let (ip, port) = client.split_once(':').expect("ip:port");
    format!(
        "PROXY TCP4 {ip} {} {port} {}\r\n",
        server.ip(),
        server.port()
    )
    .into_bytes()
}

/// A PROXY v2 header (with a TLV, as AWS NLBs send) for `client` reaching `server`.
fn proxy_v2(client: &str, server: SocketAddr) -> Vec<u8> {
    let client: SocketAddr = client.parse().expect("client address");
    v2::Builder::with_addresses(
        v2::Version::Two | v2::Command::Proxy,
        v2::Protocol::Stream,
        (client, server),
    )
    .write_tlv(v2::Type::NoOp, b"aws")
    .expect("TLV")
    .build()
    .expect("v2 header")
}

#[test]
fn proxy_protocol_carries_the_client_address_on_http_and_https() {
    require_docker!();
    let host = unique("pp");
    let internal = unique("ppinternal");
    let (ca, certs) = (TestCa::new(), CertDir::new());
    certs.install(&host, &ca.issue(&[&host]));
    let proxy = dockhand()
        .certs(certs.path())
        .env("ENABLE_PROXY_PROTOCOL", "true")
        .env("HTTPS_METHOD", "noredirect")
        .env("DOCKHAND_LOG", "info,dockhand::access=info")
        .start();
    let _web = backend().vhost(&host).start();
    let _private = backend()
        .vhost(&internal)
        .env("NETWORK_ACCESS", "internal")
        .start();
    let get = |addr: SocketAddr, vhost: &str, preamble: Vec<u8>| {
        Request::get(addr, "/")
            .host(vhost)
            .preamble(preamble)
            .timeout(Duration::from_secs(5))
    };
    let status = |request: Request| request.send().map_or(0, |r| r.status.as_u16());
    dockhand_testkit::assert_eventually!(
        status(get(
            proxy.http,
            &host,
            proxy_v1("203.0.113.7:40000", proxy.http)
        )) == 200,
        Duration::from_secs(10),
        "{host} never answered through a PROXY v1 header:\n{}",
        proxy.log()
    );

    // v1 over HTTP: the backend sees the carried address, not the TCP peer (127.0.0.1). As
    // nginx-proxy sets them (trusting downstream, the default), X-Forwarded-For is the carried
    // address alone (`$proxy_protocol_addr`) and X-Forwarded-Port the port the client reached
    // at the balancer (`$proxy_protocol_server_port`), whatever the client sent.
    let balancer = |port: u16| SocketAddr::from(([198, 51, 100, 1], port));
    let echo = get(
        proxy.http,
        &host,
        proxy_v1("203.0.113.7:40000", balancer(80)),
    )
    .header("X-Forwarded-For", "10.9.9.9")
    .header("X-Forwarded-Port", "1234")
    .send()
    .expect("answer")
    .echo()
    .expect("echo");
    assert_eq!(echo.header("x-real-ip"), Some("203.0.113.7"));
    assert_eq!(echo.header("x-forwarded-for"), Some("203.0.113.7"));
    assert_eq!(echo.header("x-forwarded-port"), Some("80"));

    // v2 before a TLS handshake.
    let response = get(
        proxy.https,
        &host,
        proxy_v2("198.51.100.20:5000", balancer(443)),
    )
    .https()
    .send()
    .expect("HTTPS through a PROXY v2 header");
    assert_eq!(response.status, 200);
    let echo = response.echo().expect("echo");
    assert_eq!(echo.header("x-real-ip"), Some("198.51.100.20"));
    assert_eq!(echo.header("x-forwarded-for"), Some("198.51.100.20"));
    assert_eq!(echo.header("x-forwarded-port"), Some("443"));
    assert_eq!(echo.header("x-forwarded-proto"), Some("https"));

    // NETWORK_ACCESS judges the carried address: a public client is refused even though every
    // TCP connection comes from loopback; a private one is let in.
    let outside = get(proxy.http, &internal, proxy_v1("203.0.113.7:1", proxy.http));
    assert_eq!(status(outside), 403);
    let inside = get(proxy.http, &internal, proxy_v1("10.1.2.3:1", proxy.http));
    assert_eq!(status(inside), 200);

    // The access log names the carried address.
    dockhand_testkit::assert_eventually!(
        proxy.log().contains("198.51.100.20"),
        Duration::from_secs(5),
        "the access log never named the PROXY client:\n{}",
        proxy.log()
    );

    // Without a header, on either port, the connection is closed without an answer.
    assert!(get(proxy.http, &host, Vec::new()).send().is_err());
    assert!(get(proxy.https, &host, Vec::new()).https().send().is_err());
    let garbage = b"PROXY TCP4 not an address\r\n".to_vec();
    assert!(get(proxy.http, &host, garbage).send().is_err());
}

/// Whether `openssl s_client` completes a handshake with `addr` for `host` with `args` (e.g.
/// `-tls1_2`), and what it printed.
fn openssl_handshake(addr: SocketAddr, host: &str, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            host,
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn ssl_policy_and_http2_label_per_container() {
    require_docker!();
    let modern = unique("modern");
    let old = unique("old");
    let h1 = unique("h1only");
    let (ca, certs) = (TestCa::new(), CertDir::new());
    for host in [&modern, &old, &h1] {
        certs.install(host, &ca.issue(&[host]));
    }
    let proxy = dockhand()
        .certs(certs.path())
        .env("DOCKHAND_LOG", "info")
        .start();
    let _modern = backend()
        .vhost(&modern)
        .env("SSL_POLICY", "Mozilla-Modern")
        .start();
    let _old = backend()
        .vhost(&old)
        .env("SSL_POLICY", "Mozilla-Old")
        .start();
    let _h1 = backend()
        .vhost(&h1)
        .label("com.github.nginx-proxy.nginx-proxy.http2.enable", "false")
        .start();
    for host in [&modern, &old, &h1] {
        proxy.wait_status(host, "/", 301);
    }

    // Mozilla-Modern is TLS 1.3 only: a TLS 1.2-only client is refused, TLS 1.3 is served.
    let (ok, text) = openssl_handshake(proxy.https, &modern, &["-tls1_2"]);
    assert!(!ok, "TLS 1.2 accepted under Mozilla-Modern:\n{text}");
    let (ok, text) = openssl_handshake(proxy.https, &modern, &["-tls1_3"]);
    assert!(ok, "{text}");
    // Mozilla-Old is served as TLS 1.2 and 1.3, and reported once by name.
    let (ok, text) = openssl_handshake(proxy.https, &old, &["-tls1_2"]);
    assert!(ok, "{text}");
    let (ok, _) = openssl_handshake(proxy.https, &old, &["-tls1_1"]);
    assert!(!ok, "rustls has no TLS 1.1");
    let warnings = proxy
        .log()
        .lines()
        .filter(|l| l.contains("SSL_POLICY cannot be honoured") && l.contains("Mozilla-Old"))
        .count();
    assert_eq!(warnings, 1, "{}", proxy.log());

    // HTTP/2 off by label: ALPN picks http/1.1 for that vhost only.
    let response = proxy.get_tls(&h1, "/").expect("served over HTTPS");
    assert_eq!(response.version, hyper::Version::HTTP_11);
    let response = proxy.get_tls(&modern, "/").expect("served over HTTPS");
    assert_eq!(response.version, hyper::Version::HTTP_2);
}

#[test]
fn enable_http2_false_turns_off_h2_over_tls_and_h2c() {
    require_docker!();
    let host = unique("noh2");
    let (ca, certs) = (TestCa::new(), CertDir::new());
    certs.install(&host, &ca.issue(&[&host]));
    let proxy = dockhand()
        .certs(certs.path())
        .env("ENABLE_HTTP2", "false")
        .env("HTTPS_METHOD", "noredirect")
        .start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 200);

    let response = proxy.get_tls(&host, "/").expect("served over HTTPS");
    assert_eq!(response.status, 200);
    assert_eq!(response.version, hyper::Version::HTTP_11, "ALPN without h2");
    let h2c = Request::get(proxy.http, "/").host(&host).h2c().send();
    assert!(
        h2c.is_err(),
        "h2c by prior knowledge must be refused: {h2c:?}"
    );
}

#[test]
fn docker_container_filters_limit_the_routed_containers() {
    require_docker!();
    let label = format!("com.example.i22tls.p{}", std::process::id());
    let (kept, skipped, late) = (unique("kept"), unique("skipped"), unique("late"));
    // Running before dockhand starts: these reach it through the first full sync.
    let _kept = backend().vhost(&kept).label(&label, "yes").start();
    let _skipped = backend().vhost(&skipped).label(&label, "no").start();
    let proxy = dockhand()
        .env("DOCKER_CONTAINER_FILTERS", &format!("label={label}=yes"))
        .start();
    proxy.wait_status(&kept, "/", 200);
    assert_eq!(
        proxy.status(&skipped, "/"),
        503,
        "running, but outside the filter"
    );

    // A container started later reaches dockhand by an event: it is filtered the same way.
    let _late = backend().vhost(&late).start();
    let _late_kept = backend().vhost(&late).label(&label, "yes").start();
    proxy.wait_status(&late, "/", 200);
    assert_eq!(
        proxy.backends(&late).len(),
        1,
        "only the labelled container: {:?}",
        proxy.backends(&late)
    );
}

/// Sends `GET /` for `host` over `openssl s_client` (presenting `cert`, when given) and returns
/// everything it printed: the response, or why the handshake failed.
fn openssl_get(
    addr: SocketAddr,
    host: &str,
    cert: Option<(&std::path::Path, &std::path::Path)>,
) -> String {
    use std::io::Write;
    let mut command = std::process::Command::new("openssl");
    command.args([
        "s_client",
        "-quiet",
        "-connect",
        &addr.to_string(),
        "-servername",
        host,
    ]);
    if let Some((crt, key)) = cert {
        command.arg("-cert").arg(crt).arg("-key").arg(key);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.as_bytes());
    let output = child.wait_with_output().expect("openssl output");
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

#[test]
fn client_certificates_from_the_certificate_folder() {
    require_docker!();
    let (strict, optional) = (unique("mtls"), unique("mtlsopt"));
    let (ca, certs) = (TestCa::new(), CertDir::new());
    certs.install(&strict, &ca.issue(&[&strict]));
    certs.install(&optional, &ca.issue(&[&optional]));
    let clients = TestCa::new();
    let (alice, mallory) = (clients.issue(&["alice"]), clients.issue(&["mallory"]));
    certs.write(&format!("{strict}.ca.crt"), &clients.pem());
    certs.write(&format!("{strict}.crl.pem"), &clients.crl(&[&mallory]));
    certs.write(&format!("{optional}.ca.crt"), &clients.pem());
    for (name, issued) in [("alice", &alice), ("mallory", &mallory)] {
        certs.write(&format!("{name}.pem"), &issued.cert_pem);
        certs.write(&format!("{name}.key.pem"), &issued.key_pem);
    }
    let files = |name: &str| {
        (
            certs.path().join(format!("{name}.pem")),
            certs.path().join(format!("{name}.key.pem")),
        )
    };
    let proxy = dockhand().certs(certs.path()).start();
    let _strict = backend().vhost(&strict).start();
    let _optional = backend()
        .vhost(&optional)
        .label(
            "com.github.nginx-proxy.nginx-proxy.ssl_verify_client",
            "optional",
        )
        .start();
    proxy.wait_status(&strict, "/", 301);
    proxy.wait_status(&optional, "/", 301);

    let (crt, key) = files("alice");
    let answer = openssl_get(proxy.https, &strict, Some((&crt, &key)));
    assert!(answer.contains("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\"x-ssl-client-verify\": \"SUCCESS\""),
        "{answer}"
    );
    let answer = openssl_get(proxy.https, &strict, None);
    assert!(
        answer.contains("HTTP/1.1 400"),
        "no certificate: 400 as nginx:\n{answer}"
    );
    let (crt, key) = files("mallory");
    let answer = openssl_get(proxy.https, &strict, Some((&crt, &key)));
    assert!(
        answer.contains("HTTP/1.1 400"),
        "a revoked certificate: 400 after the handshake, as nginx:\n{answer}"
    );

    let answer = openssl_get(proxy.https, &optional, None);
    assert!(answer.contains("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\"x-ssl-client-verify\": \"NONE\""),
        "{answer}"
    );
}

#[test]
fn prefer_ipv6_network_routes_to_the_containers_ipv6_address() {
    require_docker!();
    let host = unique("v6");
    let net = network().ipv6().start();
    let proxy = dockhand().env("PREFER_IPV6_NETWORK", "true").start();
    let _web = backend().vhost(&host).network(&net).start();
    proxy.wait_status(&host, "/", 200);
    let backends = proxy.backends(&host);
    let addr = backends[0]["addr"].as_str().unwrap_or_default().to_owned();
    assert!(addr.starts_with("[fd42:d0c:"), "{backends:?}");
    // Reached over IPv6. The source address is the host's choice: the bridge's own address
    // once its duplicate-address detection is done, another of the host's before that.
    let echo = proxy.get(&host, "/").echo().expect("echo");
    assert!(echo.remote.starts_with('['), "{}", echo.remote);

    // Without the setting, the same container is reached on IPv4.
    let plain = dockhand().start();
    plain.wait_status(&host, "/", 200);
    let addr = plain.backends(&host)[0]["addr"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!addr.starts_with('['), "{addr}");
}

#[test]
fn a_host_network_backend_is_reached_from_dockhand_in_a_container() {
    require_docker!();
    let host = unique("hostnet");
    let port = dockhand_testkit::free_port();
    let net = network().start();
    let proxy = dockhand().in_container(&net).start();
    let _web = backend()
        .vhost(&host)
        .env("VIRTUAL_PORT", &port.to_string())
        .env("LISTEN_PORTS", &port.to_string())
        .docker_arg("--network=host")
        .start();
    proxy.wait_status(&host, "/", 200);
    let addr = proxy.backends(&host)[0]["addr"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        addr.ends_with(&format!(":{port}")) && !addr.starts_with("127."),
        "{addr}"
    );
}
