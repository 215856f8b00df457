//! Running the `docker` CLI, naming and labelling what tests create, and sweeping leftovers.
//!
//! The kit drives Docker through its CLI rather than bollard: the CLI negotiates the API version
//! with whatever engine is installed (no drift between a client crate's default API and an older
//! daemon), every step reads like the command a person would type, and every failure names the
//! exact command to rerun by hand. Tests are synchronous, so blocking on a child process is fine.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Label on everything the kit creates: `docker ps -a --filter label=dockhand.test=1`.
pub const TEST_LABEL: &str = "dockhand.test=1";

/// Label naming the creating process, so a later run can remove what a killed run left behind.
const PID_LABEL: &str = "dockhand.test.pid";

/// Label naming the creating host (UTS name), so pids are only compared on the same host.
const HOST_LABEL: &str = "dockhand.test.host";

/// A `docker` command that could not run or exited non-zero.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed: {reason}")]
pub struct DockerError {
    command: String,
    reason: String,
}

impl DockerError {
    pub(crate) fn new(command: String, reason: String) -> Self {
        DockerError { command, reason }
    }
}

/// Whether a Docker engine answers (checked once per process with `docker version`).
pub fn docker_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// For [`require_docker!`](crate::require_docker): `true` when the test may go on. Without an
/// engine it prints a skip line and returns `false`, or panics when `DOCKHAND_REQUIRE_DOCKER=1`.
#[doc(hidden)]
pub fn docker_or_skip(module: &str) -> bool {
    if docker_available() {
        return true;
    }
    // libtest names the test's thread after the test: a better name than the module.
    let thread = std::thread::current();
    let test = thread.name().filter(|n| *n != "main").unwrap_or(module);
    let required = std::env::var("DOCKHAND_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: DOCKHAND_REQUIRE_DOCKER=1 but no Docker engine answers `docker version`"
    );
    eprintln!("skipping {test}: no Docker engine (set DOCKHAND_REQUIRE_DOCKER=1 to fail instead)");
    false
}

/// Runs `docker args…` and returns its trimmed stdout.
pub(crate) fn docker<I, S>(args: I) -> Result<String, DockerError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("docker");
    command.args(args);
    let output = output(&mut command, None)?;
    checked(&command, output)
}

/// Runs `docker args…` feeding `input` on stdin, and returns its trimmed stdout.
pub(crate) fn docker_with_stdin<I, S>(args: I, input: &[u8]) -> Result<String, DockerError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("docker");
    command.args(args);
    let output = output(&mut command, Some(input))?;
    checked(&command, output)
}

/// Runs `docker -H host args…` (another engine than the main one), feeding `input` on stdin
/// when given, and returns its trimmed stdout.
pub(crate) fn docker_at<I, S>(
    host: &str,
    args: I,
    input: Option<&[u8]>,
) -> Result<String, DockerError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("docker");
    command.arg("-H").arg(host).args(args);
    let output = output(&mut command, input)?;
    checked(&command, output)
}

/// Runs `docker args…` and returns its raw stdout (for `docker save`, whose output is binary).
pub(crate) fn docker_bytes<I, S>(args: I) -> Result<Vec<u8>, DockerError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("docker");
    command.args(args);
    let output = output(&mut command, None)?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(DockerError {
        command: describe(&command),
        reason: format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    })
}

/// Runs `docker args…` and returns its output whatever the exit status (for `docker exec`).
pub(crate) fn docker_output<I, S>(args: I) -> Result<Output, DockerError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("docker");
    command.args(args);
    output(&mut command, None)
}

/// The `--label` arguments every created object carries.
pub(crate) fn label_args() -> Vec<String> {
    vec![
        "--label".to_owned(),
        TEST_LABEL.to_owned(),
        "--label".to_owned(),
        format!("{PID_LABEL}={}", std::process::id()),
        "--label".to_owned(),
        format!("{HOST_LABEL}={}", host_id()),
    ]
}

/// A name no other test, process or earlier run uses: `dh-<test>-<process token>-<n>[-<hint>]`.
/// The test part comes from the thread name, which libtest sets to the test's path.
pub(crate) fn unique_name(hint: Option<&str>) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let thread = std::thread::current();
    let test = thread
        .name()
        .and_then(|name| name.rsplit("::").next())
        .filter(|name| *name != "main")
        .unwrap_or("test");
    let mut name = format!("dh-{}-{}-{n}", sanitize(test, 24), process_token());
    if let Some(hint) = hint {
        name.push('-');
        name.push_str(&sanitize(hint, 32));
    }
    name
}

