//! The Swarm provider's loop: poll services and tasks, publish what changed.
//!
//! The Engine sends no task events, so tasks are polled (every `swarm_poll_interval`, 1 s by
//! default), and at once on service and node events (an update, a scale, a node going down),
//! then once more 250 ms later ([`SETTLE`]).
//! A task container dying on dockhand's own node (`docker kill`, a crash) is seen at once from
//! its `die` event: its task leaves the rotation right away, before the manager, which learns
//! it from the node's agent, says so. A poll that finds what was last published publishes
//! nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{
    EventMessage, EventMessageTypeEnum, LocalNodeState, Service, SwarmInfo, SystemInfo,
};
use bollard::query_parameters::EventsOptions;
use bollard::Docker;
use dockhand_spec::{Publication, Publish, TableSpec, VhostSpec};
use futures_util::{FutureExt, StreamExt};
use tokio::time::{self, Instant, MissedTickBehavior};
use tracing::{info, warn};

use super::{fetch, group_tasks, service_name, swarm_vhosts, uses_fallback_port, SwarmTask};
use crate::contract::Reach;
use crate::engine::{self, EngineError};
pub use crate::status::Role;
use crate::table;
use crate::{Config, DiscoveryMetrics, Status, SwarmMode};

/// First pause before reconnecting; doubles up to `Config::max_backoff`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// How often an engine that is not a manager is asked again.
const ROLE_RECHECK: Duration = Duration::from_secs(30);

/// The engine's role: a manager when `Swarm.ControlAvailable` is true, a worker when its node
/// is `active` without it.
pub fn role(info: &SystemInfo) -> Role {
    let swarm: Option<&SwarmInfo> = info.swarm.as_ref();
    let state = swarm.and_then(|s| s.local_node_state);
    match (swarm.and_then(|s| s.control_available), state) {
        (Some(true), _) => Role::Manager,
        (_, Some(LocalNodeState::ACTIVE)) => Role::Worker,
        _ => Role::None,
    }
}

