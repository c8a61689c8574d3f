"""Results on a real S3 server (SeaweedFS ``weed mini`` on 127.0.0.1), through the CLI as users run it.

The server has its own credentials; every test checks that its secret key shows up
in no output, error or marker.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial

import pyarrow as pa
import pytest

from conftest import HOUR, run_wikitop, s3_env, stall_after_data, unanswering_address
from s3server import S3Server, unavailable_reason

pytest.importorskip("s3fs")

from wikitop import storage  # noqa: E402
from wikitop.model import RESULT_SCHEMA  # noqa: E402
from wikitop.publish.store import (  # noqa: E402
    FORMATS,
    Period,
    PublishError,
    ResultStore,
    deserialize,
)
from wikitop.storage import MULTIPART_PART_BYTES, S3_CLIENT_CONFIG, FolderStore, StorageError  # noqa: E402

_REASON = unavailable_reason()
pytestmark = [pytest.mark.s3, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]

BUCKET = "wikitop-results"
HOUR_ARG = "2020-01-22T02"
NEXT_HOUR_ARG = "2020-01-22T03"
PARTITION = "year=2020/month=01/day=22/hour=02"
UNREACHABLE_SECONDS = 30

# Runs the CLI with S3 calls patched to hang at one point, so that a test can kill it there.
HANGING_UPLOAD = """
import asyncio, os, pathlib, sys
import s3fs.core
from wikitop import storage as publish
from wikitop.cli import main

hang_on = os.environ["UPLOAD_HANGS_ON"]
hanging = pathlib.Path(os.environ["UPLOAD_HANGS_FILE"])
if hang_on == "part":
    publish.MULTIPART_PART_BYTES = 4096  # so that even this small result goes up in parts
call_s3 = s3fs.core.S3FileSystem._call_s3

async def hanging_call_s3(self, method, *args, **kwargs):
    if hang_on == "marker" and method == "put_object" and kwargs["Key"].endswith("/_SUCCESS"):
        hanging.touch()
        await asyncio.sleep(600)
    result = await call_s3(self, method, *args, **kwargs)
    if hang_on == "part" and method == "upload_part":
        hanging.touch()
        await asyncio.sleep(600)
    return result

s3fs.core.S3FileSystem._call_s3 = hanging_call_s3
main(prog_name="wikitop")
"""


# Runs the CLI with results uploaded in small parts, so that an hour's result is a multipart upload.
SMALL_PARTS = """
from wikitop import storage as publish
from wikitop.cli import main

publish.MULTIPART_PART_BYTES = 16384
main(prog_name="wikitop")
"""


class DroppingProxy:
    """A TCP proxy to the S3 server that, once clients have sent ``limit`` bytes, cuts every
    connection and resets each new one: an endpoint that drops in the middle of an upload."""

    def __init__(self, server: S3Server, limit: int):
        self.target = ("127.0.0.1", server.ports["s3"])
        self.limit = limit
        self.received = 0
        self.dropped = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.dropped.is_set():
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client:
                    with self._lock:
                        self.received += len(data)
                    if self.received > self.limit:
                        self._drop()
                        return
                sink.sendall(data)
        except OSError:
            pass

    def _drop(self) -> None:
        self.dropped.set()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self._listener.close()
        self._drop()


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        server.create_bucket(BUCKET)
        yield server
        assert_secret_absent(server, *marker_texts(server))


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix in the bucket for one test."""
    return f"results-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def two_hours(mirror, real_hour):
    mirror.add(HOUR, real_hour)
    mirror.add(datetime(2020, 1, 22, 3, tzinfo=UTC), real_hour)
    return mirror


@pytest.fixture
def s3_cli(s3, tmp_path):
    def run(*args, timeout: float = 120, **env_changes):
        result = run_wikitop(*args, env=s3_env(s3, tmp_path / "cache", **env_changes), timeout=timeout)
        assert_secret_absent(s3, result.stdout, result.stderr)
        return result

    return run


def assert_secret_absent(server: S3Server, *texts: str) -> None:
    for text in texts:
        assert server.secret_key not in text


def keys(server: S3Server, prefix: str) -> list[str]:
    listing = server.botocore_client().list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    return sorted(obj["Key"][len(prefix) + 1:] for obj in listing.get("Contents", []))


