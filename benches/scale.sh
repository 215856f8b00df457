#!/usr/bin/env bash
# Scale bench: dockhand started in front of a few hundred running containers.
#
#   benches/scale.sh [containers] [change-rounds] [wrk-seconds]      (defaults: 300, 20, 5)
#
# Builds dockhand and the echo-backend in release mode, starts N backend containers on a bench
# network (VIRTUAL_HOST=app<i>.scale.local, in parallel batches), and only then starts dockhand,
# so its first sync sees them all. benches/scale.py then measures: time from process start to
# /readyz 200 and to /api/routes listing all N vhosts; RSS once ready; the cost of one change at
# N containers (one more container started → routed, removed → 503, every 2 ms like
# propagation.sh); wrk lookups at 64 connections on one vhost and on a random vhost of the N per
# request, through dockhand and, as the yardstick, through nginx configured as nginx-proxy would
# generate it for the same N containers; RSS after those. Prints Markdown tables; raw figures go
# to benches/out/. Only
# loopback and the bench's own containers are contacted; everything is labelled dockhand.bench=1
# and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-300}
rounds=${2:-20}
wrk_secs=${3:-5}
for v in "$n" "$rounds" "$wrk_secs"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [containers] [change-rounds] [wrk-seconds]" >&2; exit 2; }
done
out=benches/out
mkdir -p "$out"
work=$(mktemp -d)
prefix=dockhand-scale-$$
net=$prefix-net
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -s "$work/dockhand.pid" ]; then kill "$(cat "$work/dockhand.pid")" 2>/dev/null || true; fi
  echo "removing the bench containers…" >&2
  # In small batches: hundreds of concurrent removals can leave the engine with a stale network
  # endpoint, after which the network cannot be removed.
  docker ps -aq --filter "label=dockhand.bench.run=$prefix" | xargs -r -n 10 docker rm -f >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=benches/common.sh
source benches/common.sh
need wrk wrk
need nginx nginx-light
raise_nofile
build_release_and_backend_image

docker network create --label dockhand.bench=1 "$net" >/dev/null
# Parallel `docker run`s: one at a time would take minutes at a few hundred; more than a few at
# once only queues up in the engine on 2 cores.
echo "starting $n containers…" >&2
started=$SECONDS
seq 0 $(( n - 1 )) | xargs -P 8 -I{} docker run -d --name "$prefix-{}" --network "$net" \
  --no-healthcheck --label dockhand.bench=1 --label "dockhand.bench.run=$prefix" \
  -e VIRTUAL_HOST=app{}.scale.local --expose 80 dockhand-bench-backend:latest >/dev/null
running=$(docker ps -q --filter "label=dockhand.bench.run=$prefix" | wc -l)
[ "$running" -eq "$n" ] || { echo "$running of $n containers running" >&2; exit 1; }
echo "$n containers running after $(( SECONDS - started )) s" >&2

# nginx as nginx-proxy would generate it for these containers: one upstream and one server block
# per vhost (with the upstream keep-alive load.sh gives it).
{
  echo "worker_processes 2; pid $work/nginx.pid; error_log $work/nginx-error.log;"
  echo "events { worker_connections 4096; }"
  echo "http {"
  echo "  access_log off;"
  echo "  server_names_hash_bucket_size 128;"
  nginx_proxy_settings
  docker ps -q --filter "label=dockhand.bench.run=$prefix" \
    | xargs docker inspect -f '{{.Name}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' \
    | while read -r cname ip; do
        i=${cname##*-}
        echo "  upstream app$i { server $ip:80; keepalive 64; }"
        echo "  server { listen 127.0.0.1:18284; server_name app$i.scale.local; location / { proxy_pass http://app$i; } }"
      done
  echo "}"
} > "$work/nginx.conf"
setsid nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)

mkdir -p "$work/certs" "$work/htpasswd" "$work/acme"
DISABLE_ACCESS_LOGS=true DOCKHAND_LOG=warn python3 benches/scale.py \
  "$n" "docker:$prefix:$net" 18283 18284 127.0.0.1:18293 "$rounds" "$wrk_secs" \
  "$out/scale-$(date +%Y%m%d-%H%M%S).tsv" "$work/dockhand.pid" -- \
  setsid "$bin/dockhand" --bind 127.0.0.1 --http-port 18283 --https-port 18643 \
  --admin 127.0.0.1:18293 --certs-dir "$work/certs" --htpasswd-dir "$work/htpasswd" \
  --acme-webroot "$work/acme"
