#!/usr/bin/env bash
# Propagation bench: how long a container change takes to reach dockhand's routes.
#
#   benches/propagation.sh [starts]      (default: 30)
#
# Builds dockhand and the echo-backend in release mode, runs dockhand on loopback ports, then
# starts and removes one backend container per round on a bench network (so each container's IP
# is known before it starts and can be polled at once). Three delays are measured per round:
#
#   run → routed     `docker run -d` returning → first 200 through dockhand
#   direct → routed  the backend first answering on its own IP → first 200 through dockhand
#                    (near 0 when dockhand routes before the app listens; can be slightly
#                    negative because both are polled, every 2 ms, by separate threads)
#   rm → 503         `docker rm -f` returning → first 503 (unknown host) through dockhand
#
# Polling is a fresh HTTP/1.1 connection every 2 ms, bounded by a 10 s deadline per event.
# Prints p50/p99 as a Markdown table; raw figures go to benches/out/. Only loopback and the
# bench's own containers are contacted; everything is labelled dockhand.bench=1 and removed on
# exit.
set -euo pipefail
cd "$(dirname "$0")/.."
starts=${1:-30}
[[ "$starts" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [starts]" >&2; exit 2; }
out=benches/out
mkdir -p "$out"
work=$(mktemp -d)
prefix=dockhand-prop-$$
net=$prefix-net
http_port=18183
admin=127.0.0.1:18193
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  docker ps -aq --filter "label=dockhand.bench.run=$prefix" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=benches/common.sh
source benches/common.sh
build_release_and_backend_image

# Docker only accepts `--ip` on a network with a declared subnet: let it pick a free one, then
# declare that one.
docker network create --label dockhand.bench=1 "$net" >/dev/null
subnet=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$net")
docker network rm "$net" >/dev/null
docker network create --label dockhand.bench=1 --subnet "$subnet" "$net" >/dev/null

mkdir -p "$work/certs" "$work/htpasswd" "$work/acme"
DISABLE_ACCESS_LOGS=true DOCKHAND_LOG=warn "$bin/dockhand" --bind 127.0.0.1 \
  --http-port "$http_port" --https-port 18543 --admin "$admin" \
  --certs-dir "$work/certs" --htpasswd-dir "$work/htpasswd" --acme-webroot "$work/acme" \
  >"$work/dockhand.log" 2>&1 & pids+=($!)
for _ in $(seq 200); do
  curl -sf -o /dev/null "http://$admin/readyz" && break
  sleep 0.05
done
curl -sf -o /dev/null "http://$admin/readyz" || { echo "dockhand never became ready:" >&2; cat "$work/dockhand.log" >&2; exit 1; }

results="$out/propagation-$(date +%Y%m%d-%H%M%S).tsv"
python3 - "$starts" "$prefix" "$net" "$subnet" "$http_port" "$results" <<'PY'
import ipaddress, socket, statistics, subprocess, sys, threading, time

starts, prefix, net, subnet, port, results = sys.argv[1:]
starts, port = int(starts), int(port)
POLL = 0.002        # seconds between attempts
DEADLINE = 10.0     # seconds per event
hosts = ipaddress.ip_network(subnet).hosts()
next(hosts)         # the gateway
ips = [str(next(hosts)) for _ in range(starts + 10)][10:]  # clear of the first, busy addresses

def status(addr, host):
    """Status code of GET / on a fresh connection, or None."""
    try:
        with socket.create_connection(addr, timeout=0.5) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            line = s.recv(64).split(b"\r\n", 1)[0].split()
            return int(line[1]) if len(line) >= 2 else None
    except (OSError, ValueError):
        return None

def first(addr, host, want, since, found, key):
    """Polls until `want` is answered; stores the perf_counter time in found[key]."""
    while time.perf_counter() - since < DEADLINE:
        if status(addr, host) == want:
            found[key] = time.perf_counter()
            return
        time.sleep(POLL)

def docker(*args):
    subprocess.run(["docker", *args], check=True, stdout=subprocess.DEVNULL)

proxy = ("127.0.0.1", port)
rows = []
for i in range(starts):
    name, host, ip = f"{prefix}-{i}", f"prop-{i}.{prefix}.bench.local", ips[i]
    assert status(proxy, host) == 503, f"{host} answered before its container existed"
    docker("run", "-d", "--name", name, "--network", net, "--ip", ip, "--no-healthcheck",
           "--label", "dockhand.bench=1", "--label", f"dockhand.bench.run={prefix}",
           "-e", f"VIRTUAL_HOST={host}", "--expose", "80", "dockhand-bench-backend:latest")
    t_run = time.perf_counter()
    found = {}
    threads = [threading.Thread(target=first, args=a) for a in (
        (proxy, host, 200, t_run, found, "routed"),
        ((ip, 80), host, 200, t_run, found, "direct"))]
    for t in threads: t.start()
    for t in threads: t.join()
    if len(found) != 2:
        sys.exit(f"round {i}: no 200 within {DEADLINE}s ({sorted(found)} seen)")
    docker("rm", "-f", name)
    t_rm = time.perf_counter()
    first(proxy, host, 503, t_rm, found, "gone")
    if "gone" not in found:
        sys.exit(f"round {i}: still routed {DEADLINE}s after docker rm -f")
    rows.append(((found["routed"] - t_run) * 1e3, (found["routed"] - found["direct"]) * 1e3,
                 (found["gone"] - t_rm) * 1e3))
    print(f"round {i}: " + " ".join(f"{v:.1f}" for v in rows[-1]) + " ms", file=sys.stderr)

with open(results, "w") as f:
    f.write("round\trun_to_routed_ms\tdirect_to_routed_ms\trm_to_503_ms\n")
    for i, r in enumerate(rows):
        f.write(f"{i}\t" + "\t".join(f"{v:.3f}" for v in r) + "\n")

def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))]

print(f"\nPropagation over {len(rows)} starts, polled every {POLL * 1e3:.0f} ms ({results})\n")
print("| delay | p50 ms | p99 ms | max ms |")
print("|---|---|---|---|")
labels = ["`docker run -d` returned → first 200 via dockhand",
          "backend answers directly → first 200 via dockhand",
          "`docker rm -f` returned → first 503 via dockhand"]
for k, label in enumerate(labels):
    col = [r[k] for r in rows]
    print(f"| {label} | {pct(col, 50):.1f} | {pct(col, 99):.1f} | {max(col):.1f} |")
PY
