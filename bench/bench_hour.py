"""Benchmark: `wikitop hour` on one full generated hour against `gzip -dc` of the same file.

    .venv/bin/python bench/bench_hour.py [--lines 6000000] [--runs 5]

Runs alternate between the baseline and wikitop so that both see the same machine load.
Reports median wall time, the ratio to the baseline and peak memory.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from common import WORK, gib, measure, median, mirror_hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=6_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engine", default="duckdb")
    args = parser.parse_args()

    work = WORK / f"hour-{args.lines}"
    [dump] = mirror_hours(work / "mirror", 1, args.lines)
    print(f"input: {dump} ({dump.stat().st_size / 1e6:.1f} MB gzipped)")
    wikitop = [sys.executable, "-m", "wikitop", "hour", "2020-01-22T00", "--source", str(work / "mirror"),
               "--out", str(work / "out"), "--cache-dir", str(work / "cache"), "--force", "-q",
               "--engine", args.engine]
    baseline = ["sh", "-c", f"gzip -dc '{dump}' > /dev/null"]
    shutil.rmtree(work / "out", ignore_errors=True)
    measure(wikitop)  # warm-up: page cache, imports

    gzip_runs, wikitop_runs = [], []
    for run in range(args.runs):
        gzip_runs.append(measure(baseline))
        wikitop_runs.append(measure(wikitop))
        print(f"run {run + 1}: gzip -dc {gzip_runs[-1][0]:.2f}s, wikitop {wikitop_runs[-1][0]:.2f}s", flush=True)

    gzip_median = median(s for s, _ in gzip_runs)
    wikitop_median = median(s for s, _ in wikitop_runs)
    print()
    print(f"| {args.lines:,} lines, {args.runs} runs | median wall | peak memory |")
    print("|---|---|---|")
    print(f"| gzip -dc | {gzip_median:.2f} s | {gib(max(m for _, m in gzip_runs))} |")
    print(f"| wikitop hour ({args.engine}) | {wikitop_median:.2f} s | {gib(max(m for _, m in wikitop_runs))} |")
    print(f"| ratio | {wikitop_median / gzip_median:.2f}x | |")


if __name__ == "__main__":
    main()
