#!/usr/bin/env bash
# Pinned load bench: performance per core of dockhand against nginx and HAProxy.
#
#   SECS=5 ROUNDS=3 CONNS="64 256" HTTPS=0 benches/pinned.sh
#
# Runs from the bundle that benches/pinned-bundle.sh makes (benches/out/bundle, or $BUNDLE) and
# needs nothing installed but bash (with /dev/tcp) and sleep, mkdir, rm, cat: no Docker, no
# Rust, no Python, no curl, no awk. The bundled nginx, HAProxy, wrk, openssl and taskset run
# through the bundled dynamic loader and libraries.
#
# The proxy gets k CPUs of its own (`taskset`); wrk and the backend run on other, disjoint CPUs.
# k is 1, 2 and 4 with at least 8 CPUs, 1 and 2 with 4 to 7, and 1 below (on 2 CPUs: the proxy
# on one, wrk and the backend share the other). With SMT, the proxy's CPUs are on distinct
# physical cores and their siblings stay idle (when enough CPUs are left), so "one core" is one
# physical core. Each proxy is set to k: nginx `worker_processes k`, HAProxy `nbthread k`,
# dockhand `--worker-threads k`; all listen on 127.0.0.1 only, with no access logs, and the
# headers of benches/common.sh (as load.sh sets them up), upstream keep-alive (nginx
# `keepalive 1024`, HAProxy `http-reuse always`; nginx `keepalive_requests` raised so that it
# does not close connections every 1,000 requests, which HAProxy and dockhand never do).
# dockhand routes the container that testkit's synthetic engine serves (the bundle's
# pinned-container.json, VIRTUAL_HOST=bench.local, its address set to the backend's).
#
# The backend (BACKEND=nginx, the default) is the bundled nginx answering `return 200` with a
# 29-byte body, one worker per backend CPU: testkit's echo-backend (BACKEND=echo) runs one
# thread and would be the bottleneck for a proxy on 2 or more cores. A `direct` row (wrk straight
# to the backend, in the first round) shows the ceiling of wrk + backend in each layout.
#
# Keep-alive HTTP/1.1, GET /, Host bench.local; HTTPS=1 adds TLS 1.3 (one self-signed ECDSA
# P-256 certificate, SNI bench.local; checked with openssl s_client before measuring). For each
# layout, in ROUNDS interleaved rounds whose proxy order rotates, for each of CONNS client
# connections, one wrk run of SECS seconds per proxy; around it the script reads utime + stime of
# every process of the proxy (/proc/<pid>/stat), of the backend, and of wrk, the proxy's RSS
# half a second before the run ends, and (nginx backend) how many connections the backend
# accepted: near 0 once the proxy's upstream pool is warm, unless the proxy churns connections.
# Reports medians over the rounds: req/s, p50 and p99 (wrk --latency), proxy CPU µs per request (and its user-space part), how busy the proxy's CPUs were (100% = all k saturated),
# RSS, how busy the backend's and wrk's CPUs were (near 100% there means they, not the proxy,
# were the limit), and dockhand's ratios to nginx and HAProxy. A run with socket errors or
# non-2xx answers is flagged and makes the script exit 1 at the end.
#
# Output: the Markdown report, an entry ready to append to benches/results/RESULTS.md (date,
# commit, machine, settings, tables), on stdout and in pinned-<stamp>.md; raw runs in
# pinned-<stamp>.tsv and the processes' logs and configurations in pinned-<stamp>-logs/; all
# under $OUT if set, else benches/out/. Progress goes to stderr.
#
# Other settings: PROXY_CORES="1 2 4" (override the k list), BACKEND=echo, BUNDLE=path,
# DOCKHAND_KEEPALIVE=auto (the container's keepalive label: `auto`, dockhand's default, keeps
# every idle connection; a number caps them, e.g. 1024 as nginx's `keepalive 1024`).
# Time with the defaults (HTTP only): about 2 min per layout, so ~6 min on 16 CPUs (3 layouts)
# and 106 s measured on 2 CPUs (1 layout); HTTPS=1 nearly doubles it (200 s measured on 2 CPUs,
# ~11 min estimated on 16: use PROXY_CORES="1 4" or ROUNDS=2 to fit 7 min). SECS=3 ROUNDS=1 on
# 2 CPUs: ~30 s.
set -euo pipefail
case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
here=$(cd "$here" && pwd)
# nginx_proxy_settings and haproxy_proxy_to: the headers load.sh sets up (first, so that the
# pure-bash helpers below replace common.sh's awk-based ones of the same name).
# shellcheck source=benches/common.sh
source "$here/common.sh"
secs=${SECS:-5}; rounds=${ROUNDS:-3}; conns_list=${CONNS:-64 256}; https=${HTTPS:-0}
backend_kind=${BACKEND:-nginx}
keepalive=${DOCKHAND_KEEPALIVE:-auto}
bundle=${BUNDLE:-$here/out/bundle}
[[ "$secs" =~ ^[1-9][0-9]*$ && "$rounds" =~ ^[1-9][0-9]*$ && "$conns_list" =~ ^[0-9\ ]+$ ]] \
  || { echo "SECS, ROUNDS and CONNS must be numbers" >&2; exit 2; }
