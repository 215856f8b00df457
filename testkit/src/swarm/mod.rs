//! A real Docker Swarm of one or more nodes on this one machine, for tests: each node is an extra
//! `dockerd` in network, mount, UTS and PID namespaces of its own, bridged to the others.
//!
//! ```no_run
//! use std::time::Duration;
//! use dockhand_testkit::{images, swarm};
//!
//! let cluster = swarm::swarm()
//!     .nodes(3)
//!     .heartbeat(Duration::from_secs(1))
//!     .image(images::backend_image())
//!     .start();
//! cluster.docker(&["network", "create", "-d", "overlay", "--attachable", "apps"]);
//! // ... services on `cluster.manager().host()`; `cluster.node(3).power_off()` ...
//! // Dropped: every node, namespace, link, rule and file it made is gone.
//! ```
//!
//! The recipe is the one proven in `shared/reference/swarm-multinode/` (its README says why each
//! part is there): node N has netns `dhswN` with `eth0` = 10.241.0.(10+N)/24 on bridge `dhswbr0`
//! (10.241.0.1), socket `/run/dhsw-N.sock`, state under `/run/dhsw/dhswN`, data under
//! `/var/lib/dhsw/dhswN`, cgroup parent `/dhswN`; overlays get /24s of 10.242.0.0/16. Node 1 is
//! the manager; the main engine is never touched (a swarm there would switch every other
//! dockhand on that engine into Swarm mode).
//!
//! What a test must know (the reference's caveats):
//! - This kernel has no IPVS: service VIPs and the ingress mesh do not answer. Route to task
//!   addresses; reach a proxy through a port published by a container (`docker run -p`), which
//!   answers on the node's address ([`Node::addr`]).
//! - The root network namespace cannot reach overlay addresses; run a host program in a
//!   container's namespace instead ([`Node::netns`], for `nsenter --net=…`).
//! - Services need `--restart-delay 0s` for prompt replacements, and the images each node runs
//!   must be loaded on it ([`SwarmBuilder::image`]); the nodes never try a registry.
//!
//! Isolation: the names and address ranges are fixed, so one swarm runs per machine at a time; a
//! lock file in the temp directory serialises test processes (a second one waits). Whatever a
//! killed run left behind (its lock is gone with it) is swept before a new swarm is built.
//! Dropping the [`Swarm`] removes everything, also when the test panics; node logs are printed
//! then.

mod node;
mod system;

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use node::Node;

use crate::docker::docker_bytes;
use system::{run, run_quiet};

/// Name prefix of every link, namespace, socket and folder a swarm makes.
const PREFIX: &str = "dhsw";

/// The underlay's bridge (in the root network namespace).
const BRIDGE: &str = "dhswbr0";

/// The underlay: the bridge is `.1`, node N is `.(10 + N)`.
const UNDERLAY: [u8; 3] = [10, 241, 0];

/// Where the swarm allocates overlay subnets (a /24 each).
const OVERLAY_POOL: &str = "10.242.0.0/16";

/// The most nodes a swarm may have (and how many leftovers a sweep looks for).
pub const MAX_NODES: usize = 9;

/// Runtime state: sockets' neighbours, pid files, node logs.
const STATE_DIR: &str = "/run/dhsw";

/// The nodes' data roots.
const DATA_DIR: &str = "/var/lib/dhsw";

/// How long a node's daemon may take to answer after it starts.
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts describing a swarm: one node (the manager), Docker's default heartbeat, no images.
pub fn swarm() -> SwarmBuilder {
    SwarmBuilder {
        nodes: 1,
        heartbeat: None,
        images: Vec::new(),
        storage: "vfs".to_owned(),
    }
}

/// Options of a swarm to build; [`SwarmBuilder::start`] builds it.
#[derive(Clone, Debug)]
pub struct SwarmBuilder {
    nodes: usize,
    heartbeat: Option<Duration>,
    images: Vec<String>,
    storage: String,
}

impl SwarmBuilder {
    /// How many nodes, manager included (1 to [`MAX_NODES`]). Default 1.
    pub fn nodes(mut self, nodes: usize) -> Self {
        assert!(
            (1..=MAX_NODES).contains(&nodes),
            "a test swarm has 1 to {MAX_NODES} nodes, not {nodes}"
        );
        self.nodes = nodes;
        self
    }

    /// The dispatcher heartbeat, set at `swarm init` (a later `swarm update` only applies after
    /// one more heartbeat at the old period). A dead node is marked down after 2–3 periods.
    /// Default: Docker's (5 s).
    pub fn heartbeat(mut self, period: Duration) -> Self {
        self.heartbeat = Some(period);
        self
    }

    /// An image of the main engine to load onto every node (`docker save | docker -H … load`,
    /// so every node has the same image ID). Default: none.
    pub fn image(mut self, image: &str) -> Self {
        self.images.push(image.to_owned());
        self
    }

    /// The nodes' storage driver. Default `vfs` (works on any host filesystem).
    pub fn storage_driver(mut self, driver: &str) -> Self {
        self.storage = driver.to_owned();
        self
    }

