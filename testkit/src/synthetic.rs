//! The parts of the Docker Engine API that dockhand's discovery uses, serving synthetic running
//! containers: for `benches/scale-synthetic.sh` (through the `synthetic-engine` binary) and for
//! tests that run the whole app in process without a Docker engine.
//!
//! Container `i` is a saved `docker inspect` fixture renamed `synthetic-<i>`, with
//! `VIRTUAL_HOST=app<i>.scale.local`, its port exposed as the backend's and every network
//! address set to the backend's IP: all of them answer through one real backend. It answers
//! `/_ping`, `/version`, `/info`, `/containers/json`, `/containers/{id}/json` and `/events`, and
//! two requests of its own that a bench uses to change the set:
//! - `POST /synthetic/containers/<i>`: container `i` starts (`start`);
//! - `DELETE /synthetic/containers/<i>`: it is removed (`die`, `destroy`).
//!
//! It can also play a Swarm manager ([`SyntheticEngine::enable_swarm`]): `/info` then reports
//! an active manager node, and `/services` and `/tasks` serve the service and task objects a
//! test sets ([`SyntheticEngine::set_service`], [`SyntheticEngine::set_tasks`]), whole and
//! unfiltered; changing a service sends a `service` event.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::UnixListener;
use tokio::sync::broadcast;

/// Events kept for a subscriber that reads slowly; older ones are dropped for it.
const EVENT_BACKLOG: usize = 4096;

type Body = BoxBody<Bytes, Infallible>;

/// A Docker engine answering for synthetic containers: the fixture, the running containers'
/// inspect documents, the event feed.
pub struct SyntheticEngine {
    fixture: Value,
    backend: SocketAddr,
    /// Container ID → its `docker inspect` JSON, serialised once.
    running: RwLock<BTreeMap<String, Bytes>>,
    events: broadcast::Sender<Bytes>,
    /// Whether `/info` reports a Swarm manager.
    swarm: AtomicBool,
    /// Swarm services by ID, as `GET /services` lists them.
    services: RwLock<BTreeMap<String, Value>>,
    /// Swarm tasks, as `GET /tasks` lists them.
    tasks: RwLock<Vec<Value>>,
}

impl SyntheticEngine {
    /// An engine whose containers are copies of `fixture` (a saved `docker inspect` object),
    /// each answering on `backend`; none runs yet.
    pub fn new(fixture: Value, backend: SocketAddr) -> Arc<SyntheticEngine> {
        Arc::new(SyntheticEngine {
            fixture,
            backend,
            running: RwLock::default(),
            events: broadcast::channel(EVENT_BACKLOG).0,
            swarm: AtomicBool::new(false),
            services: RwLock::default(),
            tasks: RwLock::default(),
        })
    }

