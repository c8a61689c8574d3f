"""Getting an hour's dump file: from the dump server, a mirror directory, or the cache.

Hours appear late or never, so "not published (yet)" is told apart from failure;
a file counts as fetched only once its length and gzip trailers check out, and the
cache keeps a record of each verified file. The HTTP side (connection limits,
retries, resuming, byte ranges) is ``wikitop.source.download``, imported only when a
source is a server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from wikitop import locks
from wikitop.errors import WikitopError
from wikitop.files import write_atomically
from wikitop.hours import ONE_HOUR, dump_file_name, dump_relative_path, format_hour
from wikitop.redact import redact
from wikitop.source.gzipfile import CorruptDump, GzipSummary, verify_gzip

log = logging.getLogger(__name__)

DEFAULT_SOURCE = "https://dumps.wikimedia.org/other/pageviews"
# An hour's file usually appears 1-3 hours after the hour ends, at times later; one that no
# source has this long after is not late but missing.
LATE_FILES_WITHIN = timedelta(days=2)

ProgressCallback = Callable[[int, int | None], None]


class FetchError(WikitopError):
    """The file could not be fetched; the message says why. ``transient``: the source
    kept failing for passing reasons and may answer later."""

    transient = False


class NotPublished(FetchError):
    """No source has the file (yet)."""


def _not_published_message(hour: datetime, name: str, missing: list[NotPublished],
                           now: datetime | None = None) -> str:
    """Why no source has the hour: late, when it ended lately; else missing from the sources."""
    details = "; ".join(map(str, missing))
    since_end = (now or datetime.now(UTC)) - (hour + ONE_HOUR)
    if since_end < LATE_FILES_WITHIN:
        return (f"hour {format_hour(hour)}: {name} is not published (yet); "
                f"files usually appear 1-3 hours after the hour ends ({details})")
    return (f"hour {format_hour(hour)}: {name} is missing from every source ({details}); the hour ended "
            f"{since_end.days} days ago, long past the 1-3 hours files usually take to appear")


def _log_failed_source(error: FetchError) -> None:
    """A warning, but only once for a source found down, not for every hour it is skipped."""
    log.log(logging.WARNING if getattr(error, "newly", True) else logging.INFO, "%s", error)


class HttpClient(Protocol):
    """What fetching asks of the HTTP client, ``wikitop.source.download.Fetcher``."""

    max_connections: int
    policy: PollPolicy

    def exists(self, url: str) -> bool: ...

    def download(
        self, url: str, target: Path, progress: ProgressCallback | None = None, priority: float = 0.0
    ) -> GzipSummary: ...


class PollPolicy(Protocol):
    def poll_delays(self) -> Iterator[float]: ...


@dataclass(frozen=True)
class DumpFile:
    """A verified local copy (or mirror file) of one hour's dump."""

    path: Path
    name: str
    size: int
    source: str
    lines: int | None


def source_kind(source: str) -> str:
    scheme = urlsplit(source).scheme
    if scheme in ("http", "https"):
        return "http"
    if scheme in ("", "file") or len(scheme) == 1:  # a Windows drive letter is not a scheme
        return "directory"
    raise ValueError(f"unsupported source {source!r}: use an http(s):// prefix or a directory")


def _directory(source: str) -> Path:
    return Path(urlsplit(source).path if source.startswith("file://") else source).expanduser()


def sidecar_path(dump: Path) -> Path:
    """The cache's record of a downloaded dump: where from, size, lines, digest."""
    return dump.with_name(dump.name + ".json")


