//! The dashboard in a real browser: headless Chromium loads the admin page while traffic and
//! container starts and stops happen, and the test reads what the page shows (its DOM).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dockhand_testkit::{assert_eventually, require_tool};

use crate::support::*;

/// The page's DOM once its fetches have run (`--virtual-time-budget` lets its timers and
/// requests play out before the dump). `extra` adds flags, e.g. a screenshot.
fn browse(chromium: &Path, url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("a browser profile folder");
    let output = Command::new("timeout")
        .arg("60")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The request counter the page shows for `host`.
fn requests_shown(dom: &str, host: &str) -> u64 {
    let marker = format!("class=\"requests-total\" data-host=\"{host}\">");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no request counter for {host} in:\n{dom}"));
    let digits: String = dom[at + marker.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

/// The readiness the page shows for backend `name`, if listed.
fn readiness_shown(dom: &str, name: &str) -> Option<String> {
    let marker = format!("data-backend=\"{name}\">");
    let at = dom.find(&marker)? + marker.len();
    Some(dom[at..].split('<').next().unwrap_or_default().to_owned())
}

#[test]
fn the_dashboard_shows_vhosts_backends_leaving_rotation_traffic_and_skipped_containers() {
    require_docker!();
    let chromium = require_tool!("chromium", "chromium");
    let host = unique("dash");
    let proxy = dockhand()
        .env("DOCKHAND_EJECT_AFTER", "1")
        .env("DOCKHAND_EJECT_BACKOFF", "60s")
        .env("DOCKHAND_EJECT_BACKOFF_MAX", "60s")
        .start();
    let web = backend().name("web").vhost(&host).start();
    // Nothing listens on 81: its first failed connect ejects it, and the retry goes to `web`.
    let broken = (backend().name("broken").vhost(&host))
        .env("VIRTUAL_PORT", "81")
        .start();
    let bad = (backend().name("bad").vhost(&unique("bad")))
        .env("VIRTUAL_PORT", "eighty")
        .start();
    proxy.wait_status(&host, "/", 200);
    assert_eventually!(
        proxy.status(&host, "/") == 200
            && (proxy.backends(&host).iter())
                .any(|b| b["container"] == broken.name() && b["ejected"] == true),
        Duration::from_secs(10),
        "the broken backend was never ejected: {:?}",
        proxy.backends(&host)
    );
    let url = format!("http://{}/", proxy.admin);

    let first = browse(&chromium, &url, &[]);
    assert!(first.contains(&format!("data-host=\"{host}\"")), "{first}");
    let shown = readiness_shown(&first, web.name());
    assert_eq!(shown.as_deref(), Some("up"), "{first}");
    let shown = readiness_shown(&first, broken.name()).unwrap_or_default();
    assert!(shown.starts_with("ejected, "), "{shown:?}");
    // Skipped, with the reason; the route log shows the backends coming in.
    assert!(
        first.contains(bad.name()) && first.contains("invalid VIRTUAL_PORT"),
        "{first}"
    );
    assert!(
        first.contains(&format!("backend added: {host} / → {}", web.name())),
        "{first}"
    );
    let before = requests_shown(&first, &host);

    // More traffic, and a container starting, then one stopping.
    for _ in 0..25 {
        proxy.status(&host, "/");
    }
    let late = backend().name("late").vhost(&host).start();
    assert_eventually!(
        proxy.backends(&host).len() == 3,
        PROPAGATION,
        "late never joined"
    );
    let second = browse(&chromium, &url, &[]);
    assert_eq!(
        readiness_shown(&second, late.name()).as_deref(),
        Some("up"),
        "{second}"
    );
    let after = requests_shown(&second, &host);
    assert!(
        after >= before + 25,
        "the counter went from {before} to {after}"
    );

    late.stop();
    assert_eventually!(
        proxy.backends(&host).len() == 2,
        PROPAGATION,
        "late never left"
    );
    let third = browse(&chromium, &url, &[]);
    assert_eq!(readiness_shown(&third, late.name()), None, "{third}");
    assert!(
        third.contains(&format!("backend removed: {host} / → {}", late.name())),
        "{third}"
    );

    // Nothing of it on the public port: an unknown host gets 503, a known one its backend.
    assert_eq!(proxy.status("dashboard.invalid", "/api/status"), 503);
    let proxied = proxy.get(&host, "/api/status").text();
    assert!(!proxied.contains("uptime_s"), "{proxied}");

    // DOCKHAND_SCREENSHOT=docs/dashboard.png refreshes the README's picture.
    if let Ok(path) = std::env::var("DOCKHAND_SCREENSHOT") {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        for _ in 0..40 {
            proxy.status(&host, "/");
        }
        let screenshot = format!("--screenshot={}", path.display());
        browse(&chromium, &url, &["--window-size=1280,820", &screenshot]);
        assert!(path.exists(), "no screenshot at {}", path.display());
    }
}
