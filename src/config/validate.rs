//! Checking the flags' text values and turning them into a [`Config`], collecting every bad
//! setting instead of stopping at the first.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dockhand_discovery::{contract, SwarmMode};
use dockhand_proxy::spec::HttpsPolicy;
use dockhand_proxy::vars::Template;
use dockhand_proxy::{DefaultRoot, LogEscape, LogFormat, ProxyConfig, TlsOptions};

use super::{Args, Config};

/// One bad setting: which, its value, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct SettingError {
    pub(super) name: &'static str,
    value: String,
    why: String,
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}={:?} is not valid: {}",
            self.name, self.value, self.why
        )
    }
}

/// Collects every error instead of stopping at the first.
#[derive(Default)]
struct Checker {
    errors: Vec<SettingError>,
}

impl Checker {
    fn check<T, E: std::fmt::Display>(
        &mut self,
        name: &'static str,
        value: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match parse(value.trim()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(SettingError {
                    name,
                    value: value.to_owned(),
                    why: e.to_string(),
                });
                None
            }
        }
    }

    fn duration(&mut self, name: &'static str, value: &str) -> Duration {
        self.check(name, value, humantime::parse_duration)
            .unwrap_or_default()
    }

    fn number<T: std::str::FromStr<Err = std::num::ParseIntError> + Default>(
        &mut self,
        name: &'static str,
        value: &str,
    ) -> T {
        self.check(name, value, str::parse::<T>).unwrap_or_default()
    }
}

impl Args {
    /// `DOCKER_TLS_VERIFY`: the Docker CLI speaks TLS for any value but empty, to a `tcp://`
    /// host only, with the files of `DOCKER_CERT_PATH` (default `~/.docker`). They are read
    /// now, so that a missing or broken one stops dockhand at start, named.
    fn docker_tls(&self, c: &mut Checker) -> Option<std::path::PathBuf> {
        if self.docker_tls_verify.is_empty() || self.docker_host.starts_with("unix://") {
            return None;
        }
        if self.docker_host.starts_with("http://") {
            c.check("DOCKER_TLS_VERIFY", &self.docker_tls_verify, |_| {
                Err::<(), _>("TLS needs a tcp:// DOCKER_HOST; http:// says plain HTTP")
            });
            return None;
        }
        let dir = self.docker_cert_path.clone().or_else(|| {
            std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".docker"))
        });
        let Some(dir) = dir else {
            c.check("DOCKER_CERT_PATH", "", |_| {
                Err::<(), _>("not set, and no HOME for its default ~/.docker")
            });
            return None;
        };
        c.check("DOCKER_CERT_PATH", &dir.display().to_string(), |_| {
            dockhand_discovery::validate_docker_tls(&dir)
        })?;
        Some(dir)
    }

    /// Checks every setting; on failure returns all the bad ones.
    pub fn validate(&self) -> Result<Config, Vec<SettingError>> {
        let mut c = Checker::default();
        let port: u16 = c.number("HTTP_PORT", &self.http_port);
        let https_port: u16 = c.number("HTTPS_PORT", &self.https_port);
        let certs_poll_interval =
            c.duration("DOCKHAND_CERTS_POLL_INTERVAL", &self.certs_poll_interval);
        let https = self.https_policy(&mut c);
        let bind = c.check("DOCKHAND_BIND", &self.bind, str::parse::<IpAddr>);
        let admin = c.check("DOCKHAND_ADMIN", &self.admin, str::parse::<SocketAddr>);
        c.check(
            "DOCKER_HOST",
            &self.docker_host,
            dockhand_discovery::validate_host,
        );
        c.check("DOCKHAND_LOG", &self.log, |s| {
            tracing_subscriber::EnvFilter::try_new(s)
        });
        let docker_tls = self.docker_tls(&mut c);
        let container_filters = c
            .check(
                "DOCKER_CONTAINER_FILTERS",
                &self.docker_container_filters,
                dockhand_discovery::parse_container_filters,
            )
            .unwrap_or_default();
        if let Some(host) = &self.default_host {
            c.check(
                "DEFAULT_HOST",
                host,
                dockhand_discovery::validate_default_host,
            );
        }
        let proxy = self.proxy_settings(&mut c, https_port, https.http2);
        let tls = TlsOptions {
            http2: proxy.http2,
            ssl_policy: https.ssl_policy,
        };
        let shutdown_grace = c.duration("DOCKHAND_SHUTDOWN_GRACE", &self.shutdown_grace);
        let resync_interval = c.duration("DOCKHAND_RESYNC_INTERVAL", &self.resync_interval);
        let worker_threads = c.number("DOCKHAND_WORKER_THREADS", &self.worker_threads);
        let swarm = c.check("DOCKHAND_SWARM", &self.swarm, str::parse::<SwarmMode>);
        let swarm_poll_interval =
            c.duration("DOCKHAND_SWARM_POLL_INTERVAL", &self.swarm_poll_interval);
        if swarm_poll_interval.is_zero() {
            c.check(
                "DOCKHAND_SWARM_POLL_INTERVAL",
                &self.swarm_poll_interval,
                |_| Err::<(), _>("must be longer than zero"),
            );
        }
        if !c.errors.is_empty() {
            return Err(c.errors);
        }
        let ip = if self.enable_ipv6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            bind.unwrap_or(IpAddr::from([0, 0, 0, 0]))
        };
        Ok(Config {
            http: SocketAddr::new(ip, port),
            https: SocketAddr::new(ip, https_port),
            certs_dir: self.certs_dir.clone(),
            certs_poll_interval,
            // Unreachable default: every error was returned above.
            admin: admin.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9180))),
            proxy,
            tls,
            discovery: dockhand_discovery::Config {
                docker_host: self.docker_host.clone(),
                docker_tls,
                own_container: self.container.clone().filter(|c| !c.is_empty()),
                resync_interval,
                https,
                swarm: swarm.unwrap_or_default(),
                swarm_poll_interval,
                container_filters,
                prefer_ipv6: c
                    .check(
                        "PREFER_IPV6_NETWORK",
                        &self.prefer_ipv6_network,
                        contract::parse_bool,
                    )
                    .unwrap_or(false),
                ..Default::default()
            },
            default_host: self.default_host.clone().filter(|h| !h.trim().is_empty()),
            shutdown_grace,
            worker_threads,
            log_filter: self.log.clone(),
            log_json: self.log_json,
        })
    }
}

