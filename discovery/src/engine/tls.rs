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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use dockhand_testkit::certs::{CertDir, TestCa};
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An "engine" on 127.0.0.1 with a certificate for `names` from `ca`, which requires a
    /// client certificate from `ca` and answers every request with an empty JSON list.
    async fn engine(ca: &TestCa, names: &[&str]) -> std::net::SocketAddr {
        let issued = ca.issue(names);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca.der())).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(issued.der.clone())],
                PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut request = vec![0; 4096];
                let _ = tls.read(&mut request).await;
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]";
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            }
        });
        addr
    }

    fn cert_dir(ca_pem: &str, client: &dockhand_testkit::certs::Issued) -> CertDir {
        let dir = CertDir::new();
        dir.write("ca.pem", ca_pem);
        dir.write("cert.pem", &client.cert_pem);
        dir.write("key.pem", &client.key_pem);
        dir
    }

    async fn get(addr: std::net::SocketAddr, dir: &CertDir) -> Result<Vec<()>, EngineError> {
        let config = Config {
            docker_host: format!("tcp://{addr}"),
            docker_tls: Some(dir.path().to_owned()),
            ..Config::default()
        };
        crate::swarm::fetch::get_json(&config, "/tasks").await
    }

    #[tokio::test]
    async fn the_swarm_fetch_speaks_the_same_tls() {
        let ca = TestCa::new();
        let client = ca.issue(&["dockhand"]);
        let good = cert_dir(&ca.pem(), &client);

        let addr = engine(&ca, &["127.0.0.1"]).await;
        assert_eq!(get(addr, &good).await.unwrap(), Vec::<()>::new());

        // Another CA: refused, and the error says it was the engine's certificate.
        let wrong = cert_dir(&TestCa::new().pem(), &client);
        let error = get(addr, &wrong).await.unwrap_err().to_string();
        assert!(error.contains("invalid peer certificate"), "{error}");

        // A certificate that does not name the host in DOCKER_HOST: refused too.
        let elsewhere = engine(&ca, &["engine.example"]).await;
        let error = get(elsewhere, &good).await.unwrap_err().to_string();
        assert!(error.contains("not valid for name"), "{error}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let ca = TestCa::new();
        let dir = cert_dir(&ca.pem(), &ca.issue(&["dockhand"]));
        std::fs::remove_file(dir.path().join("cert.pem")).unwrap();
        let error = EngineTls::load(dir.path()).err().unwrap().to_string();
        assert!(error.contains("cert.pem"), "{error}");
    }
}
