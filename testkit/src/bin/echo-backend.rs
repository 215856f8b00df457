//! `echo-backend`: the container dockhand proxies to in tests. See [`dockhand_testkit::echo`].
//!
//! ```text
//! echo-backend [--listen 80,81] [--tls-port 8443]   serve (env LISTEN_PORTS, TLS_PORT)
//! echo-backend healthcheck [PORT]                   exit 0 if /healthz answers 200, else 1
//! ```
//!
//! It runs as PID 1 in a container with no shell, so it handles SIGTERM itself (PID 1 gets no
//! default signal handling) and is its own HEALTHCHECK client.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dockhand_testkit::echo::{local_hostname, Config, Server, READY_LINE};
use dockhand_testkit::http;
use tokio::signal::unix::{signal, SignalKind};

/// How long the healthcheck waits for `/healthz`.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Test backend: echoes every request as JSON.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Plain-HTTP ports (HTTP/1.1 and h2c), comma-separated.
    #[arg(
        long,
        env = "LISTEN_PORTS",
        value_delimiter = ',',
        default_value = "80"
    )]
    listen: Vec<u16>,

    /// Also serve HTTPS on this port, with a self-signed certificate made at start.
    #[arg(long, env = "TLS_PORT")]
    tls_port: Option<u16>,

    /// Name reported in the echo and the X-Backend header [default: the hostname].
    #[arg(long, env = "BACKEND_NAME")]
    name: Option<String>,

    #[command(subcommand)]
    command: Option<Action>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// GET http://127.0.0.1:PORT/healthz; exit 0 on 200, 1 otherwise.
    Healthcheck {
        /// Port to check [default: the first --listen port].
        port: Option<u16>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Action::Healthcheck { port }) => {
            let port = port.or(cli.listen.first().copied()).unwrap_or(80);
            healthcheck(port)
        }
        None => serve(cli),
    }
}

fn healthcheck(port: u16) -> ExitCode {
    let response = http::Request::get(([127, 0, 0, 1], port), "/healthz")
        .timeout(HEALTHCHECK_TIMEOUT)
        .send();
    match response {
        Ok(r) if r.status == 200 => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("unhealthy: /healthz answered {}", r.status);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: Cli) -> ExitCode {
    let hostname = local_hostname();
    let config = Config {
        ports: cli.listen,
        tls_port: cli.tls_port,
        name: cli.name.unwrap_or_else(|| hostname.clone()),
        hostname,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("echo-backend: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-backend: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> std::io::Result<()> {
    // Subscribe before binding, so a SIGTERM right after the ready line is not missed.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let server = Server::bind(&config).await?;
    let mut listening: Vec<String> = server
        .http_addrs()
        .iter()
        .map(|a| format!("http {a}"))
        .collect();
    listening.extend(server.tls_addr().map(|a| format!("https {a}")));
    println!("{READY_LINE}: {} as {}", listening.join(", "), config.name);
    server
        .run(async {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
        .await;
    println!("echo-backend stopped");
    Ok(())
}
