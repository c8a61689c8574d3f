"""Stage profile of `wikitop hour --force`: CPU seconds and share per stage, each SQL file by name.

    .venv/bin/python bench/profile_hour.py [--lines 6000000] [--runs 5] [--against OTHER/src]

Each run is a fresh process running the CLI's `hour` command on the generated hour of
bench_hour.py, with the stages timed from inside (--child):

- interpreter start: the process's CPU before this script's first line;
- imports: CPU of the thread doing an import, outermost import only (so an import that
  another triggers is counted once);
- decompression and parsing: CPU of the threads running them (each call of the pieces
  iterator, of parse_dump and of its helpers), though they run at the same time as the
  statement that reads their pieces;
- each DuckDB statement: CPU of the whole process (DuckDB's threads included) while it
  runs, less the decompression and parsing done meanwhile, named by its SQL file;
- the rest: what the process spent besides (CLI, blacklist, publishing, waiting threads).

Runs alternate with `gzip -dc` of the same file, so that both meet the same load; the table
gives medians, with --against another source tree profiled in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import defaultdict

from common import WORK, measure, median, mirror_hours

PARSE_HELPERS = {
    "_drop_long_lines": "long lines",
    "_set_aside_lines_with": "lines with \\r",
    "_drop_invalid_utf8": "UTF-8 check",
    "_read_fields": "Arrow CSV parsing",
    "_count_lines": "line count",
    "_pair_order": "pair order check",
}


def child(argv: list[str]) -> None:
    """Run the CLI on argv with every stage timed; print the stages' CPU seconds as JSON."""
    import builtins
    import resource
    import threading
    import time

    def rusage_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    stages: dict[str, float] = defaultdict(float)
    stages["interpreter start"] = rusage_cpu()
    lock = threading.Lock()
    local = threading.local()

    def add(stage: str, seconds: float) -> None:
        with lock:
            stages[stage] += seconds

    real_import = builtins.__import__

    def timed_import(*args, **kwargs):
        if getattr(local, "importing", False):
            return real_import(*args, **kwargs)
        local.importing = True
        started = time.thread_time()
        try:
            return real_import(*args, **kwargs)
        finally:
            local.importing = False
            add("imports", time.thread_time() - started)

    builtins.__import__ = timed_import

    from wikitop.rank import duckdb_engine
    from wikitop.source import dump_reader

    # CPU of the reading threads, to take off the statements that run while they work.
    reading = {"cpu": 0.0}

    def timed_thread(stage: str, function):
        def timed(*args, **kwargs):
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                add(stage, spent)
                if not getattr(local, "in_parse", False):
                    with lock:
                        reading["cpu"] += spent
        return timed

    real_pieces = dump_reader.verified_pieces

    def timed_pieces(*args, **kwargs):
        pieces = real_pieces(*args, **kwargs)
        next_piece = timed_thread("decompression", lambda: next(pieces, None))
        while (piece := next_piece()) is not None:
            yield piece

    dump_reader.verified_pieces = timed_pieces
    real_parse = dump_reader.parse_dump

    def timed_parse(*args, **kwargs):
        local.in_parse = True
        try:
            return real_parse(*args, **kwargs)
        finally:
            local.in_parse = False

    dump_reader.parse_dump = timed_thread("parsing", timed_parse)
    for helper, stage in PARSE_HELPERS.items():
        if hasattr(dump_reader, helper):
            setattr(dump_reader, helper, timed_thread(f"parsing: {stage}", getattr(dump_reader, helper)))

    real_render = duckdb_engine.render

    def named_render(name, **params):
        return f"/* sql:{name} */ " + real_render(name, **params)

    duckdb_engine.render = named_render

    def statement_name(sql: str) -> str:
        names = re.findall(r"/\* sql:(\w+) \*/", sql)
        if names:
            return "SQL " + " + ".join(f"{name}.sql" for name in dict.fromkeys(names))
        return "SQL: " + " ".join(sql.split())[:60]

    def timed_statement(name: str, function, *args, **kwargs):
        started, reading_before = time.process_time(), reading["cpu"]
        try:
            return function(*args, **kwargs)
        finally:
            add(name, time.process_time() - started - (reading["cpu"] - reading_before))

    class TimedRelation:
        def __init__(self, relation, name):
            self._relation, self._name = relation, name

        def __getattr__(self, attribute):
            value = getattr(self._relation, attribute)
            if not callable(value):
                return value
            return lambda *args, **kwargs: timed_statement(self._name, value, *args, **kwargs)

    class TimedConnection:
        def __init__(self, connection):
            self._connection = connection

        def execute(self, sql, *args, **kwargs):
            timed_statement(statement_name(sql), self._connection.execute, sql, *args, **kwargs)
            return self

        def sql(self, sql, *args, **kwargs):
            return TimedRelation(self._connection.sql(sql, *args, **kwargs), statement_name(sql))

        def fetchall(self):
            return self._connection.fetchall()

        def __getattr__(self, attribute):
            return getattr(self._connection, attribute)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._connection.__exit__(*exc)

    real_connect = duckdb_engine.DuckDBEngine._connect

    def timed_connect(engine):
        started = time.thread_time()
        connection = real_connect(engine)
        add("DuckDB connect", time.thread_time() - started)
        return TimedConnection(connection)

    duckdb_engine.DuckDBEngine._connect = timed_connect

    from wikitop.cli import main

    try:
        main.main(argv, standalone_mode=False)
    finally:
        total = rusage_cpu()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        accounted = sum(seconds for stage, seconds in stages.items() if not stage.startswith("parsing: "))
        stages["rest (CLI, blacklist, publishing, waits)"] = total - accounted
        stages["total"] = total
        stages["of which kernel"] = usage.ru_stime
        print(json.dumps(stages), file=sys.__stdout__, flush=True)
        os._exit(0)


