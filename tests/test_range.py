"""`wikitop range` and `wikitop window`: hours, days from kept totals, missing hours, kills."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import reference
from conftest import Mirror, run_wikitop, wikitop_env
from wikitop.hours import dump_relative_path
from wikitop.lake import Lake
from wikitop.model import Period
from wikitop.pipeline import Outcome, Status, Wikitop
from wikitop.runner import Summary, publish_period, run_range
from wikitop.settings import Settings
from wikitop.synthetic import generate_hour

DAY = datetime(2020, 1, 22, tzinfo=UTC)
DAY_FOLDER = "daily/format=csv/year=2020/month=01/day=22"
HOURS_FOLDER = "format=csv/year=2020/month=01/day=22"  # the day's hourly results, each in hour=HH/


def hour(i: int) -> datetime:
    return DAY + timedelta(hours=i)


@pytest.fixture(scope="session")
def day_files(tmp_path_factory, blacklist_file) -> dict[datetime, Path]:
    """24 generated hours of one day (small), each its own seed, some with blacklisted pairs."""
    folder = tmp_path_factory.mktemp("day")
    files = {}
    for i in range(24):
        path = folder / f"hour-{i:02d}.gz"
        generate_hour(path, lines=4000, seed=100 + i, blacklist_path=blacklist_file if i % 4 == 0 else None)
        files[hour(i)] = path
    return files


@pytest.fixture
def day_mirror(tmp_path, day_files) -> Mirror:
    mirror = Mirror(tmp_path / "mirror")
    for h, path in day_files.items():
        mirror.add(h, path)
    return mirror


def published_rows(out: Path, folder: str) -> list[list[str]]:
    marker = json.loads((out / folder / "_SUCCESS").read_text())
    data = (out / folder / marker["file"]).read_bytes()
    return list(csv.reader(io.StringIO(gzip.decompress(data).decode("utf-8"))))


def published_tree(out: Path) -> dict[str, bytes]:
    """Every data file named by a marker, by folder; what a reader can see."""
    tree = {}
    for marker_path in out.rglob("_SUCCESS"):
        marker = json.loads(marker_path.read_text())
        tree[str(marker_path.parent.relative_to(out))] = (marker_path.parent / marker["file"]).read_bytes()
    return tree


def test_daily_top_is_computed_from_all_hours_not_from_hourly_tops(cli, tmp_path, day_mirror, day_files,
                                                                    blacklist_file):
    out = tmp_path / "out"
    result = cli("range", "2020-01-22T00", "2020-01-22T23", "--daily", "--source", day_mirror.root, "--out", out)
    assert result.returncode == 0, result.stderr
    expected_day = reference.expected_csv_rows(list(day_files.values()), blacklist_file)
    assert published_rows(out, DAY_FOLDER) == expected_day
    for i in (0, 13, 23):
        assert published_rows(out, f"{HOURS_FOLDER}/hour={i:02d}") == reference.expected_csv_rows(
            day_files[hour(i)], blacklist_file)
    marker = json.loads((out / DAY_FOLDER / "_SUCCESS").read_text())
    assert marker["hours"] == {"included": 24, "missing": [], "complete": True}

    again = cli("range", "2020-01-22T00", "2020-01-22T23", "--daily", "--source", day_mirror.root, "--out", out)
    assert again.returncode == 0 and "already done" in again.stdout and ": done:" not in again.stdout


def test_window_reads_kept_totals_without_the_dumps(cli, tmp_path, day_mirror, day_files, blacklist_file):
    out = tmp_path / "out"
    assert cli("range", "2020-01-22T03", "2020-01-22T08", "--source", day_mirror.root, "--out", out).returncode == 0
    shutil.rmtree(day_mirror.root)  # the window must come from the kept hourly totals alone
    result = cli("window", "2020-01-22T03", "2020-01-22T08", "--source", day_mirror.root, "--out", out)
    assert result.returncode == 0, result.stderr
    hours = [day_files[hour(i)] for i in range(3, 9)]
    expected = reference.expected_csv_rows(hours, blacklist_file)
    window_folder = "windows/format=csv/period=2020-01-22T03..2020-01-22T08"
    assert published_rows(out, window_folder) == expected
    for ties, top in (("dense", 5), ("row", 3)):
        other_out = tmp_path / f"out-{ties}"
        result = cli("window", "2020-01-22T03", "2020-01-22T08", "--ties", ties, "--top", str(top),
                     "--source", day_mirror.root, "--out", other_out)
        assert result.returncode == 0, result.stderr
        assert published_rows(other_out, window_folder) == reference.expected_csv_rows(
            hours, blacklist_file, top=top, ties=ties)


def test_missing_hours_are_reported_and_days_need_consent(cli, tmp_path, day_mirror, day_files, blacklist_file):
    out = tmp_path / "out"
    (day_mirror.root / dump_relative_path(hour(5))).unlink()
    args = ("range", "2020-01-22T00", "2020-01-22T23", "--daily", "--source", day_mirror.root, "--out", out)
    result = cli(*args)
    assert result.returncode == 0, result.stderr  # missing hours fail the run only with --strict
    assert "2020-01-22T05" in result.stderr and "missing from every source" in result.stderr
    assert "incomplete" in result.stdout + result.stderr
    assert not (out / DAY_FOLDER / "_SUCCESS").exists()
    assert cli(*args, "--strict").returncode == 1

    assert cli(*args, "--allow-incomplete").returncode == 0
    marker = json.loads((out / DAY_FOLDER / "_SUCCESS").read_text())
    assert marker["hours"] == {"included": 23, "missing": ["2020-01-22T05"], "complete": False}
    expected = reference.expected_csv_rows([p for h, p in day_files.items() if h != hour(5)], blacklist_file)
    assert published_rows(out, DAY_FOLDER) == expected

    day_mirror.add(hour(5), day_files[hour(5)])  # the hour appears later: the day is completed
    assert cli(*args).returncode == 0
    assert json.loads((out / DAY_FOLDER / "_SUCCESS").read_text())["hours"]["complete"] is True
    assert published_rows(out, DAY_FOLDER) == reference.expected_csv_rows(list(day_files.values()), blacklist_file)


def test_hourly_false_publishes_only_days(tmp_path, day_mirror):
    out = tmp_path / "out"
    env = wikitop_env(HOURLY="false", WIKITOP_CACHE_DIR=str(tmp_path / "cache"))
    result = run_wikitop("range", "2020-01-22T00", "2020-01-22T23", "--source", day_mirror.root, "--out", out,
                         env=env)
    assert result.returncode == 0, result.stderr
    assert (out / DAY_FOLDER / "_SUCCESS").exists()
    assert not list((out / HOURS_FOLDER).glob("hour=*"))


def test_a_corrupt_hour_fails_the_run_and_its_day(cli, tmp_path, day_mirror):
    target = day_mirror.root / dump_relative_path(hour(7))
    target.write_bytes(target.read_bytes()[:-100])
    out = tmp_path / "out"
    result = cli("range", "2020-01-22T00", "2020-01-22T23", "--daily", "--source", day_mirror.root, "--out", out)
    assert result.returncode == 1
    assert "2020-01-22T07" in result.stdout + result.stderr
    assert (out / HOURS_FOLDER / "hour=08" / "_SUCCESS").exists()
    assert not (out / DAY_FOLDER / "_SUCCESS").exists()


def test_range_killed_at_random_moments_resumes_to_identical_results(tmp_path, day_mirror):
    args = ["range", "2020-01-22T00", "2020-01-22T23", "--daily", "--source", str(day_mirror.root), "-q"]
    clean_out, killed_out = tmp_path / "clean", tmp_path / "killed"
    clean = run_wikitop(*args, "--out", clean_out, env=wikitop_env(WIKITOP_CACHE_DIR=str(tmp_path / "c1")))
    assert clean.returncode == 0, clean.stderr
    expected = published_tree(clean_out)
    assert len(expected) == 25

    env = wikitop_env(WIKITOP_CACHE_DIR=str(tmp_path / "c2"))
    rng = random.Random(5)
    kills = 0
    # Kill after a random number of published results and a random moment more, whatever
    # the machine's speed; each run resumes what the one before left.
    for results_before_kill in sorted(rng.sample(range(1, 24), 3)):
        process = subprocess.Popen([sys.executable, "-m", "wikitop", *args, "--out", str(killed_out)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None and len(list(killed_out.rglob("_SUCCESS"))) < results_before_kill:
            # Whatever a reader sees at any moment is a whole result.
            for folder, data in published_tree(killed_out).items() if killed_out.exists() else ():
                assert data == expected[folder]
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 2
    final = run_wikitop(*args, "--out", killed_out, env=env)
    assert final.returncode == 0, final.stderr
    assert published_tree(killed_out) == expected
    leftovers = [p for p in killed_out.rglob("*") if p.is_file() and p.name not in {"_SUCCESS", "_SUCCESS.lock"}
                 and p.name not in {json.loads((p.parent / "_SUCCESS").read_text())["file"]}]
    assert leftovers == []


def test_reversed_or_unfinished_ranges_are_usage_errors(cli, tmp_path):
    assert cli("range", "2020-01-23T00", "2020-01-22T00", "--out", tmp_path).returncode == 2
    assert cli("range", "2020-01-22T00", "2999-01-01T00", "--out", tmp_path).returncode == 2


@pytest.mark.parametrize("engine, at_once", [("duckdb", 2), ("spark", 1)])
def test_hours_are_computed_as_many_at_once_as_the_engine_takes_and_reported_in_order(
    tmp_path, day_mirror, engine, at_once
):
    (day_mirror.root / dump_relative_path(hour(2))).unlink()
    settings = Settings(sources=[str(day_mirror.root)], out=str(tmp_path / "out"), cache_dir=tmp_path / "cache",
                        blacklist=None, engine=engine)
    session = Wikitop(settings)
    running, most_running, lock = set(), [0], threading.Lock()

    def compute_hour(hour_, dump, publish, fetch_seconds=0.0):  # stands in for the engine
        with lock:
            running.add(hour_)
            most_running[0] = max(most_running[0], len(running))
        time.sleep(0.2)
        with lock:
            running.discard(hour_)
        return Outcome(Period.hour(hour_), Status.DONE, "computed")

    session.compute_hour = compute_hour
    session.prepare = lambda: None
    outcomes = run_range(session, hour(0), hour(5))
    assert [o.period.start for o in outcomes] == [hour(i) for i in range(6)]
    assert [o.status for o in outcomes] == [Status.DONE] * 2 + [Status.MISSING] + [Status.DONE] * 3
    assert most_running[0] == at_once


@pytest.mark.parametrize("pruned_when", ["after planning", "after the hour was computed"])
def test_a_day_whose_totals_are_pruned_during_the_run_fails(tmp_path, day_mirror, pruned_when):
    settings = Settings(sources=[str(day_mirror.root)], out=str(tmp_path / "out"), cache_dir=tmp_path / "cache",
                        blacklist=None)
    lake = Lake(settings.lake_url)
    pruned_hour = hour(5)
    earlier_marker = None
    if pruned_when == "after planning":  # the totals are kept from an earlier run: the range does not compute them
        assert all(o.ok for o in run_range(Wikitop(settings), DAY, hour(23), hourly=False, daily=True))
        earlier_marker = (tmp_path / "out" / DAY_FOLDER / "_SUCCESS").read_bytes()
        settings.force = True

    def prune(outcome: Outcome | None = None) -> None:
        if outcome is None or outcome.period == Period.hour(hour(5)):
            assert outcome is None or outcome.ok
            (Path(lake.partition(pruned_hour)) / "_SUCCESS").unlink()

    hooks = {"on_plan": lambda plan: prune()} if pruned_when == "after planning" else {"on_outcome": prune}
    session = Wikitop(settings)
    try:
        outcomes = run_range(session, DAY, hour(23), hourly=False, daily=True, allow_incomplete=True, **hooks)
    finally:
        session.close()
    [day] = [o for o in outcomes if o.period.kind == "day"]
    assert day.status is Status.FAILED
    assert "2020-01-22T05" in day.message and "deleted during the run" in day.message
    marker = tmp_path / "out" / DAY_FOLDER / "_SUCCESS"
    assert (marker.read_bytes() if marker.exists() else None) == earlier_marker


def test_a_summary_counts_outcomes_and_tells_whether_the_run_failed():
    hours = [Period.hour(hour(h)) for h in range(4)]
    window = Period.window(hour(0), hour(3))
    done = [Outcome(hours[0], Status.DONE), Outcome(hours[1], Status.ALREADY_DONE)]
    missing = Outcome(hours[2], Status.MISSING, "not yet")
    summary = Summary.of([*done, missing])
    assert summary.counts == {Status.DONE: 1, Status.ALREADY_DONE: 1, Status.MISSING: 1, Status.FAILED: 0}
    assert summary.problems == [missing]
    assert not summary.failed() and summary.failed(strict=True)
    assert summary.failed(required=[hours[2]]) and not summary.failed(required=[hours[0]])
    incomplete = Summary.of([*done, missing, Outcome(window, Status.MISSING, "incomplete")])
    assert incomplete.failed(required=[window]) and not incomplete.failed()
    assert Summary.of([*done, Outcome(hours[3], Status.FAILED, "bad")]).failed()


def test_publishing_a_period_publishes_an_hour_or_a_window_and_its_hours(tmp_path, mirror, day_files):
    for h in (2, 3):
        mirror.add(hour(h), day_files[hour(h)])
    settings = Settings(sources=[str(mirror.root)], out=str(tmp_path / "out"), cache_dir=tmp_path / "cache",
                        blacklist=None, top=3)
    window = Period.window(hour(2), hour(3))
    session = Wikitop(settings)
    seen = []
    try:
        [one] = publish_period(session, Period.hour(hour(2)), on_outcome=seen.append)
        outcomes = publish_period(session, window, on_outcome=seen.append)
    finally:
        session.close()
    assert one.period == Period.hour(hour(2)) and one.status is Status.DONE and seen[0] == one
    assert [(o.period, o.status) for o in outcomes] == [
        (Period.hour(hour(2)), Status.DONE), (Period.hour(hour(3)), Status.DONE), (window, Status.DONE)]
    assert seen[1:] == outcomes and outcomes[0].message == "totals kept in the lake"
    assert (tmp_path / "out" / "windows" / "format=csv" / window.partition / "_SUCCESS").exists()
