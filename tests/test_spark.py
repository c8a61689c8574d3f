"""The Spark engine gives the DuckDB engine's answers byte for byte, on the same inputs."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import windows
from conftest import HOUR, wikitop_env
from wikitop.model import TOTALS_SCHEMA
from wikitop.publish.store import serialize
from wikitop.rank import BadInput, ViewsOverflow
from wikitop.rank.blacklist import DEFAULT_BLACKLIST, empty_blacklist, load_blacklist, parse_blacklist
from wikitop.rank.duckdb_engine import DuckDBEngine
from wikitop.rank.projects import Listing

pytest.importorskip(
    "pyspark", minversion="4.1", reason="the spark engine needs PySpark 4.1+ (pip install 'wikitop[spark]')"
)
pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(shutil.which("java") is None, reason="the spark engine needs a Java 17+ runtime (java)"),
]

HOUR_ARG = "2020-01-22T02"
# Short runs spend most of their CPU compiling Java at the top tier; the first tier suffices.
# Alone it gets a 48 MB code cache, which a session's many generated query classes can fill.
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
PARTITION = "format=csv/year=2020/month=01/day=22/hour=02"


@pytest.fixture(scope="module")
def spark_engine():
    from wikitop.rank.spark_engine import SparkEngine

    engine = SparkEngine(
        {"spark.master": "local[2]", "spark.sql.shuffle.partitions": "4", "spark.driver.extraJavaOptions": QUICK_JVM}
    )
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def blacklist():
    return load_blacklist(DEFAULT_BLACKLIST)


@pytest.fixture(scope="module")
def both_engines(spark_engine, tmp_path_factory):
    """run(dump, blacklist, top, ties) -> {engine name: (result, totals path)}, each run once."""
    duckdb_engine = DuckDBEngine()
    totals_dir = tmp_path_factory.mktemp("totals")
    runs = {}

    def run(dump: Path, blacklist, top: int, ties: str) -> dict:
        key = (dump, blacklist.sha256, top, ties)
        if key not in runs:
            runs[key] = {}
            for engine in (duckdb_engine, spark_engine):
                totals = totals_dir / f"{len(runs)}-{engine.name}.parquet"
                result = engine.process_hour(dump, blacklist, top, ties, totals_path=totals)
                runs[key][engine.name] = (result, totals)
        return runs[key]

    return run


def sorted_totals(path: Path) -> pa.Table:
    return pq.read_table(path).cast(TOTALS_SCHEMA).sort_by([("domain_code", "ascending"), ("page_title", "ascending")])


def assert_same_answers(duckdb_result, spark_result) -> None:
    for fmt in ("csv", "parquet", "jsonl"):
        assert serialize(spark_result.table, fmt) == serialize(duckdb_result.table, fmt), fmt
    assert spark_result.lines == duckdb_result.lines
    counts = ("pages", "blacklisted_pages", "page_hours")
    assert [getattr(spark_result, name) for name in counts] == [getattr(duckdb_result, name) for name in counts]


def test_real_hour(both_engines, real_hour, blacklist):
    runs = both_engines(real_hour, blacklist, 25, "rank")
    assert_same_answers(runs["duckdb"][0], runs["spark"][0])
    assert runs["spark"][0].blacklisted_pages == 127
    assert runs["spark"][0].lines.metadata() == {"good": 90038, "bad": {}, "bad_total": 0}


# top_pages.sql ranks hours and windows alike; the default run checks every ties rule on windows.
@pytest.mark.parametrize("ties", ["rank", pytest.param("dense", marks=pytest.mark.slow),
                                  pytest.param("row", marks=pytest.mark.slow)])
def test_generated_hour_with_bad_lines_and_blacklisted_pages(both_engines, generated_hour, blacklist, ties):
    runs = both_engines(generated_hour, blacklist, 10, ties)
    assert_same_answers(runs["duckdb"][0], runs["spark"][0])
    spark_result = runs["spark"][0]
    assert len(spark_result.lines.bad) == 6 and spark_result.blacklisted_pages > 0


def test_spark_era_quoted_hour(both_engines, spark_era_hour):
    runs = both_engines(spark_era_hour, empty_blacklist(), 1000, "rank")
    assert_same_answers(runs["duckdb"][0], runs["spark"][0])
    assert any('"' in title for title in runs["spark"][0].table.column("page_title").to_pylist())


def test_lines_that_readers_disagree_on(both_engines, edge_case_hour):
    runs = both_engines(edge_case_hour, empty_blacklist(), 50, "rank")
    assert_same_answers(runs["duckdb"][0], runs["spark"][0])
    assert set(runs["spark"][0].lines.bad) == {
        "empty_line",
        "wrong_field_count",
        "invalid_utf8",
        "empty_domain_code",
        "invalid_count",
        "negative_count",
    }


def test_lines_past_the_longest_kept_are_bad_on_both_engines(both_engines, tmp_path):
    dump = tmp_path / "long_lines.gz"
    longest = b"en " + b"k" * ((1 << 20) - 7) + b" 1 0"
    dump.write_bytes(gzip.compress(b"\n".join([b"en A 2 0", longest, b"x" + longest, b"en B 3 0", b"y" * (3 << 20)])))
    runs = both_engines(dump, empty_blacklist(), 5, "rank")
    assert_same_answers(runs["duckdb"][0], runs["spark"][0])
    assert runs["spark"][0].lines.metadata() == {"good": 3, "bad": {"line_too_long": 2}, "bad_total": 2}


def test_strict_fails_on_bad_lines(spark_engine, edge_case_hour, tmp_path):
    totals = tmp_path / "totals.parquet"
    with pytest.raises(BadInput, match="bad lines"):
        spark_engine.process_hour(edge_case_hour, empty_blacklist(), 5, "rank", strict=True, totals_path=totals)
    assert not totals.exists()


def test_window_from_hourly_totals_written_by_either_engine(
    both_engines, spark_engine, real_hour, generated_hour, spark_era_hour, blacklist
):
    hours = [
        both_engines(real_hour, blacklist, 25, "rank"),
        both_engines(generated_hour, blacklist, 10, "rank"),
        both_engines(spark_era_hour, empty_blacklist(), 1000, "rank"),
    ]
    duckdb_totals = [runs["duckdb"][1] for runs in hours]
    spark_totals = [runs["spark"][1] for runs in hours]
    for duckdb_file, spark_file in zip(duckdb_totals, spark_totals):
        # The same rows, in any order; whether columns are marked NOT NULL is each writer's own.
        assert sorted_totals(spark_file).equals(sorted_totals(duckdb_file))

    expected = DuckDBEngine().process_totals(duckdb_totals, blacklist, 25, "rank")
    # Each engine reads files written by itself and by the other.
    spark_reads = [spark_totals[0], duckdb_totals[1], spark_totals[2]]
    duckdb_reads = [duckdb_totals[0], spark_totals[1], duckdb_totals[2]]
    assert_same_answers(expected, spark_engine.process_totals(spark_reads, blacklist, 25, "rank"))
    assert_same_answers(expected, DuckDBEngine().process_totals(duckdb_reads, blacklist, 25, "rank"))


@pytest.mark.parametrize("ties", ["rank", "dense", "row"])
def test_window_sums_the_pages_never_among_an_hours_busiest(spark_engine, tmp_path, ties):
    paths = windows.write_hours(tmp_path, windows.tricky_hours())
    blacklist = parse_blacklist(windows.BLACKLIST_LINES, "test")
    expected = DuckDBEngine().process_totals(paths, blacklist, windows.TOP, ties)
    assert_same_answers(expected, spark_engine.process_totals(paths, blacklist, windows.TOP, ties))
    assert ("steady.x", "Steady", 1200, 1) in [tuple(row.values()) for row in expected.table.to_pylist()]


def test_window_totals_up_to_2_to_the_63_minus_1_are_exact(spark_engine, tmp_path):
    paths = windows.write_hours(tmp_path, windows.hours_near_64_bits())
    expected = DuckDBEngine().process_totals(paths, empty_blacklist(), 1, "rank")
    assert_same_answers(expected, spark_engine.process_totals(paths, empty_blacklist(), 1, "rank"))
    assert expected.table.to_pylist()[0]["views"] == windows.MAX_VIEWS


def test_views_past_2_to_the_63_minus_1_name_the_page(spark_engine, tmp_path):
    message = r"^the views of big\.x/Past add up to more than 2\^63-1$"
    with pytest.raises(ViewsOverflow, match=message):
        spark_engine.process_totals(windows.write_hours(tmp_path, windows.hours_past_64_bits()), empty_blacklist(), 1,
                                    "rank")
    dump = tmp_path / "overflowing.txt"
    dump.write_bytes(b"big.x Past 9223372036854775807 0\nbig.x Fits 3 0\nbig.x Past 1 0\n")
    with pytest.raises(ViewsOverflow, match=message):
        spark_engine.process_hour(dump, empty_blacklist(), 1, "rank")


@pytest.mark.parametrize("engine_name", ["duckdb", "spark"])
def test_views_of_a_project_past_2_to_the_63_minus_1_name_the_page(spark_engine, tmp_path, engine_name):
    """Summed over a project's codes, as an hour's en + en.m or a window's hours."""
    engine = spark_engine if engine_name == "spark" else DuckDBEngine()
    projects = Listing(group="project")
    message = r"^the views of en\.wikipedia/Past add up to more than 2\^63-1$"
    dump = tmp_path / "overflowing.txt"
    dump.write_bytes(b"en Past 4611686018427387904 0\nen Fits 3 0\nen.m Past 4611686018427387904 0\n")
    with pytest.raises(ViewsOverflow, match=message):
        engine.process_hour(dump, empty_blacklist(), 1, "rank", listing=projects)
    hours = [{("en", "Past"): 2**62, ("en.m", "Past"): 2**62 - 1, ("en", "Fits"): 3}, {("en.m", "Past"): 1}]
    with pytest.raises(ViewsOverflow, match=message):
        engine.process_totals(windows.write_hours(tmp_path / "hours", hours), empty_blacklist(), 1, "rank",
                              listing=projects)


