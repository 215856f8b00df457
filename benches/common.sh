# shellcheck shell=bash
# Shared by the shell benches (sourced, not run): release binaries and the backend image.

# Where `cargo build --release` puts the binaries (the workspace builds for an explicit target).
bin=target/x86_64-unknown-linux-gnu/release

# Builds dockhand and the echo-backend in release mode, and imports the echo-backend as the image
# `dockhand-bench-backend:latest` (a static binary in an empty image; no registry needed).
# Needs `$work`, a scratch folder the caller removes.
# shellcheck disable=SC2154
build_release_and_backend_image() {
  echo "building release binaries…" >&2
  cargo build --release -q -p dockhand --bin dockhand -p dockhand-testkit --bin echo-backend
  mkdir -p "$work/rootfs"
  cp "$bin/echo-backend" "$work/rootfs/echo-backend"
  tar -C "$work/rootfs" -c . \
    | docker import -c 'ENTRYPOINT ["/echo-backend"]' - dockhand-bench-backend:latest >/dev/null
}

# Prints the path of a Python that can import matplotlib, making a venv under benches/out/ when
# the system one cannot (the chart is optional: prints nothing and returns 1 if pip fails).
chart_python() {
  local venv=benches/out/.venv
  if python3 -c 'import matplotlib' 2>/dev/null; then echo python3; return; fi
  if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    echo "installing matplotlib into $venv…" >&2
    { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet matplotlib; } >&2 || return 1
  fi
  echo "$venv/bin/python"
}

# Raises the open-files limit as far as allowed: proxies holding thousands of connections need one
# descriptor per client connection (plus upstream ones), and containers may cap the hard limit.
raise_nofile() {
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
}

# Summed VmRSS, in KiB, of the given process IDs.
rss_kib() {
  local pid total=0
  for pid in "$@"; do
    total=$(( total + $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status") ))
  done
  echo "$total"
}
