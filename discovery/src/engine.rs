//! Connecting to the Docker engine, and finding out which networks dockhand can reach.

use std::collections::BTreeSet;
use std::path::Path;

use bollard::errors::Error as DockerError;
use bollard::Docker;
use tracing::{info, warn};

use crate::contract::Reach;
use crate::Config;

pub(crate) mod tls;

/// Request timeout towards the engine (the event stream itself has none once it is open).
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Why talking to the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `DOCKER_HOST` is neither `unix://` nor `tcp://`/`http://`.
    #[error(
        "DOCKER_HOST={0:?} is not supported: use unix:///path/to/docker.sock or tcp://host:port"
    )]
    UnsupportedHost(String),
    /// The engine could not be reached or answered with an error.
    #[error("docker engine: {0}")]
    Docker(#[from] DockerError),
    /// A request made outside bollard (`GET /tasks`) failed or answered with an error.
    #[error("docker engine: {0}")]
    Request(String),
    /// The engine is not a Swarm manager, so the Swarm provider has nothing to poll.
    #[error("the docker engine is not a swarm manager")]
    NotManager,
    /// `DOCKER_TLS_VERIFY` is set and the files in `DOCKER_CERT_PATH` cannot be used.
    #[error("docker engine TLS: {0}")]
    Tls(String),
    /// The event stream ended (the engine stopped or the connection closed).
    #[error("docker event stream ended")]
    StreamEnded,
}

/// Checks `DOCKER_HOST` before anything connects, so a typo fails at start with a clear message.
pub fn validate_host(host: &str) -> Result<(), EngineError> {
    let supported = ["unix://", "tcp://", "http://"];
    if supported
        .iter()
        .any(|s| host.starts_with(s) && host.len() > s.len())
    {
        Ok(())
    } else {
        Err(EngineError::UnsupportedHost(host.to_owned()))
    }
}

/// The `docker ps` filter names the engine accepts on `GET /containers/json`.
const CONTAINER_FILTERS: [&str; 15] = [
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];

/// `DOCKER_CONTAINER_FILTERS`, as docker-gen's `-container-filter` takes them: comma-separated
/// `name=value` pairs (`label=com.example.proxied`, `network=front,label=env=prod`), entries
/// trimmed and empty ones dropped. The value may itself hold `=` (a label's value). The same
/// name twice matches either value, different names must all match, as `docker ps` does.
pub fn parse_container_filters(raw: &str) -> Result<Vec<(String, String)>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (name, value) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?} is not a name=value filter"))?;
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if !CONTAINER_FILTERS.contains(&name.as_str()) {
                return Err(format!(
                    "unknown filter {name:?}; docker ps filters: {}",
                    CONTAINER_FILTERS.join(", ")
                ));
            }
            if value.is_empty() {
                return Err(format!("filter {name:?} has no value"));
            }
            Ok((name, value.to_owned()))
        })
        .collect()
}

/// The list filters for running containers that match `extra` (`DOCKER_CONTAINER_FILTERS`).
pub(crate) fn running_filters(
    extra: &[(String, String)],
) -> std::collections::HashMap<String, Vec<String>> {
    status_filters(&["running"], extra)
}

/// The list filters for containers in any of `statuses` that match `extra`.
pub(crate) fn status_filters(
    statuses: &[&str],
    extra: &[(String, String)],
) -> std::collections::HashMap<String, Vec<String>> {
    let statuses: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
    let mut filters = std::collections::HashMap::from([("status".to_owned(), statuses)]);
    for (name, value) in extra {
        filters.entry(name.clone()).or_default().push(value.clone());
    }
    filters
}

/// Connects and negotiates the API version, so engines older than bollard's default work.
/// With `config.docker_tls`, a `tcp://` engine is reached over TLS ([`tls`]).
pub(crate) async fn connect(config: &Config) -> Result<Docker, EngineError> {
    let host = config.docker_host.as_str();
    validate_host(host)?;
    let docker = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)?
    } else if let Some(dir) = &config.docker_tls {
        let tls = tls::EngineTls::load(dir)?;
        let addr = authority(host)?.to_owned();
        let client_addr = format!("https://{addr}");
        // bollard's own `ssl` feature would also trust the system's roots and drop a client key
        // it cannot read without a word; this transport trusts `ca.pem` alone and says why.
        let transport = move |request| tls_request(addr.clone(), tls.clone(), request);
        Docker::connect_with_custom_transport(
            transport,
            Some(client_addr),
            REQUEST_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )?
    } else {
        // bollard wants http:// for a plain TCP endpoint; tcp:// is the Docker CLI's spelling.
        let http = host.replacen("tcp://", "http://", 1);
        Docker::connect_with_http(&http, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)?
    };
    Ok(docker.negotiate_version().await?)
}

