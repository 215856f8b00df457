#!/usr/bin/env bash
# Load bench: dockhand against nginx and HAProxy, same machine, same run, same backend container.
#
#   benches/load.sh [seconds-per-run] [rounds]      (defaults: 10 s, 3 rounds)
#
# Installs nginx, HAProxy and wrk from Debian packages if missing, builds dockhand and the
# echo-backend in release mode, starts one backend container, puts each proxy in front of it
# (nginx: 2 workers, upstream keep-alive, no access log; HAProxy: 2 threads, http-reuse always;
# dockhand: routing the container by discovery), and drives each with wrk in interleaved rounds:
# 64 keep-alive connections for throughput, 1 connection for latency. Prints a Markdown table of
# medians, with the direct-to-backend baseline, and ratios against nginx and HAProxy.
# Results go to benches/out/. Only loopback and the bench's own container are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
out=benches/out
mkdir -p "$out"
work=$(mktemp -d)
name=dockhand-bench-$$
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  docker rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need nginx nginx-light
need haproxy haproxy
need wrk wrk
# Each proxy needs two descriptors per connection; raise the limit where allowed.
ulimit -n 65536 2>/dev/null || true

# shellcheck source=benches/common.sh
source benches/common.sh
build_release_and_backend_image

docker run -d --name "$name" --label dockhand.bench=1 -e VIRTUAL_HOST=bench.local --expose 80 \
  dockhand-bench-backend:latest >/dev/null
backend=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$name")

cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 10240; }
http {
  access_log off;
  upstream backend { server $backend:80; keepalive 64; }
  server {
    listen 127.0.0.1:18081;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
NGINX
cat > "$work/haproxy.cfg" <<HAPROXY
global
  nbthread 2
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option forwardfor
frontend bench
  bind 127.0.0.1:18082
  default_backend backend
backend backend
  http-reuse always
  server b1 $backend:80
HAPROXY

nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
haproxy -f "$work/haproxy.cfg" -q & pids+=($!)
DISABLE_ACCESS_LOGS=true DOCKHAND_LOG=warn "$bin/dockhand" --http-port 18083 --admin 127.0.0.1:18093 & pids+=($!)

declare -A port=([direct]="$backend:80" [nginx]=127.0.0.1:18081 [haproxy]=127.0.0.1:18082 [dockhand]=127.0.0.1:18083)
for target in "${!port[@]}"; do
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.local' "http://${port[$target]}/") || true
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "$target never answered 200" >&2; exit 1; }
done

# One wrk run: prints "rps p50_ms p99_ms".
run() {
  local target=$1 conns=$2
  wrk -t "$(( conns < 2 ? 1 : 2 ))" -c "$conns" -d "${secs}s" --latency -H 'Host: bench.local' \
    "http://${port[$target]}/" > "$work/wrk.txt"
  python3 - "$work/wrk.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
pct = {m.group(1): ms(m.group(2), m.group(3)) for m in re.finditer(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", text)}
print(f"{rps:.0f} {pct['50']:.3f} {pct['99']:.3f}")
PY
}

results="$out/load-$(date +%Y%m%d-%H%M%S).tsv"
echo -e "round\ttarget\tconnections\trps\tp50_ms\tp99_ms" > "$results"
for round in $(seq "$rounds"); do
  for conns in 64 1; do
    for target in direct nginx haproxy dockhand; do
      read -r rps p50 p99 < <(run "$target" "$conns")
      echo -e "$round\t$target\t$conns\t$rps\t$p50\t$p99" | tee -a "$results" >&2
    done
  done
done

python3 - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def median(target, conns, key):
    return statistics.median(float(r[key]) for r in rows if r["target"] == target and r["connections"] == conns)
print(f"\nMedians of {len(rows) // 8} interleaved rounds ({sys.argv[1]})\n")
print("| target | req/s (64 conns) | p50 ms | p99 ms | req/s (1 conn) | p50 ms | p99 ms |")
print("|---|---|---|---|---|---|---|")
for t in ["direct", "nginx", "haproxy", "dockhand"]:
    cells = [median(t, c, k) for c in ("64", "1") for k in ("rps", "p50_ms", "p99_ms")]
    print(f"| {t} | {cells[0]:.0f} | {cells[1]:.2f} | {cells[2]:.2f} | {cells[3]:.0f} | {cells[4]:.3f} | {cells[5]:.3f} |")
d = median("dockhand", "64", "rps")
print(f"\ndockhand throughput: {d / median('nginx', '64', 'rps'):.2f}x nginx, {d / median('haproxy', '64', 'rps'):.2f}x HAProxy (64 connections)")
PY
