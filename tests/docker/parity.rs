//! Drop-in parity with nginx-proxy on the wire: header-name case, the `Server` header,
//! `DEFAULT_ROOT`, error pages, external ports, the debug endpoint, access-log formats.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use dockhand_testkit::assert_eventually;
use dockhand_testkit::echo::Echo;
use dockhand_testkit::http::{Request, Response};

use crate::support::*;

/// Sends `request` as written (header-name case included) and reads the answer to the end
/// (the request should say `Connection: close`).
fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The echo in a raw answer's body.
fn echo_of(answer: &str) -> Echo {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not an echo ({e}):\n{answer}"))
}

/// The header names of a raw answer's head, as written.
fn response_names(answer: &str) -> Vec<&str> {
    let head = answer
        .split_once("\r\n\r\n")
        .map_or(answer, |(head, _)| head);
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':').map(|(name, _)| name))
        .collect()
}

#[test]
fn header_names_keep_the_clients_case_and_added_ones_are_title_case() {
    require_docker!();
    let host = unique("case");
    let proxy = dockhand().start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 200);

    let answer = raw(
        proxy.http,
        &format!(
            "GET /case HTTP/1.1\r\nHOST: {host}\r\nX-CamelCase-Token: a\r\nx-all-lower: b\r\n\
             X-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
        ),
    );
    let seen = echo_of(&answer);
    let names = &seen.header_names;
    for name in [
        // The client's, as written.
        "HOST",
        "X-CamelCase-Token",
        "x-all-lower",
        "X-Forwarded-For",
        // dockhand's own, in canonical Title-Case.
        "X-Real-Ip",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "X-Forwarded-Port",
        "X-Forwarded-Ssl",
        "X-Original-Uri",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    assert!(
        names
            .iter()
            .all(|n| n != "x-real-ip" && n != "x-camelcase-token"),
        "{names:?}"
    );
    // The backend's response names keep the backend's case (the echo writes lower case), the
    // ones hyper adds for dockhand are Title-Case.
    let head = response_names(&answer);
    assert!(head.contains(&"x-backend"), "{head:?}");
    assert!(head.contains(&"content-type"), "{head:?}");

    // dockhand's own pages: canonical names.
    let answer = raw(
        proxy.http,
        &format!(
            "GET / HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            unique("nobody")
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let head = response_names(&answer);
    assert!(head.contains(&"Content-Type"), "{head:?}");
    assert!(head.contains(&"Content-Length"), "{head:?}");

    // Switched off: every name in Title-Case.
    let titled = dockhand()
        .env("DOCKHAND_PRESERVE_HEADER_CASE", "false")
        .start();
    titled.wait_status(&host, "/", 200);
    let answer = raw(
        titled.http,
        &format!("GET /case HTTP/1.1\r\nhost: {host}\r\nX-CamelCase-Token: a\r\nconnection: close\r\n\r\n"),
    );
    let names = echo_of(&answer).header_names;
    assert!(names.iter().any(|n| n == "X-Camelcase-Token"), "{names:?}");
    assert!(names.iter().any(|n| n == "Host"), "{names:?}");
    assert!(response_names(&answer).contains(&"X-Backend"), "{answer}");
}

/// The whole of a GET with extra request headers.
fn get_with(addr: SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = Request::get(addr, path).host(host);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request
        .send()
        .unwrap_or_else(|e| panic!("GET http://{host}{path}: {e}"))
}

#[test]
fn server_header_follows_server_tokens_and_a_bad_value_skips_only_its_container() {
    require_docker!();
    let (on, off, bad) = (
        unique("tokens-on"),
        unique("tokens-off"),
        unique("tokens-bad"),
    );
    let proxy = dockhand().start();
    let _on = backend().vhost(&on).start();
    let _off = backend().vhost(&off).env("SERVER_TOKENS", "off").start();
    let broken = backend()
        .vhost(&bad)
        .env("SERVER_TOKENS", "nginx/1.0")
        .start();
    proxy.wait_status(&on, "/", 200);
    proxy.wait_status(&off, "/", 200);

    // nginx: `nginx/<version>` by default, `nginx` with tokens off and on its fallback server.
    let version = concat!("dockhand/", env!("CARGO_PKG_VERSION"));
    assert_eq!(proxy.get(&on, "/").header("server"), Some(version));
    assert_eq!(proxy.get(&off, "/").header("server"), Some("dockhand"));
    let unknown = proxy.get(&unique("nobody"), "/");
    assert_eq!(unknown.status, 503);
    assert_eq!(unknown.header("server"), Some("dockhand"));
    // The backend's own `Server` (the echo sends none; hyper none) never shows: ours replaces it.
    assert_eq!(proxy.status(&bad, "/"), 503);
    assert_eventually!(
        proxy.log().contains(broken.name()) && proxy.log().contains("SERVER_TOKENS"),
        Duration::from_secs(5),
        "the skipped container is named:\n{}",
        proxy.log()
    );
}

#[test]
fn default_root_answers_paths_no_location_covers() {
    require_docker!();
    let host = unique("root");
    let plain = dockhand().start();
    let moved = dockhand()
        .env("DEFAULT_ROOT", "301 https://$host/web$request_uri")
        .start();
    let teapot = dockhand().env("DEFAULT_ROOT", "418").start();
    let _api = backend().vhost(&host).env("VIRTUAL_PATH", "/api/").start();
    for proxy in [&plain, &moved, &teapot] {
        proxy.wait_status(&host, "/api/x", 200);
    }
    assert_eq!(plain.status(&host, "/"), 404);
    assert_eq!(plain.status(&host, "/other"), 404);
    let answer = moved.get(&host, "/some?q=1");
    assert_eq!(answer.status, 301);
    assert_eq!(
        answer.header("location"),
        Some(format!("https://{host}/web/some?q=1").as_str())
    );
    assert_eq!(teapot.status(&host, "/"), 418);
    assert_eq!(teapot.status(&host, "/api/x"), 200, "a location still wins");

    // A vhost with a `/` location never gets DEFAULT_ROOT.
    let rooted = unique("rooted");
    let _web = backend().vhost(&rooted).start();
    teapot.wait_status(&rooted, "/", 200);
    assert_eq!(teapot.status(&rooted, "/anything"), 200);

    let out = std::process::Command::new(DOCKHAND)
        .args(["--check", "--default-root", "301 $status"])
        .output()
        .expect("run dockhand --check");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DEFAULT_ROOT"));
}

#[test]
fn custom_50x_page_replaces_5xx_pages_and_follows_the_file() {
    require_docker!();
    let root = tempfile::tempdir().expect("temp dir");
    let proxy = dockhand()
        .env("DOCKHAND_ACME_WEBROOT", &root.path().to_string_lossy())
        .env("DOCKHAND_CERTS_POLL_INTERVAL", "100ms")
        .start();
    let host = unique("errors");
    // Nothing listens on port 9 of the echo backend: 502.
    let _down = backend().vhost(&host).env("VIRTUAL_PORT", "9").start();
    proxy.wait_status(&host, "/", 502);
    let nobody = unique("nobody");
    assert!(proxy
        .get(&nobody, "/")
        .text()
        .contains("<center>dockhand</center>"));

    let custom = "<html><body>we will be right back</body></html>\n";
    std::fs::create_dir_all(root.path().join("errors")).expect("mkdir");
    std::fs::write(root.path().join("errors/50x.html"), custom).expect("write page");
    assert_eventually!(
        proxy.get(&nobody, "/").text() == custom,
        Duration::from_secs(5)
    );
    let answer = proxy.get(&host, "/");
    assert_eq!(
        (answer.status.as_u16(), answer.text().as_str()),
        (502, custom)
    );
    assert_eq!(answer.header("content-type"), Some("text/html"));
    // Other statuses keep dockhand's page (a 404 from a missing ACME token).
    let missing = proxy.get(&host, "/.well-known/acme-challenge/missing");
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("404 Not Found"));

    std::fs::remove_file(root.path().join("errors/50x.html")).expect("rm page");
    assert_eventually!(
        proxy
            .get(&nobody, "/")
            .text()
            .contains("503 Service Temporarily Unavailable"),
        Duration::from_secs(5)
    );
}

#[test]
fn external_ports_go_into_redirects_and_forwarded_headers() {
    require_docker!();
    let (redirecting, plain) = (unique("ext-redirect"), unique("ext-plain"));
    let proxy = dockhand().start();
    // Without a certificate `redirect` is served as `noredirect` unless told otherwise.
    let _r = backend()
        .vhost(&redirecting)
        .env("ENABLE_HTTP_ON_MISSING_CERT", "false")
        .env("EXTERNAL_HTTPS_PORT", "8443")
        .start();
    let _p = backend()
        .vhost(&plain)
        .env("HTTPS_METHOD", "noredirect")
        .env("EXTERNAL_HTTP_PORT", "8080")
        .env("VIRTUAL_PATH", "/app/")
        .start();
    proxy.wait_status(&redirecting, "/", 301);
    proxy.wait_status(&plain, "/app/", 200);

    let moved = proxy.get(&redirecting, "/p?q=1");
    assert_eq!(
        moved.header("location"),
        Some(format!("https://{redirecting}:8443/p?q=1").as_str())
    );
    let seen = proxy.get(&plain, "/app/x").echo().expect("echo");
    assert_eq!(seen.header("x-forwarded-port"), Some("8080"));
    // nginx-proxy's vhost listens on the external port: `$host:$server_port`.
    assert_eq!(seen.header("host"), Some(format!("{plain}:8080").as_str()));
    let slash = proxy.get(&plain, "/app");
    assert_eq!(slash.status, 301);
    assert_eq!(
        slash.header("location"),
        Some(format!("http://{plain}:8080/app/").as_str())
    );
}

#[test]
fn debug_endpoint_proxy_wide_and_per_container() {
    require_docker!();
    let (enabled, disabled, regex_name) =
        (unique("debug-on"), unique("debug-off"), unique("debug-re"));
    let proxy = dockhand().env("DEBUG_ENDPOINT", "true").start();
    let quiet = dockhand().start();
    let _on = backend()
        .vhost(&enabled)
        .env("VIRTUAL_PATH", "/api/")
        .start();
    let _off = backend()
        .vhost(&disabled)
        .label("com.github.nginx-proxy.nginx-proxy.debug-endpoint", "false")
        .start();
    let regex = format!("~^{}$", regex_name.replace('.', "\\."));
    let _re = backend().vhost(&regex).start();
    let _opt_in = backend()
        .vhost(&regex_name.replace("debug-re", "debug-optin"))
        .label("com.github.nginx-proxy.nginx-proxy.debug-endpoint", "true")
        .start();
    proxy.wait_status(&enabled, "/api/", 200);
    proxy.wait_status(&disabled, "/", 200);
    proxy.wait_status(&regex_name, "/", 200);

    let answer = proxy.get(&enabled, "/nginx-proxy-debug");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let json: serde_json::Value = answer.json().expect("JSON");
    assert_eq!(json["global"]["enable_debug_endpoint"], "true");
    assert_eq!(json["vhost"]["enable_debug_endpoint"], true);
    assert_eq!(json["vhost"]["hostname"], enabled.as_str());
    assert_eq!(json["vhost"]["https_method"], "redirect");
    assert_eq!(json["vhost"]["cert_ok"], false);
    assert_eq!(json["request"]["host"], enabled.as_str());
    assert_eq!(json["vhost"]["paths"]["/api/"]["proto"], "http");

    // Disabled by its container's label: the request goes to the backend.
    let echo = proxy
        .get(&disabled, "/nginx-proxy-debug")
        .echo()
        .expect("echo");
    assert_eq!(echo.path, "/nginx-proxy-debug");
    let json: serde_json::Value = proxy.get(&regex_name, "/nginx-proxy-debug").json().unwrap();
    assert_eq!(
        json["vhost"]["hostname"],
        "Hostname is a regexp and unsafe to include in the debug response."
    );

    // Off proxy-wide: only the container that asks for it.
    let opt_in = regex_name.replace("debug-re", "debug-optin");
    quiet.wait_status(&opt_in, "/", 200);
    let json: serde_json::Value = quiet.get(&opt_in, "/nginx-proxy-debug").json().unwrap();
    assert_eq!(json["global"]["enable_debug_endpoint"], "false");
    assert_eq!(json["vhost"]["enable_debug_endpoint"], true);
    quiet.wait_status(&enabled, "/api/", 200);
    assert_eq!(quiet.status(&enabled, "/nginx-proxy-debug"), 404);
}

#[test]
fn acme_challenges_for_unknown_hosts_only_when_accepted() {
    require_docker!();
    let root = tempfile::tempdir().expect("temp dir");
    let challenges = root.path().join(".well-known/acme-challenge");
    std::fs::create_dir_all(&challenges).expect("mkdir");
    std::fs::write(challenges.join("tok-123"), "tok-123.thumbprint").expect("write");
    let webroot = root.path().to_string_lossy().into_owned();
    let strict = dockhand().env("DOCKHAND_ACME_WEBROOT", &webroot).start();
    let accepting = dockhand()
        .env("DOCKHAND_ACME_WEBROOT", &webroot)
        .env("ACME_HTTP_CHALLENGE_ACCEPT_UNKNOWN_HOST", "true")
        .start();
    let nobody = unique("acme-nobody");
    let path = "/.well-known/acme-challenge/tok-123";
    assert_eq!(strict.status(&nobody, path), 503);
    let answer = accepting.get(&nobody, path);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "tok-123.thumbprint");
    assert_eq!(
        accepting.status(&nobody, "/.well-known/acme-challenge/none"),
        404
    );
    assert_eq!(accepting.status(&nobody, "/other"), 503);
}