def get(server: S3Server, key: str) -> bytes:
    return server.botocore_client().get_object(Bucket=BUCKET, Key=key)["Body"].read()


def marker_texts(server: S3Server) -> list[str]:
    listing = server.botocore_client().list_objects_v2(Bucket=BUCKET)
    return [get(server, obj["Key"]).decode() for obj in listing.get("Contents", [])
            if obj["Key"].endswith("/_SUCCESS")]


def unfinished_uploads(server: S3Server, prefix: str) -> list[dict]:
    return server.botocore_client().list_multipart_uploads(Bucket=BUCKET, Prefix=f"{prefix}/").get("Uploads", [])


def store_options(server: S3Server) -> dict:
    """Credentials and endpoint only, so that wikitop's own timeouts and retries apply."""
    options = server.storage_options()
    return {"key": options["key"], "secret": options["secret"], "client_kwargs": options["client_kwargs"]}


def count_requests(store: ResultStore) -> list[str]:
    """Every HTTP request the store's S3 client sends from now on, as 'METHOD query'."""
    sent: list[str] = []
    store.fs.s3.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append(f"{request.method} {request.url.partition('?')[2]}")
    )
    return sent


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_hours_and_ranges_are_published_once(s3, s3_cli, two_hours, prefix):
    out = f"s3://{BUCKET}/{prefix}"
    first = s3_cli("hour", HOUR_ARG, "--source", two_hours.root, "--out", out)
    assert first.returncode == 0, first.stderr
    assert f"-> {out}/format=csv/{PARTITION}/part-" in first.stdout
    marker_key = f"{prefix}/format=csv/{PARTITION}/_SUCCESS"
    marker = json.loads(get(s3, marker_key))
    data = get(s3, f"{prefix}/format=csv/{PARTITION}/{marker['file']}")
    assert keys(s3, prefix) == [f"format=csv/{PARTITION}/{name}" for name in sorted(["_SUCCESS", marker["file"]])]
    assert marker["file"] == f"part-{hashlib.sha256(data).hexdigest()[:16]}.csv.gz"
    assert marker["format"] == "csv" and marker["file_bytes"] == len(data)
    assert deserialize(data, "csv").num_rows == marker["rows"] == 1450

    again = s3_cli("hour", HOUR_ARG, "--source", two_hours.root, "--out", out)
    assert again.returncode == 0 and "already done" in again.stdout
    assert get(s3, marker_key) == json.dumps(marker, indent=2, ensure_ascii=False).encode()

    # The endpoint and region by flag instead of AWS_ENDPOINT_URL and AWS_DEFAULT_REGION.
    flags = ("--s3-endpoint-url", s3.endpoint_url, "--s3-region", "us-east-1")
    ranged = s3_cli("range", HOUR_ARG, NEXT_HOUR_ARG, "--source", two_hours.root, "--out", out, *flags,
                    AWS_ENDPOINT_URL=None, AWS_DEFAULT_REGION=None)
    assert ranged.returncode == 0, ranged.stderr
    assert f"{HOUR_ARG}: already done" in ranged.stdout and f"{NEXT_HOUR_ARG}: done: 1450 rows" in ranged.stdout
    rerun = s3_cli("range", HOUR_ARG, NEXT_HOUR_ARG, "--source", two_hours.root, "--out", out, *flags, "-vv",
                   AWS_ENDPOINT_URL=None, AWS_DEFAULT_REGION=None)
    assert rerun.returncode == 0
    assert f"{HOUR_ARG}: already done" in rerun.stdout and f"{NEXT_HOUR_ARG}: already done" in rerun.stdout
    assert len([key for key in keys(s3, prefix) if key.endswith("_SUCCESS")]) == 2


