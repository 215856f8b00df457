//! Services and tasks → route descriptions, through the containers' contract.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::models::{Service, TaskState};
use dockhand_spec::{HttpsPolicy, Origin, Readiness, TaskOrigin, VhostSpec};

use super::task::{NetworkAttachment, SwarmTask};
use crate::contract::{
    is_set, parse_settings, ContainerRoutes, ContractError, Reach, FALLBACK_PORT,
};
use crate::table::{build_spec, RoutedContainer};

/// The routing-mesh network's name; its addresses go through IPVS, which balances for
/// itself and is missing on some kernels, so dockhand never uses them.
const INGRESS: &str = "ingress";

/// A service setting that dockhand refuses: the service is left out, the rest is served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("service {service}: {error}")]
pub struct SwarmError {
    /// The service's name (its ID when it has no name).
    pub service: String,
    /// Which setting, which value, and why.
    #[source]
    pub error: ContractError,
}

/// The service's name, else its ID, else empty.
pub fn service_name(service: &Service) -> String {
    service
        .spec
        .as_ref()
        .and_then(|s| s.name.clone())
        .or_else(|| service.id.clone())
        .unwrap_or_default()
}

/// Reads what `service` asks to be routed: `Ok(None)` when it sets neither `VIRTUAL_HOST` nor
/// `VIRTUAL_HOST_MULTIPORTS`.
///
/// Settings come from the service's labels (`docker service create --label`, a stack's
/// `deploy.labels`), its container spec's labels and its container spec's env; the first of
/// these that sets a name wins. No image `EXPOSE` is known for a service, so the port without
/// `VIRTUAL_PORT` is [`FALLBACK_PORT`]. The result's `id` and `name` are the service's.
pub fn parse_service(service: &Service) -> Result<Option<ContainerRoutes>, SwarmError> {
    let (env, labels) = settings(service);
    let name = service_name(service);
    parse_settings(
        service.id.as_deref().unwrap_or_default(),
        &name,
        env,
        Some(&labels),
        FALLBACK_PORT,
    )
    .map_err(|error| SwarmError {
        service: name,
        error,
    })
}

/// True when `service` is routed by `VIRTUAL_HOST` without `VIRTUAL_PORT`, so that its tasks
/// get [`FALLBACK_PORT`] (no image `EXPOSE` is known for a service). Multiports entries
/// without a `port` are not counted.
pub fn uses_fallback_port(service: &Service) -> bool {
    let (env, labels) = settings(service);
    let set = |name| is_set(env, Some(&labels), name);
    set("VIRTUAL_HOST") && !set("VIRTUAL_HOST_MULTIPORTS") && !set("VIRTUAL_PORT")
}

/// The service's container-spec env, and its labels: the container spec's, overridden by the
/// service's own.
fn settings(service: &Service) -> (Option<&[String]>, HashMap<String, String>) {
    let spec = service.spec.as_ref();
    let container = spec
        .and_then(|s| s.task_template.as_ref())
        .and_then(|t| t.container_spec.as_ref());
    let mut labels: HashMap<String, String> =
        container.and_then(|c| c.labels.clone()).unwrap_or_default();
    // Service labels are what `deploy.labels` set, and the containers never carry them; they
    // override the container spec's so a stack can re-route an image without rebuilding it.
    labels.extend(spec.and_then(|s| s.labels.clone()).unwrap_or_default());
    (container.and_then(|c| c.env.as_deref()), labels)
}

/// True while `task` should get traffic: the orchestrator wants it running and it runs.
///
/// Both are needed: a task being stopped (update, scale-down, drain) keeps `running` as its
/// observed state until its container exits, and a task on a node that went down keeps it for
/// good; only its desired state says it is leaving.
pub fn is_routable_task(task: &SwarmTask) -> bool {
    let observed = task.status.as_ref().and_then(|s| s.state);
    task.desired_state == Some(TaskState::RUNNING) && observed == Some(TaskState::RUNNING)
}

/// The address dockhand connects to for `task`: its own address on the first network, by
/// name, that `reach` holds (by name or by ID), never on `ingress`. IPv4 is preferred over
/// IPv6 on that network. `None` when no such network or address exists.
pub fn task_address(task: &SwarmTask, reach: &Reach) -> Option<IpAddr> {
    let mut usable: Vec<(&str, &NetworkAttachment)> = task
        .networks
        .iter()
        .flatten()
        .filter_map(|a| {
            let network = a.network.as_ref()?;
            let spec = network.spec.as_ref();
            let name = spec.and_then(|s| s.name.as_deref()).unwrap_or_default();
            let id = network.id.as_deref().unwrap_or_default();
            let ingress = spec.and_then(|s| s.ingress) == Some(true) || name == INGRESS;
            let reached =
                (!name.is_empty() && reach.reaches(name)) || (!id.is_empty() && reach.reaches(id));
            (!ingress && reached).then_some((name, a))
        })
        .collect();
    // Sorted as containers' networks are, so a task on two shared networks keeps one address.
    usable.sort_by(|a, b| a.0.cmp(b.0));
    let (_, attachment) = usable.first()?;
    let addresses: Vec<IpAddr> = attachment
        .addresses
        .iter()
        .flatten()
        .filter_map(|cidr| cidr.split('/').next()?.trim().parse().ok())
        .collect();
    addresses
        .iter()
        .find(|ip| ip.is_ipv4())
        .or_else(|| addresses.first())
        .copied()
}

