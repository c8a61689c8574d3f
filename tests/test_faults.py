"""Fetching through a misbehaving dump server (tests/dumpserver.py on 127.0.0.1).

For every fault: either the published result is byte-identical to the result of a
run without faults, or the run fails with a clear message and publishes nothing.
Retry delays and timeouts are made short with the CLI's own flags.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import HOUR, Mirror, wikitop_env
from dumpserver import DumpServer, Fault
from manual_clock import ManualClock
from wikitop.clock import SYSTEM_CLOCK, Clock
from wikitop.hours import dump_relative_path
from wikitop.pipeline import Outcome, Status, Wikitop
from wikitop.settings import Settings
from wikitop.source.download import DOWN_COOLDOWN_SECONDS, Fetcher, RetryPolicy
from wikitop.source.fetch import DumpStore, FetchError
from wikitop.synthetic import generate_hour

HOUR_ARG = "2020-01-22T02"
PARTITION = "format=csv/year=2020/month=01/day=22/hour=02"
FILE = dump_relative_path(HOUR)
FAST = ("--no-blacklist", "--retries", "3", "--retry-delay", "0.05", "--stall-timeout", "0.5")
FAST_POLICY = {"retries": 3, "backoff_base": 0.05, "stall_timeout": 0.5}


@pytest.fixture(scope="module")
def small_hour(tmp_path_factory) -> Path:
    """A generated hour of about 240 KB: big enough to cut in the middle, quick to compute."""
    path = tmp_path_factory.mktemp("small") / "small.gz"
    generate_hour(path, lines=20_000, seed=3)
    return path


@pytest.fixture
def site(tmp_path, small_hour) -> Mirror:
    mirror = Mirror(tmp_path / "site")
    mirror.add(HOUR, small_hour)
    return mirror


@pytest.fixture
def server(site):
    with DumpServer(site.root) as running:
        yield running


def published(out: Path) -> bytes | None:
    """The published data file, or None when nothing (no marker, no data) was published."""
    folder = out / PARTITION
    if not (folder / "_SUCCESS").exists():
        assert not folder.exists() or not any(folder.iterdir()), "data published without a marker"
        return None
    marker = json.loads((folder / "_SUCCESS").read_text())
    return (folder / marker["file"]).read_bytes()


def run_hour(
    tmp_path: Path, *sources: str, cache: Path | None = None, clock: Clock = SYSTEM_CLOCK, **policy
) -> Outcome:
    """``wikitop hour`` through the library, without a blacklist (it plays no part in fetching)."""
    settings = Settings(sources=list(sources), out=str(tmp_path / "out"), cache_dir=cache or tmp_path / "cache",
                        blacklist=None, force=True, retry_policy=RetryPolicy(**{**FAST_POLICY, **policy}))
    session = Wikitop(settings, clock=clock)
    try:
        return session.run_hour(HOUR)
    finally:
        session.close()


@pytest.fixture(scope="module")
def clean_result(small_hour, tmp_path_factory) -> bytes:
    """What a run without faults publishes (from a mirror directory: no HTTP involved)."""
    root = tmp_path_factory.mktemp("clean")
    Mirror(root / "mirror").add(HOUR, small_hour)
    outcome = run_hour(root, str(root / "mirror"))
    assert outcome.status is Status.DONE, outcome.message
    return published(root / "out")


def gets(server: DumpServer, answered: bool = False) -> list:
    """The GET requests so far; with ``answered``, once each has its end recorded (not for a
    request the server is still stalling)."""
    return [r for r in (server.answered_requests() if answered else server.requests) if r.method == "GET"]


def assert_identical(outcome: Outcome, tmp_path: Path, clean_result: bytes) -> None:
    assert outcome.status is Status.DONE, outcome.message
    assert published(tmp_path / "out") == clean_result


def assert_failed_clearly(result, out: Path, *phrases: str) -> None:
    """A CLI run that exits 1 with every phrase on stderr and publishes nothing."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr
    assert published(out) is None


RECOVERABLE = {
    "503 burst": [Fault.status(503, count=3)],
    "reset in the body": [Fault.reset_after(100_000)],
    "stalled connection": [Fault.stall_after(50_000, seconds=5)],
    "truncated gzip body": [Fault.truncate(100_000)],
    "corrupt CRC": [Fault.corrupt(-6)],
    "corrupt deflate data": [Fault.corrupt(120_000)],
    "Content-Length too long": [Fault.wrong_length(+1000)],
    "Content-Length too short": [Fault.wrong_length(-1000)],
    "Range ignored": [Fault.reset_after(100_000), Fault.ignore_range()],
    "empty body": [Fault.empty()],
    "500, 502 and 504": [Fault.status(500), Fault.status(502), Fault.status(504)],
    "503 then reset then stall": [Fault.status(503), Fault.reset_after(30_000), Fault.stall_after(90_000, 5)],
}


