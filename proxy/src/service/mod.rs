//! The per-request logic: route, rewrite, forward, map errors to a status, record.

mod debug;
mod exchange;
mod order;
mod response;
mod routing;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::{Body as _, Incoming};
use hyper::service::Service;

use self::response::respond;
pub(crate) use self::response::Stamp;
use crate::access::{AccessLog, Completion};
use crate::body::ProxyBody;
use crate::certs::{CertLookup, NoCerts};
use crate::config::ProxyConfig;
use crate::conn::ConnState;
use crate::error::ErrorKind;
use crate::health::EjectPolicy;
use crate::metrics::{Metrics, VhostMetrics};
use crate::pages::ErrorPage;
use crate::policy::acme;
use crate::policy::auth::BasicAuth;
use crate::table::{InFlight, TableReader};
use crate::tunnel::Tunnels;
use crate::upstream::{Lease, PoolSettings, Upstream};

/// The facts about a client connection that requests need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The local address the client connected to (its port is the "server port").
    pub local: SocketAddr,
    /// Whether the connection is TLS (sets `X-Forwarded-Proto: https` and redirect schemes).
    pub tls: bool,
    /// The client certificate's verification, on TLS connections to a vhost with a client CA
    /// (mTLS); `None` otherwise.
    pub client_verify: Option<ClientVerify>,
    /// The port the client connected to at the load balancer, from the PROXY header
    /// (`ENABLE_PROXY_PROTOCOL`, nginx's `$proxy_protocol_server_port`): then `peer` is the
    /// client the header carries. `None` without PROXY protocol, or for a header that carries
    /// no addresses (a balancer's health check).
    pub proxied_port: Option<u16>,
}

/// What the requests of a TLS connection know about its client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientVerify {
    /// The result, as nginx's `$ssl_client_verify`.
    pub result: VerifyResult,
    /// Whether requests are answered 400 rather than forwarded: `ssl_verify_client on` without
    /// a certificate, or a certificate that does not verify (as nginx decides).
    pub refused: bool,
}

/// nginx's `$ssl_client_verify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyResult {
    /// A certificate verified against the vhost's CA: `SUCCESS`.
    Success,
    /// No certificate was sent: `NONE`.
    None,
    /// A certificate that did not verify: `FAILED:<reason>`.
    Failed(VerifyFailure),
}

/// Why a client certificate did not verify, in OpenSSL's words (nginx reports those).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyFailure {
    /// Not issued by the vhost's CA.
    UnknownIssuer,
    /// Past its validity.
    Expired,
    /// Before its validity.
    NotYetValid,
    /// Listed in the CA's revocation list.
    Revoked,
    /// The revocation list is past its next update.
    CrlExpired,
    /// A signature in the chain does not verify.
    BadSignature,
    /// Not meant for client authentication.
    Purpose,
    /// Any other reason.
    Rejected,
}

impl VerifyResult {
    /// The value of `X-SSL-Client-Verify`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyResult::Success => "SUCCESS",
            VerifyResult::None => "NONE",
            VerifyResult::Failed(why) => match why {
                VerifyFailure::UnknownIssuer => "FAILED:unable to get local issuer certificate",
                VerifyFailure::Expired => "FAILED:certificate has expired",
                VerifyFailure::NotYetValid => "FAILED:certificate is not yet valid",
                VerifyFailure::Revoked => "FAILED:certificate revoked",
                VerifyFailure::CrlExpired => "FAILED:CRL has expired",
                VerifyFailure::BadSignature => "FAILED:certificate signature failure",
                VerifyFailure::Purpose => "FAILED:unsupported certificate purpose",
                VerifyFailure::Rejected => "FAILED:certificate rejected",
            },
        }
    }
}

/// The proxy: configuration, current table, metrics and upstream pools. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
    upstream: Arc<Upstream>,
}

pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) table: TableReader,
    pub(crate) metrics: Metrics,
    pub(crate) certs: ArcSwap<Certs>,
    pub(crate) auth: BasicAuth,
    pub(crate) eject: EjectPolicy,
    /// The custom 5xx page (`errors/50x.html` under the html root).
    pub(crate) pages: Arc<ErrorPage>,
    /// Tunnels of connections served outside this crate's listeners (through
    /// [`Proxy::service`]); the listeners track their own.
    tunnels: Tunnels,
}