/// Checks that `dir` (`DOCKER_CERT_PATH`) holds a usable `ca.pem`, `cert.pem` and `key.pem`,
/// so that a missing or broken file stops dockhand at start, named.
pub fn validate_docker_tls(dir: &Path) -> Result<(), EngineError> {
    tls::EngineTls::load(dir).map(drop)
}

/// `host:port` of a `tcp://` or `http://` `DOCKER_HOST`.
pub(crate) fn authority(host: &str) -> Result<&str, EngineError> {
    host.strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
        .map(|a| a.trim_end_matches('/'))
        .ok_or_else(|| EngineError::UnsupportedHost(host.to_owned()))
}

/// One bollard request on a fresh TLS connection (bollard's own TLS client keeps none idle
/// either); the connection lives as long as the response body, so the event stream works.
async fn tls_request(
    authority: String,
    tls: tls::EngineTls,
    request: bollard::BollardRequest,
) -> Result<http::Response<hyper::body::Incoming>, DockerError> {
    let stream = tls::dial(&authority, Some(&tls)).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let (mut parts, body) = request.into_parts();
    // Origin form on the wire, as bollard's own clients send it.
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    parts.uri = path.parse()?;
    if let Ok(value) = http::HeaderValue::from_str(&authority) {
        parts.headers.entry(http::header::HOST).or_insert(value);
    }
    Ok(sender
        .send_request(http::Request::from_parts(parts, body))
        .await?)
}

/// Where dockhand runs, as far as routing is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Whereabouts {
    /// dockhand's own container ID, when it runs in one that the engine knows.
    pub own_id: Option<String>,
    /// Which container networks dockhand can open connections to.
    pub reach: Reach,
    /// The host's address from dockhand's container, for `host`-network containers: the
    /// gateway of its first network by name that is not internal.
    pub host_gateway: Option<std::net::IpAddr>,
}

/// Finds dockhand's own container (by `configured` name/ID, else by detection) and its networks.
///
/// On the host, or in a container on the host network, every network is reachable (as with
/// nginx-proxy). In a container that cannot be identified, dockhand warns and assumes every
/// network, since refusing to route at all would be worse than a 502 on an unreachable one.
pub(crate) async fn whereabouts(
    docker: &Docker,
    configured: Option<&str>,
) -> Result<Whereabouts, EngineError> {
    let Some(candidate) = configured.map(str::to_owned).or_else(detect_own_id) else {
        return Ok(Whereabouts {
            own_id: None,
            reach: Reach::AnyNetwork,
            host_gateway: None,
        });
    };
    let inspect = match docker.inspect_container(&candidate, None).await {
        Ok(inspect) => inspect,
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            warn!(
                container = %candidate,
                "dockhand's own container was not found on this engine; treating every network as \
                 reachable (set DOCKHAND_CONTAINER to dockhand's container name)"
            );
            return Ok(Whereabouts {
                own_id: None,
                reach: Reach::AnyNetwork,
                host_gateway: None,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let endpoints: std::collections::BTreeMap<String, Option<std::net::IpAddr>> = inspect
        .network_settings
        .and_then(|s| s.networks)
        .map(|n| {
            n.into_iter()
                .map(|(name, e)| (name, e.gateway.and_then(|g| g.parse().ok())))
                .collect()
        })
        .unwrap_or_default();
    let networks: BTreeSet<String> = endpoints.keys().cloned().collect();
    let host_gateway = host_gateway(docker, &endpoints).await;
    let reach = if networks.contains("host") {
        Reach::AnyNetwork
    } else {
        Reach::Networks(networks)
    };
    info!(container = ?inspect.name, id = ?inspect.id, ?reach, "found dockhand's own container");
    Ok(Whereabouts {
        own_id: inspect.id,
        reach,
        host_gateway,
    })
}

/// The gateway of the first of dockhand's networks, by name, that is not internal: how its
/// container reaches the host (nginx-proxy's address for `network_mode: host` backends).
async fn host_gateway(
    docker: &Docker,
    endpoints: &std::collections::BTreeMap<String, Option<std::net::IpAddr>>,
) -> Option<std::net::IpAddr> {
    for (name, gateway) in endpoints {
        let Some(gateway) = gateway else { continue };
        let internal = docker
            .inspect_network(
                name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .ok()
            .and_then(|n| n.internal)
            .unwrap_or(false);
        if !internal {
            return Some(*gateway);
        }
    }
    None
}

/// Finds the ID of the container this process runs in, if any.
///
/// Docker bind-mounts `/etc/hostname` from `/var/lib/docker/containers/<id>/hostname`, which is
/// visible in mountinfo on cgroup v1 and v2 alike; cgroup v1 paths are a second source. On the host
/// neither matches: container mounts show up there only under their own paths, not /etc/hostname.
fn detect_own_id() -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Some(id) = id_from_mountinfo(&mountinfo) {
        return Some(id);
    }
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    if let Some(id) = id_from_cgroup(&cgroup) {
        return Some(id);
    }
    // Docker sets the hostname to the short ID; the engine resolves prefixes.
    if Path::new("/.dockerenv").exists() {
        return std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty());
    }
    None
}

fn id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        if mount_point != "/etc/hostname" {
            return None;
        }
        root.split('/')
            .find(|part| is_container_id(part))
            .map(str::to_owned)
    })
}