/// Removes, once per process, containers and networks labelled by a process of this host that
/// no longer runs (a test run killed before its `Drop`s ran).
pub(crate) fn sweep_leftovers() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let format =
            format!("{{{{.ID}}}} {{{{.Label \"{PID_LABEL}\"}}}} {{{{.Label \"{HOST_LABEL}\"}}}}");
        let filter = format!("label={TEST_LABEL}");
        let ps = ["ps", "-a", "--filter", &filter, "--format", &format];
        for id in dead_owners(docker(ps)) {
            let _ = docker(["rm", "-f", "-v", &id]);
        }
        let ls = ["network", "ls", "--filter", &filter, "--format", &format];
        for id in dead_owners(docker(ls)) {
            let _ = docker(["network", "rm", &id]);
        }
    });
}

/// Ids from `<id> <pid> <host>` lines whose owner ran on this host and is gone.
fn dead_owners(listing: Result<String, DockerError>) -> Vec<String> {
    let host = host_id();
    let Ok(listing) = listing else {
        return Vec::new();
    };
    listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (id, pid, owner_host) = (fields.next()?, fields.next()?, fields.next()?);
            let pid: u32 = pid.parse().ok()?;
            let gone = owner_host == host && !Path::new(&format!("/proc/{pid}")).exists();
            gone.then(|| id.to_owned())
        })
        .collect()
}

fn output(command: &mut Command, input: Option<&[u8]>) -> Result<Output, DockerError> {
    let fail = |command: &Command, reason: String| DockerError {
        command: describe(command),
        reason,
    };
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| fail(command, format!("cannot run docker: {e}")))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // docker reads all of stdin before it answers, so writing first cannot deadlock.
        stdin
            .write_all(input)
            .map_err(|e| fail(command, format!("writing stdin: {e}")))?;
    }
    child
        .wait_with_output()
        .map_err(|e| fail(command, format!("waiting for docker: {e}")))
}

fn checked(command: &Command, output: Output) -> Result<String, DockerError> {
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned());
    }
    Err(DockerError {
        command: describe(command),
        reason: format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    })
}

/// The command line as a person would type it (long arguments are shortened).
fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        line.push(' ');
        line.extend(arg.chars().take(200));
        if arg.chars().nth(200).is_some() {
            line.push('…');
        }
    }
    line
}

/// Lower-case letters, digits and `-` only, at most `max` characters: valid in any Docker name.
fn sanitize(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "x".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Six hex digits that differ between processes, even for a pid reused after a crash.
fn process_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mixed = (u64::from(std::process::id()) << 20) ^ u64::from(nanos >> 10);
        format!("{:06x}", mixed & 0xff_ffff)
    })
}

fn host_id() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| sanitize(&crate::echo::local_hostname(), 63))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_docker_safe_and_distinct() {
        // libtest names each test's thread after the test; do the same, whatever the harness.
        let name_in_test = || {
            std::thread::Builder::new()
                .name("tests::Routes_By_Host".to_owned())
                .spawn(|| unique_name(Some("Web Server_1")))
                .expect("thread starts")
                .join()
                .expect("no panic")
        };
        let (a, b) = (name_in_test(), name_in_test());
        assert_ne!(a, b);
        assert!(a.starts_with("dh-routes-by-host-"), "{a}");
        assert!(a.ends_with("-web-server-1"), "{a}");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    fn sanitize_never_returns_an_empty_name() {
        assert_eq!(sanitize("__", 10), "x");
        assert_eq!(sanitize("Ab.c", 10), "ab-c");
        assert_eq!(sanitize("abcdef", 3), "abc");
    }

    #[test]
    fn only_dead_owners_of_this_host_are_swept() {
        let me = std::process::id();
        let host = host_id();
        let listing = format!(
            "live {me} {host}\ndead 4000000000 {host}\nother 4000000000 elsewhere\nbad x {host}\n"
        );
        assert_eq!(dead_owners(Ok(listing)), vec!["dead".to_owned()]);
    }

    #[test]
    fn failures_name_the_command() {
        let err = docker(["definitely-not-a-docker-command"]).expect_err("must fail");
        assert!(
            err.to_string()
                .contains("`docker definitely-not-a-docker-command` failed"),
            "{err}"
        );
    }
}
