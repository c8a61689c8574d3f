"""Getting an hour's dump file: from the dump server, a mirror directory, or the cache.

The dump server allows 3 connections per client, throttles each, answers 503
when pushed and blocks generic User-Agents; hours appear late or never. So:
one process-wide connection limit per host, resumable downloads with bounded
retries and backoff, a file counts as fetched only once its length and gzip
trailers check out, and "not published (yet)" is told apart from failure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
import urllib3
from isal import isal_zlib

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


class EmptyDump(NotPublished):
    """The source publishes the file with no bytes at all: an hour without data."""


class CorruptFile(FetchError):
    """The bytes are not a complete gzip file."""


class GaveUp(FetchError):
    """Transient failures (resets, stalls, 5xx, 429) went on longer than the retries allow."""


@dataclass(frozen=True)
class GzipSummary:
    """What verifying a gzip file found: its size, lines and the SHA-256 of its bytes."""

    size: int
    lines: int
    sha256: str


def verify_gzip(path: Path, name: str | None = None) -> GzipSummary:
    """Decompress the whole file, checking every member's CRC32 and length trailer.

    The line count tells the engines how many lines their readers skipped without
    a word (empty ones); the digest lets the cache notice a file changed later.
    """
    verifier = StreamVerifier()
    verifier.feed_file(path)
    return verifier.finish(name or path.name)


class StreamVerifier:
    """Verifies a gzip file as its bytes go by, and measures and digests them."""

    def __init__(self) -> None:
        self.gzip = GzipChecker()
        self.digest = hashlib.sha256()
        self.size = 0

    def feed(self, data: bytes) -> None:
        self.gzip.feed(data)
        self.digest.update(data)
        self.size += len(data)

    def feed_file(self, path: Path) -> None:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                self.feed(chunk)

    def finish(self, name: str) -> GzipSummary:
        self.gzip.finish(name)
        return GzipSummary(self.size, self.gzip.lines, self.digest.hexdigest())


class GzipChecker:
    """Incremental gzip verification over (possibly multi-member) data."""

    def __init__(self) -> None:
        self._inflater = isal_zlib.decompressobj(wbits=31)
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
                self._inflater = isal_zlib.decompressobj(wbits=31)
            try:
                self._count(self._inflater.decompress(data))
            except isal_zlib.error as error:
                raise CorruptFile(f"corrupt gzip data ({error})") from None
            data = self._inflater.unused_data if self._inflater.eof else b""

    def finish(self, name: str) -> None:
        if not self._seen_data:
            raise CorruptFile(f"{name} is empty")
        if not self._inflater.eof:
            raise CorruptFile(f"{name} is truncated (the gzip stream ends early)")


@dataclass(frozen=True)
class RetryPolicy:
    """How patient fetching is.

    Retry delays double from ``backoff_base`` up to ``backoff_max``, each drawn from
    the upper half of its range so that threads and processes spread out, and never
    shorter than the server's Retry-After. ``retries`` bounds the failures in a row;
    an attempt that brought new bytes starts the count again.
    """

    retries: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    connect_timeout: float = 30.0
    stall_timeout: float = 60.0
    refetches: int = 2
    poll_interval: float = 10.0
    poll_max: float = 300.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.refetches < 0:
            raise ValueError("retries cannot be negative")
        if min(self.connect_timeout, self.stall_timeout, self.poll_interval) <= 0:
            raise ValueError("timeouts and the poll interval must be positive")
        if self.backoff_base < 0 or self.backoff_max < self.backoff_base:
            raise ValueError("the retry delay must be between 0 and its maximum")

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``failures``-th failure in a row."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
        backoff = random.uniform(ceiling / 2, ceiling)
        return backoff if retry_after is None else max(backoff, retry_after)

    def poll_delays(self) -> Iterator[float]:
        """Pauses between checks for a file not published yet: doubling, with jitter."""
        delay = self.poll_interval
        while True:
            yield random.uniform(0.75 * delay, delay)
            delay = min(2 * delay, max(self.poll_max, self.poll_interval))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def check_content_range(value: str | None, offset: int, content_length: str | None) -> int | None:
    """Check a 206 answer to ``Range: bytes=OFFSET-``; returns the file's whole size if given.

    Raises ValueError when the part is not the one asked for: another start, an end
    short of the file's end, or a Content-Length that disagrees with the range.
    """
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        raise ValueError(f"unreadable Content-Range {value!r}")
    first, last = int(match[1]), int(match[2])
    total = None if match[3] == "*" else int(match[3])
    if first != offset or last < first:
        raise ValueError(f"Content-Range {value!r} does not start at the requested byte {offset}")
    if total is not None and last != total - 1:
        raise ValueError(f"Content-Range {value!r} stops before the end of the file")
    if content_length is not None and content_length.strip() != str(last - first + 1):
        raise ValueError(f"Content-Length {content_length} disagrees with Content-Range {value!r}")
    return total


class HostLimiter:
    """At most N requests at a time per host, across every thread that shares it."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}

    def slot(self, url: str) -> threading.BoundedSemaphore:
        host = urlsplit(url).netloc
        with self._lock:
            if host not in self._semaphores:
                self._semaphores[host] = threading.BoundedSemaphore(self.limit)
            return self._semaphores[host]


