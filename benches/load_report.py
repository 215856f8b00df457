#!/usr/bin/env python3
"""Summarises a load.sh run: Markdown tables, ratio lines and a PNG chart.

    load_report.py RESULTS.tsv MEMORY.tsv CHART.png

RESULTS.tsv has one row per wrk run (round, proto, target, connections, rps, p50_ms, p99_ms,
steal_pct: the share of CPU time the VM's host took away during the run);
MEMORY.tsv one row per proxy (target, idle_kib, held_kib, closed_kib, held_open, held_wanted). Tables use the
median over rounds. The chart needs matplotlib; without it the tables are still printed.
"""

import csv
import statistics
import sys

LABELS = {"direct": "direct to backend", "relay": "L4 relay (HAProxy mode tcp)",
          "nginx": "nginx", "haproxy": "HAProxy", "dockhand": "dockhand"}
TARGETS = {"http": ["direct", "relay", "nginx", "haproxy", "dockhand"],
           "https": ["nginx", "haproxy", "dockhand"]}
TITLES = {"http": "HTTP/1.1", "https": "HTTPS (TLS 1.3)"}


def load(path):
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def median(rows, proto, target, conns, key):
    values = [float(r[key]) for r in rows
              if r["proto"] == proto and r["target"] == target and r["connections"] == conns]
    return statistics.median(values) if values else None


def speed_tables(rows):
    rounds = len({r["round"] for r in rows})
    for proto in ("http", "https"):
        print(f"\n{TITLES[proto]}: medians of {rounds} interleaved round(s)\n")
        print("| target | req/s (64 conns) | p50 ms | p99 ms | req/s (1 conn) | p50 ms | p99 ms |")
        print("|---|---|---|---|---|---|---|")
        for t in TARGETS[proto]:
            c = [median(rows, proto, t, n, k) for n in ("64", "1")
                 for k in ("rps", "p50_ms", "p99_ms")]
            print(f"| {LABELS[t]} | {c[0]:,.0f} | {c[1]:.2f} | {c[2]:.2f} "
                  f"| {c[3]:,.0f} | {c[4]:.3f} | {c[5]:.3f} |")


def memory_table(mem):
    if not mem:
        return
    wanted = int(mem[0]["held_wanted"])
    print(f"\nMemory (VmRSS; nginx: master + workers)\n")
    print(f"| proxy | idle MiB | with {wanted:,} idle keep-alive connections MiB "
          "| KiB per connection | after they close MiB | connections still open when measured |")
    print("|---|---|---|---|---|---|")
    for r in mem:
        idle, held, closed = (int(r[k]) for k in ("idle_kib", "held_kib", "closed_kib"))
        print(f"| {LABELS[r['target']]} | {idle / 1024:.1f} | {held / 1024:.1f} "
              f"| {(held - idle) / wanted:.1f} | {closed / 1024:.1f} | {int(r['held_open']):,} |")


# A run whose host took more CPU away than this is not compared in the calm-round ratios.
CALM_STEAL_PCT = 2.0


def round_ratios(rows, proto, other, calm_only=False):
    """dockhand's req/s over `other`'s at 64 connections, round by round: paired within a round,
    so that the VM's drift between rounds cancels out. With `calm_only`, only the rounds in
    which neither run saw more than CALM_STEAL_PCT of CPU steal."""
    by_round = {}
    for r in rows:
        if r["proto"] == proto and r["connections"] == "64":
            steal = float(r.get("steal_pct") or 0)
            by_round.setdefault(r["round"], {})[r["target"]] = (float(r["rps"]), steal)
    return [runs["dockhand"][0] / runs[other][0] for _, runs in sorted(by_round.items())
            if "dockhand" in runs and other in runs
            and (not calm_only or max(runs["dockhand"][1], runs[other][1]) <= CALM_STEAL_PCT)]


