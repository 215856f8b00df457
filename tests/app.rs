//! The whole app in process, built on port 0 against testkit's synthetic engine instead of
//! Docker: it binds first and says where, routes the engine's containers to a real backend,
//! follows the engine's events, and stops when its shutdown future completes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use dockhand::app::App;
use dockhand::config::Args;
use dockhand_testkit::echo;
use dockhand_testkit::synthetic::SyntheticEngine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener};

const DEADLINE: Duration = Duration::from_secs(10);

/// The status of `GET path` with `Host: host` on a new connection (0 when nothing answered).
async fn status(addr: SocketAddr, host: &str, path: &str) -> u16 {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return 0;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Polls until `GET path` on `addr` answers `expected`, or fails after the deadline.
async fn eventually(addr: SocketAddr, host: &str, path: &str, expected: u16) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = status(addr, host, path).await;
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host}{path} answered {got}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_binds_port_zero_routes_the_engines_containers_and_stops_when_told() {
    let backend = echo::spawn(echo::Config {
        ports: vec![0],
        name: "in-process".to_owned(),
        ..echo::Config::default()
    })
    .expect("the echo backend starts");
    let backend_addr = SocketAddr::from(([127, 0, 0, 1], backend.addr().port()));
    let fixture = serde_json::from_str(include_str!("../discovery/tests/fixtures/app-web-1.json"))
        .expect("the fixture is JSON");
    let engine = SyntheticEngine::new(fixture, backend_addr);
    engine.start(0);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let socket = dir.path().join("engine.sock");
    let listener = UnixListener::bind(&socket).expect("the engine's socket binds");
    let serving_engine = tokio::spawn(engine.clone().serve(listener));

    let args = Args::try_parse_from([
        "dockhand",
        "--bind=127.0.0.1",
        "--http-port=0",
        "--https-port=0",
        "--admin=127.0.0.1:0",
        &format!("--docker-host=unix://{}", socket.display()),
        &format!("--certs-dir={}", dir.path().display()),
        "--shutdown-grace=1s",
    ])
    .expect("flags parse");
    let config = args.validate().expect("a valid configuration");
    let app = App::build(config, vec![tokio::runtime::Handle::current()])
        .await
        .expect("the app builds");
    let (http, admin) = (app.http_addr(), app.admin_addr());
    assert_ne!(http.port(), 0, "building binds, and says where");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    eventually(admin, "admin", "/readyz", 200).await;
    eventually(http, "app0.scale.local", "/", 200).await;
    assert_eq!(status(http, "unknown.invalid", "/").await, 503);
    engine.start(1);
    eventually(http, "app1.scale.local", "/", 200).await;
    engine.remove(0);
    eventually(http, "app0.scale.local", "/", 503).await;

    stop.send(()).expect("the app is still running");
    let ended = tokio::time::timeout(DEADLINE, running).await;
    let ended = ended
        .expect("the app stops once told")
        .expect("the app's task ran");
    assert!(ended.is_ok(), "{ended:?}");
    assert_eq!(
        status(http, "app1.scale.local", "/").await,
        0,
        "still accepting"
    );
    serving_engine.abort();
}
