#!/usr/bin/env python3
"""The measuring half of scale.sh and scale-synthetic.sh: starts dockhand in front of N containers.

    scale.py N ENGINE HTTP_PORT NGINX_PORT ADMIN ROUNDS WRK_SECONDS RESULTS PIDFILE -- DOCKHAND...

ENGINE is where the containers are and how one more is started and removed:
  - `docker:PREFIX:NETWORK`: N real containers (VIRTUAL_HOST=app<i>.scale.local) already run on
    the Docker engine; a change is `docker run -d` of one more on NETWORK, then `docker rm -f`;
  - `synthetic:SOCKET`: dockhand's DOCKER_HOST is testkit's synthetic-engine on SOCKET, serving
    N synthetic containers app<i>.scale.local; a change is container N+k starting (the engine's
    `start` event), then being removed (`die`, `destroy`).
This starts dockhand (the command after `--`, its pid written to PIDFILE for the caller's
cleanup) and measures:
  - process start → /readyz 200, and → /api/routes listing all N vhosts;
  - RSS once ready;
  - ROUNDS single changes: one more container started → first 200 through dockhand, then
    removed → first 503 (fresh HTTP/1.1 connection every 2 ms, like propagation.sh);
  - lookups: wrk, 64 connections, WRK_SECONDS, on one vhost and on a random vhost of the N per
    request (both through the same Lua request function, so wrk's own cost is the same), through
    dockhand and through the nginx on NGINX_PORT that routes the same N vhosts, in
    LOOKUP_ROUNDS interleaved rounds (medians);
  - RSS after the lookups.
Prints Markdown tables; raw figures go to RESULTS (TSV).
"""

import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

POLL = 0.002        # seconds between attempts
FINE_POLL = 0.0002  # between attempts after a synthetic change, which is sent, not yet applied
DEADLINE = 60.0     # seconds for dockhand to become ready; also per change
LOOKUP_ROUNDS = 3   # interleaved wrk runs per proxy and case; medians are reported


def status(port, host):
    """Status code of GET / on a fresh connection to 127.0.0.1:port, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            line = s.recv(64).split(b"\r\n", 1)[0].split()
            return int(line[1]) if len(line) >= 2 else None
    except (OSError, ValueError):
        return None


def get(url):
    """(status, body) of a GET, or (None, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except OSError:
        return None, b""


def until(check, since, what, poll=POLL):
    """Polls check() every `poll` seconds until true; returns seconds since `since`."""
    while time.perf_counter() - since < DEADLINE:
        if check():
            return time.perf_counter() - since
        time.sleep(poll)
    sys.exit(f"scale.py: {what}: not within {DEADLINE:.0f} s")


def scale_hosts(admin):
    code, body = get(f"http://{admin}/api/routes")
    if code != 200:
        return set()
    return {v["host"] for v in json.loads(body)["table"]["vhosts"]
            if re.fullmatch(r"app\d+\.scale\.local", v["host"])}


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        kib = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return kib / 1024


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))]


