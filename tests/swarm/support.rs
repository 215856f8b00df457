//! A dockhand on a test swarm's manager, services on the swarm, and steady load.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dockhand_testkit::http::{self, Response};
use dockhand_testkit::swarm::Swarm;
use dockhand_testkit::{assert_eventually, images, Process};
use serde_json::Value;

/// The binary cargo built for these tests.
pub const DOCKHAND: &str = env!("CARGO_BIN_EXE_dockhand");

/// The attachable overlay dockhand and the services share.
pub const APPS: &str = "dhsw-apps";

/// Port dockhand serves HTTP on inside its holder's namespace.
const HTTP_PORT: u16 = 8080;

/// Port of dockhand's admin listener inside its holder's namespace.
const ADMIN_PORT: u16 = 9180;

/// How long Swarm changes may take to show through dockhand: a 1 s poll plus Swarm's own
/// scheduling and container start.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// A test swarm with an overlay for apps and dockhand on its manager.
pub struct Cluster {
    /// Dropped last (fields drop in order): dockhand stops before its swarm goes.
    pub proxy: Dockhand,
    pub swarm: Swarm,
}

impl Cluster {
    /// `swarm` with [`APPS`] and dockhand started on its manager.
    pub fn new(swarm: Swarm) -> Cluster {
        swarm.docker(&["network", "create", "-d", "overlay", "--attachable", APPS]);
        let proxy = Dockhand::start(&swarm);
        Cluster { proxy, swarm }
    }

    /// `docker service create` on the manager: the echo backend (`BACKEND_NAME` = the service
    /// name) on [`APPS`], health-checked every second, replaced at once when a task dies
    /// (`--restart-delay 0s`), with `args` before the image. Returns the service name.
    pub fn service(&self, name: &str, args: &[&str]) -> String {
        let backend_name = format!("BACKEND_NAME={name}");
        let mut create = vec![
            "service",
            "create",
            "--detach",
            "--quiet",
            "--name",
            name,
            "--network",
            APPS,
            "--restart-delay",
            "0s",
            // The image's HEALTHCHECK gates `running` (Docker's 30 s interval would hold the
            // first check that long).
            "--health-interval",
            "1s",
            "--env",
            &backend_name,
        ];
        create.extend(args);
        create.push(images::backend_image());
        self.swarm.docker(&create);
        name.to_owned()
    }

    /// The running tasks of `service` as (task ID, node ID, container ID).
    pub fn running_tasks(&self, service: &str) -> Vec<(String, String, String)> {
        let ids = self.swarm.docker(&[
            "service",
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            "desired-state=running",
            service,
        ]);
        ids.lines()
            .filter_map(|id| {
                let line = self
                    .swarm
                    .manager()
                    .try_docker(&[
                        "inspect",
                        "--format",
                        "{{.Status.State}} {{.NodeID}} {{.Status.ContainerStatus.ContainerID}}",
                        id,
                    ])
                    .ok()?;
                let mut fields = line.split_whitespace();
                (fields.next()? == "running").then(|| {
                    (
                        id.to_owned(),
                        fields.next().unwrap_or_default().to_owned(),
                        fields.next().unwrap_or_default().to_owned(),
                    )
                })
            })
            .collect()
    }
}

/// dockhand, the host binary, run in the network namespace of a holder container on the
/// manager attached to [`APPS`] (so it reaches every task's overlay address, on any node), with
/// `DOCKER_HOST` = the manager's socket. The holder publishes dockhand's ports on the manager's
/// underlay address, where the test reaches them.
pub struct Dockhand {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    process: Process,
}

