//! The discovery loop: subscribe to events, sync, apply events one by one, resync, reconnect.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerInspectResponse, EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use tokio::time::{self, Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::engine::{self, EngineError, Whereabouts};
use crate::state::State;
use crate::{Config, DiscoveryMetrics, Status};
use dockhand_spec::Publish;

/// How often the engine is pinged, to notice a silently dead connection (e.g. through a proxy).
const PING_INTERVAL: Duration = Duration::from_secs(10);
/// First pause before reconnecting; doubles up to `Config::max_backoff`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// Container actions that can change routing. `exec_*` events from health checks are not wanted.
const CONTAINER_ACTIONS: &[&str] = &[
    "start",
    "die",
    "stop",
    "kill",
    "destroy",
    "pause",
    "unpause",
    "health_status",
];
const NETWORK_ACTIONS: &[&str] = &["connect", "disconnect"];

/// Runs discovery forever: keeps what it describes to `publisher` (a handle for
/// [`crate::PROVIDER`]) in step with the engine, the whole after each sync and resync, what
/// changed after events; survives the engine going away (the last routes keep serving while
/// dockhand reconnects with backoff).
pub async fn run(
    config: Config,
    publisher: impl Publish + 'static,
    status: Arc<Status>,
    metrics: DiscoveryMetrics,
) {
    let mut state = State::new(Box::new(publisher), metrics.clone(), config.https.clone());
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        let error = session(&config, &mut state, &status, &metrics).await;
        status.set_engine_up(false);
        metrics.engine_up.set(0);
        if status.is_synced() {
            warn!(%error, docker_host = %config.docker_host, retry_in = ?backoff, "lost the docker engine; serving the last routes");
        } else {
            warn!(%error, docker_host = %config.docker_host, retry_in = ?backoff, "cannot reach the docker engine yet; retrying");
        }
        if started.elapsed() > config.max_backoff {
            backoff = MIN_BACKOFF;
        }
        time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

/// One connection's life: returns why it ended.
async fn session(
    config: &Config,
    state: &mut State,
    status: &Status,
    metrics: &DiscoveryMetrics,
) -> EngineError {
    match watch(config, state, status, metrics).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

async fn watch(
    config: &Config,
    state: &mut State,
    status: &Status,
    metrics: &DiscoveryMetrics,
) -> Result<std::convert::Infallible, EngineError> {
    let docker = engine::connect(config).await?;
    // Subscribing from the engine's own clock before listing leaves no gap: the engine replays
    // whatever happened between this instant and the moment the stream is actually open.
    let since = docker
        .info()
        .await?
        .system_time
        .as_deref()
        .and_then(unix_timestamp);
    let mut events = docker.events(Some(events_options(since)));
    let mut whereabouts = engine::whereabouts(&docker, config.own_container.as_deref()).await?;
    state.set_reach(whereabouts.reach.clone(), addressing(config, &whereabouts));
    full_sync(&docker, state, metrics, config).await?;
    status.set_skipped(state.skipped());
    status.set_engine_up(true);
    metrics.engine_up.set(1);
    status.set_synced();
    info!(
        containers = state.container_count(),
        "Watching docker events"
    );

    let mut resync = interval(config.resync_interval);
    let mut ping = interval(PING_INTERVAL);
    loop {
        tokio::select! {
            event = events.next() => {
                let event = event.ok_or(EngineError::StreamEnded)??;
                apply(&docker, state, &mut whereabouts, config, metrics, event).await?;
                // Coalesce a burst: apply whatever else is already queued, then publish once.
                while let Some(event) = events.next().now_or_never().flatten() {
                    apply(&docker, state, &mut whereabouts, config, metrics, event?).await?;
                }
                state.publish_changes();
                status.set_skipped(state.skipped());
            }
            _ = resync.tick() => {
                full_sync(&docker, state, metrics, config).await?;
                status.set_skipped(state.skipped());
            }
            _ = ping.tick() => {
                docker.ping().await?;
            }
        }
    }
}

fn interval(period: Duration) -> time::Interval {
    let mut interval = time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// How addresses are chosen, from the settings and where dockhand runs.
fn addressing(config: &Config, whereabouts: &Whereabouts) -> crate::contract::Addressing {
    crate::contract::Addressing {
        prefer_ipv6: config.prefer_ipv6,
        host_gateway: whereabouts.host_gateway,
    }
}

/// The engine reports its clock as RFC 3339; older engines accept only `seconds.nanos` in `since`.
fn unix_timestamp(rfc3339: &str) -> Option<String> {
    let format = ::time::format_description::well_known::Rfc3339;
    let at = ::time::OffsetDateTime::parse(rfc3339, &format).ok()?;
    Some(format!("{}.{:09}", at.unix_timestamp(), at.nanosecond()))
}

fn events_options(since: Option<String>) -> EventsOptions {
    let filters = HashMap::from([
        (
            "type".to_owned(),
            vec!["container".to_owned(), "network".to_owned()],
        ),
        (
            "event".to_owned(),
            CONTAINER_ACTIONS
                .iter()
                .chain(NETWORK_ACTIONS)
                .map(|a| (*a).to_owned())
                .collect(),
        ),
    ]);
    EventsOptions {
        since,
        until: None,
        filters: Some(filters),
    }
}

/// Container inspections the full sync keeps in flight.
const SYNC_INSPECTIONS: usize = 8;

/// Lists the running containers, inspects each, and publishes the result.
async fn full_sync(
    docker: &Docker,
    state: &mut State,
    metrics: &DiscoveryMetrics,
    config: &Config,
) -> Result<(), EngineError> {
    state.replace_all(running_containers(docker, &config.container_filters).await?);
    state.publish_full();
    metrics.resyncs.inc();
    Ok(())
}

/// Lists the running containers and inspects each (those gone in between are left out): what
/// a full sync reads, and what `dockhand check` reads ([`crate::check`]).
pub(crate) async fn running_containers(
    docker: &Docker,
    container_filters: &[(String, String)],
) -> Result<Vec<ContainerInspectResponse>, EngineError> {
    containers_in(docker, &["running"], container_filters).await
}

/// Inspects every container in one of `statuses` (`docker ps` filters) under `container_filters`.
pub(crate) async fn containers_in(
    docker: &Docker,
    statuses: &[&str],
    container_filters: &[(String, String)],
) -> Result<Vec<ContainerInspectResponse>, EngineError> {
    let options = ListContainersOptions {
        filters: Some(engine::status_filters(statuses, container_filters)),
        ..Default::default()
    };
    let listed = docker.list_containers(Some(options)).await?;
    // A few inspections in flight at once: one at a time, 300 containers took 0.6 s to the first
    // table (benches/scale.sh); more at once only queues up in the engine.
    let running: Vec<Option<ContainerInspectResponse>> =
        futures_util::stream::iter(listed.into_iter().filter_map(|summary| summary.id))
            .map(|id| async move { inspect(docker, &id).await })
            .buffer_unordered(SYNC_INSPECTIONS)
            .try_collect()
            .await?;
    Ok(running.into_iter().flatten().collect())
}

/// Inspects one container; `None` when it no longer exists.
async fn inspect(
    docker: &Docker,
    id: &str,
) -> Result<Option<ContainerInspectResponse>, EngineError> {
    match docker.inspect_container(id, None).await {
        Ok(inspect) => Ok(Some(inspect)),
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Applies one event to the state, inspecting only the container concerned.
async fn apply(
    docker: &Docker,
    state: &mut State,
    whereabouts: &mut Whereabouts,
    config: &Config,
    metrics: &DiscoveryMetrics,
    event: EventMessage,
) -> Result<(), EngineError> {
    let action = event.action.unwrap_or_default();
    let actor = event.actor.unwrap_or_default();
    let attributes = actor.attributes.unwrap_or_default();
    let kind = match event.typ {
        Some(EventMessageTypeEnum::CONTAINER) => "container",
        Some(EventMessageTypeEnum::NETWORK) => "network",
        _ => return Ok(()),
    };
    let verb = action.split(':').next().unwrap_or_default();
    metrics.events.with_label_values(&[kind, verb]).inc();
    debug!(kind, %action, actor = ?actor.id, "docker event");

    let id = match kind {
        "network" => attributes.get("container").cloned(),
        _ => actor.id,
    };
    let Some(id) = id else { return Ok(()) };

    if kind == "network" && whereabouts.own_id.as_deref() == Some(id.as_str()) {
        // dockhand itself joined or left a network: every address may change.
        *whereabouts = engine::whereabouts(docker, config.own_container.as_deref()).await?;
        state.set_reach(whereabouts.reach.clone(), addressing(config, whereabouts));
        return Ok(());
    }
    match verb {
        // Out of rotation at once: in-flight requests finish, new ones go elsewhere.
        "die" | "destroy" => {
            state.clear_stopping(&id);
            state.remove(&id);
        }
        "stop" | "pause" => state.remove(&id),
        "kill" if stops_container(attributes.get("signal"), state, &id) => state.mark_stopping(&id),
        "kill" => {}
        "start" => {
            state.clear_stopping(&id);
            upsert(docker, state, &id, &config.container_filters).await?;
        }
        _ => upsert(docker, state, &id, &config.container_filters).await?,
    }
    Ok(())
}

async fn upsert(
    docker: &Docker,
    state: &mut State,
    id: &str,
    filters: &[(String, String)],
) -> Result<(), EngineError> {
    if !filters.is_empty() && !matches_filters(docker, id, filters).await? {
        // Events are not filtered by the engine (a network event carries no container labels),
        // so a container outside DOCKER_CONTAINER_FILTERS is dropped here.
        state.remove(id);
        return Ok(());
    }
    match inspect(docker, id).await? {
        Some(inspect) => state.upsert(inspect),
        None => state.remove(id),
    }
    Ok(())
}

/// Whether the engine lists container `id` among the running ones under `filters`.
async fn matches_filters(
    docker: &Docker,
    id: &str,
    filters: &[(String, String)],
) -> Result<bool, EngineError> {
    let mut filters = engine::running_filters(filters);
    filters.insert("id".to_owned(), vec![id.to_owned()]);
    let options = ListContainersOptions {
        filters: Some(filters),
        ..Default::default()
    };
    Ok(!docker.list_containers(Some(options)).await?.is_empty())
}

/// Does this `kill` event end the container? `docker stop` sends the stop signal (SIGTERM unless
/// the image says otherwise) before `die`; a reload signal such as SIGHUP leaves it running.
fn stops_container(signal: Option<&String>, state: &State, id: &str) -> bool {
    let Some(signal) = signal else { return false };
    matches!(
        signal.as_str(),
        "9" | "15" | "2" | "3" | "SIGKILL" | "SIGTERM" | "SIGINT" | "SIGQUIT"
    ) || state
        .stop_signal(id)
        .is_some_and(|s| signal_number(&s).as_deref() == Some(signal))
}

/// `SIGUSR1`/`USR1`/`10` → `"10"`, for the few signals that images use as STOPSIGNAL.
fn signal_number(signal: &str) -> Option<String> {
    let name = signal.trim_start_matches("SIG");
    let number = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "WINCH" => 28,
        n => return n.parse::<u8>().ok().map(|n| n.to_string()),
    };
    Some(number.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(signal_number("SIGWINCH").as_deref(), Some("28"));
        assert_eq!(signal_number("USR1").as_deref(), Some("10"));
        assert_eq!(signal_number("15").as_deref(), Some("15"));
        assert_eq!(signal_number("SIGBOGUS"), None);
    }

    #[test]
    fn engine_clock_becomes_a_unix_timestamp() {
        let utc = unix_timestamp("2026-11-22T15:56:23.932966Z");
        assert_eq!(utc.as_deref(), Some("1795362983.932966000"));
        let offset = unix_timestamp("2026-11-22T16:56:23.5+01:00");
        assert_eq!(offset.as_deref(), Some("1795362983.500000000"));
        assert_eq!(unix_timestamp("yesterday"), None);
    }

    #[test]
    fn event_filter_names_every_routing_action() {
        let options = events_options(Some("2026-01-01T00:00:00Z".into()));
        let filters = options.filters.expect("filters are always set");
        assert!(filters["event"].iter().any(|e| e == "health_status"));
        assert!(filters["event"].iter().any(|e| e == "disconnect"));
        assert_eq!(options.since.as_deref(), Some("2026-01-01T00:00:00Z"));
    }
}
