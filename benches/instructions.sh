#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: a figure that does not move
# with the VM's speed, for A/B of code changes on a noisy machine.
#
#   CONNS=1 SECS=5 TLS=0 PEERS=0 benches/instructions.sh [dockhand-executable...]   (default: the release build)
#
# Each executable runs under `valgrind --tool=callgrind` with instrumentation off, routes the
# bench backend container by discovery, gets 3 s of warm-up load (pools filled), then counts
# instructions over SECS seconds of wrk load with CONNS connections (HTTP, or HTTPS with TLS=1).
# Prints instructions per request, and keeps the callgrind files in benches/out/ for
# `callgrind_annotate`. With 1 connection every request goes alone through the event loop, so
# repeated runs agree to a few tenths of a percent; with more, batching varies a little.
# PEERS=1 (plain HTTP only) also counts nginx (one worker, no master) and HAProxy (one thread) in
# front of the same backend, set up as load.sh and pinned.sh set them (nginx-proxy's headers,
# upstream keep-alive), for the target the data plane is compared against; and testkit's
# h1-floor example, the wire work of a proxied request on tokio and httparse and nothing else:
# how far a purpose-built HTTP/1 path could go before doing any of dockhand's own work.
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${CONNS:-1}; secs=${SECS:-5}; tls=${TLS:-0}; peers=${PEERS:-0}
work=$(mktemp -d); name=dockhand-instr-$$; pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; docker rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
# shellcheck source=benches/common.sh
source benches/common.sh
need wrk wrk
need valgrind valgrind
need openssl openssl
if [ "$peers" = 1 ]; then need nginx nginx-light; need haproxy haproxy; need curl curl; fi
build_release_and_backend_image
[ "$peers" = 1 ] && cargo build --release -q -p dockhand-testkit --example h1-floor
[ $# -gt 0 ] || set -- "$bin/dockhand"
mkdir -p benches/out
docker run -d --name "$name" --label dockhand.bench=1 -e VIRTUAL_HOST=bench.local --expose 80 \
  --no-healthcheck dockhand-bench-backend:latest >/dev/null
url=http://127.0.0.1:18900/
if [ "$tls" = 1 ]; then
  # wrk sends no SNI to an IP address: dockhand answers with its default certificate.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench.local \
    -keyout "$work/default.key" -out "$work/default.crt" 2>/dev/null
  url=https://127.0.0.1:18901/
fi
load() { wrk -t1 -c "$conns" -d "$1" -H 'Host: bench.local' "$2"; }
# Sums callgrind_annotate's per-function self costs (stdin) by crate: the first path segment
# of the function's name (of the type's, for `<T as Trait>::f`), or the symbol (memcpy, malloc).
by_crate() {
  awk -v requests="$1" '
    /^ *[0-9,]+ \( *[0-9.]+%\)  / && !/PROGRAM TOTALS/ {
      n = $1; gsub(",", "", n)
      fn = substr($0, index($0, ":") + 1); sub(/ \[.*/, "", fn); sub(/^<+/, "", fn)
      split(fn, part, "::"); total[part[1]] += n
    }
    END { for (c in total) printf "%7.0f  %s\n", total[c] / requests, c }' | sort -rn
}
# Runs the command "$3"... under callgrind (its output in "$work/$1.log"), waits until "$2" answers
# 200, loads it for 3 s with instrumentation off, then counts SECS seconds of load. Prints
# "LABEL: … per request" and sets `out` (the callgrind files' prefix) and `requests`.
count() {
  local label=$1 target=$2 total=0 f n
  shift 2
  out="benches/out/callgrind-$label-$(date +%Y%m%d-%H%M%S)"
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out.%p" "$@" \
    >"$work/$label.log" 2>&1 &
  pid=$!
  wait_routed "$target" 300 0.2
  load 3s "$target" >/dev/null
  callgrind_control -i on "$pid" >/dev/null 2>&1
  load "${secs}s" "$target" >"$work/wrk.txt"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  requests=$(awk '/requests in/ { print $1 }' "$work/wrk.txt")
  # One file per thread that ran instrumented code; the worker has nearly all.
  for f in "$out".*; do
    n=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    total=$(( total + ${n:-0} ))
  done
  echo "$label: $requests requests, $total instructions, $(( total / requests )) per request ($out.*)"
}
export DISABLE_ACCESS_LOGS=true DOCKHAND_LOG=warn
for exe in "$@"; do
  count "$(basename "$exe")" "$url" "$exe" \
    --bind 127.0.0.1 --https-method noredirect \
    --http-port 18900 --https-port 18901 --admin 127.0.0.1:18902 \
    --certs-dir "$work" --htpasswd-dir "$work" --acme-webroot "$work"
  # Self cost per request by the crate of the function it was counted in (after inlining, so
  # code inlined into a caller counts as the caller's crate): where the instructions go.
  for f in "$out".*; do callgrind_annotate --auto=no --threshold=100 "$f" 2>/dev/null; done \
    | by_crate "$requests" | sed -n '1,12s/^/    /p'
done
[ "$peers" = 1 ] || exit 0
# The peers, each as one process with one worker, nothing logged per request.
ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$name")
cat > "$work/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
$(nginx_proxy_settings)
  keepalive_requests 1000000000;
  upstream backend { server $ip:80; keepalive 1024; keepalive_requests 1000000000; }
  server { listen 127.0.0.1:18910; location / { proxy_pass http://backend; } }
}
NGINX
cat > "$work/haproxy.cfg" <<HAPROXY
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend bench
  bind 127.0.0.1:18911
  option forwardfor
$(haproxy_proxy_to "$ip:80")
HAPROXY
count nginx http://127.0.0.1:18910/ nginx -c "$work/nginx.conf"
count haproxy http://127.0.0.1:18911/ haproxy -db -f "$work/haproxy.cfg"
count h1-floor http://127.0.0.1:18912/ "$bin/examples/h1-floor" 127.0.0.1:18912 "$ip:80"
