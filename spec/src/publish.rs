//! How a provider hands its descriptions over: the [`Publish`] trait and what it carries.

use crate::VhostSpec;

/// Names a provider (`"containers"`, `"swarm"`). Each provider owns the backends it publishes
/// under its id; where providers describe the same vhost or location, the one whose id sorts
/// first sets its settings and every provider adds its backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProviderId(&'static str);

impl ProviderId {
    /// The provider called `name`.
    pub const fn new(name: &'static str) -> ProviderId {
        ProviderId(name)
    }

    /// Its name.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for ProviderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A change to one vhost as one provider describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VhostUpdate {
    /// The provider serves this vhost so: add it, or replace the provider's previous description.
    Set(VhostSpec),
    /// The provider no longer serves the vhost of this name.
    Remove(String),
}

impl VhostUpdate {
    /// The name of the vhost it changes.
    pub fn host(&self) -> &str {
        match self {
            VhostUpdate::Set(spec) => &spec.host,
            VhostUpdate::Remove(host) => host,
        }
    }
}

/// What a provider publishes at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Publication {
    /// Every vhost the provider serves now, each name once (after a sync or a resync): replaces
    /// all it published before. Other providers' vhosts are untouched.
    Full(Vec<VhostSpec>),
    /// Changes to what the provider published before (after events).
    Changes(Vec<VhostUpdate>),
}

/// Where a provider sends its descriptions: the data plane's publisher implements it, and tests
/// implement it with a recorder.
///
/// `publish` returns once the description is served (the publisher builds and swaps the table
/// in the caller's task, off the request path), so a provider that has published its first
/// sync may report itself ready.
pub trait Publish: Send {
    /// Publishes `publication` as this provider's.
    fn publish(&mut self, publication: Publication);
}

impl<P: Publish + ?Sized> Publish for Box<P> {
    fn publish(&mut self, publication: Publication) {
        (**self).publish(publication);
    }
}
