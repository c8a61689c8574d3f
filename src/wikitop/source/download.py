"""HTTP downloads from the dump server, politely and reliably.

The server allows 3 connections per client, throttles each, answers 503 when
pushed and blocks generic User-Agents. So: one process-wide connection limit per
host, whose free slots go to the earliest hour waiting; bounded retries with
backoff that honour Retry-After; downloads resumed with Range requests; a file big
enough is fetched in byte ranges over all the connections at once, so that one
hour arrives about as fast as the server lets three; and a file counts as fetched
only once its length and gzip trailers check out.

The retry policy and the settings the server would refuse live here too; requests is
imported where a request is made, so that settings and commands that send none do not
load it.
"""

from __future__ import annotations

import contextlib
import glob
import heapq
import itertools
import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from wikitop import __version__
from wikitop.clock import SYSTEM_CLOCK, Clock
from wikitop.source.fetch import FetchError, NotPublished, ProgressCallback
from wikitop.source.gzipfile import CorruptDump, GzipSummary, StreamVerifier

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = (
    f"wikitop/{__version__} (https://github.com/wikitop/wikitop; wikitop@users.noreply.github.com)"
)
SERVER_CONNECTION_LIMIT = 3

CHUNK_SIZE = 1 << 16
# A file is cut in byte ranges only when each gets at least this much.
MIN_SEGMENT_BYTES = 2 << 20
PLANNING = float("-inf")  # the priority of the HEAD requests that plan a download


class GaveUp(FetchError):
    """Transient failures (resets, stalls, 5xx, 429) went on longer than the retries allow."""

    transient = True


class SourceDown(FetchError):
    """The host cannot be connected to (refused, unknown name, connections timing out):
    it is not asked again until its cool-down is over, so that the next source is tried at
    once. ``newly``: this very request found it down (not an earlier one)."""

    transient = True

    def __init__(self, message: str, newly: bool):
        super().__init__(message)
        self.newly = newly


# How long a host found down is not asked again; then one request probes it.
DOWN_COOLDOWN_SECONDS = 300.0
# Connections timing out this many times in a row make a host down.
DOWN_AFTER_CONNECT_TIMEOUTS = 2


class _DownHosts:
    """Hosts found down, with when and why; shared by every download of the Fetcher."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self._lock = threading.Lock()
        self._down: dict[str, tuple[float, str]] = {}

    def mark(self, host: str, reason: str) -> SourceDown:
        with self._lock:
            self._down[host] = (self.clock.monotonic(), reason)
        return SourceDown(
            f"{host} is down ({reason}); not asked again for {DOWN_COOLDOWN_SECONDS:.0f}s", newly=True
        )

    def check(self, host: str) -> None:
        """SourceDown while the host's cool-down lasts."""
        with self._lock:
            since, reason = self._down.get(host, (None, ""))
        if since is None:
            return
        ago = self.clock.monotonic() - since
        if ago < DOWN_COOLDOWN_SECONDS:
            raise SourceDown(
                f"{host} is down ({reason}, {ago:.0f}s ago); asked again in {DOWN_COOLDOWN_SECONDS - ago:.0f}s",
                newly=False,
            )

    def answered(self, host: str) -> None:
        with self._lock:
            self._down.pop(host, None)


def check_fetch_settings(user_agent: str, max_connections: int, allow_more_connections: bool) -> None:
    """ValueError for settings the dump server would refuse or punish."""
    if max_connections < 1:
        raise ValueError("--max-connections must be at least 1")
    if max_connections > SERVER_CONNECTION_LIMIT and not allow_more_connections:
        raise ValueError(
            f"the dump server allows {SERVER_CONNECTION_LIMIT} connections per client; "
            "pass --allow-more-connections to use more against your own mirror"
        )
    if not user_agent.strip():
        raise ValueError("the User-Agent cannot be empty: Wikimedia requires one with contact details")


@dataclass(frozen=True)
class RetryPolicy:
    """How patient fetching is.

    Retry delays double from ``backoff_base`` up to ``backoff_max``, each drawn from
    the upper half of its range so that threads and processes spread out, and never
    shorter than the server's Retry-After. ``retries`` bounds the failures in a row;
    an attempt that brought new bytes starts the count again. ``deadline`` bounds the
    whole fetch of one file, retries included, from its first request that got a
    connection (None: no bound), so that a server sending a byte now and then, which
    is never a stall, cannot hold a run forever.
    """

    retries: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    connect_timeout: float = 30.0
    stall_timeout: float = 60.0
    refetches: int = 2
    poll_interval: float = 10.0
    poll_max: float = 300.0
    deadline: float | None = 1800.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.refetches < 0:
            raise ValueError("retries cannot be negative")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("the deadline must be positive (None for no deadline)")
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


