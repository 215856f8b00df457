# shellcheck shell=bash
# Shared by the shell benches (sourced, not run): release binaries and the backend image.

# Where `cargo build --release` puts the binaries (the workspace builds for an explicit target).
bin=target/x86_64-unknown-linux-gnu/release

# Installs the Debian package `$2` when command `$1` is missing.
need() {
  command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
}

# The peers and tools the comparison benches run: nginx, HAProxy, wrk and openssl.
need_peers() {
  need nginx nginx-light
  need haproxy haproxy
  need wrk wrk
  need openssl openssl
}

# Builds dockhand and the echo-backend in release mode, and imports the echo-backend as the image
# `dockhand-bench-backend:latest` (a static binary in an empty image; no registry needed).
# Needs `$work`, a scratch folder the caller removes.
# shellcheck disable=SC2154
build_release_and_backend_image() {
  echo "building release binaries…" >&2
  cargo build --release -q -p dockhand --bin dockhand -p dockhand-testkit --bin echo-backend
  mkdir -p "$work/rootfs"
  cp "$bin/echo-backend" "$work/rootfs/echo-backend"
  tar -C "$work/rootfs" -c . \
    | docker import -c 'ENTRYPOINT ["/echo-backend"]' - dockhand-bench-backend:latest >/dev/null
}

# Prints the path of a Python that can import matplotlib, making a venv under benches/out/ when
# the system one cannot (the chart is optional: prints nothing and returns 1 if pip fails).
chart_python() {
  local venv=benches/out/.venv
  if python3 -c 'import matplotlib' 2>/dev/null; then echo python3; return; fi
  if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    echo "installing matplotlib into $venv…" >&2
    { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet matplotlib; } >&2 || return 1
  fi
  echo "$venv/bin/python"
}

# The benches start each proxy, and wrk, with `setsid`: a session of its own makes it a scheduling
# group of its own. With autogroups (`kernel.sched_autogroup_enabled`, on by default) the
# scheduler first shares the CPUs fairly between groups, then between the threads inside each.
# Started from the bench's shell, every proxy and wrk would be one group, competing with each
# other, while the backend container has a cgroup of its own: nginx and HAProxy then served
# 20-30% fewer requests and dockhand about as many, a ranking made by the grouping rather than by
# the proxies. In production each proxy is a container of its own, as here. (`setsid` forks
# only when the caller leads its process group, which a script's commands do not, so `$!` stays
# the command's PID.)

# Warns when autogroups are off: then every process shares one group and the figures differ.
check_sched_groups() {
  [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" = 1 ] \
    || echo "warning: kernel.sched_autogroup_enabled is not 1: proxies and wrk share one scheduling group" >&2
}

# Raises the open-files limit as far as allowed: proxies holding thousands of connections need one
# descriptor per client connection (plus upstream ones), and containers may cap the hard limit.
raise_nofile() {
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
}

# Polls `$1` with `Host: bench.local` until it answers 200, at most `$2` times, `$3` seconds
# apart (a proxy routes the bench container once discovery has seen it).
wait_routed() {
  local _
  for _ in $(seq "$2"); do
    [ "$(curl -sk -o /dev/null -w '%{http_code}' -H 'Host: bench.local' "$1")" = 200 ] && return
    sleep "$3"
  done
}

# Summed VmRSS, in KiB, of the given process IDs.
rss_kib() {
  local pid total=0
  for pid in "$@"; do
    total=$(( total + $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status") ))
  done
  echo "$total"
}

# The maps and proxy settings of nginx-proxy's generated config (its proxy.conf), for an nginx
# `http` block: the per-request work nginx-proxy users get, and what dockhand does.
nginx_proxy_settings() {
  cat <<'NGINX'
  map $http_x_forwarded_proto $proxy_x_forwarded_proto { default $http_x_forwarded_proto; '' $scheme; }
  map $http_x_forwarded_host $proxy_x_forwarded_host { default $http_x_forwarded_host; '' $host; }
  map $http_x_forwarded_port $proxy_x_forwarded_port { default $http_x_forwarded_port; '' $server_port; }
  map $proxy_x_forwarded_proto $proxy_x_forwarded_ssl { default off; https on; }
  map $server_port $host_port { default :$server_port; 80 ''; 443 ''; }
  # nginx-proxy maps "no Upgrade" to "close", which would forbid upstream keep-alive; "" lets
  # nginx reuse upstream connections, as dockhand and HAProxy do.
  map $http_upgrade $proxy_connection { default upgrade; '' ''; }
  proxy_http_version 1.1;
  proxy_buffering off;
  proxy_set_header Host $host$host_port;
  proxy_set_header Upgrade $http_upgrade;
  proxy_set_header Connection $proxy_connection;
  proxy_set_header X-Real-IP $remote_addr;
  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
  proxy_set_header X-Forwarded-Host $proxy_x_forwarded_host;
  proxy_set_header X-Forwarded-Proto $proxy_x_forwarded_proto;
  proxy_set_header X-Forwarded-Ssl $proxy_x_forwarded_ssl;
  proxy_set_header X-Forwarded-Port $proxy_x_forwarded_port;
  proxy_set_header X-Original-URI $request_uri;
  proxy_set_header Proxy "";
NGINX
}

# The end of an HAProxy frontend (with `option forwardfor`, which appends X-Forwarded-For), for
# plain and TLS binds: the same headers, then its backend, `$1` (ip:port), with connection reuse.
haproxy_proxy_to() {
  cat <<'HAPROXY'
  # The headers nginx-proxy sets (option forwardfor appends X-Forwarded-For).
  http-request set-header Host %[req.hdr(host),field(1,:)]:%[dst_port]
  http-request set-header X-Real-IP %[src]
  http-request set-header X-Forwarded-Host %[req.hdr(host),field(1,:)] unless { req.hdr(x-forwarded-host) -m found }
  http-request set-header X-Forwarded-Proto https if { ssl_fc } !{ req.hdr(x-forwarded-proto) -m found }
  http-request set-header X-Forwarded-Proto http if !{ ssl_fc } !{ req.hdr(x-forwarded-proto) -m found }
  http-request set-header X-Forwarded-Port %[dst_port] unless { req.hdr(x-forwarded-port) -m found }
  http-request set-header X-Forwarded-Ssl on if { ssl_fc }
  http-request set-header X-Forwarded-Ssl off unless { ssl_fc }
  http-request set-header X-Original-URI %[url]
  http-request del-header Proxy
HAPROXY
  cat <<HAPROXY
  default_backend backend
backend backend
  http-reuse always
  server b1 $1
HAPROXY
}