NOISY_PROJECTS = Listing(group="project", exclude_noise=True, namespace="main", exclude=("*_(*)",))


NOISY_DOMAINS = Listing(exclude_noise=True, min_views=2, exclude=("[A-M]*",))


# An hour and a window apply a listing with the same SQL; the default run checks one of each per listing.
@pytest.mark.parametrize(
    ("listing", "hour", "window"),
    [
        (NOISY_PROJECTS, True, True),
        (NOISY_DOMAINS, False, True),
        pytest.param(NOISY_DOMAINS, True, False, marks=pytest.mark.slow),
    ],
    ids=["projects-hour-and-window", "domains-window", "domains-hour"],
)
def test_noise_controls_and_projects_give_the_same_bytes(both_engines, spark_engine, real_hour, blacklist,
                                                          listing, hour, window):
    if hour:
        expected = DuckDBEngine().process_hour(real_hour, blacklist, 5, "rank", listing=listing)
        assert_same_answers(expected, spark_engine.process_hour(real_hour, blacklist, 5, "rank", listing=listing))
        assert expected.table.num_rows > 50
    if window:
        totals = both_engines(real_hour, blacklist, 25, "rank")["duckdb"][1]
        expected = DuckDBEngine().process_totals([totals, totals], blacklist, 5, "dense", listing=listing)
        assert_same_answers(expected, spark_engine.process_totals([totals, totals], blacklist, 5, "dense",
                                                                  listing=listing))
        assert expected.table.num_rows > 50


