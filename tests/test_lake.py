"""The pageviews lake: ingest fills it, hours are ranked from it byte for byte as from their dumps,
other readers (DuckDB, pyarrow) read it, and the cache's old totals move into it."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

import reference
import s3server
from conftest import HOUR, run_wikitop, s3_env, wikitop_env
from reference import read_pageviews
from wikitop.hours import dump_file_name, format_hour
from wikitop.lake import Lake, Source
from wikitop.synthetic import generate_hour

# DuckDB reads the zero-padded month=01 and hour=02 as text unless told their types.
HIVE_TYPES = "{'year': INTEGER, 'month': INTEGER, 'day': INTEGER, 'hour': INTEGER}"


def only_data_file(folder: Path) -> bytes:
    [data] = folder.glob("part-*")
    return data.read_bytes()


def test_an_ingested_hour_is_read_by_others_and_ranked_as_its_dump(cli, mirror, real_hour, tmp_path):
    mirror.add(HOUR, real_hour)
    hour = format_hour(HOUR)
    lake = tmp_path / "lake"
    ingested = cli("ingest", hour, hour, "--source", mirror.root, "--lake", lake)
    assert ingested.returncode == 0, ingested.stderr
    partition = lake / "pageviews/year=2020/month=01/day=22/hour=02"
    manifest = json.loads((partition / "_SUCCESS").read_text())
    assert manifest["hour"] == hour and manifest["source"]["file"] == "pageviews-20200122-030000.gz"
    expected, _ = read_pageviews(real_hour)
    assert manifest["rows"] == len(expected)
    # Other readers: DuckDB with hive partitioning, and pyarrow's dataset.
    rows = duckdb.sql(f"SELECT domain_code, page_title, views, year, month, day, hour FROM read_parquet("
                      f"'{lake}/pageviews/**/*.parquet', hive_partitioning=true, hive_types={HIVE_TYPES})").fetchall()
    assert {(code, title): views for code, title, views, *_ in rows} == expected
    assert {tuple(r[3:]) for r in rows} == {(2020, 1, 22, 2)}
    table = ds.dataset(lake / "pageviews", format="parquet", partitioning="hive").to_table()
    assert dict(zip(zip(table["domain_code"].to_pylist(), table["page_title"].to_pylist()),
                    table["views"].to_pylist())) == expected

    # Ranked from the lake with no dump anywhere, the result is the dump's, byte for byte.
    from_dump = cli("hour", hour, "--source", mirror.root, "--out", tmp_path / "from-dump", "--no-keep-totals")
    assert from_dump.returncode == 0, from_dump.stderr
    shutil.rmtree(mirror.root)
    shutil.rmtree(tmp_path / "cache" / "pageviews", ignore_errors=True)
    from_lake = cli("hour", hour, "--source", mirror.root, "--out", tmp_path / "from-lake", "--lake", lake)
    assert from_lake.returncode == 0, from_lake.stderr
    assert "from the lake" in from_lake.stdout
    folder = "format=csv/year=2020/month=01/day=22/hour=02"
    assert only_data_file(tmp_path / "from-lake" / folder) == only_data_file(tmp_path / "from-dump" / folder)
    marker = json.loads((tmp_path / "from-lake" / folder / "_SUCCESS").read_text())
    assert marker["inputs"][0]["file"] == "pageviews-20200122-030000.gz" and "lake" in marker["inputs"][0]


def put_hours(lake: Lake, tmp_path: Path, hours: list) -> None:
    """One page's totals as each of ``hours`` in ``lake``."""
    staged = tmp_path / "t.parquet"
    duckdb.sql(f"COPY (SELECT 'en' AS domain_code, 'Cat' AS page_title, 3::BIGINT AS views) TO '{staged}'")
    for hour in hours:
        lake.write_hour(hour, staged, rows=1, source=Source(dump_file_name(hour)), lines=None)


def test_a_manifest_naming_a_missing_file_is_not_held(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    put_hours(lake, tmp_path, [HOUR])
    assert lake.has(HOUR) and lake.hours() == [HOUR]
    next(Path(lake.partition(HOUR)).glob("part-*")).unlink()
    assert not lake.has(HOUR) and lake.hours() == []


def test_the_cache_totals_move_into_the_default_lake(cli, mirror, real_hour, tmp_path):
    cache = tmp_path / "cache"
    old = cache / "totals/2020/2020-01/totals-20200122-02.parquet"
    old.parent.mkdir(parents=True)
    duckdb.sql(f"COPY (SELECT 'en' AS domain_code, 'Cat' AS page_title, 7::BIGINT AS views) TO '{old}'")
    result = cli("window", format_hour(HOUR), format_hour(HOUR), "--source", mirror.root, "--out", tmp_path / "o",
                 "--no-blacklist")
    assert result.returncode == 0, result.stderr
    assert not old.exists()
    assert Lake(str(cache / "lake")).hours() == [HOUR]


def test_lake_ls_lists_the_hours_held_and_missing_by_day(cli, tmp_path):
    lake = tmp_path / "lake"
    day = HOUR.replace(hour=0)
    held = [day + timedelta(hours=n) for n in (0, 1, 2, 5, 23, 24, 25)]
    put_hours(Lake(str(lake)), tmp_path, held)
    # An hour whose data file is gone and one without a manifest (a write killed midway) are not held.
    put_hours(Lake(str(lake)), tmp_path, [day + timedelta(hours=7), day + timedelta(hours=8)])
    next(Path(Lake(str(lake)).partition(day + timedelta(hours=7))).glob("part-*")).unlink()
    (Path(Lake(str(lake)).partition(day + timedelta(hours=8))) / "_SUCCESS").unlink()

    listed = cli("lake", "ls", "--lake", lake)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "day\theld\theld_hours\tmissing\tmissing_hours",
        "2020-01-22\t5\t00-02,05,23\t19\t03-04,06-22",
        "2020-01-23\t2\t00-01\t22\t02-23",
    ]
    assert "7 hours held, 41 missing in" in listed.stderr

    spanned = cli("lake", "ls", "2020-01-21T22", "2020-01-22T03", "--lake", lake, "--json")
    assert spanned.returncode == 0, spanned.stderr
    assert json.loads(spanned.stdout) == [{"day": "2020-01-21", "held": [], "missing": [22, 23]},
                                          {"day": "2020-01-22", "held": [0, 1, 2], "missing": [3]}]

    empty = cli("lake", "ls", "--lake", tmp_path / "no-lake")
    assert empty.returncode == 1 and "holds no hour" in empty.stderr
    half = cli("lake", "ls", "2020-01-22T00", "--lake", lake)
    assert half.returncode == 2 and "both START and END" in half.stderr


