//! `dockhand()`: a dockhand under test, on the host or in a container, plus small helpers.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dockhand_testkit::http::{self, Response};
use dockhand_testkit::{
    assert_eventually, container, free_port, images, Container, Network, Process,
};

pub use dockhand_testkit::{backend, network, require_docker};

/// The binary cargo built for these tests; static, so it also runs as `FROM scratch`.
pub const DOCKHAND: &str = env!("CARGO_BIN_EXE_dockhand");

/// How long a route change may take to show: the issue promises well under a second.
pub const PROPAGATION: Duration = Duration::from_secs(1);

/// A name no other test (or earlier run) uses, for vhosts: `<what>.<unique>.test`.
pub fn unique(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{what}.p{}n{}.test",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Starts describing a dockhand.
pub fn dockhand() -> DockhandBuilder {
    DockhandBuilder {
        env: Vec::new(),
        networks: Vec::new(),
        in_container: false,
    }
}

pub struct DockhandBuilder {
    env: Vec<(String, String)>,
    networks: Vec<Network>,
    in_container: bool,
}

/// A running dockhand; stopped and removed on drop.
pub struct Dockhand {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub admin: SocketAddr,
    process: Option<Process>,
    container: Option<Container>,
}

impl DockhandBuilder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Serves certificates from `dir`, checked every 100 ms.
    pub fn certs(self, dir: &Path) -> Self {
        self.env("DOCKHAND_CERTS_DIR", &dir.to_string_lossy())
            .env("DOCKHAND_CERTS_POLL_INTERVAL", "100ms")
    }

    /// Runs dockhand as a container on `network`, with the Docker socket mounted.
    pub fn in_container(mut self, network: &Network) -> Self {
        self.in_container = true;
        self.networks.push(network.clone());
        self
    }

    /// Starts dockhand and waits until it is ready (first sync with Docker done).
    pub fn start(self) -> Dockhand {
        let dockhand = self.launch();
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

    /// Starts dockhand and waits only until its admin listener answers.
    pub fn launch(self) -> Dockhand {
        let dockhand = if self.in_container {
            self.start_container()
        } else {
            self.start_process()
        };
        assert_eventually!(
            dockhand
                .admin_get("/healthz")
                .is_some_and(|r| r.status == 200),
            Duration::from_secs(20),
            "dockhand's admin listener never answered:\n{}",
            dockhand.log()
        );
        dockhand
    }

    fn start_process(self) -> Dockhand {
        let (http, https, admin) = (free_port(), free_port(), free_port());
        let mut command = Command::new(DOCKHAND);
        command
            .env_clear()
            .args([
                "--http-port",
                &http.to_string(),
                "--https-port",
                &https.to_string(),
            ])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            // Nothing of the host's /etc/nginx leaks into a test unless it asks for a folder.
            .env("DOCKHAND_CERTS_DIR", "/nonexistent/dockhand-test-certs")
            .env(
                "DOCKHAND_HTPASSWD_DIR",
                "/nonexistent/dockhand-test-htpasswd",
            )
            .env(
                "DOCKHAND_ACME_WEBROOT",
                "/nonexistent/dockhand-test-webroot",
            )
            .env("DOCKHAND_LOG", "info,dockhand::access=off")
            .envs(std::env::var("DOCKER_HOST").map(|h| ("DOCKER_HOST".to_owned(), h)))
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        Dockhand {
            http: SocketAddr::from(([127, 0, 0, 1], http)),
            https: SocketAddr::from(([127, 0, 0, 1], https)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin)),
            process: Some(Process::spawn(&mut command)),
            container: None,
        }
    }

    fn start_container(self) -> Dockhand {
        let image = images::proxy_image(Path::new(DOCKHAND));
        let mut builder = container(&image)
            .name("dockhand")
            .volume("/var/run/docker.sock", "/var/run/docker.sock")
            .publish(80)
            .publish(443)
            .publish(9180)
            .wait_for_log("Watching docker events")
            .env("DOCKHAND_LOG", "info,dockhand::access=off");
        for network in &self.networks {
            builder = builder.network(network);
        }
        for (key, value) in &self.env {
            builder = builder.env(key, value);
        }
        let container = builder.start();
        Dockhand {
            http: container.host_addr(80),
            https: container.host_addr(443),
            admin: container.host_addr(9180),
            process: None,
            container: Some(container),
        }
    }
}

impl Dockhand {
    /// GET through the proxy with this `Host`.
    pub fn get(&self, host: &str, path: &str) -> Response {
        http::get(self.http, host, path).unwrap_or_else(|e| panic!("GET http://{host}{path}: {e}"))
    }

    /// GET over HTTPS (SNI and Host = `host`, HTTP/2 offered).
    pub fn get_tls(&self, host: &str, path: &str) -> Result<Response, http::HttpError> {
        http::Request::get(self.https, path)
            .host(host)
            .https()
            .send()
    }

    /// The status of a GET over HTTPS, or 0 when the request (or handshake) failed.
    pub fn status_tls(&self, host: &str, path: &str) -> u16 {
        self.get_tls(host, path).map_or(0, |r| r.status.as_u16())
    }

