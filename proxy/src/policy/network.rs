//! `NETWORK_ACCESS=internal`: which client addresses count as internal.

use std::net::IpAddr;

use ipnet::IpNet;

/// nginx-proxy's `network_internal.conf`, plus IPv6 loopback and link-local: 127.0.0.0/8,
/// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, ::1/128, fc00::/7, fe80::/10.
pub const DEFAULT_INTERNAL_NETWORKS: [&str; 7] = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

/// [`DEFAULT_INTERNAL_NETWORKS`] parsed: the default of `ProxyConfig::network_internal`.
pub fn default_internal_networks() -> Vec<IpNet> {
    DEFAULT_INTERNAL_NETWORKS
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect()
}

/// Whether `peer` is inside one of `networks`. An IPv4-mapped IPv6 peer (a dual-stack listener)
/// is matched as the IPv4 address it carries.
pub fn is_internal(networks: &[IpNet], peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    networks.iter().any(|net| net.contains(&peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_default_network_parses() {
        assert_eq!(
            default_internal_networks().len(),
            DEFAULT_INTERNAL_NETWORKS.len()
        );
    }

    #[test]
    fn private_and_loopback_peers_are_internal() {
        let nets = default_internal_networks();
        for peer in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(&nets, ip(peer)), "{peer}");
        }
    }

    #[test]
    fn public_peers_are_not() {
        let nets = default_internal_networks();
        for peer in [
            "8.8.8.8",
            "172.32.0.1",
            "192.169.0.1",
            "11.0.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(&nets, ip(peer)), "{peer}");
        }
    }

    #[test]
    fn an_empty_list_allows_nobody() {
        assert!(!is_internal(&[], ip("127.0.0.1")));
    }
}