@pytest.mark.parametrize("faults", RECOVERABLE.values(), ids=RECOVERABLE.keys())
def test_recoverable_fault_gives_the_clean_result(server, tmp_path, clean_result, faults):
    server.add_faults(".gz", *faults)
    assert_identical(run_hour(tmp_path, server.url), tmp_path, clean_result)
    assert len(server.requests) > 2  # a clean fetch is a HEAD (is it worth fetching in ranges?) and a GET
    assert server.peak_connections <= 3 and server.refused_connections == 0


def test_recovery_through_the_cli(cli, server, tmp_path, clean_result):
    server.add_faults(".gz", Fault.status(503, count=2), Fault.reset_after(100_000), Fault.corrupt(-6))
    out = tmp_path / "out"
    result = cli("hour", HOUR_ARG, "--source", server.url, "--out", out, *FAST)
    assert result.returncode == 0, result.stderr
    assert published(out) == clean_result
    assert "retrying" in result.stderr and "fetching it again" in result.stderr


def test_a_reset_resumes_with_a_range_request(server, tmp_path, clean_result):
    server.add_faults(".gz", Fault.reset_after(100_000))
    assert_identical(run_hour(tmp_path, server.url), tmp_path, clean_result)
    first, second = gets(server)
    assert first.bytes_sent == 100_000
    assert (second.range, second.status) == ("bytes=100000-", 206)


def test_a_stall_is_cut_by_the_stall_timeout_and_resumed(server, tmp_path, clean_result):
    server.add_faults(".gz", Fault.stall_after(50_000, seconds=20))
    started = time.monotonic()
    outcome = run_hour(tmp_path, server.url)
    assert time.monotonic() - started < 10
    assert_identical(outcome, tmp_path, clean_result)
    assert [(r.range, r.status) for r in gets(server)] == [(None, 200), ("bytes=50000-", 206)]


def test_range_ignored_restarts_from_zero(server, tmp_path, clean_result, small_hour):
    server.add_faults(".gz", Fault.reset_after(100_000), Fault.ignore_range())
    assert_identical(run_hour(tmp_path, server.url), tmp_path, clean_result)
    second = gets(server)[1]
    assert (second.range, second.status) == ("bytes=100000-", 200)
    assert second.bytes_sent == small_hour.stat().st_size


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(server, tmp_path, clean_result, status):
    server.add_faults(".gz", Fault.status(status, retry_after=120))
    clock = ManualClock()
    assert_identical(run_hour(tmp_path, server.url, clock=clock), tmp_path, clean_result)
    assert server.requests[0].status == status
    assert clock.sleeps == [120]


def test_backoff_grows_between_retries(server, tmp_path, clean_result):
    server.add_faults(".gz", Fault.status(503, count=5))
    clock = ManualClock()
    outcome = run_hour(tmp_path, server.url, clock=clock, retries=5, backoff_base=1.0, backoff_max=10.0)
    assert_identical(outcome, tmp_path, clean_result)
    assert [r.status for r in server.requests[:6]] == [503] * 5 + [200]
    assert len(clock.sleeps) == 5
    for ceiling, pause in zip([1, 2, 4, 8, 10], clock.sleeps):
        assert ceiling / 2 <= pause <= ceiling


def test_throttled_bandwidth(server, tmp_path, clean_result, small_hour):
    rate = 400_000
    server.add_faults(".gz", Fault.slow(rate))
    assert_identical(run_hour(tmp_path, server.url), tmp_path, clean_result)
    [download] = gets(server, answered=True)
    assert download.ended - download.started >= 0.9 * small_hour.stat().st_size / rate


def test_a_refused_fourth_connection_is_retried(server, tmp_path, clean_result):
    """Three connections held by someone else: ours is refused with 503 until one of theirs closes."""
    address = urlsplit(server.url)
    held = [socket.create_connection((address.hostname, address.port)) for _ in range(3)]

    def release_once_refused():
        deadline = time.monotonic() + 10
        while server.refused_connections == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        for connection in held:
            connection.close()

    releaser = threading.Thread(target=release_once_refused)
    releaser.start()
    try:
        outcome = run_hour(tmp_path, server.url, retries=6, backoff_base=0.2)
    finally:
        releaser.join()
    assert_identical(outcome, tmp_path, clean_result)
    assert server.refused_connections >= 1
    assert server.requests[0].status == 503


