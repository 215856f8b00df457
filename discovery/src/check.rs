//! `dockhand check`: what discovery would make of every running container (and, on a Swarm
//! manager, every service and its running tasks), without serving; paused and restarting
//! containers are listed too, as not running.
//!
//! The same reading as the containers provider: the same listing and inspection
//! (`watch::containers_in`), the same idea of where dockhand runs (`engine::whereabouts`),
//! and the same contract functions ([`contract::parse_container`],
//! [`contract::container_address`], [`contract::health`], …), so what `check` says is what a
//! running dockhand does. Probing the ports is the caller's (this crate opens no sockets to
//! backends).

use std::net::IpAddr;

use bollard::models::{ContainerInspectResponse, Service};
use dockhand_spec::{Proto, Readiness};
use serde::Serialize;

use crate::contract::{self, Reach};
use crate::engine::{self, EngineError};
use crate::state::display_name;
use crate::swarm::{self, Role, SwarmTask};
use crate::watch::containers_in;
use crate::{Config, SwarmMode};

/// What discovery makes of one running container, Swarm service or Swarm task.
#[derive(Clone, Debug, Serialize)]
pub struct ContainerCheck {
    /// What was checked.
    pub kind: Kind,
    /// Container name without the leading `/` (or the short ID when it has none); a service's
    /// name; a task's backend name (`<service>.<slot>`).
    pub name: String,
    /// Full container, service or task ID.
    pub id: String,
    /// Routed, skipped, or not asking to be proxied.
    pub verdict: Verdict,
    /// The address dockhand connects to: `None` when the container shares no network with
    /// dockhand (its vhosts then answer 502).
    pub address: Option<IpAddr>,
    /// Its HEALTHCHECK state (`none` without one).
    pub health: Readiness,
    /// Every (host, path) it would serve, with the port.
    pub routes: Vec<CheckedRoute>,
    /// Why it would not get traffic, one sentence each; empty when all is well.
    pub problems: Vec<String>,
}

/// One location a container would serve.
#[derive(Clone, Debug, Serialize)]
pub struct CheckedRoute {
    /// The vhost, in canonical form.
    pub host: String,
    /// The location.
    pub path: String,
    /// The container port.
    pub port: u16,
    /// How dockhand talks to it.
    pub proto: Proto,
}

/// What a [`ContainerCheck`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A container, routed by the containers provider.
    Container,
    /// A Swarm service: its settings (its tasks are checked one by one).
    Service,
    /// A running task of a Swarm service, one backend.
    Task,
}

/// The outcome for one container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It asks to be proxied and its settings are valid: it is in the table (whether it gets
    /// traffic also depends on its address and health: see `problems`).
    Routed,
    /// A setting is invalid: dockhand leaves it out, with a warning.
    Skipped,
    /// It sets neither `VIRTUAL_HOST` nor `VIRTUAL_HOST_MULTIPORTS`.
    NotProxied,
    /// A Swarm task's container: the Swarm provider routes it, not the containers provider.
    SwarmTask,
    /// Paused or restarting: not routed until it runs again.
    NotRunning,
}

/// Connects to `config.docker_host`, finds where dockhand runs (`config.own_container`, else
/// this process's own container, else the host: every network), and checks every running,
/// paused or restarting container, sorted by name.
pub async fn check(config: &Config) -> Result<Vec<ContainerCheck>, EngineError> {
    let docker = engine::connect(config).await?;
    let whereabouts = engine::whereabouts(&docker, config.own_container.as_deref()).await?;
    // Paused and restarting ones too: a container that asks for routes and gets none is what
    // the user runs `check` to find.
    let statuses = ["running", "paused", "restarting"];
    let mut checks: Vec<ContainerCheck> =
        containers_in(&docker, &statuses, &config.container_filters)
            .await?
            .iter()
            .filter(|c| c.id.is_some() && c.id != whereabouts.own_id)
            .map(|c| check_container(c, &whereabouts.reach))
            .collect();
    checks.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    // The Swarm provider's services, when it would run: on a manager, unless turned off.
    if config.swarm != SwarmMode::Off && swarm::role(&docker.info().await?) == Role::Manager {
        let services: Vec<Service> = docker.list_services(None).await?;
        let mut tasks: Vec<SwarmTask> =
            swarm::fetch::get_json(config, swarm::fetch::RUNNING_TASKS).await?;
        let by_service = swarm::group_tasks(&mut tasks);
        let mut services: Vec<(&Service, &[SwarmTask])> = (services.iter())
            .map(|s| {
                let id = s.id.as_deref().unwrap_or_default();
                (s, by_service.get(id).copied().unwrap_or(&[]))
            })
            .collect();
        services.sort_by_key(|(s, _)| swarm::service_name(s));
        for (service, tasks) in services {
            checks.extend(check_service(service, tasks, &whereabouts.reach));
        }
    }
    Ok(checks)
}

