//! Logging: text by default, JSON lines with `LOG_JSON=true`; and the route log the dashboard
//! shows.
//!
//! Access logs go to the `dockhand::access` target and route changes to `dockhand::routes`, so
//! either can be filtered with `DOCKHAND_LOG` (e.g. `info,dockhand::access=off`). Route changes
//! are also kept, the last [`ROUTE_LOG_LEN`] of them, in [`route_log`], whatever the filter.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The target route changes are logged under.
pub const ROUTES_TARGET: &str = "dockhand::routes";

/// Route changes kept for the dashboard.
pub const ROUTE_LOG_LEN: usize = 100;

/// Installs the global subscriber: the log on stdout, filtered by `filter`, and the route log.
pub fn init(filter: &str, json: bool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let filter = EnvFilter::try_new(filter)?;
    // Colours only for a person at a terminal: `docker logs` and log shippers get plain text.
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // Its own filter: only route changes reach it, so it costs nothing on other events.
    let routes = RouteLogLayer.with_filter(Targets::new().with_target(ROUTES_TARGET, Level::INFO));
    let registry = tracing_subscriber::registry().with(routes);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stdout);
    if json {
        let fmt = fmt.json().flatten_event(true).with_current_span(false);
        registry.with(fmt.with_filter(filter)).try_init()?;
    } else {
        registry
            .with(fmt.with_target(true).with_filter(filter))
            .try_init()?;
    }
    Ok(())
}

/// One route change: when (Unix milliseconds) and what, as logged.
#[derive(Clone, Debug, Serialize)]
pub struct RouteChange {
    /// When it was logged, Unix time in milliseconds.
    pub at_ms: u64,
    /// The log line's message, e.g. `backend added: …`.
    pub message: String,
}

/// The last [`ROUTE_LOG_LEN`] route changes, oldest first.
#[derive(Debug, Default)]
pub struct RouteLog {
    entries: Mutex<VecDeque<RouteChange>>,
}

impl RouteLog {
    /// Appends a change, dropping the oldest beyond [`ROUTE_LOG_LEN`].
    pub fn push(&self, message: String) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() == ROUTE_LOG_LEN {
            entries.pop_front();
        }
        entries.push_back(RouteChange { at_ms, message });
    }

    /// The changes kept, oldest first.
    pub fn entries(&self) -> Vec<RouteChange> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.iter().cloned().collect()
    }
}

/// The process's route log (empty until [`init`] has installed the subscriber that fills it).
pub fn route_log() -> &'static RouteLog {
    static LOG: OnceLock<RouteLog> = OnceLock::new();
    LOG.get_or_init(RouteLog::default)
}

/// Copies the message of every `dockhand::routes` event into [`route_log`].
struct RouteLogLayer;

impl<S: Subscriber> Layer<S> for RouteLogLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        route_log().push(message.0);
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_log_keeps_the_last_hundred() {
        let log = RouteLog::default();
        for n in 0..ROUTE_LOG_LEN + 5 {
            log.push(format!("change {n}"));
        }
        let entries = log.entries();
        assert_eq!(entries.len(), ROUTE_LOG_LEN);
        assert_eq!(entries[0].message, "change 5");
        assert_eq!(entries[ROUTE_LOG_LEN - 1].message, "change 104");
    }
}
