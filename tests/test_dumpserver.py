"""Tests of the fault-injecting dump server itself, through http.client (not wikitop)."""

from __future__ import annotations

import gzip
import http.client
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dumpserver import THROTTLE_AFTER_BYTES, DumpServer, Fault

USER_AGENT = "wikitop-tests/1.0 (tests@example.org)"
HOUR_PATH = "/other/pageviews/2020/2020-01/pageviews-20200101-010000.gz"
OTHER_HOUR_PATH = "/other/pageviews/2020/2020-01/pageviews-20200101-020000.gz"
BIG_PATH = "/other/big.bin"


@pytest.fixture(scope="module")
def payload() -> bytes:
    """A gzip file of about 100 KB that does not compress (so sizes are predictable)."""
    return gzip.compress(random.Random(1).randbytes(100_000))


@pytest.fixture
def site(tmp_path: Path, payload: bytes) -> Path:
    for path in (HOUR_PATH, OTHER_HOUR_PATH):
        file = tmp_path / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(payload)
    return tmp_path


@pytest.fixture
def server(site: Path) -> Iterator[DumpServer]:
    with DumpServer(site) as running:
        yield running


def connect(server: DumpServer, timeout: float = 5.0) -> http.client.HTTPConnection:
    address = urlsplit(server.url)
    return http.client.HTTPConnection(address.hostname, address.port, timeout=timeout)


@contextmanager
def open_response(
    server: DumpServer,
    path: str = HOUR_PATH,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    user_agent: str | None = USER_AGENT,
) -> Iterator[http.client.HTTPResponse]:
    connection = connect(server)
    all_headers = {} if user_agent is None else {"User-Agent": user_agent}
    all_headers.update(headers or {})
    try:
        connection.request(method, path, headers=all_headers)
        yield connection.getresponse()
    finally:
        connection.close()


def fetch(server: DumpServer, path: str = HOUR_PATH, **kwargs) -> tuple[http.client.HTTPResponse, bytes]:
    with open_response(server, path, **kwargs) as response:
        return response, response.read()


