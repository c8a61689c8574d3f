"""Benchmarks of `wikitop range` and `wikitop window` (issue: ranges, days and windows).

    .venv/bin/python bench/bench_range.py [--lines 1000000] [--runs 3] [--rate 4e6] [--network-hours 6]
                                          [--parts day,network]

(a) a day of 24 generated hours from dumps on local disk (`range --daily`) against
    `gzip -dc` of the same 24 files;
(b) the same day's top from the kept hourly totals (`window`, reading no dump);
(c) a range of hours through a loopback server throttled to --rate bytes/s per
    connection from the first byte, with 3 connections allowed, against the
    transfer bound bytes / (3 x rate).
Medians of --runs runs; baselines are measured in the same run, alternating.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from common import ROOT, WORK, gib, measure, median, mirror_hours

sys.path.insert(0, str(ROOT / "tests"))
from dumpserver import DumpServer  # noqa: E402


def wikitop(*args: str) -> list[str]:
    return [sys.executable, "-m", "wikitop", *args, "-q"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines per generated hour")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=4e6, help="bytes/s per connection for (c)")
    parser.add_argument("--network-hours", type=int, default=6)
    parser.add_argument("--parts", default="day,network", help="day: (a) and (b); network: (c)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    work = WORK / f"day-{args.lines}"
    files = mirror_hours(work / "mirror", 24, args.lines)
    size = sum(f.stat().st_size for f in files)
    print(f"input: 24 hours x {args.lines:,} lines, {size / 1e6:.0f} MB gzipped")
    if "day" in parts:
        day_benchmark(work, files, args.runs)
    if "network" in parts:
        network_benchmark(work, files, args)


def day_benchmark(work, files, runs_wanted: int) -> None:
    baseline = ["sh", "-c", "gzip -dc " + " ".join(f"'{f}'" for f in files) + " > /dev/null"]
    common = ["--source", str(work / "mirror"), "--out", str(work / "out"), "--cache-dir", str(work / "cache")]
    day = wikitop("range", "2020-01-22T00", "2020-01-22T23", "--daily", "--force", *common)
    window = wikitop("window", "2020-01-22T00", "2020-01-22T23", "--force", *common)

    runs = {"gzip": [], "day": [], "window": []}
    for run in range(runs_wanted):
        runs["gzip"].append(measure(baseline))
        runs["day"].append(measure(day))
        runs["window"].append(measure(window))
        print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1][0]:.1f}s" for k, v in runs.items()), flush=True)
    gzip_median = median(s for s, _ in runs["gzip"])
    print()
    print("| (a)/(b) | median wall | ratio to gzip -dc | peak memory |")
    print("|---|---|---|---|")
    for name, label in (("gzip", "gzip -dc of the 24 files"), ("day", "range --daily (24 hours + day)"),
                        ("window", "window over the day, from kept totals")):
        seconds = median(s for s, _ in runs[name])
        print(f"| {label} | {seconds:.1f} s | {seconds / gzip_median:.2f}x | {gib(max(m for _, m in runs[name]))} |")


def network_benchmark(work, files, args) -> None:
    hours = args.network_hours
    served = sum(f.stat().st_size for f in files[:hours])
    bound = served / (3 * args.rate)
    timings = []
    # Throttled from the first byte of every response, so that the bound is the real one.
    with DumpServer(work / "mirror", max_connections=3, rate_bytes_per_s=args.rate, throttle_after_bytes=0) as server:
        for run in range(args.runs):
            shutil.rmtree(work / "net-cache", ignore_errors=True)
            network = wikitop("range", "2020-01-22T00", f"2020-01-22T{hours - 1:02d}", "--force",
                              "--source", server.url, "--out", str(work / "net-out"),
                              "--cache-dir", str(work / "net-cache"))
            timings.append(measure(network))
            print(f"network run {run + 1}: {timings[-1][0]:.1f}s (bound {bound:.1f}s)", flush=True)
        peak = server.peak_connections
    wall = median(s for s, _ in timings)
    print()
    print(f"| (c) {hours} hours, {served / 1e6:.0f} MB at {args.rate / 1e6:.1f} MB/s x 3 | value |")
    print("|---|---|")
    print(f"| transfer bound | {bound:.1f} s |")
    print(f"| range, median wall | {wall:.1f} s |")
    print(f"| ratio | {wall / bound:.2f}x |")
    print(f"| peak connections at the server | {peak} |")


if __name__ == "__main__":
    main()