#[test]
fn log_format_writes_nginx_style_lines_and_unknown_variables_stop_startup() {
    require_docker!();
    let host = unique("logfmt");
    let format = "$remote_addr - $remote_user [$time_local] \"$request\" $status \
                  $body_bytes_sent \"$http_referer\" \"$http_user_agent\" \"$upstream_addr\" $host";
    let proxy = dockhand()
        .env("DOCKHAND_LOG", "info")
        .env("LOG_FORMAT", format)
        .start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 200);
    let upstream = proxy.backends(&host)[0]["addr"]
        .as_str()
        .expect("the backend's address")
        .to_owned();
    let answer = get_with(
        proxy.http,
        &host,
        "/logged?x=1",
        &[
            ("User-Agent", "probe/1 \"quoted\""),
            ("Referer", "http://ref.test/"),
        ],
    );
    assert_eq!(answer.status, 200);
    let expected = format!(
        "\"GET /logged?x=1 HTTP/1.1\" 200 {} \"http://ref.test/\" \"probe/1 \\x22quoted\\x22\" \"{upstream}\" {host}",
        answer.body.len()
    );
    assert_eventually!(
        proxy.log().contains(&expected),
        Duration::from_secs(5),
        "no line with {expected}:\n{}",
        proxy.log()
    );
    assert!(proxy.log().contains("127.0.0.1 - - ["), "{}", proxy.log());

    let json = dockhand()
        .env("DOCKHAND_LOG", "info")
        .env(
            "LOG_FORMAT",
            "{\"ua\":\"$http_user_agent\",\"status\":$status}",
        )
        .env("LOG_FORMAT_ESCAPE", "json")
        .start();
    json.wait_status(&host, "/", 200);
    get_with(json.http, &host, "/", &[("User-Agent", "a\"b")]);
    assert_eventually!(
        json.log().contains(r#"{"ua":"a\"b","status":200}"#),
        Duration::from_secs(5),
        "{}",
        json.log()
    );

    let out = std::process::Command::new(DOCKHAND)
        .args(["--check"])
        .env("LOG_FORMAT", "$remote_addr $no_such_thing")
        .output()
        .expect("run dockhand --check");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown variable $no_such_thing"),
        "{stderr}"
    );
}
