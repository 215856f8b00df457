//! The kit against the real Docker engine: backends on user networks, reached by container IP
//! (or a published loopback port), and everything removed afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use dockhand_testkit::echo::READY_LINE;
use dockhand_testkit::http::{self, Request};
use dockhand_testkit::images::{self, backend_image, proxy_image};
use dockhand_testkit::{assert_eventually, backend, container, network, require_docker};
use hyper::Version;

/// Deadline for Docker's own healthcheck to change state (interval 200 ms, one retry).
const HEALTH_PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn two_backends_on_a_user_network_echo_by_ip() {
    require_docker!();
    let net = network().name("two").start();
    let a = backend().name("a").vhost("a.test").network(&net).start();
    let b = backend().name("b").port(81).network(&net).start();

    let echo_a = http::get(a.addr(&net, 80), "a.test", "/hello?x=1")
        .expect("a answers")
        .echo()
        .expect("echo JSON");
    assert_eq!(echo_a.name, "a");
    assert_eq!(echo_a.hostname, a.id()[..12]);
    assert_eq!(echo_a.port, 80);
    assert_eq!(echo_a.path, "/hello");
    assert_eq!(echo_a.header("host"), Some("a.test"));

    let response_b = http::get(b.addr(&net, 81), "b.test", "/").expect("b answers");
    assert_eq!(response_b.header("x-backend"), Some("b"));
    assert_eq!(response_b.echo().expect("echo JSON").port, 81);
    assert!(
        http::get(b.addr(&net, 80), "b.test", "/").is_err(),
        "b listens on 81 only"
    );

    let inspect = a.inspect();
    let env: Vec<&str> = inspect["Config"]["Env"]
        .as_array()
        .expect("env list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(env.contains(&"VIRTUAL_HOST=a.test"), "{env:?}");
    assert_eq!(inspect["Config"]["Labels"]["dockhand.test"], "1");
    let exposed = &b.inspect()["Config"]["ExposedPorts"];
    assert!(exposed.get("81/tcp").is_some(), "{exposed}");
}

#[test]
fn websocket_h2c_delay_and_tls_in_a_container() {
    require_docker!();
    let net = network().start();
    let web = backend().env("TLS_PORT", "443").network(&net).start();
    let addr = web.addr(&net, 80);

    let answer = http::websocket_roundtrip(addr, "a.test", "/ws", "hello ws").expect("ws echo");
    assert_eq!(answer, "hello ws");

    let h2 = Request::get(addr, "/")
        .host("a.test")
        .h2c()
        .send()
        .expect("h2c");
    assert_eq!(h2.version, Version::HTTP_2);
    assert_eq!(h2.echo().expect("echo JSON").version, "HTTP/2.0");

    let delayed = http::get(addr, "a.test", "/delay/200").expect("delay");
    assert_eq!(delayed.status, 200);

    let tls = Request::get(web.addr(&net, 443), "/")
        .host("a.test")
        .https()
        .send()
        .expect("https");
    assert!(tls.echo().expect("echo JSON").tls);
    assert_eq!(tls.tls.expect("TLS info").alpn.as_deref(), Some(&b"h2"[..]));
}

#[test]
fn healthcheck_subcommand_and_docker_health() {
    require_docker!();
    let net = network().start();
    let web = backend()
        .network(&net)
        .healthcheck(Duration::from_millis(200))
        .start();
    let addr = web.addr(&net, 80);

    let exec = web.exec(&["/echo-backend", "healthcheck"]);
    assert!(exec.success(), "{exec:?}");
    assert_eventually!(web.health().as_deref() == Some("healthy"), HEALTH_PATIENCE);

    http::get(addr, "a.test", "/health/fail").expect("answer");
    let exec = web.exec(&["/echo-backend", "healthcheck"]);
    assert_eq!(exec.code, Some(1), "{exec:?}");
    assert!(exec.stderr.contains("500"), "{exec:?}");
    assert_eventually!(
        web.health().as_deref() == Some("unhealthy"),
        HEALTH_PATIENCE
    );

    let plain = backend().network(&net).start();
    assert_eq!(plain.health(), None, "no healthcheck unless asked");
}

#[test]
fn docker_stop_is_graceful_and_prompt() {
    require_docker!();
    let net = network().start();
    let web = backend().network(&net).start();
    let mut client = TcpStream::connect(web.addr(&net, 80)).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    client
        .write_all(b"GET /stream/5 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .expect("send");
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).contains("chunk 0") {
        let mut buf = [0u8; 1024];
        let n = client.read(&mut buf).expect("read");
        assert!(n > 0, "closed early");
        received.extend_from_slice(&buf[..n]);
    }

    let started = Instant::now();
    web.stop();
    eprintln!("docker stop took {:?}", started.elapsed());

    client
        .read_to_end(&mut received)
        .expect("rest of the stream");
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.ends_with("0\r\n\r\n") && text.contains("chunk 4"),
        "{text:?}"
    );
    assert!(!web.is_running());
    // Exit code 0, not 137: SIGTERM was handled, not escalated to SIGKILL.
    assert_eq!(web.inspect()["State"]["ExitCode"], 0);
    assert!(web.logs().contains("echo-backend stopped"));
}

