//! A running test container: inspect it, stop and start it, move it between networks; removed
//! (`docker rm -f`) when dropped, even when the test panics.

mod builder;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::docker::{docker, docker_output, DockerError};
use crate::network::Network;

pub use builder::{backend, container, ContainerBuilder};

/// How long a container may take from `docker start` to ready.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between two readiness checks.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How many log lines a failing test prints for each of its containers.
const LOG_TAIL_ON_PANIC: &str = "40";

/// A container the kit created. Its methods panic, naming the failing `docker` command, when
/// Docker refuses: in a test that is the failure to report, so they return no `Result`.
#[derive(Debug)]
pub struct Container {
    id: String,
    name: String,
    ready_log: Option<String>,
    /// Networks it was attached to by the kit: held so they outlive the container.
    networks: Mutex<Vec<Network>>,
}

/// What `docker exec` gave back.
#[derive(Clone, Debug)]
pub struct ExecOutput {
    /// Exit code of the command (`None` if it was killed by a signal).
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl ExecOutput {
    /// Whether the command exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl Container {
    fn new(id: String, name: String, ready_log: Option<String>, network: Option<Network>) -> Self {
        Container {
            id,
            name,
            ready_log,
            networks: Mutex::new(network.into_iter().collect()),
        }
    }

    /// The full container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The container's IPv4 address on `network`.
    ///
    /// # Panics
    /// If the container has no address there (not attached, or not running).
    pub fn ip(&self, network: &Network) -> IpAddr {
        self.try_ip(network).unwrap_or_else(|| {
            panic!(
                "container {} has no address on network {}",
                self.name,
                network.name()
            )
        })
    }

    /// The container's IPv4 address on `network`, if it has one.
    pub fn try_ip(&self, network: &Network) -> Option<IpAddr> {
        let inspect = self.inspect();
        let address =
            inspect["NetworkSettings"]["Networks"][network.name()]["IPAddress"].as_str()?;
        address.parse().ok()
    }

    /// `ip(network):port`.
    pub fn addr(&self, network: &Network, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(network), port)
    }

    /// The 127.0.0.1 address a [`ContainerBuilder::publish`]ed port is reachable at (it may
    /// change across restarts, so ask again after one).
    ///
    /// # Panics
    /// If the port is not published or the container is not running.
    pub fn host_addr(&self, port: u16) -> SocketAddr {
        let mapping = self.docker(&["port", &self.id, &format!("{port}/tcp")]);
        mapping
            .lines()
            .find_map(|line| line.trim().parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("port {port} of {} is not published: {mapping:?}", self.name))
    }

    /// `docker stop`: SIGTERM, then SIGKILL after Docker's grace period; returns once stopped.
    pub fn stop(&self) {
        self.docker(&["stop", &self.id]);
    }

    /// `docker kill`: SIGKILL; returns once the container is gone from the running set.
    pub fn kill(&self) {
        self.docker(&["kill", &self.id]);
    }

    /// `docker pause`: freezes its processes (it stays listed as running, and `paused`).
    pub fn pause(&self) {
        self.docker(&["pause", &self.id]);
    }

    /// Sends `signal` (e.g. `"TERM"`, `"HUP"`) to the container's main process.
    pub fn signal(&self, signal: &str) {
        self.docker(&["kill", "--signal", signal, &self.id]);
    }

    /// `docker start` of a stopped container, then waits until it is ready again; does nothing
    /// if it is already running.
    pub fn start(&self) {
        if self.is_running() {
            return;
        }
        let seen = self.ready_lines();
        if let Err(e) = self.start_and_wait(seen) {
            panic!("{e}");
        }
    }

    /// `docker restart`, then waits until the container is ready again.
    pub fn restart(&self) {
        let seen = self.ready_lines();
        self.docker(&["restart", &self.id]);
        if let Err(e) = self.wait_ready(seen) {
            panic!("{e}");
        }
    }