def ratios(rows, mem):
    print()
    for proto in ("http", "https"):
        d = {k: median(rows, proto, "dockhand", "64", k) for k in ("rps", "p99_ms")}
        d1 = median(rows, proto, "dockhand", "1", "p99_ms")
        parts = []
        for other in ("nginx", "haproxy"):
            rps = median(rows, proto, other, "64", "rps")
            p99 = median(rows, proto, other, "64", "p99_ms")
            p99_1 = median(rows, proto, other, "1", "p99_ms")
            rounds = ", ".join(f"{x:.2f}" for x in round_ratios(rows, proto, other))
            calm = round_ratios(rows, proto, other, calm_only=True)
            calm_text = (f"; median of the {len(calm)} calm round(s): "
                         f"{statistics.median(calm):.2f}" if calm else "; no calm round")
            parts.append(f"{d['rps'] / rps:.2f}x {LABELS[other]}'s req/s (by round: {rounds}"
                         f"{calm_text}), "
                         f"p99 {d['p99_ms']:.2f} vs {p99:.2f} ms "
                         f"(1 conn: {d1:.3f} vs {p99_1:.3f} ms)")
        print(f"{TITLES[proto]}, dockhand at 64 connections: " + "; ".join(parts))
    relay = median(rows, "http", "relay", "64", "rps")
    if relay:
        others = ", ".join(f"{relay / median(rows, 'http', o, '64', 'rps'):.2f}x {LABELS[o]}'s"
                           for o in ("nginx", "haproxy", "dockhand"))
        print(f"Ceiling: the L4 relay, which parses nothing, serves {others} req/s over HTTP "
              "(passing the bytes alone; an HTTP proxy does that and more)")
    steal = [float(r["steal_pct"]) for r in rows if r.get("steal_pct")]
    if steal:
        print(f"CPU steal during the runs (VM host load): median {statistics.median(steal):.1f}%, "
              f"max {max(steal):.1f}%; calm rounds are those where neither run of a pair saw "
              f"more than {CALM_STEAL_PCT:g}%")
    held = {r["target"]: int(r["held_kib"]) for r in mem}
    if "dockhand" in held:
        others = ", ".join(f"{held['dockhand'] / held[o]:.2f}x {LABELS[o]}'s"
                           for o in ("nginx", "haproxy") if o in held)
        print(f"Memory with idle connections, dockhand: {others}")


def chart(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(no chart: matplotlib is not importable)")
        return
    colours = {"direct": "#9e9e9e", "relay": "#bdbdbd", "nginx": "#2e7d32", "haproxy": "#1565c0",
               "dockhand": "#e65100"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    panels = (("rps", "requests/s, 64 connections (higher is better)", "{:,.0f}"),
              ("p99_ms", "p99 latency ms, 64 connections (lower is better)", "{:.2f}"))
    width = 0.16
    for ax, (key, title, fmt) in zip(axes, panels):
        for g, proto in enumerate(("http", "https")):
            targets = TARGETS[proto]
            for i, t in enumerate(targets):
                x = g + (i - (len(targets) - 1) / 2) * width
                v = median(rows, proto, t, "64", key)
                ax.bar(x, v, width * 0.9, color=colours[t],
                       label=LABELS[t] if g == 0 else None)
                ax.annotate(fmt.format(v), (x, v), ha="center", va="bottom", fontsize=7)
        ax.set_xticks([0, 1], [TITLES["http"], TITLES["https"]])
        ax.set_title(title, fontsize=10)
        ax.margins(y=0.12)
    axes[0].legend(fontsize=8)
    fig.suptitle("dockhand vs nginx vs HAProxy, same backend, medians of interleaved rounds",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nChart: {path}")


if __name__ == "__main__":
    results, memory, png = sys.argv[1:4]
    rows, mem = load(results), load(memory)
    speed_tables(rows)
    memory_table(mem)
    ratios(rows, mem)
    chart(rows, png)