/// What the Swarm provider makes of `service` and its `tasks` when dockhand reaches the
/// networks in `reach` (pure): the service's own check, then one per task it would route.
pub fn check_service(service: &Service, tasks: &[SwarmTask], reach: &Reach) -> Vec<ContainerCheck> {
    let name = swarm::service_name(service);
    let mut check = ContainerCheck {
        kind: Kind::Service,
        name: name.clone(),
        id: service.id.clone().unwrap_or_default(),
        verdict: Verdict::NotProxied,
        address: None,
        health: Readiness::Unchecked,
        routes: Vec::new(),
        problems: Vec::new(),
    };
    let routes = match swarm::parse_service(service) {
        Ok(Some(routes)) => routes,
        Ok(None) => return vec![check],
        Err(error) => {
            check.verdict = Verdict::Skipped;
            check.problems.push(format!("skipped: {}", error.error));
            return vec![check];
        }
    };
    check.verdict = Verdict::Routed;
    check.routes = checked_routes(&routes);
    let running: Vec<&SwarmTask> = tasks
        .iter()
        .filter(|t| swarm::is_routable_task(t))
        .collect();
    if running.is_empty() {
        (check.problems).push("no running task: its vhosts answer 502 or 503".to_owned());
    }
    let mut checks = vec![check];
    for task in running {
        let address = swarm::task_address(task, reach);
        let mut problems = Vec::new();
        if address.is_none() {
            problems.push(
                "shares no network with dockhand: attach both to one attachable overlay \
                 network"
                    .to_owned(),
            );
        }
        checks.push(ContainerCheck {
            kind: Kind::Task,
            name: swarm::task_name(&name, task),
            id: task.id.clone().unwrap_or_default(),
            verdict: Verdict::Routed,
            address,
            health: Readiness::Unchecked,
            routes: checks[0].routes.clone(),
            problems,
        });
    }
    checks
}

/// Every (host, path) of `routes`, with its port and protocol.
fn checked_routes(routes: &contract::ContainerRoutes) -> Vec<CheckedRoute> {
    (routes.hosts.iter())
        .flat_map(|h| {
            h.paths.iter().map(|p| CheckedRoute {
                host: h.host.clone(),
                path: p.path.clone(),
                port: p.port,
                proto: p.proto,
            })
        })
        .collect()
}