fn id_from_cgroup(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        line.rsplit(['/', '-', '.'])
            .find(|part| is_container_id(part))
            .map(str::to_owned)
    })
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e8a1c0b2d9e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";

    #[test]
    fn finds_id_from_the_hostname_bind_mount() {
        let mountinfo = format!(
            "1200 1100 0:50 / / rw,relatime - overlay overlay rw\n\
             1300 1200 254:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(id_from_mountinfo(&mountinfo).as_deref(), Some(ID));
    }

    #[test]
    fn ignores_container_mounts_seen_from_the_host() {
        let mountinfo =
            format!("500 30 0:60 / /var/lib/docker/containers/{ID}/mounts/shm rw - tmpfs shm rw\n");
        assert_eq!(id_from_mountinfo(&mountinfo), None);
    }

    #[test]
    fn finds_id_in_cgroup_v1_and_systemd_paths() {
        assert_eq!(
            id_from_cgroup(&format!("12:memory:/docker/{ID}\n")).as_deref(),
            Some(ID)
        );
        let systemd = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(id_from_cgroup(&systemd).as_deref(), Some(ID));
        assert_eq!(id_from_cgroup("0::/user.slice/session-2.scope\n"), None);
    }

    #[test]
    fn container_filters_are_docker_ps_filters() {
        let parsed =
            parse_container_filters(" label=com.example.proxied , network=front,,label=env=prod ")
                .expect("valid");
        assert_eq!(
            parsed,
            [
                ("label".to_owned(), "com.example.proxied".to_owned()),
                ("network".to_owned(), "front".to_owned()),
                ("label".to_owned(), "env=prod".to_owned()),
            ]
        );
        assert_eq!(parse_container_filters("").unwrap(), []);
        assert!(parse_container_filters("label")
            .unwrap_err()
            .contains("name=value"));
        assert!(parse_container_filters("colour=red")
            .unwrap_err()
            .contains("unknown filter"));
        assert!(parse_container_filters("label=")
            .unwrap_err()
            .contains("no value"));
        let filters = running_filters(&parsed);
        assert_eq!(filters["status"], ["running"]);
        assert_eq!(filters["label"], ["com.example.proxied", "env=prod"]);
    }

    #[test]
    fn docker_host_schemes() {
        assert!(validate_host("unix:///var/run/docker.sock").is_ok());
        assert!(validate_host("tcp://socket-proxy:2375").is_ok());
        assert!(validate_host("ssh://me@host").is_err());
        assert!(validate_host("tcp://").is_err());
    }
}