PERSISTENT = {
    "truncated every time": ([Fault.truncate(100_000, count=10)], ["truncated", "fetched 3 times"]),
    "corrupt every time": ([Fault.corrupt(-6, count=10)], ["corrupt gzip data", "fetched 3 times"]),
    "short Content-Length every time": ([Fault.wrong_length(-1000, count=10)], ["truncated"]),
    "503 every time": ([Fault.status(503, count=50)], ["giving up", "HTTP 503", "4 failed attempts in a row"]),
    # The server holds a stalled connection a little longer than the client waits for it.
    "stall every time": ([Fault.stall_after(0, seconds=0.6, count=10)], ["giving up", "timed out"]),
    "Retry-After of an hour": ([Fault.status(429, retry_after=3600)], ["HTTP 429", "Retry-After", "3600s"]),
}


@pytest.mark.parametrize("faults, phrases", PERSISTENT.values(), ids=PERSISTENT.keys())
def test_persistent_fault_fails_clearly_and_publishes_nothing(server, tmp_path, faults, phrases):
    server.add_faults(".gz", *faults)
    outcome = run_hour(tmp_path, server.url)
    assert outcome.status is Status.FAILED
    for phrase in ["2020-01-22T02", *phrases]:
        assert phrase in outcome.message
    assert published(tmp_path / "out") is None


def test_persistent_fault_through_the_cli(cli, server, tmp_path):
    server.add_faults(".gz", Fault.corrupt(-6, count=10))
    out = tmp_path / "out"
    result = cli("hour", HOUR_ARG, "--source", server.url, "--out", out, *FAST)
    assert_failed_clearly(result, out, "error", "corrupt gzip data", "fetched 3 times")
    assert len(gets(server)) == 3


@pytest.mark.parametrize("command", [("hour", HOUR_ARG), ("range", HOUR_ARG, HOUR_ARG)])
def test_an_empty_body_every_time_is_a_failure_not_a_missing_hour(cli, server, tmp_path, command):
    server.add_faults(".gz", Fault.empty(count=10))
    out = tmp_path / "out"
    result = cli(*command, "--source", server.url, "--out", out, *FAST)
    assert_failed_clearly(result, out, f"wikitop: error: {HOUR_ARG}: ", "empty body (0 bytes) 3 times in a row")
    assert "missing" not in result.stderr
    assert len(gets(server)) == 3


def test_an_hour_published_as_a_gzip_without_lines_fails_unless_allowed(cli, tmp_path):
    site = Mirror(tmp_path / "site")
    empty_gzip = tmp_path / "empty.gz"
    empty_gzip.write_bytes(gzip.compress(b"", mtime=0))
    site.add(HOUR, empty_gzip)
    out = tmp_path / "out"
    with DumpServer(site.root) as server:
        refused = cli("range", HOUR_ARG, HOUR_ARG, "--source", server.url, "--out", out, *FAST)
        result = cli("range", HOUR_ARG, HOUR_ARG, "--source", server.url, "--out", out, "--allow-empty", *FAST)
    assert refused.returncode == 1 and "has no pageview line (it holds no line)" in refused.stdout + refused.stderr
    assert result.returncode == 0, result.stderr
    assert gzip.decompress(published(out)).decode().splitlines() == ["domain_code,page_title,views,rank"]


@pytest.mark.parametrize("deadline_from", ["flag", "environment"])
def test_a_dripping_server_is_given_up_on_at_the_deadline(cli, server, tmp_path, deadline_from):
    server.add_faults(".gz", Fault.drip(1, count=10))  # a byte a second: never a stall
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ("hour", HOUR_ARG, "--source", server.url, "--out", out, "--no-blacklist", "--stall-timeout", "5")
    if deadline_from == "flag":
        args += ("--deadline", "2s")
    env = wikitop_env(WIKITOP_CACHE_DIR=str(cache), **({"WIKITOP_DEADLINE": "2"} if deadline_from != "flag" else {}))
    started = time.monotonic()
    result = cli(*args, env=env, timeout=30)  # without a deadline the drip would last days
    assert time.monotonic() - started < 10
    assert_failed_clearly(result, out, f"wikitop: error: {HOUR_ARG}: ",
                          f"giving up on {server.url}/{FILE}: not fetched within the deadline of 2s (--deadline)")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (cache / "pageviews" / FILE).exists()
    assert 0 < (cache / "pageviews" / (FILE + ".part")).stat().st_size <= 4  # kept to be resumed
    assert len(gets(server)) == 1


def test_a_server_dripping_its_headers_is_given_up_on_at_the_deadline(cli, server, tmp_path):
    """requests' timeouts are per socket read: headers sent a byte at a time never trip them."""
    server.add_faults(".gz", Fault.drip_headers(2, count=10))
    out = tmp_path / "out"
    result = cli("hour", HOUR_ARG, "--source", server.url, "--out", out, "--no-blacklist", "--stall-timeout", "60",
                 "--deadline", "2s", timeout=30)  # unbound, the headers alone would take minutes
    host = urlsplit(server.url).netloc
    assert_failed_clearly(result, out, "not fetched within the deadline of 2s (--deadline)",
                          f"{host} was still sending its answer's headers")
    assert len(result.stderr.strip().splitlines()) == 1