def test_lake_ls_shows_the_cache_totals_kept_before_the_lake(cli, tmp_path):
    old = tmp_path / "cache/totals/2020/2020-01/totals-20200122-02.parquet"
    old.parent.mkdir(parents=True)
    duckdb.sql(f"COPY (SELECT 'en' AS domain_code, 'Cat' AS page_title, 7::BIGINT AS views) TO '{old}'")
    listed = cli("lake", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["held"] == [2]


LAKE_BUCKET = "wikitop-lake"
THREE_HOURS = [HOUR + timedelta(hours=n) for n in range(3)]


@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("s3fs")
    reason = s3server.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="wikitop-s3-") as workdir, s3server.S3Server(Path(workdir)) as server:
        server.create_bucket(LAKE_BUCKET)
        yield server


@pytest.fixture(scope="module")
def three_hours(tmp_path_factory) -> list[Path]:
    """Three generated hours, different from each other, with bad lines of every kind."""
    folder = tmp_path_factory.mktemp("three-hours")
    paths = [folder / f"{n}.gz" for n in range(len(THREE_HOURS))]
    for seed, path in enumerate(paths):
        generate_hour(path, lines=20_000, seed=100 + seed)
    return paths


def published_window(out: Path) -> tuple[bytes, dict]:
    [marker] = out.rglob("_SUCCESS")  # the one result published under out
    folder = marker.parent
    return only_data_file(folder), json.loads((folder / "_SUCCESS").read_text())


@pytest.mark.s3
def test_a_window_from_a_lake_on_s3_alone_equals_the_window_from_dumps(s3, mirror, three_hours, blacklist_file,
                                                                        tmp_path):
    for hour, path in zip(THREE_HOURS, three_hours):
        mirror.add(hour, path)
    start, end = format_hour(THREE_HOURS[0]), format_hour(THREE_HOURS[-1])
    lake = f"s3://{LAKE_BUCKET}/lake-{uuid.uuid4().hex[:8]}"
    ingested = run_wikitop("ingest", start, end, "--source", mirror.root, "--lake", lake,
                           env=s3_env(s3, tmp_path / "ingest-cache"))
    assert ingested.returncode == 0, ingested.stderr
    assert s3.secret_key not in ingested.stdout + ingested.stderr
    held = Lake(lake, {"key": s3.access_key, "secret": s3.secret_key,
                       "client_kwargs": {"endpoint_url": s3.endpoint_url}}).hours()
    assert held == THREE_HOURS
    listed = run_wikitop("lake", "ls", start, end, "--lake", lake, "--json", env=s3_env(s3, tmp_path / "ls-cache"))
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [{"day": "2020-01-22", "held": [2, 3, 4], "missing": []}]

    from_dumps = run_wikitop("window", start, end, "--source", mirror.root, "--out", tmp_path / "from-dumps",
                             env=wikitop_env(WIKITOP_CACHE_DIR=str(tmp_path / "dump-cache")))
    assert from_dumps.returncode == 0, from_dumps.stderr

    # No dump and no cache: the hours are only in the lake on S3.
    shutil.rmtree(mirror.root)
    shutil.rmtree(tmp_path / "ingest-cache")
    cache = tmp_path / "s3-cache"
    from_lake = run_wikitop("window", start, end, "--source", mirror.root, "--out", tmp_path / "from-lake",
                            "--lake", lake, env=s3_env(s3, cache))
    assert from_lake.returncode == 0, from_lake.stderr
    assert not (cache / "pageviews").exists() and not (cache / "lake").exists()
    data, marker = published_window(tmp_path / "from-lake")
    expected_data, expected_marker = published_window(tmp_path / "from-dumps")
    assert data == expected_data
    assert marker["rows"] == expected_marker["rows"] > 0
    assert marker["hours"] == expected_marker["hours"]
    # And that is the reference's top of the three hours summed.
    rows = list(csv.reader(io.StringIO(gzip.decompress(data).decode())))
    assert rows == reference.expected_csv_rows(three_hours, blacklist_file)
