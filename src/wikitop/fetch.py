"""Getting an hour's dump file: from the dump server, a mirror directory, or the cache.

The dump server allows 3 connections per client, throttles each, answers 503
when pushed and blocks generic User-Agents; hours appear late or never. So:
one process-wide connection limit per host, resumable downloads with bounded
retries and backoff, a file counts as fetched only once its length and gzip
trailer check out, and "not published (yet)" is told apart from failure.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests

from wikitop import __version__
from wikitop.hours import dump_file_name, dump_relative_path, format_hour

log = logging.getLogger(__name__)

DEFAULT_SOURCE = "https://dumps.wikimedia.org/other/pageviews"
DEFAULT_USER_AGENT = (
    f"wikitop/{__version__} (https://github.com/wikitop/wikitop; wikitop@users.noreply.github.com)"
)
SERVER_CONNECTION_LIMIT = 3
CHUNK_SIZE = 1 << 16

ProgressCallback = Callable[[int, int | None], None]


class FetchError(RuntimeError):
    """The file could not be fetched; the message says why."""


class NotPublished(FetchError):
    """No source has the file (yet)."""


class CorruptFile(FetchError):
    """The bytes are not a complete gzip file."""


def verify_gzip(path: Path) -> int:
    """Decompress the whole file, checking every member's CRC32 and length trailer.

    Returns the number of lines, which tells the engines how many lines their
    readers skipped without a word (empty ones).
    """
    with open(path, "rb") as handle:
        checker = GzipChecker()
        while chunk := handle.read(1 << 20):
            checker.feed(chunk)
        checker.finish(path.name)
    return checker.lines


class GzipChecker:
    """Incremental gzip verification over (possibly multi-member) data."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(wbits=31)
        self._seen_data = False
        self._newlines = 0
        self._ends_with_newline = True

    @property
    def lines(self) -> int:
        return self._newlines + (0 if self._ends_with_newline else 1)

    def _count(self, text: bytes) -> None:
        if text:
            self._newlines += text.count(b"\n")
            self._ends_with_newline = text.endswith(b"\n")

    def feed(self, data: bytes) -> None:
        while data:
            self._seen_data = True
            if self._inflater.eof:
                self._inflater = zlib.decompressobj(wbits=31)
            try:
                self._count(self._inflater.decompress(data))
            except zlib.error as error:
                raise CorruptFile(f"corrupt gzip data ({error})") from None
            data = self._inflater.unused_data if self._inflater.eof else b""

    def finish(self, name: str) -> None:
        if not self._seen_data:
            raise CorruptFile(f"{name} is empty")
        if not self._inflater.eof:
            raise CorruptFile(f"{name} is truncated (the gzip stream ends early)")


