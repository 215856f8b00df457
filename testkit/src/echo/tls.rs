//! The TLS side of the echo server: a self-signed certificate made at start.

use std::io;
use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A TLS acceptor with a fresh self-signed certificate for `hostname` and `localhost`, offering
/// h2 and HTTP/1.1 by ALPN.
///
/// # Errors
/// Certificate generation or rustls configuration failures (none expected with the ring provider).
pub(super) fn acceptor(hostname: &str) -> io::Result<TlsAcceptor> {
    let mut names = vec!["localhost".to_owned()];
    // rcgen rejects names that are not IA5 (ASCII); such a hostname just stays out of the cert.
    if hostname.is_ascii() && !hostname.is_empty() && hostname != "localhost" {
        names.push(hostname.to_owned());
    }
    let certified = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    // An explicit provider, so nothing depends on a process-wide default being installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
