//! A Swarm task with the network attachments that bollard's model leaves out.

use bollard::models::Task;
use serde::Deserialize;

/// A task as `GET /tasks` and `docker inspect <task>` return it.
///
/// bollard's [`Task`] has no `NetworksAttachments` (the Engine's API spec omits the field),
/// and those hold the task's own addresses, which are what dockhand connects to.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct SwarmTask {
    /// Every field bollard knows (ID, ServiceID, Slot, NodeID, Status, DesiredState, …).
    #[serde(flatten)]
    pub task: Task,
    /// The networks the task is attached to, each with its addresses on it.
    #[serde(rename = "NetworksAttachments", default)]
    pub networks: Option<Vec<NetworkAttachment>>,
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