    /// Builds the swarm: underlay, node daemons, images, `swarm init` and joins; returns once
    /// every node is `Ready`. About 3 s plus the image loads.
    ///
    /// # Panics
    /// Not root, a tool missing (`ip`, `iptables`, `nsenter`, `unshare`, `dockerd`,
    /// `docker-init`), or any step failing; what was built so far is removed first.
    pub fn start(self) -> Swarm {
        preflight().unwrap_or_else(|e| panic!("a test swarm cannot run here: {e}"));
        let started = Instant::now();
        let lock = system::lock().unwrap_or_else(|e| panic!("taking the swarm lock: {e}"));
        sweep();
        let swarm = Swarm {
            nodes: (1..=self.nodes).map(Node::new).collect(),
            shim_sockets: system::shim_sockets(),
            _lock: lock,
        };
        // From here on, a panic drops `swarm`, which removes whatever was built.
        swarm.build(&self);
        eprintln!(
            "test swarm: {} node(s) ready in {:.1?}",
            self.nodes,
            started.elapsed()
        );
        swarm
    }
}

/// A running test swarm; node 1 is the manager. Dropping it removes everything it made.
pub struct Swarm {
    nodes: Vec<Node>,
    /// The containerd shim sockets that existed before the swarm (see [`Drop`]).
    shim_sockets: std::collections::BTreeSet<PathBuf>,
    /// Held for the swarm's life: one swarm per machine at a time.
    _lock: File,
}

impl Swarm {
    /// The manager (node 1).
    pub fn manager(&self) -> &Node {
        &self.nodes[0]
    }

    /// Node `n`, counting from 1 (the manager).
    ///
    /// # Panics
    /// If there is no such node.
    pub fn node(&self, n: usize) -> &Node {
        n.checked_sub(1)
            .and_then(|i| self.nodes.get(i))
            .unwrap_or_else(|| panic!("the swarm has no node {n}"))
    }

    /// Every node, manager first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Runs `docker args…` against the manager and returns its trimmed stdout.
    ///
    /// # Panics
    /// If the command fails (the message names it).
    pub fn docker(&self, args: &[&str]) -> String {
        self.manager().docker(args)
    }

    fn build(&self, options: &SwarmBuilder) {
        build_underlay(self.nodes.len()).unwrap_or_else(|e| panic!("building the underlay: {e}"));
        std::thread::scope(|scope| {
            for node in &self.nodes {
                scope.spawn(|| node.boot(&options.storage));
            }
        });
        // A panic in a boot thread re-panics here when the scope ends, which is what we want.
        for image in &options.images {
            let archive = docker_bytes(["save", image.as_str()])
                .unwrap_or_else(|e| panic!("saving {image} from the main engine: {e}"));
            std::thread::scope(|scope| {
                for node in &self.nodes {
                    let archive = &archive;
                    scope.spawn(move || node.load(archive));
                }
            });
        }
        let manager = self.manager();
        let advertise = manager.addr().to_string();
        let listen = format!("{advertise}:2377");
        let heartbeat = options.heartbeat.map(|h| format!("{}ms", h.as_millis()));
        let mut init = vec![
            "swarm",
            "init",
            "--advertise-addr",
            &advertise,
            "--listen-addr",
            &listen,
            "--default-addr-pool",
            OVERLAY_POOL,
            "--default-addr-pool-mask-length",
            "24",
        ];
        if let Some(heartbeat) = &heartbeat {
            init.extend(["--dispatcher-heartbeat", heartbeat]);
        }
        manager.docker(&init);
        let token = manager.docker(&["swarm", "join-token", "-q", "worker"]);
        for worker in &self.nodes[1..] {
            let addr = worker.addr().to_string();
            let listen = format!("{addr}:2377");
            worker.docker(&[
                "swarm",
                "join",
                "--advertise-addr",
                &addr,
                "--listen-addr",
                &listen,
                "--token",
                &token,
                &listen_of(manager),
            ]);
        }
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            let statuses = manager.docker(&["node", "ls", "--format", "{{.Status}}"]);
            let ready = statuses.lines().filter(|s| *s == "Ready").count();
            if ready == self.nodes.len() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {ready} of {} nodes Ready after {BOOT_TIMEOUT:?}",
                self.nodes.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        for node in &self.nodes {
            node.read_id();
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                node.print_log_tail();
            }
        }
        for node in &self.nodes {
            node.kill_all();
        }
        // Every shim puts its socket in /run/containerd/s, whichever containerd runs it, and a
        // killed one leaves it: remove those that appeared while the swarm ran and that no
        // process answers any more (the main engine's live shims answer).
        system::remove_dead_shim_sockets(&self.shim_sockets);
        sweep();
    }
}

fn listen_of(node: &Node) -> String {
    format!("{}:2377", node.addr())
}

/// Address of node `n` on the underlay.
fn node_addr(n: usize) -> Ipv4Addr {
    let [a, b, c] = UNDERLAY;
    // n ≤ MAX_NODES, so the host part stays under 20.
    Ipv4Addr::new(a, b, c, 10 + n as u8)
}