def check_content_range(
    value: str | None, offset: int, content_length: str | None, last: int | None = None
) -> int | None:
    """Check a 206 answer to ``Range: bytes=OFFSET-`` (``bytes=OFFSET-LAST`` with ``last``);
    returns the file's whole size if given.

    Raises ValueError when the part is not the one asked for: another start, another
    end (without ``last``: one short of the file's end), or a Content-Length that
    disagrees with the range.
    """
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        raise ValueError(f"unreadable Content-Range {value!r}")
    first, sent_last = int(match[1]), int(match[2])
    total = None if match[3] == "*" else int(match[3])
    if first != offset or sent_last < first:
        raise ValueError(f"Content-Range {value!r} does not start at the requested byte {offset}")
    if last is not None and sent_last != last:
        raise ValueError(f"Content-Range {value!r} does not end at the requested byte {last}")
    if last is None and total is not None and sent_last != total - 1:
        raise ValueError(f"Content-Range {value!r} stops before the end of the file")
    if content_length is not None and content_length.strip() != str(sent_last - first + 1):
        raise ValueError(f"Content-Length {content_length} disagrees with Content-Range {value!r}")
    return total


class HostLimiter:
    """At most N requests at a time per host, across every thread that shares it."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._hosts: dict[str, _Slots] = {}

    def slots(self, url: str) -> _Slots:
        host = _host_of(url)
        with self._lock:
            if host not in self._hosts:
                self._hosts[host] = _Slots(self.limit)
            return self._hosts[host]


class _Slots:
    """One host's connection slots. A freed slot goes to the waiting request with the
    lowest priority value, first come first served among equals; downloads of hours pass
    the hour, so that the hours of a range arrive one after the other, each over every
    connection, instead of all together at the end.

    A download that is still getting its requests in line (asking the file's size, then
    one request per byte range) holds back requests of a later priority, so that a later
    hour whose HEAD came back first does not take the connections an earlier hour needs."""

    def __init__(self, limit: int):
        self._free = limit
        self._waiting: list[tuple[float, int]] = []
        self._tickets = itertools.count()
        self._lining_up: list[float] = []
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def lining_up(self, priority: float) -> Iterator[Callable[[], None]]:
        """Hold back requests of a priority after ``priority`` until the function given is
        called (once or more), when the download's requests have all had a slot, or the
        block ends."""
        with self._changed:
            self._lining_up.append(priority)
        released = False

        def in_line() -> None:
            nonlocal released
            with self._changed:
                if not released:
                    released = True
                    self._lining_up.remove(priority)
                    self._changed.notify_all()

        try:
            yield in_line
        finally:
            in_line()

    @contextlib.contextmanager
    def taken(self, priority: float = 0.0) -> Iterator[None]:
        ticket = (priority, next(self._tickets))

        def may_go() -> bool:
            earlier_lining_up = any(other < priority for other in self._lining_up)
            return self._free > 0 and self._waiting[0] == ticket and not earlier_lining_up

        with self._changed:
            heapq.heappush(self._waiting, ticket)
            try:
                self._changed.wait_for(may_go)
            except BaseException:  # interrupted: the ticket must not block those behind it
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._changed.notify_all()
                raise
            heapq.heappop(self._waiting)
            self._free -= 1
            self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self._free += 1
                self._changed.notify_all()


_sessions: dict[int, requests.Session] = {}
_sessions_lock = threading.Lock()


class _Watch:
    """A wall-clock bound on one request, headers included, which requests' timeouts (per
    socket read) do not give: a server dripping its headers a byte at a time never lets a
    read time out. When time is up the connection's socket is shut down, which ends any
    read blocked on it; ``expired`` then says which bound was passed.

    The answer (status line and headers) must be complete within ``answer_seconds`` of the
    request being sent; the whole request, body included, must end by ``deadline`` (seconds
    from now; None: no bound but the answer's)."""

    def __init__(self, answer_seconds: float, deadline: float | None):
        self.answer_seconds = answer_seconds
        self.expired: str | None = None  # "answer" or "deadline"
        self.answering = True  # until the headers are in
        self._deadline_at = None if deadline is None else time.monotonic() + deadline
        self._sock = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._schedule(self._deadline_at, "deadline")

    def sent(self, sock) -> None:
        """The request went out on ``sock``: its answer is awaited from now."""
        with self._lock:
            self._sock = sock
        answer_at = time.monotonic() + self.answer_seconds
        if self._deadline_at is None or answer_at < self._deadline_at:
            self._schedule(answer_at, "answer")

    def answered(self) -> None:
        """The headers are in: only the deadline is left."""
        self.answering = False
        self._schedule(self._deadline_at, "deadline")

    def cancel(self) -> None:
        self._schedule(None, "")

    def _schedule(self, at: float | None, bound: str) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
            if at is not None and self.expired is None:
                self._timer = threading.Timer(max(0.0, at - time.monotonic()), self._expire, (bound,))
                self._timer.daemon = True
                self._timer.start()

    def _expire(self, bound: str) -> None:
        with self._lock:
            self.expired = bound
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


_current_watch = threading.local()


def _watched_pool_classes() -> dict[str, type]:
    """urllib3 pools whose connections tell the thread's current _Watch when a request has
    gone out and when its headers are in."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Watched:
        def getresponse(self, *args, **kwargs):
            watch = getattr(_current_watch, "watch", None)
            if watch is not None:
                watch.sent(self.sock)
            response = super().getresponse(*args, **kwargs)
            if watch is not None:
                watch.answered()
            return response

    class WatchedHTTPConnection(Watched, HTTPConnection):
        pass

    class WatchedHTTPSConnection(Watched, HTTPSConnection):
        pass

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    return {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}


def _watched_adapter(connections_per_host: int) -> requests.adapters.HTTPAdapter:
    import requests

    pool_classes = _watched_pool_classes()

    class WatchedAdapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pool_classes

        def proxy_manager_for(self, proxy, **proxy_kwargs):
            manager = super().proxy_manager_for(proxy, **proxy_kwargs)
            if not proxy.lower().startswith("socks"):  # SOCKS managers bring pools of their own
                manager.pool_classes_by_scheme = pool_classes
            return manager

    return WatchedAdapter(pool_connections=16, pool_maxsize=connections_per_host, pool_block=True, max_retries=0)


def _shared_session(connections_per_host: int) -> requests.Session:
    """The process's HTTP session whose pools hold at most ``connections_per_host`` per host.

    A server counts idle keep-alive connections like busy ones, so every Fetcher of
    the process draws from the same blocking pools: together they can never hold
    more than the limit open to one host.
    """
    import requests

    with _sessions_lock:
        if connections_per_host not in _sessions:
            session = requests.Session()
            adapter = _watched_adapter(connections_per_host)
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
    def __init__(self, message: str, retry_after: float | None = None, connect_timeout: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.connect_timeout = connect_timeout


def _host_of(url: str) -> str:
    """The host and port a URL asks, without its user and password: the key of what is kept
    per host, and the name messages give it."""
    return urlsplit(url).netloc.rpartition("@")[2]


def _cannot_connect(error: BaseException) -> bool:
    """A connection that could not be made at all: refused, unreachable, a name that does not resolve."""
    from urllib3.exceptions import NewConnectionError  # (a connection that timed out is not one)

    while error is not None:
        if isinstance(error, NewConnectionError):
            return True
        inner = getattr(error, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in getattr(error, "args", ()) if isinstance(arg, BaseException)), None)
        error = inner
    return False


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
        min_segment_bytes: int = MIN_SEGMENT_BYTES,
        clock: Clock = SYSTEM_CLOCK,
    ):
        check_fetch_settings(user_agent, max_connections, allow_more_connections)
        self.user_agent = user_agent
        self.max_connections = max_connections
        self.policy = policy or RetryPolicy()
        self.min_segment_bytes = min_segment_bytes
        self.clock = clock
        self.limiter = HostLimiter(max_connections)
        self._hosts_without_head: set[str] = set()
        self.down_hosts = _DownHosts(clock)
        self.session = _shared_session(max(max_connections, SERVER_CONNECTION_LIMIT))

    @contextlib.contextmanager
    def _request(
        self, method: str, url: str, headers: dict | None = None, stream: bool = False,
        deadline: _Deadline | None = None,
    ) -> Iterator[requests.Response]:
        """The response, closed after the block; the request is bounded in wall-clock time
        (see _Watch): its answer by the stall timeout, all of it by ``deadline``."""
        import requests

        timeout = (self.policy.connect_timeout, self.policy.stall_timeout)
        watch = _Watch(self.policy.stall_timeout, deadline.remaining() if deadline else None)
        _current_watch.watch = watch
        try:
            try:
                response = self.session.request(
                    method, url, headers={"User-Agent": self.user_agent, **(headers or {})},
                    timeout=timeout, allow_redirects=True, stream=stream,
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                self._raise_if_expired(watch, url, deadline)
                if _cannot_connect(error):
                    raise self.down_hosts.mark(_host_of(url), _root_cause(error)) from None
                raise _Retryable(f"{type(error).__name__} from {url}: {_root_cause(error)}",
                                 connect_timeout=isinstance(error, requests.ConnectTimeout)) from None
            except requests.RequestException as error:
                raise FetchError(f"cannot request {url}: {error}") from None
            finally:
                _current_watch.watch = None
            with response:
                try:
                    yield response
                except _Retryable:
                    self._raise_if_expired(watch, url, deadline)
                    raise
        finally:
            watch.cancel()

    def _raise_if_expired(self, watch: _Watch, url: str, deadline: _Deadline | None) -> None:
        """The error of a request the watchdog cut, naming the host that did not answer in time."""
        host = _host_of(url)
        if watch.expired == "answer":
            raise _Retryable(
                f"{host} sent no complete answer (status and headers) within {watch.answer_seconds:g}s "
                f"of the request for {url} (--stall-timeout)"
            )
        if watch.expired == "deadline" and deadline is not None:
            still = "sending its answer's headers" if watch.answering else "sending the file"
            raise deadline.exceeded(f"{host} was still {still}")

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

    def _with_retries(
        self,
        url: str,
        attempt: Callable[[], object],
        progress_mark: Callable[[], int] | None = None,
        priority: float = 0.0,
        stop: threading.Event | None = None,
        deadline: _Deadline | None = None,
    ):
        """Run ``attempt`` in a connection slot until it succeeds, the failures in a row
        exceed the retries or the deadline passes; a slot is waited for with ``priority``
        (lower goes first). Setting ``stop`` ends a wait between attempts with _Stopped.
        A host found down (see _DownHosts) is not retried: SourceDown at once."""
        host = _host_of(url)
        failures = connect_timeouts = 0
        best_mark = progress_mark() if progress_mark else 0
        while True:
            self.down_hosts.check(host)
            try:
                with self.limiter.slots(url).taken(priority):
                    if deadline:
                        deadline.start()
                        deadline.check()
                    result = attempt()
                self.down_hosts.answered(host)
                return result
            except _Retryable as error:
                connect_timeouts = connect_timeouts + 1 if error.connect_timeout else 0
                if connect_timeouts >= DOWN_AFTER_CONNECT_TIMEOUTS:
                    raise self.down_hosts.mark(host, f"{connect_timeouts} connection attempts timed out") from None
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
                if deadline:
                    deadline.check(delay, error)
                log.warning("%s; retrying in %.1fs (%d/%d)", error, delay, failures, self.policy.retries)
                if stop is None:
                    self.clock.sleep(delay)
                elif self.clock.wait(stop, delay):
                    raise _Stopped from None

    def exists(self, url: str) -> bool:
        """A HEAD request: True if the file is there, False on 404.

        A host that does not do HEAD (405, 501) is asked for the first byte instead, from
        then on; the connection is closed without reading more, whatever the server sends.
        """
        host = _host_of(url)

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
        import requests

        deadline = _Deadline(url, self.policy.deadline, self.clock)

        def get() -> bytes:
            with self._request("GET", url, deadline=deadline) as response:
                self._check_status(response, url)
                try:
                    return response.content
                except requests.RequestException as error:
                    raise _Retryable(f"download of {url} broke off: {_root_cause(error)}") from None

        return self._with_retries(url, get, deadline=deadline)

    def ranged_size(self, url: str, deadline: _Deadline | None = None) -> int | None:
        """The file's size if the server says (HEAD) it serves byte ranges of it; None if
        not, if the host does not do HEAD, or if it refuses (the GET that follows tells
        why, with the server's own words). Missing files and busy servers raise as for GET.

        The HEAD goes before any waiting download, so that a file's ranges wait in line
        with their priority long before a connection is free."""
        host = _host_of(url)
        if host in self._hosts_without_head:
            return None

        def head() -> int | None:
            with self._request("HEAD", url, headers={"Accept-Encoding": "identity"}, deadline=deadline) as response:
                if response.status_code in (405, 501):
                    self._hosts_without_head.add(host)
                    return None
                try:
                    self._check_status(response, url)
                except (NotPublished, _Retryable):
                    raise
                except FetchError:
                    return None
                length = response.headers.get("Content-Length", "").strip()
                ranges = response.headers.get("Accept-Ranges", "").strip().lower()
                return int(length) if ranges == "bytes" and length.isdigit() else None

        return self._with_retries(url, head, priority=PLANNING, deadline=deadline)

    def download(
        self, url: str, target: Path, progress: ProgressCallback | None = None, priority: float = 0.0
    ) -> GzipSummary:
        """Download url to target; the file appears at ``target`` only complete and verified.

        A file of at least two ``min_segment_bytes`` is fetched in as many byte ranges
        as connections are allowed (up to one per ``min_segment_bytes``), when the server
        serves ranges; otherwise in one stream. Either way, what an interrupted run
        fetched is resumed. A file that fails verification (its length, CRC or gzip
        structure) is fetched again from zero, up to ``policy.refetches`` times.
        Connection slots are waited for with ``priority`` (lower goes first). Past the
        policy's deadline, GaveUp; what was fetched is kept to be resumed.
        """
        partial = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        fetches = 0
        in_ranges = self.max_connections > 1
        deadline = _Deadline(url, self.policy.deadline, self.clock)
        while True:
            fetches += 1
            with self.limiter.slots(url).lining_up(priority) as in_line:
                transfer = self._transfer(url, partial, progress, priority, in_ranges, in_line, deadline)
                try:
                    summary = transfer.run(target.name)
                except _RangesRefused as error:
                    log.info("%s; fetching it in one stream", error)
                    transfer.discard()
                    in_ranges, fetches = False, fetches - 1
                    continue
                except CorruptDump as error:
                    empty = transfer.received() == 0
                    transfer.discard()
                    if fetches > self.policy.refetches:
                        if empty:
                            raise FetchError(
                                f"{url} came with an empty body (0 bytes) {fetches} times in a row, "
                                "not a gzip file"
                            ) from None
                        raise FetchError(f"{url}: {error}; fetched {fetches} times, bad every time") from None
                    log.warning("%s: %s; fetching it again", url, error)
                    continue
            os.replace(partial, target)
            return summary

    def _transfer(
        self,
        url: str,
        partial: Path,
        progress: ProgressCallback | None,
        priority: float,
        in_ranges: bool,
        in_line: Callable[[], None],
        deadline: _Deadline,
    ) -> _Transfer | _RangedTransfer:
        # A stream left by an earlier run is resumed as a stream.
        size = self.ranged_size(url, deadline) if in_ranges and not partial.exists() else None
        count = min(self.max_connections, size // self.min_segment_bytes) if size else 1
        if count > 1:
            return _RangedTransfer(self, url, partial, progress, priority, in_line, deadline, total=size, count=count)
        _RangedTransfer.remove_ranges(partial)
        return _Transfer(self, url, partial, progress, priority, in_line, deadline)


class _Deadline:
    """When the fetch of one file must be over: ``seconds`` (None: never) after its first
    request got a connection, so that a download waiting behind earlier hours' is not late.
    Each request is cut when it passes (see _Watch), headers and silent reads included."""

    def __init__(self, url: str, seconds: float | None, clock: Clock):
        self.url = url
        self.seconds = seconds
        self.clock = clock
        self._end: float | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self.seconds is not None and self._end is None:
                self._end = self.clock.monotonic() + self.seconds

    def remaining(self) -> float | None:
        """Seconds left (None: no bound, or not started)."""
        if self._end is None:
            return None
        return max(0.0, self._end - self.clock.monotonic())

    def check(self, pause: float = 0.0, error: Exception | str | None = None) -> None:
        """GaveUp if the deadline has passed, or will have after ``pause`` seconds."""
        if self._end is not None and self.clock.monotonic() + pause > self._end:
            raise self.exceeded(error)

    def exceeded(self, error: Exception | str | None = None) -> GaveUp:
        cause = f"; last error: {error}" if error else ""
        return GaveUp(
            f"giving up on {self.url}: not fetched within the deadline of {self.seconds:g}s (--deadline){cause}"
        )


class _RangesRefused(Exception):
    """The server answered a Range request with the whole file."""


class _Stopped(Exception):
    """Another range of the file failed: this one stops too."""


def _receive(
    response: requests.Response, url: str, handle, done: int, on_chunk: Callable[[bytes], None], deadline: _Deadline
) -> int:
    """Write the response's body to handle as it arrives; returns the byte reached."""
    import requests
    import urllib3

    while True:
        deadline.check()
        try:
            # read1: whatever has arrived, so that a stall or reset loses no received byte.
            chunk = response.raw.read1(CHUNK_SIZE, decode_content=False)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as error:
            raise _Retryable(f"download of {url} broke off at byte {done}: {_root_cause(error)}") from None
        if not chunk:
            return done
        handle.write(chunk)
        done += len(chunk)
        on_chunk(chunk)


def _size(path: Path) -> int:
    """Bytes received so far into path (0 before the first)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class _FileTransfer:
    """What every way of fetching a file into ``partial`` is given. ``in_line`` is called
    once each of the transfer's requests has had a connection slot (see _Slots.lining_up)."""

    def __init__(
        self,
        fetcher: Fetcher,
        url: str,
        partial: Path,
        progress: ProgressCallback | None,
        priority: float,
        in_line: Callable[[], None],
        deadline: _Deadline,
    ):
        self.fetcher = fetcher
        self.url = url
        self.partial = partial
        self.progress = progress
        self.priority = priority
        self.in_line = in_line
        self.deadline = deadline


class _Transfer(_FileTransfer):
    """One fetch of a file into ``partial`` in one stream, resumed with Range requests over
    as many attempts as it takes.

    The bytes are verified as they arrive, so that a connection is never idle while a
    finished file is checked, and a corrupt one is dropped at the first bad byte.
    """

    total: int | None = None  # the whole file's size, as first announced
    verifier: StreamVerifier | None = None

    def run(self, name: str) -> GzipSummary:
        self.fetcher._with_retries(
            self.url, self.attempt, progress_mark=self.received, priority=self.priority, deadline=self.deadline
        )
        return (self.verifier or StreamVerifier()).finish(name)

    def received(self) -> int:
        return _size(self.partial)

    def discard(self) -> None:
        self.partial.unlink(missing_ok=True)

    def _restart(self, reason: str) -> _Retryable:
        self.partial.unlink(missing_ok=True)
        self.total = None
        self.verifier = None
        return _Retryable(f"{self.url}: {reason}; starting again from byte 0")

    def attempt(self) -> None:
        self.in_line()
        url, offset = self.url, self.received()
        # identity: a server or proxy that gzips the .gz again must not get it decoded for us.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self.fetcher._request("GET", url, headers=headers, stream=True, deadline=self.deadline) as response:
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
            with open(self.partial, mode) as handle:
                done = _receive(response, url, handle, offset, self._arrived, self.deadline)
        if self.total is not None and done != self.total:
            raise _Retryable(f"download of {url} stopped at byte {done} of {self.total}")

    def _arrived(self, chunk: bytes) -> None:
        self.verifier.feed(chunk)
        if self.progress:
            self.progress(self.verifier.size, self.total)


@dataclass(frozen=True)
class _Range:
    """Bytes first..last of a file, fetched into their own file next to the partial one."""

    first: int
    last: int
    path: Path

    def received(self) -> int:
        return _size(self.path)


class _RangedTransfer(_FileTransfer):
    """One fetch of a file of known size in byte ranges, each over its own connection and
    resumed on its own; once all have arrived they are joined into ``partial``. The first
    range is verified as it arrives and the others as they are joined, so that only two
    thirds of the file are checked after its last byte.

    A range's file is named after its bytes and the file's size
    (``….gz.part-1000-1999-of-3000``), so that a rerun resumes exactly what fits.
    """

    def __init__(self, *args, total: int, count: int):
        super().__init__(*args)
        self.total = total
        bounds = [total * i // count for i in range(count + 1)]
        self.ranges = [
            _Range(first, end - 1, self.partial.with_name(f"{self.partial.name}-{first}-{end - 1}-of-{total}"))
            for first, end in itertools.pairwise(bounds)
        ]
        self.remove_ranges(self.partial, keep={r.path for r in self.ranges})
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._arrived = self.received()
        self._verifier = StreamVerifier()  # of the bytes of the first range so far
        self._had_slot: set[int] = set()  # ranges by their first byte

    @staticmethod
    def remove_ranges(partial: Path, keep: set[Path] = frozenset()) -> None:
        """Delete the range files of partial's download but those in keep."""
        for path in partial.parent.glob(glob.escape(partial.name) + "-*-of-*"):
            if path not in keep:
                path.unlink(missing_ok=True)

    def received(self) -> int:
        return sum(r.received() for r in self.ranges)

    def discard(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.remove_ranges(self.partial)

    def run(self, name: str) -> GzipSummary:
        with ThreadPoolExecutor(len(self.ranges), thread_name_prefix="range") as pool:
            fetches = [pool.submit(self._fetch, r) for r in self.ranges]
            wait(fetches, return_when=FIRST_EXCEPTION)
            self._stop.set()
        # The error of the range that failed, not the _Stopped it caused in the others.
        errors = [f.exception() for f in fetches if f.exception() is not None]
        failure = next((error for error in errors if not isinstance(error, _Stopped)), None)
        if failure is not None:
            raise failure
        return self._join(name)

    def _fetch(self, part: _Range) -> None:
        self.fetcher._with_retries(
            self.url, lambda: self._attempt(part), progress_mark=part.received, priority=self.priority,
            stop=self._stop, deadline=self.deadline,
        )

    def _attempt(self, part: _Range) -> None:
        with self._lock:
            self._had_slot.add(part.first)
            if len(self._had_slot) == len(self.ranges):
                self.in_line()
        first_range = part is self.ranges[0]
        if first_range and self._verifier.size != part.received():  # left by an earlier run
            self._verifier = StreamVerifier()
            if part.path.exists():
                self._verifier.feed_file(part.path)
        offset = part.first + part.received()
        if offset > part.last:
            return
        if self._stop.is_set():
            raise _Stopped
        url = self.url
        headers = {"Accept-Encoding": "identity", "Range": f"bytes={offset}-{part.last}"}
        with self.fetcher._request("GET", url, headers=headers, stream=True, deadline=self.deadline) as response:
            if response.status_code == 416:
                raise CorruptDump(f"the file is no longer {self.total} bytes long (416 for bytes {offset}-)")
            self.fetcher._check_status(response, url)
            if response.status_code != 206:
                raise _RangesRefused(f"{url} ignored a Range request")
            try:
                total = check_content_range(
                    response.headers.get("Content-Range"), offset, response.headers.get("Content-Length"), part.last
                )
            except ValueError as error:
                raise _Retryable(f"{url}: bad answer to a Range request ({error})") from None
            if total is not None and total != self.total:
                raise CorruptDump(f"the file changed size while being fetched ({self.total} -> {total} bytes)")
            with open(part.path, "ab") as handle:
                verifier = self._verifier if first_range else None
                done = _receive(
                    response, url, handle, offset, lambda chunk: self._arrive(chunk, verifier), self.deadline
                )
        if done != part.last + 1:
            raise _Retryable(f"download of {url} stopped at byte {done} of its range {part.first}-{part.last}")

    def _arrive(self, chunk: bytes, verifier: StreamVerifier | None) -> None:
        if verifier is not None:
            verifier.feed(chunk)
        if self._stop.is_set():
            raise _Stopped
        with self._lock:
            self._arrived += len(chunk)
            if self.progress:
                self.progress(self._arrived, self.total)

    def _join(self, name: str) -> GzipSummary:
        first, *others = self.ranges
        os.replace(first.path, self.partial)
        with open(self.partial, "ab") as joined:
            for part in others:
                with open(part.path, "rb") as source:
                    while chunk := source.read(1 << 20):
                        self._verifier.feed(chunk)
                        joined.write(chunk)
        self.remove_ranges(self.partial)
        return self._verifier.finish(name)
