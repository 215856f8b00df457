//! Local images made from static binaries: no registry, no Dockerfile, no base image.
//!
//! The workspace builds every binary statically (`.cargo/config.toml`), so a one-file tar with
//! the binary at `/` is a complete image: `docker import` turns it into one. Images are tagged
//! by the binary's SHA-256, so an unchanged binary reuses its image and a rebuilt one gets a new
//! tag. A file lock in the temp directory serialises imports across test processes, so parallel
//! test binaries never import the same tag twice. Images are kept between runs (that is the
//! reuse); `docker image prune -a --filter label=dockhand.test.image=1` clears old ones.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::Deserialize;

use crate::docker::{docker, docker_with_stdin, DockerError};

/// Repository of the echo-backend images: `dockhand-test-backend:<hash>`.
pub const BACKEND_REPOSITORY: &str = "dockhand-test-backend";

/// Repository of the proxy images: `dockhand:test-<hash>`.
pub const PROXY_REPOSITORY: &str = "dockhand";

/// Label on every image the kit imports (images are kept between runs, to be reused).
pub const IMAGE_LABEL: &str = "dockhand.test.image=1";

/// Why an image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// `cargo build` failed or did not name the binary.
    #[error("building {binary}: {reason}")]
    Build {
        /// The binary being built.
        binary: String,
        /// What went wrong, with cargo's diagnostics.
        reason: String,
    },
    /// Reading the binary or taking the import lock failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A docker command failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
}

/// The echo-backend image, built and imported once per process (see the module docs).
///
/// # Panics
/// If the binary cannot be built or imported; the message carries cargo's or docker's output.
pub fn backend_image() -> &'static str {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    let image = IMAGE.get_or_init(|| {
        let binary = echo_backend_binary().map_err(|e| e.to_string())?;
        let changes = [
            r#"ENTRYPOINT ["/echo-backend"]"#.to_owned(),
            r#"HEALTHCHECK CMD ["/echo-backend", "healthcheck"]"#.to_owned(),
        ];
        import_binary(&binary, "echo-backend", BACKEND_REPOSITORY, "", &changes)
            .map_err(|e| e.to_string())
    });
    match image {
        Ok(image) => image,
        Err(e) => panic!("making the echo-backend image: {e}"),
    }
}

/// An image of dockhand's own binary (pass `env!("CARGO_BIN_EXE_dockhand")`): entrypoint
/// `/dockhand`, `DOCKHAND_ADMIN=0.0.0.0:9180`, tagged `dockhand:test-<hash>`. Memoised per path.
///
/// ```no_run
/// # use std::path::Path;
/// # use dockhand_testkit::{container, images::proxy_image, network};
/// # let binary = Path::new("target/debug/dockhand");
/// let net = network().start();
/// let proxy = container(&proxy_image(binary))
///     .volume("/var/run/docker.sock", "/var/run/docker.sock")
///     .network(&net)
///     .publish(80)
///     .publish(9180)
///     .start();
/// let public = proxy.host_addr(80); // 127.0.0.1:<random>
/// ```
///
/// # Panics
/// If the binary cannot be read or imported.
pub fn proxy_image(binary: &Path) -> String {
    static IMAGES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let mut images = IMAGES
        .get_or_init(Mutex::default)
        .lock()
        // The map only ever holds finished entries, so a poisoned lock still holds valid data.
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(image) = images.get(binary) {
        return image.clone();
    }
    let changes = [
        r#"ENTRYPOINT ["/dockhand"]"#.to_owned(),
        "ENV DOCKHAND_ADMIN=0.0.0.0:9180".to_owned(),
    ];
    let image = import_binary(binary, "dockhand", PROXY_REPOSITORY, "test-", &changes)
        .unwrap_or_else(|e| panic!("making the dockhand image from {}: {e}", binary.display()));
    images.insert(binary.to_owned(), image.clone());
    image
}