    /// Serves the Engine API on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: UnixListener) -> io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let engine = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let engine = engine.clone();
                    async move { Ok::<_, Infallible>(engine.answer(req)) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    eprintln!("synthetic-engine: connection: {e}");
                }
            });
        }
    }

    fn answer(&self, req: Request<Incoming>) -> Response<Body> {
        let path = api_path(req.uri().path());
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method(), segments.as_slice()) {
            (&Method::GET | &Method::HEAD, ["_ping"]) => text(StatusCode::OK, "OK"),
            (&Method::GET, ["version"]) => json_response(
                StatusCode::OK,
                &json!({ "Version": "synthetic", "ApiVersion": "1.45", "MinAPIVersion": "1.24" }),
            ),
            (&Method::GET, ["info"]) => json_response(StatusCode::OK, &self.info()),
            (&Method::GET, ["services"]) => self.list_services(),
            (&Method::GET, ["tasks"]) => {
                let tasks = self.tasks.read().unwrap_or_else(|e| e.into_inner());
                json_response(StatusCode::OK, &Value::Array(tasks.clone()))
            }
            (&Method::GET, ["events"]) => self.event_stream(),
            (&Method::GET, ["containers", "json"]) => self.list(),
            (&Method::GET, ["containers", id, "json"]) => self.inspect(id),
            (&Method::POST, ["synthetic", "containers", i]) => self.change(i, true),
            (&Method::DELETE, ["synthetic", "containers", i]) => self.change(i, false),
            _ => not_found(&format!("page not found: {path}")),
        }
    }

    /// `/info`: with Swarm on, an active manager node's `Swarm` section.
    fn info(&self) -> Value {
        let mut info = json!({ "ID": "synthetic", "SystemTime": rfc3339_now() });
        if self.swarm.load(Ordering::Acquire) {
            info["Swarm"] = json!({
                "NodeID": "synthetic-node",
                "LocalNodeState": "active",
                "ControlAvailable": true,
            });
        }
        info
    }

    /// `/services`: answered by managers only, as the Engine does.
    fn list_services(&self) -> Response<Body> {
        if !self.swarm.load(Ordering::Acquire) {
            let message = "This node is not a swarm manager.";
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "message": message }),
            );
        }
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        json_response(
            StatusCode::OK,
            &Value::Array(services.values().cloned().collect()),
        )
    }

    /// The engine becomes a Swarm manager: `/info` says so, `/services` and `/tasks` answer.
    pub fn enable_swarm(&self) {
        self.swarm.store(true, Ordering::Release);
    }

    /// Adds `service` (a `docker service inspect` object), or replaces the one of its `ID`,
    /// and sends a `service` `update` event.
    pub fn set_service(&self, service: Value) {
        let id = service["ID"].as_str().unwrap_or_default().to_owned();
        self.services
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), service);
        self.emit_service(&id, "update");
    }

    /// Removes the service `id` (its tasks stay until [`SyntheticEngine::set_tasks`] changes
    /// them), with a `service` `remove` event.
    pub fn remove_service(&self, id: &str) {
        let removed = self
            .services
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if removed.is_some() {
            self.emit_service(id, "remove");
        }
    }

    /// Every task from now on (task objects as `GET /tasks` returns them). No event: the
    /// Engine sends none for tasks either.
    pub fn set_tasks(&self, tasks: Vec<Value>) {
        *self.tasks.write().unwrap_or_else(|e| e.into_inner()) = tasks;
    }

    fn emit_service(&self, id: &str, action: &str) {
        let event =
            json!({ "Type": "service", "Action": action, "Actor": { "ID": id }, "scope": "swarm" });
        let _ = self.events.send(Bytes::from(format!("{event}\n")));
    }

    /// Every container, as `docker ps` lists them (dockhand asks only for running ones, and
    /// all of these run).
    fn list(&self) -> Response<Body> {
        let running = self.running.read().unwrap_or_else(|e| e.into_inner());
        let summaries: Vec<Value> = running
            .keys()
            .map(|id| json!({ "Id": id, "State": "running" }))
            .collect();
        json_response(StatusCode::OK, &Value::Array(summaries))
    }

    fn inspect(&self, id: &str) -> Response<Body> {
        let running = self.running.read().unwrap_or_else(|e| e.into_inner());
        match running.get(id) {
            Some(document) => bytes_response(StatusCode::OK, document.clone()),
            None => not_found(&format!("No such container: {id}")),
        }
    }

    /// The bench's own request: container `i` starts, or is removed.
    fn change(&self, i: &str, start: bool) -> Response<Body> {
        let Ok(i) = i.parse::<usize>() else {
            return text(StatusCode::BAD_REQUEST, "container index expected");
        };
        if start {
            self.start(i);
        } else {
            self.remove(i);
        }
        text(StatusCode::NO_CONTENT, "")
    }

    /// Container `i` starts (a `start` event).
    pub fn start(&self, i: usize) {
        let (id, document) = self.container(i);
        self.running
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), document);
        self.emit(&id, i, "start");
    }

    /// Container `i` is removed (`die`, `destroy` events).
    pub fn remove(&self, i: usize) {
        let id = container_id(i);
        let removed = self
            .running
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if removed.is_some() {
            self.emit(&id, i, "die");
            self.emit(&id, i, "destroy");
        }
    }

    /// Container `i`'s ID and inspect document, made from the fixture.
    fn container(&self, i: usize) -> (String, Bytes) {
        let id = container_id(i);
        let mut c = self.fixture.clone();
        c["Id"] = json!(id);
        c["Name"] = json!(format!("/synthetic-{i}"));
        c["Config"]["Env"] = json!([format!("VIRTUAL_HOST=app{i}.scale.local")]);
        c["Config"]["ExposedPorts"] = json!({ format!("{}/tcp", self.backend.port()): {} });
        if let Some(networks) = c["NetworkSettings"]["Networks"].as_object_mut() {
            for endpoint in networks.values_mut() {
                endpoint["IPAddress"] = json!(self.backend.ip().to_string());
            }
        }
        (id, Bytes::from(c.to_string()))
    }

    fn emit(&self, id: &str, i: usize, action: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let event = json!({
            "Type": "container",
            "Action": action,
            "Actor": { "ID": id, "Attributes": { "name": format!("synthetic-{i}") } },
            "scope": "local",
            "time": now.as_secs(),
            "timeNano": now.as_nanos(),
        });
        // No subscriber yet is fine: dockhand lists the containers after subscribing.
        let _ = self.events.send(Bytes::from(format!("{event}\n")));
    }

    /// The event feed from now on, one JSON object per line, until the client goes away.
    fn event_stream(&self) -> Response<Body> {
        let feed = futures_util::stream::unfold(self.events.subscribe(), |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(line) => return Some((Ok(Frame::data(line)), rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        let mut response = Response::new(BodyExt::boxed(StreamBody::new(feed)));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// The path without the API version prefix (`/v1.45/containers/json` → `/containers/json`).
fn api_path(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let version_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    if version_len == 0 {
        return path;
    }
    &rest[version_len..]
}

fn container_id(i: usize) -> String {
    format!("{i:064x}")
}

fn rfc3339_now() -> String {
    let format = time::format_description::well_known::Rfc3339;
    // Formatting the current UTC time as RFC 3339 cannot fail (years 0-9999).
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    bytes_response(status, Bytes::from_static(body.as_bytes()))
}

fn not_found(message: &str) -> Response<Body> {
    json_response(StatusCode::NOT_FOUND, &json!({ "message": message }))
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = bytes_response(status, Bytes::from(value.to_string()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn bytes_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(BodyExt::boxed(Full::new(body)));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_version_prefix_is_optional() {
        assert_eq!(api_path("/v1.45/containers/json"), "/containers/json");
        assert_eq!(api_path("/containers/json"), "/containers/json");
        assert_eq!(api_path("/_ping"), "/_ping");
        assert_eq!(api_path("/version"), "/version");
        assert_eq!(api_path("/v1.41/events"), "/events");
    }

    #[test]
    fn a_container_answers_on_the_backend_with_its_own_vhost() {
        let engine = SyntheticEngine::new(
            serde_json::from_str(include_str!(
                "../../discovery/tests/fixtures/app-web-1.json"
            ))
            .expect("the fixture is JSON"),
            "172.17.0.9:8080".parse().expect("an address"),
        );
        let (id, document) = engine.container(7);
        let c: Value = serde_json::from_slice(&document).expect("JSON");
        assert_eq!(c["Id"], json!(id));
        assert_eq!(c["Name"], json!("/synthetic-7"));
        assert_eq!(c["Config"]["Env"], json!(["VIRTUAL_HOST=app7.scale.local"]));
        assert_eq!(c["Config"]["ExposedPorts"], json!({ "8080/tcp": {} }));
        let networks = c["NetworkSettings"]["Networks"]
            .as_object()
            .expect("networks");
        assert!(!networks.is_empty());
        for endpoint in networks.values() {
            assert_eq!(endpoint["IPAddress"], json!("172.17.0.9"));
        }
    }
}
