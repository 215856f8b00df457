//! Logging: text by default, JSON lines with `LOG_JSON=true`.
//!
//! Access logs go to the `dockhand::access` target and route changes to `dockhand::routes`, so
//! either can be filtered with `DOCKHAND_LOG` (e.g. `info,dockhand::access=off`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub fn init(filter: &str, json: bool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let filter = EnvFilter::try_new(filter)?;
    // Colours only for a person at a terminal: `docker logs` and log shippers get plain text.
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stdout);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.with_target(true).try_init()
    }
}