/// What discovery makes of `c` when dockhand reaches the networks in `reach` (pure).
pub fn check_container(c: &ContainerInspectResponse, reach: &Reach) -> ContainerCheck {
    let mut check = ContainerCheck {
        kind: Kind::Container,
        name: display_name(c),
        id: c.id.clone().unwrap_or_default(),
        verdict: Verdict::NotProxied,
        address: None,
        health: contract::health(c),
        routes: Vec::new(),
        problems: Vec::new(),
    };
    if contract::is_swarm_task(c) {
        check.verdict = Verdict::SwarmTask;
        return check;
    }
    let routes = match contract::parse_container(c) {
        Ok(Some(routes)) => routes,
        Ok(None) => return check,
        Err(error) => {
            check.verdict = Verdict::Skipped;
            check.problems.push(format!("skipped: {error}"));
            return check;
        }
    };
    check.routes = checked_routes(&routes);
    if !contract::is_routable_state(c) {
        check.verdict = Verdict::NotRunning;
        check
            .problems
            .push("paused or restarting: no traffic until it runs".to_owned());
        return check;
    }
    check.verdict = Verdict::Routed;
    check.address = contract::container_address(c, reach);
    if check.address.is_none() {
        check.problems.push(
            "shares no network with dockhand: its vhosts answer 502 (docker network connect \
             <network> <container>, or set DOCKHAND_CONTAINER)"
                .to_owned(),
        );
    }
    match check.health {
        Readiness::Starting => (check.problems).push(
            "HEALTHCHECK has not passed yet: no traffic until Docker reports it healthy".into(),
        ),
        Readiness::Failing => (check.problems)
            .push("HEALTHCHECK fails (unhealthy): no traffic until it passes".to_owned()),
        Readiness::Unchecked | Readiness::Ready => {}
    }
    check
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{ContainerConfig, ContainerState, EndpointSettings, NetworkSettings};

    use super::*;

    fn container(env: &[&str], network: Option<&str>) -> ContainerInspectResponse {
        let networks = network.map(|name| {
            let endpoint = EndpointSettings {
                ip_address: Some("172.30.0.2".to_owned()),
                ..Default::default()
            };
            HashMap::from([(name.to_owned(), endpoint)])
        });
        ContainerInspectResponse {
            id: Some("abc".to_owned()),
            name: Some("/web".to_owned()),
            config: Some(ContainerConfig {
                env: Some(env.iter().map(|e| (*e).to_owned()).collect()),
                ..Default::default()
            }),
            state: Some(ContainerState {
                running: Some(true),
                ..Default::default()
            }),
            network_settings: Some(NetworkSettings {
                networks,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn reach(name: &str) -> Reach {
        Reach::Networks([name.to_owned()].into())
    }

    #[test]
    fn a_valid_container_on_a_shared_network_is_routed_without_problems() {
        let c = container(&["VIRTUAL_HOST=a.test", "VIRTUAL_PORT=8080"], Some("apps"));
        let check = check_container(&c, &reach("apps"));
        assert_eq!(check.verdict, Verdict::Routed);
        assert_eq!(check.name, "web");
        assert_eq!(check.address, Some("172.30.0.2".parse().unwrap()));
        assert_eq!(check.routes.len(), 1);
        assert_eq!(
            (check.routes[0].host.as_str(), check.routes[0].port),
            ("a.test", 8080)
        );
        assert!(check.problems.is_empty(), "{:?}", check.problems);
    }

    #[test]
    fn an_invalid_setting_is_skipped_naming_the_variable() {
        let c = container(
            &["VIRTUAL_HOST=a.test", "VIRTUAL_PORT=eighty"],
            Some("apps"),
        );
        let check = check_container(&c, &reach("apps"));
        assert_eq!(check.verdict, Verdict::Skipped);
        assert!(
            check.problems[0].contains("VIRTUAL_PORT"),
            "{:?}",
            check.problems
        );
    }

    #[test]
    fn no_shared_network_is_a_problem() {
        let c = container(&["VIRTUAL_HOST=a.test"], Some("other"));
        let check = check_container(&c, &reach("apps"));
        assert_eq!(check.verdict, Verdict::Routed);
        assert_eq!(check.address, None);
        assert!(
            check.problems[0].contains("no network"),
            "{:?}",
            check.problems
        );
    }

    fn fixture<T: serde::de::DeserializeOwned>(file: &str) -> T {
        let path = format!("{}/tests/fixtures/swarm/{file}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn a_service_is_checked_with_each_running_task_and_its_address() {
        let service: Service = fixture("fx-swarm-a.service.json");
        let tasks: Vec<SwarmTask> = fixture("fx-swarm-a.tasks.json");
        let checks = check_service(&service, &tasks, &reach("fx-swarm-net"));
        assert_eq!(checks[0].kind, Kind::Service);
        assert_eq!(checks[0].verdict, Verdict::Routed, "{checks:?}");
        assert!(!checks[0].routes.is_empty());
        let tasks: Vec<&ContainerCheck> = checks.iter().filter(|c| c.kind == Kind::Task).collect();
        assert!(!tasks.is_empty(), "{checks:?}");
        assert!(tasks
            .iter()
            .all(|t| t.address.is_some() && t.problems.is_empty()));

        // On no shared network, each task says so.
        let apart = check_service(
            &service,
            &fixture::<Vec<SwarmTask>>("fx-swarm-a.tasks.json"),
            &reach("other"),
        );
        let task = apart.iter().find(|c| c.kind == Kind::Task).unwrap();
        assert!(task.problems[0].contains("no network"), "{apart:?}");
        // Without running tasks, the service says so.
        let none = check_service(&service, &[], &reach("fx-swarm-net"));
        assert_eq!(none.len(), 1);
        assert!(none[0].problems[0].contains("no running task"), "{none:?}");
    }

    #[test]
    fn a_container_without_virtual_host_is_not_proxied() {
        let check = check_container(&container(&["PATH=/bin"], None), &Reach::AnyNetwork);
        assert_eq!(check.verdict, Verdict::NotProxied);
        assert!(check.problems.is_empty());
    }
}