/// The certificate lookup, boxed in a sized type so that it can live in an [`ArcSwap`].
pub(crate) struct Certs(pub(crate) Arc<dyn CertLookup>);

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy serving whatever table `table` holds at each request.
    pub fn new(config: ProxyConfig, table: TableReader, metrics: Metrics) -> Proxy {
        let upstream = Arc::new(upstream(&config, &metrics));
        let auth = BasicAuth::new(config.htpasswd_dir.clone());
        let pages = Arc::new(ErrorPage::new(&config.acme_webroot));
        let eject = EjectPolicy::new(
            config.eject_after,
            config.eject_backoff,
            config.eject_backoff_max,
        );
        Proxy {
            shared: Arc::new(Shared {
                config,
                table,
                metrics,
                certs: ArcSwap::from_pointee(Certs(Arc::new(NoCerts))),
                auth,
                eject,
                pages,
                tunnels: Tunnels::default(),
            }),
            upstream,
        }
    }

    /// A proxy sharing everything with this one but the upstream connection pools, to serve
    /// from another runtime: a pooled connection is driven by the runtime that opened it, so
    /// one runtime per core keeps each request and its backend connection on one thread.
    pub fn with_own_pools(&self) -> Proxy {
        Proxy {
            shared: self.shared.clone(),
            upstream: Arc::new(upstream(&self.shared.config, &self.shared.metrics)),
        }
    }

    /// Answers "does this vhost have a usable certificate?" with `certs` (default [`NoCerts`]:
    /// none, so `redirect` and `nohttp` vhosts are served over HTTP when
    /// `http_on_missing_cert`). Applies to every clone of this proxy.
    pub fn with_certs(self, certs: Arc<dyn CertLookup>) -> Proxy {
        self.shared.certs.store(Arc::new(Certs(certs)));
        self
    }

    /// The custom 5xx page; run its [`ErrorPage::watch`] to follow changes to the file.
    pub fn error_page(&self) -> Arc<ErrorPage> {
        self.shared.pages.clone()
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ProxyConfig {
        &self.shared.config
    }

    /// The metrics it records in.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The per-connection handler for a client connection described by `conn`.
    pub fn connection(&self, conn: ConnInfo) -> ProxyService {
        self.connection_in(conn, self.shared.tunnels.clone(), None)
    }

    /// The handler for a connection whose upgraded tunnels `tunnels` tracks.
    pub(crate) fn connection_in(
        &self,
        conn: ConnInfo,
        tunnels: Tunnels,
        state: Option<Arc<ConnState>>,
    ) -> ProxyService {
        let peer_ip = conn.peer.ip().to_canonical().to_string();
        ProxyService {
            shared: self.shared.clone(),
            upstream: self.upstream.clone(),
            conn: Arc::new(Conn {
                info: conn,
                state,
                // An IP address and a port number are always valid header values.
                peer_ip: HeaderValue::from_str(&peer_ip).unwrap_or(HeaderValue::from_static("-")),
                port: HeaderValue::from(conn.local.port()),
                proxied_port: conn.proxied_port.map(HeaderValue::from),
                tunnels,
            }),
        }
    }

    /// A hyper [`Service`] for the client connection `conn`, to pass to hyper's or hyper-util's
    /// `serve_connection_with_upgrades`. It never fails: errors become status codes.
    pub fn service(
        &self,
        conn: ConnInfo,
    ) -> impl Service<
        Request<Incoming>,
        Response = Response<ProxyBody>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
    > + Clone
           + Send
           + Sync
           + 'static {
        self.connection(conn).into_service()
    }
}

/// One client connection's request handler (cheap to clone).
#[derive(Clone)]
pub struct ProxyService {
    shared: Arc<Shared>,
    upstream: Arc<Upstream>,
    conn: Arc<Conn>,
}

impl ProxyService {
    /// This handler as a hyper [`Service`] (see [`Proxy::service`]).
    pub(crate) fn into_service(
        self,
    ) -> impl Service<
        Request<Incoming>,
        Response = Response<ProxyBody>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
    > + Clone
           + Send
           + Sync
           + 'static {
        let service = self;
        hyper::service::service_fn(move |req: Request<Incoming>| {
            // Boxed: hyper keeps the service future inline in every connection, idle ones
            // included, and moves it as it goes; the request's state is several KiB (measured
            // with benches/hold.py: 26 -> 19 KiB per idle connection, and callgrind counts no
            // more instructions per request for the one allocation).
            let with_body = !req.body().is_end_stream();
            let active = (service.conn.state.as_ref()).map(|state| state.begin(with_body));
            let answer = Box::pin(service.handle(req));
            async move { Ok(answer.await.map(|body| body.hold(active))) }
        })
    }
}

