//! User-defined bridge networks that live as long as the test (and its containers) need them.

use std::fmt;
use std::sync::Arc;

use crate::docker::{docker, label_args, sweep_leftovers, unique_name, DockerError};

/// Starts describing a user bridge network.
pub fn network() -> NetworkBuilder {
    NetworkBuilder::default()
}

/// Options of a network to create; [`NetworkBuilder::start`] creates it.
#[derive(Clone, Debug, Default)]
pub struct NetworkBuilder {
    name: Option<String>,
    internal: bool,
    ipv6: bool,
    labels: Vec<(String, String)>,
}

/// A Docker network created by the kit. Cheap to clone; removed when the last clone is dropped.
/// Containers started on or connected to it hold a clone, so it outlives them whatever order
/// the test drops things in.
#[derive(Clone)]
pub struct Network(Arc<Inner>);

struct Inner {
    name: String,
    id: String,
}

impl NetworkBuilder {
    /// A readable part of the name (the full name also carries the test's name and a unique
    /// suffix). Default: none.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Makes the network `--internal` (no route out of it). Default: not internal.
    pub fn internal(mut self) -> Self {
        self.internal = true;
        self
    }

    /// Gives the network an IPv6 subnet too (`--ipv6`, a unique-local /64 of its own), so its
    /// containers get a `GlobalIPv6Address`. Default: IPv4 only.
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// Adds a label. Default: only the kit's own labels.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Creates the network.
    ///
    /// # Panics
    /// If Docker refuses (the message names the command); use [`NetworkBuilder::try_start`] to
    /// handle that.
    pub fn start(self) -> Network {
        self.try_start()
            .unwrap_or_else(|e| panic!("creating a network: {e}"))
    }

    /// Creates the network.
    ///
    /// # Errors
    /// The `docker network create` failure.
    pub fn try_start(self) -> Result<Network, DockerError> {
        sweep_leftovers();
        let name = unique_name(self.name.as_deref());
        let mut args = vec!["network".to_owned(), "create".to_owned()];
        args.extend(label_args());
        for (key, value) in &self.labels {
            args.push("--label".to_owned());
            args.push(format!("{key}={value}"));
        }
        if self.internal {
            args.push("--internal".to_owned());
        }
        if self.ipv6 {
            // Docker 20.10 wants an explicit IPv6 subnet; one per network, from the process id
            // and a counter, in fd42:d0c::/32 (unique-local).
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (pid, n) = (std::process::id() & 0xffff, n & 0xffff);
            args.push("--ipv6".to_owned());
            args.push("--subnet".to_owned());
            args.push(format!("fd42:d0c:{pid:x}:{n:x}::/64"));
        }
        args.push(name.clone());
        let id = docker(&args)?;
        Ok(Network(Arc::new(Inner { name, id })))
    }
}

impl Network {
    /// The network's full name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The network's id.
    pub fn id(&self) -> &str {
        &self.0.id
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Network").field(&self.0.name).finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if docker(["network", "rm", &self.id]).is_ok() {
            return;
        }
        // Something the kit does not track is still attached (a container connected by hand):
        // detach it so the network does not leak.
        let attached = docker([
            "network",
            "inspect",
            "--format",
            "{{range $id, $c := .Containers}}{{$id}} {{end}}",
            &self.id,
        ])
        .unwrap_or_default();
        for container in attached.split_whitespace() {
            let _ = docker(["network", "disconnect", "-f", &self.id, container]);
        }
        if let Err(e) = docker(["network", "rm", &self.id]) {
            eprintln!(
                "dockhand-testkit: could not remove network {}: {e}",
                self.name
            );
        }
    }
}
