"""A local imitation of dumps.wikimedia.org that can be told to misbehave.

Serves files from a directory laid out like the dump site, over plain HTTP/1.1
with keep-alive, and imitates the real server's rules: at most
``max_connections`` open connections (the next one gets 503), a required
User-Agent substring (403 "Blocked user agent" otherwise) and per-connection
throttling after the first MiB of a response.

Faults are queued per path suffix with ``add_faults`` and consumed by the next
matching requests, in order. Status and header faults apply to GET and HEAD; all other
faults change the body, so they apply to GET only: a HEAD request leaves them
queued for the next GET.

Run ``python tests/dumpserver.py ROOT --port 0 --rate 5000000`` to serve ROOT in
the foreground (for benchmarks); the first line printed is the base URL.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import signal
import socket
import struct
import sys
import termios
import threading
import time
from dataclasses import dataclass
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import unquote, urlsplit

CHUNK_SIZE = 1 << 16
THROTTLE_AFTER_BYTES = 1 << 20
KEEPALIVE_TIMEOUT_S = 30.0
# A refused connection still gets its request read so the 503 is a proper answer.
REFUSED_READ_TIMEOUT_S = 2.0
# A client that closes a connection and at once opens another must not be refused
# only because the server has not yet seen the close.
CLOSE_GRACE_S = 0.1
STOP_JOIN_TIMEOUT_S = 5.0
RESET_DRAIN_TIMEOUT_S = 2.0

FaultKind = Literal[
    "status", "reset_after", "stall_after", "truncate", "corrupt",
    "wrong_length", "ignore_range", "empty", "slow", "drip", "drip_headers",
]  # fmt: skip


@dataclass(frozen=True)
class Fault:
    """One misbehaviour, applied to the next ``count`` matching requests.

    Build with the class methods; only the fields of the chosen kind matter.
    """

    kind: FaultKind
    count: int = 1
    code: int = 200
    retry_after: int | None = None
    body: bytes = b""
    nbytes: int = 0
    seconds: float = 0.0
    offset: int = 0
    delta: int = 0
    rate: float = 0.0

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("a fault must apply to at least one request")

    @property
    def applies_to_head(self) -> bool:
        return self.kind in ("status", "drip_headers")

    @classmethod
    def status(
        cls, code: int, count: int = 1, retry_after: int | None = None, body: bytes = b""
    ) -> Fault:
        """Answer ``code`` with ``body`` (and ``Retry-After`` if given) instead of the file."""
        return cls("status", count, code=code, retry_after=retry_after, body=body)

    @classmethod
    def reset_after(cls, nbytes: int, count: int = 1) -> Fault:
        """Send the headers and ``nbytes`` of the body, then reset the TCP connection."""
        return cls("reset_after", count, nbytes=nbytes)

    @classmethod
    def stall_after(cls, nbytes: int, seconds: float, count: int = 1) -> Fault:
        """Send ``nbytes`` of the body, send nothing for ``seconds``, then close."""
        return cls("stall_after", count, nbytes=nbytes, seconds=seconds)

    @classmethod
    def truncate(cls, nbytes: int, count: int = 1) -> Fault:
        """Serve the file as if it were only its first ``nbytes`` (honest Content-Length)."""
        return cls("truncate", count, nbytes=nbytes)

    @classmethod
    def corrupt(cls, offset: int, count: int = 1) -> Fault:
        """Flip the byte at ``offset`` of the file (negative: from its end) if it is sent."""
        return cls("corrupt", count, offset=offset)

    @classmethod
    def wrong_length(cls, delta: int, count: int = 1) -> Fault:
        """Announce Content-Length + ``delta``, send the real body, then close."""
        return cls("wrong_length", count, delta=delta)

    @classmethod
    def ignore_range(cls, count: int = 1) -> Fault:
        """Answer a Range request with 200 and the whole file."""
        return cls("ignore_range", count)

    @classmethod
    def empty(cls, count: int = 1) -> Fault:
        """Answer 200 with a zero-length body."""
        return cls("empty", count)

    @classmethod
    def slow(cls, rate_bytes_per_s: float, count: int = 1) -> Fault:
        """Send the whole body at ``rate_bytes_per_s``, from its first byte."""
        return cls("slow", count, rate=rate_bytes_per_s)

    @classmethod
    def drip(cls, bytes_per_s: float, count: int = 1) -> Fault:
        """Send the whole body one byte at a time, ``bytes_per_s`` a second: never a stall."""
        return cls("drip", count, rate=bytes_per_s)

    @classmethod
    def drip_headers(cls, bytes_per_s: float, count: int = 1) -> Fault:
        """Send the status line and headers one byte at a time, ``bytes_per_s`` a second (then
        the body as usual): never a stall, so only a wall-clock bound ends the wait."""
        return cls("drip_headers", count, rate=bytes_per_s)


@dataclass
class RequestLog:
    """One request as the server saw and answered it (times from time.monotonic)."""

    method: str
    path: str
    headers: Message
    connection_id: int
    started: float
    status: int | None = None
    bytes_sent: int = 0  # body bytes only
    ended: float | None = None  # None while the response is still going out
    fault: Fault | None = None

    @property
    def range(self) -> str | None:
        return self.headers.get("Range")

    @property
    def user_agent(self) -> str | None:
        return self.headers.get("User-Agent")


@dataclass
class _PendingFault:
    path_suffix: str
    fault: Fault
    remaining: int


@dataclass(eq=False)
class _Connection:
    id: int
    sock: socket.socket
    refused: bool


class _RangeNotSatisfiable(Exception):
    pass


_BYTE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _parse_byte_range(header: str | None, total: int) -> tuple[int, int] | None:
    """The inclusive (first, last) bytes asked for, or None to send the whole file.

    Only single ranges are understood; anything else is ignored, as RFC 9110 allows.
    """
    match = _BYTE_RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return None
    first_text, last_text = match.groups()
    if first_text:
        first = int(first_text)
        last = min(int(last_text), total - 1) if last_text else total - 1
        if last_text and int(last_text) < first:
            return None
    else:  # a suffix range: the last N bytes
        first, last = max(0, total - int(last_text)), total - 1
    if first >= total or first > last:
        raise _RangeNotSatisfiable
    return first, last


class _Pacer:
    """Sleeps so that the bytes after the first ``free_bytes`` flow at ``rate`` bytes/s."""

    def __init__(
        self, rate: float | None, free_bytes: int, stopping: threading.Event, chunk_size: int | None = None
    ):
        self.rate = rate
        self.free_bytes = free_bytes
        self.stopping = stopping
        self.sent = 0
        self.clock_start: float | None = None
        # Small chunks at low rates keep the pacing smooth.
        self.chunk_size = chunk_size or (CHUNK_SIZE if rate is None else max(1024, min(CHUNK_SIZE, int(rate / 20))))

    def wait_to_send(self, nbytes: int) -> None:
        throttled = self.sent + nbytes - self.free_bytes
        if self.rate is not None and throttled > 0:
            if self.clock_start is None:
                self.clock_start = time.monotonic()
            delay = self.clock_start + throttled / self.rate - time.monotonic()
            if delay > 0 and self.stopping.wait(delay):
                raise ConnectionAbortedError("the server is stopping")
        self.sent += nbytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dumpserver"
    timeout = KEEPALIVE_TIMEOUT_S
    # Faults are about exact byte counts on the wire: no bytes held back by Nagle.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def __init__(self, request, client_address, server, *, connection: _Connection):
        self.tcp = connection
        self.log: RequestLog | None = None
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        super().setup()
        if self.tcp.refused:
            self.connection.settimeout(REFUSED_READ_TIMEOUT_S)

    def log_message(self, format, *args) -> None:
        """Silent: requests are recorded in DumpServer.requests instead."""

    def do_GET(self) -> None:
        self._serve(head_only=False)

    def do_HEAD(self) -> None:
        self._serve(head_only=True)

    def _serve(self, head_only: bool) -> None:
        owner = self.server.dump_server
        path = urlsplit(self.path).path
        self.log = owner._record(self.command, path, self.headers, self.tcp.id)
        if head_only and owner._heads_together is not None:
            owner._heads_together.wait()
        try:
            if self.tcp.refused:
                self._send_simple(503, b"Too many connections\n", head_only, {"Connection": "close"})
            elif not owner._user_agent_allowed(self.headers.get("User-Agent", "")):
                self._send_simple(403, b"Blocked user agent", head_only)
            elif head_only and not owner.head_allowed:
                self._send_simple(405, b"Method Not Allowed\n", head_only, {"Allow": "GET"})
            else:
                fault = owner._take_fault(path, self.command)
                self.log.fault = fault
                if fault is not None and fault.kind == "status":
                    extra = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
                    self._send_simple(fault.code, fault.body, head_only, extra)
                else:
                    self._send_file(owner, path, head_only, fault)
        except OSError:  # the client went away, or the server is stopping
            self.close_connection = True
        finally:
            self.log.ended = time.monotonic()

    def _start_response(self, code: int) -> None:
        self.log.status = code
        self.send_response(code)

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.log.bytes_sent += len(data)

    def _send_simple(
        self, code: int, body: bytes, head_only: bool, extra_headers: dict[str, str] | None = None
    ) -> None:
        self._start_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head_only:
            self._write(body)

    def _send_file(self, owner: DumpServer, path: str, head_only: bool, fault: Fault | None) -> None:
        file = owner._resolve(path)
        if file is None:
            self._send_simple(404, b"Not Found\n", head_only)
            return
        kind = fault.kind if fault else None
        with open(file, "rb") as handle:
            body = self._send_file_headers(handle, fault, head_only)
            if body is None or head_only:
                return
            first, length = body
            size = os.fstat(handle.fileno()).st_size
            if kind in ("reset_after", "stall_after"):
                length = min(length, fault.nbytes)
            corrupt_at = None
            if kind == "corrupt":
                corrupt_at = fault.offset if fault.offset >= 0 else size + fault.offset
            if kind == "slow":
                pacer = _Pacer(fault.rate, 0, owner._stopping)
            elif kind == "drip":
                pacer = _Pacer(fault.rate, 0, owner._stopping, chunk_size=1)
            else:
                pacer = _Pacer(owner.rate_bytes_per_s, owner.throttle_after_bytes, owner._stopping)
            self._stream(handle, first, length, corrupt_at, pacer)
        if kind == "reset_after":
            self._abort_connection()
        elif kind == "stall_after":
            owner._stopping.wait(fault.seconds)
            self.close_connection = True
        elif kind == "wrong_length":
            self.close_connection = True

    def _send_file_headers(
        self, handle: BinaryIO, fault: Fault | None, head_only: bool
    ) -> tuple[int, int] | None:
        """Send the status and headers; returns the (first byte, length) of the body to send."""
        kind = fault.kind if fault else None
        stat = os.fstat(handle.fileno())
        total = stat.st_size
        if kind == "truncate":
            total = min(total, fault.nbytes)
        elif kind == "empty":
            total = 0
        range_header = None if kind in ("ignore_range", "empty") else self.headers.get("Range")
        try:
            span = _parse_byte_range(range_header, total)
        except _RangeNotSatisfiable:
            self._send_simple(416, b"", head_only, {"Content-Range": f"bytes */{total}"})
            return None
        first, last = span or (0, total - 1)
        length = last - first + 1
        self._start_response(206 if span else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length + (fault.delta if kind == "wrong_length" else 0)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
        if span:
            self.send_header("Content-Range", f"bytes {first}-{last}/{total}")
        if kind == "drip_headers":
            self._drip_headers(fault.rate)
        self.end_headers()
        return first, length

    def _drip_headers(self, bytes_per_s: float) -> None:
        """Send the headers buffered so far one byte at a time; end_headers sends the rest."""
        stopping = self.server.dump_server._stopping
        for byte in b"".join(self._headers_buffer):
            if stopping.wait(1 / bytes_per_s):
                raise ConnectionAbortedError("the server is stopping")
            self.wfile.write(bytes([byte]))
        self._headers_buffer = []

    def _stream(
        self, handle: BinaryIO, first: int, length: int, corrupt_at: int | None, pacer: _Pacer
    ) -> None:
        handle.seek(first)
        position, end = first, first + length
        while position < end:
            data = handle.read(min(pacer.chunk_size, end - position))
            if not data:
                raise ConnectionAbortedError("the file shrank while being sent")
            if corrupt_at is not None and position <= corrupt_at < position + len(data):
                flipped = bytearray(data)
                flipped[corrupt_at - position] ^= 0xFF
                data = bytes(flipped)
            pacer.wait_to_send(len(data))
            self._write(data)
            position += len(data)

    def _abort_connection(self) -> None:
        """Close with SO_LINGER 0, so that the kernel sends RST instead of FIN."""
        self._wait_until_acknowledged(RESET_DRAIN_TIMEOUT_S)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The reader made by makefile() holds a reference that would delay the real close.
        self.rfile.close()
        self.connection.close()
        self.close_connection = True

    def _wait_until_acknowledged(self, timeout: float) -> None:
        """Wait until the client has acknowledged every byte sent (Linux's TIOCOUTQ
        counts the unacknowledged ones): a reset discards whatever is still queued."""
        deadline = time.monotonic() + timeout
        stopping = self.server.dump_server._stopping
        while time.monotonic() < deadline:
            try:
                queued = fcntl.ioctl(self.connection.fileno(), termios.TIOCOUTQ, bytes(4))
            except OSError:  # no such ioctl for sockets here: best effort
                return
            if struct.unpack("i", queued)[0] == 0 or stopping.wait(0.005):
                return


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], dump_server: DumpServer):
        self.dump_server = dump_server
        super().__init__(address, _Handler)

    def process_request(self, request, client_address) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self.dump_server._track_thread(thread)
        thread.start()

    def process_request_thread(self, request, client_address) -> None:
        owner = self.dump_server
        connection = owner._admit(request)
        try:
            if connection is not None:
                _Handler(request, client_address, self, connection=connection)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            if connection is not None:
                owner._release(connection)
            self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # dropped connections are expected here
            super().handle_error(request, client_address)


class DumpServer:
    """The fault-injecting dump server; see the module docstring."""

    def __init__(
        self,
        root: Path,
        *,
        max_connections: int = 3,
        rate_bytes_per_s: float | None = None,
        throttle_after_bytes: int = THROTTLE_AFTER_BYTES,
        required_user_agent_substring: str | None = "wikitop",
        head_allowed: bool = True,
        port: int = 0,
    ):
        self.root = Path(root).resolve()
        self.max_connections = max_connections
        self.rate_bytes_per_s = rate_bytes_per_s
        self.throttle_after_bytes = throttle_after_bytes
        self.required_user_agent_substring = required_user_agent_substring
        self.head_allowed = head_allowed
        self.port = port
        self.peak_connections = 0
        self.refused_connections = 0
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._requests: list[RequestLog] = []
        self._pending: list[_PendingFault] = []
        self._open: set[_Connection] = set()
        self._next_connection_id = 0
        self._threads: list[threading.Thread] = []
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._heads_together: threading.Barrier | None = None

    def answer_heads_together(self, count: int, timeout: float = 30.0) -> None:
        """Answer no HEAD request until ``count`` of them have arrived (then all at once), so
        that a test knows every client has asked before any is answered."""
        self._heads_together = threading.Barrier(count, timeout=timeout)

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[RequestLog]:
        """A snapshot of the requests so far, in the order they arrived."""
        with self._lock:
            return list(self._requests)

    def answered_requests(self, timeout: float = 5.0) -> list[RequestLog]:
        """The requests so far once each has its end recorded: a client may have read a whole
        response before the server's thread notes that it ended."""
        deadline = time.monotonic() + timeout
        while any(r.ended is None for r in self.requests):
            if time.monotonic() > deadline:
                raise TimeoutError(f"requests still being answered after {timeout} s")
            time.sleep(0.005)
        return self.requests

    def start(self) -> DumpServer:
        if self._httpd is not None:
            raise RuntimeError("the server was already started")
        self._httpd = _HTTPServer(("127.0.0.1", self.port), self)
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut every open connection (stalled ones too) and join the threads."""
        if self._httpd is None or self._stopping.is_set():
            return
        with self._lock:
            self._stopping.set()
            self._lock.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._open)
            threads = list(self._threads)
        for connection in connections:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed by its handler
                pass
        deadline = time.monotonic() + STOP_JOIN_TIMEOUT_S
        for thread in [*threads, self._serve_thread]:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> DumpServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def add_faults(self, path_suffix: str, *faults: Fault) -> None:
        """Queue faults for the next requests whose path ends with ``path_suffix``."""
        with self._lock:
            self._pending.extend(_PendingFault(path_suffix, fault, fault.count) for fault in faults)

    def reset_stats(self) -> None:
        with self._lock:
            self._requests.clear()
            self.peak_connections = len(self._open)
            self.refused_connections = 0

    def _track_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def _admit(self, sock: socket.socket) -> _Connection | None:
        """Count a new connection; None if the server is stopping."""
        with self._lock:
            self._lock.wait_for(
                lambda: self._stopping.is_set() or len(self._open) < self.max_connections,
                timeout=CLOSE_GRACE_S,
            )
            if self._stopping.is_set():
                return None
            self._next_connection_id += 1
            refused = len(self._open) >= self.max_connections
            connection = _Connection(self._next_connection_id, sock, refused)
            self._open.add(connection)
            self.peak_connections = max(self.peak_connections, len(self._open))
            if refused:
                self.refused_connections += 1
            return connection

    def _release(self, connection: _Connection) -> None:
        with self._lock:
            self._open.discard(connection)
            self._lock.notify_all()

    def _record(self, method: str, path: str, headers: Message, connection_id: int) -> RequestLog:
        entry = RequestLog(method, path, headers, connection_id, started=time.monotonic())
        with self._lock:
            self._requests.append(entry)
        return entry

    def _user_agent_allowed(self, user_agent: str) -> bool:
        required = self.required_user_agent_substring
        return required is None or required in user_agent

    def _take_fault(self, path: str, method: str) -> Fault | None:
        with self._lock:
            for index, pending in enumerate(self._pending):
                if not path.endswith(pending.path_suffix):
                    continue
                if method == "HEAD" and not pending.fault.applies_to_head:
                    return None
                pending.remaining -= 1
                if pending.remaining == 0:
                    del self._pending[index]
                return pending.fault
            return None

    def _resolve(self, path: str) -> Path | None:
        candidate = (self.root / unquote(path).lstrip("/")).resolve()
        if candidate.is_relative_to(self.root) and candidate.is_file():
            return candidate
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a dump-site directory like dumps.wikimedia.org.")
    parser.add_argument("root", type=Path, help="directory laid out like the dump site")
    parser.add_argument("--port", type=int, default=0, help="0 lets the OS choose")
    parser.add_argument(
        "--rate", type=float, default=None, help="bytes/s per connection after a response's first MiB"
    )
    parser.add_argument("--max-connections", type=int, default=3)
    parser.add_argument(
        "--user-agent-substring", default="wikitop", help="required in the User-Agent; '' accepts any"
    )
    args = parser.parse_args(argv)
    server = DumpServer(
        args.root,
        max_connections=args.max_connections,
        rate_bytes_per_s=args.rate,
        required_user_agent_substring=args.user_agent_substring or None,
        port=args.port,
    )
    # Also when started in the background by a shell, which ignores SIGINT for it.
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, signal.default_int_handler)
    with server:
        try:  # a signal may arrive while the URL is still being printed
            print(server.url, flush=True)
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