    /// The status of a GET through the proxy, or 0 when the request failed.
    pub fn status(&self, host: &str, path: &str) -> u16 {
        http::get(self.http, host, path).map_or(0, |r| r.status.as_u16())
    }

    /// Which backend (`BACKEND_NAME`) answered a GET.
    pub fn served_by(&self, host: &str, path: &str) -> Option<String> {
        let response = http::get(self.http, host, path).ok()?;
        (response.status == 200)
            .then(|| response.echo().ok().map(|e| e.name))
            .flatten()
    }

    pub fn admin_get(&self, path: &str) -> Option<Response> {
        http::get(self.admin, "admin", path).ok()
    }

    pub fn metrics(&self) -> String {
        self.admin_get("/metrics")
            .map(|r| r.text())
            .unwrap_or_default()
    }

    pub fn routes(&self) -> serde_json::Value {
        let response = self
            .admin_get("/api/routes")
            .expect("admin answers /api/routes");
        response.json().expect("/api/routes is JSON")
    }

    /// Everything dockhand logged so far.
    pub fn log(&self) -> String {
        match (&self.process, &self.container) {
            (Some(process), _) => process.log(),
            (_, Some(container)) => container.logs(),
            _ => String::new(),
        }
    }

    /// The host process, for signals and its exit status.
    pub fn process(&mut self) -> &mut Process {
        self.process
            .as_mut()
            .expect("this dockhand runs as a host process")
    }

    pub fn container(&self) -> &Container {
        self.container
            .as_ref()
            .expect("this dockhand runs in a container")
    }

    /// The backends `/api/routes` lists for `host`, over all its paths.
    pub fn backends(&self, host: &str) -> Vec<serde_json::Value> {
        let routes = self.routes();
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

    /// Waits until `host` answers `status` through the proxy.
    pub fn wait_status(&self, host: &str, path: &str, status: u16) {
        assert_eventually!(
            self.status(host, path) == status,
            Duration::from_secs(10),
            "{host}{path} never answered {status} (last: {}):\n{}",
            self.status(host, path),
            self.log()
        );
    }
}

/// A compose file with one `web` service of echo backends for `host` (health check off, so the
/// replicas are routed as soon as they run).
pub fn compose_web(host: &str) -> String {
    format!(
        "services:\n  web:\n    image: {}\n    environment:\n      VIRTUAL_HOST: {host}\n    \
         expose:\n      - \"80\"\n    healthcheck:\n      disable: true\n",
        images::backend_image()
    )
}

/// A `docker-compose` project, brought down on drop.
pub struct Compose {
    project: String,
    file: std::path::PathBuf,
}

impl Compose {
    /// Starts `yaml` as a project with a unique name.
    pub fn up(yaml: &str, extra: &[&str]) -> Compose {
        static N: AtomicU64 = AtomicU64::new(0);
        let project = format!(
            "dhtest{}n{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let file = std::env::temp_dir().join(format!("{project}.yaml"));
        std::fs::write(&file, yaml).expect("writing the compose file");
        let compose = Compose { project, file };
        compose.run(&[&["up", "-d"], extra].concat());
        compose
    }

    pub fn run(&self, args: &[&str]) {
        let file = self.file.to_string_lossy();
        let base = ["-p", self.project.as_str(), "-f", &file];
        let output = Command::new("docker-compose")
            .args(base.iter().chain(args))
            .output()
            .expect("docker-compose runs");
        assert!(
            output.status.success(),
            "docker-compose {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let file = self.file.to_string_lossy().into_owned();
        let _ = Command::new("docker-compose")
            .args([
                "-p",
                &self.project,
                "-f",
                &file,
                "down",
                "-t",
                "1",
                "--remove-orphans",
            ])
            .output();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Steady load: `clients` threads sending GETs through the proxy back to back, each on a fresh
/// connection, counting every answer that is not a 200.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
}

/// What a [`Load`] saw.
#[derive(Debug)]
pub struct LoadReport {
    pub ok: u64,
    pub failures: Vec<String>,
}

impl Load {
    pub fn start(proxy: &Dockhand, host: &str, clients: usize) -> Load {
        Load::start_at(proxy.http, host, clients)
    }

    /// Load on the proxy listening at `addr` (one not started by [`dockhand`], e.g. in a
    /// compose stack).
    pub fn start_at(addr: SocketAddr, host: &str, clients: usize) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ok = std::sync::Arc::new(AtomicU64::new(0));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, host) = (stop.clone(), ok.clone(), host.to_owned());
                std::thread::spawn(move || {
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match http::get(addr, &host, "/") {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => failures.push(format!("status {}: {}", r.status, r.text())),
                            Err(e) => failures.push(e.to_string()),
                        }
                    }
                    failures
                })
            })
            .collect();
        Load { stop, ok, threads }
    }

    /// Requests answered 200 so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until `more` further requests have succeeded (the load really ran across a change).
    pub fn wait_for_more(&self, more: u64) {
        let target = self.ok() + more;
        assert_eventually!(
            self.ok() >= target,
            Duration::from_secs(20),
            "load stalled at {}",
            self.ok()
        );
    }

    pub fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_default())
            .collect();
        LoadReport {
            ok: self.ok.load(Ordering::Relaxed),
            failures,
        }
    }
}