_sessions: dict[int, requests.Session] = {}
_sessions_lock = threading.Lock()


def _shared_session(connections_per_host: int) -> requests.Session:
    """The process's HTTP session whose pools hold at most ``connections_per_host`` per host.

    A server counts idle keep-alive connections like busy ones, so every Fetcher of
    the process draws from the same blocking pools: together they can never hold
    more than the limit open to one host.
    """
    with _sessions_lock:
        if connections_per_host not in _sessions:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(
                pool_connections=16, pool_maxsize=connections_per_host, pool_block=True, max_retries=0
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _sessions[connections_per_host] = session
        return _sessions[connections_per_host]


def _forget_sessions() -> None:
    global _sessions_lock
    _sessions.clear()  # a forked child must not share the parent's sockets
    _sessions_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_sessions)


_CONNECTION_PREFIX = re.compile(r"^\w*Connection(Pool)?\(host='[^']*', port=\d+\): ")


def _root_cause(error: BaseException) -> str:
    """The innermost cause of a requests error, without urllib3's pool and connection
    wrapping: "Failed to resolve 'host' (...)" rather than three nested reprs."""
    while True:
        inner = getattr(error, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in error.args if isinstance(arg, BaseException)), None)
        if inner is None:
            return _CONNECTION_PREFIX.sub("", str(error))
        error = inner


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Fetcher:
    """HTTP access shared by every download of a process: limits, retries, User-Agent.

    Safe to share between threads.
    """

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
        if not user_agent.strip():
            raise ValueError("the User-Agent cannot be empty: Wikimedia requires one with contact details")
        self.user_agent = user_agent
        self.max_connections = max_connections
        self.policy = policy or RetryPolicy()
        self.limiter = HostLimiter(max_connections)
        self._hosts_without_head: set[str] = set()
        self.session = _shared_session(max(max_connections, SERVER_CONNECTION_LIMIT))

    def _request(self, method: str, url: str, headers: dict | None = None, stream: bool = False) -> requests.Response:
        timeout = (self.policy.connect_timeout, self.policy.stall_timeout)
        try:
            return self.session.request(
                method, url, headers={"User-Agent": self.user_agent, **(headers or {})},
                timeout=timeout, allow_redirects=True, stream=stream,
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            raise _Retryable(f"{type(error).__name__} from {url}: {_root_cause(error)}") from None
        except requests.RequestException as error:
            raise FetchError(f"cannot request {url}: {error}") from None

    def _check_status(self, response: requests.Response, url: str) -> None:
        status = response.status_code
        if status in (404, 410):
            raise NotPublished(f"{url} does not exist ({status})")
        if status in (408, 429) or status >= 500:
            raise _Retryable(f"HTTP {status} from {url}", parse_retry_after(response.headers.get("Retry-After")))
        if status == 403:
            raise FetchError(f"HTTP 403 Forbidden from {url}{self._forbidden_hint(response, url)}")
        if status not in (200, 206):
            raise FetchError(f"HTTP {status} from {url}")

    def _forbidden_hint(self, response: requests.Response, url: str) -> str:
        body = " ".join(response.text[:200].split()) if response.request.method != "HEAD" else ""
        if not body or "agent" in body.lower():
            refusal = f" ({body!r}): the server refuses" if body else ": the server may be refusing"
            return (
                f"{refusal} the User-Agent {self.user_agent!r}. Wikimedia requires one that names the tool "
                "and a contact, e.g. 'mytool/1.0 (https://example.org; me@example.org)'; "
                "set it with --user-agent or WIKITOP_USER_AGENT"
            )
        hint = f" ({body!r})"
        if urlsplit(url).scheme == "http":
            hint += "; the dump server refuses plain http://, use https://"
        return hint

    def _with_retries(self, url: str, attempt: Callable[[], object], progress_mark: Callable[[], int] | None = None):
        """Run ``attempt`` in a connection slot until it succeeds or the failures in a row exceed the retries."""
        failures = 0
        best_mark = progress_mark() if progress_mark else 0
        while True:
            try:
                with self.limiter.slot(url):
                    return attempt()
            except _Retryable as error:
                if progress_mark and (mark := progress_mark()) > best_mark:
                    best_mark, failures = mark, 0
                failures += 1
                if failures > self.policy.retries:
                    raise GaveUp(f"giving up on {url} after {failures} failed attempts in a row: {error}") from None
                if error.retry_after is not None and error.retry_after > self.policy.backoff_max:
                    raise GaveUp(
                        f"{error}: the server asks to come back in {error.retry_after:.0f}s (Retry-After), "
                        f"longer than the longest backoff of {self.policy.backoff_max:.0f}s"
                    ) from None
                delay = self.policy.delay(failures, error.retry_after)
                log.warning("%s; retrying in %.1fs (%d/%d)", error, delay, failures, self.policy.retries)
                time.sleep(delay)

    def exists(self, url: str) -> bool:
        """A HEAD request: True if the file is there, False on 404.

        A host that does not do HEAD (405, 501) is asked for the first byte instead, from
        then on; the connection is closed without reading more, whatever the server sends.
        """
        host = urlsplit(url).netloc

        def head() -> bool:
            if host not in self._hosts_without_head:
                with self._request("HEAD", url) as response:
                    if response.status_code not in (405, 501):
                        return is_there(response)
                self._hosts_without_head.add(host)
            with self._request("GET", url, headers={"Range": "bytes=0-0"}, stream=True) as response:
                return is_there(response)

        def is_there(response: requests.Response) -> bool:
            try:
                self._check_status(response, url)
            except NotPublished:
                return False
            return True

        return self._with_retries(url, head)

    def get_bytes(self, url: str) -> bytes:
        def get() -> bytes:
            with self._request("GET", url) as response:
                self._check_status(response, url)
                try:
                    return response.content
                except requests.RequestException as error:
                    raise _Retryable(f"download of {url} broke off: {_root_cause(error)}") from None

        return self._with_retries(url, get)

    def download(self, url: str, target: Path, progress: ProgressCallback | None = None) -> GzipSummary:
        """Download url to target, resuming a partial ``target.part``; the file appears at
        ``target`` only complete and verified.

        A file that fails verification (its length, CRC or gzip structure) is fetched
        again from zero, up to ``policy.refetches`` times.
        """
        partial = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        fetches = 0
        while True:
            fetches += 1
            transfer = _Transfer(self, url, partial, progress)
            try:
                self._with_retries(url, transfer.attempt, progress_mark=transfer.received)
                summary = transfer.finish(target.name)
            except CorruptFile as error:
                empty = transfer.received() == 0
                partial.unlink(missing_ok=True)
                if fetches > self.policy.refetches:
                    if empty:
                        raise EmptyDump(f"{url} is empty (0 bytes), {fetches} times in a row") from None
                    raise CorruptFile(f"{url}: {error}; fetched {fetches} times, bad every time") from None
                log.warning("%s: %s; fetching it again", url, error)
                continue
            os.replace(partial, target)
            return summary


class _Transfer:
    """One fetch of a file into ``partial``, resumed with Range requests over as many attempts as it takes.

    The bytes are verified as they arrive, so that a connection is never idle while a
    finished file is checked, and a corrupt one is dropped at the first bad byte.
    """

    def __init__(self, fetcher: Fetcher, url: str, partial: Path, progress: ProgressCallback | None):
        self.fetcher = fetcher
        self.url = url
        self.partial = partial
        self.progress = progress
        self.total: int | None = None  # the whole file's size, as first announced
        self.verifier: StreamVerifier | None = None

    def received(self) -> int:
        try:
            return self.partial.stat().st_size
        except FileNotFoundError:
            return 0

    def finish(self, name: str) -> GzipSummary:
        return (self.verifier or StreamVerifier()).finish(name)

    def _restart(self, reason: str) -> _Retryable:
        self.partial.unlink(missing_ok=True)
        self.total = None
        self.verifier = None
        return _Retryable(f"{self.url}: {reason}; starting again from byte 0")

    def attempt(self) -> None:
        url, offset = self.url, self.received()
        # identity: a server or proxy that gzips the .gz again must not get it decoded for us.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self.fetcher._request("GET", url, headers=headers, stream=True) as response:
            if response.status_code == 416 and offset:
                raise self._restart(f"the server cannot resume at byte {offset} (416)")
            self.fetcher._check_status(response, url)
            length = response.headers.get("Content-Length")
            if response.status_code == 206:
                if not offset:
                    raise self._restart("answered 206 to a request without Range")
                try:
                    total = check_content_range(response.headers.get("Content-Range"), offset, length)
                except ValueError as error:
                    raise self._restart(f"bad resume ({error})") from None
                if self.total is not None and total is not None and total != self.total:
                    raise self._restart(f"the file is now {total} bytes, not {self.total}")
                mode = "ab"
                if self.verifier is None or self.verifier.size != offset:  # a .part left by an earlier run
                    self.verifier = StreamVerifier()
                    self.verifier.feed_file(self.partial)
            else:
                if offset:
                    log.info("%s ignored the Range request; downloading it again from byte 0", url)
                offset = 0
                total = int(length) if length and length.strip().isdigit() else None
                mode = "wb"
                self.verifier = StreamVerifier()
            self.total = total if total is not None else self.total
            done = self._receive(response, mode, offset)
        if self.total is not None and done != self.total:
            raise _Retryable(f"download of {url} stopped at byte {done} of {self.total}")

    def _receive(self, response: requests.Response, mode: str, done: int) -> int:
        with open(self.partial, mode) as handle:
            while True:
                try:
                    # read1: whatever has arrived, so that a stall or reset loses no received byte.
                    chunk = response.raw.read1(CHUNK_SIZE, decode_content=False)
                except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as error:
                    raise _Retryable(f"download of {self.url} broke off at byte {done}: {_root_cause(error)}") from None
                if not chunk:
                    return done
                handle.write(chunk)
                self.verifier.feed(chunk)
                done += len(chunk)
                if self.progress:
                    self.progress(done, self.total)


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
        "source": source,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "lines": summary.lines,
        "sha256": summary.sha256,
        "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    temporary = sidecar_path(dump).with_name(sidecar_path(dump).name + ".tmp")
    temporary.write_text(json.dumps(record))
    os.replace(temporary, sidecar_path(dump))


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
    except CorruptFile as error:
        log.warning("cached %s is bad (%s); discarding it", dump, error)
        dump.unlink(missing_ok=True)
        sidecar_path(dump).unlink(missing_ok=True)
        return None
    write_record(dump, record.get("source", "cache"), summary)
    return summary


class DumpStore:
    """Finds an hour's file in the sources, in order, through the cache. Safe to share between threads."""

    def __init__(self, sources: Sequence[str], cache_dir: Path, fetcher: Fetcher | None = None):
        if not sources:
            raise ValueError("no source given")
        for source in sources:
            source_kind(source)
        self.sources = list(sources)
        self.cache_dir = Path(cache_dir)
        self._fetcher = fetcher
        self._lock = threading.Lock()
        self._hour_locks: dict[datetime, threading.Lock] = {}
        self._prefetcher: ThreadPoolExecutor | None = None

    @property
    def fetcher(self) -> Fetcher:
        with self._lock:
            if self._fetcher is None:
                self._fetcher = Fetcher()
            return self._fetcher

    def cached_path(self, hour: datetime) -> Path:
        return self.cache_dir / "pageviews" / dump_relative_path(hour)

    def discard_cached(self, hour: datetime) -> None:
        """Delete the cache's copy of an hour's dump (never a mirror's file)."""
        with self._hour_lock(hour):
            cached = self.cached_path(hour)
            cached.unlink(missing_ok=True)
            sidecar_path(cached).unlink(missing_ok=True)

    def url(self, source: str, hour: datetime) -> str:
        return f"{source.rstrip('/')}/{dump_relative_path(hour)}"

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
            except GaveUp as error:
                log.warning("%s", error)
            except FetchError as error:
                refusal = refusal or error
        if refusal:
            raise refusal
        return False

    def wait_until_published(self, hour: datetime, seconds: float) -> None:
        """Poll cheaply (HEAD, backing off) until the hour's file exists; NotPublished after ``seconds``."""
        deadline = time.monotonic() + seconds
        for delay in self.fetcher.policy.poll_delays():
            if self.is_available(hour):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotPublished(
                    f"hour {format_hour(hour)}: {dump_file_name(hour)} is still not published "
                    f"after waiting {seconds:.0f}s"
                )
            pause = min(delay, remaining)
            log.info("hour %s not published yet; checking again in %.0fs", format_hour(hour), pause)
            time.sleep(pause)

    def fetch(self, hour: datetime, progress: ProgressCallback | None = None, wait_seconds: float = 0.0) -> DumpFile:
        """The hour's verified dump, from the cache or the first source that has it.

        With ``wait_seconds``, first wait that long at most for it to be published.
        """
        if wait_seconds > 0:
            self.wait_until_published(hour, wait_seconds)
        with self._hour_lock(hour):
            return self._fetch(hour, progress)

    def prefetch(self, hour: datetime, wait_seconds: float = 0.0) -> Future[DumpFile]:
        """Fetch in the background, at most as many hours at once as connections are allowed."""
        with self._lock:
            if self._prefetcher is None:
                workers = self._fetcher.max_connections if self._fetcher else SERVER_CONNECTION_LIMIT
                self._prefetcher = ThreadPoolExecutor(workers, thread_name_prefix="prefetch")
            return self._prefetcher.submit(self.fetch, hour, None, wait_seconds)

    def close(self) -> None:
        """Cancel the prefetches not started yet and wait for those running."""
        with self._lock:
            prefetcher, self._prefetcher = self._prefetcher, None
        if prefetcher:
            prefetcher.shutdown(wait=True, cancel_futures=True)

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
                    log.warning("%s", error)
        if failures:
            raise FetchError(f"hour {format_hour(hour)} ({name}) could not be fetched: " + "; ".join(failures))
        details = "; ".join(map(str, missing))
        if any(isinstance(error, EmptyDump) for error in missing):
            raise EmptyDump(f"hour {format_hour(hour)}: {name} is published empty, an hour without data ({details})")
        raise NotPublished(
            f"hour {format_hour(hour)}: {name} is not published (yet); "
            f"files usually appear 1-3 hours after the hour ends ({details})"
        )

    def _from_directory(self, source: str, hour: datetime) -> DumpFile:
        path = _directory(source) / dump_relative_path(hour)
        if not path.is_file():
            raise NotPublished(f"{path} does not exist")
        # Read in place: the engine verifies the gzip trailers as it decompresses.
        return DumpFile(path, path.name, path.stat().st_size, str(path), None)

    def _from_http(self, source: str, hour: datetime, progress: ProgressCallback | None) -> DumpFile:
        url = self.url(source, hour)
        target = self.cached_path(hour)
        summary = self.fetcher.download(url, target, progress)
        write_record(target, url, summary)
        return DumpFile(target, target.name, summary.size, url, summary.lines)
