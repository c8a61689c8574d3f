"""How close fetching a few hours comes to the transfer bound of a throttled dump server.

Serves generated hours with tests/dumpserver.py on 127.0.0.1, each response
throttled to RATE bytes/s after its first --throttle-after bytes (1 MiB, as the
real server does; 0 throttles every byte) and at most 3 connections, then fetches
them all with the library, 3 at once (as the range runner does), into an empty
cache. The bound is total bytes / (3 x RATE); since the server sends the first
bytes of each response unthrottled (and a file fetched in byte ranges is several
responses), the table also gives the bound for the bytes that were throttled.

    .venv/bin/python bench/bench_fetch.py [--hours 6] [--lines 600000] [--rate 2e6] [--throttle-after 1048576]
                                          [--connections 3] [--runs 3]

With --hours 1 and --connections 1 or 3 it shows what fetching one file in byte ranges
over three connections gains over one stream.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from dumpserver import THROTTLE_AFTER_BYTES, DumpServer
from wikitop.hours import dump_relative_path
from wikitop.source.download import Fetcher
from wikitop.source.fetch import DumpStore
from wikitop.synthetic import generate_hour

FIRST_HOUR = datetime(2020, 1, 22, 0, tzinfo=UTC)


def build_site(site: Path, hours: list[datetime], lines: int) -> list[int]:
    """Generate each hour's dump once (kept in ``site`` for later runs); returns their sizes."""
    sizes = []
    for number, hour in enumerate(hours):
        path = site / dump_relative_path(hour)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            generate_hour(path.with_suffix(".tmp"), lines=lines, seed=1000 + number)
            path.with_suffix(".tmp").rename(path)
        sizes.append(path.stat().st_size)
    return sizes


def fetch_all(server: DumpServer, hours: list[datetime], cache: Path, connections: int) -> float:
    """Seconds to fetch every hour through DumpStore.prefetch (as many at once as connections),
    into an empty cache."""
    shutil.rmtree(cache, ignore_errors=True)
    store = DumpStore([server.url], cache, Fetcher(max_connections=connections))
    started = time.monotonic()
    futures = [store.prefetch(hour) for hour in hours]
    for future in futures:
        future.result()
    elapsed = time.monotonic() - started
    store.close()
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=int, default=6, help="hours to fetch")
    parser.add_argument("--lines", type=int, default=600_000, help="lines per hour (600,000: about 6 MB)")
    parser.add_argument("--rate", type=float, default=2e6, help="bytes/s per connection after its first MiB")
    parser.add_argument("--throttle-after", type=int, default=THROTTLE_AFTER_BYTES,
                        help="bytes of each response sent unthrottled")
    parser.add_argument("--connections", type=int, default=3, help="connections the client may open (1 to 3)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--site", type=Path, default=None,
                        help="where the generated hours are kept between runs (default: a folder per --lines)")
    args = parser.parse_args(argv)
    args.site = args.site or Path(tempfile.gettempdir()) / f"wikitop-bench-fetch-{args.lines}"

    hours = [FIRST_HOUR + timedelta(hours=i) for i in range(args.hours)]
    sizes = build_site(args.site / "site", hours, args.lines)
    total = sum(sizes)
    connections = args.connections
    bound = total / (connections * args.rate)

    times, throttled_bytes = [], []
    with DumpServer(args.site / "site", max_connections=3, rate_bytes_per_s=args.rate,
                    throttle_after_bytes=args.throttle_after) as server:
        for run in range(1, args.runs + 1):
            server.reset_stats()
            seconds = fetch_all(server, hours, args.site / "cache", connections)
            times.append(seconds)
            throttled_bytes.append(sum(max(0, r.bytes_sent - args.throttle_after) for r in server.requests))
            print(f"run {run}: {seconds:.2f} s, peak {server.peak_connections} connections, "
                  f"{server.refused_connections} refused", file=sys.stderr)
    median = statistics.median(times)
    throttled_bound = statistics.median(throttled_bytes) / (connections * args.rate)

    rows = [
        ("hours", f"{len(hours)} x {total / len(hours) / 1e6:.1f} MB = {total / 1e6:.1f} MB"),
        ("per-connection rate", f"{args.rate / 1e6:.2f} MB/s after {args.throttle_after:,} bytes of each response, "
                                f"{connections} connections"),
        ("wall time (median)", f"{median:.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times)})"),
        (f"bound: bytes / ({connections} x rate)", f"{bound:.2f} s   wall / bound = {median / bound:.2f}"),
        ("bound, throttled bytes only", f"{throttled_bound:.2f} s   wall / bound = {median / throttled_bound:.2f}"),
        ("throughput", f"{total / median / 1e6:.2f} MB/s of {connections * args.rate / 1e6:.2f} MB/s"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
