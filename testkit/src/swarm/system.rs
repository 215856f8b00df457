//! Host commands (`ip`, `iptables`, `kill`), the machine-wide swarm lock, and cgroup clean-up.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// Runs `program args…`; the error names the command and carries its stderr.
pub(super) fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{program} {}`: cannot run: {e}", args.join(" ")))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned());
    }
    Err(format!(
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// [`run`], for commands whose failure is an answer (does it exist?) rather than an error.
pub(super) fn run_quiet(program: &str, args: &[&str]) -> Result<String, String> {
    run(program, args)
}

/// Sends `signal` to `pid` through `kill(1)` (the kit has no unsafe code); a process already
/// gone is not an error.
pub(super) fn signal(pid: u32, signal: &str) {
    let _ = run_quiet("kill", &[&format!("-{signal}"), &pid.to_string()]);
}

/// The machine-wide lock of the test swarm (names and addresses are fixed): held by the
/// returned file until it is dropped or the process dies.
pub(super) fn lock() -> Result<File, String> {
    let path = std::env::temp_dir().join("dockhand-testkit-swarm.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    // Called through the trait: std's own `File::lock` is newer than our MSRV.
    fs4::FileExt::lock(&file).map_err(|e| format!("locking {}: {e}", path.display()))?;
    Ok(file)
}

/// Removes cgroup `/<name>` and everything under it, in every hierarchy (v1 controllers and
/// v2 alike); a cgroup that still has processes stays (and is reported).
pub(super) fn remove_cgroups(name: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![root.join(name)];
    if let Ok(controllers) = std::fs::read_dir(root) {
        candidates.extend(controllers.flatten().map(|c| c.path().join(name)));
    }
    for dir in candidates {
        if dir.is_dir() {
            if let Err(e) = remove_tree(&dir) {
                eprintln!("test swarm: could not remove cgroup {}: {e}", dir.display());
            }
        }
    }
}

/// A cgroup's children first, then itself (cgroup folders are removed with rmdir, never
/// emptied file by file).
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    // Processes killed a moment ago may still be leaving their cgroup.
    let mut last = Ok(());
    for _ in 0..50 {
        last = std::fs::remove_dir(dir);
        if last.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    last
}

/// Where containerd shims (of any containerd on the host) put their sockets.
const SHIM_SOCKETS: &str = "/run/containerd/s";

/// The shim sockets there now.
pub(super) fn shim_sockets() -> BTreeSet<PathBuf> {
    std::fs::read_dir(SHIM_SOCKETS)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Removes the shim sockets not in `before` that refuse connections (their shim was killed
/// with its node).
pub(super) fn remove_dead_shim_sockets(before: &BTreeSet<PathBuf>) {
    remove_refused(shim_sockets().difference(before));
}

/// Removes the shim sockets made since `since` that refuse connections: those a killed run's
/// nodes left (the sweep does not know which existed before that run).
pub(super) fn remove_dead_shim_sockets_since(since: SystemTime) {
    let sockets = shim_sockets();
    remove_refused(sockets.iter().filter(|socket| {
        std::fs::metadata(socket)
            .and_then(|m| m.modified())
            .is_ok_and(|made| made >= since)
    }));
}

fn remove_refused<'a>(sockets: impl Iterator<Item = &'a PathBuf>) {
    for socket in sockets {
        let refused = UnixStream::connect(socket)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
        if refused {
            let _ = std::fs::remove_file(socket);
        }
    }
}