class HostLimiter:
    """At most N open requests per host across every thread of the process."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}

    def __call__(self, url: str) -> threading.BoundedSemaphore:
        host = urlsplit(url).netloc
        with self._lock:
            if host not in self._semaphores:
                self._semaphores[host] = threading.BoundedSemaphore(self.limit)
            return self._semaphores[host]


@dataclass
class RetryPolicy:
    attempts: int = 6
    backoff_base: float = 2.0
    backoff_max: float = 120.0
    connect_timeout: float = 30.0
    stall_timeout: float = 60.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
        return random.uniform(ceiling / 2, ceiling)


class _RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class Fetcher:
    """HTTP access shared by every download of a process: limits, retries, User-Agent."""

    def __init__(
        self,
        user_agent: str = DEFAULT_USER_AGENT,
        max_connections: int = SERVER_CONNECTION_LIMIT,
        allow_more_connections: bool = False,
        policy: RetryPolicy | None = None,
    ):
        if max_connections < 1:
            raise ValueError("--max-connections must be at least 1")
        if max_connections > SERVER_CONNECTION_LIMIT and not allow_more_connections:
            raise ValueError(
                f"the dump server allows {SERVER_CONNECTION_LIMIT} connections per client; "
                "pass --allow-more-connections to use more against your own mirror"
            )
        self.user_agent = user_agent
        self.policy = policy or RetryPolicy()
        self.limiter = HostLimiter(max_connections)
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=max_connections, pool_block=True, max_retries=0
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = user_agent

    def _request(self, method: str, url: str, **kwargs) -> requests.Response:
        timeout = (self.policy.connect_timeout, self.policy.stall_timeout)
        try:
            return self.session.request(method, url, timeout=timeout, allow_redirects=True, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as error:
            raise _RetryableError(f"{type(error).__name__}: {error}") from None

    def _check_status(self, response: requests.Response, url: str) -> None:
        status = response.status_code
        if status == 404:
            raise NotPublished(f"{url} does not exist (404)")
        if status in (429, 503) or status >= 500:
            raise _RetryableError(
                f"HTTP {status} from {url}",
                _retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status == 403:
            body = response.text[:200]
            hint = ""
            if "agent" in body.lower() or not body:
                hint = (
                    f"; the server may be refusing the User-Agent {self.user_agent!r}: "
                    "set a descriptive one with contact details via --user-agent or WIKITOP_USER_AGENT"
                )
            raise FetchError(f"HTTP 403 Forbidden from {url}{hint}")
        if status >= 400:
            raise FetchError(f"HTTP {status} from {url}")

    def _with_retries(self, url: str, attempt: Callable[[], object]):
        failures = 0
        while True:
            try:
                with self.limiter(url):
                    return attempt()
            except _RetryableError as error:
                failures += 1
                if failures >= self.policy.attempts:
                    raise FetchError(f"giving up on {url} after {failures} attempts: {error}") from None
                delay = self.policy.delay(failures, error.retry_after)
                log.warning("%s; retrying in %.1fs (%d/%d)", error, delay, failures, self.policy.attempts)
                time.sleep(delay)

    def exists(self, url: str) -> bool:
        """A HEAD request: True if the file is there, False on 404."""

        def head():
            response = self._request("HEAD", url)
            with response:
                try:
                    self._check_status(response, url)
                except NotPublished:
                    return False
                return True

        return self._with_retries(url, head)

    def get_bytes(self, url: str) -> bytes:
        def get():
            response = self._request("GET", url)
            with response:
                self._check_status(response, url)
                try:
                    return response.content
                except requests.RequestException as error:
                    raise _RetryableError(str(error)) from None

        return self._with_retries(url, get)

    def download(self, url: str, target: Path, progress: ProgressCallback | None = None) -> tuple[int, int]:
        """Download url to target, resuming a partial ``target.part``; returns size and lines.

        The file appears at ``target`` only complete and verified.
        """
        partial = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        corrupt_restarts = 0
        while True:
            total = self._with_retries(url, lambda: self._download_attempt(url, partial, progress))
            try:
                lines = verify_gzip(partial)
            except CorruptFile as error:
                partial.unlink(missing_ok=True)
                corrupt_restarts += 1
                if corrupt_restarts >= 2:
                    raise CorruptFile(f"{url}: {error} (fetched twice, still bad)") from None
                log.warning("%s: %s; fetching again", url, error)
                continue
            os.replace(partial, target)
            return total, lines

    def _download_attempt(self, url: str, partial: Path, progress: ProgressCallback | None) -> int:
        offset = partial.stat().st_size if partial.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self._request("GET", url, headers=headers, stream=True)
        with response:
            self._check_status(response, url)
            if offset and response.status_code == 206:
                total = _content_range_total(response, offset, url)
                mode = "ab"
            else:
                if offset:
                    log.info("%s ignored the Range request; starting again from byte 0", url)
                offset = 0
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                mode = "wb"
            done = offset
            try:
                with open(partial, mode) as handle:
                    for chunk in response.iter_content(CHUNK_SIZE):
                        handle.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
            except (requests.RequestException, ConnectionError) as error:
                raise _RetryableError(f"download of {url} broke off at byte {done}: {error}") from None
        if total is not None and done < total:
            raise _RetryableError(f"download of {url} stopped at byte {done} of {total}")
        if total is not None and done > total:
            partial.unlink(missing_ok=True)
            raise _RetryableError(f"{url} sent {done} bytes but announced {total}")
        return done


def _content_range_total(response: requests.Response, offset: int, url: str) -> int | None:
    value = response.headers.get("Content-Range", "")
    try:
        unit, _, spec = value.partition(" ")
        span, _, total = spec.partition("/")
        start = int(span.split("-")[0])
    except ValueError:
        raise _RetryableError(f"{url} answered 206 with a bad Content-Range {value!r}") from None
    if unit != "bytes" or start != offset:
        raise _RetryableError(f"{url} resumed at {value!r}, expected byte {offset}")
    return int(total) if total.isdigit() else None


@dataclass(frozen=True)
class DumpFile:
    """A verified local copy (or mirror file) of one hour's dump."""

    path: Path
    name: str
    size: int
    source: str
    lines: int


