//! Describing a container before it starts: `backend().vhost("a.test").network(&net).start()`.

use std::time::Duration;

use crate::docker::{docker, label_args, sweep_leftovers, unique_name, DockerError};
use crate::echo::READY_LINE;
use crate::images::backend_image;
use crate::network::Network;

use super::Container;

/// Starts describing an echo-backend container (image from [`backend_image`]): it is ready once
/// every port listens, and it has no Docker healthcheck unless [`ContainerBuilder::healthcheck`].
pub fn backend() -> ContainerBuilder {
    let mut builder = container(backend_image());
    builder.echo = true;
    builder.ready_log = Some(READY_LINE.to_owned());
    builder
}

/// Starts describing a container of any local image (for instance
/// [`proxy_image`](crate::images::proxy_image)); it is ready once it runs, or once its logs show
/// the line given to [`ContainerBuilder::wait_for_log`].
pub fn container(image: &str) -> ContainerBuilder {
    ContainerBuilder {
        image: image.to_owned(),
        name: None,
        echo: false,
        env: Vec::new(),
        labels: Vec::new(),
        vhosts: Vec::new(),
        ports: Vec::new(),
        exposed: Vec::new(),
        published: Vec::new(),
        volumes: Vec::new(),
        networks: Vec::new(),
        healthcheck: None,
        ready_log: None,
        docker_args: Vec::new(),
        args: Vec::new(),
    }
}

/// Options of a container to start; [`ContainerBuilder::start`] runs it.
#[derive(Clone, Debug)]
pub struct ContainerBuilder {
    image: String,
    name: Option<String>,
    echo: bool,
    env: Vec<(String, String)>,
    labels: Vec<(String, String)>,
    vhosts: Vec<String>,
    ports: Vec<u16>,
    exposed: Vec<u16>,
    published: Vec<u16>,
    volumes: Vec<(String, String)>,
    networks: Vec<Network>,
    healthcheck: Option<Duration>,
    ready_log: Option<String>,
    docker_args: Vec<String>,
    args: Vec<String>,
}

impl ContainerBuilder {
    /// A readable part of the container name (the full name also carries the test's name and a
    /// unique suffix). For a backend it is also `BACKEND_NAME`, which the echo reports and sends
    /// as `X-Backend`. Default: none (a backend then reports its hostname, the short id).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Adds a name to `VIRTUAL_HOST` (several calls give a comma list). Default: none.
    pub fn vhost(mut self, host: &str) -> Self {
        self.vhosts.push(host.to_owned());
        self
    }

    /// Sets an environment variable (a later call for the same key wins). Default: none.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds a container label. Default: only the kit's own labels.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A port the backend listens on (`LISTEN_PORTS`), also exposed. Several calls give several
    /// ports. Default: the backend listens on 80 and exposes nothing. For other images this
    /// only exposes the port.
    pub fn port(mut self, port: u16) -> Self {
        self.ports.push(port);
        self
    }

    /// Exposes a port without listening on it (`--expose`). Default: none.
    pub fn expose(mut self, port: u16) -> Self {
        self.exposed.push(port);
        self
    }

    /// Publishes a container port on a random host port of 127.0.0.1 (see
    /// [`Container::host_addr`]). Default: none.
    pub fn publish(mut self, port: u16) -> Self {
        self.published.push(port);
        self
    }

    /// Bind-mounts `host` at `container` (e.g. the Docker socket for the proxy). Default: none.
    pub fn volume(mut self, host: &str, container: &str) -> Self {
        self.volumes.push((host.to_owned(), container.to_owned()));
        self
    }

    /// Attaches the container to `network` before it starts (several calls attach several; the
    /// first is the one given to `docker create`). Default: Docker's default bridge.
    pub fn network(mut self, network: &Network) -> Self {
        self.networks.push(network.clone());
        self
    }

    /// Turns on the image's Docker HEALTHCHECK (for the backend: `echo-backend healthcheck`) with
    /// this interval, one retry and a 2 s timeout. Default: no healthcheck.
    pub fn healthcheck(mut self, interval: Duration) -> Self {
        self.healthcheck = Some(interval);
        self
    }

    /// Counts the container ready only once its logs contain `line` (on every start). Default:
    /// the backend's ready line; none for other images.
    pub fn wait_for_log(mut self, line: &str) -> Self {
        self.ready_log = Some(line.to_owned());
        self
    }

    /// Passes a raw option to `docker create` (e.g. `--hostname=x`), for what the builder lacks.
    pub fn docker_arg(mut self, arg: &str) -> Self {
        self.docker_args.push(arg.to_owned());
        self
    }

    /// Appends an argument to the image's entrypoint (the container's command). Default: none.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Creates and starts the container, and waits until it is ready (see [`backend`] and
    /// [`container`]).
    ///
    /// # Panics
    /// If Docker refuses or the container exits or is not ready within
    /// [`STARTUP_TIMEOUT`](super::STARTUP_TIMEOUT); the message names the command and carries
    /// the container's logs.
    pub fn start(self) -> Container {
        self.try_start()
            .unwrap_or_else(|e| panic!("starting a container: {e}"))
    }