fn preflight() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1))
        .is_some_and(|euid| euid == "0");
    if !root {
        return Err("it needs root (namespaces, links, iptables)".to_owned());
    }
    for tool in [
        "ip",
        "iptables",
        "nsenter",
        "unshare",
        "dockerd",
        "docker-init",
    ] {
        run_quiet("sh", &["-c", &format!("command -v {tool}")])
            .map_err(|_| format!("`{tool}` is not on PATH"))?;
    }
    Ok(())
}

/// The bridge, one netns per node with a veth to the bridge (no default route: a node reaches
/// the underlay and nothing else), and the rule that lets the bridge forward between its ports
/// (`br_netfilter` sends bridged frames through the FORWARD chain, which Docker sets to DROP).
fn build_underlay(nodes: usize) -> Result<(), String> {
    let [a, b, c] = UNDERLAY;
    run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    run(
        "ip",
        &["addr", "add", &format!("{a}.{b}.{c}.1/24"), "dev", BRIDGE],
    )?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    for n in 1..=nodes {
        let (ns, host_end, node_end) = (
            format!("{PREFIX}{n}"),
            format!("{PREFIX}{n}-h"),
            format!("{PREFIX}{n}-n"),
        );
        run("ip", &["netns", "add", &ns])?;
        run(
            "ip",
            &[
                "link", "add", &host_end, "type", "veth", "peer", "name", &node_end,
            ],
        )?;
        run("ip", &["link", "set", &host_end, "master", BRIDGE, "up"])?;
        run("ip", &["link", "set", &node_end, "netns", &ns])?;
        run("ip", &["-n", &ns, "link", "set", &node_end, "name", "eth0"])?;
        let addr = format!("{}/24", node_addr(n));
        run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
    }
    let mut rule = vec!["-I", forward_chain()];
    rule.extend(FORWARD_RULE);
    run("iptables", &rule)?;
    Ok(())
}

/// The bridge's forwarding rule, after `-I/-D <chain>`.
const FORWARD_RULE: [&str; 10] = [
    "-i",
    BRIDGE,
    "-o",
    BRIDGE,
    "-m",
    "comment",
    "--comment",
    PREFIX,
    "-j",
    "ACCEPT",
];

/// `DOCKER-USER` when the main engine made it (its rules come first), else `FORWARD`.
fn forward_chain() -> &'static str {
    if run_quiet("iptables", &["-nL", "DOCKER-USER"]).is_ok() {
        "DOCKER-USER"
    } else {
        "FORWARD"
    }
}

/// Removes everything a swarm of this kit may have left: node processes (only those whose pid
/// files and command lines say they are ours), namespaces, links, the iptables rule, cgroups,
/// sockets, state and data. Safe to run when nothing is there. Called with the lock held.
fn sweep() {
    // A run killed before its `Drop` left its state folder, made when that run started.
    let leftover_since = std::fs::metadata(STATE_DIR).and_then(|m| m.created().or(m.modified()));
    for n in 1..=MAX_NODES {
        node::kill_leftover(n);
    }
    if let Ok(since) = leftover_since {
        system::remove_dead_shim_sockets_since(since);
    }
    for n in 1..=MAX_NODES {
        let ns = format!("{PREFIX}{n}");
        if std::path::Path::new("/run/netns").join(&ns).exists() {
            let _ = run_quiet("ip", &["netns", "del", &ns]);
        }
        let host_end = format!("{PREFIX}{n}-h");
        if std::path::Path::new("/sys/class/net")
            .join(&host_end)
            .exists()
        {
            let _ = run_quiet("ip", &["link", "del", &host_end]);
        }
    }
    // `ip netns add` made /run/netns (a mount point); leave nothing behind once it is empty.
    let netns = std::path::Path::new("/run/netns");
    if std::fs::read_dir(netns).is_ok_and(|mut d| d.next().is_none()) {
        // umount(8) makes libmount's /run/mount (empty): remove it too if it was not there.
        let libmount = std::path::Path::new("/run/mount");
        let had_libmount = libmount.exists();
        let _ = run_quiet("umount", &["/run/netns"]);
        let _ = std::fs::remove_dir(netns);
        if !had_libmount {
            let _ = std::fs::remove_dir(libmount);
        }
    }
    if std::path::Path::new("/sys/class/net").join(BRIDGE).exists() {
        let _ = run_quiet("ip", &["link", "del", BRIDGE]);
    }
    for chain in ["DOCKER-USER", "FORWARD"] {
        let mut rule = vec!["-D", chain];
        rule.extend(FORWARD_RULE);
        while run_quiet("iptables", &rule).is_ok() {}
    }
    for n in 1..=MAX_NODES {
        system::remove_cgroups(&format!("{PREFIX}{n}"));
        let _ = std::fs::remove_file(socket_path(n));
    }
    for dir in [STATE_DIR, DATA_DIR] {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("test swarm: could not remove {dir}: {e}");
            }
        }
    }
}

/// The socket of node `n`'s daemon.
fn socket_path(n: usize) -> PathBuf {
    PathBuf::from(format!("/run/{PREFIX}-{n}.sock"))
}
