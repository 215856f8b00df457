#!/usr/bin/env python3
"""Holds idle keep-alive connections open against a proxy and reports the proxy's memory.

    hold.py HOST PORT CONNECTIONS HOSTHEADER PID[,PID...]

Opens CONNECTIONS connections to HOST:PORT; on each, sends one complete GET / and reads the whole
response, then leaves the connection idle (keep-alive). Once all are open it waits a moment for
the proxy to settle, reads VmRSS of the given processes from /proc (summed) until it stops
moving (at most 30 s: what an idle proxy frees counts once returned), checks that every
connection is still open, and closes them all; a moment later it reads VmRSS again. Prints one
line: "open rss_held_kib rss_after_close_kib seconds_to_open".
Used by load.sh for the memory row of each proxy.
"""

import asyncio
import resource
import sys
import time

OPENING_AT_ONCE = 256  # stays under the proxies' listen backlogs, so no SYN is dropped
SETTLE = 1.0           # seconds for the proxy to settle before each RSS reading
STEADY_MAX = 30.0      # the longest wait for the held RSS to stop moving
STEADY_WINDOW = 6      # readings, a second apart, that must agree


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


async def steady_rss(pids):
    """RSS once it stops moving: memory an idle proxy frees (dockhand parks idle connections and
    jemalloc returns their buffers over the following ten seconds, slowly at first) counts only
    once it is returned. Reads every second until the last STEADY_WINDOW readings agree within
    1%, for at most STEADY_MAX seconds."""
    readings = [rss_kib(pids)]
    deadline = time.monotonic() + STEADY_MAX
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        readings.append(rss_kib(pids))
        last = readings[-STEADY_WINDOW:]
        if len(last) == STEADY_WINDOW and max(last) - min(last) <= last[-1] / 100:
            break
    return readings[-1]


async def open_one(host, port, request, gate):
    async with gate:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1] != "200":
            raise RuntimeError(f"proxy answered {lines[0]!r}")
        length = next((int(l.split(":", 1)[1]) for l in lines[1:]
                       if l.lower().startswith("content-length:")), None)
        if length is None:
            raise RuntimeError("response without Content-Length: cannot tell where it ends")
        await reader.readexactly(length)
        return reader, writer


async def main(host, port, count, host_header, pids):
    request = (f"GET / HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: hold.py\r\n"
               "Accept: */*\r\n\r\n").encode()
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    start = time.perf_counter()
    conns = await asyncio.gather(*(open_one(host, port, request, gate) for _ in range(count)))
    opened = time.perf_counter() - start
    await asyncio.sleep(SETTLE)
    rss = await steady_rss(pids)
    # A proxy that closed idle connections early would look lighter than it is: count survivors.
    open_now = sum(1 for reader, _ in conns if not reader.at_eof())
    for _, writer in conns:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)
    await asyncio.sleep(SETTLE)
    print(f"{open_now} {rss} {rss_kib(pids)} {opened:.2f}")


if __name__ == "__main__":
    host, port, count, host_header, pids = sys.argv[1:6]
    # One descriptor per connection, plus a few; the hard limit is the ceiling.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if int(count) + 64 > hard:
        sys.exit(f"hold.py: {count} connections need more descriptors than the limit ({hard})")
    asyncio.run(main(host, int(port), int(count), host_header,
                     [int(p) for p in pids.split(",")]))
