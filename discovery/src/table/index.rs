//! The table spec kept up to date one container at a time.
//!
//! A vhost's spec depends only on the containers that serve its name, so a container event
//! rebuilds the vhosts of that container (before and after the event) from their own
//! containers, instead of every vhost from every container. With 10,000 containers one change
//! stays as cheap as with ten; only the data plane's pass over its vhost list grows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dockhand_spec::{HttpsPolicy, TableSpec, VhostSpec, VhostUpdate};

use super::{build_spec, RoutedContainer};

/// Every routed container by ID, the vhosts they make, and which vhosts changed since the last
/// [`SpecIndex::take_changes`]. Its spec is always the one [`build_spec`] gives for the same
/// containers.
#[derive(Debug)]
pub struct SpecIndex {
    default_host: Option<String>,
    https: HttpsPolicy,
    containers: HashMap<String, RoutedContainer>,
    /// Vhost name → the IDs of the containers serving it.
    owners: HashMap<String, BTreeSet<String>>,
    /// The vhosts as of the last `take_changes`, by name.
    vhosts: BTreeMap<String, VhostSpec>,
    /// Names whose containers changed since then.
    dirty: BTreeSet<String>,
}

/// What [`SpecIndex::take_changes`] found: each changed vhost as it was and as it is now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecChanges {
    /// The changed vhosts as they were (absent when new), sorted by name.
    pub before: Vec<VhostSpec>,
    /// One update per changed vhost, sorted by name: what [`dockhand_spec::Publication::Changes`]
    /// carries.
    pub updates: Vec<VhostUpdate>,
}

impl SpecChanges {
    /// Whether no vhost changed.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }

    /// The changed vhosts as they are now (the removed ones absent), sorted by name.
    pub fn after(&self) -> impl Iterator<Item = &VhostSpec> {
        self.updates.iter().filter_map(|u| match u {
            VhostUpdate::Set(spec) => Some(spec),
            VhostUpdate::Remove(_) => None,
        })
    }
}

impl SpecIndex {
    /// An empty index; `default_host` and `https` as for [`build_spec`].
    pub fn new(default_host: Option<&str>, https: HttpsPolicy) -> SpecIndex {
        SpecIndex {
            default_host: build_spec([], default_host, &https).default_host,
            https,
            containers: HashMap::new(),
            owners: HashMap::new(),
            vhosts: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// Records container `id` as it is now; an unchanged container changes nothing.
    pub fn upsert(&mut self, id: &str, routed: RoutedContainer) {
        if self.containers.get(id) == Some(&routed) {
            return;
        }
        self.remove(id);
        for host in &routed.routes.hosts {
            self.owners
                .entry(host.host.clone())
                .or_default()
                .insert(id.to_owned());
            self.dirty.insert(host.host.clone());
        }
        self.containers.insert(id.to_owned(), routed);
    }

    /// Forgets container `id`, if known.
    pub fn remove(&mut self, id: &str) {
        let Some(gone) = self.containers.remove(id) else {
            return;
        };
        for host in &gone.routes.hosts {
            if let Some(ids) = self.owners.get_mut(&host.host) {
                ids.remove(id);
                if ids.is_empty() {
                    self.owners.remove(&host.host);
                }
            }
            self.dirty.insert(host.host.clone());
        }
    }

    /// The known container `id`.
    pub fn get(&self, id: &str) -> Option<&RoutedContainer> {
        self.containers.get(id)
    }

    /// Number of known containers.
    pub fn len(&self) -> usize {
        self.containers.len()
    }

    /// Whether no container is known.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }

    /// Rebuilds the vhosts whose containers changed since the last call and returns those that
    /// differ now. Costs work for those vhosts' containers only.
    pub fn take_changes(&mut self) -> SpecChanges {
        let mut changes = SpecChanges::default();
        // When most vhosts are dirty (the initial sync, a resync), one pass over every container
        // costs less than a pass per vhost.
        let mut bulk: Option<HashMap<String, VhostSpec>> =
            (self.dirty.len() * 2 > self.owners.len()).then(|| {
                let all = build_spec(self.containers.values(), None, &self.https);
                all.vhosts
                    .into_iter()
                    .map(|v| (v.host.clone(), v))
                    .collect()
            });
        for host in std::mem::take(&mut self.dirty) {
            let now = match &mut bulk {
                Some(all) => all.remove(&host),
                None => self.vhost(&host),
            };
            if self.vhosts.get(&host) == now.as_ref() {
                continue;
            }
            let before = match now {
                Some(spec) => {
                    changes.updates.push(VhostUpdate::Set(spec.clone()));
                    self.vhosts.insert(host, spec)
                }
                None => {
                    changes.updates.push(VhostUpdate::Remove(host.clone()));
                    self.vhosts.remove(&host)
                }
            };
            changes.before.extend(before);
        }
        changes
    }

    /// The whole spec as of the last [`SpecIndex::take_changes`].
    pub fn spec(&self) -> TableSpec {
        TableSpec {
            vhosts: self.vhosts.values().cloned().collect(),
            default_host: self.default_host.clone(),
        }
    }

    /// `DEFAULT_HOST`, as [`build_spec`] normalizes it.
    pub fn default_host(&self) -> Option<&str> {
        self.default_host.as_deref()
    }

    /// Vhost `host` built from its own containers: exactly what [`build_spec`] over every
    /// container gives for it, since no other container has a say in it.
    fn vhost(&self, host: &str) -> Option<VhostSpec> {
        let owners = self.owners.get(host)?;
        let containers = owners.iter().filter_map(|id| self.containers.get(id));
        build_spec(containers, None, &self.https)
            .vhosts
            .into_iter()
            .find(|v| v.host == host)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use dockhand_spec::Readiness;

    use super::*;
    use crate::contract::{ContainerRoutes, HostRoutes, PathRoute, RouteSource};

    /// Container `n`, serving `hosts` at `/` and `/api` on 10.0.0.n.
    fn container(n: u8, hosts: &[&str]) -> (String, RoutedContainer) {
        let paths = ["/", "/api"].map(|path| PathRoute {
            path: path.to_owned(),
            port: 80,
            proto: Default::default(),
            dest: None,
        });
        let routes = ContainerRoutes {
            id: format!("id{n}"),
            name: format!("c{n}"),
            source: RouteSource::VirtualHost,
            hosts: hosts
                .iter()
                .map(|h| HostRoutes {
                    host: (*h).to_owned(),
                    paths: paths.to_vec(),
                    external_http_port: None,
                    external_https_port: None,
                })
                .collect(),
            balance: Default::default(),
            keepalive: Default::default(),
            network_access: Default::default(),
            https_method: None,
            hsts: None,
            cert_name: None,
            non_get_redirect: None,
            trust_default_cert: None,
            http_on_missing_cert: None,
            acme_challenge: None,
            http2: None,
            ssl_policy: None,
            server_tokens: None,
            debug_endpoint: None,
            verify_client: None,
        };
        let routed = RoutedContainer {
            routes,
            address: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))),
            readiness: Readiness::Unchecked,
        };
        (format!("id{n}"), routed)
    }