impl Args {
    /// The data plane's settings.
    fn proxy_settings(&self, c: &mut Checker, https_port: u16, http2: bool) -> ProxyConfig {
        ProxyConfig {
            header_read_timeout: c
                .duration("DOCKHAND_HEADER_READ_TIMEOUT", &self.header_read_timeout),
            keepalive_timeout: c.duration("DOCKHAND_KEEPALIVE_TIMEOUT", &self.keepalive_timeout),
            send_timeout: c.duration("DOCKHAND_SEND_TIMEOUT", &self.send_timeout),
            tunnel_idle_timeout: c
                .duration("DOCKHAND_TUNNEL_IDLE_TIMEOUT", &self.tunnel_idle_timeout),
            lingering_time: c.duration("DOCKHAND_LINGERING_TIME", &self.lingering_time),
            lingering_timeout: c.duration("DOCKHAND_LINGERING_TIMEOUT", &self.lingering_timeout),
            body_read_timeout: c.duration("DOCKHAND_BODY_READ_TIMEOUT", &self.body_read_timeout),
            connect_timeout: c.duration("DOCKHAND_CONNECT_TIMEOUT", &self.connect_timeout),
            response_timeout: c.duration("DOCKHAND_RESPONSE_TIMEOUT", &self.response_timeout),
            pool_idle_timeout: c.duration("DOCKHAND_POOL_IDLE_TIMEOUT", &self.pool_idle_timeout),
            pool_max_idle_per_host: c
                .check(
                    "DOCKHAND_UPSTREAM_MAX_IDLE",
                    &self.upstream_max_idle,
                    parse_max_idle,
                )
                .unwrap_or_default(),
            max_header_size: c.number("DOCKHAND_MAX_HEADER_SIZE", &self.max_header_size),
            max_connections: c.number("DOCKHAND_MAX_CONNECTIONS", &self.max_connections),
            trust_downstream_proxy: self.trust_downstream_proxy,
            access_log: !self.disable_access_logs,
            preserve_header_case: self.preserve_header_case,
            eject_after: c.number("DOCKHAND_EJECT_AFTER", &self.eject_after),
            eject_backoff: c.duration("DOCKHAND_EJECT_BACKOFF", &self.eject_backoff),
            eject_backoff_max: c.duration("DOCKHAND_EJECT_BACKOFF_MAX", &self.eject_backoff_max),
            h2_max_control_frames: c.number(
                "DOCKHAND_H2_MAX_CONTROL_FRAMES",
                &self.h2_max_control_frames,
            ),
            h2_control_frames_per_second: c.number(
                "DOCKHAND_H2_CONTROL_FRAMES_PER_SECOND",
                &self.h2_control_frames_per_second,
            ),
            https_port,
            proxy_protocol: c
                .check(
                    "ENABLE_PROXY_PROTOCOL",
                    &self.enable_proxy_protocol,
                    contract::parse_bool,
                )
                .unwrap_or(false),
            http2,
            default_root: c
                .check("DEFAULT_ROOT", &self.default_root, DefaultRoot::parse)
                .unwrap_or_default(),
            acme_accept_unknown_host: c
                .check(
                    "ACME_HTTP_CHALLENGE_ACCEPT_UNKNOWN_HOST",
                    &self.acme_http_challenge_accept_unknown_host,
                    contract::parse_bool,
                )
                .unwrap_or(false),
            debug_endpoint: c
                .check("DEBUG_ENDPOINT", &self.debug_endpoint, contract::parse_bool)
                .unwrap_or(false),
            log_format: self.log_format(c),
            acme_webroot: self.acme_webroot.clone(),
            htpasswd_dir: self.htpasswd_dir.clone(),
            ..ProxyConfig::default()
        }
    }

