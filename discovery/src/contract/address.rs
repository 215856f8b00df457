//! Which address dockhand connects to for a container (nginx-proxy's `container_ip`).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bollard::models::{ContainerInspectResponse, EndpointSettings};

/// The Swarm routing-mesh network, never used to reach a container directly.
const INGRESS: &str = "ingress";
/// The network name Docker reports for a container on the host's network stack.
const HOST: &str = "host";

/// The Docker networks dockhand can open connections on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// dockhand runs on the host (or on the host network): every network is reachable.
    AnyNetwork,
    /// dockhand runs in a container attached to these networks (by name).
    Networks(BTreeSet<String>),
}

impl Reach {
    /// True when dockhand can open connections on `network` (a name, or an ID when the
    /// set holds IDs).
    pub(crate) fn reaches(&self, network: &str) -> bool {
        match self {
            Self::AnyNetwork => true,
            Self::Networks(names) => names.contains(network),
        }
    }
}

/// The address to connect to for `c`, or `None` when dockhand cannot reach it (its vhosts then
/// answer 502).
///
/// The container's networks are walked sorted by name, skipping `ingress` and those outside
/// `reach`; the first one left decides, so a container on several shared networks still counts
/// once. Its IPv4 `IPAddress` is used, else its `GlobalIPv6Address`, else the container is
/// unreachable. A container on the `host` network is reached on `127.0.0.1` when dockhand runs
/// on the host too; from inside a container, nginx-proxy would use a gateway address of
/// dockhand's own networks, which dockhand does not do (yet): such a container is unreachable.
pub fn container_address(c: &ContainerInspectResponse, reach: &Reach) -> Option<IpAddr> {
    Endpoints::of(c).address(reach)
}

/// What addressing needs of a container's networks: each network's name and the address the
/// container has on it, sorted by name. Discovery keeps this, rather than the whole `docker
/// inspect` (about 9 KiB per container), to choose addresses again when its own networks change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints(Box<[(String, Option<IpAddr>)]>);

impl Endpoints {
    /// The networks of `c`.
    pub fn of(c: &ContainerInspectResponse) -> Endpoints {
        let networks = c
            .network_settings
            .as_ref()
            .and_then(|s| s.networks.as_ref());
        let mut endpoints: Vec<(String, Option<IpAddr>)> = networks
            .into_iter()
            .flatten()
            .map(|(name, endpoint)| (name.clone(), endpoint_address(endpoint)))
            .collect();
        endpoints.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Endpoints(endpoints.into_boxed_slice())
    }

    /// The address to connect to (see [`container_address`]).
    pub fn address(&self, reach: &Reach) -> Option<IpAddr> {
        let (name, address) = self
            .0
            .iter()
            .find(|(name, _)| name != INGRESS && reach.reaches(name))?;
        if name == HOST {
            // Only reachable under `AnyNetwork` (checked above), where dockhand shares the host's
            // loopback with the container.
            return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        *address
    }
}

fn endpoint_address(endpoint: &EndpointSettings) -> Option<IpAddr> {
    let v4 = endpoint
        .ip_address
        .as_deref()
        .and_then(|a| a.parse::<Ipv4Addr>().ok())
        .map(IpAddr::V4);
    let v6 = || {
        endpoint
            .global_ipv6_address
            .as_deref()
            .and_then(|a| a.parse::<Ipv6Addr>().ok())
            .map(IpAddr::V6)
    };
    v4.or_else(v6)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::NetworkSettings;

    use super::*;

    fn on_networks(networks: &[(&str, &str, &str)]) -> ContainerInspectResponse {
        let networks: HashMap<String, EndpointSettings> = networks
            .iter()
            .map(|&(name, v4, v6)| {
                let endpoint = EndpointSettings {
                    ip_address: Some(v4.to_owned()),
                    global_ipv6_address: Some(v6.to_owned()),
                    ..Default::default()
                };
                (name.to_owned(), endpoint)
            })
            .collect();
        ContainerInspectResponse {
            network_settings: Some(NetworkSettings {
                networks: Some(networks),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn reach(names: &[&str]) -> Reach {
        Reach::Networks(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn first_reachable_network_by_name_wins() {
        let c = on_networks(&[("b-net", "10.0.1.2", ""), ("a-net", "10.0.0.2", "")]);
        let first = Some("10.0.0.2".parse().unwrap());
        assert_eq!(container_address(&c, &Reach::AnyNetwork), first);
        assert_eq!(container_address(&c, &reach(&["a-net", "b-net"])), first);
        let only_b = container_address(&c, &reach(&["b-net"]));
        assert_eq!(only_b, Some("10.0.1.2".parse().unwrap()));
        assert_eq!(container_address(&c, &reach(&["c-net"])), None);
    }

    #[test]
    fn ingress_is_skipped() {
        let c = on_networks(&[("ingress", "10.255.0.5", ""), ("web", "10.0.0.9", "")]);
        let got = container_address(&c, &Reach::AnyNetwork);
        assert_eq!(got, Some("10.0.0.9".parse().unwrap()));
    }

    #[test]
    fn ipv6_is_used_without_ipv4() {
        let c = on_networks(&[("v6", "", "fd00::5")]);
        let got = container_address(&c, &Reach::AnyNetwork);
        assert_eq!(got, Some("fd00::5".parse().unwrap()));
        let both = on_networks(&[("dual", "10.0.0.3", "fd00::3")]);
        let got = container_address(&both, &Reach::AnyNetwork);
        assert_eq!(got, Some("10.0.0.3".parse().unwrap()));
    }

    #[test]
    fn the_first_reachable_network_decides_even_without_an_address() {
        let c = on_networks(&[("a", "", ""), ("b", "10.0.0.4", "")]);
        assert_eq!(container_address(&c, &Reach::AnyNetwork), None);
    }

    #[test]
    fn host_network_is_loopback_only_from_the_host() {
        let c = on_networks(&[("host", "", "")]);
        let got = container_address(&c, &Reach::AnyNetwork);
        assert_eq!(got, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(container_address(&c, &reach(&["bridge"])), None);
    }

    #[test]
    fn missing_network_settings_mean_unreachable() {
        let c = ContainerInspectResponse::default();
        assert_eq!(container_address(&c, &Reach::AnyNetwork), None);
    }
}