def wait_for(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# Plain service


def test_get_serves_the_file_with_its_headers(server: DumpServer, site: Path, payload: bytes):
    response, body = fetch(server)
    assert response.status == 200
    assert body == payload
    assert response.headers["Content-Length"] == str(len(payload))
    assert response.headers["Accept-Ranges"] == "bytes"
    modified = parsedate_to_datetime(response.headers["Last-Modified"]).timestamp()
    assert modified == pytest.approx((site / HOUR_PATH.lstrip("/")).stat().st_mtime, abs=1)


def test_head_sends_the_headers_only(server: DumpServer, payload: bytes):
    response, body = fetch(server, method="HEAD")
    assert (response.status, body) == (200, b"")
    assert response.headers["Content-Length"] == str(len(payload))
    assert server.requests[-1].bytes_sent == 0


def test_heads_answered_together_wait_for_each_other(server: DumpServer):
    server.answer_heads_together(2)
    answered = []
    first = threading.Thread(target=lambda: answered.append(fetch(server, method="HEAD")[0].status))
    first.start()
    assert wait_for(lambda: len(server.requests) == 1)
    first.join(0.3)
    assert answered == []  # the first HEAD waits for the second
    assert fetch(server, method="HEAD")[0].status == 200
    first.join(5)
    assert answered == [200]


@pytest.mark.parametrize(
    "range_header, first, last",
    [("bytes=100-", 100, None), ("bytes=100-199", 100, 199), ("bytes=-6", -6, None), ("bytes=10-9999999", 10, None)],
)
def test_range_request_gets_206(server: DumpServer, payload: bytes, range_header, first, last):
    total = len(payload)
    first = first % total
    last = total - 1 if last is None else last
    response, body = fetch(server, headers={"Range": range_header})
    assert response.status == 206
    assert body == payload[first : last + 1]
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{total}"
    assert response.headers["Content-Length"] == str(last - first + 1)


def test_range_beyond_the_end_gets_416(server: DumpServer, payload: bytes):
    response, _ = fetch(server, headers={"Range": f"bytes={len(payload)}-"})
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{len(payload)}"


@pytest.mark.parametrize("path", ["/other/pageviews/2020/2020-01/nothing.gz", "/../outside.gz", "/other"])
def test_missing_file_or_directory_is_404(server: DumpServer, path: str):
    assert fetch(server, path)[0].status == 404


@pytest.mark.parametrize("user_agent", [None, "python-requests/2.31", "curl/8.5.0"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_generic_user_agent_is_blocked(server: DumpServer, user_agent, method):
    response, body = fetch(server, method=method, user_agent=user_agent)
    assert response.status == 403
    assert body == (b"Blocked user agent" if method == "GET" else b"")


def test_user_agent_check_can_be_disabled(site: Path):
    with DumpServer(site, required_user_agent_substring=None) as server:
        assert fetch(server, user_agent=None)[0].status == 200


def test_keep_alive_serves_several_requests_on_one_connection(server: DumpServer, payload: bytes):
    connection = connect(server)
    try:
        for _ in range(3):
            connection.request("GET", HOUR_PATH, headers={"User-Agent": USER_AGENT})
            assert connection.getresponse().read() == payload
    finally:
        connection.close()
    assert len({entry.connection_id for entry in server.requests}) == 1


def test_requests_are_logged(server: DumpServer, payload: bytes):
    fetch(server, headers={"Range": "bytes=10-"})
    fetch(server, OTHER_HOUR_PATH, method="HEAD", user_agent=None)
    # The client can have the last byte before the server has finished its record.
    assert wait_for(lambda: all(entry.ended is not None for entry in server.requests))
    get, head = server.requests
    assert (get.method, get.path, get.range, get.user_agent) == ("GET", HOUR_PATH, "bytes=10-", USER_AGENT)
    assert (get.status, get.bytes_sent, get.fault) == (206, len(payload) - 10, None)
    assert get.started <= get.ended
    assert get.started < head.started <= head.ended
    assert (head.method, head.path, head.status, head.user_agent) == ("HEAD", OTHER_HOUR_PATH, 403, None)


# Faults


def test_status_faults_apply_in_order_then_service_resumes(server: DumpServer):
    server.add_faults(HOUR_PATH, Fault.status(503, count=2), Fault.status(429, retry_after=7))
    statuses = []
    for _ in range(4):
        response, _ = fetch(server)
        statuses.append((response.status, response.headers["Retry-After"]))
    assert statuses == [(503, None), (503, None), (429, "7"), (200, None)]


def test_status_fault_sends_its_body(server: DumpServer):
    server.add_faults(".gz", Fault.status(403, body=b"Blocked user agent"))
    response, body = fetch(server)
    assert (response.status, body) == (403, b"Blocked user agent")


def test_faults_only_hit_paths_with_their_suffix(server: DumpServer):
    server.add_faults("-010000.gz", Fault.status(500))
    assert fetch(server, OTHER_HOUR_PATH)[0].status == 200
    assert fetch(server, HOUR_PATH)[0].status == 500


def test_head_takes_status_faults_but_leaves_body_faults_for_get(server: DumpServer):
    server.add_faults(HOUR_PATH, Fault.status(503), Fault.truncate(10))
    assert fetch(server, method="HEAD")[0].status == 503
    response, body = fetch(server, method="HEAD")
    assert response.status == 200
    assert server.requests[-1].fault is None
    response, body = fetch(server)
    assert (response.status, len(body)) == (200, 10)


def test_reset_after_sends_some_bytes_then_resets(server: DumpServer, payload: bytes):
    server.add_faults(HOUR_PATH, Fault.reset_after(5000))
    with open_response(server) as response:
        assert response.headers["Content-Length"] == str(len(payload))
        received = b""
        with pytest.raises(ConnectionResetError):
            while chunk := response.read(1000):
                received += chunk
    assert received == payload[:5000]
    assert fetch(server)[1] == payload


def test_stall_after_sends_some_bytes_then_nothing_then_closes(server: DumpServer, payload: bytes):
    server.add_faults(HOUR_PATH, Fault.stall_after(3000, seconds=0.8))
    started = time.monotonic()
    with open_response(server) as response, pytest.raises(http.client.IncompleteRead) as short:
        response.read()
    assert short.value.partial == payload[:3000]
    assert time.monotonic() - started >= 0.75


def test_truncate_sends_an_honest_length_of_a_cut_file(server: DumpServer, payload: bytes):
    server.add_faults(HOUR_PATH, Fault.truncate(2000))
    response, body = fetch(server)
    assert (response.status, response.headers["Content-Length"]) == (200, "2000")
    assert body == payload[:2000]
    with pytest.raises(EOFError):
        gzip.decompress(body)


def test_truncate_applies_to_range_requests_too(server: DumpServer, payload: bytes):
    server.add_faults(HOUR_PATH, Fault.truncate(2000))
    response, body = fetch(server, headers={"Range": "bytes=1500-"})
    assert response.headers["Content-Range"] == "bytes 1500-1999/2000"
    assert body == payload[1500:2000]


def test_corrupt_flips_one_byte_of_the_gzip_trailer(server: DumpServer, payload: bytes):
    server.add_faults(HOUR_PATH, Fault.corrupt(-6))
    response, body = fetch(server)
    assert response.status == 200
    assert len(body) == len(payload)
    assert [i for i, (a, b) in enumerate(zip(body, payload)) if a != b] == [len(payload) - 6]
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(body)


def test_wrong_length_longer_gives_a_short_read(server: DumpServer, payload: bytes):
    server.add_faults(HOUR_PATH, Fault.wrong_length(100))
    with open_response(server) as response, pytest.raises(http.client.IncompleteRead) as short:
        assert response.headers["Content-Length"] == str(len(payload) + 100)
        response.read()
    assert short.value.partial == payload


def test_wrong_length_shorter_sends_more_than_announced(server: DumpServer, payload: bytes):
    server.add_faults(HOUR_PATH, Fault.wrong_length(-100))
    response, body = fetch(server)
    assert body == payload[:-100]
    assert wait_for(lambda: server.requests[-1].ended is not None)
    assert server.requests[-1].bytes_sent == len(payload)


def test_ignore_range_answers_200_with_the_whole_file(server: DumpServer, payload: bytes):
    server.add_faults(HOUR_PATH, Fault.ignore_range())
    response, body = fetch(server, headers={"Range": "bytes=100-"})
    assert (response.status, body) == (200, payload)
    assert "Content-Range" not in response.headers


def test_empty_answers_200_with_no_body(server: DumpServer):
    server.add_faults(HOUR_PATH, Fault.empty())
    response, body = fetch(server)
    assert (response.status, response.headers["Content-Length"], body) == (200, "0", b"")


def test_slow_throttles_one_response(server: DumpServer, payload: bytes):
    server.add_faults(HOUR_PATH, Fault.slow(100_000))
    started = time.monotonic()
    _, body = fetch(server, headers={"Range": "bytes=0-49999"})
    elapsed = time.monotonic() - started
    assert len(body) == 50_000
    assert 0.4 <= elapsed <= 1.5
    started = time.monotonic()
    fetch(server)
    assert time.monotonic() - started < 0.3


def test_drip_sends_one_byte_at_a_time_at_its_rate(server: DumpServer, payload: bytes):
    server.add_faults(HOUR_PATH, Fault.drip(20))
    with open_response(server) as response:
        assert response.headers["Content-Length"] == str(len(payload))
        started = time.monotonic()
        received = [response.read1(100) for _ in range(5)]
        elapsed = time.monotonic() - started
    assert b"".join(received) == payload[:5] and all(len(chunk) == 1 for chunk in received)
    assert 0.15 <= elapsed <= 1.0


def test_fault_counts_hold_under_concurrent_requests(server: DumpServer):
    server.add_faults(HOUR_PATH, Fault.status(503, count=5))
    statuses = []

    def client():
        connection = connect(server)
        try:
            for _ in range(4):
                connection.request("GET", HOUR_PATH, headers={"User-Agent": USER_AGENT})
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(statuses) == [200] * 7 + [503] * 5


# Connection limit, throttling, stopping


def test_fourth_open_connection_gets_503(server: DumpServer):
    connections = [connect(server) for _ in range(4)]
    try:
        for connection in connections[:3]:
            connection.request("GET", HOUR_PATH, headers={"User-Agent": USER_AGENT})
            response = connection.getresponse()
            response.read()
            assert (response.status, response.will_close) == (200, False)
        connections[3].request("GET", HOUR_PATH, headers={"User-Agent": USER_AGENT})
        refused = connections[3].getresponse()
        refused.read()
        assert (refused.status, refused.headers["Connection"]) == (503, "close")
        assert (server.peak_connections, server.refused_connections) == (4, 1)

        # A connection the client has closed frees its slot at once.
        connections[0].close()
        connections[0] = connect(server)
        connections[0].request("GET", HOUR_PATH, headers={"User-Agent": USER_AGENT})
        assert connections[0].getresponse().status == 200
    finally:
        for connection in connections:
            connection.close()

    server.reset_stats()
    assert (server.refused_connections, server.requests) == (0, [])
    assert server.peak_connections <= 3


def test_peak_counts_open_connections_not_requests(server: DumpServer):
    address = urlsplit(server.url)
    idle = [socket.create_connection((address.hostname, address.port)) for _ in range(2)]
    try:
        assert wait_for(lambda: server.peak_connections == 2)
        assert server.requests == []
    finally:
        for sock in idle:
            sock.close()


def test_server_throttles_after_the_first_mebibyte(site: Path):
    (site / BIG_PATH.lstrip("/")).write_bytes(bytes(THROTTLE_AFTER_BYTES + 200_000))
    with DumpServer(site, rate_bytes_per_s=400_000) as server:
        started = time.monotonic()
        _, body = fetch(server, BIG_PATH, headers={"Range": f"bytes=0-{THROTTLE_AFTER_BYTES - 1}"})
        assert len(body) == THROTTLE_AFTER_BYTES
        assert time.monotonic() - started < 0.3
        started = time.monotonic()
        _, body = fetch(server, BIG_PATH)
        elapsed = time.monotonic() - started
    assert len(body) == THROTTLE_AFTER_BYTES + 200_000
    assert 0.4 <= elapsed <= 1.5


def test_stop_cuts_stalled_and_idle_connections_promptly(site: Path):
    server = DumpServer(site).start()
    server.add_faults(HOUR_PATH, Fault.stall_after(100, seconds=60))
    outcome = []

    def stalled_client():
        try:
            fetch(server)
        except (http.client.HTTPException, OSError) as error:
            outcome.append(error)

    reader = threading.Thread(target=stalled_client)
    reader.start()
    idle = connect(server)
    idle.request("GET", OTHER_HOUR_PATH, headers={"User-Agent": USER_AGENT})
    idle.getresponse().read()
    assert wait_for(lambda: any(entry.bytes_sent == 100 for entry in server.requests))

    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    reader.join(2)
    assert not reader.is_alive()
    assert isinstance(outcome[0], http.client.IncompleteRead)
    assert idle.sock.recv(1) == b""
    idle.close()


def test_main_serves_in_the_foreground(site: Path, payload: bytes):
    script = Path(__file__).with_name("dumpserver.py")
    process = subprocess.Popen(
        [sys.executable, str(script), str(site), "--port", "0", "--rate", "5000000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        address = urlsplit(url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
        connection.request("GET", HOUR_PATH, headers={"User-Agent": USER_AGENT})
        assert connection.getresponse().read() == payload
        connection.close()
    finally:
        process.terminate()
        assert process.wait(5) == 0
        process.stdout.close()