def read_record(dump: Path) -> dict:
    try:
        record = json.loads(sidecar_path(dump).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_record(dump: Path, source: str, summary: GzipSummary) -> None:
    stat = dump.stat()
    record = {
        "source": redact(source),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "lines": summary.lines,
        "sha256": summary.sha256,
        "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_atomically(sidecar_path(dump), json.dumps(record))


def record_is_current(dump: Path, record: dict) -> bool:
    """Cheap: the record was written for this very file (same size and modification time)."""
    stat = dump.stat()
    return (
        record.get("size") == stat.st_size
        and record.get("mtime_ns") == stat.st_mtime_ns
        and isinstance(record.get("lines"), int)
        and isinstance(record.get("sha256"), str)
    )


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def check_cached(dump: Path) -> GzipSummary | None:
    """The summary of a cached dump if it is whole, re-verifying it when its record is
    missing, stale or its bytes changed; None (after deleting it) when it is bad."""
    record = read_record(dump)
    if record_is_current(dump, record) and file_sha256(dump) == record["sha256"]:
        return GzipSummary(record["size"], record["lines"], record["sha256"])
    try:
        summary = verify_gzip(dump)
    except CorruptDump as error:
        log.warning("cached %s is bad (%s); discarding it", dump, error)
        dump.unlink(missing_ok=True)
        sidecar_path(dump).unlink(missing_ok=True)
        return None
    write_record(dump, record.get("source", "cache"), summary)
    return summary


class DumpStore:
    """Finds an hour's file in the sources, in order, through the cache. Safe to share between threads.

    A fetched hour's cache entry is held against other processes (see ``wikitop.locks``)
    from its fetch until ``release``: another process fetching the same hour waits, then
    reuses the verified download, and ``cache prune`` leaves it alone.
    """

    def __init__(self, sources: Sequence[str], cache_dir: Path, fetcher: HttpClient | Callable[[], HttpClient]):
        """``fetcher``: the HTTP client for servers (``wikitop.source.download.Fetcher``), or a
        function that makes it when first needed."""
        if not sources:
            raise ValueError("no source given")
        for source in sources:
            source_kind(source)
        self.sources = list(sources)
        self.cache_dir = Path(cache_dir)
        self._fetcher = fetcher
        self._lock = threading.Lock()
        self._hour_locks: dict[datetime, threading.Lock] = {}
        self._holds: dict[datetime, int] = {}
        self._downloads = any(source_kind(source) == "http" for source in self.sources)
        self._prefetcher: ThreadPoolExecutor | None = None

    @property
    def fetcher(self) -> HttpClient:
        with self._lock:
            if callable(self._fetcher):
                self._fetcher = self._fetcher()
            return self._fetcher

    def ready_to_fetch(self) -> None:
        """Create the HTTP client now if a source needs it, so that fetches started next
        send their first requests at once."""
        if any(source_kind(source) == "http" for source in self.sources):
            _ = self.fetcher

    def cached_path(self, hour: datetime) -> Path:
        return self.cache_dir / "pageviews" / dump_relative_path(hour)

    def discard_cached(self, hour: datetime) -> None:
        """Delete the cache's copy of an hour's dump (never a mirror's file), unless another
        process is using it."""
        with self._hour_lock(hour):
            cached = self.cached_path(hour)
            if not cached.exists():
                return
            if not locks.try_hold(cached):
                log.info("kept %s: another wikitop process is using it", cached)
                return
            try:
                cached.unlink(missing_ok=True)
                sidecar_path(cached).unlink(missing_ok=True)
            finally:
                locks.release(cached)

    def release(self, hour: datetime) -> None:
        """Let other processes have the hour's cache entry again (once per ``fetch``)."""
        with self._lock:
            if not self._holds.get(hour):
                return
            self._holds[hour] -= 1
        locks.release(self.cached_path(hour))

    def url(self, source: str, hour: datetime) -> str:
        """The hour's file under ``source``, whose query (an access token, say) stays last."""
        prefix, question, query = source.partition("?")
        return f"{prefix.rstrip('/')}/{dump_relative_path(hour)}{question}{query}"

    def _hour_lock(self, hour: datetime) -> threading.Lock:
        with self._lock:
            return self._hour_locks.setdefault(hour, threading.Lock())

    def is_available(self, hour: datetime) -> bool:
        """Cheap: the cache or a mirror has the file, or a server answers HEAD with 200.

        A source that keeps failing counts as "not yet"; one that refuses for good
        (a 403, say) raises, unless another source has the file.
        """
        if self.cached_path(hour).exists():
            return True
        refusal: FetchError | None = None
        for source in self.sources:
            try:
                if source_kind(source) == "directory":
                    if (_directory(source) / dump_relative_path(hour)).is_file():
                        return True
                elif self.fetcher.exists(self.url(source, hour)):
                    return True
            except FetchError as error:
                if error.transient:
                    _log_failed_source(error)
                else:
                    refusal = refusal or error
        if refusal:
            raise refusal
        return False

    def wait_until_published(self, hour: datetime, seconds: float) -> None:
        """Poll cheaply (HEAD, backing off) until the hour's file exists; NotPublished after ``seconds``."""
        clock = self.fetcher.clock
        deadline = clock.monotonic() + seconds
        for delay in self.fetcher.policy.poll_delays():
            if self.is_available(hour):
                return
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                raise NotPublished(
                    f"hour {format_hour(hour)}: {dump_file_name(hour)} is still not published "
                    f"after waiting {seconds:.0f}s"
                )
            pause = min(delay, remaining)
            log.info("hour %s not published yet; checking again in %.0fs", format_hour(hour), pause)
            clock.sleep(pause)

    def fetch(self, hour: datetime, progress: ProgressCallback | None = None, wait_seconds: float = 0.0) -> DumpFile:
        """The hour's verified dump, from the cache or the first source that has it.

        With ``wait_seconds``, first wait that long at most for it to be published.
        The hour stays held until ``release``; the cache entry is held from before it is
        looked at, so that a dump downloaded by another process meanwhile is reused.
        """
        if wait_seconds > 0:
            self.wait_until_published(hour, wait_seconds)
        with self._hour_lock(hour):
            cached = self.cached_path(hour)
            held = self._downloads or cached.exists()
            if held:
                locks.hold(cached)
            try:
                dump = self._fetch(hour, progress)
            except BaseException:
                if held:
                    locks.release(cached)
                raise
            if held:
                with self._lock:
                    self._holds[hour] = self._holds.get(hour, 0) + 1
            return dump

    def prefetch(self, hour: datetime, wait_seconds: float = 0.0) -> Future[DumpFile]:
        """Fetch in the background, at most as many hours at once as connections are allowed."""
        workers = self.fetcher.max_connections
        with self._lock:
            if self._prefetcher is None:
                self._prefetcher = ThreadPoolExecutor(workers, thread_name_prefix="prefetch")
            return self._prefetcher.submit(self.fetch, hour, None, wait_seconds)

    def close(self) -> None:
        """Cancel the prefetches not started yet, wait for those running, and release every hour."""
        with self._lock:
            prefetcher, self._prefetcher = self._prefetcher, None
        if prefetcher:
            prefetcher.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            holds, self._holds = self._holds, {}
        for hour, count in holds.items():
            for _ in range(count):
                locks.release(self.cached_path(hour))

    def _fetch(self, hour: datetime, progress: ProgressCallback | None) -> DumpFile:
        name = dump_file_name(hour)
        cached = self.cached_path(hour)
        if cached.exists() and (summary := check_cached(cached)):
            source = read_record(cached).get("source", "cache")
            return DumpFile(cached, name, summary.size, source, summary.lines)
        failures: list[str] = []
        missing: list[NotPublished] = []
        for source in self.sources:
            try:
                if source_kind(source) == "directory":
                    return self._from_directory(source, hour)
                return self._from_http(source, hour, progress)
            except NotPublished as error:
                missing.append(error)
            except FetchError as error:
                failures.append(str(error))
                if len(self.sources) > 1:
                    _log_failed_source(error)
        if failures:
            raise FetchError(f"hour {format_hour(hour)} ({name}) could not be fetched: " + "; ".join(failures))
        raise NotPublished(_not_published_message(hour, name, missing))

    def _from_directory(self, source: str, hour: datetime) -> DumpFile:
        root = _directory(source)
        if not root.is_dir():
            raise FetchError(f"the mirror {source} is not a directory (laid out like {DEFAULT_SOURCE})")
        path = root / dump_relative_path(hour)
        if not path.is_file():
            raise NotPublished(f"{path} does not exist")
        # Read in place: the engine verifies the gzip trailers as it decompresses.
        return DumpFile(path, path.name, path.stat().st_size, str(path), None)

    def _from_http(self, source: str, hour: datetime, progress: ProgressCallback | None) -> DumpFile:
        url = self.url(source, hour)
        target = self.cached_path(hour)
        summary = self.fetcher.download(url, target, progress, priority=hour.timestamp())
        write_record(target, url, summary)
        return DumpFile(target, target.name, summary.size, url, summary.lines)
