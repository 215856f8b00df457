# Shared by the shell benches (sourced, not run): release binaries and the backend image.

# Where `cargo build --release` puts the binaries (the workspace builds for an explicit target).
bin=target/x86_64-unknown-linux-gnu/release

# Builds dockhand and the echo-backend in release mode, and imports the echo-backend as the image
# `dockhand-bench-backend:latest` (a static binary in an empty image; no registry needed).
# Needs `$work`, a scratch folder the caller removes.
build_release_and_backend_image() {
  echo "building release binaries…" >&2
  cargo build --release -q -p dockhand --bin dockhand -p dockhand-testkit --bin echo-backend
  mkdir -p "$work/rootfs"
  cp "$bin/echo-backend" "$work/rootfs/echo-backend"
  tar -C "$work/rootfs" -c . \
    | docker import -c 'ENTRYPOINT ["/echo-backend"]' - dockhand-bench-backend:latest >/dev/null
}
