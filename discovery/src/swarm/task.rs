//! A Swarm task with the network attachments that bollard's model leaves out.

use bollard::models::TaskState;
use serde::Deserialize;

/// A task as `GET /tasks` and `docker inspect <task>` return it: only what routing reads.
///
/// bollard's `Task` has no `NetworksAttachments` (the Engine's API spec omits the field), and
/// those hold the task's own addresses, which are what dockhand connects to. Nor does dockhand
/// need the rest of it: parsing bollard's whole model (each task carries its full spec) was
/// most of a poll's cost at 1,000 tasks, 5 of 8 ms (`discovery/benches/swarm.rs`), and so was
/// keeping bollard's field names through `#[serde(flatten)]`, which buffers every field first.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct SwarmTask {
    /// The task ID.
    #[serde(rename = "ID", default)]
    pub id: Option<String>,
    /// The service the task belongs to.
    #[serde(rename = "ServiceID", default)]
    pub service_id: Option<String>,
    /// The node it runs on.
    #[serde(rename = "NodeID", default)]
    pub node_id: Option<String>,
    /// Its slot in a replicated service (none in a global one).
    #[serde(rename = "Slot", default)]
    pub slot: Option<i64>,
    /// What the orchestrator wants: `running` while the task is meant to serve.
    #[serde(rename = "DesiredState", default)]
    pub desired_state: Option<TaskState>,
    /// What the node reports.
    #[serde(rename = "Status", default)]
    pub status: Option<TaskStatus>,
    /// The networks the task is attached to, each with its addresses on it.
    #[serde(rename = "NetworksAttachments", default)]
    pub networks: Option<Vec<NetworkAttachment>>,
}

/// A task's observed state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct TaskStatus {
    /// `running` once the container runs (and, with a health check, is healthy).
    #[serde(rename = "State", default)]
    pub state: Option<TaskState>,
}

/// One network of a task and the task's addresses on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct NetworkAttachment {
    /// The network.
    #[serde(rename = "Network", default)]
    pub network: Option<AttachedNetwork>,
    /// The task's addresses in CIDR form, e.g. `10.0.1.5/24`.
    #[serde(rename = "Addresses", default)]
    pub addresses: Option<Vec<String>>,
}

/// The part of a Swarm network object that addressing needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct AttachedNetwork {
    /// The network ID.
    #[serde(rename = "ID", default)]
    pub id: Option<String>,
    /// Its name and kind.
    #[serde(rename = "Spec", default)]
    pub spec: Option<AttachedNetworkSpec>,
}

/// A Swarm network's name, and whether it is the routing mesh.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct AttachedNetworkSpec {
    /// The network name, e.g. `ingress` or `myapp_default`.
    #[serde(rename = "Name", default)]
    pub name: Option<String>,
    /// True for the routing-mesh network (`ingress`).
    #[serde(rename = "Ingress", default)]
    pub ingress: Option<bool>,
}
