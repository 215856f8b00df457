//! The client side of TLS for tests: any certificate is accepted (tests use self-signed ones),
//! and what was negotiated is reported so a test can check which certificate it was served.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::HttpError;

/// What a TLS handshake negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// The ALPN protocol chosen by the server (`b"h2"`, `b"http/1.1"`), if any.
    pub alpn: Option<Vec<u8>>,
    /// The server's certificate chain, leaf first, DER-encoded.
    pub peer_certificates: Vec<Vec<u8>>,
}

/// Runs the TLS handshake over `tcp`, sending `host` (port stripped) as the server name, and
/// accepting any certificate (the tests compare what was served instead).
///
/// # Errors
/// An invalid server name, or a handshake the server refused.
pub async fn connect(
    tcp: TcpStream,
    host: &str,
    offer_h2: bool,
) -> Result<(TlsStream<TcpStream>, TlsInfo), HttpError> {
    let name = server_name(host)?;
    let connector = TlsConnector::from(Arc::new(client_config(offer_h2)?));
    let stream = connector.connect(name, tcp).await.map_err(HttpError::Tls)?;
    let (_, session) = stream.get_ref();
    let info = TlsInfo {
        alpn: session.alpn_protocol().map(<[u8]>::to_vec),
        peer_certificates: session
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect(),
    };
    Ok((stream, info))
}

/// `a.test:8443` → `a.test`; `[::1]:443` → `::1`; IP addresses become IP server names (which
/// rustls does not send as SNI, as the RFC says).
fn server_name(host: &str) -> Result<ServerName<'static>, HttpError> {
    let bare = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned())
        .map_err(|e| HttpError::Invalid(format!("TLS server name {host:?}: {e}")))
}

fn client_config(offer_h2: bool) -> Result<ClientConfig, HttpError> {
    // An explicit provider, so nothing depends on a process-wide default being installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyCert(Arc::clone(&provider)));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Invalid(format!("TLS config: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = if offer_h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// Trusts any certificate but still checks the handshake signatures, so the session is real.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_drops_port_and_brackets() {
        let dns = |s: &str| match server_name(s).expect("valid name") {
            ServerName::DnsName(d) => d.as_ref().to_owned(),
            other => format!("{other:?}"),
        };
        assert_eq!(dns("a.test:8443"), "a.test");
        assert_eq!(dns("a.test"), "a.test");
        assert!(matches!(
            server_name("[::1]:443").expect("valid ip"),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("127.0.0.1").expect("valid ip"),
            ServerName::IpAddress(_)
        ));
        assert!(server_name("bad name!").is_err());
    }
}
