//! TLS termination: the certificate store fed by nginx-proxy's certificate folder, the
//! per-handshake certificate choice, and the rustls server configuration of the HTTPS listener.
//!
//! The [`ServerConfig`] is built once; its resolver reads the current certificate index and the
//! current route table at every handshake, so reloads and table swaps take effect for new
//! connections while open sessions keep what they negotiated. The HTTPS accept loop itself is
//! [`crate::serve_tls`], in the listener, which sits above this module.

mod accept;
mod folder;
mod lookup;
mod metrics;
mod store;

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::host::normalize_host;
use crate::table::TableReader;

pub(crate) use accept::TlsHandshake;
pub use folder::PairError;
pub use lookup::{CertIndex, DEFAULT_CERT};
pub use metrics::TlsMetrics;
pub use store::{CertStore, ReloadReport, DEFAULT_POLL_INTERVAL};

/// ALPN protocols offered, most preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The HTTPS listener's configuration: rustls' ring provider, TLS 1.2 and 1.3, ALPN `h2` then
/// `http/1.1`, no client authentication, rustls' default in-memory session cache and no
/// session tickets (like nginx-proxy). Certificates come from `store`, chosen per handshake
/// from the client's server name and the vhost `table` serves for it.
pub fn server_config(store: CertStore, table: TableReader) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        // The ring provider implements cipher suites and key exchanges for both versions.
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver { store, table }));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Chooses the certificate of each handshake from the current index and route table.
#[derive(Debug)]
struct Resolver {
    store: CertStore,
    table: TableReader,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name().and_then(normalize_host);
        let sni = sni.as_deref();
        let table = self.table.load();
        self.store
            .index()
            .select(sni, table.https_vhost(sni))
            .cloned()
    }
}

#[cfg(test)]
mod tests;
