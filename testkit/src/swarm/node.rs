//! One node of a test swarm: its daemon's life (boot, power-off, power-on) and its containers'
//! network namespaces.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::system::signal;
use super::{node_addr, socket_path, BOOT_TIMEOUT, DATA_DIR, PREFIX, STATE_DIR};
use crate::docker::{docker_at, DockerError};

/// PID 1 of a node's namespaces: names the node, gives it a sysfs of its own network namespace
/// while keeping the host's cgroup hierarchy (`ip netns exec` would hide it), then runs
/// `docker-init` (tini, which reaps the shims) → `dockerd` with the node's own paths. The host's
/// `/etc/docker/daemon.json` must not apply (dockerd refuses flags that repeat it). `mount -n`
/// leaves the host's `/run/mount/utab` alone (these mounts die with the namespace).
const NODE_INIT: &str = r#"set -eu
node=$1 sock=$2 state=$3 data=$4 storage=$5
hostname "$node"
mkdir -p "$state/cg" "$data"
mount -n --rbind /sys/fs/cgroup "$state/cg"
mount -n -t sysfs sysfs /sys
mount -n --move "$state/cg" /sys/fs/cgroup
echo '{}' > "$state/daemon.json"
exec docker-init -- dockerd --config-file "$state/daemon.json" --host "unix://$sock" \
  --data-root "$data" --exec-root "$state/exec" --pidfile "$state/dockerd.pid" \
  --storage-driver "$storage" --cgroup-parent "/$node"
"#;

/// Lines of each node's log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// A node of a test [`Swarm`](super::Swarm): node 1 is the manager, the others workers.
pub struct Node {
    n: usize,
    name: String,
    id: OnceLock<String>,
    running: Mutex<Option<Running>>,
}

/// A booted node: `unshare` (our child, whose death kills the node) and its namespace's PID 1.
struct Running {
    unshare: Child,
    init: u32,
}

impl Node {
    pub(super) fn new(n: usize) -> Node {
        Node {
            n,
            name: format!("{PREFIX}{n}"),
            id: OnceLock::new(),
            running: Mutex::new(None),
        }
    }

    /// The node's number (1 is the manager).
    pub fn number(&self) -> usize {
        self.n
    }

    /// The node's hostname, also its name in `docker node ls`: `dhsw<N>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's Swarm ID (what a task's `NodeID` says).
    pub fn id(&self) -> &str {
        self.id.get().map_or("", String::as_str)
    }

    /// The node's address on the underlay, where ports its containers publish answer from the
    /// test: 10.241.0.(10+N).
    pub fn addr(&self) -> Ipv4Addr {
        node_addr(self.n)
    }

