//! What the admin listener reports about discovery: whether each provider has published its
//! first routes, whether the engine is connected, and what the engine is to Swarm.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::SwarmMode;

/// What the engine is to Swarm, from `/info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A manager: services and tasks can be listed.
    Manager,
    /// A worker: Swarm's API answers only on managers.
    Worker,
    /// Not in a swarm (or joining, locked, failed).
    None,
}

/// Discovery's state for `/readyz` and `/api/routes`, shared by the providers that set it.
#[derive(Debug, Default)]
pub struct Status {
    synced: AtomicBool,
    engine_up: AtomicBool,
    /// `DOCKHAND_SWARM`, as [`mode_code`] writes it.
    swarm_mode: AtomicU8,
    /// The engine's role, as [`role_code`] writes it (0 while not checked yet).
    swarm_role: AtomicU8,
    swarm_polled: AtomicBool,
    /// Running containers skipped for invalid settings, as of the last publication.
    skipped: Mutex<Vec<Skipped>>,
}

/// A running container that asks to be proxied but is skipped for an invalid setting.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// Container name without the leading `/`.
    pub name: String,
    /// Full container ID.
    pub id: String,
    /// The setting, its value and why it was refused.
    pub reason: String,
}

/// Why dockhand is not ready yet; `Display` gives the line `/readyz` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// The containers provider has not published its first full sync.
    FirstSync,
    /// The Swarm provider has not yet asked the engine whether it is a manager.
    SwarmRoleUnknown,
    /// The engine is a manager and the Swarm provider's first poll is not published yet.
    SwarmFirstPoll,
    /// `DOCKHAND_SWARM=true` and the engine is a Swarm worker.
    SwarmWorker,
    /// `DOCKHAND_SWARM=true` and the engine is not in a swarm.
    NotInSwarm,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotReady::FirstSync => "first sync pending",
            NotReady::SwarmRoleUnknown => "swarm: the engine's role is not known yet",
            NotReady::SwarmFirstPoll => "swarm: first poll of services and tasks pending",
            NotReady::SwarmWorker => {
                "swarm: DOCKHAND_SWARM=true but the engine is a swarm worker, not a manager; \
                 dockhand must run on a manager (or reach one through DOCKER_HOST)"
            }
            NotReady::NotInSwarm => {
                "swarm: DOCKHAND_SWARM=true but the engine is not in a swarm; dockhand must \
                 run on a swarm manager"
            }
        })
    }
}

fn mode_code(mode: SwarmMode) -> u8 {
    match mode {
        SwarmMode::Off => 0,
        SwarmMode::Auto => 1,
        SwarmMode::On => 2,
    }
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::Manager => 1,
        Role::Worker => 2,
        Role::None => 3,
    }
}

impl Status {
    /// A fresh status for dockhand without the Swarm provider (`DOCKHAND_SWARM=false`): not
    /// ready, engine down.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A fresh status for the given `DOCKHAND_SWARM`: not ready, engine down, role not
    /// checked. Unless `mode` is [`SwarmMode::Off`], readiness also waits for the Swarm
    /// provider (see [`Status::readiness`]).
    pub fn with_swarm(mode: SwarmMode) -> Arc<Self> {
        let status = Self::default();
        status.swarm_mode.store(mode_code(mode), Ordering::Release);
        Arc::new(status)
    }

