//! The echo server and the HTTP client against each other on loopback, without Docker.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use dockhand_testkit::echo::{self, Config, Running};
use dockhand_testkit::http::{self, Request};
use dockhand_testkit::Process;
use futures_util::{SinkExt, StreamExt};
use hyper::{Method, Version};

fn start(name: &str, tls: bool) -> Running {
    echo::spawn(Config {
        ports: vec![0, 0],
        tls_port: tls.then_some(0),
        name: name.to_owned(),
        hostname: "echo-host".to_owned(),
    })
    .expect("echo server starts on free ports")
}

#[test]
fn echo_reports_the_request_as_received() {
    let server = start("alpha", false);
    let response = Request::new(Method::POST, server.addr(), "/some/path?x=1&y=2")
        .host("a.test:8080")
        .header("X-Custom", "one")
        .header("X-Custom", "two")
        .body("hello")
        .send()
        .expect("answer");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-backend"), Some("alpha"));
    assert_eq!(response.header("content-type"), Some("application/json"));
    let echo = response.echo().expect("echo JSON");
    assert_eq!(echo.name, "alpha");
    assert_eq!(echo.hostname, "echo-host");
    assert_eq!(echo.port, server.addr().port());
    assert_eq!(echo.method, "POST");
    assert_eq!(echo.uri, "/some/path?x=1&y=2");
    assert_eq!(echo.path, "/some/path");
    assert_eq!(echo.query.as_deref(), Some("x=1&y=2"));
    assert_eq!(echo.version, "HTTP/1.1");
    assert!(!echo.tls);
    assert_eq!(echo.header("host"), Some("a.test:8080"));
    assert_eq!(echo.header_all("x-custom"), vec!["one", "two"]);
    assert!(echo.remote.starts_with("127.0.0.1:"), "{}", echo.remote);
    assert_eq!(echo.body_len, 5);
}

#[test]
fn every_listen_port_answers_and_reports_its_port() {
    let server = start("multi", false);
    let ports: Vec<u16> = server.http_addrs().iter().map(|a| a.port()).collect();
    assert_eq!(ports.len(), 2);
    for port in ports {
        let echo = http::get(([127, 0, 0, 1], port), "a.test", "/")
            .expect("answer")
            .echo()
            .expect("echo JSON");
        assert_eq!(echo.port, port);
    }
}

#[test]
fn status_route_answers_the_code_asked_for() {
    let server = start("s", false);
    let get = |path: &str| http::get(server.addr(), "a.test", path).expect("answer");
    let teapot = get("/status/418");
    assert_eq!(teapot.status, 418);
    assert_eq!(teapot.echo().expect("echo JSON").path, "/status/418");
    let no_content = get("/status/204");
    assert_eq!(no_content.status, 204);
    assert!(no_content.body.is_empty());
    assert_eq!(get("/status/503").status, 503);
    assert_eq!(get("/status/101").status, 400);
    assert_eq!(get("/status/abc").status, 400);
    assert_eq!(get("/status/1000").status, 400);
}

#[test]
fn delay_route_answers_after_the_delay() {
    let server = start("d", false);
    let started = Instant::now();
    let response = http::get(server.addr(), "a.test", "/delay/300").expect("answer");
    assert_eq!(response.status, 200);
    // A sleep never ends early, so this lower bound is not a timing race.
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        http::get(server.addr(), "a.test", "/delay/x")
            .expect("answer")
            .status,
        400
    );
}

#[test]
fn a_request_slower_than_its_timeout_fails_with_timeout() {
    let server = start("t", false);
    let error = Request::get(server.addr(), "/delay/2000")
        .timeout(Duration::from_millis(100))
        .send()
        .expect_err("must time out");
    assert!(matches!(error, http::HttpError::Timeout(_)), "{error}");
}

#[test]
fn stream_route_sends_the_chunks_in_order() {
    let server = start("st", false);
    let response = http::get(server.addr(), "a.test", "/stream/3").expect("answer");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "chunk 0\nchunk 1\nchunk 2\n");
    assert_eq!(response.header("x-backend"), Some("st"));
}

#[test]
fn health_flag_drives_healthz() {
    let server = start("h", false);
    let status = |path: &str| {
        http::get(server.addr(), "a.test", path)
            .expect("answer")
            .status
    };
    assert_eq!(status("/healthz"), 200);
    assert_eq!(status("/health/fail"), 200);
    assert_eq!(status("/healthz"), 500);
    assert_eq!(status("/health/ok"), 200);
    assert_eq!(status("/healthz"), 200);
}