/// Builds the `echo-backend` binary with cargo (`$CARGO`, else `cargo`) in this workspace and
/// returns its path, as cargo reports it (so the target directory and triple are cargo's call).
///
/// # Errors
/// Cargo failing, or not reporting the executable.
pub fn echo_backend_binary() -> Result<PathBuf, ImageError> {
    let fail = |reason: String| ImageError::Build {
        binary: "echo-backend".to_owned(),
        reason,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "-p", "dockhand-testkit", "--bin", "echo-backend"])
        .args(["--message-format", "json-render-diagnostics"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("cannot run cargo: {e}")))?;
    if !output.status.success() {
        return Err(fail(format!(
            "cargo exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    executable_from_messages(&output.stdout, "echo-backend")
        .ok_or_else(|| fail("cargo reported no executable".to_owned()))
}

/// Imports `binary` as `/<file_name>` in a one-file image tagged
/// `<repository>:<tag_prefix><first 16 hex digits of its SHA-256>`, applying Dockerfile-style
/// `changes` (ENTRYPOINT, ENV, HEALTHCHECK...). Reuses the tag if it already exists.
///
/// # Errors
/// Reading the binary, taking the lock, or `docker import` failing.
pub fn import_binary(
    binary: &Path,
    file_name: &str,
    repository: &str,
    tag_prefix: &str,
    changes: &[String],
) -> Result<String, ImageError> {
    let io_error = |what, source| ImageError::Io {
        what,
        path: binary.to_owned(),
        source,
    };
    let contents = std::fs::read(binary).map_err(|e| io_error("reading", e))?;
    let image = format!("{repository}:{tag_prefix}{}", short_digest(&contents));
    if image_exists(&image) {
        return Ok(image);
    }
    let _lock = ImportLock::take()?;
    // Another process may have imported it while this one waited for the lock.
    if image_exists(&image) {
        return Ok(image);
    }
    let archive = one_file_tar(file_name, &contents).map_err(|e| io_error("archiving", e))?;
    let label = format!("LABEL {IMAGE_LABEL}");
    let mut args = vec!["import".to_owned()];
    for change in changes.iter().chain([&label]) {
        args.push("--change".to_owned());
        args.push(change.clone());
    }
    args.push("-".to_owned());
    args.push(image.clone());
    docker_with_stdin(&args, &archive)?;
    Ok(image)
}

/// An image of a program installed on this host (say Debian's `/usr/bin/prometheus`), with the
/// shared libraries `ldd` lists at their paths and the empty folders `dirs` (mode 0777, so any
/// user may write there): a local image of a dynamically linked program, with no base image and
/// no registry. Entrypoint the program, plus `changes` (Dockerfile instructions); tagged
/// `<repository>:<hash of the program>`, reused while the program is unchanged.
///
/// # Errors
/// The program or a library cannot be read, `ldd` fails, or the import fails.
pub fn host_program_image(
    binary: &Path,
    repository: &str,
    dirs: &[&str],
    changes: &[String],
) -> Result<String, ImageError> {
    let io_error = |what, path: &Path, source| ImageError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    let contents = std::fs::read(binary).map_err(|e| io_error("reading", binary, e))?;
    let image = format!("{repository}:{}", short_digest(&contents));
    if image_exists(&image) {
        return Ok(image);
    }
    let ldd = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| io_error("running ldd on", binary, e))?;
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`;
    // a static program has none (ldd then fails, which is fine).
    let libraries: Vec<PathBuf> = String::from_utf8_lossy(&ldd.stdout)
        .lines()
        .filter_map(|line| {
            let path = line.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    let mut archive = tar::Builder::new(Vec::new());
    for path in std::iter::once(&binary.to_path_buf()).chain(&libraries) {
        let name = path.strip_prefix("/").unwrap_or(path);
        // Symbolic links are followed: the image gets the files themselves.
        archive
            .append_path_with_name(path, name)
            .map_err(|e| io_error("archiving", path, e))?;
    }
    for dir in dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o777);
        header.set_size(0);
        header.set_mtime(0);
        let name = dir.trim_start_matches('/');
        archive
            .append_data(&mut header, name, std::io::empty())
            .map_err(|e| io_error("archiving", Path::new(dir), e))?;
    }
    let archive = archive
        .into_inner()
        .map_err(|e| io_error("archiving", binary, e))?;
    let _lock = ImportLock::take()?;
    let entrypoint = format!("ENTRYPOINT [{:?}]", binary.display().to_string());
    let label = format!("LABEL {IMAGE_LABEL}");
    let mut args = vec!["import".to_owned()];
    for change in changes.iter().chain([&entrypoint, &label]) {
        args.push("--change".to_owned());
        args.push(change.clone());
    }
    args.push("-".to_owned());
    args.push(image.clone());
    docker_with_stdin(&args, &archive)?;
    Ok(image)
}

fn image_exists(image: &str) -> bool {
    docker(["image", "inspect", "--format", "{{.Id}}", image]).is_ok()
}

/// SHA-256 of `contents`, first 16 hex digits: enough to tell builds apart.
fn short_digest(contents: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, contents);
    digest.as_ref()[..8]
        .iter()
        .fold(String::with_capacity(16), |mut hex, byte| {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// A tar holding only `name` (mode 0755, owned by root). No `/etc`: Docker mounts
/// `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` itself.
fn one_file_tar(name: &str, contents: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::with_capacity(contents.len() + 2048));
    let mut header = tar::Header::new_gnu();
    header.set_size(contents.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    archive.append_data(&mut header, name, contents)?;
    archive.into_inner()
}

/// The `executable` of the last `compiler-artifact` message for binary `name`.
fn executable_from_messages(stdout: &[u8], name: &str) -> Option<PathBuf> {
    #[derive(Deserialize)]
    struct Message {
        reason: String,
        target: Option<Target>,
        executable: Option<PathBuf>,
    }
    #[derive(Deserialize)]
    struct Target {
        name: String,
    }
    stdout
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Message>(&line).ok())
        .filter(|m| m.reason == "compiler-artifact")
        .filter(|m| m.target.as_ref().is_some_and(|t| t.name == name))
        .filter_map(|m| m.executable)
        .last()
}

/// An exclusive lock on a file in the temp directory, shared by every process using the same
/// Docker engine on this machine; released when dropped (or when the process dies).
struct ImportLock(File);

impl ImportLock {
    fn take() -> Result<Self, ImageError> {
        let path = std::env::temp_dir().join("dockhand-testkit-import.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| ImageError::Io {
                what: "opening lock",
                path: path.clone(),
                source,
            })?;
        // Called through the trait: std's own `File::lock` is newer than our MSRV.
        fs4::FileExt::lock(&file).map_err(|source| ImageError::Io {
            what: "locking",
            path,
            source,
        })?;
        Ok(ImportLock(file))
    }
}

impl Drop for ImportLock {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlocking first just makes it prompt.
        let _ = fs4::FileExt::unlock(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_stable_and_content_sensitive() {
        assert_eq!(short_digest(b"abc"), "ba7816bf8f01cfea");
        assert_ne!(short_digest(b"abc"), short_digest(b"abd"));
    }

    #[test]
    fn tar_holds_one_executable_file() {
        let archive = one_file_tar("echo-backend", b"\x7fELF...").expect("in memory");
        let mut reader = tar::Archive::new(archive.as_slice());
        let entries: Vec<_> = reader
            .entries()
            .expect("readable")
            .map(|e| {
                let e = e.expect("entry");
                let header = e.header();
                (
                    e.path().expect("path").display().to_string(),
                    header.mode().expect("mode"),
                    header.size().expect("size"),
                )
            })
            .collect();
        assert_eq!(entries, vec![("echo-backend".to_owned(), 0o755, 7)]);
    }

    #[test]
    fn executable_is_found_among_cargo_messages() {
        let messages = br#"{"reason":"compiler-artifact","target":{"name":"dep"},"executable":null}
not json
{"reason":"compiler-artifact","target":{"name":"echo-backend"},"executable":"/t/debug/echo-backend"}
{"reason":"build-finished","success":true}
"#;
        assert_eq!(
            executable_from_messages(messages, "echo-backend"),
            Some(PathBuf::from("/t/debug/echo-backend"))
        );
        assert_eq!(executable_from_messages(messages, "dockhand"), None);
    }
}
