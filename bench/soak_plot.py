#!/usr/bin/env python3
"""Plots bench/soak's RSS samples: one line per hub and Redis (MiB over
minutes), a dotted vertical line at each fault, and prints the RSS of each
process at the start and the end (the median of its first and last five
minutes of samples), for bench/RESULTS.md.

    bench/soak_plot.py soak-rss.csv soak-result.json soak-rss.png
"""

from __future__ import annotations

import csv
import json
import statistics
import sys


def main(csv_path: str, result_path: str, png_path: str) -> int:
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        print("no samples", file=sys.stderr)
        return 1
    try:
        with open(result_path) as f:
            result = json.load(f)
    except (OSError, ValueError):
        result = {}
    t0 = float(rows[0]["unix"]) - float(rows[0]["seconds"])
    names = [k[:-3] for k in rows[0] if k.endswith("_kb")]
    minutes = [float(r["seconds"]) / 60 for r in rows]
    series = {n: [int(r[f"{n}_kb"]) / 1024 for r in rows] for n in names}
    window = max(1, int(300 / max(1.0, float(rows[-1]["seconds"]) / max(1, len(rows) - 1))))
    for n in names:
        alive = [v for v in series[n] if v > 0]
        start = statistics.median(series[n][:window]) if series[n][:window] else 0
        end = statistics.median(series[n][-window:]) if series[n][-window:] else 0
        print(f"{n}: start {start:.1f} MiB, end {end:.1f} MiB, max {max(alive or [0]):.1f} MiB")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for n in names:
        ax.plot(minutes, [v if v > 0 else float("nan") for v in series[n]], label=n, lw=1.2)
    for i, fault in enumerate(result.get("faults", [])):
        x = (fault["t"] - t0) / 60
        ax.axvline(x, color="grey", ls=":", lw=0.8)
        ax.text(x, ax.get_ylim()[1] if i == 0 else ax.get_ylim()[1], fault["fault"], rotation=90,
                fontsize=6, va="top", ha="right", color="grey")
    counts = result.get("counts", {})
    ax.set_title("bench/soak: RSS of every hub and Redis (dotted: faults)\n"
                 + " ".join(f"{k}={counts.get(k, 0)}" for k in
                            ("events", "deliveries", "reconnects", "heals", "gaps", "stale",
                             "lost")), fontsize=9)
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    print(f"wrote {png_path}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