[[ "$backend_kind" == nginx || "$backend_kind" == echo ]] || { echo "BACKEND is nginx or echo" >&2; exit 2; }
[ -x "$bundle/bin/dockhand" ] || chmod +x "$bundle"/bin/* "$bundle/lib/ld-linux-x86-64.so.2" 2>/dev/null || true
[ -x "$bundle/bin/dockhand" ] && [ -f "$bundle/bin/nginx" ] \
  || { echo "no bundle at $bundle: run benches/pinned-bundle.sh first" >&2; exit 2; }
ld=$bundle/lib/ld-linux-x86-64.so.2
export OPENSSL_CONF=$bundle/openssl.cnf
# Runs a bundled dynamically linked tool through the bundled loader.
tool() { "$ld" --library-path "$bundle/lib" "$bundle/bin/$1" "${@:2}"; }
# pin CPUS COMMAND... &: runs COMMAND (a bundled tool name, or a path) on CPUS (taskset -c list),
# in the background. It execs, so that $! is the command's PID (taskset and the loader exec too).
pin() {
  local cpus=$1 cmd=$2; shift 2
  case $cmd in
    nginx|haproxy|wrk) set -- "$ld" --library-path "$bundle/lib" "$bundle/bin/$cmd" "$@" ;;
    *) set -- "$cmd" "$@" ;;
  esac
  exec "$ld" --library-path "$bundle/lib" "$bundle/bin/taskset" -c "$cpus" "$@"
}

# Ports, all on 127.0.0.1.
backend_port=18780
declare -A http_port=([nginx]=18781 [haproxy]=18782 [dockhand]=18783)
declare -A https_port=([nginx]=18791 [haproxy]=18792 [dockhand]=18793)
admin_port=18794
proxies=(nginx haproxy dockhand)
protos=(http); [ "$https" = 1 ] && protos+=(https)

work=${TMPDIR:-/tmp}/dockhand-pinned.$$
mkdir -p "$work"
started=()
stop_all() {
  local p _ alive
  [ -z "${wrk_pid:-}" ] || kill -TERM "$wrk_pid" 2>/dev/null || true
  for p in "${started[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq_n 30); do
    alive=0
    for p in "${started[@]}"; do [ -d "/proc/$p" ] && [ "$(state_of "$p")" != Z ] && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${started[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${started[@]}"; do wait "$p" 2>/dev/null || true; done
  started=()
}
on_exit() {
  local rc=$?
  stop_all
  if [ -n "${logs:-}" ]; then mkdir -p "$logs"; for f in "$work"/*.log "$work"/*.conf "$work"/*.cfg; do [ -f "$f" ] && cat "$f" > "$logs/${f##*/}"; done; fi
  rm -rf "$work"
  exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM

