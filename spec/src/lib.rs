//! Route descriptions: what a provider (the Docker containers, later Swarm services) says should
//! be served, and what the data plane's publisher turns into its route table.
//!
//! Plain data with no behaviour beyond defaults, so that providers depend on this leaf crate
//! and never on the data plane. Providers validate what they put here (host and path patterns
//! parse, ports are numbers): building a table from a description cannot fail, and a pattern
//! that still does not parse costs its own vhost or path only.
//!
//! A provider sends descriptions through [`Publish`]: everything it serves
//! ([`Publication::Full`]) or what changed ([`Publication::Changes`]), always about its own
//! backends only.

mod publish;

use std::net::SocketAddr;

use serde::Serialize;

pub use publish::{ProviderId, Publication, Publish, VhostUpdate};

/// Every virtual host to serve, plus the proxy-wide fallback.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableSpec {
    /// One entry per distinct host name (as written, e.g. `*.example.com`, `~^api\.`).
    pub vhosts: Vec<VhostSpec>,
    /// `DEFAULT_HOST`: the vhost that answers requests for unknown hosts. Default: none (503).
    /// A proxy-wide setting: the data plane's publisher holds its own.
    pub default_host: Option<String>,
}

/// One virtual host and its paths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VhostSpec {
    /// The name as written (e.g. in `VIRTUAL_HOST`, lower-cased): exact, `*.x`, `x.*` or `~regex`.
    pub host: String,
    /// The vhost's locations; at least one. Paths are unique within a vhost.
    pub paths: Vec<PathSpec>,
    /// How the vhost is served over HTTP and HTTPS. Default: [`HttpsPolicy::default`].
    pub https: HttpsPolicy,
}

/// A vhost's HTTPS settings, resolved by its provider from its backends' settings and the
/// proxy-wide defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HttpsPolicy {
    /// `HTTPS_METHOD`. Default [`HttpsMethod::Redirect`].
    pub method: HttpsMethod,
    /// `HSTS` header value on HTTPS responses; `None` when `off`. Default `max-age=31536000`.
    pub hsts: Option<String>,
    /// `CERT_NAME`: use `<name>.crt`/`.key` instead of a lookup by host. Default: none.
    pub cert_name: Option<String>,
    /// `TRUST_DEFAULT_CERT` / the `…trust-default-cert` label: may `default.crt` serve this
    /// vhost? Default true.
    pub trust_default_cert: bool,
    /// `NON_GET_REDIRECT` / the `…non-get-redirect` label: redirect status for methods other
    /// than GET and HEAD (301, 307 or 308). Default 301.
    pub non_get_redirect: u16,
    /// `ENABLE_HTTP_ON_MISSING_CERT`: without a usable certificate, `redirect` and `nohttp`
    /// fall back to `noredirect`. Default true.
    pub http_on_missing_cert: bool,
    /// `ACME_HTTP_CHALLENGE_LOCATION`. Default [`AcmeChallenge::Enabled`].
    pub acme_challenge: AcmeChallenge,
    /// The `…http2.enable` label, else `ENABLE_HTTP2`: offer `h2` by ALPN to TLS clients naming
    /// this vhost. Default true.
    pub http2: bool,
    /// `SSL_POLICY`: the TLS versions and cipher suites offered to clients naming this vhost.
    /// Default [`SslPolicy::DEFAULT`] (`Mozilla-Intermediate`).
    pub ssl_policy: SslPolicy,
    /// `SERVER_TOKENS`: `true` (nginx's `on`, the default) sends `Server: dockhand/<version>`,
    /// `false` (`off`) sends `Server: dockhand`.
    pub server_tokens: bool,
    /// `EXTERNAL_HTTP_PORT`: the port clients use for plain HTTP (in redirects to a location's
    /// slash and in `X-Forwarded-Port`). Default: none (the port the client connected to).
    pub external_http_port: Option<u16>,
    /// `EXTERNAL_HTTPS_PORT`: the port clients use for HTTPS (in HTTP → HTTPS redirects and in
    /// `X-Forwarded-Port`). Default: none (the proxy's `HTTPS_PORT`).
    pub external_https_port: Option<u16>,
    /// `DEBUG_ENDPOINT` / the `…debug-endpoint` label: answer `/nginx-proxy-debug` with a JSON
    /// description of the routing. Default false.
    pub debug_endpoint: bool,
    /// The `…ssl_verify_client` label: how a client certificate is asked for when the
    /// certificate folder holds a client CA for this vhost. Default [`VerifyClient::On`].
    pub verify_client: VerifyClient,
}

/// The `…ssl_verify_client` label, nginx's `ssl_verify_client`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyClient {
    /// A certificate from the vhost's CA is required (requests without one get 400).
    #[default]
    On,
    /// A certificate is asked for; one that is sent must verify.
    Optional,
    /// A certificate is asked for and accepted unverified.
    OptionalNoCa,
    /// No certificate is asked for.
    Off,
}

/// An `SSL_POLICY` name nginx-proxy knows: Mozilla's profiles and the AWS ELB policies. The
/// data plane maps each to the TLS versions and cipher suites nearest to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SslPolicy(&'static str);

