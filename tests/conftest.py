"""Shared fixtures: generated and real hours, mirrors laid out like the dump site, the CLI."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wikitop.blacklist import DEFAULT_BLACKLIST, read_blacklist_bytes
from wikitop.hours import dump_relative_path
from wikitop.synthetic import generate_hour

DATA = Path(__file__).parent / "data"
REAL_PREFIX = DATA / "pageviews-2020-prefix.txt"
HOUR = datetime(2020, 1, 22, 2, tzinfo=UTC)


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
