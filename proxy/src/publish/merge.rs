//! Every provider's vhosts, kept apart, and one vhost as all of them describe it together.
//!
//! A vhost may be served by several providers at once (containers and Swarm tasks during a
//! migration). Its merged description takes the vhost's HTTPS settings, and each location's
//! settings, from the first provider by [`ProviderId`] that describes them; every provider adds
//! its backends to the locations it serves, in provider order. A provider's publication only
//! ever replaces that provider's own part, so its resync never drops another's routes.

use std::collections::{BTreeMap, BTreeSet};

use dockhand_spec::{ProviderId, Publication, VhostSpec, VhostUpdate};

/// Each provider's vhosts by name, providers in [`ProviderId`] order.
#[derive(Debug, Default)]
pub(super) struct Routes {
    providers: BTreeMap<ProviderId, BTreeMap<String, VhostSpec>>,
}

impl Routes {
    /// Records `publication` as `provider`'s. Returns the names of the vhosts whose description
    /// by this provider changed, sorted; the first description of a name in a publication wins.
    pub(super) fn record(
        &mut self,
        provider: ProviderId,
        publication: Publication,
    ) -> BTreeSet<String> {
        let mut changed = BTreeSet::new();
        let vhosts = self.providers.entry(provider).or_default();
        match publication {
            Publication::Full(all) => {
                let mut now: BTreeMap<String, VhostSpec> = BTreeMap::new();
                for vhost in all {
                    now.entry(vhost.host.clone()).or_insert(vhost);
                }
                changed.extend(vhosts.keys().filter(|h| !now.contains_key(*h)).cloned());
                changed.extend(
                    (now.iter())
                        .filter(|&(host, vhost)| vhosts.get(host) != Some(vhost))
                        .map(|(host, _)| host.clone()),
                );
                *vhosts = now;
            }
            Publication::Changes(updates) => {
                let mut seen = BTreeSet::new();
                for update in updates {
                    if !seen.insert(update.host().to_owned()) {
                        continue;
                    }
                    match update {
                        VhostUpdate::Set(vhost) if vhosts.get(&vhost.host) != Some(&vhost) => {
                            changed.insert(vhost.host.clone());
                            vhosts.insert(vhost.host.clone(), vhost);
                        }
                        VhostUpdate::Set(_) => {}
                        VhostUpdate::Remove(host) => {
                            if vhosts.remove(&host).is_some() {
                                changed.insert(host);
                            }
                        }
                    }
                }
            }
        }
        if vhosts.is_empty() {
            self.providers.remove(&provider);
        }
        changed
    }

    /// Vhost `host` as every provider describes it together; `None` when none does.
    pub(super) fn merged(&self, host: &str) -> Option<VhostSpec> {
        let mut parts = self
            .providers
            .values()
            .filter_map(|vhosts| vhosts.get(host));
        let mut merged = parts.next()?.clone();
        for other in parts {
            for path in &other.paths {
                match merged.paths.iter_mut().find(|p| p.path == path.path) {
                    Some(same) => same.backends.extend(path.backends.iter().cloned()),
                    None => merged.paths.push(path.clone()),
                }
            }
        }
        Some(merged)
    }

    /// Every vhost, merged, sorted by name.
    pub(super) fn all(&self) -> Vec<VhostSpec> {
        let names: BTreeSet<&String> = self.providers.values().flat_map(|v| v.keys()).collect();
        names.into_iter().filter_map(|h| self.merged(h)).collect()
    }
}
