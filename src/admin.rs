//! The admin listener: `/metrics`, `/readyz`, `/healthz`, the JSON API the dashboard reads
//! (`/api/routes`, `/api/status`, `/api/traffic`, `/api/changes`) and the dashboard at `/`.
//!
//! It binds its own address (default 127.0.0.1:9180) and never shares the public port, so a
//! proxied Host can never reach it. The dashboard is one HTML file with its CSS and script
//! inline (no build step, nothing fetched from elsewhere: it works offline).

mod traffic;

pub use traffic::{Traffic, VhostTraffic};

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dockhand_discovery::Status;
use dockhand_proxy::tls::CertStore;
use dockhand_proxy::TableReader;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tracing::{debug, warn};

const DASHBOARD: &str = include_str!("dashboard.html");

/// What the admin endpoints read.
#[derive(Clone)]
pub struct Admin {
    /// The route table being served.
    pub table: TableReader,
    /// Discovery's readiness and engine connection.
    pub status: Arc<Status>,
    /// Every metric of the process.
    pub registry: Registry,
    /// The certificates loaded (for the HTTPS state of each vhost).
    pub certs: CertStore,
    /// The last minute of each vhost's traffic, sampled by [`serve`].
    pub traffic: Traffic,
    /// When dockhand started, for the uptime.
    pub started: Instant,
}

/// Serves the admin endpoints, and samples the traffic the dashboard shows once a second,
/// until the task is dropped.
pub async fn serve(listener: TcpListener, admin: Admin) {
    let sampling = admin.traffic.clone().run(admin.registry.clone());
    tokio::join!(accept(listener, admin), sampling);
}

async fn accept(listener: TcpListener, admin: Admin) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "admin listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = admin.respond(&req);
                async move { Ok::<_, Infallible>(response) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, %error, "admin connection ended with an error");
            }
        });
    }
}

impl Admin {
    fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        }
        match req.uri().path() {
            "/metrics" => self.metrics(),
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => self.readiness(),
            "/api/routes" => self.routes(),
            "/api/status" => json(&self.status()),
            "/api/traffic" => json(&serde_json::json!({ "vhosts": self.traffic.report() })),
            "/api/changes" => {
                let mut changes = crate::telemetry::route_log().entries();
                changes.reverse();
                json(&serde_json::json!({ "changes": changes }))
            }
            "/" => reply(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD.into()),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        let encoder = TextEncoder::new();
        let mut body = Vec::with_capacity(16 * 1024);
        match encoder.encode(&self.registry.gather(), &mut body) {
            Ok(()) => reply(StatusCode::OK, prometheus::TEXT_FORMAT, body.into()),
            Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
        }
    }

    /// Ready once the containers' first full sync is published and, with the Swarm provider
    /// on, the engine is a manager whose first poll is published ([`Status::readiness`]); a
    /// 503 says why not. The body also says whether the engine is connected right now
    /// (dockhand keeps serving its last table while it is not).
    fn readiness(&self) -> Response<Full<Bytes>> {
        let engine = if self.status.engine_up() {
            "up"
        } else {
            "down"
        };
        match self.status.readiness() {
            Ok(()) => text(StatusCode::OK, &format!("ready\ndocker engine: {engine}\n")),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {why}\ndocker engine: {engine}\n"),
            ),
        }
    }

    fn routes(&self) -> Response<Full<Bytes>> {
        let table = self.table.load();
        let body = serde_json::json!({
            "ready": self.status.is_ready(),
            "docker_up": self.status.engine_up(),
            "table": &**table,
        });
        match serde_json::to_vec_pretty(&body) {
            Ok(json) => reply(StatusCode::OK, "application/json", json.into()),
            Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
        }
    }
}

impl Admin {
    /// `/api/status`: version, uptime, readiness, the engine, the table's generation, the
    /// skipped containers and each vhost's HTTPS state.
    fn status(&self) -> serde_json::Value {
        let table = self.table.load();
        let certs = self.certs.index();
        let https: Vec<serde_json::Value> = (table.https_policies())
            .map(|(host, policy)| {
                let cert = certs.vhost_cert(host, policy);
                serde_json::json!({
                    "vhost": host,
                    "method": policy.method,
                    "cert": cert.map(|(name, _)| name),
                    "not_after": cert.and_then(|(_, not_after)| not_after),
                })
            })
            .collect();
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": self.started.elapsed().as_secs(),
            "ready": self.status.is_ready(),
            "not_ready": self.status.readiness().err().map(|why| why.to_string()),
            "docker_up": self.status.engine_up(),
            "generation": table.generation(),
            "skipped": self.status.skipped(),
            "https": https,
        })
    }
}

fn json(value: &serde_json::Value) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => reply(StatusCode::OK, "application/json", body.into()),
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        "text/plain; charset=utf-8",
        Bytes::copy_from_slice(body.as_bytes()),
    )
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