def test_without_a_deadline_headers_are_bounded_by_the_stall_timeout(cli, server, tmp_path):
    server.add_faults(".gz", Fault.drip_headers(2, count=10))
    out = tmp_path / "out"
    result = cli("hour", HOUR_ARG, "--source", server.url, "--out", out, "--no-blacklist", "--deadline", "0",
                 "--stall-timeout", "1", "--retries", "1", "--retry-delay", "0.05", timeout=30)
    host = urlsplit(server.url).netloc
    assert_failed_clearly(result, out, "after 2 failed attempts in a row",
                          f"{host} sent no complete answer (status and headers) within 1s", "(--stall-timeout)")
    assert [r.method for r in server.requests] == ["HEAD", "HEAD"]


def test_the_deadline_bounds_a_fetch_in_ranges_and_its_retries(server, tmp_path):
    server.add_faults(".gz", Fault.status(503), Fault.drip(50, count=10))
    cache = tmp_path / "cache"
    store = DumpStore([server.url], cache, Fetcher(policy=RetryPolicy(**FAST_POLICY, deadline=1.5),
                                                   min_segment_bytes=RANGE_BYTES))
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"not fetched within the deadline of 1\.5s"):
        store.fetch(HOUR)
    assert 1.5 <= time.monotonic() - started < 3
    assert not (cache / "pageviews" / FILE).exists()
    assert len(range_files(cache)) == 3  # each range's bytes, kept to be resumed


def test_the_deadline_does_not_count_the_wait_for_publication(cli, tmp_path, small_hour, clean_result):
    site = Mirror(tmp_path / "late")
    appear = threading.Timer(2.5, site.add, (HOUR, small_hour))
    with DumpServer(site.root) as server:
        appear.start()
        out = tmp_path / "out"
        result = cli("hour", HOUR_ARG, "--source", server.url, "--out", out, *FAST,
                     "--wait", "30s", "--poll-interval", "0.2", "--deadline", "2s")
        appear.join()
    assert result.returncode == 0, result.stderr
    assert published(out) == clean_result


def test_404_is_not_published_yet_not_a_failure(cli, tmp_path):
    with DumpServer(tmp_path) as server:
        out = tmp_path / "out"
        result = cli("hour", HOUR_ARG, "--source", server.url, "--out", out, *FAST)
        assert [r.status for r in server.requests] == [404]
    assert_failed_clearly(result, out, "missing", "missing from every source", "pageviews-20200122-030000.gz")
    assert "error" not in result.stderr


def test_blocked_user_agent_says_how_to_set_one(cli, server, tmp_path):
    out = tmp_path / "out"
    result = cli("hour", HOUR_ARG, "--source", server.url, "--out", out, "--user-agent", "python-requests/2.32")
    assert_failed_clearly(result, out, "403", "Blocked user agent", "--user-agent", "WIKITOP_USER_AGENT")
    assert {r.user_agent for r in server.requests} == {"python-requests/2.32"}
    assert [(r.method, r.status) for r in server.requests] == [("HEAD", 403), ("GET", 403)]


def test_waiting_stops_at_once_for_a_blocked_user_agent(server, tmp_path):
    settings = Settings(sources=[server.url], out=str(tmp_path / "out"), cache_dir=tmp_path / "cache",
                        blacklist=None, user_agent="curl/8.0", wait_seconds=3600,
                        retry_policy=RetryPolicy(**FAST_POLICY))
    clock = ManualClock()
    outcome = Wikitop(settings, clock=clock).run_hour(HOUR)
    assert clock.sleeps == []
    assert outcome.status is Status.FAILED and "403" in outcome.message and "--user-agent" in outcome.message
    assert [r.method for r in server.requests] == ["HEAD"]


def test_every_request_has_the_descriptive_user_agent(server, tmp_path, clean_result):
    server.add_faults(".gz", Fault.status(503), Fault.reset_after(50_000))
    assert_identical(run_hour(tmp_path, server.url), tmp_path, clean_result)
    agents = {r.user_agent for r in server.requests}
    assert len(agents) == 1 and agents.pop().startswith("wikitop/")


def add_after_misses(server: DumpServer, site: Mirror, small_hour: Path, misses: int) -> threading.Thread:
    """A thread that puts the hour on the site once the server has answered 404 ``misses`` times."""

    def add() -> None:
        deadline = time.monotonic() + 30
        while sum(r.status == 404 for r in server.requests) < misses and time.monotonic() < deadline:
            time.sleep(0.05)
        site.add(HOUR, small_hour)

    return threading.Thread(target=add)