/// Runs the Swarm provider forever: keeps what it describes to `publisher` (a handle for
/// [`super::PROVIDER`]) in step with the services and tasks of the manager at
/// `config.docker_host`, and survives the engine going away (the last routes keep serving).
///
/// With [`SwarmMode::Auto`] it stays idle (asking again every 30 s) while the engine is not a
/// manager; with [`SwarmMode::On`] it also warns that dockhand must run on one. The role it
/// finds and its first published poll go to `status` (made by [`Status::with_swarm`]).
pub async fn run(
    config: Config,
    publisher: impl Publish + 'static,
    status: Arc<Status>,
    metrics: DiscoveryMetrics,
) {
    if config.swarm == SwarmMode::Off {
        return;
    }
    let mut poller = Poller::new(Box::new(publisher), status, metrics);
    let mut seen = None;
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        let error = session(&config, &mut poller, &mut seen).await;
        if matches!(error, EngineError::NotManager) {
            backoff = MIN_BACKOFF;
            time::sleep(ROLE_RECHECK).await;
            continue;
        }
        warn!(%error, docker_host = %config.docker_host, retry_in = ?backoff, "swarm: lost the docker engine; serving the last routes");
        if started.elapsed() > config.max_backoff {
            backoff = MIN_BACKOFF;
        }
        time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

/// Says once per change what the engine's role means for the Swarm provider.
fn announce(mode: SwarmMode, role: Role, seen: &mut Option<Role>) {
    if *seen == Some(role) {
        return;
    }
    *seen = Some(role);
    match (role, mode) {
        (Role::Manager, _) => info!("swarm: the engine is a manager; following its services"),
        (Role::Worker, _) => warn!(
            "swarm: the engine is a swarm worker, not a manager; dockhand must run on a \
             manager (or reach one through DOCKER_HOST) to follow Swarm services"
        ),
        (Role::None, SwarmMode::On) => warn!(
            "swarm: DOCKHAND_SWARM=true but the engine is not in a swarm; dockhand must run \
             on a swarm manager to follow services"
        ),
        (Role::None, _) => info!("swarm: the engine is not in a swarm; Swarm provider idle"),
    }
}

/// One connection's life: returns why it ended.
async fn session(config: &Config, poller: &mut Poller, seen: &mut Option<Role>) -> EngineError {
    match follow(config, poller, seen).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

async fn follow(
    config: &Config,
    poller: &mut Poller,
    seen: &mut Option<Role>,
) -> Result<std::convert::Infallible, EngineError> {
    let docker = engine::connect(config).await?;
    let role = role(&docker.info().await?);
    poller.status.set_swarm_role(role);
    announce(config.swarm, role, seen);
    if role != Role::Manager {
        return Err(EngineError::NotManager);
    }
    let mut events = docker.events(Some(events_options()));
    let reach = engine::whereabouts(&docker, config.own_container.as_deref())
        .await?
        .reach;
    let mut tick = time::interval(config.swarm_poll_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Tasks whose container died on this node, until the manager stops listing them.
    let mut dead = BTreeSet::new();
    // When to poll once more after an event (see `SETTLE`).
    let mut again: Option<Instant> = None;
    loop {
        let follow_up = async {
            match again {
                Some(at) => time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.next() => {
                let event = event.ok_or(EngineError::StreamEnded)??;
                let mut wanted = wants_poll(&event, &mut dead);
                // Coalesce a burst: one poll for whatever is already queued.
                while let Some(event) = events.next().now_or_never().flatten() {
                    wanted |= wants_poll(&event?, &mut dead);
                }
                if !wanted {
                    continue;
                }
                tick.reset();
                again = Some(Instant::now() + SETTLE);
            }
            _ = follow_up => again = None,
            _ = tick.tick() => {}
        }
        let polled = poll(&docker, config, &reach, &mut dead).await;
        poller.apply(polled, config);
    }
}

/// How long after an event dockhand polls once more. A node's `down` event comes a moment
/// before the orchestrator sets its tasks' desired state to `shutdown` (measured on a 3-node
/// swarm: the event's own poll still saw them `running` in 4 runs of 5, and the lost task stayed
/// in the rotation until the next timed poll, 1 s later).
const SETTLE: Duration = Duration::from_millis(250);

/// Whether `event` calls for a poll now: a service or node event, or a task container's `die`
/// (whose task is then added to `dead`).
fn wants_poll(event: &EventMessage, dead: &mut BTreeSet<String>) -> bool {
    match event.typ {
        Some(EventMessageTypeEnum::SERVICE | EventMessageTypeEnum::NODE) => true,
        Some(EventMessageTypeEnum::CONTAINER) if event.action.as_deref() == Some("die") => {
            let task = (event.actor.as_ref())
                .and_then(|a| a.attributes.as_ref())
                .and_then(|a| a.get(TASK_ID_LABEL));
            task.is_some_and(|task| dead.insert(task.clone()))
        }
        _ => false,
    }
}

/// The label the engine puts on a task's container (and on its events).
const TASK_ID_LABEL: &str = "com.docker.swarm.task.id";

fn events_options() -> EventsOptions {
    let kinds = vec![
        "service".to_owned(),
        "node".to_owned(),
        "container".to_owned(),
    ];
    EventsOptions {
        since: None,
        until: None,
        filters: Some(HashMap::from([("type".to_owned(), kinds)])),
    }
}

/// What one poll found: every service, and the vhosts their running tasks make.
struct Polled {
    vhosts: Vec<VhostSpec>,
    errors: Vec<String>,
    /// The services routed to port 80 for want of `VIRTUAL_PORT`.
    fallback: Vec<String>,
}

/// One poll; tasks in `dead` are left out, and `dead` forgets those no longer listed.
async fn poll(
    docker: &Docker,
    config: &Config,
    reach: &Reach,
    dead: &mut BTreeSet<String>,
) -> Result<Polled, EngineError> {
    let services: Vec<Service> = docker.list_services(None).await?;
    let mut tasks: Vec<SwarmTask> = fetch::get_json(config, fetch::RUNNING_TASKS).await?;
    if !dead.is_empty() {
        let listed: BTreeSet<&str> = tasks.iter().filter_map(|t| t.id.as_deref()).collect();
        dead.retain(|task| listed.contains(task.as_str()));
        tasks.retain(|t| t.id.as_ref().is_none_or(|id| !dead.contains(id)));
    }
    let by_service = group_tasks(&mut tasks);
    let pairs = services.iter().map(|s| {
        let id = s.id.as_deref().unwrap_or_default();
        (s, by_service.get(id).copied().unwrap_or(&[]))
    });
    let (vhosts, errors) = swarm_vhosts(pairs, reach, &config.https);
    let errors = errors.iter().map(ToString::to_string).collect();
    let fallback = (services.iter().filter(|s| uses_fallback_port(s)))
        .map(service_name)
        .collect();
    Ok(Polled {
        vhosts,
        errors,
        fallback,
    })
}

/// What the provider published last, and where it publishes.
struct Poller {
    publisher: Box<dyn Publish>,
    status: Arc<Status>,
    metrics: DiscoveryMetrics,
    /// The last publication, `None` before the first.
    published: Option<Vec<VhostSpec>>,
    /// The refused services' errors of the last poll, each logged once.
    errors: BTreeSet<String>,
    /// The services of the last poll routed to port 80 without `VIRTUAL_PORT`, each logged
    /// once.
    fallback: BTreeSet<String>,
    /// Whether the last poll failed, so that a run of failures is logged once.
    failing: bool,
}

impl Poller {
    fn new(publisher: Box<dyn Publish>, status: Arc<Status>, metrics: DiscoveryMetrics) -> Poller {
        Poller {
            publisher,
            status,
            metrics,
            published: None,
            errors: BTreeSet::new(),
            fallback: BTreeSet::new(),
            failing: false,
        }
    }

    /// Publishes what a poll found when it differs from the last publication; a failed poll
    /// is counted (and logged when it starts a run of failures), and changes nothing.
    fn apply(&mut self, polled: Result<Polled, EngineError>, config: &Config) {
        self.metrics.swarm_polls.inc();
        let polled = match polled {
            Ok(polled) => polled,
            Err(error) => {
                self.metrics.swarm_poll_errors.inc();
                if !std::mem::replace(&mut self.failing, true) {
                    warn!(%error, docker_host = %config.docker_host, "swarm: poll failed; serving the last routes");
                }
                return;
            }
        };
        if std::mem::replace(&mut self.failing, false) {
            info!("swarm: polling again");
        }
        let errors: BTreeSet<String> = polled.errors.into_iter().collect();
        for error in errors.difference(&self.errors) {
            warn!(%error, "swarm: skipping service: invalid settings");
        }
        self.errors = errors;
        let fallback: BTreeSet<String> = polled.fallback.into_iter().collect();
        for service in fallback.difference(&self.fallback) {
            info!(%service, "swarm: no VIRTUAL_PORT and no known EXPOSE; using port 80");
        }
        self.fallback = fallback;
        if self.published.as_ref() == Some(&polled.vhosts) {
            return;
        }
        self.count_tasks(&polled.vhosts);
        self.log_changes(&polled.vhosts);
        self.publisher
            .publish(Publication::Full(polled.vhosts.clone()));
        self.published = Some(polled.vhosts);
        self.status.set_swarm_polled();
    }

    /// One `dockhand::routes` line per change since the last publication, as the containers
    /// provider logs them, each task backend with its service, task, slot and node.
    fn log_changes(&self, vhosts: &[VhostSpec]) {
        let spec = |vhosts: &[VhostSpec]| TableSpec {
            vhosts: vhosts.to_vec(),
            default_host: None,
        };
        let before = spec(self.published.as_deref().unwrap_or_default());
        for change in table::diff(&before, &spec(vhosts)) {
            info!(target: "dockhand::routes", "{change}");
        }
    }

    /// `dockhand_swarm_tasks_routed{vhost}`: the distinct tasks behind each vhost.
    fn count_tasks(&self, vhosts: &[VhostSpec]) {
        let gauge = &self.metrics.swarm_tasks_routed;
        gauge.reset();
        for vhost in vhosts {
            let tasks: BTreeSet<&str> = (vhost.paths.iter().flat_map(|p| &p.backends))
                .map(|b| b.id.as_str())
                .collect();
            let count = i64::try_from(tasks.len()).unwrap_or(i64::MAX);
            gauge.with_label_values(&[&vhost.host]).set(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use dockhand_spec::{BackendSpec, PathSpec, Readiness};
    use prometheus::Registry;
    use serde_json::json;

    use super::*;

    fn event(typ: EventMessageTypeEnum, action: &str, attributes: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some(action.to_owned()),
            actor: Some(bollard::models::EventActor {
                id: Some("x".to_owned()),
                attributes: Some(
                    attributes
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn service_node_and_task_container_deaths_call_for_a_poll() {
        let mut dead = BTreeSet::new();
        assert!(wants_poll(
            &event(EventMessageTypeEnum::SERVICE, "update", &[]),
            &mut dead
        ));
        assert!(wants_poll(
            &event(EventMessageTypeEnum::NODE, "update", &[]),
            &mut dead
        ));
        let task = [(TASK_ID_LABEL, "t1")];
        assert!(!wants_poll(
            &event(EventMessageTypeEnum::CONTAINER, "kill", &task),
            &mut dead
        ));
        assert!(!wants_poll(
            &event(EventMessageTypeEnum::CONTAINER, "die", &[]),
            &mut dead
        ));
        assert!(dead.is_empty());
        assert!(wants_poll(
            &event(EventMessageTypeEnum::CONTAINER, "die", &task),
            &mut dead
        ));
        assert_eq!(dead, BTreeSet::from(["t1".to_owned()]));
    }

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Publication>>>);

    impl Publish for Recorder {
        fn publish(&mut self, publication: Publication) {
            self.0.lock().unwrap().push(publication);
        }
    }

    fn info(swarm: serde_json::Value) -> SystemInfo {
        serde_json::from_value(json!({ "Swarm": swarm })).unwrap()
    }

    #[test]
    fn the_role_comes_from_control_available_and_the_node_state() {
        let manager = json!({"LocalNodeState": "active", "ControlAvailable": true, "NodeID": "n1"});
        assert_eq!(role(&info(manager)), Role::Manager);
        let worker = json!({"LocalNodeState": "active", "ControlAvailable": false});
        assert_eq!(role(&info(worker)), Role::Worker);
        let none = json!({"LocalNodeState": "inactive", "ControlAvailable": false});
        assert_eq!(role(&info(none)), Role::None);
        assert_eq!(role(&SystemInfo::default()), Role::None);
    }

    fn vhost(host: &str, tasks: &[&str]) -> VhostSpec {
        let backends = (tasks.iter())
            .map(|t| BackendSpec {
                name: format!("web.{t}"),
                id: (*t).to_owned(),
                addr: None,
                readiness: Readiness::Ready,
                origin: Default::default(),
            })
            .collect();
        let path = PathSpec {
            path: "/".to_owned(),
            dest: None,
            proto: Default::default(),
            balance: Default::default(),
            keepalive: Default::default(),
            network_access: Default::default(),
            backends,
        };
        VhostSpec {
            host: host.to_owned(),
            paths: vec![path],
            https: Default::default(),
        }
    }

    #[test]
    fn a_poll_publishes_only_what_differs_and_a_failed_one_nothing() {
        let registry = Registry::new();
        let metrics = DiscoveryMetrics::new(&registry).unwrap();
        let recorder = Recorder::default();
        let status = Status::with_swarm(SwarmMode::On);
        let mut poller = Poller::new(Box::new(recorder.clone()), status.clone(), metrics.clone());
        let config = Config::default();
        let found = |vhosts: Vec<VhostSpec>| {
            Ok(Polled {
                vhosts,
                errors: vec!["service bad: VIRTUAL_PORT".into()],
                fallback: vec!["web".into()],
            })
        };
        status.set_synced();
        status.set_swarm_role(Role::Manager);
        poller.apply(Err(EngineError::StreamEnded), &config);
        assert_eq!(status.readiness(), Err(crate::NotReady::SwarmFirstPoll));
        poller.apply(found(vec![vhost("a.test", &["t1", "t2"])]), &config);
        assert_eq!(status.readiness(), Ok(()));
        assert_eq!(poller.fallback.len(), 1);
        poller.apply(found(vec![vhost("a.test", &["t1", "t2"])]), &config);
        poller.apply(Err(EngineError::StreamEnded), &config);
        poller.apply(found(vec![vhost("a.test", &["t1"])]), &config);
        poller.apply(found(vec![]), &config);
        let published = recorder.0.lock().unwrap().clone();
        assert_eq!(
            published,
            [
                Publication::Full(vec![vhost("a.test", &["t1", "t2"])]),
                Publication::Full(vec![vhost("a.test", &["t1"])]),
                Publication::Full(vec![]),
            ]
        );
        assert_eq!(metrics.swarm_polls.get(), 6);
        assert_eq!(metrics.swarm_poll_errors.get(), 2);
        assert_eq!(poller.errors.len(), 1);
    }
}