def test_the_done_check_is_one_get_per_hour_and_a_head_per_published_one(s3, prefix):
    from wikitop.pipeline import Wikitop
    from wikitop.runner import plan_range
    from wikitop.settings import Settings

    session = Wikitop(Settings(out=f"s3://{BUCKET}/{prefix}", blacklist=None, storage_options=store_options(s3)))
    period = Period.hour(HOUR)
    session.results.publish(period, "csv", RESULT_SCHEMA.empty_table(), {"params": session.params(period)})
    sent = count_requests(session.results)
    plan = plan_range(session, HOUR, datetime(2020, 1, 22, 4, tzinfo=UTC), hourly=True, daily=False)
    assert [outcome.period for outcome in plan.skipped] == [period]
    assert len(plan.publish_hours) == 2
    # A marker each, and whether the published hour's data file is still there; no listing.
    assert sorted(request.split()[0] for request in sent) == ["GET", "GET", "GET", "HEAD"]
    sent.clear()
    assert session.results.read_marker(Period.hour(datetime(2020, 1, 22, 9, tzinfo=UTC)), "csv") is None
    assert len(sent) == 1


def test_one_process_sees_what_others_wrote_since(s3, prefix):
    """s3fs caches listings per process; markers and leftovers must be looked up afresh."""
    store = ResultStore(f"s3://{BUCKET}/{prefix}", store_options(s3))
    period = Period.hour(HOUR)
    store.publish(period, "csv", RESULT_SCHEMA.empty_table(), {"rows": 0})
    assert len(store.markers()) == 1
    store.fs.ls(store.folder(period, "csv"))  # a cached listing of the folder
    client = s3.botocore_client()
    folder_key = f"{prefix}/format=csv/{PARTITION}"
    client.put_object(Bucket=BUCKET, Key=f"{folder_key}/part-0000000000000000.csv.gz", Body=b"killed run")
    other = f"{prefix}/format=csv/year=2020/month=01/day=22/hour=03"
    marker = get(s3, f"{folder_key}/_SUCCESS")
    name = json.loads(marker)["file"]
    client.put_object(Bucket=BUCKET, Key=f"{other}/{name}", Body=get(s3, f"{folder_key}/{name}"))
    client.put_object(Bucket=BUCKET, Key=f"{other}/_SUCCESS", Body=marker)
    assert len(store.markers()) == 2
    store.publish(period, "csv", RESULT_SCHEMA.empty_table(), {"rows": 0})
    assert "part-0000000000000000.csv.gz" not in " ".join(keys(s3, prefix))


def test_two_runs_publishing_one_hour_at_once_leave_a_marker_naming_its_file(s3, prefix):
    """One run uploads its data file and stalls; another, with another --top, publishes and
    removes the first one's file as a leftover; then the first writes its marker."""
    out = f"s3://{BUCKET}/{prefix}"
    slow, fast = ResultStore(out, store_options(s3)), ResultStore(out, store_options(s3))
    tables = {top: pa.table({"domain_code": ["en"] * top, "page_title": [f"P{i}" for i in range(top)],
                             "views": list(range(top, 0, -1)), "rank": list(range(1, top + 1))}, schema=RESULT_SCHEMA)
              for top in (3, 1)}
    period = Period.hour(HOUR)
    uploaded, resume = stall_after_data(slow)
    with ThreadPoolExecutor(1) as pool:
        slow_run = pool.submit(slow.publish, period, "csv", tables[3], {"params": {"top": 3}})
        assert uploaded.wait(30)
        fast.publish(period, "csv", tables[1], {"params": {"top": 1}})
        resume.set()
        slow_run.result(60)
    reader = ResultStore(out, store_options(s3))
    marker, table = reader.read_result(period, "csv")
    assert marker["params"] == {"top": 3} and table.equals(tables[3])
    assert f"format=csv/{PARTITION}/{marker['file']}" in keys(s3, prefix)
    assert [folder for folder, _ in reader.markers()] == [reader.folder(period, "csv")]