def test_wait_polls_with_head_until_the_file_appears(cli, tmp_path, small_hour, clean_result):
    site = Mirror(tmp_path / "late")
    with DumpServer(site.root) as server:
        server.add_faults(".gz", Fault.status(503))  # a busy server while polling changes nothing
        appear = add_after_misses(server, site, small_hour, 3)
        appear.start()
        out = tmp_path / "out"
        result = cli("hour", HOUR_ARG, "--source", server.url, "--out", out, *FAST,
                     "--wait", "30s", "--poll-interval", "0.2")
        appear.join()
        answers = [(r.method, r.status) for r in server.requests]
    assert result.returncode == 0, result.stderr
    assert published(out) == clean_result
    assert answers[:2] == [("HEAD", 503), ("HEAD", 404)] and answers[-2:] == [("HEAD", 200), ("GET", 200)]
    assert all(method == "HEAD" for method, _ in answers[:-1])


def test_wait_asks_for_one_byte_where_head_is_not_allowed(cli, tmp_path, small_hour, clean_result):
    site = Mirror(tmp_path / "late")
    with DumpServer(site.root, head_allowed=False) as server:
        appear = add_after_misses(server, site, small_hour, 2)
        appear.start()
        out = tmp_path / "out"
        result = cli("hour", HOUR_ARG, "--source", server.url, "--out", out, *FAST,
                     "--wait", "30s", "--poll-interval", "0.2")
        appear.join()
        answers = [(r.method, r.status, r.range) for r in server.requests]
    assert result.returncode == 0, result.stderr
    assert published(out) == clean_result
    polls = answers[:-1]
    assert polls[:3] == [("HEAD", 405, None), ("GET", 404, "bytes=0-0"), ("GET", 404, "bytes=0-0")]
    assert ("HEAD", 405, None) not in polls[1:]
    assert polls[-1] == ("GET", 206, "bytes=0-0") and answers[-1] == ("GET", 200, None)


def test_wait_backs_off_and_gives_up_at_the_deadline(tmp_path):
    clock = ManualClock()
    with DumpServer(tmp_path / "empty-site") as server:
        settings = Settings(sources=[server.url], out=str(tmp_path / "out"), cache_dir=tmp_path / "cache",
                            blacklist=None, wait_seconds=1000,
                            retry_policy=RetryPolicy(**FAST_POLICY, poll_interval=60, poll_max=600))
        outcome = Wikitop(settings, clock=clock).run_hour(HOUR)
        requests = server.requests
    assert outcome.status is Status.MISSING
    assert "still not published after waiting 1000s" in outcome.message
    assert [r.method for r in requests] == ["HEAD"] * (len(clock.sleeps) + 1)
    *backing_off, last = clock.sleeps
    assert len(backing_off) == 4
    for ceiling, pause in zip([60, 120, 240, 480], backing_off):
        assert 0.75 * ceiling <= pause <= ceiling
    assert last < 0.75 * 600 and sum(clock.sleeps) == pytest.approx(1000)  # the last pause ends at the deadline


def test_sources_fail_over_in_order(cli, tmp_path, site, clean_result):
    empty_site = tmp_path / "empty"
    empty_site.mkdir()
    with DumpServer(site.root) as broken, DumpServer(empty_site) as lacking, DumpServer(site.root) as good:
        broken.add_faults(".gz", Fault.status(503, count=50))
        out = tmp_path / "out"
        result = cli("hour", HOUR_ARG, "--source", broken.url, "--source", lacking.url, "--source", good.url,
                     "--out", out, *FAST, "--retries", "1")
        assert result.returncode == 0, result.stderr
        assert published(out) == clean_result
        assert [r.status for r in broken.requests] == [503, 503]
        assert [r.status for r in lacking.requests] == [404]
        assert [(r.method, r.status) for r in good.requests] == [("HEAD", 200), ("GET", 200)]
    marker = json.loads((out / PARTITION / "_SUCCESS").read_text())
    assert marker["inputs"][0]["source"].startswith(good.url)


def refused_url() -> str:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{unused.getsockname()[1]}"


DEAD_SOURCES = {
    "connection refused": (refused_url, "Connection refused"),
    # .invalid never resolves (RFC 6761), and resolvers answer so without asking the network.
    "name that does not resolve": (lambda: "http://wikitop-test.invalid", "Failed to resolve"),
}


