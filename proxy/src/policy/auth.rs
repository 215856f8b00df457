//! Basic auth from htpasswd files at nginx-proxy's paths, cached and re-read when they change.
//!
//! `<htpasswd_dir>/<VH>_<sha1(path)>` protects one location and wins over
//! `<htpasswd_dir>/<VH>`, which protects the whole vhost (`<VH>` is the vhost name as written, or
//! `sha1(name)` for a `~regex` name). A missing file means no auth. Each file is stat'ed at most
//! once per recheck interval (1 s) by one request while the others use the copy in memory, and
//! re-read only when its modification time or size changed. Successful verifications are cached
//! for a minute, so keep-alive clients do not pay bcrypt on every request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use base64::Engine;
use dashmap::DashMap;
use http::HeaderValue;
use sha1::{Digest, Sha1};
use tokio::sync::OnceCell;

use super::htpasswd::Htpasswd;

/// How often a file is stat'ed for changes. Default 1 s.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(1);
/// How long a successful verification is reused. Default 60 s.
pub const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// Most verifications remembered at once; beyond that the cache is emptied. Default 1024.
pub const VERIFIED_CAPACITY: usize = 1024;

/// The htpasswd file names and realms of one location, computed once per table build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFiles {
    path_file: Option<String>,
    host_file: Option<String>,
    path_realm: HeaderValue,
    host_realm: HeaderValue,
}

impl AuthFiles {
    /// The files of location `path` (as written in `VIRTUAL_PATH`) of vhost `vhost` (as written
    /// in `VIRTUAL_HOST`). Realms follow nginx-proxy: `Restricted <VH><path>` for the location
    /// file, `Restricted <VH>` for the vhost file, `Restricted access` for regex vhosts.
    pub fn new(vhost: &str, path: &str) -> AuthFiles {
        let regex = vhost.starts_with('~');
        let name = if regex {
            sha1_hex(vhost.as_bytes())
        } else {
            vhost.to_owned()
        };
        // A name that could leave the folder is never looked up (valid hosts never are).
        let usable = super::acme::is_token(&name);
        let path_file = format!("{name}_{}", sha1_hex(path.as_bytes()));
        let (path_realm, host_realm) = if regex {
            let access = HeaderValue::from_static("Basic realm=\"Restricted access\"");
            (access.clone(), access)
        } else {
            (realm(&format!("{vhost}{path}")), realm(vhost))
        };
        AuthFiles {
            path_file: usable.then_some(path_file),
            host_file: usable.then_some(name),
            path_realm,
            host_realm,
        }
    }
}

/// `Basic realm="Restricted <name>"`; quotes and control bytes in `name` are dropped.
fn realm(name: &str) -> HeaderValue {
    let clean: String = name
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect();
    HeaderValue::from_str(&format!("Basic realm=\"Restricted {clean}\""))
        .unwrap_or(HeaderValue::from_static("Basic realm=\"Restricted\""))
}

