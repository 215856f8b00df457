#!/usr/bin/env bash
# Scale bench with thousands of containers: dockhand against a synthetic Docker engine.
#
#   benches/scale-synthetic.sh [sizes] [change-rounds] [wrk-seconds]   (defaults: 1000,10000 20 5)
#
# One Docker engine on a small machine cannot run 10,000 containers, so testkit's
# synthetic-engine answers dockhand's API calls (list, inspect, events, info, ping) as an engine
# running N of them would: each is the saved `docker inspect` discovery/tests/fixtures/
# app-web-1.json with its own name, ID and VIRTUAL_HOST=app<i>.scale.local, and every one
# answers through one real echo-backend container (its address is in each container's network
# settings). For each size, benches/scale.py measures what scale.sh measures with real
# containers: start → /readyz 200 and → all N vhosts routed; RSS once ready; the cost of one
# change at N (container N+k starts → 200, is removed → 503); wrk lookups on one vhost and on a
# random vhost of the N, against nginx with the same N server blocks (sharing one upstream, as
# dockhand's vhosts share the one backend's pool); RSS after those. Prints Markdown tables; raw
# figures go to benches/out/. Only loopback and the bench's own container are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${1:-1000,10000}
rounds=${2:-20}
wrk_secs=${3:-5}
[[ "$sizes" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "usage: $0 [sizes,comma-separated] [change-rounds] [wrk-seconds]" >&2; exit 2; }
for v in "$rounds" "$wrk_secs"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [sizes,comma-separated] [change-rounds] [wrk-seconds]" >&2; exit 2; }
done
out=benches/out
mkdir -p "$out"
work=$(mktemp -d)
backend=dockhand-scale-synthetic-$$
pids=()
stop_started() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
  if [ -s "$work/dockhand.pid" ]; then kill "$(cat "$work/dockhand.pid")" 2>/dev/null || true; fi
}
cleanup() {
  stop_started
  docker rm -f "$backend" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=benches/common.sh
source benches/common.sh
need wrk wrk
need nginx nginx-light
raise_nofile
build_release_and_backend_image
cargo build --release -q -p dockhand-testkit --bin synthetic-engine

docker run -d --name "$backend" --label dockhand.bench=1 --no-healthcheck \
  dockhand-bench-backend:latest >/dev/null
ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$backend")
for _ in $(seq 100); do
  curl -s -o /dev/null "http://$ip/" && break
  sleep 0.1
done

for n in ${sizes//,/ }; do
  echo "== $n synthetic containers" >&2
  socket=$work/engine.sock
  "$bin/synthetic-engine" --socket "$socket" --fixture discovery/tests/fixtures/app-web-1.json \
    --containers "$n" --backend "$ip:80" >"$work/engine.log" 2>&1 & pids+=($!)
  for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.1; done
  [ -S "$socket" ] || { cat "$work/engine.log" >&2; exit 1; }

  # nginx with one server block per vhost, as nginx-proxy generates; here they share one
  # upstream, since every synthetic container is the same backend address (dockhand pools
  # backend connections by address, so its vhosts share one pool too).
  {
    echo "worker_processes 2; pid $work/nginx.pid; error_log $work/nginx-error.log;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off;"
    echo "  server_names_hash_bucket_size 128;"
    echo "  server_names_hash_max_size $(( n * 4 ));"
    nginx_proxy_settings
    echo "  upstream backend { server $ip:80; keepalive 64; }"
    for i in $(seq 0 $(( n - 1 ))); do
      echo "  server { listen 127.0.0.1:18284; server_name app$i.scale.local; location / { proxy_pass http://backend; } }"
    done
    echo "}"
  } > "$work/nginx.conf"
  setsid nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)

  mkdir -p "$work/certs" "$work/htpasswd" "$work/acme"
  DOCKER_HOST="unix://$socket" DISABLE_ACCESS_LOGS=true DOCKHAND_LOG=warn python3 benches/scale.py \
    "$n" "synthetic:$socket" 18283 18284 127.0.0.1:18293 "$rounds" "$wrk_secs" \
    "$out/scale-synthetic-$n-$(date +%Y%m%d-%H%M%S).tsv" "$work/dockhand.pid" -- \
    setsid "$bin/dockhand" --bind 127.0.0.1 --http-port 18283 --https-port 18643 \
    --admin 127.0.0.1:18293 --certs-dir "$work/certs" --htpasswd-dir "$work/htpasswd" \
    --acme-webroot "$work/acme"
  stop_started
  rm -f "$socket"
done
