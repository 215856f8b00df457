#!/usr/bin/env bash
# Load bench: dockhand against nginx and HAProxy, same machine, same run, same backend container.
#
#   benches/load.sh [seconds-per-run] [rounds]      (defaults: 10 s, 3 rounds)
#
# Installs nginx, HAProxy and wrk from Debian packages if missing, builds dockhand and the
# echo-backend in release mode, starts one backend container and puts each proxy in front of it:
#   nginx     2 workers, upstream keep-alive, no access log, and the headers nginx-proxy's
#             generated config sets (what nginx-proxy users run, and what dockhand does);
#   HAProxy   2 threads, http-reuse always, the same headers via http-request set-header;
#   dockhand  routing the container by discovery;
#   relay     HAProxy in `mode tcp` (HTTP only): passes bytes 1:1 and parses nothing, the
#             ceiling any proxy on this machine can reach (what the others pay for HTTP is
#             what they fall short of it).
# HTTP on each, and HTTPS (TLS 1.3, one self-signed certificate for bench.local) on all three.
# wrk drives each in interleaved rounds: 64 keep-alive connections for throughput, 1 connection
# for latency. Then, per proxy, RSS idle and with 10,000 idle keep-alive client connections
# (benches/hold.py). Prints Markdown tables of medians (with the direct-to-backend baseline),
# ratio lines, and writes a PNG chart. Everything goes to benches/out/. Only loopback and the
# bench's own container are contacted.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
[[ "$secs" =~ ^[1-9][0-9]*$ && "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [seconds] [rounds]" >&2; exit 2; }
held_conns=10000
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

# shellcheck source=benches/common.sh
source benches/common.sh
need_peers
check_sched_groups
raise_nofile
(( $(ulimit -n) >= held_conns + 1000 )) || { echo "open-files limit $(ulimit -n) is too low for $held_conns connections" >&2; exit 1; }
# Checked first: a missing chart should not be found out after minutes of measuring.
py=$(chart_python) || { echo "matplotlib unavailable: tables only, no chart" >&2; py=python3; }
build_release_and_backend_image

docker run -d --name "$name" --label dockhand.bench=1 -e VIRTUAL_HOST=bench.local --expose 80 \
  --no-healthcheck dockhand-bench-backend:latest >/dev/null
backend=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$name")

# One ECDSA key and certificate for every proxy, in nginx-proxy's file naming (dockhand reads it
# from --certs-dir; HAProxy wants both in one file).
mkdir -p "$work/certs" "$work/htpasswd" "$work/acme"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=bench.local -addext subjectAltName=DNS:bench.local \
  -keyout "$work/certs/bench.local.key" -out "$work/certs/bench.local.crt" 2>/dev/null
cat "$work/certs/bench.local.crt" "$work/certs/bench.local.key" > "$work/bench.local.pem"

cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
# Room for the memory phase's $held_conns client connections (shared by 2 workers) plus upstreams.
worker_rlimit_nofile $(ulimit -n);
events { worker_connections 16384; }
http {
  access_log off;
$(nginx_proxy_settings)
  upstream backend { server $backend:80; keepalive 64; }
  server {
    listen 127.0.0.1:18081;
    location / { proxy_pass http://backend; }
  }
  server {
    listen 127.0.0.1:18444 ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate $work/certs/bench.local.crt;
    ssl_certificate_key $work/certs/bench.local.key;
    location / { proxy_pass http://backend; }
  }
}
NGINX
# maxconn covers the memory phase's connections. HAProxy reserves two descriptors per connection
# and by default refuses to start when the hard limit is below that (some containers cap it at
# 20,000); an idle client only uses one, so "no strict-limits" lets it run with a warning.
cat > "$work/haproxy.cfg" <<HAPROXY
global
  nbthread 2
  maxconn 20000
  no strict-limits
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option forwardfor
frontend bench
  bind 127.0.0.1:18082
  bind 127.0.0.1:18445 ssl crt $work/bench.local.pem ssl-min-ver TLSv1.3
$(haproxy_proxy_to "$backend:80")
HAPROXY
# The ceiling: an L4 relay, one backend connection per client connection, no parsing.
cat > "$work/relay.cfg" <<HAPROXY
global
  nbthread 2
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend relay
  bind 127.0.0.1:18084
  default_backend relay
backend relay
  server b1 $backend:80
HAPROXY

# Each proxy, and wrk, in a scheduling group of its own (`setsid`: see common.sh).
setsid haproxy -f "$work/relay.cfg" 2>"$work/relay.log" & pids+=($!)
setsid nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
nginx_pid=$!
setsid haproxy -f "$work/haproxy.cfg" 2>"$work/haproxy.log" & pids+=($!)
haproxy_pid=$!
# noredirect: with a certificate present, dockhand's default (redirect) would answer HTTP with 301.
DISABLE_ACCESS_LOGS=true DOCKHAND_LOG=warn setsid "$bin/dockhand" --bind 127.0.0.1 \
  --http-port 18083 --https-port 18443 --https-method noredirect --admin 127.0.0.1:18093 \
  --certs-dir "$work/certs" --htpasswd-dir "$work/htpasswd" --acme-webroot "$work/acme" \
  --max-connections 20000 >"$work/dockhand.log" 2>&1 & pids+=($!)
dockhand_pid=$!

# Proxied targets are addressed as bench.local, so HTTPS clients send that name as SNI (dockhand
# picks the certificate by SNI and, like rustls, ignores an IP address there). wrk resolves it
# through a private /etc/hosts, bind-mounted in a mount namespace of its own; curl uses --resolve.
declare -A url=(
  [http/direct]="http://$backend:80/" [http/nginx]=http://bench.local:18081/
  [http/haproxy]=http://bench.local:18082/ [http/dockhand]=http://bench.local:18083/
  [http/relay]=http://bench.local:18084/
  [https/nginx]=https://bench.local:18444/ [https/haproxy]=https://bench.local:18445/
  [https/dockhand]=https://bench.local:18443/)
echo "127.0.0.1 localhost bench.local" > "$work/hosts"
with_bench_hosts() {
  # shellcheck disable=SC2016 # expanded by the inner sh
  unshare --mount sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$work/hosts" "$@"
}
port_of() { local p=${1##*:}; echo "${p%/}"; }
# -v shows the TLS version a default OpenSSL client (as wrk is) negotiates.
answers() {
  curl -sv -o /dev/null -w '%{http_code}' --max-time 2 -k -H 'Host: bench.local' \
    --resolve "bench.local:$(port_of "$1"):127.0.0.1" "$1" 2>"$work/curl.txt" || true
}
for key in "${!url[@]}"; do
  for _ in $(seq 100); do
    [ "$(answers "${url[$key]}")" = 200 ] && break
    sleep 0.1
  done
  [ "$(answers "${url[$key]}")" = 200 ] || { echo "$key never answered 200" >&2; cat "$work/haproxy.log" "$work/relay.log" "$work/dockhand.log" >&2; exit 1; }
  if [[ $key == https/* ]] && ! grep -q 'SSL connection using TLSv1.3' "$work/curl.txt"; then
    echo "$key did not negotiate TLS 1.3" >&2; exit 1
  fi
done
with_bench_hosts getent hosts bench.local >/dev/null || { echo "cannot give wrk a private /etc/hosts (unshare --mount needs root)" >&2; exit 1; }

# Jiffies of all CPUs: "steal total" from /proc/stat (a VM's steal is time the host ran
# something else; it makes a run slower for reasons that are not the proxy's).
jiffies() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t }' /proc/stat; }

# One wrk run: prints "rps p50_ms p99_ms steal_pct".
run() {
  local key=$1 conns=$2 steal0 total0 steal1 total1
  read -r steal0 total0 < <(jiffies)
  with_bench_hosts setsid wrk -t "$(( conns < 2 ? 1 : 2 ))" -c "$conns" -d "${secs}s" --latency \
    -H 'Host: bench.local' "${url[$key]}" > "$work/wrk.txt"
  read -r steal1 total1 < <(jiffies)
  python3 - "$work/wrk.txt" "$(( steal1 - steal0 ))" "$(( total1 - total0 ))" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
steal = 100 * int(sys.argv[2]) / max(int(sys.argv[3]), 1)
if "Non-2xx" in text or "Socket errors" in text:
    sys.exit("wrk saw errors:\n" + text)
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
pct = {m.group(1): ms(m.group(2), m.group(3)) for m in re.finditer(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", text)}
print(f"{rps:.0f} {pct['50']:.3f} {pct['99']:.3f} {steal:.1f}")
PY
}

stamp=$(date +%Y%m%d-%H%M%S)
results="$out/load-$stamp.tsv"
echo -e "round\tproto\ttarget\tconnections\trps\tp50_ms\tp99_ms\tsteal_pct" > "$results"
proxies=(nginx haproxy dockhand)
for round in $(seq "$rounds"); do
  # The proxies' order rotates each round: this VM's speed drifts within a round, and a fixed
  # order would hand the same proxy the same slot every time.
  turn=$(( (round - 1) % ${#proxies[@]} ))
  order=("${proxies[@]:turn}" "${proxies[@]:0:turn}")
  for conns in 64 1; do
    for key in http/direct http/relay "${order[@]/#/http/}" "${order[@]/#/https/}"; do
      read -r rps p50 p99 steal < <(run "$key" "$conns")
      echo -e "$round\t${key%/*}\t${key#*/}\t$conns\t$rps\t$p50\t$p99\t$steal" | tee -a "$results" >&2
    done
  done
done

# Memory, after the rounds (so every proxy has warmed up its pools): idle, then holding
# $held_conns idle keep-alive clients on its HTTP port.
memory="$out/load-$stamp-memory.tsv"
echo -e "target\tidle_kib\theld_kib\tclosed_kib\theld_open\theld_wanted" > "$memory"
declare -A procs=([haproxy]=$haproxy_pid [dockhand]=$dockhand_pid)
procs[nginx]=$(echo "$nginx_pid" $(pgrep -P "$nginx_pid") | tr ' ' ,)
for target in nginx haproxy dockhand; do
  sleep 1
  IFS=, read -ra ids <<< "${procs[$target]}"
  idle=$(rss_kib "${ids[@]}")
  read -r open held closed took < <(python3 benches/hold.py 127.0.0.1 "$(port_of "${url[http/$target]}")" "$held_conns" bench.local "${procs[$target]}")
  echo -e "$target\t$idle\t$held\t$closed\t$open\t$held_conns" | tee -a "$memory" >&2
  echo "  ($target: $held_conns connections opened in ${took}s)" >&2
done

echo
echo "nginx $(nginx -v 2>&1 | sed 's|.*/||'), HAProxy $(haproxy -v | awk 'NR==1 { print $3 }'), wrk $(wrk -v 2>&1 | awk 'NR==1 { print $2 }'), dockhand $(git rev-parse --short HEAD); ${secs} s per run, $(nproc) cores"
"$py" benches/load_report.py "$results" "$memory" "$out/load-$stamp.png"
