//! dockhand: a dynamic reverse proxy for Docker, drop-in for nginx-proxy.
//!
//! `main` parses and validates every setting before anything binds, then hands over to [`app`].

#![forbid(unsafe_code)]

use dockhand::cli::{self, EX_USAGE};
use dockhand::config::Command;
use dockhand::{app, config, runtime, telemetry};

use std::process::ExitCode;

use clap::Parser;

/// jemalloc: glibc's malloc spent a tenth of the data plane's user time on the hot path
/// (consolidating and unlinking chunks); see docs/engineering-notes.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // jemalloc returns freed pages to the system only when it is called again, so memory that
    // idle connections freed (parked keep-alive connections: see dockhand_proxy's `conn::auto`)
    // stayed resident while nothing happened: 7.9 KiB per idle connection instead of 3.8 with
    // its background thread purging them (benches/results/RESULTS.md, 2026-12-06).
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("dockhand: jemalloc's background purging is off: {e}");
    }
    let args = config::Args::parse();
    // `routes` needs only the admin address: a setting it does not use cannot stop it.
    if let Some(Command::Routes { json }) = args.command {
        return cli::routes::run(args.admin_text(), json);
    }
    let config = match args.validate() {
        Ok(config) => config,
        Err(errors) => {
            for error in &errors {
                eprintln!("dockhand: {error}");
            }
            eprintln!(
                "dockhand: {} invalid setting(s); see dockhand --help",
                errors.len()
            );
            return ExitCode::from(EX_USAGE);
        }
    };
    if let Some(Command::Check { json }) = args.command {
        return cli::check::run(&config.discovery, json);
    }
    if args.check {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    if let Err(error) = telemetry::init(&config.log_filter, config.log_json) {
        eprintln!("dockhand: cannot set up logging: {error}");
        return ExitCode::from(EX_USAGE);
    }
    let (control, workers) = match runtime::control().and_then(|control| {
        let workers = runtime::Workers::start(config.worker_threads)?;
        Ok((control, workers))
    }) {
        Ok(runtimes) => runtimes,
        Err(error) => {
            eprintln!("dockhand: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = control.block_on(async {
        let shutdown = app::signals()?;
        let app = app::App::build(config, workers.handles().to_vec()).await?;
        app.run(shutdown).await
    });
    // The workers stop once their listeners have drained.
    drop(workers);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "dockhand stopped");
            ExitCode::FAILURE
        }
    }
}