def test_min_views_and_projects_in_a_tricky_window_give_the_same_bytes(spark_engine, tmp_path):
    paths = windows.write_hours(tmp_path, windows.tricky_hours())
    listing = Listing(group="project", min_views=1000)
    expected = DuckDBEngine().process_totals(paths, empty_blacklist(), windows.TOP, "rank", listing=listing)
    assert_same_answers(expected, spark_engine.process_totals(paths, empty_blacklist(), windows.TOP, "rank",
                                                              listing=listing))
    assert ("steady.x", "Steady", 1200, 0.0, 1) in [tuple(row.values()) for row in expected.table.to_pylist()]


def test_cli_publishes_the_same_bytes_with_spark(cli, mirror, spark_era_hour, tmp_path):
    mirror.add(HOUR, spark_era_hour)
    published = {}
    for engine, extra in (("duckdb", ()), ("spark", ("--engine", "spark", "--spark-conf", "spark.master=local[1]"))):
        out = tmp_path / engine
        env = wikitop_env(
            WIKITOP_CACHE_DIR=str(tmp_path / "cache"),
            SPARK_PROPERTIES=f"spark.sql.shuffle.partitions=4\nspark.driver.extraJavaOptions={QUICK_JVM}\n",
        )
        result = cli("hour", HOUR_ARG, "--source", mirror.root, "--out", out, *extra, env=env)
        assert result.returncode == 0, result.stderr
        marker = json.loads((out / PARTITION / "_SUCCESS").read_text())
        published[engine] = marker, (out / PARTITION / marker["file"]).read_bytes()
    (duckdb_marker, duckdb_data), (spark_marker, spark_data) = published["duckdb"], published["spark"]
    assert spark_data == duckdb_data
    assert spark_marker["engine"] == "spark"
    for key in ("file", "lines", "pages", "rows", "blacklist"):
        assert spark_marker[key] == duckdb_marker[key], key


@pytest.mark.parametrize("listing", [Listing(exclude_noise=True), Listing(namespace="main", group="project")])
def test_namespace_case_rules_give_the_same_bytes(spark_engine, tmp_path, listing):
    """Cyrillic, Greek (final sigma) and Turkish dotted I namespace prefixes, lowered by each engine."""
    from test_listing import namespace_dump

    dump = namespace_dump(tmp_path / "namespaces.txt")
    expected = DuckDBEngine().process_hour(dump, empty_blacklist(), 1000, "row", listing=listing)
    assert_same_answers(expected, spark_engine.process_hour(dump, empty_blacklist(), 1000, "row", listing=listing))