#[test]
fn stop_start_restart_kill_and_network_moves() {
    require_docker!();
    let first = network().name("first").start();
    let second = network().name("second").start();
    let web = backend().name("mover").network(&first).start();
    let answers = |addr| http::get(addr, "a.test", "/").is_ok_and(|r| r.status == 200);

    web.stop();
    assert_eq!(web.status(), "exited");
    web.start();
    assert!(answers(web.addr(&first, 80)));
    web.restart();
    assert!(answers(web.addr(&first, 80)));

    web.connect(&second);
    assert_eventually!(answers(web.addr(&second, 80)));
    web.disconnect(&first);
    assert_eq!(web.try_ip(&first), None);
    assert_eventually!(answers(web.addr(&second, 80)));
    web.start();
    assert!(web.is_running(), "start on a running container is a no-op");

    web.kill();
    assert!(!web.is_running());
    assert_ne!(web.inspect()["State"]["ExitCode"], 0);
}

#[test]
fn published_port_is_reachable_on_loopback() {
    require_docker!();
    let web = backend().name("pub").publish(80).start();
    let addr = web.host_addr(80);
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_eventually!(http::get(addr, "a.test", "/").is_ok_and(|r| r.status == 200));
    let echo = http::get(addr, "a.test", "/")
        .expect("answer")
        .echo()
        .expect("echo JSON");
    assert_eq!(echo.name, "pub");
}

#[test]
fn images_are_tagged_by_content_and_reused() {
    require_docker!();
    let image = backend_image();
    assert!(image.starts_with("dockhand-test-backend:"), "{image}");
    assert_eq!(backend_image(), image);

    // Any static binary makes a "proxy" image; the echo backend answers as one.
    let binary = images::echo_backend_binary().expect("binary");
    let proxy = proxy_image(&binary);
    assert!(proxy.starts_with("dockhand:test-"), "{proxy}");
    assert_eq!(proxy[14..], image[22..], "same binary, same hash");
    assert_eq!(proxy_image(Path::new(&binary)), proxy);

    let net = network().start();
    let fake = container(&proxy)
        .arg("--listen")
        .arg("8080")
        .network(&net)
        .wait_for_log(READY_LINE)
        .start();
    let inspect = fake.inspect();
    let env = inspect["Config"]["Env"].to_string();
    assert!(env.contains("DOCKHAND_ADMIN=0.0.0.0:9180"), "{env}");
    assert_eq!(inspect["Config"]["Entrypoint"][0], "/dockhand");
    let answer = http::get(fake.addr(&net, 8080), "a.test", "/").expect("answer");
    assert_eq!(answer.status, 200);
}

#[test]
fn everything_is_removed_on_drop_even_after_a_panic() {
    require_docker!();
    let (container_name, network_name) = std::thread::spawn(|| {
        let net = network().start();
        let web = backend().network(&net).start();
        let names = (web.name().to_owned(), net.name().to_owned());
        // Drop the network handle first: the container keeps it alive until it is removed.
        drop(net);
        std::panic::panic_any(names);
    })
    .join()
    .expect_err("the thread panicked")
    .downcast::<(String, String)>()
    .map(|names| *names)
    .expect("names carried by the panic");

    let listed = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .output()
            .expect("docker runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let filter = format!("name=^{container_name}$");
    assert_eq!(listed(&["ps", "-aq", "--filter", &filter]), "");
    let filter = format!("name=^{network_name}$");
    assert_eq!(listed(&["network", "ls", "-q", "--filter", &filter]), "");
}

#[test]
fn a_container_that_exits_at_start_reports_its_logs() {
    require_docker!();
    let error = backend()
        .env("LISTEN_PORTS", "not-a-port")
        .try_start()
        .expect_err("bad LISTEN_PORTS must stop the backend");
    let message = error.to_string();
    assert!(message.contains("exited"), "{message}");
    assert!(message.contains("not-a-port"), "{message}");
}