impl Dockhand {
    fn start(swarm: &Swarm) -> Dockhand {
        let manager = swarm.manager();
        let http = format!("{HTTP_PORT}");
        let admin = format!("{ADMIN_PORT}");
        // The echo backend listens elsewhere (9999), leaving dockhand's ports free.
        manager.docker(&[
            "run",
            "-d",
            "--name",
            "dockhand-holder",
            "--network",
            APPS,
            "--env",
            "LISTEN_PORTS=9999",
            "-p",
            &http,
            "-p",
            &admin,
            images::backend_image(),
        ]);
        let published = |port: &str| -> SocketAddr {
            let mapping = manager.docker(&["port", "dockhand-holder", &format!("{port}/tcp")]);
            let port = mapping
                .lines()
                .find_map(|l| l.rsplit(':').next()?.parse::<u16>().ok())
                .unwrap_or_else(|| panic!("no published port in {mapping:?}"));
            SocketAddr::from((manager.addr(), port))
        };
        let netns = manager.netns("dockhand-holder");
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", netns.display()))
            // Dies with this process even when it is killed before `Drop` runs (the swarm is
            // swept by the next run; a dockhand left running would hold the netns alive).
            .args(["setpriv", "--pdeathsig", "KILL", "--"])
            .arg(DOCKHAND)
            .env_clear()
            .args(["--http-port", &http, "--https-port", "8443"])
            .args(["--admin", &format!("0.0.0.0:{admin}")])
            .env("DOCKER_HOST", manager.host())
            // On the host, dockhand cannot detect the holder as its container: name it.
            .env("DOCKHAND_CONTAINER", "dockhand-holder")
            .env("DOCKHAND_CERTS_DIR", "/nonexistent/dockhand-test-certs")
            .env(
                "DOCKHAND_HTPASSWD_DIR",
                "/nonexistent/dockhand-test-htpasswd",
            )
            .env(
                "DOCKHAND_ACME_WEBROOT",
                "/nonexistent/dockhand-test-webroot",
            )
            .env("DOCKHAND_LOG", "info,dockhand::access=off");
        let dockhand = Dockhand {
            http: published(&http),
            admin: published(&admin),
            process: Process::spawn(&mut command),
        };
        assert_eventually!(
            dockhand
                .admin_get("/readyz")
                .is_some_and(|r| r.status == 200),
            Duration::from_secs(20),
            "dockhand never became ready:\n{}",
            dockhand.log()
        );
        dockhand
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn admin_get(&self, path: &str) -> Option<Response> {
        http::get(self.admin, "admin", path).ok()
    }

    /// The status of a GET through the proxy, or 0 when the request failed.
    pub fn status(&self, host: &str) -> u16 {
        http::get(self.http, host, "/").map_or(0, |r| r.status.as_u16())
    }

    /// Which task container (the echo's hostname, its short container ID) answered a GET.
    pub fn served_by(&self, host: &str) -> Option<String> {
        let response = http::get(self.http, host, "/").ok()?;
        (response.status == 200)
            .then(|| response.echo().ok().map(|e| e.hostname))
            .flatten()
    }

    /// The backends `/api/routes` lists for `host`, over all its paths.
    pub fn backends(&self, host: &str) -> Vec<Value> {
        let Some(routes) = self
            .admin_get("/api/routes")
            .and_then(|r| r.json::<Value>().ok())
        else {
            return Vec::new();
        };
        let vhosts = routes["table"]["vhosts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        vhosts
            .iter()
            .filter(|v| v["host"] == host)
            .flat_map(|v| v["paths"].as_array().cloned().unwrap_or_default())
            .flat_map(|p| p["backends"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The task IDs behind `host` in `/api/routes`.
    pub fn routed_tasks(&self, host: &str) -> BTreeSet<String> {
        self.backends(host)
            .iter()
            .filter_map(|b| b["swarm"]["task"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until `host` is routed to exactly the running tasks of `service`.
    pub fn wait_routed(&self, cluster: &Cluster, host: &str, service: &str, replicas: usize) {
        let mut last = (BTreeSet::new(), BTreeSet::new());
        let start = Instant::now();
        while start.elapsed() < CONVERGE {
            let running: BTreeSet<String> = cluster
                .running_tasks(service)
                .into_iter()
                .map(|(task, _, _)| task)
                .collect();
            let routed = self.routed_tasks(host);
            if running.len() == replicas && routed == running {
                return;
            }
            last = (running, routed);
            std::thread::sleep(Duration::from_millis(100));
        }
        let tasks = cluster
            .swarm
            .manager()
            .try_docker(&["service", "ps", "--no-trunc", service])
            .unwrap_or_else(|e| e.to_string());
        panic!(
            "{host}: never routed to the {replicas} running tasks of {service}: \
             running {:?}, routed {:?}\ntasks:\n{tasks}\ndockhand:\n{}",
            last.0,
            last.1,
            self.log()
        );
    }
}

/// Steady load: `clients` threads sending GETs through the proxy back to back, each on a fresh
/// connection, recording every answer that is not a 200 with when it happened.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    slow: Arc<AtomicU64>,
    started: Instant,
    failures: Arc<Mutex<Vec<(Duration, String)>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What a [`Load`] saw: successes, and each failure with its time since the load started.
#[derive(Debug)]
pub struct LoadReport {
    pub ok: u64,
    /// Successes that took over a second (a retry after a connect timeout, for instance).
    pub slow: u64,
    pub failures: Vec<(Duration, String)>,
}

impl Load {
    pub fn start(proxy: &Dockhand, host: &str, clients: usize, timeout: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let slow = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, slow, failures, addr, host) = (
                    stop.clone(),
                    ok.clone(),
                    slow.clone(),
                    failures.clone(),
                    proxy.http,
                    host.to_owned(),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let sent = started.elapsed();
                        let failure = match http::Request::get(addr, "/")
                            .host(&host)
                            .timeout(timeout)
                            .send()
                        {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                if started.elapsed() - sent > Duration::from_secs(1) {
                                    slow.fetch_add(1, Ordering::Relaxed);
                                }
                                continue;
                            }
                            Ok(r) => format!("status {}: {}", r.status, r.text()),
                            Err(e) => e.to_string(),
                        };
                        failures
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((sent, failure));
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            slow,
            started,
            failures,
            threads,
        }
    }

    /// Requests answered 200 so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Time since the load started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until `more` further requests have succeeded (the load really ran across a change).
    pub fn wait_for_more(&self, more: u64) {
        let target = self.ok() + more;
        assert_eventually!(
            self.ok() >= target,
            Duration::from_secs(30),
            "load stalled at {}",
            self.ok()
        );
    }

    pub fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        let failures = std::mem::take(
            &mut *self
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        LoadReport {
            ok: self.ok.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
            failures,
        }
    }
}

/// Panics unless the load ran and every request succeeded.
pub fn assert_nothing_lost(report: &LoadReport) {
    assert!(report.ok > 0, "the load ran");
    assert!(
        report.failures.is_empty(),
        "{} of {} requests failed: {:?}",
        report.failures.len(),
        report.ok + report.failures.len() as u64,
        &report.failures[..report.failures.len().min(5)]
    );
}
