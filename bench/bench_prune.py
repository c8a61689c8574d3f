"""Benchmark: `cache prune` of a cache of many small dumps, every one of them old enough to go.

    .venv/bin/python bench/bench_prune.py [--entries 8000] [--runs 5] [--against OTHER/src]

Each run fills a fresh cache with that many one-byte dumps (each with the record and the
lock file a run leaves), then times, in a process of its own, the scan and the deletion
(``wikitop.cache.scan``, ``select_for_pruning`` and ``prune``, as `cache prune
--older-than 30d` does), without the interpreter's start. --against also times another
wikitop source tree in the same rounds (e.g. `git archive HEAD~3 src | tar -x -C /tmp/old`,
then --against /tmp/old/src).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from common import FIRST_HOUR, ROOT, WORK, median

from wikitop.hours import dump_relative_path

PRUNE = """
import json, sys, time
from wikitop.cache import prune, scan, select_for_pruning
started = time.perf_counter()
entries = scan(sys.argv[1])
scanned = time.perf_counter()
deleted, in_use = prune(select_for_pruning(entries, older_than=30 * 86400))
print(json.dumps({"scan": scanned - started, "delete": time.perf_counter() - scanned, "deleted": len(deleted)}))
"""


def fill_cache(cache: Path, entries: int) -> None:
    """``entries`` dumps of an hour each from FIRST_HOUR on, modified 40 days ago."""
    shutil.rmtree(cache, ignore_errors=True)
    long_ago = time.time() - 40 * 86400
    for number in range(entries):
        dump = cache / "pageviews" / dump_relative_path(FIRST_HOUR + timedelta(hours=number))
        dump.parent.mkdir(parents=True, exist_ok=True)
        dump.write_bytes(b"\x1f")
        dump.with_name(dump.name + ".json").write_text(json.dumps({"source": "bench"}))
        dump.with_name(dump.name + ".lock").touch()
        os.utime(dump, (long_ago, long_ago))


def time_prune(cache: Path, src: Path, entries: int) -> dict:
    fill_cache(cache, entries)
    output = subprocess.run([sys.executable, "-c", PRUNE, str(cache)], env={**os.environ, "PYTHONPATH": str(src)},
                            capture_output=True, text=True, check=True).stdout
    timed = json.loads(output)
    if timed["deleted"] != entries:
        raise SystemExit(f"{src}: pruned {timed['deleted']} of {entries} entries")
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--against", metavar="SRC", type=Path,
                        help="another wikitop source tree to time in the same rounds")
    args = parser.parse_args()

    cache = WORK / f"prune-{args.entries}" / "cache"
    versions = {"this tree": ROOT / "src"}
    if args.against:
        versions[str(args.against)] = args.against
    runs = {name: [] for name in versions}
    for run in range(args.runs):
        order = list(versions) if run % 2 == 0 else list(reversed(versions))
        for name in order:
            runs[name].append(time_prune(cache, versions[name], args.entries))
        timings = ", ".join(f"{name} {runs[name][-1]['scan'] + runs[name][-1]['delete']:.2f}s" for name in versions)
        print(f"run {run + 1}: {timings}", flush=True)
    shutil.rmtree(cache.parent, ignore_errors=True)

    print()
    print(f"| {args.entries:,} dumps, {args.runs} runs | scan (median) | delete (median) | per entry deleted |")
    print("|---|---|---|---|")
    for name, timed in runs.items():
        scan, delete = median(t["scan"] for t in timed), median(t["delete"] for t in timed)
        print(f"| {name} | {scan:.2f} s | {delete:.2f} s | {delete / args.entries * 1e6:.0f} µs |")


if __name__ == "__main__":
    main()
