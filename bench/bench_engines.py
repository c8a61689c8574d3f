"""The same generated day on each engine: wall time per hour, a day from hourly totals, peak memory.

    .venv/bin/python bench/bench_engines.py                      # 24 hours of 1M lines
    .venv/bin/python bench/bench_engines.py --hours 6 --lines 6000000 --spark-conf spark.driver.memory=8g

Each engine runs in a child process of its own, which processes every hour (keeping its
hourly totals as Parquet, as `wikitop range --daily` does) and then the day from those
totals. Memory and CPU time are those of the child's whole process tree (for Spark: the
Python driver, the JVM and the Python UDF workers), sampled every 0.1 s from /proc (Linux).
Generated hours are kept in --workdir and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wikitop.rank import create_engine
from wikitop.rank.blacklist import DEFAULT_BLACKLIST, load_blacklist, read_blacklist_bytes
from wikitop.synthetic import generate_hour

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.1


def generated_day(workdir: Path, hours: int, lines: int) -> list[Path]:
    blacklist_file = workdir / "blacklist_domains_and_pages"
    blacklist_file.write_bytes(read_blacklist_bytes(DEFAULT_BLACKLIST))
    dumps = []
    for hour in range(hours):
        path = workdir / f"hour-{lines}-{hour:02d}.gz"
        if not path.exists():
            started = time.perf_counter()
            partial = path.with_suffix(".partial")
            generate_hour(partial, lines=lines, seed=hour, blacklist_path=blacklist_file)
            partial.rename(path)
            print(f"generated {path.name} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        dumps.append(path)
    return dumps


def run_engine(engine_name: str, dumps: list[Path], totals_dir: Path, spark_conf: dict, top: int) -> dict:
    """In the child: every hour, then the day from the hours' totals; timings in seconds."""
    blacklist = load_blacklist(DEFAULT_BLACKLIST)
    engine = create_engine(engine_name, spark_conf)
    timings: dict = {"hours": []}
    try:
        if engine_name == "spark":
            started = time.perf_counter()
            engine.spark  # noqa: B018 - starting the session is timed on its own
            timings["session_start"] = time.perf_counter() - started
        totals = []
        for dump in dumps:
            totals.append(totals_dir / f"{dump.stem}.parquet")
            started = time.perf_counter()
            result = engine.process_hour(dump, blacklist, top, "rank", totals_path=totals[-1])
            timings["hours"].append(time.perf_counter() - started)
            print(f"{engine_name} {dump.name}: {timings['hours'][-1]:.1f}s, {result.pages} pages", file=sys.stderr)
        started = time.perf_counter()
        engine.process_totals(totals, blacklist, top, "rank")
        timings["day_from_totals"] = time.perf_counter() - started
    finally:
        engine.close()
    return timings


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def rss_and_cpu_ticks(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/statm") as statm:
        rss_pages = int(statm.read().split()[1])
    return rss_pages * PAGE_SIZE, int(fields[11]) + int(fields[12])  # utime + stime


def measure_child(args: list[str]) -> dict:
    """Run this script as a child with ``args``: its JSON report, with the peak memory and
    the CPU time of its whole process tree, sampled."""
    with tempfile.TemporaryFile("w+") as report:
        process = subprocess.Popen([sys.executable, __file__, *args], stdout=report)
        peak_rss = 0
        cpu_ticks: dict[int, int] = {}  # the last seen of each process: the JVM is not reaped by the child
        while process.poll() is None:
            rss = 0
            for pid in process_tree(process.pid):
                try:
                    pid_rss, cpu_ticks[pid] = rss_and_cpu_ticks(pid)
                except (OSError, ValueError, IndexError):
                    continue
                rss += pid_rss
            peak_rss = max(peak_rss, rss)
            time.sleep(SAMPLE_SECONDS)
        if process.returncode != 0:
            raise SystemExit(f"child {' '.join(args)} failed with exit code {process.returncode}")
        report.seek(0)
        result = json.load(report)
    result["peak_rss_mib"] = peak_rss / 2**20
    result["cpu_seconds"] = sum(cpu_ticks.values()) / CLOCK_TICKS
    return result


def summary(engine: str, result: dict) -> str:
    hours = result["hours"]
    return (
        f"{engine:7s} hour median {statistics.median(hours):6.1f}s (min {min(hours):.1f}, max {max(hours):.1f}, "
        f"first {hours[0]:.1f})  day from totals {result['day_from_totals']:6.1f}s  "
        f"all {sum(hours) + result['day_from_totals']:7.1f}s"
        + (f" + session start {result['session_start']:.1f}s" if "session_start" in result else "")
        + f"  cpu {result['cpu_seconds']:7.1f}s  peak rss {result['peak_rss_mib']:6.0f} MiB"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=24, help="hours in the day (default 24)")
    parser.add_argument(
        "--lines", type=int, default=1_000_000, help="lines per hour (default 1M; a real hour has 4-6M)"
    )
    parser.add_argument("--engines", default="duckdb,spark", help="comma-separated (default duckdb,spark)")
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark property (repeatable); the default master is local[*]",
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "wikitop-bench",
        help="where generated hours are kept between runs",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", metavar="ENGINE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    spark_conf = dict(pair.split("=", 1) for pair in args.spark_conf)

    args.workdir.mkdir(parents=True, exist_ok=True)
    dumps = generated_day(args.workdir, args.hours, args.lines)
    if args.child:
        with tempfile.TemporaryDirectory(dir=args.workdir, prefix=f"totals-{args.child}-") as totals_dir:
            json.dump(run_engine(args.child, dumps, Path(totals_dir), spark_conf, args.top), sys.stdout)
        return 0

    figures = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_before": os.getloadavg()},
        "input": {
            "hours": args.hours,
            "lines_per_hour": args.lines,
            "gzip_mib": sum(d.stat().st_size for d in dumps) / 2**20,
        },
        "spark_conf": spark_conf,
        "engines": {},
    }
    passed = list(argv if argv is not None else sys.argv[1:])
    for engine in args.engines.split(","):
        figures["engines"][engine] = measure_child([*passed, "--child", engine])
        print(summary(engine, figures["engines"][engine]))
    figures["machine"]["load_after"] = os.getloadavg()
    load_before, load_after = figures["machine"]["load_before"][0], figures["machine"]["load_after"][0]
    print(
        f"load average before {load_before:.1f}, after {load_after:.1f}"
        f" on {os.cpu_count()} CPUs; input {figures['input']['gzip_mib']:.0f} MiB gzip"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