@pytest.mark.parametrize("dead, cause", DEAD_SOURCES.values(), ids=DEAD_SOURCES.keys())
def test_a_dead_first_source_is_skipped_at_once_until_its_cool_down_ends(tmp_path, small_hour, caplog, dead, cause):
    hours = [HOUR + timedelta(hours=n) for n in range(4)]
    site = Mirror(tmp_path / "site")
    for hour in hours:
        site.add(hour, small_hour)
    dead_source = dead()
    clock = ManualClock()
    with DumpServer(site.root) as server, caplog.at_level(logging.INFO, logger="wikitop"):
        store = DumpStore([dead_source, server.url], tmp_path / "cache",
                          Fetcher(policy=RetryPolicy(**FAST_POLICY), clock=clock))
        for hour in hours[:3]:
            assert store.fetch(hour).source.startswith(server.url)
        assert clock.sleeps == []  # no retry of the dead source, no pause
        clock.sleep(DOWN_COOLDOWN_SECONDS)  # then it is asked again, once
        assert store.fetch(hours[3]).source.startswith(server.url)
        store.close()
    host = urlsplit(dead_source).netloc
    found_down = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(found_down) == 2 and all(m.startswith(f"{host} is down (") and cause in m for m in found_down)
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "is down" in r.getMessage()]
    assert len(skipped) == 2 and all("asked again in" in m for m in skipped)


def test_a_source_without_the_file_falls_over_to_a_mirror_directory(tmp_path, site, clean_result):
    with DumpServer(tmp_path / "nothing-here") as lacking:
        assert_identical(run_hour(tmp_path, lacking.url, str(site.root)), tmp_path, clean_result)


