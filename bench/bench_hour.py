"""Benchmark: `wikitop hour` on one full generated hour against `gzip -dc` of the same file.

    .venv/bin/python bench/bench_hour.py [--lines 6000000] [--runs 5] [--against OTHER/src]

Runs alternate between the baseline and wikitop so that both see the same machine load.
Reports median wall time, the ratio to the baseline and peak memory. --against also times
another wikitop source tree in the same rounds (e.g. `git worktree add /tmp/old HEAD~3`,
then --against /tmp/old/src), to compare two versions on the same machine load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from common import WORK, gib, measure, median, mirror_hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=6_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engine", default="duckdb")
    parser.add_argument("--against", metavar="SRC", help="another wikitop source tree to time in the same rounds")
    args = parser.parse_args()

    work = WORK / f"hour-{args.lines}"
    [dump] = mirror_hours(work / "mirror", 1, args.lines)
    print(f"input: {dump} ({dump.stat().st_size / 1e6:.1f} MB gzipped)")
    wikitop = [sys.executable, "-m", "wikitop", "hour", "2020-01-22T00", "--source", str(work / "mirror"),
               "--out", str(work / "out"), "--cache-dir", str(work / "cache"), "--force", "-q",
               "--engine", args.engine]
    baseline = ["sh", "-c", f"gzip -dc '{dump}' > /dev/null"]
    versions = {"wikitop hour": {}}
    if args.against:
        versions[f"wikitop hour ({args.against})"] = {"env": {**os.environ, "PYTHONPATH": args.against}}
    shutil.rmtree(work / "out", ignore_errors=True)
    for options in versions.values():
        measure(wikitop, **options)  # warm-up: page cache, imports

    gzip_runs, runs = [], {name: [] for name in versions}
    for run in range(args.runs):
        gzip_runs.append(measure(baseline))
        order = list(versions) if run % 2 == 0 else list(reversed(versions))
        for name in order:
            runs[name].append(measure(wikitop, **versions[name]))
        timings = ", ".join(f"{name} {runs[name][-1][0]:.2f}s" for name in versions)
        print(f"run {run + 1}: gzip -dc {gzip_runs[-1][0]:.2f}s, {timings}", flush=True)

    gzip_median = median(s for s, _ in gzip_runs)
    print()
    print(f"| {args.lines:,} lines, {args.runs} runs | median wall | ratio | peak memory |")
    print("|---|---|---|---|")
    print(f"| gzip -dc | {gzip_median:.2f} s | 1.00x | {gib(max(m for _, m in gzip_runs))} |")
    for name, timed in runs.items():
        wikitop_median = median(s for s, _ in timed)
        print(f"| {name} ({args.engine}) | {wikitop_median:.2f} s | {wikitop_median / gzip_median:.2f}x "
              f"| {gib(max(m for _, m in timed))} |")


if __name__ == "__main__":
    main()