/// The backend name of `task`: `<service>.<slot>` for a replicated service, as `docker
/// service ps` shows it; `<service>.<node ID>` for a global one, which has no slots; else
/// `<service>.<task ID>`.
pub fn task_name(service: &str, task: &SwarmTask) -> String {
    let t = task;
    let suffix = match (t.slot, &t.node_id, &t.id) {
        (Some(slot), _, _) if slot > 0 => slot.to_string(),
        (_, Some(node), _) if !node.is_empty() => node.clone(),
        (_, _, id) => id.clone().unwrap_or_default(),
    };
    format!("{service}.{suffix}")
}

/// Where a backend for `task` of the service named `service` comes from.
pub fn task_origin(service: &str, task: &SwarmTask) -> TaskOrigin {
    let t = task;
    TaskOrigin {
        service: service.to_owned(),
        task: t.id.clone().unwrap_or_default(),
        slot: t.slot.filter(|slot| *slot > 0),
        node: t.node_id.clone().filter(|node| !node.is_empty()),
    }
}

/// One backend per routable task of the service `routes` describes ([`parse_service`]):
/// named by [`task_name`], with the task ID as its id, at [`task_address`], ready.
///
/// Tasks that do not run ([`is_routable_task`]), have no reachable address, or belong to
/// another service are left out. Swarm's own health check is the readiness: a task with a
/// HEALTHCHECK only becomes `running` once healthy.
pub fn routed_tasks(
    routes: &ContainerRoutes,
    tasks: &[SwarmTask],
    reach: &Reach,
) -> Vec<RoutedContainer> {
    tasks
        .iter()
        .filter(|t| routes.id.is_empty() || t.service_id.as_deref() == Some(&routes.id))
        .filter(|t| is_routable_task(t))
        .filter_map(|t| {
            let address = task_address(t, reach)?;
            let mut task_routes = routes.clone();
            task_routes.name = task_name(&routes.name, t);
            task_routes.id = t.id.clone().unwrap_or_default();
            Some(RoutedContainer {
                routes: task_routes,
                address: Some(address),
                readiness: Readiness::Ready,
            })
        })
        .collect()
}

/// Every vhost the given services and their tasks ask for, grouped and ordered as the
/// containers' ([`build_spec`]): services sharing a host share its vhost, each task one
/// backend. `https` holds the proxy-wide HTTPS settings.
///
/// A service with a refused setting is left out, and its error (naming it) is returned beside
/// the vhosts for the caller to log once.
pub fn swarm_vhosts<'a>(
    services: impl IntoIterator<Item = (&'a Service, &'a [SwarmTask])>,
    reach: &Reach,
    https: &HttpsPolicy,
) -> (Vec<VhostSpec>, Vec<SwarmError>) {
    let mut routed = Vec::new();
    let mut origins: HashMap<String, TaskOrigin> = HashMap::new();
    let mut errors = Vec::new();
    for (service, tasks) in services {
        match parse_service(service) {
            Ok(Some(routes)) => {
                let found = routed_tasks(&routes, tasks, reach);
                for task in tasks.iter().filter(|t| t.id.is_some()) {
                    let origin = task_origin(&routes.name, task);
                    origins.insert(origin.task.clone(), origin);
                }
                routed.extend(found);
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    let mut vhosts = build_spec(&routed, None, https).vhosts;
    let backends = (vhosts.iter_mut().flat_map(|v| &mut v.paths)).flat_map(|p| &mut p.backends);
    for backend in backends {
        if let Some(origin) = origins.get(&backend.id) {
            backend.origin = Origin::Task(origin.clone());
        }
    }
    (vhosts, errors)
}

/// Each service's tasks, keyed by service ID, in a stable order (the engine's is not, and
/// backends are named and ordered the same every poll). Sorted by service first, each
/// service's tasks are one slice of the list, so grouping copies nothing: cloning every task
/// cost a fifth of a poll at 1,000 tasks (`discovery/benches/swarm.rs`). Tasks without a
/// service ID belong to no service and are left out.
pub fn group_tasks(tasks: &mut [SwarmTask]) -> HashMap<&str, &[SwarmTask]> {
    tasks.sort_unstable_by(|a, b| {
        (a.service_id.as_deref(), a.id.as_deref()).cmp(&(b.service_id.as_deref(), b.id.as_deref()))
    });
    tasks
        .chunk_by(|a, b| a.service_id == b.service_id)
        .filter_map(|group| Some((group.first()?.service_id.as_deref()?, group)))
        .collect()
}
