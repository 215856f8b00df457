//! TLS to a `tcp://` engine, as the Docker CLI does it when `DOCKER_TLS_VERIFY` is set: the
//! engine's certificate is verified against `ca.pem` (and only it: a Docker CA is private), and
//! dockhand presents `cert.pem` with `key.pem`, all three from `DOCKER_CERT_PATH`.
//!
//! Both bollard (through a custom transport) and the plain `GET /tasks` of the Swarm provider
//! dial through [`dial`], so they speak the same TLS.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::EngineError;

/// A connection to the engine, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The client side of TLS to the engine, built from the files in `DOCKER_CERT_PATH`.
#[derive(Clone)]
pub(crate) struct EngineTls {
    config: Arc<rustls::ClientConfig>,
}

impl EngineTls {
    /// Reads `ca.pem`, `cert.pem` and `key.pem` from `dir`; an error names the file and why.
    pub(crate) fn load(dir: &Path) -> Result<EngineTls, EngineError> {
        let file = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| {
                EngineError::Tls(format!(
                    "cannot read {} (DOCKER_CERT_PATH): {e}",
                    path.display()
                ))
            })
        };
        let bad = |name: &str, why: &dyn std::fmt::Display| {
            EngineError::Tls(format!("{}: {why}", dir.join(name).display()))
        };
        let (ca, cert, key) = (file("ca.pem")?, file("cert.pem")?, file("key.pem")?);
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(&ca) {
            let ca = ca.map_err(|e| bad("ca.pem", &e))?;
            roots.add(ca).map_err(|e| bad("ca.pem", &e))?;
        }
        if roots.is_empty() {
            return Err(bad("ca.pem", &"no certificate in it"));
        }
        let chain = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("cert.pem", &e))?;
        if chain.is_empty() {
            return Err(bad("cert.pem", &"no certificate in it"));
        }
        let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| bad("key.pem", &e))?;
        // Ring, as everywhere in dockhand; explicit, so that no process-wide default is needed.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| EngineError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad("key.pem", &format!("does not fit cert.pem: {e}")))?;
        Ok(EngineTls {
            config: Arc::new(config),
        })
    }
}

/// Opens a connection to `authority` (`host:port`), through TLS when `tls` is set. The engine's
/// certificate must name `host`, as the Docker CLI checks it.
pub(crate) async fn dial(authority: &str, tls: Option<&EngineTls>) -> io::Result<Box<dyn Io>> {
    let tcp = TcpStream::connect(authority).await?;
    let Some(tls) = tls else {
        return Ok(Box::new(tcp));
    };
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} cannot be checked against a certificate: {e}"),
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let stream = connector.connect(name, tcp).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("TLS handshake with the engine at {authority}: {e}"),
        )
    })?;
    Ok(Box::new(stream))
}