    /// `LOG_FORMAT` compiled with `LOG_FORMAT_ESCAPE`; an unknown variable is an error.
    fn log_format(&self, c: &mut Checker) -> Option<Arc<LogFormat>> {
        let escape = c.check(
            "LOG_FORMAT_ESCAPE",
            &self.log_format_escape,
            LogEscape::parse,
        );
        let raw = self
            .log_format
            .as_deref()
            .filter(|f| !f.trim().is_empty())?;
        // Not trimmed: the line is the user's, spaces included.
        let template = match Template::compile(raw, |_| true) {
            Ok(template) => template,
            Err(why) => {
                c.check("LOG_FORMAT", raw, |_| Err::<(), _>(why));
                return None;
            }
        };
        Some(Arc::new(LogFormat {
            template,
            escape: escape.unwrap_or_default(),
        }))
    }

    /// The proxy-wide HTTPS settings, from nginx-proxy's variables.
    fn https_policy(&self, c: &mut Checker) -> HttpsPolicy {
        let defaults = HttpsPolicy::default();
        let hsts = c.check("HSTS", &self.hsts, contract::parse_hsts);
        HttpsPolicy {
            method: c
                .check(
                    "HTTPS_METHOD",
                    &self.https_method,
                    contract::parse_https_method,
                )
                .unwrap_or(defaults.method),
            hsts: match hsts {
                Some(contract::Hsts::Value(value)) => Some(value),
                Some(contract::Hsts::Off) | None => None,
            },
            cert_name: None,
            trust_default_cert: c
                .check(
                    "TRUST_DEFAULT_CERT",
                    &self.trust_default_cert,
                    contract::parse_bool,
                )
                .unwrap_or(true),
            non_get_redirect: c
                .check(
                    "NON_GET_REDIRECT",
                    &self.non_get_redirect,
                    contract::parse_non_get_redirect,
                )
                .map_or(defaults.non_get_redirect, |r| r.status()),
            http_on_missing_cert: c
                .check(
                    "ENABLE_HTTP_ON_MISSING_CERT",
                    &self.enable_http_on_missing_cert,
                    contract::parse_bool,
                )
                .unwrap_or(true),
            acme_challenge: c
                .check(
                    "ACME_HTTP_CHALLENGE_LOCATION",
                    &self.acme_http_challenge_location,
                    contract::parse_acme_challenge,
                )
                .unwrap_or(defaults.acme_challenge),
            http2: c
                .check("ENABLE_HTTP2", &self.enable_http2, contract::parse_bool)
                .unwrap_or(true),
            ssl_policy: c
                .check("SSL_POLICY", &self.ssl_policy, contract::parse_ssl_policy)
                .unwrap_or_default(),
            server_tokens: true,
            external_http_port: None,
            external_https_port: None,
            // Reported by `proxy_settings` when invalid.
            debug_endpoint: contract::parse_bool(self.debug_endpoint.trim()).unwrap_or(false),
            // Per vhost only (the `…ssl_verify_client` label), as in nginx-proxy.
            verify_client: defaults.verify_client,
        }
    }
}

/// `unlimited`, or a number of idle connections.
fn parse_max_idle(value: &str) -> Result<usize, String> {
    if value.eq_ignore_ascii_case("unlimited") {
        return Ok(usize::MAX);
    }
    value
        .parse()
        .map_err(|_| "expected a number of connections or `unlimited`".to_owned())
}
