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

/// How an address is chosen among a reachable network's, beside which networks are reachable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Addressing {
    /// `PREFER_IPV6_NETWORK`: take the network's `GlobalIPv6Address` when it has one. Default
    /// false (IPv4 first).
    pub prefer_ipv6: bool,
    /// The address of the host as dockhand's container sees it (the gateway of its first
    /// network by name that is not internal), for containers on the `host` network when
    /// dockhand runs in a container. Default: none (such containers are unreachable).
    pub host_gateway: Option<IpAddr>,
}

/// The address to connect to for `c`, or `None` when dockhand cannot reach it (its vhosts then
/// answer 502).
///
/// The container's networks are walked sorted by name, skipping `ingress` and those outside
/// `reach`; the first one left decides, so a container on several shared networks still counts
/// once. Its IPv4 `IPAddress` is used, else its `GlobalIPv6Address` (the other way round with
/// `PREFER_IPV6_NETWORK`), else the container is unreachable. A container on the `host`
/// network is reached on `127.0.0.1` when dockhand runs on the host too, and on the host's
/// address as dockhand's container sees it ([`Addressing::host_gateway`]) otherwise, as
/// nginx-proxy does.
pub fn container_address(c: &ContainerInspectResponse, reach: &Reach) -> Option<IpAddr> {
    Endpoints::of(c).address(reach, &Addressing::default())
}

/// What addressing needs of a container's networks: each network's name and the address the
/// container has on it, sorted by name. Discovery keeps this, rather than the whole `docker
/// inspect` (about 9 KiB per container), to choose addresses again when its own networks change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints(Box<[Endpoint]>);

/// A network's name and the container's IPv4 and IPv6 addresses on it.
type Endpoint = (String, Option<Ipv4Addr>, Option<Ipv6Addr>);

impl Endpoints {
    /// The networks of `c`.
    pub fn of(c: &ContainerInspectResponse) -> Endpoints {
        let networks = c
            .network_settings
            .as_ref()
            .and_then(|s| s.networks.as_ref());
        let mut endpoints: Vec<Endpoint> = networks
            .into_iter()
            .flatten()
            .map(|(name, endpoint)| {
                let (v4, v6) = endpoint_addresses(endpoint);
                (name.clone(), v4, v6)
            })
            .collect();
        endpoints.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Endpoints(endpoints.into_boxed_slice())
    }

    /// The address to connect to (see [`container_address`]).
    pub fn address(&self, reach: &Reach, how: &Addressing) -> Option<IpAddr> {
        if self.0.iter().any(|(name, ..)| name == HOST) {
            return match reach {
                // dockhand shares the host's loopback with the container.
                Reach::AnyNetwork => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                Reach::Networks(_) => how.host_gateway,
            };
        }
        let (_, v4, v6) = self
            .0
            .iter()
            .find(|(name, ..)| name != INGRESS && reach.reaches(name))?;
        let (v4, v6) = (v4.map(IpAddr::V4), v6.map(IpAddr::V6));
        if how.prefer_ipv6 {
            v6.or(v4)
        } else {
            v4.or(v6)
        }
    }
}

fn endpoint_addresses(endpoint: &EndpointSettings) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
    let v4 = endpoint
        .ip_address
        .as_deref()
        .and_then(|a| a.parse::<Ipv4Addr>().ok());
    let v6 = endpoint
        .global_ipv6_address
        .as_deref()
        .and_then(|a| a.parse::<Ipv6Addr>().ok());
    (v4, v6)
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
    fn host_network_is_loopback_from_the_host_and_the_gateway_from_a_container() {
        let c = on_networks(&[("host", "", "")]);
        let got = container_address(&c, &Reach::AnyNetwork);
        assert_eq!(got, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(container_address(&c, &reach(&["bridge"])), None);
        let how = Addressing {
            host_gateway: Some("172.18.0.1".parse().unwrap()),
            ..Addressing::default()
        };
        let got = Endpoints::of(&c).address(&reach(&["bridge"]), &how);
        assert_eq!(got, how.host_gateway);
    }

    #[test]
    fn prefer_ipv6_takes_the_global_ipv6_address_when_there_is_one() {
        let how = Addressing {
            prefer_ipv6: true,
            ..Addressing::default()
        };
        let both = on_networks(&[("dual", "10.0.0.3", "fd00::3")]);
        let got = Endpoints::of(&both).address(&Reach::AnyNetwork, &how);
        assert_eq!(got, Some("fd00::3".parse().unwrap()));
        let v4 = on_networks(&[("v4", "10.0.0.4", "")]);
        let got = Endpoints::of(&v4).address(&Reach::AnyNetwork, &how);
        assert_eq!(got, Some("10.0.0.4".parse().unwrap()));
    }

    #[test]
    fn missing_network_settings_mean_unreachable() {
        let c = ContainerInspectResponse::default();
        assert_eq!(container_address(&c, &Reach::AnyNetwork), None);
    }
}
