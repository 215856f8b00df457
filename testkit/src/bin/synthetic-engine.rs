//! `synthetic-engine`: the parts of the Docker Engine API that dockhand's discovery uses, serving
//! thousands of synthetic running containers, for `benches/scale-synthetic.sh` (see
//! [`dockhand_testkit::synthetic`]).
//!
//! ```text
//! synthetic-engine --socket PATH --fixture INSPECT.json --containers N --backend IP:PORT
//! ```

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dockhand_testkit::synthetic::SyntheticEngine;
use serde_json::Value;
use tokio::net::UnixListener;

/// Line printed once the socket accepts connections.
const READY_LINE: &str = "synthetic-engine ready";

/// The Docker Engine API, answered for synthetic containers.
#[derive(Debug, Parser)]
struct Cli {
    /// Unix socket to listen on (removed first if it exists).
    #[arg(long)]
    socket: PathBuf,
    /// A saved `docker inspect` of one container (one object, not an array).
    #[arg(long)]
    fixture: PathBuf,
    /// Containers running at start: `synthetic-0` … `synthetic-<N-1>`.
    #[arg(long)]
    containers: usize,
    /// The address every container answers on.
    #[arg(long)]
    backend: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start a runtime: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("synthetic-engine: {message}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> io::Result<()> {
    let text = std::fs::read_to_string(&cli.fixture)?;
    let fixture: Value = serde_json::from_str(&text).map_err(io::Error::other)?;
    let engine = SyntheticEngine::new(fixture, cli.backend);
    for i in 0..cli.containers {
        engine.start(i);
    }
    let _ = std::fs::remove_file(&cli.socket);
    let listener = UnixListener::bind(&cli.socket)?;
    println!("{READY_LINE}");
    engine.serve(listener).await
}
