//! Basic auth from htpasswd files at nginx-proxy's paths, kept in memory and re-read when they
//! change.
//!
//! `<htpasswd_dir>/<VH>_<sha1(path)>` protects one location and wins over
//! `<htpasswd_dir>/<VH>`, which protects the whole vhost (`<VH>` is the vhost name as written, or
//! `sha1(name)` for a `~regex` name). A missing file means no auth.
//!
//! The folder is read when the proxy starts, then listed again every recheck interval (1 s) by
//! a thread of its own, which re-reads a file only when its modification time or size changed.
//! Requests only look names up in the last listing: no file system access on the request path,
//! and a cost per interval that follows the files present, not the vhosts served (with 10,000
//! vhosts, stat'ing each vhost's two names once a second from the requests took a third of the
//! throughput). Successful verifications are cached for a minute, so keep-alive clients do not
//! pay bcrypt on every request.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use base64::Engine;
use http::HeaderValue;
use sha1::{Digest, Sha1};

use super::htpasswd::Htpasswd;

/// How often the folder is listed for changes. Default 1 s.
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

/// The htpasswd files of one folder, plus the verification cache.
#[derive(Debug)]
pub struct BasicAuth {
    folder: Arc<Folder>,
    verified: Mutex<HashMap<[u8; 20], Verified>>,
}

/// The folder and its files as of the last listing (shared with the thread that lists it).
#[derive(Debug)]
struct Folder {
    dir: PathBuf,
    files: ArcSwap<Files>,
}

/// One listing of the folder.
#[derive(Debug, Default)]
struct Files {
    /// Keyed by file name (names looked up come from the route table, never from client input:
    /// the fast hash is safe).
    by_name: HashMap<String, Loaded, foldhash::fast::RandomState>,
    /// The folder exists but could not be listed: every location is refused (fail closed).
    unlistable: bool,
}

/// One file's content, and the modification time and size it was read at (`None` when it could
/// not be read: it then denies everybody, and is read again at the next listing).
#[derive(Debug)]
struct Loaded {
    stamp: Option<Stamp>,
    file: Arc<Htpasswd>,
}

#[derive(Debug)]
struct Verified {
    user: String,
    hash: String,
    until: Instant,
}

impl BasicAuth {
    /// Serves files from `dir`, listing it again every [`DEFAULT_RECHECK`].
    pub fn new(dir: impl Into<PathBuf>) -> BasicAuth {
        BasicAuth::with_recheck(dir, DEFAULT_RECHECK)
    }

    /// Like [`BasicAuth::new`] with another recheck interval. Reads the folder before it
    /// returns, so that the first request already finds its files.
    pub fn with_recheck(dir: impl Into<PathBuf>, recheck: Duration) -> BasicAuth {
        let dir = dir.into();
        let files = scan(&dir, &Files::default());
        let folder = Arc::new(Folder {
            dir,
            files: ArcSwap::from_pointee(files),
        });
        watch(Arc::downgrade(&folder), recheck);
        BasicAuth {
            folder,
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
        let (name, htpasswd, realm) = match self.protecting(files) {
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
    fn protecting<'f>(
        &self,
        files: &'f AuthFiles,
    ) -> Option<(&'f str, Arc<Htpasswd>, &'f HeaderValue)> {
        let listed = self.folder.files.load();
        if listed.unlistable {
            let name = files.host_file.as_deref().unwrap_or_default();
            return Some((name, Arc::default(), &files.host_realm));
        }
        if listed.by_name.is_empty() {
            return None;
        }
        let found = |name: Option<&'f str>| {
            let name = name?;
            Some((name, listed.by_name.get(name)?.file.clone()))
        };
        if let Some((name, file)) = found(files.path_file.as_deref()) {
            return Some((name, file, &files.path_realm));
        }
        let (name, file) = found(files.host_file.as_deref())?;
        Some((name, file, &files.host_realm))
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

/// Lists the folder every `recheck` on a thread of its own (blocking file system calls have no
/// place on the data plane's workers), until the folder's owner is dropped.
fn watch(folder: Weak<Folder>, recheck: Duration) {
    let spawned = std::thread::Builder::new()
        .name("htpasswd-watch".to_owned())
        .spawn(move || loop {
            std::thread::sleep(recheck);
            let Some(folder) = folder.upgrade() else {
                return;
            };
            let previous = folder.files.load_full();
            folder.files.store(Arc::new(scan(&folder.dir, &previous)));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the htpasswd watcher; htpasswd files will not be re-read");
    }
}

/// The files of `dir` now: unchanged ones taken over from `previous`, changed ones read again.
/// A missing folder means no auth anywhere; one that cannot be listed denies everybody.
fn scan(dir: &Path, previous: &Files) -> Files {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Files::default(),
        Err(e) => {
            if !previous.unlistable {
                tracing::error!(dir = %dir.display(), error = %e, "cannot list the htpasswd folder; denying every request");
            }
            return Files {
                by_name: HashMap::default(),
                unlistable: true,
            };
        }
    };
    let mut by_name = HashMap::default();
    for entry in entries.flatten() {
        // Names that are not valid UTF-8 cannot be a vhost's file.
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        let loaded = match previous.by_name.get(&name) {
            Some(known) => reload(&path, known),
            None => read(&path, stamp(&path), false),
        };
        if let Some(loaded) = loaded {
            by_name.insert(name, loaded);
        }
    }
    Files {
        by_name,
        unlistable: false,
    }
}

/// `known` again when the file did not change since it was read, else the file read anew (one
/// that could not be read is tried again, without logging the same failure every time).
fn reload(path: &Path, known: &Loaded) -> Option<Loaded> {
    let now = stamp(path);
    match now {
        Ok(Some(stamp)) if known.stamp == Some(stamp) => Some(Loaded {
            stamp: known.stamp,
            file: known.file.clone(),
        }),
        _ => read(path, now, known.stamp.is_none()),
    }
}

/// The file at `path`, whose [`stamp`] was just taken: `None` when it is not a file (a folder,
/// or gone since the listing); a file that cannot be read denies everybody (logged unless
/// `quiet`).
fn read(path: &Path, stamp: io::Result<Option<Stamp>>, quiet: bool) -> Option<Loaded> {
    let stamp = match stamp {
        Ok(Some(stamp)) => stamp,
        Ok(None) => return None,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => return Some(denied(path, &e, quiet)),
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let file = Htpasswd::parse(&String::from_utf8_lossy(&bytes));
            tracing::info!(path = %path.display(), users = file.len(), "loaded htpasswd file");
            Some(Loaded {
                stamp: Some(stamp),
                file: Arc::new(file),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => Some(denied(path, &e, quiet)),
    }
}

/// A file's modification time and size.
type Stamp = (Option<SystemTime>, u64);

/// The [`Stamp`] of the file at `path`; `None` when it is not a file. Follows symbolic links, as
/// nginx does (Kubernetes-style mounted secrets are links).
fn stamp(path: &Path) -> io::Result<Option<Stamp>> {
    let meta = std::fs::metadata(path)?;
    Ok(meta.is_file().then(|| (meta.modified().ok(), meta.len())))
}

fn denied(path: &Path, error: &io::Error, quiet: bool) -> Loaded {
    if !quiet {
        tracing::error!(path = %path.display(), %error, "cannot read htpasswd file; denying");
    }
    Loaded {
        stamp: None,
        file: Arc::default(),
    }
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
