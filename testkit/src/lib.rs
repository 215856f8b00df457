//! Test kit for dockhand: the echo backend and helpers for integration tests against the real
//! Docker engine.
//!
//! A test reads like the story it checks:
//!
//! ```no_run
//! use dockhand_testkit::{assert_eventually, backend, http, network, require_docker};
//!
//! # fn main() {
//! require_docker!();
//! let net = network().start();
//! let web = backend().name("web").vhost("a.test").network(&net).start();
//! let addr = web.addr(&net, 80);
//! assert_eventually!(http::get(addr, "a.test", "/").is_ok_and(|r| r.status == 200));
//! let echo = http::get(addr, "a.test", "/x?y=1").unwrap().echo().unwrap();
//! assert_eq!(echo.name, "web");
//! assert_eq!(echo.query.as_deref(), Some("y=1"));
//! # }
//! ```
//!
//! Everything created is labelled `dockhand.test=1`, named `dh-<test>-<unique>`, and removed on
//! drop, also when the test panics (a failing test prints its containers' last logs). Networks
//! are removed after the containers attached to them, whatever the drop order.
//!
//! Modules:
//! - [`echo`]: the echo server behind the `echo-backend` binary, also usable in-process;
//! - [`http`]: a client that sets any `Host`, never follows redirects, speaks h2c, TLS, WebSocket;
//! - [`images`]: images imported from the static binaries (no registry needed);
//! - containers ([`backend`], [`container`]), networks ([`network`]), host [`Process`]es;
//! - [`swarm`]: a real multi-node Docker Swarm on this machine, apart from the main engine.

#![deny(missing_docs)]

pub mod certs;
pub mod echo;
pub mod http;
pub mod images;
pub mod swarm;
pub mod synthetic;

mod container;
mod docker;
mod network;
mod process;

use std::time::Duration;

pub use container::{backend, container, Container, ContainerBuilder, ExecOutput, STARTUP_TIMEOUT};
pub use docker::{docker_available, DockerError, TEST_LABEL};
pub use network::{network, Network, NetworkBuilder};
pub use process::{free_port, tool_or_skip, Process};

#[doc(hidden)]
pub use docker::docker_or_skip;

/// Deadline of [`assert_eventually!`] when none is given: `DOCKHAND_TEST_PATIENCE_MS`
/// milliseconds, default 5000.
pub fn patience() -> Duration {
    const DEFAULT_MS: u64 = 5000;
    let ms = match std::env::var("DOCKHAND_TEST_PATIENCE_MS") {
        Err(_) => DEFAULT_MS,
        Ok(value) => value.trim().parse().unwrap_or_else(|_| {
            eprintln!(
                "DOCKHAND_TEST_PATIENCE_MS={value:?} is not a number of ms; using {DEFAULT_MS}"
            );
            DEFAULT_MS
        }),
    };
    Duration::from_millis(ms)
}

/// How often [`assert_eventually!`] re-evaluates its condition.
pub const EVENTUALLY_POLL: Duration = Duration::from_millis(20);

/// Polls `cond` every [`EVENTUALLY_POLL`] until it is true; panics if it is still false after the
/// deadline (second argument, a [`Duration`]; default [`patience()`]). More arguments are a
/// `format!` message added to the panic.
///
/// ```no_run
/// # use dockhand_testkit::assert_eventually;
/// # use std::time::Duration;
/// # let ready = || true;
/// assert_eventually!(ready());
/// assert_eventually!(ready(), Duration::from_secs(20));
/// assert_eventually!(ready(), Duration::from_secs(20), "proxy never saw {}", "a.test");
/// ```
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr $(,)?) => {
        $crate::assert_eventually!($cond, $crate::patience())
    };
    ($cond:expr, $timeout:expr $(,)?) => {
        $crate::assert_eventually!($cond, $timeout, "")
    };
    ($cond:expr, $timeout:expr, $($message:tt)+) => {{
        let timeout: ::std::time::Duration = $timeout;
        let start = ::std::time::Instant::now();
        loop {
            if $cond {
                break;
            }
            if start.elapsed() >= timeout {
                panic!(
                    "condition `{}` still false after {:?} {}",
                    stringify!($cond),
                    timeout,
                    format_args!($($message)+)
                );
            }
            ::std::thread::sleep($crate::EVENTUALLY_POLL);
        }
    }};
}

/// Returns early from the test (printing a skip line) when no Docker engine answers, or panics
/// when `DOCKHAND_REQUIRE_DOCKER=1` (as CI sets). The test function must return `()`.
#[macro_export]
macro_rules! require_docker {
    () => {
        if !$crate::docker_or_skip(module_path!()) {
            return;
        }
    };
}

/// Returns early from the test (printing a skip line naming the Debian package to install) when
/// the program `$tool` is not on `PATH`, or panics when `DOCKHAND_REQUIRE_DOCKER=1` (CI, whose
/// `.ci/run` installs it). Evaluates to the program's path otherwise.
#[macro_export]
macro_rules! require_tool {
    ($tool:expr, $package:expr) => {
        match $crate::tool_or_skip($tool, $package) {
            Some(path) => path,
            None => return,
        }
    };
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn eventually_returns_once_the_condition_holds() {
        let calls = Cell::new(0);
        assert_eventually!(
            {
                calls.set(calls.get() + 1);
                calls.get() >= 3
            },
            Duration::from_secs(5)
        );
        assert_eq!(calls.get(), 3);
    }

    #[test]
    #[should_panic(expected = "still false after 50ms because reasons")]
    fn eventually_panics_with_the_condition_after_the_deadline() {
        assert_eventually!(
            1 + 1 == 3,
            Duration::from_millis(50),
            "because {}",
            "reasons"
        );
    }

    #[test]
    fn patience_defaults_to_five_seconds() {
        if std::env::var_os("DOCKHAND_TEST_PATIENCE_MS").is_none() {
            assert_eq!(patience(), Duration::from_secs(5));
        }
    }
}
