"""Shared fixtures: generated and real hours, mirrors laid out like the dump site, the CLI."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wikitop.hours import dump_relative_path
from wikitop.rank.blacklist import DEFAULT_BLACKLIST, read_blacklist_bytes
from wikitop.synthetic import generate_hour

DATA = Path(__file__).parent / "data"
REAL_PREFIX = DATA / "pageviews-2020-prefix.txt"
HOUR = datetime(2020, 1, 22, 2, tzinfo=UTC)
# The suite runs a file per worker (pytest-xdist, --dist loadfile); the longest files go
# first, so that no worker is left with one of them at the end.
LONGEST_FILES = ("test_spark.py", "test_airflow.py", "test_range.py", "test_s3.py")


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FILES)))


@pytest.fixture(scope="session")
def blacklist_file(tmp_path_factory) -> Path:
    """The shipped blacklist as a plain file, for the reference implementation."""
    path = tmp_path_factory.mktemp("blacklist") / "blacklist_domains_and_pages"
    path.write_bytes(read_blacklist_bytes(DEFAULT_BLACKLIST))
    return path


@pytest.fixture(scope="session")
def real_hour(tmp_path_factory) -> Path:
    """The real 2020 prefix, gzipped as the dump server serves it."""
    path = tmp_path_factory.mktemp("real") / "real.gz"
    path.write_bytes(gzip.compress(REAL_PREFIX.read_bytes(), mtime=0))
    return path


@pytest.fixture(scope="session")
def generated_hour(tmp_path_factory, blacklist_file) -> Path:
    """A generated hour of 150,000 lines with blacklisted pairs and bad lines of every kind."""
    path = tmp_path_factory.mktemp("generated") / "generated.gz"
    generate_hour(path, lines=150_000, seed=7, blacklist_path=blacklist_file)
    return path


@pytest.fixture(scope="session")
def spark_era_hour(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spark-era") / "spark.gz"
    generate_hour(path, lines=40_000, seed=11, spark_quoting=True)
    return path


# Lines that readers split, decode and judge differently, among good ones.
EDGE_CASE_LINES = b"".join(
    [
        b"en ok 7 0\n",
        b"   \n",  # four empty fields, the first one empty
        b"\n",
        b"en crlf 1 0\r\n",
        b"en lone\rcr 1 0\n",
        b"\r\n",
        b"en nul\x00byte 1 0\n",
        b"en latin1_\xe9 b 1 0\n",
        b"en truncated_\xc3 1\n",
        b"en bad_size_field 1 \xff\n",
        b" a\xe9 1 0\n",
        b" en space_first 1 0\n",
        b" a 1 0\n",
        b" \n",
        b"en  5 0\n",
        b"en trailing_space 1 0 \n",
        b'en "\\"Weird_Al\\"_Yankovic" 12 0\n',
        b'en "Heroes" 3 0\n',
        b'en "two words" 1 0\n',
        b"en plus +1 0\nen zero_padded 01 0\nen minus_zero -0 0\nen fraction 1.0 0\nen empty_count  0\n",
        b"en max 9223372036854775807 0\nen over_max 9223372036854775808 0\nen negative -3 0\n",
        b"en arabic_digit \xd9\xa3 0\nen exponent 1e3 0\n",
        b"en dup 1 0\nen dup 2 0\n",
        # UTF-8 byte order differs from UTF-16 order here.
        "en \u00a0nbsp 4 0\nen \U0001f600 4 0\nen \uff76 4 0\nen \ufeffbom 4 0\nen Z 4 0\nen é 4 0\n".encode(),
        b"en a%20b 5 0\nen a_b 5 0\nen tab\there 1 0\n",
        b"en no_final_newline 2 0",
    ]
)


@pytest.fixture(scope="session")
def edge_case_hour(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("edge-cases") / "edge.gz"
    path.write_bytes(gzip.compress(EDGE_CASE_LINES, mtime=0))
    return path


class Mirror:
    """A directory laid out like dumps.wikimedia.org/other/pageviews."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def add(self, hour: datetime, file: Path) -> Path:
        target = self.root / dump_relative_path(hour)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
        return target


@pytest.fixture
def mirror(tmp_path) -> Mirror:
    return Mirror(tmp_path / "mirror")


def wikitop_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCE_URL_PREFIX", "PATH_OUT_PREFIX",
           "BLACKLIST_URL_IN", "EXECUTION_DATETIME", "FORCE_REPROCESS", "HOURLY", "SPARK_PROPERTIES", "WIKITOP_"))}
    env.update(extra)
    return env


def s3_env(server, cache: Path, **changes) -> dict:
    """The CLI's environment for the S3 test server: its AWS_* variables (with changes; None
    unsets one), and ``cache`` as the cache."""
    env = {k: v for k, v in wikitop_env(WIKITOP_CACHE_DIR=str(cache)).items() if not k.startswith("AWS_")}
    env.update(server.env())
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def run_wikitop(*args, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in a subprocess (real exit codes, real stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "wikitop", *map(str, args)],
        capture_output=True, text=True, env=env or wikitop_env(), timeout=timeout,
    )


@pytest.fixture
def cli(tmp_path):
    """run_wikitop with a private cache directory."""
    cache = tmp_path / "cache"

    def run(*args, env: dict | None = None, timeout: float = 300):
        return run_wikitop(*args, env=env or wikitop_env(WIKITOP_CACHE_DIR=str(cache)), timeout=timeout)

    return run


@contextlib.contextmanager
def unanswering_address():
    """A 127.0.0.1 (host, port) whose listening socket has a full backlog, so that new
    connections to it are dropped unanswered, as behind a firewall."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = [socket.socket() for _ in range(2)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(listener.getsockname())
            yield listener.getsockname()
        finally:
            for filler in fillers:
                filler.close()


def stall_after_data(store) -> tuple[threading.Event, threading.Event]:
    """Make ``store`` wait, once its data file is uploaded and before its marker, until told."""
    uploaded, resume = threading.Event(), threading.Event()
    write = store._write

    def stalling_write(path: str, data: bytes) -> None:
        write(path, data)
        if "/part-" in path and not uploaded.is_set():
            uploaded.set()
            assert resume.wait(30)

    store._write = stalling_write
    return uploaded, resume