#[test]
fn websocket_echoes_text_and_binary() {
    let server = start("ws", false);
    let answer =
        http::websocket_roundtrip(server.addr(), "a.test", "/ws", "ping me").expect("round trip");
    assert_eq!(answer, "ping me");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut socket = http::websocket(server.addr(), "a.test", "/ws")
            .await
            .expect("handshake");
        for i in 0..3u8 {
            socket
                .send(http::Message::binary(vec![i, 1, 2]))
                .await
                .expect("send");
            let echoed = socket.next().await.expect("a message").expect("no error");
            assert_eq!(echoed, http::Message::binary(vec![i, 1, 2]));
        }
        socket.close(None).await.expect("close");
    });

    let plain = http::get(server.addr(), "a.test", "/ws").expect("answer");
    assert_eq!(plain.status, 426);
}

#[test]
fn h2c_by_prior_knowledge() {
    let server = start("h2", false);
    let response = Request::get(server.addr(), "/h2?q=1")
        .host("a.test")
        .h2c()
        .send()
        .expect("answer");
    assert_eq!(response.version, Version::HTTP_2);
    let echo = response.echo().expect("echo JSON");
    assert_eq!(echo.version, "HTTP/2.0");
    assert_eq!(echo.path, "/h2");
    assert_eq!(echo.uri, "http://a.test/h2?q=1");
}

#[test]
fn tls_port_serves_h2_and_http1_with_a_self_signed_cert() {
    let server = start("tls", true);
    let tls_addr = server.tls_addr().expect("TLS port");
    let h2 = Request::get(tls_addr, "/secure")
        .host("a.test")
        .https()
        .send()
        .expect("answer");
    let info = h2.tls.clone().expect("TLS info");
    assert_eq!(info.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(info.peer_certificates.len(), 1);
    let echo = h2.echo().expect("echo JSON");
    assert!(echo.tls);
    assert_eq!(echo.version, "HTTP/2.0");
    assert_eq!(echo.port, tls_addr.port());

    let h1 = Request::get(tls_addr, "/secure")
        .host("a.test")
        .https_http1()
        .send()
        .expect("answer");
    assert_eq!(
        h1.tls.as_ref().expect("TLS info").alpn.as_deref(),
        Some(&b"http/1.1"[..])
    );
    assert_eq!(h1.echo().expect("echo JSON").version, "HTTP/1.1");
}

#[test]
fn stopping_lets_in_flight_requests_finish() {
    let server = start("drain", false);
    let addr = server.addr();
    let mut client = TcpStream::connect(addr).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    client
        .write_all(b"GET /stream/5 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .expect("send");
    // The first chunk proves the request is in flight before the server is told to stop.
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).contains("chunk 0") {
        let mut buf = [0u8; 1024];
        let n = client.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "closed early: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buf[..n]);
    }
    server.stop();
    client.read_to_end(&mut received).expect("read the rest");
    let text = String::from_utf8_lossy(&received);
    assert!(text.contains("chunk 4\n"), "{text}");
    assert!(
        text.ends_with("0\r\n\r\n"),
        "response not complete: {text:?}"
    );
    assert!(
        http::get(addr, "a.test", "/").is_err(),
        "stopped server still answers"
    );
}

#[test]
fn a_name_that_is_not_a_header_value_is_refused() {
    let error = echo::spawn(Config {
        ports: vec![0],
        tls_port: None,
        name: "bad\nname".to_owned(),
        hostname: "h".to_owned(),
    })
    .expect_err("must refuse");
    assert!(
        error.to_string().contains("not a valid header value"),
        "{error}"
    );
}

#[test]
fn binary_healthcheck_and_sigterm() {
    let binary = env!("CARGO_BIN_EXE_echo-backend");
    // Port 0: the kernel picks a free port, and the ready line tells which.
    let mut backend = Process::spawn(
        Command::new(binary)
            .args(["--listen", "0"])
            .env("BACKEND_NAME", "bin"),
    );
    backend.wait_for_log("echo-backend ready", Duration::from_secs(10));
    let port = ready_port(&backend.log());
    let healthcheck = || {
        Command::new(binary)
            .args(["healthcheck", &port.to_string()])
            .status()
            .expect("healthcheck runs")
    };
    assert!(healthcheck().success());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let echo = http::get(addr, "a.test", "/")
        .expect("answer")
        .echo()
        .expect("echo JSON");
    assert_eq!(echo.name, "bin");

    http::get(addr, "a.test", "/health/fail").expect("answer");
    assert!(!healthcheck().success());
    http::get(addr, "a.test", "/health/ok").expect("answer");
    assert!(healthcheck().success());

    backend.terminate();
    let status = backend.wait_timeout(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        backend.log()
    );
    assert!(backend.log().contains("echo-backend stopped"));
}

/// The port in `echo-backend ready: http [::]:PORT as NAME`.
fn ready_port(log: &str) -> u16 {
    log.lines()
        .find_map(|line| line.strip_prefix("echo-backend ready: http "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| {
            addr.trim_end_matches(',')
                .parse::<std::net::SocketAddr>()
                .ok()
        })
        .map(|addr| addr.port())
        .unwrap_or_else(|| panic!("no port in the ready line: {log}"))
}
