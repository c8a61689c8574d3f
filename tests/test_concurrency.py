"""Runs that overlap: real wikitop processes sharing a cache and an output folder.

Two runs of the same hour download it once and publish a valid result; ``cache prune``
leaves alone what a live run holds; a marker whose data file is gone is not "done".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import HOUR, Mirror, wikitop_env
from dumpserver import DumpServer, Fault
from wikitop.cache import scan
from wikitop.hours import dump_relative_path
from wikitop.publish.store import deserialize
from wikitop.source.download import Fetcher, RetryPolicy
from wikitop.source.fetch import DumpStore
from wikitop.synthetic import generate_hour

HOUR_ARG = "2020-01-22T02"
PARTITION = "format=csv/year=2020/month=01/day=22/hour=02"
FILE = dump_relative_path(HOUR)
FAST = ("--no-blacklist", "--retries", "3", "--retry-delay", "0.05", "--stall-timeout", "5")
DAY_SECONDS = 86400


@pytest.fixture(scope="module")
def small_hour(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("small") / "small.gz"
    generate_hour(path, lines=20_000, seed=3)
    return path


@pytest.fixture
def server(tmp_path, small_hour):
    site = Mirror(tmp_path / "site")
    site.add(HOUR, small_hour)
    with DumpServer(site.root) as running:
        yield running


def start_wikitop(cache: Path, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "wikitop", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=wikitop_env(WIKITOP_CACHE_DIR=str(cache)),
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


def prune(cache: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wikitop", "cache", "prune", "--cache-dir", str(cache), *args],
        capture_output=True, text=True, env=wikitop_env(), timeout=120,
    )


def published(out: Path) -> tuple[dict, bytes]:
    folder = out / PARTITION
    marker = json.loads((folder / "_SUCCESS").read_text())
    return marker, (folder / marker["file"]).read_bytes()


def dump_gets(server: DumpServer) -> int:
    return sum(r.method == "GET" and r.path.endswith(".gz") for r in server.answered_requests())


def test_two_runs_of_the_same_hour_download_it_once(server, tmp_path):
    server.add_faults(".gz", Fault.slow(150_000))  # the first download takes about 1.5 s
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = ("hour", HOUR_ARG, "--source", server.url, "--out", out, *FAST)
    runs = [start_wikitop(cache, *args), start_wikitop(cache, *args)]
    for code, stdout, stderr in map(finish, runs):
        assert code == 0, stderr
        assert "Traceback" not in stderr
        assert f"{HOUR_ARG}: done" in stdout or f"{HOUR_ARG}: already done" in stdout
    assert dump_gets(server) == 1
    [entry] = scan(cache, ["dumps"])
    assert entry.state == "verified" and entry.path == cache / "pageviews" / FILE
    assert not list(cache.rglob("*.part*")) and not list(cache.rglob("*.tmp"))
    marker, data = published(out)
    assert deserialize(data, "csv").num_rows == marker["rows"] > 0


def test_prune_leaves_a_dump_being_downloaded_alone(server, tmp_path, small_hour):
    server.add_faults(".gz", Fault.slow(60_000))  # about 4 s
    cache = tmp_path / "cache"
    store = DumpStore([server.url], cache, Fetcher(policy=RetryPolicy(retries=3, backoff_base=0.05)))
    fetched = {}
    fetching = threading.Thread(target=lambda: fetched.update(dump=store.fetch(HOUR)))
    fetching.start()
    partial = cache / "pageviews" / (FILE + ".part")
    deadline = time.monotonic() + 10
    while not partial.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    pruned = prune(cache, "--max-size", "0")
    fetching.join(30)
    assert pruned.returncode == 0, pruned.stderr
    assert "in use, kept\tdumps" in pruned.stdout and "deleted 0 files" in pruned.stderr
    assert fetched["dump"].path.read_bytes() == small_hour.read_bytes()
    store.close()


def test_prune_leaves_a_dump_held_by_a_run_alone_until_released(server, tmp_path):
    cache = tmp_path / "cache"
    store = DumpStore([server.url], cache, Fetcher())
    dump = store.fetch(HOUR)  # held, as while the engine reads it
    held = prune(cache, "--max-size", "0")
    assert held.returncode == 0, held.stderr
    assert dump.path.exists() and "in use, kept" in held.stdout
    store.release(HOUR)
    released = prune(cache, "--max-size", "0")
    assert "deleted\tdumps" in released.stdout and not dump.path.exists()


def test_a_second_run_waits_for_the_first_and_reuses_its_dump(server, tmp_path):
    cache = tmp_path / "cache"
    first = DumpStore([server.url], cache, Fetcher())
    first.fetch(HOUR)
    server.reset_stats()
    second = start_wikitop(cache, "hour", HOUR_ARG, "--source", server.url, "--out", tmp_path / "out", *FAST)
    time.sleep(1.5)
    assert second.poll() is None and not (tmp_path / "out").exists()  # waiting for the first
    first.close()
    code, stdout, stderr = finish(second)
    assert code == 0, stderr
    assert dump_gets(server) == 0


def test_prune_deletes_temporary_files_left_by_dead_runs_after_a_day(tmp_path):
    cache = tmp_path / "cache"
    dumps = cache / "pageviews" / Path(FILE).parent
    day = cache / "lake" / "pageviews" / "year=2020" / "month=01" / "day=22"
    dumps.mkdir(parents=True)
    for hour in ("hour=02", "hour=03"):
        (day / hour).mkdir(parents=True)
    # A lake hour without its manifest: a write killed midway.
    old = [dumps / "pageviews-20200122-030000.gz.part", dumps / "pageviews-20200122-040000.gz.part-0-9-of-20",
           day / "hour=02" / ".part-0123.parquet.4242.tmp"]
    recent = [dumps / "pageviews-20200122-050000.gz.part", day / "hour=03" / ".part-4567.parquet.4243.tmp"]
    for path in old + recent:
        path.write_bytes(b"x")
    two_days_ago = time.time() - 2 * DAY_SECONDS
    for path in old:
        os.utime(path, (two_days_ago, two_days_ago))
    pruned = prune(cache, "--older-than", "30d")
    assert pruned.returncode == 0, pruned.stderr
    assert [path.exists() for path in old + recent] == [False] * len(old) + [True] * len(recent)


def test_a_marker_naming_a_missing_data_file_is_computed_again(cli, tmp_path, small_hour):
    mirror = Mirror(tmp_path / "mirror")
    mirror.add(HOUR, small_hour)
    out = tmp_path / "out"
    args = ("hour", HOUR_ARG, "--source", mirror.root, "--out", out, "--no-blacklist")
    assert cli(*args).returncode == 0
    marker, data = published(out)
    (out / PARTITION / marker["file"]).unlink()
    rerun = cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{HOUR_ARG}: done" in rerun.stdout
    assert published(out)[1] == data
