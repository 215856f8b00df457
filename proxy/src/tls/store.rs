//! The certificate store: the folder's pairs as an index that is swapped whole on every change.
//!
//! Handshakes load the current [`CertIndex`] and never wait for a reload; open TLS sessions keep
//! the keys they negotiated with. The folder is polled rather than watched with inotify, which
//! misses symlinks replaced behind bind mounts (acme-companion's `host.crt -> ./host/fullchain.pem`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;

use super::folder::{self, Fingerprint};
use super::lookup::CertIndex;
use super::metrics::TlsMetrics;
use crate::certs::CertLookup;
use crate::spec::HttpsPolicy;

/// The default interval between two polls of the certificate folder.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The certificates of nginx-proxy's folder (`/etc/nginx/certs`), reloaded when it changes.
/// Cheap to clone: clones share the index.
#[derive(Clone)]
pub struct CertStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    index: ArcSwap<CertIndex>,
    metrics: TlsMetrics,
    provider: Arc<CryptoProvider>,
    /// Reloads so far, numbering the indexes they build.
    generation: std::sync::atomic::AtomicU64,
    /// The fingerprint the current index was built from, and the errors already warned about
    /// (by pair name), so an unchanged bad pair is reported once, not at every reload.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    fingerprint: Option<Fingerprint>,
    reported: HashMap<String, String>,
}

/// The outcome of one reload, for logging.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Pairs now served.
    pub loaded: usize,
    /// Pairs that failed to load, as `(pair name, reason)` (one that loaded before still serves
    /// its previous certificate); also the folder itself when it cannot be read (the previous
    /// certificates then stay).
    pub errors: Vec<(String, String)>,
    /// How many of `errors` were new and got a warning (an unchanged bad pair is warned about
    /// once, not at every reload).
    pub reported: usize,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("dir", &self.inner.dir)
            .field("certificates", &self.inner.index.load().len())
            .finish()
    }
}