    /// Like [`ContainerBuilder::start`], returning the failure instead of panicking.
    ///
    /// # Errors
    /// The failing `docker` command, or a container that exited or never became ready.
    pub fn try_start(self) -> Result<Container, DockerError> {
        sweep_leftovers();
        let name = unique_name(self.name.as_deref());
        let id = docker(self.create_args(&name))?;
        let mut networks = self.networks.iter();
        let first = networks.next().cloned();
        // From here on the container exists: `Container`'s Drop removes it if a step fails.
        let container = Container::new(id, name, self.ready_log.clone(), first);
        for network in networks {
            container.connect(network);
        }
        container.start_and_wait(0)?;
        Ok(container)
    }

    fn create_args(&self, name: &str) -> Vec<String> {
        let mut args = vec!["create".to_owned(), "--name".to_owned(), name.to_owned()];
        args.extend(label_args());
        let mut flag = |flag: &str, value: String| {
            args.push(flag.to_owned());
            args.push(value);
        };
        for (key, value) in &self.labels {
            flag("--label", format!("{key}={value}"));
        }
        if let Some(network) = self.networks.first() {
            flag("--network", network.name().to_owned());
        }
        for (key, value) in self.environment() {
            flag("--env", format!("{key}={value}"));
        }
        for port in self.ports.iter().chain(&self.exposed) {
            flag("--expose", port.to_string());
        }
        for port in &self.published {
            flag("--publish", format!("127.0.0.1::{port}"));
        }
        for (host, container) in &self.volumes {
            flag("--volume", format!("{host}:{container}"));
        }
        match self.healthcheck {
            Some(interval) => {
                flag(
                    "--health-interval",
                    format!("{}ms", interval.as_millis().max(1)),
                );
                flag("--health-timeout", "2s".to_owned());
                flag("--health-retries", "1".to_owned());
            }
            None if self.echo => args.push("--no-healthcheck".to_owned()),
            None => {}
        }
        args.extend(self.docker_args.iter().cloned());
        args.push(self.image.clone());
        args.extend(self.args.iter().cloned());
        args
    }

    /// The derived variables first, so that an explicit [`ContainerBuilder::env`] wins.
    fn environment(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if !self.vhosts.is_empty() {
            env.push(("VIRTUAL_HOST".to_owned(), self.vhosts.join(",")));
        }
        if self.echo {
            if !self.ports.is_empty() {
                let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
                env.push(("LISTEN_PORTS".to_owned(), ports.join(",")));
            }
            if let Some(name) = &self.name {
                env.push(("BACKEND_NAME".to_owned(), name.clone()));
            }
        }
        env.extend(self.env.iter().cloned());
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_options_become_docker_create_flags() {
        let mut builder = container("img:1")
            .name("web")
            .vhost("a.test")
            .vhost("b.test")
            .port(81)
            .port(82)
            .expose(90)
            .publish(81)
            .env("VIRTUAL_PORT", "82")
            .label("k", "v")
            .arg("--tls-port")
            .arg("8443");
        builder.echo = true;
        let args = builder.create_args("dh-x");
        let joined = args.join(" ");
        for expected in [
            "create --name dh-x",
            "--label dockhand.test=1",
            "--label k=v",
            "--env VIRTUAL_HOST=a.test,b.test",
            "--env LISTEN_PORTS=81,82",
            "--env BACKEND_NAME=web",
            "--env VIRTUAL_PORT=82",
            "--expose 81 --expose 82 --expose 90",
            "--publish 127.0.0.1::81",
            "--no-healthcheck",
            "img:1 --tls-port 8443",
        ] {
            assert!(
                joined.contains(expected),
                "{expected:?} missing in {joined}"
            );
        }
        assert!(joined.ends_with("img:1 --tls-port 8443"), "{joined}");
    }

    #[test]
    fn explicit_env_comes_after_derived_env() {
        let mut builder = container("img").name("web").env("BACKEND_NAME", "other");
        builder.echo = true;
        let env = builder.environment();
        let last = env
            .iter()
            .rev()
            .find(|(k, _)| k == "BACKEND_NAME")
            .map(|(_, v)| v.as_str());
        assert_eq!(last, Some("other"));
    }

    #[test]
    fn healthcheck_sets_interval_and_keeps_the_image_command() {
        let builder = container("img").healthcheck(Duration::from_millis(250));
        let joined = builder.create_args("n").join(" ");
        assert!(joined.contains("--health-interval 250ms"), "{joined}");
        assert!(!joined.contains("--health-cmd"), "{joined}");
        assert!(!joined.contains("--no-healthcheck"), "{joined}");
    }
}
