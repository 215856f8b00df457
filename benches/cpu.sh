#!/usr/bin/env bash
# CPU per request: nginx, HAProxy and one or more dockhand executables, same backend, same run.
#
#   SECS=8 ROUNDS=3 CONNS=64 TLS=0 benches/cpu.sh [dockhand-executable...]   (default: the release build)
#
# Each target gets an HTTP wrk run (HTTPS, TLS 1.3, with TLS=1) in interleaved rounds; the script reads /proc utime and stime
# of the proxy, the backend container and wrk around the run, and the idle time of /proc/stat.
# An executable may be a wrapper script that sets DOCKHAND_* variables, to compare settings
# (e.g. DOCKHAND_WORKER_THREADS=2). Builds and imports the backend image like load.sh.
# Prints per run: req/s, p50, p99, and µs per request of user and kernel CPU for the proxy, the
# backend and wrk, and of idle CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-8}; rounds=${ROUNDS:-3}; conns=${CONNS:-64}; tls=${TLS:-0}
work=$(mktemp -d); name=dockhand-cpu-$$
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; docker rm -f $name >/dev/null 2>&1 || true; }
trap 'cleanup; rm -rf "$work"' EXIT
# shellcheck source=benches/common.sh
source benches/common.sh
need_peers
check_sched_groups
build_release_and_backend_image
[ $# -gt 0 ] || set -- "$bin/dockhand"
docker run -d --name $name -e VIRTUAL_HOST=bench.local --expose 80 --no-healthcheck dockhand-bench-backend:latest >/dev/null
backend=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' $name)
bpid=$(docker inspect -f '{{.State.Pid}}' $name)
# wrk sends no SNI to an IP address: every proxy answers with its one (dockhand: default) certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench.local \
  -addext subjectAltName=DNS:bench.local -keyout "$work/default.key" -out "$work/default.crt" 2>/dev/null
cat "$work/default.crt" "$work/default.key" > "$work/default.pem"
scheme=http; ngx_ssl=""; ha_ssl=""; dport=18200
if [ "$tls" = 1 ]; then
  scheme=https; dport=18300
  ngx_ssl="ssl; ssl_protocols TLSv1.3; ssl_certificate $work/default.crt; ssl_certificate_key $work/default.key"
  ha_ssl="ssl crt $work/default.pem ssl-min-ver TLSv1.3"
fi
cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
$(nginx_proxy_settings)
  upstream backend { server $backend:80; keepalive 64; }
  server { listen 127.0.0.1:18081 $ngx_ssl; location / { proxy_pass http://backend; } }
}
NGINX
cat > "$work/haproxy.cfg" <<HAPROXY
global
  nbthread 2
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option forwardfor
frontend bench
  bind 127.0.0.1:18082 $ha_ssl
$(haproxy_proxy_to "$backend:80")
HAPROXY
# Each proxy, and wrk, in a scheduling group of its own (`setsid`: see common.sh).
setsid nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!); ngpid=$!
setsid haproxy -f "$work/haproxy.cfg" 2>/dev/null & pids+=($!); hapid=$!
declare -A url=([nginx]=$scheme://127.0.0.1:18081/ [haproxy]=$scheme://127.0.0.1:18082/)
declare -A ppids=([haproxy]=$hapid)
sleep 0.5; ppids[nginx]="$(pgrep -P $ngpid | tr '\n' ' ')"
i=0; names=(nginx haproxy)
for b in "$@"; do
  i=$((i+1)); port=$((18200+i)); n=d$i
  # DENV: extra VAR=value words for env, split on purpose.
  # shellcheck disable=SC2086
  env DISABLE_ACCESS_LOGS=true DOCKHAND_LOG=warn ${DENV:-} setsid "$b" --bind 127.0.0.1 --https-method noredirect --http-port $port --https-port $((18300+i)) --admin 127.0.0.1:$((18400+i)) \
    --certs-dir "$work" --htpasswd-dir "$work" --acme-webroot "$work" >"$work/$n.log" 2>&1 & pids+=($!)
  url[$n]=$scheme://127.0.0.1:$((dport+i))/; ppids[$n]=$!; names+=("$n")
done
for n in "${names[@]}"; do
  wait_routed "${url[$n]}" 100 0.1
done
ticks() { local t=0; for p in "$@"; do read -r u s < <(awk '{print $14, $15}' /proc/"$p"/stat); t=$((t+u+s)); done; echo $t; }
ut() { local u=0 s=0; for p in "$@"; do read -r a b < <(awk '{print $14, $15}' /proc/"$p"/stat); u=$((u+a)); s=$((s+b)); done; echo "$u $s"; }
idle() { awk '/^cpu /{print $5}' /proc/stat; }
for _ in $(seq "$rounds"); do
  for n in "${names[@]}"; do
    # ppids holds several PIDs for nginx (its workers): split on purpose.
    # shellcheck disable=SC2086
    read -r pu0 ps0 < <(ut ${ppids[$n]}); read -r bu0 bs0 < <(ut "$bpid"); i0=$(idle)
    setsid wrk -t$(( conns < 2 ? 1 : 2 )) -c "$conns" -d "${secs}s" --latency -H 'Host: bench.local' "${url[$n]}" > "$work/wrk.txt" &
    wpid=$!; sleep 0.2; read -r wu0 ws0 < <(ut $wpid)
    sleep $((secs-1)); read -r wu1 ws1 < <(ut $wpid); wait $wpid
    # shellcheck disable=SC2086
    read -r pu1 ps1 < <(ut ${ppids[$n]}); read -r bu1 bs1 < <(ut "$bpid"); i1=$(idle)
    python3 - "$work/wrk.txt" "$n" $((pu1-pu0)) $((ps1-ps0)) $((bu1-bu0)) $((bs1-bs0)) $((wu1-wu0)) $((ws1-ws0)) $((i1-i0)) "$secs" <<'PY'
import re,sys
t=open(sys.argv[1]).read(); n=sys.argv[2]; pu,ps,bu,bs,wu,ws,idle=map(int,sys.argv[3:10]); secs=int(sys.argv[10])
rps=float(re.search(r"Requests/sec:\s+([\d.]+)",t).group(1))
def ms(v,u): return float(v)*{"us":0.001,"ms":1.0,"s":1000.0}[u]
p={m.group(1):ms(m.group(2),m.group(3)) for m in re.finditer(r"\s(50|99)%\s+([\d.]+)(us|ms|s)",t)}
req=rps*secs; us=lambda x: x*10000/req
wreq=rps*(secs-1.2)
err="ERR" if ("Non-2xx" in t or "Socket errors" in t) else ""
print(f"{n:8} {rps:8.0f} p50 {p['50']:6.3f} p99 {p['99']:6.3f} | proxy u {us(pu):5.1f} s {us(ps):5.1f} | backend u {us(bu):4.1f} s {us(bs):4.1f} | wrk u {wu*10000/wreq:4.1f} s {ws*10000/wreq:4.1f} | idle {us(idle):4.1f} {err}")
PY
  done
done
