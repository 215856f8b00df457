#!/usr/bin/env bash
# Builds the dockhand image offline: a static release binary imported into an empty image.
# Usage: deploy/build-image.sh [tag]   (default tag: dockhand:latest)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-dockhand:latest}
cargo build --release --bin dockhand
bin=target/x86_64-unknown-linux-gnu/release/dockhand
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/nginx/certs" "$root/etc/nginx/htpasswd" "$root/tmp"
cp "$bin" "$root/dockhand"
tar -C "$root" -c . | docker import \
  -c 'ENTRYPOINT ["/dockhand"]' \
  -c 'ENV DOCKHAND_ADMIN=0.0.0.0:9180' \
  -c 'EXPOSE 80 443 9180' \
  - "$tag" >/dev/null
echo "built $tag"
