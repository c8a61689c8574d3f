"""Unit tests of the fetching parts: gzip checks, Retry-After, backoff, Content-Range, sources, cache records."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from conftest import unanswering_address
from huge_lines import write_huge_line_gzip
from manual_clock import ManualClock
from wikitop import locks
from wikitop.cache import CacheEntry, describe, prune_cache, scan, select_for_pruning
from wikitop.files import temporary_path
from wikitop.hours import dump_file_name, dump_relative_path, truncate_to_hour
from wikitop.source.download import (
    Fetcher,
    HostLimiter,
    RetryPolicy,
    SourceDown,
    check_content_range,
    parse_retry_after,
)
from wikitop.source.fetch import (
    DumpStore,
    FetchError,
    NotPublished,
    check_cached,
    read_record,
    record_is_current,
    sidecar_path,
    source_kind,
    write_record,
)
from wikitop.source.gzipfile import CorruptDump, GzipChecker, verify_gzip
from wikitop.units import parse_size

HOUR = datetime(2020, 1, 22, 2, tzinfo=UTC)


def check(data: bytes, chunk: int = 7) -> GzipChecker:
    checker = GzipChecker()
    for start in range(0, len(data), chunk):
        checker.feed(data[start : start + chunk])
    checker.finish("test.gz")
    return checker


def test_gzip_checker_counts_lines_across_members_and_chunks():
    data = gzip.compress(b"a 1\nb 2\n") + gzip.compress(b"c 3\n") + gzip.compress(b"") + gzip.compress(b"d 4")
    assert check(data).lines == 4
    assert check(data, chunk=len(data)).lines == 4


@pytest.mark.parametrize("cut", [1, 10, -9, -1])
def test_gzip_checker_finds_truncation(cut):
    data = gzip.compress(b"line\n" * 1000)
    with pytest.raises(CorruptDump, match="truncated"):
        check(data[:cut])


def test_gzip_checker_finds_a_truncated_second_member():
    data = gzip.compress(b"a\n") + gzip.compress(b"b\n" * 100)
    with pytest.raises(CorruptDump, match="truncated"):
        check(data[:-3])


@pytest.mark.parametrize("offset", [-8, -5, -2, 20])
def test_gzip_checker_finds_corrupt_crc_length_or_data(offset):
    data = bytearray(gzip.compress(bytes(range(256)) * 100))
    data[offset] ^= 0x55
    with pytest.raises(CorruptDump, match="corrupt"):
        check(bytes(data))


def test_gzip_checker_refuses_empty_and_trailing_garbage():
    with pytest.raises(CorruptDump, match="empty"):
        check(b"")
    with pytest.raises(CorruptDump):
        check(gzip.compress(b"a\n") + b"garbage!")


def test_verify_gzip_returns_size_lines_and_digest(tmp_path):
    data = gzip.compress(b"en A 1 0\nen B 2 0\n")
    path = tmp_path / "f.gz"
    path.write_bytes(data)
    summary = verify_gzip(path)
    assert (summary.size, summary.lines, summary.sha256) == (len(data), 2, hashlib.sha256(data).hexdigest())


def test_parse_retry_after():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 27 <= parse_retry_after(later) <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(earlier) == 0.0


def test_backoff_doubles_within_bounds_with_jitter():
    policy = RetryPolicy(backoff_base=1.0, backoff_max=10.0)
    for failures, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (12, 10)]:
        delays = [policy.delay(failures) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_backoff_is_never_shorter_than_retry_after():
    policy = RetryPolicy(backoff_base=1.0, backoff_max=10.0)
    assert all(policy.delay(1, retry_after=5) >= 5 for _ in range(50))
    assert all(1 <= policy.delay(3, retry_after=0.5) <= 4 for _ in range(50))


def test_poll_delays_double_up_to_the_maximum():
    delays = RetryPolicy(poll_interval=1.0, poll_max=5.0).poll_delays()
    ceilings = [1, 2, 4, 5, 5]
    for ceiling in ceilings:
        assert 0.75 * ceiling <= next(delays) <= ceiling


@pytest.mark.parametrize(
    "fields", [{"retries": -1}, {"stall_timeout": 0}, {"poll_interval": 0}, {"backoff_base": 5, "backoff_max": 1}]
)
def test_retry_policy_refuses_nonsense(fields):
    with pytest.raises(ValueError):
        RetryPolicy(**fields)


def test_content_range_of_a_proper_resume():
    assert check_content_range("bytes 100-999/1000", 100, "900") == 1000
    assert check_content_range("bytes 100-999/*", 100, None) is None
    assert check_content_range("bytes 100-199/1000", 100, "100", last=199) == 1000
    with pytest.raises(ValueError, match="end at the requested byte 299"):
        check_content_range("bytes 100-199/1000", 100, "100", last=299)


@pytest.mark.parametrize(
    "value, length, problem",
    [
        ("bytes 0-999/1000", "1000", "does not start"),
        ("bytes 200-999/1000", "800", "does not start"),
        ("bytes 100-499/1000", "400", "stops before the end"),
        ("bytes 100-999/1000", "1000", "disagrees"),
        ("100-999/1000", None, "unreadable"),
        (None, None, "unreadable"),
        ("items 100-999/1000", None, "unreadable"),
    ],
)
def test_content_range_that_is_not_what_was_asked(value, length, problem):
    with pytest.raises(ValueError, match=problem):
        check_content_range(value, 100, length)


@pytest.mark.parametrize(
    "source, kind",
    [
        ("https://dumps.wikimedia.org/other/pageviews", "http"),
        ("http://127.0.0.1:8000/pageviews/", "http"),
        ("/srv/mirror/pageviews", "directory"),
        ("relative/mirror", "directory"),
        ("file:///srv/mirror", "directory"),
        ("C:\\mirror", "directory"),
    ],
)
def test_source_kinds(source, kind):
    assert source_kind(source) == kind


@pytest.mark.parametrize("source", ["ftp://example.org/x", "s3://bucket/pageviews"])
def test_unsupported_sources_are_refused_up_front(source, tmp_path):
    with pytest.raises(ValueError, match="unsupported source"):
        DumpStore([source], tmp_path, Fetcher)


def test_a_mirror_that_is_not_a_directory_fails_the_fetch_instead_of_looking_unpublished(tmp_path):
    (tmp_path / "file").touch()
    for source in (tmp_path / "absent", tmp_path / "file", f"file://{tmp_path}/absent"):
        store = DumpStore([str(source)], tmp_path / "cache", Fetcher)
        with pytest.raises(FetchError, match="is not a directory") as raised:
            store.fetch(HOUR)
        assert not isinstance(raised.value, NotPublished)


def test_store_urls_and_cache_paths(tmp_path):
    store = DumpStore(["https://example.org/pageviews/"], tmp_path, Fetcher)
    assert store.url(store.sources[0], HOUR) == "https://example.org/pageviews/2020/2020-01/pageviews-20200122-030000.gz"
    assert store.cached_path(HOUR) == tmp_path / "pageviews/2020/2020-01/pageviews-20200122-030000.gz"


def test_connection_limits():
    with pytest.raises(ValueError, match="allow-more-connections"):
        Fetcher(max_connections=4)
    with pytest.raises(ValueError):
        Fetcher(max_connections=0)
    with pytest.raises(ValueError, match="User-Agent"):
        Fetcher(user_agent=" ")
    assert Fetcher(max_connections=8, allow_more_connections=True).max_connections == 8


def test_fetchers_share_one_connection_pool_per_limit():
    assert Fetcher().session is Fetcher(max_connections=1, user_agent="other/1.0 (x@example.org)").session
    assert Fetcher(max_connections=6, allow_more_connections=True).session is not Fetcher().session


def test_host_limiter_is_per_host():
    limiter = HostLimiter(2)
    assert limiter.slots("https://a.org/x") is limiter.slots("https://a.org/y")
    assert limiter.slots("https://a.org/x") is not limiter.slots("https://b.org/x")


def slot_recorder(limit: int):
    """Slots of one host, the priorities served in order, and a function that waits for a
    slot with a priority and records it."""
    slots = HostLimiter(limit).slots("https://a.org/x")
    served: list[float] = []

    def wait_for_slot(priority: float) -> None:
        with slots.taken(priority):
            served.append(priority)

    return slots, served, wait_for_slot


def test_a_freed_connection_slot_goes_to_the_lowest_priority_waiting():
    slots, served, wait_for_slot = slot_recorder(1)
    with slots.taken():
        waiters = []
        for priority in (3.0, 1.0, 2.0, 1.0):
            waiters.append(threading.Thread(target=wait_for_slot, args=(priority,)))
            waiters[-1].start()
            while len(slots._waiting) < len(waiters):
                time.sleep(0.001)
    for waiter in waiters:
        waiter.join()
    assert served == [1.0, 1.0, 2.0, 3.0]


def test_a_download_lining_up_holds_back_later_requests_only():
    slots, served, wait_for_slot = slot_recorder(3)
    with slots.lining_up(2.0) as in_line:
        later = threading.Thread(target=wait_for_slot, args=(3.0,))
        later.start()
        for priority in (1.0, 2.0):  # earlier and equal priorities go while slots are free
            wait_for_slot(priority)
        time.sleep(0.05)
        assert served == [1.0, 2.0] and later.is_alive()
        in_line()
        later.join(timeout=5)
    assert served == [1.0, 2.0, 3.0]
    with slots.lining_up(2.0):
        pass
    wait_for_slot(3.0)  # the block's end releases it too
    assert served[-1] == 3.0


def test_connection_failures_are_told_by_their_cause_not_by_urllib3_wrappers():
    fetcher = Fetcher(policy=RetryPolicy(retries=1, backoff_base=0.01))
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        refused_port = unused.getsockname()[1]
    with socket.socket() as hanging_up:
        hanging_up.bind(("127.0.0.1", 0))
        hanging_up.listen()

        def hang_up() -> None:
            for _ in range(2):
                connection, _ = hanging_up.accept()
                connection.recv(4096)
                connection.close()

        threading.Thread(target=hang_up, daemon=True).start()
        closed_port = hanging_up.getsockname()[1]
        url = f"http://127.0.0.1:{closed_port}/pageviews-20200122-030000.gz"
        with pytest.raises(FetchError) as caught:
            fetcher.get_bytes(url)
        message = str(caught.value)
        assert message.startswith(f"giving up on {url} after 2 failed attempts in a row: ConnectionError")
        assert "closed connection" in message and "Pool" not in message and "host=" not in message
    with pytest.raises(SourceDown) as caught:  # not retried: a refused connection makes the host down
        fetcher.get_bytes(f"http://127.0.0.1:{refused_port}/pageviews-20200122-030000.gz")
    message = str(caught.value)
    assert message.startswith(f"127.0.0.1:{refused_port} is down (")
    assert "Connection refused" in message and "Pool" not in message and "host=" not in message


def test_a_host_is_named_and_kept_without_the_user_and_password_of_its_url():
    fetcher = Fetcher(policy=RetryPolicy(retries=1, backoff_base=0.01))
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        refused_port = unused.getsockname()[1]
    host = f"127.0.0.1:{refused_port}"
    with pytest.raises(SourceDown) as caught:
        fetcher.get_bytes(f"http://alice:Sup3r@{host}/pageviews-20200122-030000.gz")
    assert str(caught.value).startswith(f"{host} is down (") and "alice" not in str(caught.value)
    with pytest.raises(SourceDown, match="asked again in"):  # the same host, whoever asks
        fetcher.get_bytes(f"http://{host}/pageviews-20200122-040000.gz")


def test_connections_timing_out_twice_in_a_row_make_a_host_down():
    """A listening socket whose backlog is full drops new connections, like a firewall."""
    clock = ManualClock()
    fetcher = Fetcher(policy=RetryPolicy(retries=5, backoff_base=0.01, connect_timeout=0.2), clock=clock)
    with unanswering_address() as (address, port):
        host = f"{address}:{port}"
        with pytest.raises(SourceDown, match=f"^{host} is down \\(2 connection attempts timed out\\)") as first:
            fetcher.get_bytes(f"http://{host}/a.gz")
        with pytest.raises(SourceDown, match="asked again in") as second:
            fetcher.get_bytes(f"http://{host}/b.gz")
    assert first.value.newly and not second.value.newly
    assert len(clock.sleeps) == 1  # one retry, not five


def cached_dump(tmp_path: Path) -> Path:
    path = tmp_path / "pageviews" / "2020" / "2020-01" / "pageviews-20200122-030000.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(b"en A 1 0\n" * 100))
    return path


def test_cache_record_round_trip_and_staleness(tmp_path):
    dump = cached_dump(tmp_path)
    write_record(dump, "https://example.org/x.gz", verify_gzip(dump))
    record = read_record(dump)
    assert record["source"] == "https://example.org/x.gz" and record["lines"] == 100
    assert record_is_current(dump, record)
    os.utime(dump, ns=(0, 0))
    assert not record_is_current(dump, record)
    sidecar_path(dump).write_text("{not json")
    assert read_record(dump) == {}


def test_check_cached_verifies_an_unrecorded_file_and_deletes_a_bad_one(tmp_path):
    dump = cached_dump(tmp_path)
    summary = check_cached(dump)
    assert summary.lines == 100 and record_is_current(dump, read_record(dump))
    dump.write_bytes(dump.read_bytes()[:-4])
    assert check_cached(dump) is None
    assert not dump.exists() and not sidecar_path(dump).exists()


def test_parse_size():
    assert parse_size("10GB") == 10_000_000_000
    assert parse_size("500 MiB") == 500 * 2**20
    assert parse_size("1.5g") == 1_500_000_000
    assert parse_size("2048") == 2048
    assert parse_size("0") == 0
    with pytest.raises(ValueError):
        parse_size("lots")


def entry(name: str, size: int, age_days: float, now: float) -> CacheEntry:
    return CacheEntry("dumps", Path(name), size, now - age_days * 86400, None, "verified")


def test_pruning_takes_the_old_then_the_oldest_until_it_fits():
    now = time.time()
    entries = [entry("a", 100, 40, now), entry("b", 100, 20, now), entry("c", 100, 10, now), entry("d", 100, 1, now)]
    assert [e.path.name for e in select_for_pruning(entries, older_than=30 * 86400, now=now)] == ["a"]
    assert [e.path.name for e in select_for_pruning(entries, max_size=250, now=now)] == ["a", "b"]
    chosen = select_for_pruning(entries, older_than=15 * 86400, max_size=150, now=now)
    assert [e.path.name for e in chosen] == ["a", "b", "c"]
    assert select_for_pruning(entries, max_size=1000, now=now) == []


class CountedEntry(CacheEntry):
    """A cache entry that counts how often it is compared with another."""

    comparisons = 0

    def __eq__(self, other):
        CountedEntry.comparisons += 1
        return super().__eq__(other)

    __hash__ = CacheEntry.__hash__


def test_pruning_selection_is_linear_in_the_number_of_entries():
    now = time.time()
    entries = [CountedEntry("dumps", Path(f"e{i}"), 100, now - i, None, "verified") for i in range(4000)]
    CountedEntry.comparisons = 0
    chosen = select_for_pruning(entries, older_than=2000, max_size=100 * 1000, now=now)
    assert len(chosen) == 3000
    assert CountedEntry.comparisons < 4 * len(entries)  # membership in a list compares millions of times


def test_pruning_takes_temporary_files_older_than_a_day_whatever_the_limits():
    now = time.time()
    old_partial = CacheEntry("dumps", Path("p"), 10, now - 2 * 86400, None, "partial")
    old_temporary = CacheEntry("totals", Path("t"), 10, now - 2 * 86400, None, "temporary")
    recent_partial = CacheEntry("dumps", Path("q"), 10, now - 3600, None, "partial")
    old_dump = CacheEntry("dumps", Path("d"), 10, now - 2 * 86400, None, "verified")
    entries = [old_partial, old_temporary, recent_partial, old_dump]
    assert select_for_pruning(entries, older_than=30 * 86400, now=now) == [old_partial, old_temporary]


def test_scan_tells_kinds_hours_and_states(tmp_path):
    dump = cached_dump(tmp_path)
    write_record(dump, "x", verify_gzip(dump))
    unrecorded = dump.with_name("pageviews-20200122-040000.gz")
    unrecorded.write_bytes(dump.read_bytes())
    dump.with_name("pageviews-20200122-050000.gz.part").write_bytes(b"\x1f")
    dump.with_name("pageviews-20200122-060000.gz.part-0-99-of-300").write_bytes(b"\x1f")
    day = tmp_path / "lake" / "pageviews" / "year=2020" / "month=01" / "day=22"
    for hour in ("hour=02", "hour=03"):
        (day / hour).mkdir(parents=True)
    (day / "hour=02" / "part-0123.parquet").write_bytes(b"PAR1")
    (day / "hour=02" / "_SUCCESS").write_text('{"file": "part-0123.parquet"}')
    (day / "hour=02" / "_SUCCESS.lock").touch()
    (day / "hour=03" / ".part-4567.parquet.1234.tmp").write_bytes(b"PAR")
    found = {(e.kind, e.hour.hour, e.state, e.target.name) for e in scan(tmp_path)}
    assert found == {
        ("dumps", 2, "verified", "pageviews-20200122-030000.gz"),
        ("dumps", 3, "unverified", "pageviews-20200122-040000.gz"),
        ("dumps", 4, "partial", "pageviews-20200122-050000.gz"),
        ("dumps", 5, "partial", "pageviews-20200122-060000.gz"),
        ("totals", 2, "kept", "_SUCCESS"),
        ("totals", 3, "temporary", "_SUCCESS"),
    }
    assert {e.kind for e in scan(tmp_path, ["totals"])} == {"totals"}


def test_pruning_a_cache_deletes_what_it_selects_and_tells_what_is_left(tmp_path):
    dump = cached_dump(tmp_path)
    write_record(dump, "x", verify_gzip(dump))
    totals = tmp_path / "lake" / "pageviews" / "year=2020" / "month=01" / "day=22" / "hour=02"
    totals.mkdir(parents=True)
    (totals / "part-0123.parquet").write_bytes(b"PAR1" * 500)
    day_ago = time.time() - 86400
    os.utime(totals / "part-0123.parquet", (day_ago, day_ago))
    assert describe(scan(tmp_path)) == f"1 dumps ({dump.stat().st_size + sidecar_path(dump).stat().st_size} B), " \
        "1 totals (2.0 kB)"
    dry = prune_cache(tmp_path, older_than=3600, dry_run=True)
    assert [e.path for e in dry.deleted] == [totals] and totals.exists() and [e.path for e in dry.kept] == [dump]
    pruned = prune_cache(tmp_path, ["dumps", "totals"], max_size=0)
    assert [e.path for e in pruned.deleted] == [totals, dump] and pruned.in_use == [] and pruned.kept == []
    assert not dump.exists() and not sidecar_path(dump).exists()
    # The lock files pruning took went with the entries, and so did the folders left empty.
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["lake", "lake/pageviews",
                                                                                      "pageviews"]
    dump.parent.mkdir(parents=True, exist_ok=True)
    dump.write_bytes(b"\x1f")
    assert describe(scan(tmp_path)) == "1 dumps (1 B, 1 not verified), 0 totals (0 B)"


def old_dumps(cache: Path, count: int) -> list[Path]:
    """``count`` one-byte dumps of consecutive hours, modified 40 days ago."""
    long_ago = time.time() - 40 * 86400
    dumps = []
    for number in range(count):
        dump = cache / "pageviews" / dump_relative_path(datetime(2020, 1, 22, tzinfo=UTC) + timedelta(hours=number))
        dump.parent.mkdir(parents=True, exist_ok=True)
        dump.write_bytes(b"\x1f")
        os.utime(dump, (long_ago, long_ago))
        dumps.append(dump)
    return dumps


def test_pruning_an_entry_opens_its_lock_file_once(tmp_path, monkeypatch):
    """Pruning 8,000 entries took seconds in setting up a lock for each (filelock's registry,
    path resolution and a probe of the folder for flock support, bench/bench_prune.py): an
    entry's lock now costs one open of its lock file."""
    dumps = old_dumps(tmp_path, 30)
    opened = []
    real_open = os.open

    def counting_open(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_open)
    pruned = prune_cache(tmp_path, ["dumps"], older_than=86400)
    assert len(pruned.deleted) == 30
    assert sorted(opened) == sorted(f"{dump}.lock" for dump in dumps)