/// Lower-case hex SHA-1, nginx-proxy's naming of per-path and regex-vhost files.
pub fn sha1_hex(data: &[u8]) -> String {
    Sha1::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The htpasswd files of one folder, loaded on demand, plus the verification cache.
#[derive(Debug)]
pub struct BasicAuth {
    dir: PathBuf,
    recheck: Duration,
    epoch: Instant,
    /// Keyed by names from the route table, never by client input: the fast hash is safe.
    files: DashMap<String, Arc<Watched>, foldhash::fast::RandomState>,
    verified: Mutex<HashMap<[u8; 20], Verified>>,
}

/// One file's last known content and when to look at it again.
#[derive(Debug)]
struct Watched {
    /// Milliseconds since `BasicAuth::epoch` after which the next request stats the file.
    next_check: AtomicU64,
    /// Completed once the first load is done: until then nobody may read `state`, so that a
    /// request racing the first load can never pass as "no file".
    first: OnceCell<()>,
    state: ArcSwap<Snapshot>,
}

#[derive(Debug, Default)]
struct Snapshot {
    stamp: Option<(Option<SystemTime>, u64)>,
    file: Option<Arc<Htpasswd>>,
}

#[derive(Debug)]
struct Verified {
    user: String,
    hash: String,
    until: Instant,
}

impl BasicAuth {
    /// Serves files from `dir`, re-checking each at most every [`DEFAULT_RECHECK`].
    pub fn new(dir: impl Into<PathBuf>) -> BasicAuth {
        BasicAuth::with_recheck(dir, DEFAULT_RECHECK)
    }

    /// Like [`BasicAuth::new`] with another recheck interval.
    pub fn with_recheck(dir: impl Into<PathBuf>, recheck: Duration) -> BasicAuth {
        BasicAuth {
            dir: dir.into(),
            recheck,
            epoch: Instant::now(),
            files: DashMap::default(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the request's `Authorization` against the files protecting `files`' location.
    ///
    /// `Ok` when no file protects it or the credentials match; otherwise `Err` with the
    /// `WWW-Authenticate` value for the 401.
    pub async fn check(
        &self,
        files: &AuthFiles,
        authorization: Option<&HeaderValue>,
    ) -> Result<(), HeaderValue> {
        let (name, htpasswd, realm) = match self.protecting(files).await {
            Some(found) => found,
            None => return Ok(()),
        };
        let Some((user, password)) = authorization.and_then(credentials) else {
            return Err(realm.clone());
        };
        let key = cache_key(name, authorization);
        if self.cached(&key, &htpasswd, &user) {
            return Ok(());
        }
        let check = htpasswd.clone();
        let checked_user = user.clone();
        // bcrypt takes tens of milliseconds or more: keep it off the async worker threads.
        let ok = tokio::task::spawn_blocking(move || check.verify(&checked_user, &password))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(realm.clone());
        }
        if let Some(hash) = htpasswd.hash_of(&user) {
            self.remember(key, user, hash.to_owned());
        }
        Ok(())
    }

    /// The file protecting the location (the location's own first), with its name and realm.
    async fn protecting<'f>(
        &self,
        files: &'f AuthFiles,
    ) -> Option<(&'f str, Arc<Htpasswd>, &'f HeaderValue)> {
        if let Some(name) = &files.path_file {
            if let Some(file) = self.load(name).await {
                return Some((name, file, &files.path_realm));
            }
        }
        let name = files.host_file.as_deref()?;
        let file = self.load(name).await?;
        Some((name, file, &files.host_realm))
    }

    /// The current content of file `name`, refreshed when its recheck time has come.
    async fn load(&self, name: &str) -> Option<Arc<Htpasswd>> {
        // Every request asks for two names: look up without allocating (and under a read lock),
        // insert only the first time.
        let watched = match self.files.get(name) {
            Some(watched) => watched.clone(),
            None => self
                .files
                .entry(name.to_owned())
                .or_insert_with(|| {
                    Arc::new(Watched {
                        next_check: AtomicU64::new(0),
                        first: OnceCell::new(),
                        state: ArcSwap::from_pointee(Snapshot::default()),
                    })
                })
                .clone(),
        };
        if !watched.first.initialized() {
            let path = self.dir.join(name);
            watched
                .first
                .get_or_init(|| async {
                    self.schedule(&watched);
                    refresh(&path, &watched).await;
                })
                .await;
            return watched.state.load().file.clone();
        }
        let now = self.now_ms();
        let due = watched.next_check.load(Ordering::Acquire);
        let claimed = now >= due
            && watched
                .next_check
                .compare_exchange(
                    due,
                    now + self.recheck_ms(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok();
        if claimed {
            refresh(&self.dir.join(name), &watched).await;
        }
        watched.state.load().file.clone()
    }

    fn schedule(&self, watched: &Watched) {
        let next = self.now_ms() + self.recheck_ms();
        watched.next_check.store(next, Ordering::Release);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn recheck_ms(&self) -> u64 {
        u64::try_from(self.recheck.as_millis()).unwrap_or(u64::MAX)
    }

    fn cached(&self, key: &[u8; 20], htpasswd: &Htpasswd, user: &str) -> bool {
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        verified.get(key).is_some_and(|v| {
            v.user == user && v.until > Instant::now() && htpasswd.hash_of(user) == Some(&v.hash)
        })
    }

    fn remember(&self, key: [u8; 20], user: String, hash: String) {
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if verified.len() >= VERIFIED_CAPACITY {
            verified.retain(|_, v| v.until > now);
        }
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        let until = now + VERIFIED_TTL;
        verified.insert(key, Verified { user, hash, until });
    }
}

/// Re-reads `path` when its modification time or size changed; a missing file means no auth,
/// an unreadable one denies everybody (fail closed).
async fn refresh(path: &Path, watched: &Watched) {
    let meta = match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_file() => meta,
        Ok(_) => return watched.state.store(Arc::new(Snapshot::default())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return watched.state.store(Arc::new(Snapshot::default()));
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot stat htpasswd file; denying");
            return deny_all(watched);
        }
    };
    let stamp = Some((meta.modified().ok(), meta.len()));
    if watched.state.load().stamp == stamp {
        return;
    }
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            let file = Htpasswd::parse(&String::from_utf8_lossy(&bytes));
            tracing::info!(path = %path.display(), users = file.len(), "loaded htpasswd file");
            let file = Some(Arc::new(file));
            watched.state.store(Arc::new(Snapshot { stamp, file }));
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read htpasswd file; denying");
            deny_all(watched);
        }
    }
}

fn deny_all(watched: &Watched) {
    let file = Some(Arc::new(Htpasswd::default()));
    watched
        .state
        .store(Arc::new(Snapshot { stamp: None, file }));
}

/// User and password of a `Basic` `Authorization` value; `None` for anything malformed.
fn credentials(value: &HeaderValue) -> Option<(String, String)> {
    let (scheme, encoded) = value.to_str().ok()?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (user, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))?;
    Some((user, password))
}

/// The cache key: the file and the credentials, hashed so that no password sits in memory.
fn cache_key(file: &str, authorization: Option<&HeaderValue>) -> [u8; 20] {
    let mut hasher = Sha1::new();
    hasher.update(file.as_bytes());
    hasher.update([0]);
    hasher.update(authorization.map_or(&[][..], HeaderValue::as_bytes));
    hasher.finalize().into()
}

#[cfg(test)]
mod tests;
