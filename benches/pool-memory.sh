#!/usr/bin/env bash
# RSS per idle pooled backend connection: a burst of CONNS concurrent keep-alive clients (wrk,
# 3 s) makes dockhand open about that many backend connections, which stay in its pool after
# the burst (no idle limit by default). Reports RSS before and after the burst, each read once
# six readings a second apart agree within 1% (freed memory counts once it is returned), the
# backend connections established before and after (`ss`), and RSS per extra pooled
# connection. dockhand runs one worker on CPU 0, wrk on CPU 1.
#
#   CONNS=1000 benches/pool-memory.sh [dockhand-executable...]   (default: the release build)
#
# Needs wrk, ss and a Docker engine (the bench backend container, routed by discovery);
# contacts only 127.0.0.1 and that container. About 40 s per executable.
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${CONNS:-1000}
work=$(mktemp -d); name=dockhand-poolmem-$$; pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  docker rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=benches/common.sh
source benches/common.sh
need wrk wrk
raise_nofile
build_release_and_backend_image
[ $# -gt 0 ] || set -- "$bin/dockhand"
docker run -d --name "$name" --label dockhand.bench=1 -e VIRTUAL_HOST=bench.local --expose 80 \
  --no-healthcheck dockhand-bench-backend:latest >/dev/null
backend_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$name")
url=http://127.0.0.1:18930/

# RSS of $pid in KiB once six readings a second apart agree within 1% (at most 40 s).
steady_rss() {
  local last=0 same=0 now _
  for _ in $(seq 40); do
    sleep 1
    now=$(rss_kib "$pid")
    if [ $(( now > last ? now - last : last - now )) -le $(( now / 100 )) ]; then
      same=$(( same + 1 ))
    else
      same=0
    fi
    last=$now
    [ "$same" -ge 6 ] && break
  done
  echo "$now"
}
backend_conns() { ss -Htn state established dst "$backend_ip" | wc -l; }

for exe in "$@"; do
  DISABLE_ACCESS_LOGS=true DOCKHAND_LOG=warn taskset -c 0 "$exe" --worker-threads 1 \
    --bind 127.0.0.1 --http-port 18930 --https-port 18931 --admin 127.0.0.1:18932 \
    --max-connections 20000 --certs-dir "$work" --htpasswd-dir "$work" \
    --acme-webroot "$work" >"$work/log" 2>&1 &
  pid=$!
  wait_routed "$url" 100 0.2
  taskset -c 1 wrk -t1 -c 4 -d 2s -H 'Host: bench.local' "$url" >/dev/null
  before=$(steady_rss); conns_before=$(backend_conns)
  taskset -c 1 wrk -t1 -c "$conns" -d 3s -H 'Host: bench.local' "$url" >/dev/null
  after=$(steady_rss); conns_after=$(backend_conns)
  extra=$(( conns_after - conns_before ))
  echo "$(basename "$exe"): RSS ${before} KiB with ${conns_before} backend connections, ${after} KiB with ${conns_after}: $(( (after - before) * 1024 / (extra > 0 ? extra : 1) )) B per extra pooled connection"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