    /// Attaches the container to `network` (`docker network connect`).
    pub fn connect(&self, network: &Network) {
        self.docker(&["network", "connect", network.name(), &self.id]);
        self.networks().push(network.clone());
    }

    /// Detaches the container from `network` (`docker network disconnect`).
    pub fn disconnect(&self, network: &Network) {
        self.docker(&["network", "disconnect", network.name(), &self.id]);
        self.networks().retain(|n| n.id() != network.id());
    }

    /// Runs a command in the container; a non-zero exit is reported, not a panic.
    ///
    /// # Panics
    /// If `docker exec` itself cannot run.
    pub fn exec(&self, args: &[&str]) -> ExecOutput {
        let mut command = vec!["exec", self.id.as_str()];
        command.extend_from_slice(args);
        let output = docker_output(&command).unwrap_or_else(|e| panic!("{e}"));
        ExecOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Everything the container wrote so far, stdout then stderr.
    pub fn logs(&self) -> String {
        logs_of(&self.id, None)
    }

    /// `docker inspect` of the container (`Value::Null` if it cannot be inspected).
    pub fn inspect(&self) -> Value {
        docker(["inspect", "--type", "container", &self.id])
            .ok()
            .and_then(|out| serde_json::from_str::<Value>(&out).ok())
            .map(|mut all| all[0].take())
            .unwrap_or(Value::Null)
    }

    /// `State.Status`: `created`, `running`, `exited`...
    pub fn status(&self) -> String {
        self.inspect()["State"]["Status"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned()
    }

    /// Whether the container is running.
    pub fn is_running(&self) -> bool {
        self.inspect()["State"]["Running"].as_bool() == Some(true)
    }

    /// The Docker health status (`starting`, `healthy`, `unhealthy`), if it has a healthcheck.
    pub fn health(&self) -> Option<String> {
        self.inspect()["State"]["Health"]["Status"]
            .as_str()
            .map(str::to_owned)
    }

    fn start_and_wait(&self, ready_lines_before: usize) -> Result<(), DockerError> {
        docker(["start", &self.id])?;
        self.wait_ready(ready_lines_before)
    }

    /// Polls until the container runs and, if a ready line is set, it appears more often than
    /// `before` times in the logs.
    fn wait_ready(&self, before: usize) -> Result<(), DockerError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let status = self.status();
            match status.as_str() {
                "running" if self.ready_log.is_none() || self.ready_lines() > before => {
                    return Ok(())
                }
                "exited" | "dead" => return Err(self.not_ready(&format!("it is {status}"))),
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(&format!("not ready after {STARTUP_TIMEOUT:?}")));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// How many times the ready line appears in the logs (0 without a ready line).
    fn ready_lines(&self) -> usize {
        self.ready_log
            .as_ref()
            .map_or(0, |line| self.logs().matches(line.as_str()).count())
    }

    fn not_ready(&self, why: &str) -> DockerError {
        DockerError::new(
            format!("docker start {}", self.name),
            format!("{why}; logs:\n{}", self.logs()),
        )
    }

    /// Runs a docker command about this container, panicking with the command on failure.
    fn docker(&self, args: &[&str]) -> String {
        docker(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn networks(&self) -> MutexGuard<'_, Vec<Network>> {
        // A panic while holding this lock leaves a plain Vec, still valid.
        self.networks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- last logs of container {} ---\n{}",
                self.name,
                logs_of(&self.id, Some(LOG_TAIL_ON_PANIC))
            );
        }
        if let Err(e) = docker(["rm", "-f", "-v", &self.id]) {
            eprintln!(
                "dockhand-testkit: could not remove container {}: {e}",
                self.name
            );
        }
    }
}

fn logs_of(id: &str, tail: Option<&str>) -> String {
    let mut args = vec!["logs"];
    if let Some(tail) = tail {
        args.extend(["--tail", tail]);
    }
    args.push(id);
    match docker_output(&args) {
        Ok(output) => format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => format!("(no logs: {e})"),
    }
}