def source_kind(source: str) -> str:
    scheme = urlsplit(source).scheme
    if scheme in ("http", "https"):
        return "http"
    if scheme in ("", "file") or len(scheme) == 1:  # a Windows drive letter is not a scheme
        return "directory"
    raise ValueError(f"unsupported source {source!r}: use an http(s):// prefix or a directory")


def _directory(source: str) -> Path:
    return Path(urlsplit(source).path if source.startswith("file://") else source).expanduser()


class DumpStore:
    """Finds an hour's file in the sources, in order, through the cache."""

    def __init__(self, sources: Sequence[str], cache_dir: Path, fetcher: Fetcher | None = None):
        if not sources:
            raise ValueError("no source given")
        for source in sources:
            source_kind(source)
        self.sources = list(sources)
        self.cache_dir = Path(cache_dir)
        self._fetcher = fetcher

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            self._fetcher = Fetcher()
        return self._fetcher

    def cached_path(self, hour: datetime) -> Path:
        return self.cache_dir / "pageviews" / dump_relative_path(hour)

    def url(self, source: str, hour: datetime) -> str:
        return f"{source.rstrip('/')}/{dump_relative_path(hour)}"

    def is_available(self, hour: datetime) -> bool:
        """Cheap: the cache or a mirror has the file, or a server answers HEAD with 200."""
        if self.cached_path(hour).exists():
            return True
        for source in self.sources:
            try:
                if source_kind(source) == "directory":
                    if (_directory(source) / dump_relative_path(hour)).is_file():
                        return True
                elif self.fetcher.exists(self.url(source, hour)):
                    return True
            except FetchError as error:
                log.warning("%s", error)
        return False

    def fetch(self, hour: datetime, progress: ProgressCallback | None = None) -> DumpFile:
        name = dump_file_name(hour)
        cached = self.cached_path(hour)
        if cached.exists() and _sidecar_matches(cached):
            record = _read_sidecar(cached)
            return DumpFile(cached, name, record["size"], record["source"], record["lines"])
        failures: list[str] = []
        missing: list[str] = []
        for source in self.sources:
            try:
                if source_kind(source) == "directory":
                    return self._from_directory(source, hour)
                return self._from_http(source, hour, progress)
            except NotPublished as error:
                missing.append(str(error))
            except FetchError as error:
                failures.append(str(error))
                log.warning("%s", error)
        if failures:
            raise FetchError(f"hour {format_hour(hour)} ({name}) could not be fetched: " + "; ".join(failures))
        raise NotPublished(
            f"hour {format_hour(hour)}: {name} is not published (yet); "
            f"files usually appear 1-3 hours after the hour ends ({'; '.join(missing)})"
        )

    def _from_directory(self, source: str, hour: datetime) -> DumpFile:
        path = _directory(source) / dump_relative_path(hour)
        if not path.is_file():
            raise NotPublished(f"{path} does not exist")
        try:
            lines = verify_gzip(path)
        except CorruptFile as error:
            raise FetchError(f"{path}: {error}") from None
        return DumpFile(path, path.name, path.stat().st_size, str(path), lines)

    def _from_http(self, source: str, hour: datetime, progress: ProgressCallback | None) -> DumpFile:
        url = self.url(source, hour)
        target = self.cached_path(hour)
        size, lines = self.fetcher.download(url, target, progress)
        _write_sidecar(target, url, lines)
        return DumpFile(target, target.name, size, url, lines)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _write_sidecar(path: Path, source: str, lines: int) -> None:
    stat = path.stat()
    record = {"source": source, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "lines": lines}
    temporary = _sidecar(path).with_suffix(".tmp")
    temporary.write_text(json.dumps(record))
    os.replace(temporary, _sidecar(path))


def _read_sidecar(path: Path) -> dict:
    try:
        return json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return {}


def _sidecar_matches(path: Path) -> bool:
    record = _read_sidecar(path)
    stat = path.stat()
    return (
        record.get("size") == stat.st_size
        and record.get("mtime_ns") == stat.st_mtime_ns
        and isinstance(record.get("lines"), int)
    )
