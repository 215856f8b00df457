//! `GET /tasks` as plain JSON over `DOCKER_HOST`: bollard's typed `list_tasks` parses into its
//! `Task` model, which drops `NetworksAttachments`, and bollard has no raw-request call.

use std::time::Duration;

use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;

use crate::engine::{self, EngineError};
use crate::Config;

/// The longest a request may take, as bollard's requests (engine.rs).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Tasks the orchestrator wants running (`filters={"desired-state":["running"]}`): the only
/// ones that can be routed, so a poll does not carry every finished task of the last hour.
pub(crate) const RUNNING_TASKS: &str =
    "/tasks?filters=%7B%22desired-state%22%3A%5B%22running%22%5D%7D";

/// `GET path` on the engine at `config.docker_host` (`unix://…`, `tcp://…` or `http://…`, over
/// TLS with `config.docker_tls` as bollard's requests), its JSON
/// body parsed as `T`. A status other than 200 is an error carrying the engine's message.
pub(crate) async fn get_json<T: DeserializeOwned>(
    config: &Config,
    path: &str,
) -> Result<T, EngineError> {
    let body = tokio::time::timeout(TIMEOUT, get(config, path))
        .await
        .map_err(|_| EngineError::Request(format!("GET {path}: timed out")))??;
    serde_json::from_slice(&body)
        .map_err(|e| EngineError::Request(format!("GET {path}: unexpected answer: {e}")))
}

async fn get(config: &Config, path: &str) -> Result<Bytes, EngineError> {
    let fail = |e: &dyn std::fmt::Display| EngineError::Request(format!("GET {path}: {e}"));
    let docker_host = config.docker_host.as_str();
    if let Some(socket) = docker_host.strip_prefix("unix://") {
        let stream = UnixStream::connect(socket).await.map_err(|e| fail(&e))?;
        request(stream, path).await.map_err(|e| fail(&e))
    } else {
        let tls = config
            .docker_tls
            .as_deref()
            .map(engine::tls::EngineTls::load)
            .transpose()?;
        let authority = engine::authority(docker_host)?;
        let stream = engine::tls::dial(authority, tls.as_ref())
            .await
            .map_err(|e| fail(&e))?;
        request(stream, path).await.map_err(|e| fail(&e))
    }
}

/// One HTTP/1.1 GET on a fresh connection.
async fn request<S>(stream: S, path: &str) -> Result<Bytes, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let connection = tokio::spawn(connection);
    let request = Request::get(path)
        .header(header::HOST, "docker")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string());
    let result = match response {
        Ok(response) => {
            let status = response.status();
            let body = response.into_body().collect().await;
            let body = body.map_err(|e| e.to_string())?.to_bytes();
            if status == StatusCode::OK {
                Ok(body)
            } else {
                Err(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body).trim()
                ))
            }
        }
        Err(e) => Err(e),
    };
    connection.abort();
    result
}