/// A connection's facts, with the header values derived from them formatted once.
pub(crate) struct Conn {
    pub(crate) info: ConnInfo,
    /// The listener's view of the connection (requests in flight), when a listener of this
    /// crate serves it.
    pub(crate) state: Option<Arc<ConnState>>,
    pub(crate) peer_ip: HeaderValue,
    pub(crate) port: HeaderValue,
    pub(crate) proxied_port: Option<HeaderValue>,
    pub(crate) tunnels: Tunnels,
}

/// Where a request ended up, before the response is assembled.
// Returned once per request and never stored: boxing the large variant would cost an
// allocation on every proxied request to save a few hundred bytes of stack.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Answer {
    Upstream {
        response: Response<Incoming>,
        /// The HTTP/1.1 connection the body arrives on.
        lease: Option<Lease>,
        addr: SocketAddr,
        in_flight: Option<InFlight>,
    },
    Redirect(StatusCode, String),
    /// A file of the proxy's own (an ACME challenge), sent as `text/plain`.
    Text(Bytes),
    /// 401 with this `WWW-Authenticate` value.
    Challenge(HeaderValue),
    Error(ErrorKind),
    /// A `DEFAULT_ROOT` return: the status, with this body (`text/plain`) or the status's page.
    Status(StatusCode, Option<Bytes>),
    /// The debug endpoint's JSON.
    Json(Bytes),
}

impl ProxyService {
    /// Answers one request; every failure is already mapped to a response.
    pub fn handle(
        &self,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + 'static {
        // What the completion needs from the request is taken here, outside the future: each
        // value an async fn holds across its await is stored in it, and the whole future is
        // copied into its box.
        let start = Instant::now();
        let method = req.method().clone();
        let log = self.shared.config.access_log.then(|| {
            let info = &self.conn.info;
            let conn = (info.peer, info.local.port(), info.tls);
            Box::new(AccessLog::new(&self.shared.config, conn, &req))
        });
        let service = self.clone();
        async move {
            let (answer, metrics, stamp) = service.proxy(req).await;
            let (response, upstream, in_flight) = respond(answer, stamp, &service.shared.pages);
            let completion = Completion {
                metrics,
                method,
                status: response.status(),
                start,
                log: log.map(|mut log| {
                    log.upstream = upstream;
                    log
                }),
                in_flight,
            };
            response.map(|body| body.on_end(completion))
        }
    }

    /// The answer, the vhost it is accounted to, and the headers it must carry.
    async fn proxy(&self, req: Request<Incoming>) -> (Answer, Arc<VhostMetrics>, Stamp) {
        let (mut parts, body) = req.into_parts();
        let plan = match routing::plan(&self.shared, &self.conn, &mut parts) {
            Ok(plan) => plan,
            Err(refusal) => {
                let answer = self.refused(refusal.refused).await;
                return (answer, refusal.metrics, refusal.stamp);
            }
        };
        let metrics = plan.metrics.clone();
        let hsts = plan.stamp.clone();
        if self.conn.info.client_verify.is_some_and(|v| v.refused) {
            // nginx's "400 No required SSL certificate was sent" or "The SSL certificate error".
            return (Answer::Error(ErrorKind::BadRequest), metrics, hsts);
        }
        let authorization = parts.headers.get(AUTHORIZATION);
        if let Err(realm) = self
            .shared
            .auth
            .check(&plan.route.auth, authorization)
            .await
        {
            return (Answer::Challenge(realm), metrics, hsts);
        }
        let answer =
            exchange::send(&self.shared, &self.upstream, &self.conn, plan, parts, body).await;
        (answer, metrics, hsts)
    }

    /// The answer to a request the proxy handles itself.
    async fn refused(&self, refused: routing::Refused) -> Answer {
        match refused {
            routing::Refused::Error(kind) => Answer::Error(kind),
            routing::Refused::Redirect(status, to) => Answer::Redirect(status, to),
            routing::Refused::Status(status, body) => Answer::Status(status, body),
            routing::Refused::Json(bytes) => Answer::Json(bytes),
            routing::Refused::Acme(token) => {
                match acme::read_challenge(&self.shared.config.acme_webroot, &token).await {
                    Some(bytes) => Answer::Text(bytes),
                    None => Answer::Error(ErrorKind::NoPath),
                }
            }
        }
    }
}

fn upstream(config: &ProxyConfig, metrics: &Metrics) -> Upstream {
    Upstream::new(PoolSettings {
        connect_timeout: config.connect_timeout,
        idle_timeout: config.pool_idle_timeout,
        max_idle_per_host: config.pool_max_idle_per_host,
        opened: metrics.upstream_opened(),
        parked: metrics.upstream_parked(),
        preserve_header_case: config.preserve_header_case,
    })
}