def wrk(port, secs, script):
    text = subprocess.run(
        # A session of its own, as the proxies: its own scheduling group (see common.sh).
        ["setsid", "wrk", "-t", "2", "-c", "64", "-d", f"{secs}s", "--latency", "-s", script,
         f"http://127.0.0.1:{port}/"], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in text or "Socket errors" in text:
        sys.exit("wrk saw errors:\n" + text)
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p = {m[1]: float(m[2]) * unit[m[3]]
         for m in re.finditer(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", text)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])
    return rps, p["50"], p["99"]


def lua(path, hosts_expr):
    with open(path, "w") as f:
        f.write(f"""-- one Host per request: {hosts_expr}
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/", {{ Host = {hosts_expr} }})
end
""")
    return path


class DockerContainers:
    """Real containers on the Docker engine; one more is `docker run -d` on the bench network."""

    def __init__(self, prefix, net):
        self.prefix, self.net = prefix, net
        self.kind = "running containers"
        self.started, self.removed = "`docker run -d` returned", "`docker rm -f` returned"
        # Docker has applied the change by the time the command returns; dockhand usually too.
        self.poll = POLL

    def host(self, i):
        return f"extra{i}.scale.local"

    def start(self, i):
        subprocess.run(["docker", "run", "-d", "--name", f"{self.prefix}-extra-{i}",
                        "--network", self.net, "--no-healthcheck", "--label", "dockhand.bench=1",
                        "--label", f"dockhand.bench.run={self.prefix}", "-e",
                        f"VIRTUAL_HOST={self.host(i)}", "--expose", "80",
                        "dockhand-bench-backend:latest"], check=True, stdout=subprocess.DEVNULL)

    def remove(self, i):
        subprocess.run(["docker", "rm", "-f", f"{self.prefix}-extra-{i}"], check=True,
                       stdout=subprocess.DEVNULL)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=5)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class SyntheticContainers:
    """testkit's synthetic-engine: container N+i starts or goes when asked on its socket."""

    def __init__(self, socket_path, n):
        self.socket_path, self.n = socket_path, n
        self.kind = "synthetic containers"
        self.started, self.removed = "`start` event sent", "`die` and `destroy` sent"
        # The event is on its way when the engine answers: a 2 ms poll would measure the poll.
        self.poll = FINE_POLL

    def host(self, i):
        return f"app{self.n + i}.scale.local"

    def ask(self, method, i):
        conn = UnixHTTPConnection(self.socket_path)
        try:
            conn.request(method, f"/synthetic/containers/{self.n + i}")
            status = conn.getresponse().status
        finally:
            conn.close()
        if status != 204:
            sys.exit(f"scale.py: synthetic-engine answered {status} to {method}")

    def start(self, i):
        self.ask("POST", i)

    def remove(self, i):
        self.ask("DELETE", i)


def engine(spec, n):
    kind, _, rest = spec.partition(":")
    if kind == "docker":
        prefix, _, net = rest.partition(":")
        return DockerContainers(prefix, net)
    if kind == "synthetic":
        return SyntheticContainers(rest, n)
    sys.exit(f"scale.py: unknown engine {spec!r}")


def main():
    sep = sys.argv.index("--")
    n, spec, port, nginx_port, admin, rounds, wrk_secs, results, pidfile = sys.argv[1:sep]
    n, port, nginx_port, rounds = int(n), int(port), int(nginx_port), int(rounds)
    containers = engine(spec, n)
    command = sys.argv[sep + 1:]
    rows = []  # (measure, value, unit)
    lookups = []  # (label, target, rps, p50_ms, p99_ms)

    log = open(os.path.join(os.path.dirname(pidfile), "dockhand.log"), "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    with open(pidfile, "w") as f:
        f.write(str(proc.pid))
    try:
        ready = until(lambda: get(f"http://{admin}/readyz")[0] == 200, t0, "/readyz 200")
        listed = until(lambda: len(scale_hosts(admin)) == n, t0, f"/api/routes listing {n}")
        rows += [("start → /readyz 200", ready * 1e3, "ms"),
                 (f"start → /api/routes lists all {n} vhosts", listed * 1e3, "ms")]
        assert status(port, f"app{n - 1}.scale.local") == 200, "last container not routed"
        rows.append(("RSS once ready", rss_mib(proc.pid), "MiB"))

        up, down = [], []
        for i in range(rounds):
            host = containers.host(i)
            containers.start(i)
            up.append(until(lambda: status(port, host) == 200, time.perf_counter(),
                            f"{host} routed", containers.poll) * 1e3)
            containers.remove(i)
            down.append(until(lambda: status(port, host) == 503, time.perf_counter(),
                              f"{host} gone", containers.poll) * 1e3)
            print(f"change {i}: {up[-1]:.1f} ms up, {down[-1]:.1f} ms down", file=sys.stderr)
        for label, col in ((f"{containers.started} → 200 via dockhand", up),
                           (f"{containers.removed} → 503 via dockhand", down)):
            for p in (50, 99):
                rows.append((f"one change at {n} containers: {label}, p{p} of {rounds}",
                              pct(col, p), "ms"))

        with tempfile.TemporaryDirectory() as tmp:
            one = lua(os.path.join(tmp, "one.lua"), '"app0.scale.local"')
            spread = lua(os.path.join(tmp, "spread.lua"),
                         f'"app" .. math.random(0, {n - 1}) .. ".scale.local"')
            for label, script in (("one vhost", one), (f"a random vhost of {n}", spread)):
                assert status(nginx_port, "app0.scale.local") == 200, "nginx does not route"
                runs = {"nginx": [], "dockhand": []}
                targets = [("nginx", nginx_port), ("dockhand", port)]
                # Interleaved, the order alternating: the host's speed drifts from one run to
                # the next, and a single pair of runs would mostly measure that.
                for r in range(LOOKUP_ROUNDS):
                    for target, p in targets if r % 2 == 0 else targets[::-1]:
                        rps, p50, p99 = wrk(p, wrk_secs, script)
                        print(f"wrk {target}, {label}, round {r + 1}: {rps:.0f} req/s, "
                              f"p99 {p99:.2f} ms", file=sys.stderr)
                        runs[target].append((rps, p50, p99))
                for target, got in runs.items():
                    medians = (statistics.median(col) for col in zip(*got))
                    lookups.append((label, target, *medians))
        rows.append(("RSS after the lookup runs", rss_mib(proc.pid), "MiB"))
        left = scale_hosts(admin)
        assert len(left) == n, f"{len(left)} scale vhosts listed at the end, {n} expected"
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    with open(results, "w") as f:
        f.write("measure\tvalue\tunit\n")
        f.writelines(f"{m}\t{v:.3f}\t{u}\n" for m, v, u in rows)
        f.writelines(f"lookup, 64 connections, {label}, {t}: {k}\t{v:.3f}\t{u}\n"
                     for label, t, rps, p50, p99 in lookups
                     for k, v, u in (("throughput", rps, "req/s"), ("p50", p50, "ms"),
                                     ("p99", p99, "ms")))
    print(f"\nScale: dockhand in front of {n} {containers.kind}, one vhost each ({results})\n")
    print("| measure | value |")
    print("|---|---|")
    for m, v, u in rows:
        print(f"| {m} | {v:.1f} {u} |")
    print(f"\nLookups: wrk, 64 connections, medians of {LOOKUP_ROUNDS} interleaved runs of "
          f"{wrk_secs} s; nginx routes the same {n} vhosts\n")
    print("| Host of each request | dockhand req/s | p50 ms | p99 ms | nginx req/s | p50 ms | p99 ms "
          "| dockhand / nginx req/s |")
    print("|---|---|---|---|---|---|---|---|")
    for label in dict.fromkeys(l for l, *_ in lookups):
        d, g = (next(x for x in lookups if x[0] == label and x[1] == t)
                for t in ("dockhand", "nginx"))
        print(f"| {label} | {d[2]:,.0f} | {d[3]:.2f} | {d[4]:.2f} | {g[2]:,.0f} | {g[3]:.2f} "
              f"| {g[4]:.2f} | {d[2] / g[2]:.2f}x |")


if __name__ == "__main__":
    main()
