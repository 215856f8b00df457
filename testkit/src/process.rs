//! Host processes for tests (dockhand run as a plain binary), and free loopback ports.

use std::collections::HashSet;
use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Pause between two looks at a process's log or status.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How much of the log a failing test prints.
const LOG_TAIL_ON_PANIC: usize = 8 * 1024;

/// A child process whose stdout and stderr go to one log file; killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    program: String,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with stdout and stderr captured in a log file under the temp directory.
    ///
    /// # Panics
    /// If the log file cannot be created or the program cannot start.
    pub fn spawn(command: &mut Command) -> Process {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let program = command.get_program().to_string_lossy().into_owned();
        let log = std::env::temp_dir().join(format!(
            "dockhand-test-{}-{}.log",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let stdout = File::create(&log)
            .unwrap_or_else(|e| panic!("creating log file {}: {e}", log.display()));
        // Both streams share one file description, so their lines interleave in order.
        let stderr = stdout
            .try_clone()
            .unwrap_or_else(|e| panic!("sharing log file {}: {e}", log.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        Process {
            child,
            program,
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far (stdout and stderr, interleaved).
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    ///
    /// # Panics
    /// If `timeout` passes first or the process exits first; the message carries the log.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return;
            }
            if let Some(status) = self.exit_status() {
                // It may have written the line just before exiting.
                if self.log().contains(needle) {
                    return;
                }
                panic!(
                    "{} exited ({status}) before logging {needle:?}; log:\n{}",
                    self.program,
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not log {needle:?} within {timeout:?}; log:\n{}",
                    self.program,
                    self.log()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The exit status, if the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM (through `kill(1)`, as the kit has no unsafe code).
    ///
    /// # Panics
    /// If `kill` cannot run.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends `signal` (e.g. `"TERM"`, `"HUP"`, `"INT"`) through `kill(1)`.
    ///
    /// # Panics
    /// If `kill` cannot run.
    pub fn signal(&self, signal: &str) {
        // A non-zero exit means the process is already gone, which callers observe anyway.
        if let Err(e) = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
        {
            panic!("running kill: {e}");
        }
    }

    /// Waits up to `timeout` for the process to exit; `None` if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let start = log.len().saturating_sub(LOG_TAIL_ON_PANIC);
            let start = (start..log.len())
                .find(|&i| log.is_char_boundary(i))
                .unwrap_or(log.len());
            eprintln!("--- last log of {} ---\n{}", self.program, &log[start..]);
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A TCP port that was free a moment ago on every address and that this process has not handed
/// out before (so parallel tests in one binary never get the same one).
///
/// It is taken from below the kernel's ephemeral range: a port that `bind(0)` picks is one an
/// outgoing connection may take before the test's server binds it (seen in CI: dockhand stopped
/// with "Address already in use" on such a port while another test made many connections).
///
/// # Panics
/// If no port can be bound at all.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Mutex::default);
    // The set only ever grows by whole entries: a poisoned lock still holds valid data.
    let mut given = given.lock().unwrap_or_else(PoisonError::into_inner);
    let below = ephemeral_start();
    if below > FIRST_FIXED_PORT {
        let span = below - FIRST_FIXED_PORT;
        // Each process starts elsewhere, so that two test binaries run at once rarely meet.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let offset = (std::process::id() ^ nanos) % u32::from(span);
        for step in 0..u32::from(span) {
            let port = FIRST_FIXED_PORT + ((offset + step) % u32::from(span)) as u16;
            if !given.contains(&port) && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
                given.insert(port);
                return port;
            }
        }
    }
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("binding 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("reading a bound address: {e}"))
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// The first port [`free_port`] considers.
const FIRST_FIXED_PORT: u16 = 20_000;

/// The first port of the kernel's ephemeral range (`ip_local_port_range`; Linux's default 32768).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// For [`require_tool!`](crate::require_tool): the path of `tool` when it is on `PATH`. Without
/// it, prints a skip line saying which Debian `package` provides it and returns `None`, or
/// panics when `DOCKHAND_REQUIRE_DOCKER=1` (CI installs the test tools: see `.ci/run`).
#[doc(hidden)]
pub fn tool_or_skip(tool: &str, package: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file());
    if found.is_some() {
        return found;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or(tool);
    let required = std::env::var("DOCKHAND_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: DOCKHAND_REQUIRE_DOCKER=1 but `{tool}` is not installed (apt-get install {package})"
    );
    eprintln!(
        "skipping {test}: `{tool}` is not installed (apt-get install {package}; \
         DOCKHAND_REQUIRE_DOCKER=1 makes this a failure)"
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let a = free_port();
        let b = free_port();
        assert_ne!(a, b);
        assert!(a < ephemeral_start(), "{a} is in the ephemeral range");
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, a)).expect("port a is free");
    }

    #[test]
    fn log_captures_both_streams_and_terminate_stops_the_process() {
        let mut process = Process::spawn(
            Command::new("sh")
                .arg("-c")
                .arg("echo out; echo err >&2; echo ready; exec sleep 60"),
        );
        process.wait_for_log("ready", Duration::from_secs(10));
        let log = process.log();
        assert!(log.contains("out") && log.contains("err"), "{log}");
        assert!(process.exit_status().is_none());
        process.terminate();
        let status = process.wait_timeout(Duration::from_secs(10));
        assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    }

    #[test]
    #[should_panic(expected = "exited")]
    fn waiting_for_a_line_of_a_dead_process_fails_fast() {
        let mut process = Process::spawn(Command::new("sh").arg("-c").arg("echo bye"));
        process.wait_for_log("never", Duration::from_secs(30));
    }
}
