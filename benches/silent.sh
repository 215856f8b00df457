#!/usr/bin/env bash
# Silent and slow sockets cannot deny service: holds SOCKETS connections that send nothing (then
# ones that send half a request head) against the release dockhand on loopback, with the
# connection limit at LIMIT, and times 20 normal requests meanwhile; reports RSS per held socket.
#
#   benches/silent.sh [SOCKETS] [LIMIT]      (defaults 10000 10000; about 30 s)
#
# With SOCKETS at or over LIMIT, every slot is taken by a silent socket: a normal client is
# admitted only because the longest-idle connections are closed to make room (docs/hardening.md).
# dockhand answers the normal requests itself (unknown host: 503), so no backend is involved.
# Needs Python 3 and a Docker engine (dockhand's discovery); contacts only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
. benches/common.sh
sockets=${1:-10000}
limit=${2:-10000}
port=18095
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

cargo build --release -q -p dockhand --bin dockhand
DISABLE_ACCESS_LOGS=true DOCKHAND_LOG=warn "$bin/dockhand" --bind 127.0.0.1 --http-port "$port" \
  --https-port 18096 --certs-dir "$work" --admin 127.0.0.1:19195 --max-connections "$limit" \
  --worker-threads 1 > "$work/dockhand.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.1
done

echo "dockhand $(git rev-parse --short HEAD), $sockets sockets, --max-connections $limit, 1 worker, $(nproc) cores"
for mode in silent slowloris; do
  python3 benches/silent.py 127.0.0.1 "$port" "$sockets" "$mode" "$pid"
done
