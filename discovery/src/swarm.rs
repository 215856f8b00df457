//! The Swarm provider: what a Swarm service and its tasks ask dockhand to route, and the loop
//! that polls them and publishes the result.
//!
//! Done so far (issue 19, first step): the nginx-proxy contract for services and tasks, as
//! pure functions over `docker service inspect` and task objects, tested against fixtures
//! saved from a real single-node swarm (`tests/fixtures/swarm/`, with `regenerate.sh`).
//! A service's settings are read with the containers' contract code (`VIRTUAL_HOST`,
//! multiports, paths, protocols, HTTPS and balancing settings), and each running task becomes
//! one backend on its own overlay address.
//!
//! Second step: the provider's loop ([`run`], in `poll.rs`) polls services (bollard) and
//! tasks (`GET /tasks` as raw JSON, `fetch.rs`, since bollard's `Task` model lacks
//! `NetworksAttachments`) every `swarm_poll_interval` and at once on service and node events,
//! and publishes a [`dockhand_spec::Publication::Full`] under [`PROVIDER`] only when it
//! differs from the last one. `DOCKHAND_SWARM` (`auto`, `true`, `false`) and the manager check
//! ([`role`]) decide whether it polls; the containers provider skips task containers.
//!
//! Third step: [`crate::Status`] holds the engine's role and the first published poll, for
//! `/readyz`; each backend carries its task's origin (service, task, slot, node); a service
//! routed to port 80 for want of `VIRTUAL_PORT` is logged once; `deploy/stack.yaml`.
//!
//! Fourth step: tested against real single-node and 3-node swarms (`tests/swarm`, with
//! testkit's `swarm` harness); a task container's `die` event on dockhand's node takes its task
//! out at once; route changes are logged with the task's origin.
//!
//! Not done yet:
//! - dockhand's own networks (the reach) are read when the provider connects, not on its
//!   network events.
//! - A service whose tasks are all not running yields no vhost at all (as a stopped container
//!   does), so its hosts answer as unknown ones rather than with 503 from a known vhost.
//! - During a rolling update, old tasks are described with the service's new settings (the
//!   service's spec is read, not each task's own copy of it).

mod contract;
pub(crate) mod fetch;
mod poll;
mod task;

use dockhand_spec::ProviderId;

pub use contract::{
    group_tasks, is_routable_task, parse_service, routed_tasks, service_name, swarm_vhosts,
    task_address, task_name, task_origin, uses_fallback_port, SwarmError,
};
pub use poll::{role, run, Role};
pub use task::{AttachedNetwork, AttachedNetworkSpec, NetworkAttachment, SwarmTask, TaskStatus};

/// The id the Swarm provider publishes its descriptions under.
pub const PROVIDER: ProviderId = ProviderId::new("swarm");

#[cfg(test)]
mod tests;
