//! The Swarm provider's pure half: what a Swarm service and its tasks ask dockhand to route.
//!
//! Done so far (issue 19, first step): the nginx-proxy contract for services and tasks, as
//! pure functions over `docker service inspect` and task objects, tested against fixtures
//! saved from a real single-node swarm (`tests/fixtures/swarm/`, with `regenerate.sh`).
//! A service's settings are read with the containers' contract code (`VIRTUAL_HOST`,
//! multiports, paths, protocols, HTTPS and balancing settings), and each running task becomes
//! one backend on its own overlay address.
//!
//! Not done yet, for the next step:
//! - No polling loop, no service or node events, no publishing: nothing calls this module, and
//!   the app does not know of Swarm (`DOCKHAND_SWARM`, the manager check, `/readyz`).
//! - Fetching tasks: bollard's `Task` model lacks `NetworksAttachments` (the Engine's API spec
//!   omits it), so `Docker::list_tasks` drops the very addresses needed here. The loop must
//!   read `GET /tasks` as JSON into [`SwarmTask`] (which adds the field), not through bollard's
//!   typed call.
//! - The log line "no `VIRTUAL_PORT`, using 80" once per service, metrics, the containers
//!   provider skipping task containers (labels `com.docker.swarm.task.id`), and showing the
//!   node of a backend (`BackendSpec` has no field for it; only global services' backend names
//!   carry it).
//! - A service whose tasks are all not running yields no vhost at all (as a stopped container
//!   does), so its hosts answer as unknown ones rather than with 503 from a known vhost.
//! - During a rolling update, old tasks are described with the service's new settings (the
//!   service's spec is read, not each task's own copy of it).

mod contract;
mod task;

use dockhand_spec::ProviderId;

pub use contract::{
    is_routable_task, parse_service, routed_tasks, service_name, swarm_vhosts, task_address,
    task_name, SwarmError,
};
pub use task::{AttachedNetwork, AttachedNetworkSpec, NetworkAttachment, SwarmTask};

/// The id the Swarm provider publishes its descriptions under.
pub const PROVIDER: ProviderId = ProviderId::new("swarm");

#[cfg(test)]
mod tests;