def test_pruning_deletes_the_lock_files_of_what_it_deletes_and_keeps_what_a_run_holds(tmp_path):
    """Runs leave a lock file beside each dump and lake hour they held: pruning one deletes
    it too, while holding it (wikitop.locks), but never that of an entry a live run holds."""
    dumps = old_dumps(tmp_path, 3)
    for dump in dumps:
        locks.hold(dump)
        locks.release(dump)
    hour = tmp_path / "lake" / "pageviews" / "year=2020" / "month=01" / "day=22" / "hour=02"
    hour.mkdir(parents=True)
    (hour / "part-0123.parquet").write_bytes(b"PAR1")
    (hour / "_SUCCESS").write_text('{"file": "part-0123.parquet"}')
    with locks.exclusive(hour / "_SUCCESS"):  # as the run that wrote the hour
        pass
    locks.hold(dumps[2])
    try:
        pruned = prune_cache(tmp_path, max_size=0)
    finally:
        locks.release(dumps[2])
    assert [e.path for e in pruned.in_use] == [dumps[2]]
    assert list(tmp_path.rglob("*.lock")) == [locks.lock_path(dumps[2])]
    assert not hour.parent.parent.parent.exists()


def test_pruning_deletes_the_temporary_files_of_dead_runs_once_a_day_old(tmp_path):
    """A run killed while writing a dump's record or a parsed blacklist leaves a temporary file
    (wikitop.files) that nothing else removes; a younger one may be a live run's."""
    dump = cached_dump(tmp_path)
    record = temporary_path(sidecar_path(dump))
    blacklist = temporary_path(tmp_path / "blacklists" / f"{'0' * 64}.arrow")
    blacklist.parent.mkdir()
    young_record, young_blacklist = temporary_path(sidecar_path(dump)), temporary_path(blacklist.with_name("x.arrow"))
    two_days_ago = time.time() - 2 * 86400
    for path in (record, blacklist, young_record, young_blacklist):
        path.write_bytes(b"{")
    for path in (record, blacklist):
        os.utime(path, (two_days_ago, two_days_ago))
    dry = prune_cache(tmp_path, ["totals"], older_than=30 * 86400, dry_run=True)
    assert {e.path for e in dry.deleted} == {record, blacklist} and record.exists()
    pruned = prune_cache(tmp_path, ["totals"], older_than=30 * 86400)
    assert {e.path for e in pruned.deleted} == {record, blacklist} and [e.path for e in pruned.kept] == []
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted([dump, young_record, young_blacklist])