def test_a_large_result_goes_up_as_a_multipart_upload(s3, prefix):
    store = ResultStore(f"s3://{BUCKET}/{prefix}", store_options(s3))
    rows = 2 * MULTIPART_PART_BYTES // 45
    titles = [secrets.token_urlsafe(48) for _ in range(rows)]  # 64 random characters, 48 bytes compressed
    table = pa.table({"domain_code": ["en"] * rows, "page_title": titles, "views": list(range(rows, 0, -1)),
                      "rank": list(range(1, rows + 1))}, schema=RESULT_SCHEMA)
    period = Period.hour(HOUR)
    sent = count_requests(store)
    path = store.publish(period, "parquet", table, {"rows": rows})
    size = json.loads(get(s3, f"{prefix}/format=parquet/{PARTITION}/_SUCCESS"))["file_bytes"]
    assert size >= 2 * MULTIPART_PART_BYTES  # s3fs's threshold for a multipart upload
    parts = -(-size // MULTIPART_PART_BYTES)
    assert sum("uploadId" in request and request.startswith("PUT") for request in sent) == parts
    head = s3.botocore_client().head_object(Bucket=BUCKET, Key=path.partition("/")[2])
    assert head["ETag"].strip('"').endswith(f"-{parts}") and head["ContentLength"] == size
    assert store.read_result(period, "parquet")[1].equals(table)


def run_together(**runs):
    """Independent CLI runs at the same time, to keep the suite quick; their results by name."""
    with ThreadPoolExecutor(len(runs)) as pool:
        futures = {name: pool.submit(run) for name, run in runs.items()}
        return {name: future.result() for name, future in futures.items()}


def test_show_and_ls_read_every_format_back(s3, s3_cli, two_hours, prefix, tmp_path):
    out = f"s3://{BUCKET}/{prefix}"
    source = ("--source", two_hours.root, "--out", out)
    published = run_together(
        **{fmt: partial(s3_cli, "hour", HOUR_ARG, *source, "--format", fmt, WIKITOP_CACHE_DIR=str(tmp_path / fmt))
           for fmt in FORMATS},
        window=partial(s3_cli, "window", HOUR_ARG, NEXT_HOUR_ARG, *source, "--top", "2"),
    )
    assert all(result.returncode == 0 for result in published.values()), published

    domains = ("--domain", "ar", "--domain", "ab")
    results = run_together(
        **{fmt: partial(s3_cli, "show", HOUR_ARG, "--out", out, "--format", fmt, *domains) for fmt in FORMATS},
        window=partial(s3_cli, "show", f"{HOUR_ARG}..{NEXT_HOUR_ARG}", "--out", out, "--domain", "ab"),
        json=partial(s3_cli, "ls", "--out", out, "--json"),
        missing=partial(s3_cli, "show", "2020-01-22T05", "--out", out),
        no_bucket=partial(s3_cli, "ls", "--out", "s3://no-such-bucket/x"),
    )
    assert all(results[fmt].returncode == 0 for fmt in FORMATS), {fmt: results[fmt].stderr for fmt in FORMATS}
    assert results["csv"].stdout == results["parquet"].stdout == results["jsonl"].stdout
    assert results["csv"].stdout.splitlines()[:2] == ["domain_code\tpage_title\tviews\trank",
                                                       "ab\tИхадоу_адаҟьа\t7\t1"]
    assert "· parquet ·" in results["parquet"].stderr
    assert results["window"].stdout.splitlines()[1:] == ["ab\tИхадоу_адаҟьа\t14\t1", "ab\tБаҭым\t8\t2"]

    entries = json.loads(results["json"].stdout)
    assert [(e["kind"], e["period"], e["format"], e["top"], e["rows"]) for e in entries] == [
        ("hour", HOUR_ARG, "csv", 25, 1450), ("hour", HOUR_ARG, "jsonl", 25, 1450),
        ("hour", HOUR_ARG, "parquet", 25, 1450), ("window", f"{HOUR_ARG}..{NEXT_HOUR_ARG}", "csv", 2, 145),
    ]
    assert entries[0]["location"] == f"{out}/format=csv/{PARTITION}"

    assert results["missing"].returncode == 1
    assert f"nothing published for hour 2020-01-22T05 under {out}" in one_line(results["missing"].stderr)
    assert results["no_bucket"].returncode == 1
    assert "the bucket does not exist" in one_line(results["no_bucket"].stderr)


def run_until_it_hangs(s3, tmp_path, hang_on: str, *args) -> None:
    """Start the CLI with S3 calls that hang at ``hang_on``, and kill -9 it there."""
    hanging = tmp_path / f"hangs-{hang_on}"
    script = tmp_path / "hanging_upload.py"
    script.write_text(HANGING_UPLOAD)
    env = s3_env(s3, tmp_path / "cache", UPLOAD_HANGS_ON=hang_on, UPLOAD_HANGS_FILE=str(hanging))
    process = subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not hanging.exists():
            assert process.poll() is None and time.monotonic() < deadline, "the upload never started"
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_a_run_killed_before_its_marker_publishes_nothing(s3, s3_cli, two_hours, prefix, tmp_path):
    out = f"s3://{BUCKET}/{prefix}"
    run_until_it_hangs(s3, tmp_path, "marker", "hour", HOUR_ARG, "--source", two_hours.root, "--out", out,
                       "--top", "3")
    leftover = keys(s3, prefix)
    assert len(leftover) == 1 and "/part-" in leftover[0]  # the data object, and no marker
    store = ResultStore(out, store_options(s3))
    assert store.markers() == [] and store.read_result(Period.hour(HOUR), "csv") is None

    rerun = s3_cli("hour", HOUR_ARG, "--source", two_hours.root, "--out", out)
    assert rerun.returncode == 0 and "already" not in rerun.stdout
    marker = json.loads(get(s3, f"{prefix}/format=csv/{PARTITION}/_SUCCESS"))
    assert keys(s3, prefix) == [f"format=csv/{PARTITION}/{name}" for name in sorted(["_SUCCESS", marker["file"]])]
    assert leftover[0] not in keys(s3, prefix)


def test_a_run_killed_during_a_multipart_upload_keeps_the_earlier_result(s3, s3_cli, two_hours, prefix, tmp_path):
    out = f"s3://{BUCKET}/{prefix}"
    args = ("hour", HOUR_ARG, "--source", two_hours.root, "--out", out)
    assert s3_cli(*args, "--top", "3").returncode == 0
    before = {key: get(s3, f"{prefix}/{key}") for key in keys(s3, prefix)}
    store = ResultStore(out, store_options(s3))
    marker, table = store.read_result(Period.hour(HOUR), "csv")

    run_until_it_hangs(s3, tmp_path, "part", *args)
    assert {key: get(s3, f"{prefix}/{key}") for key in keys(s3, prefix)} == before
    assert len(unfinished_uploads(s3, prefix)) == 1
    assert store.read_result(Period.hour(HOUR), "csv") == (marker, table)

    rerun = s3_cli(*args)
    assert rerun.returncode == 0 and "already" not in rerun.stdout
    assert unfinished_uploads(s3, prefix) == []
    assert len(keys(s3, prefix)) == 2 and not set(keys(s3, prefix)) & {k for k in before if "/part-" in k}


@pytest.mark.parametrize(("change", "code"), [
    ({"AWS_SECRET_ACCESS_KEY": "not-the-secret-key"}, "SignatureDoesNotMatch"),
    ({"AWS_ACCESS_KEY_ID": "nobody"}, "InvalidAccessKeyId"),
])
def test_wrong_credentials_fail_with_one_clear_line(s3, s3_cli, two_hours, prefix, change, code):
    out = f"s3://{BUCKET}/{prefix}"
    for args in (("hour", HOUR_ARG, "--source", two_hours.root), ("ls",)):
        result = s3_cli(*args, "--out", out, **change)
        assert result.returncode == 1
        line = one_line(result.stderr)
        assert f"the storage rejected the credentials ({code})" in line and out in line
        assert "not-the-secret-key" not in line
    assert keys(s3, prefix) == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_endpoint_fails_fast(s3, s3_cli, two_hours, prefix):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    out = f"s3://{BUCKET}/{prefix}"
    runs = [
        lambda: s3_cli("hour", HOUR_ARG, "--source", two_hours.root, "--out", out, "--s3-endpoint-url", endpoint),
        lambda: s3_cli("range", HOUR_ARG, NEXT_HOUR_ARG, "--source", two_hours.root, "--out", out,
                       "--s3-endpoint-url", endpoint),
        lambda: s3_cli("ls", "--out", out, AWS_ENDPOINT_URL=endpoint),
    ]
    for run in runs:
        started = time.monotonic()
        result = run()
        assert time.monotonic() - started < UNREACHABLE_SECONDS
        assert result.returncode == 1
        assert "cannot reach the storage endpoint" in one_line(result.stderr) and endpoint in result.stderr


def test_an_endpoint_that_never_accepts_fails_within_the_bound(s3, prefix):
    """A listening socket whose backlog is full drops new connections, like a firewall."""
    with unanswering_address() as (address, port):
        endpoint = f"http://{address}:{port}"
        # One second instead of the default five, so that the test is quick: three attempts.
        options = dict(store_options(s3), client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
                       config_kwargs={"connect_timeout": 1})
        store = ResultStore(f"s3://{BUCKET}/{prefix}", options)
        sent = count_requests(store)
        started = time.monotonic()
        with pytest.raises(PublishError, match="cannot reach the storage endpoint.*Connect timeout"):
            store.read_marker(Period.hour(HOUR), "csv")
        assert len(sent) == S3_CLIENT_CONFIG["retries"]["total_max_attempts"] == 3
        assert time.monotonic() - started < 3 * 1 + 3  # attempts x connect timeout + backoff


@pytest.mark.parametrize("size", [1000, 3 * MULTIPART_PART_BYTES], ids=["one PUT", "multipart"])
def test_an_upload_to_an_endpoint_that_never_reads_ends_within_the_upload_bound(s3, monkeypatch, size):
    """The endpoint takes connections, then neither reads nor answers: botocore's read timeout
    does not cover sending a body, so only the upload bound ends a PUT."""
    monkeypatch.setattr(storage, "UPLOAD_BASE_SECONDS", 2.0)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.extend(iter(lambda: listener.accept()[0], None)),
                         daemon=True).start()
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        options = dict(store_options(s3), client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"})
        store = FolderStore(f"s3://{BUCKET}/blackholed", options)
        outcome: list[BaseException] = []

        def upload() -> None:
            try:
                store.write_folder(f"{BUCKET}/blackholed/x", b"x" * size, "bin", {})
            except BaseException as error:
                outcome.append(error)

        uploader = threading.Thread(target=upload, daemon=True)
        uploader.start()
        uploader.join(60)  # unbound, the upload of one PUT never ends
        assert not uploader.is_alive(), "the upload is still running"
        for sock in accepted:
            sock.close()
    [error] = outcome
    assert isinstance(error, StorageError)
    assert "did not answer in time" in str(error) or f"the storage endpoint {endpoint} did not take the upload" \
        in str(error)
    assert endpoint in str(error)


def test_an_endpoint_dropping_a_multipart_upload_fails_with_one_line(s3, s3_cli, two_hours, prefix, tmp_path):
    out = f"s3://{BUCKET}/{prefix}"
    args = ("hour", HOUR_ARG, "--source", two_hours.root, "--out", out, "--no-blacklist", "--format", "jsonl")
    assert s3_cli(*args, "--top", "3").returncode == 0
    before = {key: get(s3, f"{prefix}/{key}") for key in keys(s3, prefix)}

    script = tmp_path / "small_parts.py"
    script.write_text(SMALL_PARTS)
    proxy = DroppingProxy(s3, limit=100_000)  # the result is some 250 KB: ten parts at once, then a drop
    try:
        result = subprocess.run([sys.executable, str(script), *args, "--top", "100000"], capture_output=True,
                                text=True, env=s3_env(s3, tmp_path / "cache", AWS_ENDPOINT_URL=proxy.url), timeout=120)
    finally:
        proxy.close()
    assert proxy.dropped.is_set()
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(f"wikitop: error: {HOUR_ARG}: cannot publish to {out}/format=jsonl/")
    assert "the storage endpoint dropped or reset the connection" in line and "cannot reach" not in line
    assert "never retrieved" not in result.stderr
    assert {key: get(s3, f"{prefix}/{key}") for key in keys(s3, prefix)} == before


def test_credentials_in_an_s3_url_show_nowhere(s3, s3_cli, two_hours, prefix):
    secret = "url-secret-0123456789"
    out = f"s3://{s3.access_key}:{secret}@{BUCKET}/{prefix}"
    for args in (("hour", HOUR_ARG, "--source", two_hours.root, "-vv"), ("ls",), ("show", HOUR_ARG)):
        result = s3_cli(*args, "--out", out)
        assert result.returncode == 1
        line = one_line(result.stderr)
        assert line.startswith("wikitop: ") and f"s3://***@{BUCKET}/{prefix}" in line
        assert secret not in result.stdout + result.stderr
    assert keys(s3, prefix) == []