impl SslPolicy {
    /// nginx-proxy's default, `Mozilla-Intermediate`.
    pub const DEFAULT: SslPolicy = SslPolicy("Mozilla-Intermediate");

    /// Every name nginx-proxy accepts, in its spelling (`AWS-…`; the AWS console's
    /// `ELBSecurityPolicy-…` spelling is accepted by [`SslPolicy::parse`] too).
    pub const NAMES: [&'static str; 22] = [
        "Mozilla-Modern",
        "Mozilla-Intermediate",
        "Mozilla-Old",
        "AWS-TLS13-1-3-2021-06",
        "AWS-TLS13-1-2-2021-06",
        "AWS-TLS13-1-2-Res-2021-06",
        "AWS-TLS13-1-2-Ext1-2021-06",
        "AWS-TLS13-1-2-Ext2-2021-06",
        "AWS-TLS13-1-1-2021-06",
        "AWS-TLS13-1-0-2021-06",
        "AWS-FS-1-2-Res-2020-10",
        "AWS-FS-1-2-Res-2019-08",
        "AWS-FS-1-2-2019-08",
        "AWS-FS-1-1-2019-08",
        "AWS-FS-2018-06",
        "AWS-TLS-1-2-Ext-2018-06",
        "AWS-TLS-1-2-2017-01",
        "AWS-TLS-1-1-2017-01",
        "AWS-2016-08",
        "AWS-2015-05",
        "AWS-2015-03",
        "AWS-2015-02",
    ];

    /// The policy named `raw` (ASCII case-insensitive; `ELBSecurityPolicy-X` means `AWS-X`),
    /// or `None` for a name nginx-proxy does not know.
    pub fn parse(raw: &str) -> Option<SslPolicy> {
        let raw = raw.trim();
        let aws = raw
            .get(..18)
            .filter(|p| p.eq_ignore_ascii_case("ELBSecurityPolicy-"))
            .map(|_| &raw[18..]);
        Self::NAMES
            .iter()
            .find(|name| match aws {
                Some(rest) => name
                    .strip_prefix("AWS-")
                    .is_some_and(|n| n.eq_ignore_ascii_case(rest)),
                None => name.eq_ignore_ascii_case(raw),
            })
            .map(|name| SslPolicy(name))
    }

    /// The name, in nginx-proxy's spelling.
    pub fn name(self) -> &'static str {
        self.0
    }
}

impl Default for SslPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Serialize for SslPolicy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl Default for HttpsPolicy {
    fn default() -> Self {
        Self {
            method: HttpsMethod::Redirect,
            hsts: Some(DEFAULT_HSTS.to_owned()),
            cert_name: None,
            trust_default_cert: true,
            non_get_redirect: 301,
            http_on_missing_cert: true,
            acme_challenge: AcmeChallenge::Enabled,
            http2: true,
            ssl_policy: SslPolicy::DEFAULT,
            server_tokens: true,
            external_http_port: None,
            external_https_port: None,
            debug_endpoint: false,
            verify_client: VerifyClient::On,
        }
    }
}

/// nginx-proxy's default `HSTS` value.
pub const DEFAULT_HSTS: &str = "max-age=31536000";

/// `HTTPS_METHOD`: how plain HTTP and HTTPS relate for a vhost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpsMethod {
    /// HTTP answers with a redirect to HTTPS (the default).
    #[default]
    Redirect,
    /// Both HTTP and HTTPS serve the vhost; no HSTS.
    NoRedirect,
    /// Only HTTPS serves the vhost; HTTP answers 503.
    NoHttp,
    /// Only HTTP serves the vhost; HTTPS falls through to the unknown-host answer.
    NoHttps,
}

/// `ACME_HTTP_CHALLENGE_LOCATION`: serving `/.well-known/acme-challenge/` on port 80.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AcmeChallenge {
    /// Served for the vhost, before any redirect (the default).
    #[default]
    Enabled,
    /// Not served: the request is redirected or proxied like any other.
    Disabled,
    /// Served only when the vhost redirects to HTTPS (nginx-proxy's `legacy`).
    Legacy,
}

/// `NETWORK_ACCESS`: who may use a location.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkAccess {
    /// Anyone (the default).
    #[default]
    External,
    /// Only clients from loopback and private ranges; others get 403.
    Internal,
}

/// One location (`VIRTUAL_PATH`) of a vhost and the backends that serve it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathSpec {
    /// `VIRTUAL_PATH`: a prefix such as `/` or `/api/`, or `~regex`. Default `/`.
    pub path: String,
    /// `VIRTUAL_DEST`: replaces the matched prefix before forwarding. Default: none (unchanged).
    pub dest: Option<String>,
    /// `VIRTUAL_PROTO`. Default [`Proto::Http`].
    pub proto: Proto,
    /// The `…loadbalance` label. Default [`Balance::RoundRobin`].
    pub balance: Balance,
    /// The `…keepalive` label. Default [`Keepalive::Auto`].
    pub keepalive: Keepalive,
    /// `NETWORK_ACCESS`. Default [`NetworkAccess::External`].
    pub network_access: NetworkAccess,
    /// The containers behind this location; may be empty or hold only unreachable ones (→ 502).
    pub backends: Vec<BackendSpec>,
}

