"""Published results as datasets other engines read: each grain's root is one hive-partitioned
table to DuckDB, pyarrow, Polars and Spark, holding exactly the rows wikitop published."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

import wikitop
from conftest import Mirror
from wikitop.model import Period
from wikitop.settings import Settings
from wikitop.synthetic import generate_hour

START = datetime(2020, 1, 21, 20, tzinfo=UTC)
END = datetime(2020, 1, 22, 23, tzinfo=UTC)
WINDOWS = [("2020-01-22T03", "2020-01-22T08"), ("2020-01-21T20", "2020-01-22T23")]
# Each grain's root and the partition columns its folders name, in order.
GRAINS = {
    "hour": ("format={fmt}", ("year", "month", "day", "hour")),
    "day": ("daily/format={fmt}", ("year", "month", "day")),
    "window": ("windows/format={fmt}", ("period",)),
}
EXTENSIONS = {"csv": "csv.gz", "parquet": "parquet", "jsonl": "jsonl.gz"}
COLUMNS = ("domain_code", "page_title", "views", "rank")
README = Path(__file__).parents[1] / "README.md"


@pytest.fixture(scope="module")
def published(tmp_path_factory, blacklist_file) -> tuple[Path, dict[str, list[Period]]]:
    """Hours, a whole day and two windows published in every format into one --out."""
    root = tmp_path_factory.mktemp("datasets")
    mirror = Mirror(root / "mirror")
    hours = [START + timedelta(hours=i) for i in range(int((END - START) / timedelta(hours=1)) + 1)]
    for number, hour in enumerate(hours):
        path = root / f"hour-{number}.gz"
        generate_hour(path, lines=2000, seed=300 + number, blacklist_path=blacklist_file if number % 5 == 0 else None)
        mirror.add(hour, path)
    out = root / "out"
    periods: dict[str, list[Period]] = {"hour": [Period.hour(hour) for hour in hours],
                                        "day": [Period.day(datetime(2020, 1, 22, tzinfo=UTC))],
                                        "window": [Period.of(window) for window in WINDOWS]}
    for fmt in EXTENSIONS:
        settings = Settings(sources=[str(mirror.root)], out=str(out), fmt=fmt, cache_dir=root / "cache")
        outcomes = wikitop.run_range(START, END, settings=settings, daily=True)
        outcomes += [wikitop.publish_result(window, settings=settings) for window in WINDOWS]
        assert all(outcome.error is None for outcome in outcomes)
    return out, periods


def partition_values(period: Period, grain: str) -> tuple:
    start = period.start
    if grain == "window":
        return (period.label,)
    values = (start.year, start.month, start.day, start.hour)
    return values[:len(GRAINS[grain][1])]


def expected_rows(out: Path, periods: list[Period], grain: str) -> list[tuple]:
    """What wikitop itself reads back, each row with its result's partition values."""
    rows = []
    for period in periods:
        table = wikitop.read_result(str(out), period, "parquet")
        rows += [(*partition_values(period, grain), *row) for row in zip(*(table[c].to_pylist() for c in COLUMNS))]
    return sorted(rows)


def readme_example(language: str, out: Path) -> str:
    """The README's example in ``language`` in its section on output, reading ``out``."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Output"):]
    start = section.index(f"```{language}\n") + len(language) + 4
    return section[start:section.index("```", start)].replace("OUT/", f"{out}/")


def grain_root(out: Path, grain: str, fmt: str) -> Path:
    return out / GRAINS[grain][0].format(fmt=fmt)


def data_glob(out: Path, grain: str, fmt: str) -> str:
    depth = len(GRAINS[grain][1])
    return str(grain_root(out, grain, fmt) / "/".join(["*"] * depth) / f"*.{EXTENSIONS[fmt]}")


@pytest.mark.parametrize("fmt", list(EXTENSIONS))
@pytest.mark.parametrize("grain", list(GRAINS))
def test_duckdb_reads_each_grain_as_one_table_with_typed_partitions(published, grain, fmt):
    out, periods = published
    reader = {"csv": "read_csv", "parquet": "read_parquet", "jsonl": "read_json"}[fmt]
    partitions = GRAINS[grain][1]
    # DuckDB keeps zero-padded values (month=01) as text unless told their types.
    hive_types = "" if grain == "window" else \
        ", hive_types = {" + ", ".join(f"'{column}': INT" for column in partitions) + "}"
    relation = duckdb.sql(f"SELECT {', '.join(partitions + COLUMNS)} FROM "
                          f"{reader}('{data_glob(out, grain, fmt)}', hive_partitioning = true{hive_types})")
    types = dict(zip(relation.columns, map(str, relation.types)))
    if grain != "window":
        assert {types[column] for column in partitions} == {"INTEGER"}
    assert (types["views"], types["rank"]) == ("BIGINT", "BIGINT")
    assert sorted(relation.fetchall()) == expected_rows(out, periods[grain], grain)


def test_the_readmes_duckdb_example_reads_the_hours(published):
    out, periods = published
    rows = duckdb.sql(readme_example("sql", out).rstrip().rstrip(";")).fetchall()
    expected = [row for row in expected_rows(out, periods["hour"], "hour") if row[4] == "en" and row[7] <= 3]
    assert rows == expected and len(rows) >= 3 * len(periods["hour"])


@pytest.mark.parametrize("grain", list(GRAINS))
def test_pyarrow_and_polars_read_each_grain_as_one_table(published, grain):
    polars = pytest.importorskip("polars")
    out, periods = published
    partitions = GRAINS[grain][1]
    expected = expected_rows(out, periods[grain], grain)
    table = ds.dataset(grain_root(out, grain, "parquet"), format="parquet", partitioning="hive").to_table()
    assert sorted(zip(*(table[c].to_pylist() for c in partitions + COLUMNS))) == expected
    frame = polars.read_parquet(data_glob(out, grain, "parquet"), hive_partitioning=True)
    assert sorted(frame.select(partitions + COLUMNS).iter_rows()) == expected
    if grain != "window":
        assert all(frame.schema[column].is_integer() for column in partitions)


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java 17+ runtime (java)")
def test_spark_reads_each_grain_in_each_format_as_one_table(published):
    pytest.importorskip("pyspark", minversion="4.1")
    from pyspark.sql import SparkSession

    out, periods = published
    spark = (SparkSession.builder.master("local[1]").appName("wikitop-datasets")
             .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC").getOrCreate())
    try:
        for grain, (_, partitions) in GRAINS.items():
            expected = expected_rows(out, periods[grain], grain)
            readers = {
                "csv": lambda path: spark.read.csv(path, header=True, inferSchema=True, escape='"'),
                "parquet": spark.read.parquet,
                "jsonl": spark.read.json,
            }
            for fmt, read in readers.items():
                frame = read(str(grain_root(out, grain, fmt)))
                rows = sorted(tuple(row) for row in frame.select(*partitions, *COLUMNS).collect())
                assert rows == expected, (grain, fmt)
        example = {"spark": spark}
        exec(readme_example("python", out), example)
        shown = sorted(tuple(row) for row in example["hours"].select(*GRAINS["hour"][1], *COLUMNS).collect())
        assert shown == expected_rows(out, periods["hour"], "hour")
        assert example["days"].count() == len(expected_rows(out, periods["day"], "day"))
    finally:
        spark.stop()