def test_a_corrupt_cached_file_is_fetched_again(server, tmp_path, clean_result):
    assert_identical(run_hour(tmp_path, server.url), tmp_path, clean_result)
    cached = tmp_path / "cache" / "pageviews" / FILE
    data = bytearray(cached.read_bytes())
    data[-6] ^= 0xFF
    stat = cached.stat()
    cached.write_bytes(bytes(data))
    os.utime(cached, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and time: only the bytes tell
    assert_identical(run_hour(tmp_path, server.url), tmp_path, clean_result)
    assert len(gets(server)) == 2


def test_a_cached_file_without_its_record_is_verified_not_downloaded(server, tmp_path, clean_result):
    assert_identical(run_hour(tmp_path, server.url), tmp_path, clean_result)
    record = tmp_path / "cache" / "pageviews" / (FILE + ".json")
    record.unlink()
    assert_identical(run_hour(tmp_path, server.url), tmp_path, clean_result)
    assert len(gets(server)) == 1 and record.exists()
    cached = tmp_path / "cache" / "pageviews" / FILE
    cached.write_bytes(cached.read_bytes()[:1000])
    assert_identical(run_hour(tmp_path, server.url), tmp_path, clean_result)
    assert len(gets(server)) == 2


def test_a_partial_download_left_by_a_killed_run_is_resumed(server, tmp_path, clean_result, small_hour):
    partial = tmp_path / "cache" / "pageviews" / (FILE + ".part")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(small_hour.read_bytes()[:150_000])
    assert_identical(run_hour(tmp_path, server.url), tmp_path, clean_result)
    [download] = gets(server)
    assert (download.range, download.status) == ("bytes=150000-", 206)
    assert not partial.exists()


RANGE_BYTES = 60_000  # the small hour (about 240 KB) comes in 3 ranges, one per connection


def fetch_in_ranges(server: DumpServer, cache: Path):
    store = DumpStore([server.url], cache, Fetcher(policy=RetryPolicy(**FAST_POLICY), min_segment_bytes=RANGE_BYTES))
    return store.fetch(HOUR)


def range_files(cache: Path) -> list[str]:
    return sorted(path.name for path in (cache / "pageviews" / FILE).parent.glob("*.part*"))


def ranges_asked(server: DumpServer) -> list[str | None]:
    return sorted((r.range for r in gets(server)), key=lambda text: int(text.split("=")[1].split("-")[0]))


def test_a_big_file_is_fetched_in_ranges_over_every_connection(server, tmp_path, small_hour):
    size = small_hour.stat().st_size
    server.add_faults(".gz", Fault.slow(150_000, count=3))  # each range takes 0.5 s: they overlap
    dump = fetch_in_ranges(server, tmp_path / "cache")
    assert dump.path.read_bytes() == small_hour.read_bytes() and dump.size == size
    assert server.requests[0].method == "HEAD"
    bounds = [size * i // 3 for i in range(4)]  # thirds
    assert ranges_asked(server) == [f"bytes={first}-{end - 1}" for first, end in pairwise(bounds)]
    assert {r.status for r in gets(server)} == {206}
    assert overlapping_gets(server) == 3 and server.peak_connections <= 3
    assert range_files(tmp_path / "cache") == []


def test_a_range_that_breaks_off_is_resumed_on_its_own(server, tmp_path, small_hour):
    server.add_faults(".gz", Fault.reset_after(20_000))
    dump = fetch_in_ranges(server, tmp_path / "cache")
    assert dump.path.read_bytes() == small_hour.read_bytes()
    broken = next(r for r in gets(server) if r.fault is not None)
    first, last = broken.range.removeprefix("bytes=").split("-")
    assert broken.bytes_sent == 20_000
    assert f"bytes={int(first) + 20_000}-{last}" in ranges_asked(server)
    assert len(gets(server)) == 4


def test_a_server_that_ignores_ranges_gets_one_stream(server, tmp_path, small_hour):
    server.add_faults(".gz", Fault.ignore_range())
    dump = fetch_in_ranges(server, tmp_path / "cache")
    assert dump.path.read_bytes() == small_hour.read_bytes()
    last = gets(server)[-1]
    assert (last.range, last.status) == (None, 200)
    assert range_files(tmp_path / "cache") == []


@pytest.mark.parametrize("offset, seen", [(1_000, "as it arrives"), (120_000, "when joined")])
def test_a_corrupt_range_fetches_the_file_again(site, tmp_path, small_hour, caplog, offset, seen):
    size = small_hour.stat().st_size
    # Throttled, so that each range takes about 0.3 s and the ranges overlap.
    with DumpServer(site.root, rate_bytes_per_s=300_000, throttle_after_bytes=0) as server:
        server.add_faults(".gz", Fault.corrupt(offset, count=3))  # whichever range holds the byte
        dump = fetch_in_ranges(server, tmp_path / "cache")
        requests = server.requests
    assert dump.path.read_bytes() == small_hour.read_bytes()
    assert "fetching it again" in caplog.text
    second_fetch = [i for i, r in enumerate(requests) if r.method == "HEAD"][1]
    sent = sum(r.bytes_sent for r in requests[:second_fetch])
    # The first range is verified as it arrives: a bad byte there stops the other ranges.
    assert sent < size if seen == "as it arrives" else sent == size


def test_ranges_left_by_a_killed_run_are_resumed(server, tmp_path, small_hour):
    data = small_hour.read_bytes()
    size = len(data)
    folder = tmp_path / "cache" / "pageviews" / Path(FILE).parent
    folder.mkdir(parents=True)
    bounds = [size * i // 3 for i in range(4)]
    for first, end in pairwise(bounds):
        (folder / f"{Path(FILE).name}.part-{first}-{end - 1}-of-{size}").write_bytes(data[first : first + 1000])
    stale = folder / f"{Path(FILE).name}.part-0-99-of-{size + 1}"
    stale.write_bytes(b"x" * 100)
    dump = fetch_in_ranges(server, tmp_path / "cache")
    assert dump.path.read_bytes() == data
    assert ranges_asked(server) == [f"bytes={first + 1000}-{end - 1}" for first, end in pairwise(bounds)]
    assert range_files(tmp_path / "cache") == []


def consecutive_hours(count: int) -> list:
    return [HOUR + timedelta(hours=i) for i in range(count)]


def serve_hours(tmp_path: Path, small_hour: Path, count: int) -> Mirror:
    site = Mirror(tmp_path / "site")
    for hour in consecutive_hours(count):
        site.add(hour, small_hour)
    return site


def overlapping_gets(server: DumpServer) -> int:
    """The most GET requests the server was answering at one moment."""
    requests = gets(server, answered=True)
    return max(sum(1 for r in requests if r.started <= s.started < r.ended) for s in requests)


def test_connection_limit_holds_for_concurrent_fetches_in_one_process(tmp_path, small_hour):
    """Threads of the range runner, a prefetch and a second Fetcher at once: never more than 3
    connections at the server, none refused."""
    hours = consecutive_hours(7)
    with DumpServer(serve_hours(tmp_path, small_hour, len(hours)).root) as server:
        server.add_faults(".gz", Fault.slow(600_000, count=len(hours)))
        settings = Settings(sources=[server.url], cache_dir=tmp_path / "cache", out=str(tmp_path / "out"),
                            retry_policy=RetryPolicy(**FAST_POLICY))
        session = Wikitop(settings)
        other = DumpStore([server.url], tmp_path / "other-cache", Fetcher())
        prefetched = [session.dumps.prefetch(hour) for hour in hours[:2]]
        with ThreadPoolExecutor(5) as pool:
            dumps = list(pool.map(session.dumps.fetch, hours[2:5])) + list(pool.map(other.fetch, hours[5:]))
        dumps += [future.result() for future in prefetched]
        session.dumps.close()
        assert server.peak_connections <= 3
        assert server.refused_connections == 0
        assert overlapping_gets(server) == 3
    assert all(d.path.read_bytes() == small_hour.read_bytes() for d in dumps)


def test_a_lower_connection_limit_is_kept(tmp_path, small_hour):
    hours = consecutive_hours(3)
    with DumpServer(serve_hours(tmp_path, small_hour, len(hours)).root) as server:
        server.add_faults(".gz", Fault.slow(1_000_000, count=len(hours)))
        store = DumpStore([server.url], tmp_path / "cache", Fetcher(max_connections=1))
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(store.fetch, hours))
        assert server.peak_connections == 1


def test_one_hour_fetched_by_several_threads_is_downloaded_once(server, tmp_path, small_hour):
    server.add_faults(".gz", Fault.slow(1_000_000))
    store = DumpStore([server.url], tmp_path / "cache", Fetcher())
    with ThreadPoolExecutor(3) as pool:
        dumps = list(pool.map(store.fetch, [HOUR] * 3))
    assert len(gets(server)) == 1
    assert all(d.path.read_bytes() == small_hour.read_bytes() for d in dumps)


def test_range_command_keeps_to_three_connections(cli, tmp_path, small_hour):
    hours = consecutive_hours(5)
    with DumpServer(serve_hours(tmp_path, small_hour, len(hours)).root) as server:
        server.add_faults(".gz", Fault.slow(1_000_000, count=len(hours)))
        out = tmp_path / "out"
        result = cli("range", "2020-01-22T02", "2020-01-22T06", "--source", server.url, "--out", out, *FAST)
        assert result.returncode == 0, result.stderr
        assert server.peak_connections <= 3 and server.refused_connections == 0
    assert len(list(out.rglob("_SUCCESS"))) == len(hours)


def test_hours_fetched_together_come_one_after_the_other(tmp_path, small_hour):
    """Each hour over every connection, the earliest first, even when a later hour's HEAD
    is answered first: the range runner computes hours in order."""
    hours = consecutive_hours(3)
    with DumpServer(serve_hours(tmp_path, small_hour, len(hours)).root) as server:
        server.add_faults(".gz", Fault.slow(400_000, count=3 * len(hours)))
        # A HEAD is asked once its hour is in line: every hour is, before any is answered (else a
        # thread the machine starts late has not asked yet when a later hour's transfer begins).
        server.answer_heads_together(len(hours))
        store = DumpStore([server.url], tmp_path / "cache", Fetcher(min_segment_bytes=RANGE_BYTES))
        with ThreadPoolExecutor(len(hours)) as pool:
            list(pool.map(store.fetch, reversed(hours)))
        started = [r.path for r in sorted(gets(server), key=lambda r: r.started)]
    assert len(started) == 3 * len(hours)
    assert started == sorted(started)  # file names sort as their hours


def test_cache_list_and_prune(cli, server, tmp_path):
    cache = tmp_path / "cache"
    result = cli("range", "2020-01-22T02", "2020-01-22T02", "--source", server.url, "--out", tmp_path / "out",
                 "--cache-dir", cache, "--keep-totals", *FAST)
    assert result.returncode == 0, result.stderr
    shutil.copyfile(cache / "pageviews" / FILE, cache / "pageviews" / (FILE.replace("030000", "040000") + ".part"))

    listing = cli("cache", "--cache-dir", cache, "list")
    assert listing.returncode == 0, listing.stderr
    rows = [line.split("\t") for line in listing.stdout.splitlines()]
    assert rows[0] == ["kind", "hour", "size", "bytes", "state", "modified_utc", "path"]
    assert sorted((row[0], row[1], row[4]) for row in rows[1:]) == [
        ("dumps", "2020-01-22T02", "verified"), ("dumps", "2020-01-22T03", "partial"),
        ("totals", "2020-01-22T02", "kept"),
    ]
    assert "2 dumps" in listing.stderr and "1 totals" in listing.stderr

    dry = cli("cache", "--cache-dir", cache, "prune", "--max-size", "0", "--kind", "dumps", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("would delete") == 2
    assert (cache / "pageviews" / FILE).exists()
    pruned = cli("cache", "prune", "--cache-dir", cache, "--max-size", "0", "--kind", "dumps")
    assert pruned.returncode == 0 and pruned.stdout.count("deleted") == 2
    assert not [path for path in (cache / "pageviews").rglob("*.gz*") if not path.name.endswith(".lock")]
    assert len(list((cache / "lake").rglob("*.parquet"))) == 1
    assert cli("cache", "--cache-dir", cache, "prune", "--older-than", "0s").returncode == 0
    assert not list(cache.rglob("*.parquet"))
    assert cli("cache", "--cache-dir", cache, "prune").returncode == 2
