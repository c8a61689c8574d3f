"""The test S3 server (SeaweedFS ``weed mini``) and how s3fs behaves against it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from s3server import GRPC_OFFSET, S3Server, unavailable_reason

fsspec = pytest.importorskip("fsspec")
pytest.importorskip("s3fs")
botocore_exceptions = pytest.importorskip("botocore.exceptions")

_REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")

MiB = 2**20
BUCKET = "wikitop-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.start()
    try:
        server.create_bucket(BUCKET)
        yield server
    finally:
        server.stop()


def _fs(**opts):
    return fsspec.filesystem("s3", skip_instance_cache=True, **opts)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening_inodes(proc_net: str) -> dict[int, tuple[str, int]]:
    """inode -> (hex local address, port) of LISTEN sockets in /proc/net/tcp*."""
    found = {}
    for line in Path(proc_net).read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":  # TCP_LISTEN
            addr, port = fields[1].split(":")
            found[int(fields[9])] = (addr, int(port, 16))
    return found


def _listening(pid: int) -> tuple[set[tuple[str, int]], list[tuple[str, int]]]:
    """(IPv4, IPv6) listening (hex address, port) of the process's sockets."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed since the listing: weed opens and closes files all along
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    v4 = _listening_inodes("/proc/net/tcp")
    v6 = _listening_inodes("/proc/net/tcp6")
    return {v4[i] for i in inodes if i in v4}, [v6[i] for i in inodes if i in v6]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_listens_only_on_loopback_on_chosen_ports(s3: S3Server) -> None:
    expected_ports = set(s3.ports.values()) | {p + GRPC_OFFSET for p in s3.ports.values()}
    # S3 answers before every internal service listens: wait for them, a few seconds at most.
    deadline = time.monotonic() + 15
    while True:
        listening, listening_v6 = _listening(s3.pid)
        if {port for _, port in listening} >= expected_ports or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not listening_v6, "weed listens on IPv6"
    assert {port for _, port in listening} == expected_ports  # nothing fixed, nothing extra
    assert {addr for addr, _ in listening} == {"0100007F"}  # 127.0.0.1 only


def _keys(s3: S3Server, prefix: str) -> list[str]:
    """Object keys under prefix, straight from ListObjectsV2 (no delimiter)."""
    listing = s3.botocore_client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def test_write_read_list_delete(s3: S3Server) -> None:
    fs = _fs(**s3.storage_options())
    base = f"{BUCKET}/roundtrip"
    fs.pipe(f"{base}/a.txt", b"hello")
    with fs.open(f"{base}/sub/b.json", "wb") as f:
        f.write(b'{"x": 1}')
    assert fs.cat(f"{base}/a.txt") == b"hello"
    assert fs.info(f"{base}/sub/b.json")["size"] == 8
    assert sorted(fs.find(base)) == [f"{base}/a.txt", f"{base}/sub/b.json"]
    assert sorted(fs.ls(base, detail=False)) == [f"{base}/a.txt", f"{base}/sub"]
    fs.rm(f"{base}/a.txt")
    fs.invalidate_cache()
    assert not fs.exists(f"{base}/a.txt")
    assert fs.find(base) == [f"{base}/sub/b.json"]
    fs.rm(base, recursive=True)
    fs.invalidate_cache()
    assert not fs.exists(f"{base}/sub/b.json")
    assert _keys(s3, "roundtrip") == []
    # Not asserted: SeaweedFS keeps the emptied folder "roundtrip/sub/" for ~5-20 s
    # (asynchronous cleanup), so delimiter listings, fs.ls and fs.find may still show
    # a directory there; real S3 would not.