seq_n() { local i; for ((i = 1; i <= $1; i++)); do echo "$i"; done; }
state_of() { local line; read -r line 2>/dev/null < "/proc/$1/stat" || return 0; line=${line##*) }; echo "${line%% *}"; }

# ---- CPUs and layouts ------------------------------------------------------------------------
# Expands a CPU list ("0-3,8") into one CPU per line.
expand_cpus() {
  local IFS=, part i
  for part in $1; do
    if [[ $part == *-* ]]; then for ((i = ${part%-*}; i <= ${part#*-}; i++)); do echo "$i"; done
    else echo "$part"; fi
  done
}
allowed=""
while IFS=$': \t' read -r key value; do
  [ "$key" = Cpus_allowed_list ] && allowed=$value
done < /proc/self/status
mapfile -t cpus < <(expand_cpus "${allowed:-0}")
ncpu=${#cpus[@]}
siblings_of() {
  local f=/sys/devices/system/cpu/cpu$1/topology/thread_siblings_list list
  [ -r "$f" ] && read -r list < "$f" && expand_cpus "$list" || echo "$1"
}
join() { local IFS=,; echo "$*"; }
# Sets proxy_cpus, wrk_cpus, backend_cpus (lists), wrk_n, backend_n and layout_note for k.
layout() {
  local k=$1 c s p
  local -A taken=() reserved=()
  local proxy=() rest=()
  for c in "${cpus[@]}"; do
    ((${#proxy[@]} < k)) || break
    [ -n "${reserved[$c]:-}" ] && continue
    proxy+=("$c"); taken[$c]=1
    for s in $(siblings_of "$c"); do [ "$s" != "$c" ] && reserved[$s]=1; done
  done
  # Not enough distinct physical cores: fall back to logical CPUs in order.
  if ((${#proxy[@]} < k)); then proxy=("${cpus[@]:0:k}"); taken=(); for c in "${proxy[@]}"; do taken[$c]=1; done; reserved=(); fi
  for c in "${cpus[@]}"; do [ -z "${taken[$c]:-}" ] && [ -z "${reserved[$c]:-}" ] && rest+=("$c"); done
  layout_note="SMT siblings of the proxy's CPUs idle"
  ((${#reserved[@]} > 0)) || layout_note="no SMT siblings"
  if ((${#rest[@]} < 2 && ${#reserved[@]} > 0)); then
    rest=(); for c in "${cpus[@]}"; do [ -z "${taken[$c]:-}" ] && rest+=("$c"); done
    layout_note="SMT siblings shared with wrk/backend"
  fi
  ((${#rest[@]} >= 1)) || { echo "no CPU left for wrk and the backend with k=$k" >&2; return 1; }
  # SMT siblings next to each other, so that wrk and the backend each get whole cores.
  local -A in_rest=() placed=(); local ordered=()
  for c in "${rest[@]}"; do in_rest[$c]=1; done
  for c in "${rest[@]}"; do
    for s in $c $(siblings_of "$c"); do
      [ -n "${in_rest[$s]:-}" ] && [ -z "${placed[$s]:-}" ] && { ordered+=("$s"); placed[$s]=1; }
    done
  done
  rest=("${ordered[@]}")
  if ((${#rest[@]} == 1)); then
    wrk_cpus=${rest[0]}; backend_cpus=${rest[0]}; wrk_n=1; backend_n=1
    layout_note="$layout_note; wrk and backend share CPU ${rest[0]}"
  else
    wrk_n=$(( ${#rest[@]} / 2 )); backend_n=$(( ${#rest[@]} - wrk_n ))
    wrk_cpus=$(join "${rest[@]:0:wrk_n}"); backend_cpus=$(join "${rest[@]:wrk_n}")
  fi
  proxy_cpus=$(join "${proxy[@]}")
}
if [ -n "${PROXY_CORES:-}" ]; then read -ra ks <<< "$PROXY_CORES"
elif ((ncpu >= 8)); then ks=(1 2 4)
elif ((ncpu >= 4)); then ks=(1 2)
else ks=(1)
fi
((ncpu >= 2)) || { echo "needs at least 2 CPUs (has $ncpu)" >&2; exit 2; }

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
whoami_root=0; [ "${EUID:-$(id -u 2>/dev/null || echo 1)}" = 0 ] && whoami_root=1

# ---- /proc readings (pure bash) ----------------------------------------------------------------
# Summed utime + stime, in clock ticks (USER_HZ, 100 on x86-64), of the given processes (whole
# thread groups); `user_ticks`: utime alone, the time spent outside the kernel.
ticks() { stat_ticks 1 "$@"; }
user_ticks() { stat_ticks 0 "$@"; }
stat_ticks() {
  local with_kernel=$1 total=0 p line f
  shift
  for p in "$@"; do
    read -r line 2>/dev/null < "/proc/$p/stat" || continue
    read -ra f <<< "${line##*) }"
    total=$(( total + f[11] + with_kernel * f[12] ))
  done
  echo "$total"
}
rss_kib() {
  local total=0 p key value
  for p in "$@"; do
    [ -r "/proc/$p/status" ] || continue
    while read -r key value _; do
      [ "$key" = VmRSS: ] && total=$(( total + value ))
    done < "/proc/$p/status"
  done
  echo "$total"
}
children_of() {
  local d line f
  for d in /proc/[0-9]*; do
    read -r line 2>/dev/null < "$d/stat" || continue
    read -ra f <<< "${line##*) }"
    [ "${f[1]}" = "$1" ] && echo "${d#/proc/}"
  done
  return 0
}
now_us() { local t=$EPOCHREALTIME; echo $(( 10#${t%.*}${t#*.} )); }

# ---- Numbers ------------------------------------------------------------------------------------
# "1.23ms" → nanoseconds.
to_ns() {
  [[ $1 =~ ^([0-9]+)(\.([0-9]+))?(us|ms|s|m)$ ]] || { echo 0; return; }
  local int=${BASH_REMATCH[1]} frac=${BASH_REMATCH[3]} unit=${BASH_REMATCH[4]} d
  case $unit in us) d=3 ;; ms) d=6 ;; s) d=9 ;; m) echo $(( 10#$int * 60000000000 )); return ;; esac
  frac=${frac}000000000; frac=${frac:0:d}
  echo $(( 10#$int * 10 ** d + 10#$frac ))
}
# fdiv NUM DEN DECIMALS: NUM/DEN rounded to DECIMALS places.
fdiv() {
  local num=$1 den=$2 d=$3 q
  ((den != 0)) || { echo "—"; return; }
  q=$(( (2 * num * 10 ** d + den) / (2 * den) ))
  if ((d == 0)); then echo "$q"; else printf '%d.%0*d\n' $((q / 10 ** d)) "$d" $((q % 10 ** d)); fi
}
median() {
  local -a v=("$@") s=() ; local x i n
  for x in "${v[@]}"; do
    i=${#s[@]}; s+=("$x")
    while ((i > 0 && s[i - 1] > x)); do s[i]=${s[i - 1]}; i=$((i - 1)); done
    s[i]=$x
  done
  n=${#s[@]}
  ((n > 0)) || { echo 0; return; }
  if ((n % 2)); then echo "${s[n / 2]}"; else echo $(( (s[n / 2 - 1] + s[n / 2]) / 2 )); fi
}
dash() { if (($1 < 0)); then echo "—"; else echo "$1"; fi; }
thousands() { local n=$1 out=""; while ((n >= 1000)); do out=$(printf ',%03d' $((n % 1000)))$out; n=$((n / 1000)); done; echo "$n$out"; }

# ---- Configurations ---------------------------------------------------------------------------
mkdir -p "$work/certs" "$work/htpasswd" "$work/acme" "$work/tmp"
cat "$bundle/certs/bench.local.crt" > "$work/certs/bench.local.crt"
cat "$bundle/certs/bench.local.key" > "$work/certs/bench.local.key"
# The container dockhand routes, with its upstream keep-alive label set to $keepalive (nginx-proxy's
# `…keepalive` label: what nginx's `keepalive 1024` is; `auto` is dockhand's default, no cap, as
# HAProxy's reuse: until 2026-12-04 it was 64 idle connections per worker, which churned upstream
# connections with more clients than that).
fixture=$(< "$bundle/pinned-container.json")
label='"com.github.nginx-proxy.nginx-proxy.keepalive": '
[[ $fixture == *"$label\"1024\""* ]] || { echo "the bundle's pinned-container.json has no keepalive label" >&2; exit 2; }
printf '%s\n' "${fixture/"$label\"1024\""/"$label\"$keepalive\""}" > "$work/container.json"
cat > "$work/resolve.lua" <<'LUA'
-- Connect to 127.0.0.1 whatever the URL's host: the URL keeps bench.local, so the Host header
-- and the TLS SNI are bench.local without an /etc/hosts entry.
wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup("127.0.0.1", service)
end
LUA
nginx_common() {  # $1: name, for its temp paths
  [ $whoami_root = 1 ] && echo "user root root;"
  echo "pid $work/$1.pid;"
  echo "error_log $work/$1-error.log;"
  echo "worker_rlimit_nofile $nofile;"
  echo "events { worker_connections 16384; }"
}
nginx_temp_paths() {
  local t
  for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $work/tmp/$1-$t;"; done
}
write_configs() {  # $1: k, $2: backend workers
  local k=$1 b=$2
  {
    echo "worker_processes $b;"
    nginx_common backend
    echo "http {"
    echo "  access_log off;"
    nginx_temp_paths backend
    echo "  keepalive_requests 1000000; keepalive_timeout 300s;"
    echo "  server {"
    echo "    listen 127.0.0.1:$backend_port reuseport backlog=4096;"
    echo "    default_type text/plain;"
    echo "    location / { return 200 'hello from the bench backend\n'; }"
    echo "    location = /_accepts { stub_status; }"
    echo "  }"
    echo "}"
  } > "$work/backend.conf"
  {
    echo "worker_processes $k;"
    nginx_common nginx
    echo "http {"
    echo "  access_log off;"
    nginx_temp_paths nginx
    echo "  # HAProxy and dockhand never close a keep-alive connection after N requests; nginx's"
    echo "  # default closes client and upstream connections every 1000."
    echo "  keepalive_requests 1000000;"
    nginx_proxy_settings
    echo "  upstream backend { server 127.0.0.1:$backend_port; keepalive 1024; keepalive_requests 1000000; }"
    echo "  server { listen 127.0.0.1:${http_port[nginx]}; location / { proxy_pass http://backend; } }"
    if [ "$https" = 1 ]; then
      echo "  server {"
      echo "    listen 127.0.0.1:${https_port[nginx]} ssl;"
      echo "    ssl_protocols TLSv1.3;"
      echo "    ssl_certificate $bundle/certs/bench.local.crt;"
      echo "    ssl_certificate_key $bundle/certs/bench.local.key;"
      echo "    location / { proxy_pass http://backend; }"
      echo "  }"
    fi
    echo "}"
  } > "$work/nginx.conf"
  {
    echo "global"
    echo "  nbthread $k"
    # HAProxy wants two descriptors per connection; the bench needs far fewer than this.
    echo "  maxconn $(( nofile / 2 - 100 < 20000 ? nofile / 2 - 100 : 20000 ))"
    echo "defaults"
    echo "  mode http"
    echo "  timeout connect 5s"
    echo "  timeout client 60s"
    echo "  timeout server 60s"
    echo "  timeout http-keep-alive 60s"
    echo "  option forwardfor"
    echo "frontend bench"
    echo "  bind 127.0.0.1:${http_port[haproxy]}"
    [ "$https" = 1 ] && echo "  bind 127.0.0.1:${https_port[haproxy]} ssl crt $bundle/certs/bench.local.pem ssl-min-ver TLSv1.3"
    haproxy_proxy_to "127.0.0.1:$backend_port"
  } > "$work/haproxy.cfg"
}

# ---- Readiness ----------------------------------------------------------------------------------
# The status code of GET / with Host bench.local on 127.0.0.1:$1 (bash's /dev/tcp), or nothing.
http_status() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 0
    printf 'GET / HTTP/1.1\r\nHost: bench.local\r\nConnection: close\r\n\r\n' >&3
    read -r -t 2 _ code _ <&3 || true
    echo "${code:-}"
  ) 2>/dev/null
}
# Connections the nginx backend has accepted so far (its stub_status), or 0 for the echo backend.
backend_accepts() {
  [ "$backend_kind" = nginx ] || { echo 0; return; }
  (
    exec 3<>"/dev/tcp/127.0.0.1/$backend_port" || exit 0
    printf 'GET /_accepts HTTP/1.1\r\nHost: bench.local\r\nConnection: close\r\n\r\n' >&3
    n=0; while read -r -t 2 line <&3; do
      [[ $line =~ ^\ *([0-9]+)\ +[0-9]+\ +[0-9]+ ]] && n=${BASH_REMATCH[1]}
    done
    echo "$n"
  ) 2>/dev/null
}
wait_200() {  # name port
  local _
  for _ in $(seq_n 150); do [ "$(http_status "$2")" = 200 ] && return 0; sleep 0.1; done
  echo "$1 (127.0.0.1:$2) never answered 200; last: '$(http_status "$2")'" >&2
  return 1
}
# Checks that a default OpenSSL client negotiates TLS 1.3 with SNI bench.local and gets 200.
check_tls() {  # name port
  local out
  out=$(printf 'GET / HTTP/1.1\r\nHost: bench.local\r\nConnection: close\r\n\r\n' \
    | tool openssl s_client -connect "127.0.0.1:$2" -servername bench.local -brief -ign_eof 2>&1) || true
  [[ $out == *"Protocol version: TLSv1.3"* ]] || { echo "$1: no TLS 1.3 on $2:"$'\n'"$out" >&2; return 1; }
  [[ $out == *"HTTP/1.1 200"* ]] || { echo "$1: no 200 over TLS on $2:"$'\n'"$out" >&2; return 1; }
}

# ---- Starting a layout ----------------------------------------------------------------------------
declare -A procs   # name → PIDs of all its processes
start_layout() {  # k
  local k=$1 p port
  layout "$k"
  for port in "$backend_port" "${http_port[@]}" "${https_port[@]}" "$admin_port"; do
    [ -z "$(http_status "$port")" ] || { echo "something already listens on 127.0.0.1:$port" >&2; return 1; }
  done
  write_configs "$k" "$backend_n"
  if [ "$backend_kind" = nginx ]; then
    pin "$backend_cpus" nginx -c "$work/backend.conf" -e "$work/backend-error.log" -g 'daemon off;' > "$work/backend.log" 2>&1 &
  else
    pin "$backend_cpus" "$bundle/bin/echo-backend" --listen "$backend_port" --name bench > "$work/backend.log" 2>&1 &
  fi
  started+=($!); procs[backend]=$!
  pin "$backend_cpus" "$bundle/bin/synthetic-engine" --socket "$work/engine.sock" \
    --fixture "$work/container.json" --containers 1 --backend "127.0.0.1:$backend_port" \
    > "$work/engine.log" 2>&1 &
  started+=($!)
  pin "$proxy_cpus" nginx -c "$work/nginx.conf" -e "$work/nginx-error.log" -g 'daemon off;' > "$work/nginx.log" 2>&1 &
  started+=($!); procs[nginx]=$!
  pin "$proxy_cpus" haproxy -f "$work/haproxy.cfg" > "$work/haproxy.log" 2>&1 &
  started+=($!); procs[haproxy]=$!
  for _ in $(seq_n 100); do [ -S "$work/engine.sock" ] && break; sleep 0.1; done
  DOCKER_HOST="unix://$work/engine.sock" DISABLE_ACCESS_LOGS=true DOCKHAND_LOG=warn \
    pin "$proxy_cpus" "$bundle/bin/dockhand" --bind 127.0.0.1 --http-port "${http_port[dockhand]}" \
    --https-port "${https_port[dockhand]}" --https-method noredirect --admin "127.0.0.1:$admin_port" \
    --certs-dir "$work/certs" --htpasswd-dir "$work/htpasswd" --acme-webroot "$work/acme" \
    --max-connections 20000 --worker-threads "$k" --shutdown-grace 1s > "$work/dockhand.log" 2>&1 &
  started+=($!); procs[dockhand]=$!
  wait_200 backend "$backend_port" || return 1
  for p in "${proxies[@]}"; do
    wait_200 "$p" "${http_port[$p]}" || return 1
    if [ "$https" = 1 ]; then check_tls "$p" "${https_port[$p]}" || return 1; fi
  done
  for p in "${started[@]}"; do
    [ -d "/proc/$p" ] && [ "$(state_of "$p")" != Z ] || { echo "process $p exited; logs:" >&2; cat "$work"/*.log >&2; return 1; }
  done
  # nginx's workers (and the backend's, when it is nginx) are counted with their master.
  procs[nginx]="${procs[nginx]} $(children_of "${procs[nginx]}" | { mapfile -t c; echo "${c[*]}"; })"
  procs[backend]="${procs[backend]} $(children_of "${procs[backend]}" | { mapfile -t c; echo "${c[*]}"; })"
  started+=(${procs[nginx]#* } ${procs[backend]#* })
}

# ---- One wrk run ----------------------------------------------------------------------------------
url_of() {  # proxy proto
  if [ "$1" = direct ]; then echo "http://bench.local:$backend_port/"
  elif [ "$2" = https ]; then echo "https://bench.local:${https_port[$1]}/"
  else echo "http://bench.local:${http_port[$1]}/"; fi
}
# Sets R_rps R_req R_p50 R_p99 (ns) R_err R_cpu (proxy ticks) R_busy R_rss R_bbusy R_wbusy and
# R_bconns (connections the backend accepted during the run).
run_wrk() {  # target proto conns secs
  local target=$1 proto=$2 conns=$3 s=$4 line a b rc=0
  local -a pp bp
  read -ra bp <<< "${procs[backend]}"
  if [ "$target" = direct ]; then pp=(); else read -ra pp <<< "${procs[$target]}"; fi
  local p0 b0 w0=0 w1=0 t0 t1 tw0 tw1 wpid
  local a0=0; [ "$backend_kind" = nginx ] && a0=$(backend_accepts)
  p0=$(ticks "${pp[@]}"); u0=$(user_ticks "${pp[@]}"); b0=$(ticks "${bp[@]}"); t0=$(now_us)
  pin "$wrk_cpus" wrk -t "$wrk_n" -c "$conns" -d "${s}s" --latency -s "$work/resolve.lua" \
    "$(url_of "$target" "$proto")" > "$work/wrk.txt" 2>&1 &
  wpid=$!; wrk_pid=$wpid
  sleep 0.3; w0=$(ticks "$wpid"); tw0=$(now_us)
  if ((s > 1)); then sleep $((s - 1)).2; fi   # 0.5 s before wrk ends
  w1=$(ticks "$wpid"); tw1=$(now_us)
  R_rss=0; ((${#pp[@]} == 0)) || R_rss=$(rss_kib "${pp[@]}")
  wait "$wpid" || rc=$?
  wrk_pid=""
  t1=$(now_us)
  R_cpu=$(( $(ticks "${pp[@]}") - p0 ))
  R_ucpu=$(( $(user_ticks "${pp[@]}") - u0 ))
  local bcpu=$(( $(ticks "${bp[@]}") - b0 ))
  R_bconns=-1   # unknown (echo backend)
  [ "$backend_kind" = nginx ] && R_bconns=$(( $(backend_accepts) - a0 - 1 ))   # less the reading itself
  R_rps=0 R_req=0 R_p50=0 R_p99=0 R_err=0
  ((rc == 0)) || R_err=1
  while IFS= read -r line; do
    read -r a b _ <<< "$line"
    case $a in
      50%) R_p50=$(to_ns "$b") ;;
      99%) R_p99=$(to_ns "$b") ;;
      Requests/sec:) R_rps=${b%.*} ;;
    esac
    [[ $line =~ ^\ *([0-9]+)\ requests\ in ]] && R_req=${BASH_REMATCH[1]}
    [[ $line =~ connect\ ([0-9]+),\ read\ ([0-9]+),\ write\ ([0-9]+),\ timeout\ ([0-9]+) ]] \
      && R_err=$(( R_err + BASH_REMATCH[1] + BASH_REMATCH[2] + BASH_REMATCH[3] + BASH_REMATCH[4] ))
    [[ $line =~ Non-2xx\ or\ 3xx\ responses:\ ([0-9]+) ]] && R_err=$(( R_err + BASH_REMATCH[1] ))
  done < "$work/wrk.txt"
  ((R_req > 0)) || R_err=$((R_err + 1))
  # Busy: CPU time over wall time over CPUs, in %. One tick is 10,000 µs.
  local wall=$(( t1 - t0 )) k=${proxy_n:-1}
  R_busy=$(( R_cpu * 10000 * 100 / (wall * k) ))
  R_bbusy=$(( bcpu * 10000 * 100 / (wall * backend_n) ))
  R_wbusy=$(( (w1 - w0) * 10000 * 100 / ((tw1 - tw0) * wrk_n) ))
  if ((R_err > 0)); then
    echo "ERROR: $target $proto $conns connections: wrk exit $rc, errors or non-2xx:" >&2
    cat "$work/wrk.txt" >&2
    errors=$((errors + 1))
  fi
}

# ---- The bench ----------------------------------------------------------------------------------
outdir=${OUT:-$here/out}
mkdir -p "$outdir"
stamp=$(printf '%(%Y%m%d-%H%M%S)T' -1)
tsv=$outdir/pinned-$stamp.tsv
report=$outdir/pinned-$stamp.md
logs=$outdir/pinned-$stamp-logs
errors=0
declare -A M      # "k|proto|conns|target|metric" → values over the rounds
declare -A notes  # k → layout description
printf 'k\tround\tproto\tconns\ttarget\trps\trequests\tp50_ns\tp99_ns\tproxy_ticks\tproxy_user_ticks\tproxy_busy_pct\trss_kib\tbackend_busy_pct\twrk_busy_pct\tbackend_conns\terrors\n' > "$tsv"
started_at=$(now_us)
read -r load_before _ < /proc/loadavg
record() {  # k round proto conns target
  local key="$1|$3|$4|$5" cpu_cus=0 user_cus=0
  ((R_req > 0)) && cpu_cus=$(( R_cpu * 10000 * 100 / R_req ))   # centi-µs per request
  ((R_req > 0)) && user_cus=$(( R_ucpu * 10000 * 100 / R_req ))
  M[$key|rps]+=" $R_rps"; M[$key|p50]+=" $R_p50"; M[$key|p99]+=" $R_p99"; M[$key|cpu]+=" $cpu_cus"
  M[$key|user]+=" $user_cus"
  M[$key|busy]+=" $R_busy"; M[$key|rss]+=" $R_rss"; M[$key|bbusy]+=" $R_bbusy"; M[$key|wbusy]+=" $R_wbusy"
  M[$key|err]+=" $R_err"; M[$key|bconns]+=" $R_bconns"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" \
    "$R_rps" "$R_req" "$R_p50" "$R_p99" "$R_cpu" "$R_ucpu" "$R_busy" "$R_rss" "$R_bbusy" "$R_wbusy" "$R_bconns" "$R_err" >> "$tsv"
  printf '  k=%s round %s %-5s %4s conns %-8s %8s req/s  p50 %s ms  p99 %s ms  cpu %s µs/req (user %s)  busy %s%%  rss %s MiB  backend %s%%  wrk %s%%  backend conns %s%s\n' \
    "$1" "$2" "$3" "$4" "$5" "$R_rps" "$(fdiv "$R_p50" 1000000 3)" "$(fdiv "$R_p99" 1000000 3)" \
    "$(fdiv "$cpu_cus" 100 1)" "$(fdiv "$user_cus" 100 1)" "$R_busy" "$(fdiv "$R_rss" 1024 1)" "$R_bbusy" "$R_wbusy" "$(dash "$R_bconns")" \
    "$( ((R_err == 0)) || echo "  ERRORS $R_err")" >&2
}

for k in "${ks[@]}"; do
  proxy_n=$k
  start_layout "$k" || exit 1
  notes[$k]="proxy CPUs $proxy_cpus; wrk CPUs $wrk_cpus (-t $wrk_n); backend CPUs $backend_cpus ($backend_kind, $backend_n worker$( ((backend_n == 1)) || echo s)); $layout_note"
  echo "== k=$k: ${notes[$k]}" >&2
  max_conns=0; for c in $conns_list; do ((c > max_conns)) && max_conns=$c; done
  for proto in "${protos[@]}"; do   # warm-up: pools filled, caches hot, errors caught early
    for p in "${proxies[@]}"; do run_wrk "$p" "$proto" "$max_conns" 1; done
  done
  for round in $(seq_n "$rounds"); do
    turn=$(( (round - 1) % ${#proxies[@]} ))
    order=("${proxies[@]:turn}" "${proxies[@]:0:turn}")
    for conns in $conns_list; do
      if ((round == 1)); then run_wrk direct http "$conns" "$secs"; record "$k" "$round" http "$conns" direct; fi
      for proto in "${protos[@]}"; do
        for p in "${order[@]}"; do run_wrk "$p" "$proto" "$conns" "$secs"; record "$k" "$round" "$proto" "$conns" "$p"; done
      done
    done
  done
  stop_all
done
took=$(( ($(now_us) - started_at) / 1000000 ))
read -r load_after _ < /proc/loadavg

# ---- Report --------------------------------------------------------------------------------------
med() { median ${M[$1|$2]}; }   # split on purpose
read -r commit < "$bundle/COMMIT" || commit="commit unknown"
versions=""
while read -r a b _; do case $a in nginx | haproxy | wrk) versions+="${versions:+, }$a $b" ;; esac; done < "$bundle/VERSIONS"
cpu_model=unknown
while IFS=: read -r key value; do [[ $key == "model name"* ]] && { cpu_model=${value# }; break; }; done < /proc/cpuinfo
read -r kernel < /proc/sys/kernel/osrelease
smt="no SMT"; for c in "${cpus[@]}"; do [ "$(siblings_of "$c" | { mapfile -t s; echo ${#s[@]}; })" -gt 1 ] && { smt="SMT"; break; }; done
ratio() { local d=$1 o=$2; ((o > 0)) && fdiv "$d" "$o" 2 || echo "—"; }

table() {
  local proto=$1 k conns t key rps ratio_line
  echo "| proxy cores | conns | proxy | req/s | p50 ms | p99 ms | proxy CPU µs/req | of which user | proxy CPUs busy | RSS MiB | backend busy | wrk busy | backend conns | errors |"
  echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for k in "${ks[@]}"; do
    for conns in $conns_list; do
      for t in direct "${proxies[@]}"; do
        key="$k|$proto|$conns|$t"
        [ -n "${M[$key|rps]:-}" ] || continue
        local errs=0 e; for e in ${M[$key|err]}; do errs=$((errs + e)); done
        if [ "$t" = direct ]; then
          printf '| %s | %s | %s | %s | %s | %s | — | — | — | — | %s%% | %s%% | %s | %s |\n' "$k" "$conns" "(direct to backend)" \
            "$(thousands "$(med "$key" rps)")" "$(fdiv "$(med "$key" p50)" 1000000 3)" "$(fdiv "$(med "$key" p99)" 1000000 3)" \
            "$(med "$key" bbusy)" "$(med "$key" wbusy)" "$(dash "$(med "$key" bconns)")" "$errs"
        else
          printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s%% | %s | %s%% | %s%% | %s | %s |\n' "$k" "$conns" "$t" \
            "$(thousands "$(med "$key" rps)")" "$(fdiv "$(med "$key" p50)" 1000000 3)" "$(fdiv "$(med "$key" p99)" 1000000 3)" \
            "$(fdiv "$(med "$key" cpu)" 100 1)" "$(fdiv "$(med "$key" user)" 100 1)" "$(med "$key" busy)" "$(fdiv "$(med "$key" rss)" 1024 1)" \
            "$(med "$key" bbusy)" "$(med "$key" wbusy)" "$(dash "$(med "$key" bconns)")" "$errs"
        fi
      done
    done
  done
  echo
  echo "| proxy cores | conns | req/s dockhand ÷ nginx | ÷ HAProxy | CPU/req dockhand ÷ nginx | ÷ HAProxy | user CPU/req ÷ nginx | ÷ HAProxy |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  for k in "${ks[@]}"; do
    for conns in $conns_list; do
      key="$k|$proto|$conns"
      [ -n "${M[$key|dockhand|rps]:-}" ] || continue
      printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$k" "$conns" \
        "$(ratio "$(med "$key|dockhand" rps)" "$(med "$key|nginx" rps)")" \
        "$(ratio "$(med "$key|dockhand" rps)" "$(med "$key|haproxy" rps)")" \
        "$(ratio "$(med "$key|dockhand" cpu)" "$(med "$key|nginx" cpu)")" \
        "$(ratio "$(med "$key|dockhand" cpu)" "$(med "$key|haproxy" cpu)")" \
        "$(ratio "$(med "$key|dockhand" user)" "$(med "$key|nginx" user)")" \
        "$(ratio "$(med "$key|dockhand" user)" "$(med "$key|haproxy" user)")"
    done
  done
}

{
  echo "## $(printf '%(%Y-%m-%d %H:%M %Z)T' -1): pinned.sh, dockhand ${commit#commit }"
  echo
  echo "Machine: $cpu_model, $ncpu CPUs allowed ($allowed, $smt), kernel $kernel; 1-minute load average $load_before before, $load_after after."
  echo "Bundle: $versions. Backend: $backend_kind. dockhand upstream keepalive: $keepalive. Settings: SECS=$secs ROUNDS=$rounds CONNS=\"$conns_list\" HTTPS=$https; ${took} s in all."
  echo "Layouts:"
  for k in "${ks[@]}"; do echo "- k=$k: ${notes[$k]}"; done
  echo
  echo "Medians over $rounds round(s), keep-alive HTTP/1.1, GET /, ${secs} s per run (direct: first round only). CPU µs/req: utime + stime of all the proxy's processes over the run, per request (of which user: utime, the time outside the kernel); busy: CPU time over wall time over the CPUs given (proxy: k)."
  for proto in "${protos[@]}"; do
    echo
    echo "### ${proto^^}"
    echo
    table "$proto"
  done
} > "$report"
cat "$report"
echo >&2
echo "report: $report (ready to append to benches/results/RESULTS.md); raw runs: $tsv; ${took} s" >&2
if ((errors > 0)); then echo "$errors run(s) saw socket errors or non-2xx answers (see above)" >&2; exit 1; fi
