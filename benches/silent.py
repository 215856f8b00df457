#!/usr/bin/env python3
"""Holds many silent (or slow) client sockets against a proxy, then times normal requests.

    silent.py HOST PORT SOCKETS MODE PID

MODE is `silent` (connect, send nothing) or `slowloris` (send an incomplete request head and
nothing more). Opens SOCKETS such connections, 256 at a time, reads the proxy's VmRSS before and
after, then times 20 normal requests, each on a new connection, while the sockets stay open. A
normal request counts as served when any complete status line comes back within 10 s (dockhand
answers an unknown host itself, so no backend is needed). Prints one JSON line.
"""

import asyncio
import json
import resource
import sys
import time

OPENING_AT_ONCE = 256
NORMAL_REQUESTS = 20
NORMAL_DEADLINE = 10.0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def open_one(host, port, mode, gate):
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (OSError, asyncio.TimeoutError):
            return None
        if mode == "slowloris":
            writer.write(b"GET / HTTP/1.1\r\nHost: bench.local\r\nX-Slow: 1")
            await writer.drain()
        return reader, writer


async def normal(host, port):
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), NORMAL_DEADLINE)
        writer.write(b"GET / HTTP/1.1\r\nHost: normal.invalid\r\nConnection: close\r\n\r\n")
        line = await asyncio.wait_for(reader.readline(), NORMAL_DEADLINE)
        writer.close()
        if not line.startswith(b"HTTP/1.1 "):
            return None
    except (OSError, asyncio.TimeoutError):
        return None
    return time.perf_counter() - start


async def main(host, port, count, mode, pid):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    before = rss_kib(pid)
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    start = time.perf_counter()
    conns = [c for c in await asyncio.gather(*(open_one(host, port, mode, gate) for _ in range(count))) if c]
    opened = time.perf_counter() - start
    await asyncio.sleep(1.0)
    held = rss_kib(pid)
    open_now = sum(1 for reader, _ in conns if not reader.at_eof())
    times = []
    for _ in range(NORMAL_REQUESTS):
        times.append(await normal(host, port))
    served = sorted(t for t in times if t is not None)
    still_open = sum(1 for reader, _ in conns if not reader.at_eof())
    for _, writer in conns:
        writer.close()
    print(json.dumps({
        "mode": mode,
        "sockets_opened": len(conns),
        "seconds_to_open": round(opened, 2),
        "open_when_measured": open_now,
        "rss_before_kib": before,
        "rss_held_kib": held,
        "kib_per_socket": round((held - before) / max(open_now, 1), 2),
        "normal_served": len(served),
        "normal_of": NORMAL_REQUESTS,
        "normal_p50_ms": round(served[len(served) // 2] * 1000, 1) if served else None,
        "normal_max_ms": round(served[-1] * 1000, 1) if served else None,
        "still_open_after": still_open,
    }))


if __name__ == "__main__":
    host, port, count, mode, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    asyncio.run(main(host, port, count, mode, pid))