    /// `Ok` when dockhand is ready to serve, else the first reason it is not:
    /// - the containers provider's first full sync must be published;
    /// - with `DOCKHAND_SWARM=auto`, once the engine's role is known, a manager's first poll
    ///   must be published (a worker or an engine outside a swarm does not hold readiness);
    /// - with `DOCKHAND_SWARM=true`, the engine must be a manager and its first poll
    ///   published.
    ///
    /// Readiness only ever turns on: once the first poll is published, a later change of
    /// role (or a lost engine) leaves dockhand ready, serving the last routes.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if !self.synced.load(Ordering::Acquire) {
            return Err(NotReady::FirstSync);
        }
        let mode = self.swarm_mode.load(Ordering::Acquire);
        if mode == mode_code(SwarmMode::Off) || self.swarm_polled.load(Ordering::Acquire) {
            return Ok(());
        }
        let on = mode == mode_code(SwarmMode::On);
        match self.swarm_role.load(Ordering::Acquire) {
            0 => Err(NotReady::SwarmRoleUnknown),
            1 => Err(NotReady::SwarmFirstPoll),
            2 if on => Err(NotReady::SwarmWorker),
            3 if on => Err(NotReady::NotInSwarm),
            _ => Ok(()),
        }
    }

    /// True when [`Status::readiness`] is `Ok`.
    pub fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// True once the containers provider's first full sync has been published.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// True while dockhand holds a working connection (event stream) to the engine.
    pub fn engine_up(&self) -> bool {
        self.engine_up.load(Ordering::Acquire)
    }

    /// The engine's role as the Swarm provider last saw it; `None` before it asked, or when
    /// it does not run.
    pub fn swarm_role(&self) -> Option<Role> {
        match self.swarm_role.load(Ordering::Acquire) {
            1 => Some(Role::Manager),
            2 => Some(Role::Worker),
            3 => Some(Role::None),
            _ => None,
        }
    }

    /// The running containers skipped for invalid settings, sorted by name.
    pub fn skipped(&self) -> Vec<Skipped> {
        self.skipped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_skipped(&self, skipped: Vec<Skipped>) {
        *self
            .skipped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = skipped;
    }

    /// Synced only ever turns on: the first full sync has been published.
    pub(crate) fn set_synced(&self) {
        self.synced.fetch_or(true, Ordering::Release);
    }

    pub(crate) fn set_engine_up(&self, up: bool) {
        self.engine_up.swap(up, Ordering::Release);
    }

    /// Records the engine's role, as the Swarm provider found it on connecting.
    pub(crate) fn set_swarm_role(&self, role: Role) {
        self.swarm_role.store(role_code(role), Ordering::Release);
    }

    /// Polled only ever turns on: the Swarm provider's first poll has been published.
    pub(crate) fn set_swarm_polled(&self) {
        self.swarm_polled.fetch_or(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_swarm_readiness_is_the_first_sync() {
        let status = Status::new();
        assert_eq!(status.readiness(), Err(NotReady::FirstSync));
        status.set_synced();
        assert_eq!(status.readiness(), Ok(()));
    }

    #[test]
    fn with_swarm_on_a_manager_readiness_waits_for_the_first_poll() {
        for mode in [SwarmMode::Auto, SwarmMode::On] {
            let status = Status::with_swarm(mode);
            status.set_synced();
            assert_eq!(status.readiness(), Err(NotReady::SwarmRoleUnknown));
            status.set_swarm_role(Role::Manager);
            assert_eq!(status.readiness(), Err(NotReady::SwarmFirstPoll));
            status.set_swarm_polled();
            assert!(status.is_ready());
            status.set_swarm_role(Role::Worker);
            assert!(status.is_ready(), "readiness only turns on");
        }
    }

    #[test]
    fn swarm_true_off_a_manager_says_why_and_auto_does_not_wait() {
        let on = Status::with_swarm(SwarmMode::On);
        on.set_synced();
        on.set_swarm_role(Role::Worker);
        assert_eq!(on.readiness(), Err(NotReady::SwarmWorker));
        assert!(on.readiness().unwrap_err().to_string().contains("worker"));
        on.set_swarm_role(Role::None);
        assert_eq!(on.readiness(), Err(NotReady::NotInSwarm));
        assert!(on
            .readiness()
            .unwrap_err()
            .to_string()
            .contains("not in a swarm"));

        let auto = Status::with_swarm(SwarmMode::Auto);
        auto.set_synced();
        auto.set_swarm_role(Role::None);
        assert!(auto.is_ready());
        auto.set_swarm_role(Role::Worker);
        assert!(auto.is_ready());
    }
}