    /// `DOCKER_HOST` of the node's daemon: `unix:///run/dhsw-<N>.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", socket_path(self.n).display())
    }

    /// Runs `docker args…` against this node and returns its trimmed stdout.
    ///
    /// # Panics
    /// If the command fails (the message names it).
    pub fn docker(&self, args: &[&str]) -> String {
        self.try_docker(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `docker args…` against this node.
    ///
    /// # Errors
    /// The command failing.
    pub fn try_docker(&self, args: &[&str]) -> Result<String, DockerError> {
        docker_at(&self.host(), args, None)
    }

    /// The network namespace of `container` on this node, for `nsenter --net=<path> program`:
    /// the program runs on the container's networks (overlays included) with the host's files.
    ///
    /// # Panics
    /// If the container does not run, or its process cannot be found.
    pub fn netns(&self, container: &str) -> PathBuf {
        let pid = self.docker(&["inspect", "-f", "{{.State.Pid}}", container]);
        let pid: u32 = pid
            .parse()
            .unwrap_or_else(|_| panic!("{container} on {}: no pid ({pid:?})", self.name));
        let host_pid = self
            .host_pid(pid)
            .unwrap_or_else(|| panic!("{container} on {}: pid {pid} not found", self.name));
        PathBuf::from(format!("/proc/{host_pid}/ns/net"))
    }

    /// Powers the node off: SIGKILL to its PID 1 kills dockerd, containerd, the shims and every
    /// container at once, as a power cut would. Returns once the node is gone.
    ///
    /// # Panics
    /// If the node is not running.
    pub fn power_off(&self) {
        let mut running = self.lock();
        let node = running
            .take()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        stop(node, &self.name);
    }

    /// Starts a powered-off node again: it keeps its swarm state and rejoins.
    ///
    /// # Panics
    /// If it is running, or does not answer within 30 s.
    pub fn power_on(&self) {
        assert!(self.lock().is_none(), "{} is running", self.name);
        // As /run would be after a reboot: a stale pidfile (PIDs restart at 1 in a fresh PID
        // namespace) makes dockerd refuse to start.
        let state = self.state_dir();
        let _ = std::fs::remove_file(state.join("dockerd.pid"));
        let _ = std::fs::remove_dir_all(state.join("exec"));
        let storage = std::fs::read_to_string(state.join("storage")).unwrap_or_default();
        self.boot(storage.trim());
    }

    pub(super) fn boot(&self, storage: &str) {
        let state = self.state_dir();
        std::fs::create_dir_all(&state)
            .unwrap_or_else(|e| panic!("creating {}: {e}", state.display()));
        let _ = std::fs::write(state.join("storage"), storage);
        let _ = std::fs::remove_file(socket_path(self.n));
        let log = File::options()
            .create(true)
            .append(true)
            .open(state.join("dockerd.log"))
            .unwrap_or_else(|e| panic!("opening {}'s log: {e}", self.name));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("sharing {}'s log: {e}", self.name));
        let data = Path::new(DATA_DIR).join(&self.name);
        let socket = socket_path(self.n);
        // nsenter and unshare exec each other, so the child is `unshare`; `--kill-child` makes
        // its death (even a SIGKILL of the test process's children) power the node off.
        let unshare = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.name))
            .args([
                "unshare",
                "--mount",
                "--uts",
                "--pid",
                "--fork",
                "--kill-child",
            ])
            .args(["--mount-proc", "--propagation", "private"])
            .args(["sh", "-c", NODE_INIT, "node-init"])
            .arg(&self.name)
            .arg(&socket)
            .arg(&state)
            .arg(&data)
            .arg(storage)
            // Tasks use the loaded image instead of trying a registry first (each try would
            // cost a DNS failure: the nodes have no route out).
            .env("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.name));
        let unshare_pid = unshare.id();
        let _ = std::fs::write(state.join("unshare.pid"), unshare_pid.to_string());
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let init: u32 = loop {
            let children =
                std::fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children"))
                    .unwrap_or_default();
            if let Some(init) = children.split_whitespace().find_map(|p| p.parse().ok()) {
                break init;
            }
            if Instant::now() >= deadline {
                *self.lock() = Some(Running { unshare, init: 0 });
                panic!("{}: its namespaces never got a PID 1", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = std::fs::write(state.join("init.pid"), init.to_string());
        *self.lock() = Some(Running { unshare, init });
        while self
            .try_docker(&["version", "--format", "{{.Server.Version}}"])
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "{}'s dockerd never answered on {}; its log:\n{}",
                self.name,
                self.host(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Loads an image archive (`docker save` output) into the node.
    pub(super) fn load(&self, archive: &[u8]) {
        docker_at(&self.host(), ["load", "-q"], Some(archive))
            .unwrap_or_else(|e| panic!("loading an image into {}: {e}", self.name));
    }

    pub(super) fn read_id(&self) {
        let id = self.docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
        let _ = self.id.set(id);
    }

    /// Kills the node if it runs (teardown: nothing of it needs to survive).
    pub(super) fn kill_all(&self) {
        if let Some(node) = self.lock().take() {
            stop(node, &self.name);
        }
    }

    pub(super) fn print_log_tail(&self) {
        eprintln!(
            "--- last log of test swarm node {} ---\n{}",
            self.name,
            self.log_tail()
        );
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.state_dir().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    fn state_dir(&self) -> PathBuf {
        Path::new(STATE_DIR).join(&self.name)
    }

    /// The host PID of `pid`, a PID of this node's own PID namespace (what `State.Pid` says):
    /// the descendant of the node's PID 1 whose `NSpid` has `pid` at the node's depth (a
    /// container's process sits one namespace deeper, in its own). Works on cgroup v1 and v2.
    fn host_pid(&self, pid: u32) -> Option<u32> {
        let init = self.lock().as_ref()?.init;
        let depth = nspid(init)?.len().checked_sub(1)?;
        let wanted = pid.to_string();
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let host: u32 = entry.file_name().to_str()?.parse().ok()?;
                let ids = nspid(host)?;
                (ids.get(depth) == Some(&wanted) && descends_from(host, init)).then_some(host)
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        // Only whole values are stored, so a poisoned lock still holds a valid one.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// SIGKILL to the node's PID 1 (the kernel then kills its whole PID namespace), then reaps
/// `unshare`, which exits with it.
fn stop(mut node: Running, name: &str) {
    if node.init != 0 {
        signal(node.init, "KILL");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if node.unshare.try_wait().ok().flatten().is_some() {
            return;
        }
        if Instant::now() >= deadline {
            // --kill-child takes PID 1 with it.
            let _ = node.unshare.kill();
            let _ = node.unshare.wait();
            eprintln!("test swarm: {name} took over 10 s to die; killed its unshare");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `NSpid` line of a process: its PID in each PID namespace, outermost first.
fn nspid(pid: u32) -> Option<Vec<String>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    Some(line.split_whitespace().map(str::to_owned).collect())
}

/// Whether `ancestor` is `pid`'s parent, grandparent, … (as the host sees them).
fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        let Some(parent) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PPid:"))
                    .and_then(|p| p.trim().parse::<u32>().ok())
            })
        else {
            return false;
        };
        if parent == ancestor {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        pid = parent;
    }
    false
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        !status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

/// Kills node `n` of a run that did not clean up (killed before its `Drop`): its PID 1 and its
/// `unshare`, if their pid files still name processes whose command lines are ours.
pub(super) fn kill_leftover(n: usize) {
    let state = Path::new(STATE_DIR).join(format!("{PREFIX}{n}"));
    let marker = state.display().to_string();
    let mut killed = Vec::new();
    for (file, program) in [("init.pid", "docker-init"), ("unshare.pid", "unshare")] {
        let Some(pid) = std::fs::read_to_string(state.join(file))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(program) && cmdline.contains(&marker) {
            eprintln!("test swarm: killing leftover {program} of {PREFIX}{n} (pid {pid})");
            signal(pid, "KILL");
            killed.push(pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for pid in killed {
        // Not our child: it is gone once /proc no longer shows it running (zombies are
        // reaped by whoever is their parent now).
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
