//! dockhand built and run in process against testkit's synthetic engine, and the plain HTTP
//! client the in-process tests talk to it with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dockhand::app::App;
use dockhand::config::Args;
use dockhand_testkit::synthetic::SyntheticEngine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener};

/// How long each wait may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// `GET path` with `Host: host` on a new connection: status (0 when nothing answered) and body.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = (answer.split(' ').nth(1)).and_then(|code| code.parse().ok());
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status.unwrap_or(0), body.unwrap_or_default())
}

/// Polls `check` until it holds, or fails with `what` after the deadline.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {DEADLINE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// dockhand running in process against `engine`.
pub struct Running {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<Result<(), dockhand::app::AppError>>,
    engine: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// Builds the app on port 0 against `engine` (served on a socket of its own), with `extra`
/// flags, and runs it until [`Running::stop`].
pub async fn start(engine: &Arc<SyntheticEngine>, extra: &[&str]) -> Running {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let socket = dir.path().join("engine.sock");
    let listener = UnixListener::bind(&socket).expect("the engine's socket binds");
    let serving_engine = tokio::spawn(engine.clone().serve(listener));
    let docker_host = format!("--docker-host=unix://{}", socket.display());
    let certs_dir = format!("--certs-dir={}", dir.path().display());
    let flags = [
        "dockhand",
        "--bind=127.0.0.1",
        "--http-port=0",
        "--https-port=0",
        "--admin=127.0.0.1:0",
        &docker_host,
        &certs_dir,
        "--shutdown-grace=1s",
    ];
    let args = Args::try_parse_from(flags.iter().chain(extra)).expect("flags parse");
    let config = args.validate().expect("a valid configuration");
    let app = App::build(config, vec![tokio::runtime::Handle::current()])
        .await
        .expect("the app builds");
    let (http, admin) = (app.http_addr(), app.admin_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    Running {
        http,
        admin,
        stop,
        running,
        engine: serving_engine,
        _dir: dir,
    }
}

impl Running {
    /// Stops the app and checks that it ends cleanly in time.
    pub async fn stop(self) {
        self.stop.send(()).expect("the app is still running");
        let ended = tokio::time::timeout(DEADLINE, self.running).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        self.engine.abort();
    }
}

/// An engine whose containers answer on `127.0.0.1:port`.
pub fn synthetic(port: u16) -> Arc<SyntheticEngine> {
    let fixture = serde_json::from_str(include_str!(
        "../../discovery/tests/fixtures/app-web-1.json"
    ))
    .expect("the fixture is JSON");
    SyntheticEngine::new(fixture, SocketAddr::from(([127, 0, 0, 1], port)))
}