impl CertStore {
    /// A store for `dir`, empty until [`CertStore::reload`] (or [`CertStore::watch`]) runs.
    /// Keys are loaded with rustls' ring provider, the one the TLS listener uses.
    pub fn new(dir: PathBuf, metrics: TlsMetrics) -> CertStore {
        CertStore {
            inner: Arc::new(Inner {
                dir,
                index: ArcSwap::from_pointee(CertIndex::default()),
                metrics,
                provider: Arc::new(rustls::crypto::ring::default_provider()),
                generation: std::sync::atomic::AtomicU64::new(0),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The folder this store reads.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The metrics this store publishes to (handshake counters included, for [`crate::serve_tls`]).
    pub fn metrics(&self) -> &TlsMetrics {
        &self.inner.metrics
    }

    /// The current index. Cheap; do not hold it across an `.await`.
    pub fn index(&self) -> Arc<CertIndex> {
        self.inner.index.load_full()
    }

    /// Whether no certificate pair is loaded.
    pub fn is_empty(&self) -> bool {
        self.inner.index.load().is_empty()
    }

    /// Reads the folder now and swaps in the new index. Blocking file I/O: call it at startup
    /// or from a blocking context. A bad pair is warned about once by name and left out, or,
    /// when it loaded before, keeps its last good certificate until its files are fixed or
    /// removed; a folder that cannot be read keeps the previous certificates; a missing
    /// folder has none.
    pub fn reload(&self) -> ReloadReport {
        let (pairs, fingerprint) = match folder::scan(&self.inner.dir) {
            Ok(scanned) => scanned,
            Err(e) => {
                let dir = self.inner.dir.display().to_string();
                tracing::warn!(%dir, error = %e, "cannot read the certificate folder; keeping the current certificates");
                return ReloadReport {
                    loaded: self.inner.index.load().len(),
                    errors: vec![(dir, e.to_string())],
                    reported: 1,
                };
            }
        };
        let mut errors = Vec::new();
        let mut certs = Vec::with_capacity(pairs.len());
        let mut expiries = Vec::with_capacity(pairs.len());
        let previous = self.inner.index.load();
        for pair in &pairs {
            match folder::load(pair, &self.inner.provider) {
                Ok(loaded) => {
                    expiries.push((pair.name.as_str(), loaded.not_after));
                    certs.push((pair.name.clone(), loaded.key));
                }
                Err(e) => {
                    // A pair caught between its two files being replaced (or broken by hand)
                    // keeps serving its last good certificate, as nginx keeps its old config
                    // when a reload fails; it goes away only when its files do.
                    if let Some(key) = previous.get(&pair.name) {
                        expiries.push((pair.name.as_str(), folder::leaf_not_after(key)));
                        certs.push((pair.name.clone(), key.clone()));
                    }
                    errors.push((pair.name.clone(), e.to_string()));
                }
            }
        }
        drop(previous);
        let mut client_cas = Vec::new();
        for ca in fingerprint.client_cas(&self.inner.dir) {
            match folder::load_client_ca(&ca, &self.inner.provider) {
                Ok(verifier) => client_cas.push((ca.name, verifier)),
                Err(e) => errors.push((
                    ca.ca
                        .file_name()
                        .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
                    e.to_string(),
                )),
            }
        }
        let generation = self
            .inner
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let index = CertIndex::new(certs).with_client_cas(client_cas, generation);
        let loaded = index.len();
        self.inner.index.store(Arc::new(index));
        self.inner.metrics.publish(&expiries);
        let reported = self.remember(fingerprint, &errors);
        tracing::debug!(dir = %self.inner.dir.display(), loaded, bad = errors.len(), "certificates loaded");
        ReloadReport {
            loaded,
            errors,
            reported,
        }
    }

    /// Reloads when the folder's fingerprint differs from the one the current index was built
    /// from; returns whether it did. A folder that cannot be read is left as it is.
    pub fn reload_if_changed(&self) -> bool {
        let now = match folder::scan(&self.inner.dir) {
            Ok((_, fingerprint)) => fingerprint,
            Err(e) => {
                // Warned about by the reload that first met it; polling must not repeat it.
                tracing::debug!(dir = %self.inner.dir.display(), error = %e, "cannot read the certificate folder");
                return false;
            }
        };
        if self.lock().fingerprint.as_ref() == Some(&now) {
            return false;
        }
        let report = self.reload();
        tracing::info!(dir = %self.inner.dir.display(), loaded = report.loaded, bad = report.errors.len(), "certificate folder changed; reloaded");
        true
    }

    /// Polls the folder every `interval` (default [`DEFAULT_POLL_INTERVAL`]) and reloads it
    /// when a pair appeared, disappeared or changed (followed through symlinks). Never returns;
    /// spawn it. The file I/O runs on tokio's blocking pool.
    pub async fn watch(self, interval: Duration) {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let store = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || store.reload_if_changed()).await {
                tracing::warn!(error = %e, "certificate reload task failed");
            }
        }
    }

    /// Records what the new index was built from and warns about errors not reported before;
    /// returns how many warnings it gave.
    fn remember(&self, fingerprint: Fingerprint, errors: &[(String, String)]) -> usize {
        let mut state = self.lock();
        let mut warned = 0;
        state.fingerprint = Some(fingerprint);
        let mut reported = HashMap::with_capacity(errors.len());
        for (name, error) in errors {
            if state.reported.get(name) != Some(error) {
                if name.ends_with(".crt") {
                    // A client CA file (`<vhost>.ca.crt`, `ca.crt`), named as it is.
                    tracing::warn!(file = %name, %error, "cannot load client CA {name}");
                } else {
                    tracing::warn!(cert = %name, %error, "cannot load certificate pair {name}.crt/{name}.key");
                }
                warned += 1;
            }
            reported.insert(name.clone(), error.clone());
        }
        state.reported = reported;
        warned
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves a state that is still consistent.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl CertLookup for CertStore {
    fn has_usable_cert(&self, host: &str, policy: &HttpsPolicy) -> bool {
        self.inner.index.load().for_vhost(host, policy).is_some()
    }
}
