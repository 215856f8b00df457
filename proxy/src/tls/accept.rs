//! The server side of one TLS handshake, bounded by a deadline and counted.
//!
//! The ClientHello is read first so that a server name without a certificate can be refused
//! the way nginx's `ssl_reject_handshake` does it, with an `unrecognized_name` alert: rustls
//! itself answers a resolver's `None` with `access_denied`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::Acceptor;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::metrics::TlsMetrics;
use super::ServerConfigs;
use crate::service::ClientVerify;

/// A fatal `unrecognized_name` (112) alert record in plaintext, as sent before a ServerHello:
/// content type alert (21), legacy record version TLS 1.2, length 2, level fatal (2).
const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 112];

/// Performs handshakes with the configuration each client's server name calls for.
#[derive(Clone)]
pub(crate) struct TlsHandshake {
    configs: Arc<ServerConfigs>,
    metrics: TlsMetrics,
    timeout: Duration,
}

/// How a handshake that produced no stream ended.
enum Refusal {
    /// No certificate for the client's server name: the alert was sent.
    NoCert,
    /// A protocol or I/O error.
    Failed(io::Error),
}

impl TlsHandshake {
    /// Handshakes with `configs`, each bounded by `timeout` from the first byte read.
    pub(crate) fn new(configs: Arc<ServerConfigs>, metrics: TlsMetrics, timeout: Duration) -> Self {
        TlsHandshake {
            configs,
            metrics,
            timeout,
        }
    }

    /// The established TLS stream, or `None` (logged and counted) when the handshake failed,
    /// timed out or was refused.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Option<(TlsStream<TcpStream>, Option<ClientVerify>)> {
        let peer = tcp.peer_addr().ok();
        match tokio::time::timeout(self.timeout, self.negotiate(tcp)).await {
            Ok(Ok(stream)) => {
                self.metrics.handshake_ok();
                Some(stream)
            }
            Ok(Err(Refusal::NoCert)) => {
                self.metrics.handshake_no_cert();
                tracing::debug!(
                    ?peer,
                    "TLS handshake refused: no certificate for the server name"
                );
                None
            }
            Ok(Err(Refusal::Failed(e))) => {
                self.metrics.handshake_failed();
                tracing::debug!(?peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                self.metrics.handshake_failed();
                tracing::debug!(?peer, timeout = ?self.timeout, "TLS handshake timed out");
                None
            }
        }
    }

    async fn negotiate(
        &self,
        tcp: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, Option<ClientVerify>), Refusal> {
        let start = LazyConfigAcceptor::new(Acceptor::default(), tcp)
            .await
            .map_err(Refusal::Failed)?;
        // The resolver is asked again during the handshake; a reload in between can at worst
        // turn this answer into rustls' own refusal, never serve a wrong certificate.
        if !self.configs.has_cert(start.client_hello()) {
            let mut io = start.io;
            // The client is being turned away; whether it reads the alert is its business.
            let _ = io.write_all(&UNRECOGNIZED_NAME_ALERT).await;
            let _ = io.shutdown().await;
            return Err(Refusal::NoCert);
        }
        let (config, auth) = self.configs.for_hello(&start.client_hello());
        let stream = start.into_stream(config).await.map_err(Refusal::Failed)?;
        let verify = auth.outcome(stream.get_ref().1.peer_certificates());
        Ok((stream, verify))
    }
}