def profile(argv: list[str], env: dict | None = None) -> dict[str, float]:
    output = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True,
                            check=True, env=env).stdout
    return json.loads(output.strip().splitlines()[-1])


def gzip_cpu(path) -> float:
    """CPU seconds of `gzip -dc path > /dev/null`."""
    wrapper = (
        "import resource, subprocess, sys;"
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True);"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN); print(u.ru_utime + u.ru_stime)"
    )
    return float(subprocess.run([sys.executable, "-c", wrapper, "gzip", "-dc", str(path)], capture_output=True,
                                text=True, check=True).stdout)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=6_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--against", metavar="SRC", help="another wikitop source tree to profile in the same rounds")
    args = parser.parse_args()

    work = WORK / f"hour-{args.lines}"
    [dump] = mirror_hours(work / "mirror", 1, args.lines)
    argv = ["hour", "2020-01-22T00", "--source", str(work / "mirror"), "--out", str(work / "profile-out"),
            "--cache-dir", str(work / "cache"), "--force", "-q"]
    versions = {"this tree": None}
    if args.against:
        versions[args.against] = {**os.environ, "PYTHONPATH": args.against}
    for env in versions.values():
        profile(argv, env)  # warm-up: page cache
    gzip_runs, runs = [], {name: [] for name in versions}
    for run in range(args.runs):
        gzip_runs.append((measure(["gzip", "-dc", str(dump)])[0], gzip_cpu(dump)))
        for name in (list(versions) if run % 2 == 0 else list(reversed(versions))):
            runs[name].append(profile(argv, versions[name]))
        print(f"run {run + 1}: gzip -dc {gzip_runs[-1][1]:.2f} s CPU, "
              + ", ".join(f"{name} {timed[-1]['total']:.2f} s CPU" for name, timed in runs.items()), flush=True)

    gzip_seconds = median(cpu for _, cpu in gzip_runs)
    print(f"\n`gzip -dc` of the same file: {gzip_seconds:.2f} s CPU (median of {args.runs})\n")
    for name, timed in runs.items():
        stage_names = list(dict.fromkeys(stage for run in timed for stage in run))
        medians = {stage: median(run.get(stage, 0.0) for run in timed) for stage in stage_names}
        total = medians["total"]
        print(f"{name}: median CPU per stage over {args.runs} runs, {total / gzip_seconds:.2f}x gzip -dc's CPU\n")
        print("| stage | CPU s | share |")
        print("|---|---|---|")
        for stage in sorted(stage_names, key=lambda s: (s in ("total", "of which kernel"), -medians[s])):
            print(f"| {stage} | {medians[stage]:.3f} | {100 * medians[stage] / total:.0f}% |")
        print()


if __name__ == "__main__":
    main()