def test_multipart_upload_over_10_mib(s3: S3Server, tmp_path: Path) -> None:
    fs = _fs(**s3.storage_options())
    data = os.urandom(12 * MiB + 12345)
    # Streaming write: s3fs sends a part whenever its buffer passes block_size.
    with fs.open(f"{BUCKET}/big/stream.bin", "wb", block_size=5 * MiB) as f:
        for start in range(0, len(data), 4 * MiB):
            f.write(data[start : start + 4 * MiB])
    # File upload: multipart once the file is at least 2 * chunksize.
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    fs.put(str(local), f"{BUCKET}/big/put.bin", chunksize=5 * MiB)

    for name, parts in (("stream.bin", 2), ("put.bin", 3)):
        info = fs.info(f"{BUCKET}/big/{name}")
        assert info["size"] == len(data)
        # A multipart object's ETag is "<md5 of part md5s>-<number of parts>".
        assert info["ETag"].strip('"').endswith(f"-{parts}"), info["ETag"]
        assert fs.cat(f"{BUCKET}/big/{name}") == data
    fs.get(f"{BUCKET}/big/put.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data
    fs.rm(f"{BUCKET}/big", recursive=True)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"secret": "not-the-secret"}, "SignatureDoesNotMatch"),
        ({"key": "no-such-key"}, "InvalidAccessKeyId"),
    ],
)
def test_wrong_credentials_are_rejected(s3: S3Server, change: dict, code: str) -> None:
    s3.botocore_client().put_object(Bucket=BUCKET, Key="auth/x.txt", Body=b"x")
    fs = _fs(**{**s3.storage_options(), **change})
    # s3fs turns the S3 error code into PermissionError, with the botocore ClientError
    # as __cause__. HEAD answers carry no body, so there the code is just "403".
    for op, expected in (
        (lambda: fs.ls(BUCKET), code),  # ListObjectsV2
        (lambda: fs.pipe(f"{BUCKET}/auth/y.txt", b"y"), code),  # PutObject
        (lambda: fs.cat(f"{BUCKET}/auth/x.txt"), "403"),  # HeadObject first
    ):
        started = time.monotonic()
        with pytest.raises(PermissionError) as caught:
            op()
        assert time.monotonic() - started < 10  # auth errors are not retried
        cause = caught.value.__cause__
        assert isinstance(cause, botocore_exceptions.ClientError)
        assert cause.response["Error"]["Code"] == expected
    assert _keys(s3, "auth/") == ["auth/x.txt"]


def test_anonymous_access_is_rejected(s3: S3Server) -> None:
    fs = _fs(anon=True, client_kwargs=s3.storage_options()["client_kwargs"])
    with pytest.raises(PermissionError) as caught:
        fs.ls(BUCKET)
    assert caught.value.__cause__.response["Error"]["Code"] == "AccessDenied"


def test_unreachable_endpoint_fails_fast_with_bounded_retries() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    fs = _fs(
        key="k",
        secret="s",
        client_kwargs={"endpoint_url": url, "region_name": "us-east-1"},
        config_kwargs={"retries": {"max_attempts": 2}, "connect_timeout": 2, "read_timeout": 5},
    )
    for op in (lambda: fs.ls(BUCKET), lambda: fs.pipe(f"{BUCKET}/x", b"1"), lambda: fs.cat(f"{BUCKET}/x")):
        started = time.monotonic()
        # Not translated by s3fs and not an OSError: botocore's own exception.
        with pytest.raises(botocore_exceptions.EndpointConnectionError) as caught:
            op()
        assert time.monotonic() - started < 10
        assert not isinstance(caught.value, OSError)
        assert isinstance(caught.value, botocore_exceptions.BotoCoreError)


def test_server_storage_options_against_closed_port_fail_fast(s3: S3Server) -> None:
    opts = s3.storage_options()
    opts["client_kwargs"] = {**opts["client_kwargs"], "endpoint_url": f"http://127.0.0.1:{_closed_port()}"}
    started = time.monotonic()
    with pytest.raises(botocore_exceptions.EndpointConnectionError):
        _fs(**opts).cat(f"{BUCKET}/x")
    assert time.monotonic() - started < 10


def test_env_points_a_subprocess_at_the_server(s3: S3Server) -> None:
    s3.botocore_client().put_object(Bucket=BUCKET, Key="env/hello.txt", Body=b"from env")
    code = textwrap.dedent(
        f"""
        import fsspec
        fs = fsspec.filesystem("s3")  # no options: everything from the environment
        print(fs.cat("{BUCKET}/env/hello.txt").decode())
        fs.pipe("{BUCKET}/env/child.txt", b"written by child")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3.env())
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "from env"
    got = s3.botocore_client().get_object(Bucket=BUCKET, Key="env/child.txt")["Body"].read()
    assert got == b"written by child"


def test_start_survives_a_taken_port_and_stop_leaves_nothing(tmp_path: Path) -> None:
    server = S3Server(tmp_path / "s3")
    taken_port = server.ports["s3"]
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", taken_port))
        blocker.listen(1)
        with server:
            assert server.ports["s3"] != taken_port  # weed refused it; start() chose again
            assert server.startup_seconds is not None and server.startup_seconds < 30
            server.create_bucket("second")
            fs = _fs(**server.storage_options())
            fs.pipe("second/x", b"x")
            assert fs.cat("second/x") == b"x"
            pid = server.pid
            ports = dict(server.ports)
    assert pid is not None
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone
    for port in ports.values():
        for number in (port, port + GRPC_OFFSET):
            assert not list(Path("/tmp").glob(f"seaweedfs-*-{number}.sock"))
            with socket.socket() as sock:  # free again (TIME_WAIT aside, as for any server)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", number))
    assert "weed" in (tmp_path / "s3" / "weed.log").read_text()
    server.stop()  # idempotent
