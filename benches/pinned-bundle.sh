#!/usr/bin/env bash
# Builds the self-contained bundle that benches/pinned.sh runs from, into benches/out/bundle/
# (or $BUNDLE): everything the pinned bench needs on a machine where nothing is installed.
#
#   benches/pinned-bundle.sh
#
# Run it on a Debian (bookworm) x86-64 machine with cargo and access to Debian's mirror; root,
# for apt-get when nginx, HAProxy or wrk is missing. It puts in the bundle:
#   bin/dockhand, bin/echo-backend, bin/synthetic-engine   the release builds (static binaries)
#   bin/nginx, bin/haproxy, bin/wrk, bin/openssl, bin/taskset
#                                   Debian's, dynamically linked: run through lib/ld-linux-x86-64.so.2
#                                   with --library-path lib, so the target's libc does not matter
#   lib/                            every shared library those need (ldd), and the loader
#   pinned-container.json           the `docker inspect` the synthetic engine serves: one container
#                                   with VIRTUAL_HOST=bench.local
#   certs/bench.local.{crt,key,pem} one self-signed ECDSA P-256 certificate (SNI bench.local)
#   openssl.cnf                     empty: the bundled OpenSSL ignores the target's configuration
#   VERSIONS                        what is in it (git commit, package versions)
# Debug information is stripped from the copies (never from the originals). The bundle is about
# 40 MiB; the device runner carries ignored paths up to 64 MiB in all.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${BUNDLE:-benches/out/bundle}
bin=target/x86_64-unknown-linux-gnu/release

need() {
  command -v "$1" >/dev/null && return
  [ -n "${apt_updated:-}" ] || { apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need nginx nginx-light
need haproxy haproxy
need wrk wrk
need openssl openssl
need taskset util-linux
need strip binutils
need ldd libc-bin

echo "building release binaries (dockhand, echo-backend, synthetic-engine)…" >&2
cargo build --release -q -p dockhand --bin dockhand -p dockhand-testkit --bin echo-backend --bin synthetic-engine

rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/certs"
# dockhand keeps its symbols (for perf on the target); the helpers need none.
cp "$bin/dockhand" "$bundle/bin/dockhand"
strip --strip-debug "$bundle/bin/dockhand"
for b in echo-backend synthetic-engine; do
  cp "$bin/$b" "$bundle/bin/$b"
  strip "$bundle/bin/$b"
done

# Dynamically linked tools, with their libraries and the loader.
for tool in nginx haproxy wrk openssl taskset; do
  path=$(command -v "$tool")
  cp -L "$path" "$bundle/bin/$tool"
  strip --strip-debug "$bundle/bin/$tool" 2>/dev/null || true
  ldd "$path" | while read -r name arrow lib _; do
    # "libfoo.so.1 => /lib/…/libfoo.so.1 (0x…)", or the loader: "/lib64/ld-linux-x86-64.so.2 (0x…)".
    if [ "$arrow" = "=>" ] && [ -f "$lib" ]; then src=$lib
    elif [[ "$name" == /* ]] && [ -f "$name" ]; then src=$name
    else continue
    fi
    dest="$bundle/lib/$(basename "$src")"
    [ -e "$dest" ] || { cp -L "$src" "$dest"; strip --strip-debug "$dest" 2>/dev/null || true; }
  done
done
[ -f "$bundle/lib/ld-linux-x86-64.so.2" ] || { echo "no loader found by ldd" >&2; exit 1; }
chmod +x "$bundle/lib/ld-linux-x86-64.so.2" "$bundle"/bin/*
: > "$bundle/openssl.cnf"

cp benches/pinned-container.json "$bundle/pinned-container.json"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
  -subj /CN=bench.local -addext subjectAltName=DNS:bench.local \
  -keyout "$bundle/certs/bench.local.key" -out "$bundle/certs/bench.local.crt" 2>/dev/null
cat "$bundle/certs/bench.local.crt" "$bundle/certs/bench.local.key" > "$bundle/certs/bench.local.pem"

# Every bundled tool must start through the bundled loader alone (no system library path).
run() { env -i "$bundle/lib/ld-linux-x86-64.so.2" --library-path "$bundle/lib" "$@"; }
run "$bundle/bin/nginx" -v 2>/dev/null
run "$bundle/bin/haproxy" -v >/dev/null
run "$bundle/bin/wrk" -v >/dev/null 2>&1 || [ $? = 1 ]   # wrk -v prints its version and exits 1
run "$bundle/bin/openssl" version >/dev/null
run "$bundle/bin/taskset" -c 0 true 2>/dev/null || run "$bundle/bin/taskset" -p $$ >/dev/null
"$bundle/bin/dockhand" --version >/dev/null

commit=$(git rev-parse --short=12 HEAD)
git diff --quiet HEAD -- . ':!benches' 2>/dev/null || commit="$commit+uncommitted"
{
  echo "bundled $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
  echo "dockhand $commit ($("$bundle/bin/dockhand" --version 2>&1 | head -1))"
  echo "nginx $(dpkg-query -W -f '${Version}' "$(dpkg -S "$(command -v nginx)" | cut -d: -f1)")"
  echo "haproxy $(dpkg-query -W -f '${Version}' haproxy)"
  echo "wrk $(dpkg-query -W -f '${Version}' wrk)"
  echo "openssl $(dpkg-query -W -f '${Version}' libssl3 2>/dev/null || openssl version)"
} > "$bundle/VERSIONS"
echo "commit $commit" > "$bundle/COMMIT"

cat "$bundle/VERSIONS" >&2
du -sh "$bundle" >&2