@pytest.fixture
def spill_folders(tmp_path, monkeypatch):
    """A DuckDB spill folder of a process that is surely dead (ran and waited for) and one of this
    process, in a temporary folder of the test's own."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    folders = {pid: temporary / f"wikitop-duckdb-{pid}-7f3a2c" for pid in (int(dead.stdout), os.getpid())}
    for folder in folders.values():
        (folder / "0").mkdir(parents=True)
        (folder / "0" / "duckdb_temp_storage-0.tmp").write_bytes(b"spilled")
    return list(folders.values())


def test_pruning_removes_the_spill_folders_of_dead_runs_only(tmp_path, spill_folders):
    dead, live = spill_folders
    dry = prune_cache(tmp_path / "cache", older_than=86400, dry_run=True)
    assert dry.spill_folders == [dead] and dead.exists()
    pruned = prune_cache(tmp_path / "cache", older_than=86400)
    assert pruned.spill_folders == [dead] and not dead.exists() and live.exists()


def test_a_duckdb_engine_removes_the_spill_folders_of_dead_runs_when_it_starts(spill_folders):
    from wikitop.rank.duckdb_engine import DuckDBEngine

    dead, live = spill_folders
    engine = DuckDBEngine()
    engine.close()
    assert not dead.exists() and live.exists()


def test_the_http_client_is_imported_only_when_a_server_is_asked():
    """A run from a mirror or the cache does not pay for importing requests and urllib3."""
    check = (
        "import sys, wikitop.cli, wikitop.runner, wikitop.cache; "
        "assert not {'requests', 'urllib3'} & set(sys.modules), sorted({'requests', 'urllib3'} & set(sys.modules))"
    )
    subprocess.run([sys.executable, "-c", check], check=True)


def test_verifying_costs_no_more_memory_however_well_the_dump_compresses(tmp_path):
    """A 512 MB line in a gzip of under a megabyte, verified as the cache does (record missing:
    check_cached, as cache list --verify) and as a download does (chunks fed as they arrive):
    memory grows by a few megabytes, not by the compression ratio."""
    path = tmp_path / "pageviews-20200122-030000.gz"
    write_huge_line_gzip(path, megabytes=512)
    assert path.stat().st_size < 1 << 20
    script = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from wikitop.source.fetch import check_cached
        from wikitop.source.gzipfile import StreamVerifier

        def memory_mb(field):  # this process's alone: getrusage's peak includes its parent's at exec
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) / 1024 for line in status if line.startswith(field))

        path = Path(sys.argv[1])
        data = path.read_bytes()
        before = memory_mb("VmRSS:")
        cached = check_cached(path)
        streamed = StreamVerifier()
        for start in range(0, len(data), 1 << 20):
            streamed.feed(data[start : start + (1 << 20)])
        summary = streamed.finish(path.name)
        print(json.dumps({"growth_mb": memory_mb("VmHWM:") - before, "lines": [cached.lines, summary.lines]}))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["lines"] == [2, 2]
    assert report["growth_mb"] < 48, report["growth_mb"]


@pytest.mark.parametrize("content", [b"en Foo 1 0\nen Bar 2 0\n", b"<html>", b"x"])
def test_a_file_that_is_not_gzip_at_all_is_said_to_be_so(tmp_path, content):
    """Read in place from a mirror (verified_pieces), checked as downloaded (GzipChecker fed a
    byte at a time) or as cached (verify_gzip): "not a gzip file", not a decompressor's words."""
    from wikitop.source.gzipfile import verified_pieces

    path = tmp_path / "pageviews-20200122-030000.gz"
    path.write_bytes(content)
    with pytest.raises(CorruptDump, match="is not a gzip file"):
        list(verified_pieces(path))
    with pytest.raises(CorruptDump, match="is not a gzip file"):
        verify_gzip(path)
    with pytest.raises(CorruptDump, match="is not a gzip file"):
        check(content, chunk=1)


@pytest.mark.parametrize(("ended_ago", "says"), [
    (timedelta(hours=3), "is not published (yet); files usually appear 1-3 hours after the hour ends"),
    (timedelta(days=3), "is missing from every source"),
])
def test_an_hour_no_source_has_is_late_only_when_it_ended_lately(tmp_path, ended_ago, says):
    (tmp_path / "mirror").mkdir()
    store = DumpStore([str(tmp_path / "mirror")], tmp_path / "cache", Fetcher)
    hour = truncate_to_hour(datetime.now(UTC) - ended_ago) - timedelta(hours=1)
    with pytest.raises(NotPublished) as raised:
        store.fetch(hour)
    assert says in str(raised.value) and dump_file_name(hour) in str(raised.value)