    /// The index's spec must equal a from-scratch build over the same containers.
    fn assert_matches_full_build(index: &SpecIndex, default_host: Option<&str>) {
        let full = build_spec(
            index.containers.values(),
            default_host,
            &HttpsPolicy::default(),
        );
        assert_eq!(index.spec(), full);
    }

    #[test]
    fn follows_a_full_build_through_adds_moves_and_removals() {
        let mut index = SpecIndex::new(Some(" B.test "), HttpsPolicy::default());
        let steps: Vec<(u8, Option<&[&str]>)> = vec![
            (1, Some(&["a.test", "b.test"])),
            (2, Some(&["b.test"])),
            (3, Some(&["c.test", "*.c.test"])),
            (2, Some(&["c.test"])),
            (1, None),
            (4, Some(&["b.test", "c.test"])),
            (3, None),
            (2, None),
            (4, Some(&["d.test"])),
        ];
        for (n, hosts) in steps {
            match hosts {
                Some(hosts) => {
                    let (id, routed) = container(n, hosts);
                    index.upsert(&id, routed);
                }
                None => index.remove(&format!("id{n}")),
            }
            index.take_changes();
            assert_matches_full_build(&index, Some("b.test"));
        }
        assert_eq!(index.default_host(), Some("b.test"));

        index.remove("id4");
        let changes = index.take_changes();
        assert_eq!(changes.updates, [VhostUpdate::Remove("d.test".to_owned())]);
        assert!(index.is_empty());
        assert!(index.spec().vhosts.is_empty());
    }

    #[test]
    fn a_bulk_change_gives_what_one_change_at_a_time_gives() {
        let all: Vec<(u8, &[&str])> = vec![
            (1, &["a.test", "b.test"]),
            (2, &["b.test"]),
            (3, &["c.test"]),
            (4, &["d.test", "a.test"]),
        ];
        let mut bulk = SpecIndex::new(None, HttpsPolicy::default());
        let mut single = SpecIndex::new(None, HttpsPolicy::default());
        for &(n, hosts) in &all {
            let (id, routed) = container(n, hosts);
            bulk.upsert(&id, routed.clone());
            single.upsert(&id, routed);
            single.take_changes();
        }
        assert_eq!(
            bulk.take_changes().updates.len(),
            4,
            "all four vhosts at once"
        );
        assert_eq!(bulk.spec(), single.spec());
        assert_matches_full_build(&bulk, None);
    }

    #[test]
    fn reports_only_the_vhosts_that_changed() {
        let mut index = SpecIndex::new(None, HttpsPolicy::default());
        for (n, hosts) in [(1, ["a.test"]), (2, ["b.test"]), (3, ["b.test"])] {
            let (id, routed) = container(n, &hosts);
            index.upsert(&id, routed);
        }
        let first = index.take_changes();
        assert_eq!(first.before, []);
        let hosts: Vec<&str> = first.updates.iter().map(VhostUpdate::host).collect();
        assert_eq!(hosts, ["a.test", "b.test"]);
        assert!(index.take_changes().is_empty(), "nothing changed since");

        // The same container again changes nothing.
        let (id, routed) = container(1, &["a.test"]);
        index.upsert(&id, routed);
        assert!(index.take_changes().is_empty());

        // c3 moves from b.test to c.test: b.test loses a backend, c.test appears.
        let (id, mut routed) = container(3, &["c.test"]);
        routed.address = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 33)));
        index.upsert(&id, routed);
        let moved = index.take_changes();
        let hosts: Vec<&str> = moved.updates.iter().map(VhostUpdate::host).collect();
        assert_eq!(hosts, ["b.test", "c.test"]);
        assert_eq!(
            moved.before.len(),
            1,
            "b.test existed before, c.test did not"
        );
        assert_eq!(moved.before[0].paths[0].backends.len(), 2);
        assert_eq!(moved.after().count(), 2);

        index.remove("id1");
        let removed = index.take_changes();
        assert_eq!(removed.updates, [VhostUpdate::Remove("a.test".to_owned())]);
        assert_eq!(removed.after().count(), 0);
    }
}