/// One backend serving a location: a container, a Swarm task, …
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct BackendSpec {
    /// A readable name for logs, metrics and `/api/routes` (a container name without the
    /// leading `/`, a task name, …).
    pub name: String,
    /// What the provider knows it by (a full container ID, a task ID): unique within the
    /// provider, and changed when the backend is re-created under the same name.
    pub id: String,
    /// `ip:port` to connect to; `None` when dockhand cannot reach the backend (→ 502).
    pub addr: Option<SocketAddr>,
    /// Whether it may get traffic now. Default [`Readiness::Unchecked`] (no check: ready).
    pub readiness: Readiness,
    /// Where it comes from (which provider, which Swarm service, task and node). Default
    /// [`Origin::Container`].
    pub origin: Origin,
}

/// Where a backend comes from, for `/api/routes`, the dashboard and logs; routing ignores it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Origin {
    /// A container seen by the containers provider (the default); its name and ID are the
    /// backend's own.
    #[default]
    Container,
    /// A Swarm task seen by the Swarm provider.
    Task(TaskOrigin),
}

impl Origin {
    /// The provider's name as `/api/routes` shows it: `docker` or `swarm`.
    pub fn provider(&self) -> &'static str {
        match self {
            Origin::Container => "docker",
            Origin::Task(_) => "swarm",
        }
    }

    /// The Swarm task's details; `None` for a container.
    pub fn task(&self) -> Option<&TaskOrigin> {
        match self {
            Origin::Container => None,
            Origin::Task(task) => Some(task),
        }
    }
}

/// The Swarm service, task and node behind a backend. Serialized with the keys `service`,
/// `task`, and `slot` and `node` when known.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TaskOrigin {
    /// The service's name (its ID when it has none).
    pub service: String,
    /// The task ID (also the backend's `id`).
    pub task: String,
    /// The task's slot in a replicated service; `None` for a global service. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<i64>,
    /// The ID of the node the task runs on; `None` while unassigned. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Whether a backend may get traffic, from whatever check its provider knows (a Docker
/// HEALTHCHECK, a Swarm task's health). A backend that is not ready stays in the table (its
/// vhost is known, and answers 503 rather than 502) but gets no request.
///
/// Serialized with Docker's words (`none`, `starting`, `healthy`, `unhealthy`), which
/// `/api/routes` has always shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub enum Readiness {
    /// The backend has no check: it gets traffic as soon as it runs (the default).
    #[default]
    #[serde(rename = "none")]
    Unchecked,
    /// The check has not passed yet: no traffic.
    #[serde(rename = "starting")]
    Starting,
    /// The check passes: traffic.
    #[serde(rename = "healthy")]
    Ready,
    /// The check fails: no traffic.
    #[serde(rename = "unhealthy")]
    Failing,
}

impl Readiness {
    /// May requests go to a backend in this state?
    pub fn routable(self) -> bool {
        matches!(self, Readiness::Unchecked | Readiness::Ready)
    }
}

/// How to talk to the backend (`VIRTUAL_PROTO`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// Plain HTTP/1.1 (the default).
    #[default]
    Http,
    /// HTTP/1.1 over TLS, without certificate verification and without SNI, as nginx does.
    Https,
    /// HTTP/2 with prior knowledge over cleartext (`h2c`, and `grpc`).
    H2c,
}

/// Backend selection (`com.github.nginx-proxy.nginx-proxy.loadbalance`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Round robin across the healthy backends (the default).
    #[default]
    RoundRobin,
    /// The same client IP goes to the same backend (`hash $remote_addr;`, `ip_hash;`).
    ClientIp,
    /// The backend with the fewest requests in flight (`least_conn;`).
    LeastConn,
}

/// Upstream connection reuse (`com.github.nginx-proxy.nginx-proxy.keepalive`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Keepalive {
    /// Pool idle connections (the default; nginx's `auto`).
    #[default]
    Auto,
    /// Pool at most this many idle connections per backend.
    Max(usize),
    /// No reuse: send `Connection: close` to the backend.
    Disabled,
}

#[cfg(test)]
mod tests {
    use super::SslPolicy;

    #[test]
    fn ssl_policy_names_parse_in_both_aws_spellings() {
        assert_eq!(
            SslPolicy::parse("mozilla-modern").unwrap().name(),
            "Mozilla-Modern"
        );
        assert_eq!(
            SslPolicy::parse("ELBSecurityPolicy-TLS13-1-2-Res-2021-06")
                .unwrap()
                .name(),
            "AWS-TLS13-1-2-Res-2021-06"
        );
        assert_eq!(
            SslPolicy::parse("AWS-2015-02").unwrap().name(),
            "AWS-2015-02"
        );
        assert_eq!(SslPolicy::parse("Mozilla-Ancient"), None);
        assert_eq!(SslPolicy::parse("ELBSecurityPolicy-Mozilla-Modern"), None);
        assert_eq!(SslPolicy::default().name(), "Mozilla-Intermediate");
    }
}
