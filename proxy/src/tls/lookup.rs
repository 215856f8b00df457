//! Which certificate name serves a TLS client, as nginx-proxy's template decides it.
//!
//! For a vhost: `CERT_NAME`, else the vhost's name, else its parent domain (one level up, only
//! for names of more than two labels), else `default` when the policy trusts it. For a name no
//! vhost serves over HTTPS (nginx's fallback server): the exact name or its parent when present,
//! else `default`. Without SNI: `default`. Nothing found means the handshake is refused.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;

use crate::spec::{HttpsMethod, HttpsPolicy};

/// The name of `default.crt`/`default.key`.
pub const DEFAULT_CERT: &str = "default";

/// The certificates loaded from the folder, by pair name (lower-cased file stem).
#[derive(Debug, Default)]
pub struct CertIndex {
    certs: HashMap<String, Arc<CertifiedKey>>,
    /// Client CA verifiers by vhost name (`<vhost>.ca.crt`), `""` for the global `ca.crt`.
    client_cas: HashMap<String, Arc<dyn ClientCertVerifier>>,
    /// Which reload built this index (client-auth configurations are rebuilt per index).
    generation: u64,
}

impl CertIndex {
    /// An index of the given `(name, certificate)` pairs; names are lower-cased.
    pub(crate) fn new(certs: impl IntoIterator<Item = (String, Arc<CertifiedKey>)>) -> Self {
        let certs = certs
            .into_iter()
            .map(|(name, key)| (name.to_ascii_lowercase(), key))
            .collect();
        CertIndex {
            certs,
            ..CertIndex::default()
        }
    }

    /// This index with the client CAs of the folder, built by reload `generation`.
    pub(crate) fn with_client_cas(
        mut self,
        client_cas: impl IntoIterator<Item = (String, Arc<dyn ClientCertVerifier>)>,
        generation: u64,
    ) -> Self {
        self.client_cas = client_cas.into_iter().collect();
        self.generation = generation;
        self
    }

    /// The client CA for clients of the vhost named `vhost`: `<vhost>.ca.crt`, else `ca.crt`,
    /// with the name it is indexed by.
    pub(crate) fn client_ca(&self, vhost: &str) -> Option<(&str, &Arc<dyn ClientCertVerifier>)> {
        let vhost = vhost.to_ascii_lowercase();
        self.client_cas
            .get_key_value(&vhost)
            .or_else(|| {
                self.client_cas
                    .get_key_value(super::folder::GLOBAL_CLIENT_CA)
            })
            .map(|(name, verifier)| (name.as_str(), verifier))
    }

    /// Which reload built this index.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The pair named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.certs.get(&name.to_ascii_lowercase())
        } else {
            self.certs.get(name)
        }
    }

    /// Number of pairs loaded.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether no pair is loaded.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The names of the loaded pairs, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.certs.keys().map(String::as_str)
    }

    /// The certificate for a vhost named `vhost` (its `VIRTUAL_HOST` entry) under `policy`, or
    /// `None` when the vhost has no usable one.
    pub fn for_vhost(&self, vhost: &str, policy: &HttpsPolicy) -> Option<&Arc<CertifiedKey>> {
        let own = match &policy.cert_name {
            Some(name) => self.get(name),
            None => self.closest(vhost),
        };
        own.or_else(|| {
            policy
                .trust_default_cert
                .then(|| self.get(DEFAULT_CERT))
                .flatten()
        })
    }

    /// The name of the pair that serves `vhost` under `policy` (as [`CertIndex::for_vhost`]
    /// chooses), with its leaf's notAfter (Unix seconds) when readable: what the dashboard
    /// shows.
    pub fn vhost_cert(&self, vhost: &str, policy: &HttpsPolicy) -> Option<(&str, Option<i64>)> {
        let key = self.for_vhost(vhost, policy)?;
        let (name, _) = (self.certs.iter()).find(|(_, k)| Arc::ptr_eq(k, key))?;
        Some((name.as_str(), super::folder::leaf_not_after(key)))
    }

    /// The certificate for a client that reaches no HTTPS vhost: `sni` or its parent when
    /// present, else `default`; `None` refuses the handshake.
    pub fn for_fallback(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        sni.and_then(|name| self.closest(name))
            .or_else(|| self.get(DEFAULT_CERT))
    }

    /// The certificate for a TLS client naming `sni`, given the vhost (name and policy) that
    /// serves that name, if any. A `nohttps` vhost is not served on HTTPS, so its clients get
    /// the fallback server's certificate, `default`, as with nginx-proxy.
    pub fn select(
        &self,
        sni: Option<&str>,
        vhost: Option<(&str, &HttpsPolicy)>,
    ) -> Option<&Arc<CertifiedKey>> {
        match vhost {
            Some((_, policy)) if policy.method == HttpsMethod::NoHttps => self.get(DEFAULT_CERT),
            Some((name, policy)) => {
                // A regex vhost has no file name of its own; its clients' names stand in.
                let name = match (name.starts_with('~'), sni) {
                    (true, Some(sni)) => sni,
                    _ => name,
                };
                self.for_vhost(name, policy)
            }
            None => self.for_fallback(sni),
        }
    }

    /// The exact name, else its parent domain.
    fn closest(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        self.get(name)
            .or_else(|| parent(name).and_then(|p| self.get(p)))
    }
}

/// The name minus its first label, for names of more than two labels (never the grandparent):
/// `a.b.example.com` → `b.example.com`, `*.example.com` → `example.com`, `example.com` → none.
pub(crate) fn parent(name: &str) -> Option<&str> {
    let (_, rest) = name.split_once('.')?;
    rest.contains('.').then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_one_level_up_and_needs_three_labels() {
        assert_eq!(parent("a.b.example.com"), Some("b.example.com"));
        assert_eq!(parent("*.example.com"), Some("example.com"));
        assert_eq!(parent("www.example.com"), Some("example.com"));
        assert_eq!(parent("example.com"), None);
        assert_eq!(parent("localhost"), None);
    }
}
