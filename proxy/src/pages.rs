//! nginx-proxy's custom error page: `<html root>/errors/50x.html` replaces dockhand's own page
//! for 500, 502, 503 and 504 answers while it exists. The file is read when it changes (checked
//! on an interval, by its modification time and size), never per request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use bytes::Bytes;

/// Largest page read; a bigger file is reported and ignored. 1 MiB.
pub const MAX_PAGE_SIZE: u64 = 1 << 20;

/// Where the page lives under the html root (`/usr/share/nginx/html`).
pub const PAGE_PATH: &str = "errors/50x.html";

/// The custom 5xx page, if there is one.
#[derive(Debug)]
pub struct ErrorPage {
    path: PathBuf,
    page: ArcSwapOption<Bytes>,
    /// What the file looked like when it was last read: (modified, size).
    seen: Mutex<Option<(SystemTime, u64)>>,
}

impl ErrorPage {
    /// The page at `<root>/errors/50x.html`, read once now.
    pub fn new(root: &Path) -> ErrorPage {
        let page = ErrorPage {
            path: root.join(PAGE_PATH),
            page: ArcSwapOption::empty(),
            seen: Mutex::new(None),
        };
        page.reload();
        page
    }

    /// The page's bytes, when the file exists (a reference count, no copy).
    pub fn get(&self) -> Option<Bytes> {
        self.page.load().as_deref().cloned()
    }

    /// Reads the file again if its modification time or size changed; forgets the page when
    /// the file is gone. Blocking file system calls: run from a blocking-safe context.
    pub fn reload(&self) {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == stamp {
            return;
        }
        *seen = stamp;
        let Some((_, len)) = stamp else {
            if self.page.swap(None).is_some() {
                tracing::info!(path = %self.path.display(), "custom error page removed");
            }
            return;
        };
        if len > MAX_PAGE_SIZE {
            tracing::warn!(path = %self.path.display(), size = len, max = MAX_PAGE_SIZE, "custom error page too large; ignored");
            self.page.store(None);
            return;
        }
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                tracing::info!(path = %self.path.display(), size = bytes.len(), "custom error page loaded");
                self.page.store(Some(Arc::new(Bytes::from(bytes))));
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read custom error page");
                self.page.store(None);
            }
        }
    }

    /// Checks the file every `interval`, forever.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let page = self.clone();
            // A slow disk must not stall a runtime thread.
            let _ = tokio::task::spawn_blocking(move || page.reload()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_file() {
        let root = tempfile::tempdir().unwrap();
        let page = ErrorPage::new(root.path());
        assert_eq!(page.get(), None);
        std::fs::create_dir_all(root.path().join("errors")).unwrap();
        std::fs::write(root.path().join(PAGE_PATH), "oops").unwrap();
        page.reload();
        assert_eq!(page.get().as_deref(), Some(&b"oops"[..]));
        std::fs::write(root.path().join(PAGE_PATH), "changed!").unwrap();
        page.reload();
        assert_eq!(page.get().as_deref(), Some(&b"changed!"[..]));
        std::fs::remove_file(root.path().join(PAGE_PATH)).unwrap();
        page.reload();
        assert_eq!(page.get(), None);
    }
}
