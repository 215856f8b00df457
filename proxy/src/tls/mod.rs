//! TLS termination: the certificate store fed by nginx-proxy's certificate folder, the
//! per-handshake certificate choice, and the rustls server configuration of the HTTPS listener.
//!
//! One [`ServerConfig`] is built per `SSL_POLICY` and HTTP/2 choice in use, and chosen per
//! handshake from the client's server name (see `policy`); the resolver they share reads the current certificate index and the
//! current route table at every handshake, so reloads and table swaps take effect for new
//! connections while open sessions keep what they negotiated. The HTTPS accept loop itself is
//! [`crate::serve_tls`], in the listener, which sits above this module.

mod accept;
mod client;
mod folder;
mod lookup;
mod metrics;
mod policy;
mod store;

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::host::normalize_host;
use crate::spec::{HttpsMethod, SslPolicy};
use crate::table::TableReader;

pub(crate) use accept::TlsHandshake;
pub(crate) use client::ClientAuth;
pub use folder::PairError;
pub use lookup::{CertIndex, DEFAULT_CERT};
pub use metrics::TlsMetrics;
pub use store::{CertStore, ReloadReport, DEFAULT_POLL_INTERVAL};

/// Proxy-wide TLS settings: the defaults for vhosts that do not set their own and for clients
/// that reach no vhost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// `ENABLE_HTTP2`: offer `h2` by ALPN at all. Default true.
    pub http2: bool,
    /// `SSL_POLICY`. Default `Mozilla-Intermediate`.
    pub ssl_policy: SslPolicy,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            http2: true,
            ssl_policy: SslPolicy::DEFAULT,
        }
    }
}

/// The HTTPS listener's configurations, one chosen per handshake: rustls' ring provider, the
/// versions and suites of the vhost's `SSL_POLICY` (TLS 1.2 and 1.3 by default), ALPN `h2`
/// then `http/1.1` (`http/1.1` only where HTTP/2 is off for the vhost or proxy-wide), no client
/// authentication, rustls' default in-memory session cache and no session tickets (like
/// nginx-proxy). Certificates come from `store`, chosen per handshake from the client's server
/// name and the vhost `table` serves for it.
#[derive(Debug)]
pub struct ServerConfigs {
    resolver: Arc<Resolver>,
    configs: policy::Configs,
    options: TlsOptions,
}

/// See [`ServerConfigs`].
pub fn server_config(
    store: CertStore,
    table: TableReader,
    options: TlsOptions,
) -> Arc<ServerConfigs> {
    let resolver = Arc::new(Resolver { store, table });
    let configs = policy::Configs::new(resolver.clone());
    // The proxy-wide policy is reported at start when it cannot be honoured exactly.
    configs.get(options.ssl_policy, options.http2, &ClientAuth::Off);
    Arc::new(ServerConfigs {
        resolver,
        configs,
        options,
    })
}

impl ServerConfigs {
    /// The configuration for a client whose ClientHello is `hello`: its vhost's policy,
    /// HTTP/2 setting and client CA, else the proxy-wide ones and no client authentication;
    /// and how client certificates are asked for.
    pub(crate) fn for_hello(&self, hello: &ClientHello<'_>) -> (Arc<ServerConfig>, ClientAuth) {
        let sni = hello.server_name().and_then(normalize_host);
        let table = self.resolver.table.load();
        let (policy, h2, auth) = match table.https_vhost(sni.as_deref()) {
            // A `nohttps` vhost is not served over TLS: its clients reach the fallback server.
            Some((name, https)) if https.method != HttpsMethod::NoHttps => {
                let name = match (name.starts_with('~'), sni.as_deref()) {
                    (true, Some(sni)) => sni,
                    _ => name,
                };
                let index = self.resolver.store.index();
                let auth = ClientAuth::for_vhost(&index, name, https.verify_client);
                (https.ssl_policy, https.http2, auth)
            }
            Some((_, https)) => (https.ssl_policy, https.http2, ClientAuth::Off),
            None => (self.options.ssl_policy, true, ClientAuth::Off),
        };
        let config = self.configs.get(policy, h2 && self.options.http2, &auth);
        (config, auth)
    }

    /// Whether a certificate would be served to this client now.
    pub(crate) fn has_cert(&self, hello: ClientHello<'_>) -> bool {
        self.resolver.resolve(hello).is_some()
    }
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
