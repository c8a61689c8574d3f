"""Hours as big as a busy real one (6M lines, as the benchmarks use): not in the default run, run with -m slow."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

import reference
from conftest import HOUR
from dumpserver import DumpServer
from wikitop.synthetic import generate_hour

pytestmark = pytest.mark.slow

HOUR_ARG = "2020-01-22T02"
PARTITION = "format=csv/year=2020/month=01/day=22/hour=02"


@pytest.fixture(scope="module")
def full_size_hour(tmp_path_factory, blacklist_file) -> Path:
    path = tmp_path_factory.mktemp("full-size") / "full.gz"
    generate_hour(path, lines=6_000_000, seed=0, blacklist_path=blacklist_file)
    return path


def test_a_full_size_hour_over_http_matches_the_reference(cli, tmp_path, mirror, full_size_hour, blacklist_file):
    mirror.add(HOUR, full_size_hour)
    out = tmp_path / "out"
    with DumpServer(mirror.root) as server:
        result = cli("hour", HOUR_ARG, "--source", server.url, "--out", out, timeout=900)
    assert result.returncode == 0, result.stderr
    marker = json.loads((out / PARTITION / "_SUCCESS").read_text())
    data = gzip.decompress((out / PARTITION / marker["file"]).read_bytes()).decode("utf-8")

    totals, bad = reference.read_pageviews(full_size_hour)
    rows = reference.top_pages(totals, reference.load_blacklist(blacklist_file))
    expected = [reference.CSV_HEADER] + [[domain, title, str(views), str(rank)] for domain, title, views, rank in rows]
    assert list(csv.reader(io.StringIO(data))) == expected
    assert marker["lines"]["bad"] == bad and len(bad) == 6
    assert marker["lines"]["good"] == 6_000_000 - sum(bad.values())
    assert marker["pages"] == len(totals)
