"""The scale-out engine: the shared SQL on Apache Spark, in local mode or on a cluster.

``pip install 'wikitop[spark]'`` and a Java 17+ runtime. Spark properties come from
``--spark-conf`` and SPARK_PROPERTIES; ``spark.master`` (default ``local[*]``) picks
where it runs, so the same command works on one machine, Kubernetes, YARN or a
standalone cluster. Paths given to the engine are local paths: on a cluster they must
be on storage every executor mounts at the same place.

Lines are read and judged as the DuckDB engine's reader does: ``\\n``, ``\\r\\n`` and a
lone ``\\r`` end a line (Hadoop's text reader, as Arrow's CSV reader); invalid UTF-8 is
found on the raw bytes (Spark's text reader does not replace them). A gzip file cannot be
split, so one task reads an hour, and its lines are then spread over the cluster.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import wikitop
from wikitop.files import temporary_path
from wikitop.model import result_schema
from wikitop.rank.base import EngineResult, LineReport, ViewsOverflow, fold_line_stats
from wikitop.rank.blacklist import Blacklist, canonical_titles
from wikitop.rank.projects import Listing, project_blacklist
from wikitop.rank.sql import render
from wikitop.source.gzipfile import MAX_LINE_BYTES

try:
    from pyspark import cloudpickle
    from pyspark.errors import ArithmeticException
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.functions import arrow_udf
except ImportError:
    raise RuntimeError("the spark engine needs PySpark 4.1 or later: pip install 'wikitop[spark]'") from None

log = logging.getLogger(__name__)

DEFAULT_MASTER = "local[*]"
BLACKLIST_SLICE_ROWS = 5_000

# Settings the shared SQL's meaning depends on; they override the user's.
SQL_SEMANTICS = {
    # The SQL's string literals are raw ('\"' is a backslash and a quote), as in DuckDB.
    "spark.sql.parser.escapedStringLiterals": "true",
    # Overflow and bad casts are errors, as in DuckDB (TRY_CAST is used where NULL is wanted).
    "spark.sql.ansi.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}
DEFAULTS = {
    "spark.app.name": "wikitop",
    "spark.ui.showConsoleProgress": "false",
    # Lets adaptive execution size the partitions of cached relations too; otherwise each
    # cached aggregate keeps spark.sql.shuffle.partitions (200) partitions, mostly tiny.
    "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
}
# A one-off local run needs no web UI (nor its port); spark.ui.enabled=true brings it back.
LOCAL_DEFAULTS = {"spark.ui.enabled": "false"}

LOG4J2_PROPERTIES = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = stderr
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = spark: %p %c{1}: %m%n%ex
logger.native_hadoop.name = org.apache.hadoop.util.NativeCodeLoader
logger.native_hadoop.level = error
# The shared SQL needs spark.sql.parser.escapedStringLiterals, which warns on every query.
logger.sql_conf.name = org.apache.spark.sql.internal.SQLConf
logger.sql_conf.level = error
"""

# Each line of the dump as the fields of the shared SQL's raw_lines contract, plus what
# the reader side rejects (counted here, as the DuckDB engine's dump reader does).
# An empty line becomes the NULL domain code of the raw_lines contract. A line past
# MAX_LINE_BYTES is a bad line here too, though Spark's reader holds it whole.
_PARSED_LINES = """
SELECT
    CASE
        WHEN octet_length(value) > {max_line_bytes} THEN 'line_too_long'
        WHEN NOT is_valid_utf8(value) THEN 'invalid_utf8'
        WHEN value = '' THEN NULL
        WHEN size(fields) <> 4 AND startswith(value, ' ') THEN 'empty_domain_code'
        WHEN size(fields) <> 4 THEN 'wrong_field_count'
    END AS parse_problem,
    value = '' AS empty_line,
    fields
FROM (
    SELECT value, split(value, ' ', -1) AS fields
    FROM dump_lines
) AS split_lines
""".format(max_line_bytes=MAX_LINE_BYTES)
_RAW_LINES = """
SELECT
    CASE WHEN empty_line THEN NULL ELSE get(fields, 0) END AS domain_code,
    get(fields, 1) AS page_title,
    get(fields, 2) AS views_text
FROM parsed_lines
WHERE parse_problem IS NULL
"""


class SparkEngine:
    """One Spark session per engine, started on first use; calls must not overlap
    (the relations are temporary views of that session)."""

    name = "spark"

    def __init__(self, spark_conf: dict[str, str]):
        self.spark_conf = dict(spark_conf)
        self._spark = None
        self._blacklist_sha256: str | None = None
        self._blacklist_frame = None

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = _start_session(self.spark_conf)
        return self._spark

    def process_hour(self, dump_path, blacklist, top, ties, strict=False, totals_path=None, listing=Listing()):
        dump_path = Path(dump_path)
        spark = self.spark
        # With pages left out or regrouped, the hour's page totals are the input of
        # listed_pageviews.sql; page_totals is then what that leaves.
        totals = "all_pageviews" if listing.selects_pages else "page_totals"
        lines, pages, page_totals = self._page_totals(dump_path, strict, totals, totals_path)
        listed_totals = None
        try:
            if listing.selects_pages:
                self._list_pages(listing)
                listed = render("project_totals") if listing.grouped else "SELECT * FROM listed_pageviews"
                with _overflowing_page_named(spark, "listed_pageviews"):
                    listed_totals = spark.sql(listed).persist()
                    listed_totals.createOrReplaceTempView("page_totals")
                    listed_totals.count()
            if listing.grouped:
                blacklist = project_blacklist(blacklist)
            result = self._top(pages, blacklist, top, ties, listing.min_views)
            if listing.grouped:
                result.table = self._project_top(result.table)
        finally:
            for frame in (page_totals, listed_totals):
                if frame is not None:
                    frame.unpersist()
        result.lines = lines
        return result

    def write_hour_totals(self, dump_path, totals_path, strict=False):
        lines, pages, page_totals = self._page_totals(Path(dump_path), strict, "page_totals", totals_path)
        page_totals.unpersist()
        return lines, pages

    def _page_totals(self, dump_path: Path, strict: bool, totals: str,
                     totals_path: Path | None) -> tuple[LineReport, int, DataFrame]:
        """The view ``totals`` of the hour's page totals (cached: the caller unpersists the
        frame returned), written to ``totals_path`` if given, the line report and the pages."""
        spark = self.spark
        # Lines end at '\n' only, as the format says; by default Spark also ends them at '\r'.
        dump_lines = spark.read.text(_spark_path(dump_path), lineSep="\n")
        # A gzip file is read by a single task; spread its lines before any work on them.
        dump_lines.repartition(spark.sparkContext.defaultParallelism, "value").createOrReplaceTempView("dump_lines")
        parsed_lines = spark.sql(_PARSED_LINES).persist()
        page_totals = None
        try:
            parsed_lines.createOrReplaceTempView("parsed_lines")
            spark.sql(_RAW_LINES).createOrReplaceTempView("raw_lines")
            spark.sql(render("clean_lines")).createOrReplaceTempView("hour_lines")
            lines, unique_pairs = self._line_report()
            if strict:
                lines.check_strict(dump_path.name)
            spark.sql(
                "SELECT domain_code, page_title, views FROM hour_lines WHERE problem IS NULL"
            ).createOrReplaceTempView("pageviews")
            with _overflowing_page_named(spark, "hour_lines"):
                page_totals = spark.sql("SELECT * FROM pageviews" if unique_pairs else render("page_totals")).persist()
                page_totals.createOrReplaceTempView(totals)
                pages = page_totals.count()
                parsed_lines.unpersist()  # page_totals is cached now
                if totals_path is not None:
                    _write_totals(page_totals, Path(totals_path))
            return lines, pages, page_totals
        except BaseException:
            if page_totals is not None:
                page_totals.unpersist()
            raise
        finally:
            parsed_lines.unpersist()

    def process_totals(self, totals_paths, blacklist, top, ties, listing=Listing()):
        spark = self.spark
        hours = len(totals_paths)
        hourly_totals = spark.read.parquet(*(_spark_path(Path(p)) for p in totals_paths)).select(
            "domain_code", "page_title", "views"
        )
        page_hours = hourly_totals.count()
        if listing.selects_pages:
            hourly_totals.createOrReplaceTempView("all_pageviews")
            hours *= listing.rows_per_page_hour(self._list_pages(listing))
            spark.sql("SELECT domain_code, page_title, views FROM listed_pageviews").createOrReplaceTempView(
                "hourly_totals"
            )
        else:
            hourly_totals.createOrReplaceTempView("hourly_totals")
        self._register_blacklist(project_blacklist(blacklist) if listing.grouped else blacklist)
        ranked = render("top_pages", top=top, ties=ties, min_views=listing.min_views)
        cached = []
        try:
            with _overflowing_page_named(spark, "hourly_totals"):
                # Checkpointed, not cached: Spark does not match a cached query that has a WITH
                # to the views built on it, and recomputed the seeds for each of them.
                seeds = spark.sql(render("window_seeds", top=top, hours=hours)).localCheckpoint()
                seeds.createOrReplaceTempView("page_totals")
                cached.append(self._match_blacklist())
                spark.sql(ranked).createOrReplaceTempView("seed_top")
                # A row per domain code, brought to the driver and back, so that the queries that
                # follow plan over these rows instead of inlining the ranking of the seeds.
                bounds = spark.sql(render("window_bounds", top=top, ties=ties)).toArrow()
                while True:
                    spark.createDataFrame(bounds).createOrReplaceTempView("window_bounds")
                    spark.sql(
                        render("window_pageviews", hours=hours, min_views=listing.min_views)
                    ).createOrReplaceTempView("pageviews")
                    page_totals = spark.sql(render("page_totals")).persist()
                    cached.append(page_totals)
                    page_totals.createOrReplaceTempView("page_totals")
                    cached.append(self._match_blacklist())
                    table = _as_result(spark.sql(ranked).toArrow())
                    spark.createDataFrame(table).createOrReplaceTempView("window_top")
                    unproven = spark.sql(render("window_unproven_bounds", top=top, ties=ties)).toArrow()
                    if not unproven.num_rows:
                        if listing.grouped:
                            table = self._project_top(table)
                        return EngineResult(table=table, page_hours=page_hours)
                    proven = pc.invert(pc.is_in(bounds["domain_code"], value_set=unproven["domain_code"]))
                    bounds = bounds.filter(proven)
        finally:
            for frame in cached:
                frame.unpersist()

    def _line_report(self) -> tuple[LineReport, bool]:
        """Lines by problem, and whether every good line is a distinct pair."""
        report = LineReport()
        for problem, count in self.spark.sql(
            "SELECT parse_problem, COUNT(*) FROM parsed_lines WHERE parse_problem IS NOT NULL GROUP BY parse_problem"
        ).collect():
            report.bad[problem] += count
        fold_line_stats(self.spark.sql(render("line_stats")).collect(), report)
        [(unique_pairs,)] = self.spark.sql(
            f"SELECT COUNT(*) = COUNT(DISTINCT pair_hash) FROM ({render('pair_hashes')}) AS hashes"
        ).collect()
        return report, unique_pairs

    def _top(self, pages: int, blacklist: Blacklist, top: int, ties: str, min_views: int) -> EngineResult:
        self._register_blacklist(blacklist)
        blacklisted_pages = self._match_blacklist()
        try:
            blacklisted = blacklisted_pages.count()
            table = self.spark.sql(render("top_pages", top=top, ties=ties, min_views=min_views)).toArrow()
        finally:
            blacklisted_pages.unpersist()
        return EngineResult(table=_as_result(table), pages=pages, blacklisted_pages=blacklisted)

    def _list_pages(self, listing: Listing) -> list[str]:
        """The listed_pageviews view over all_pageviews, with the relations it joins made
        for the domain codes of all_pageviews, which it returns."""
        spark = self.spark
        codes = [row[0] for row in spark.sql("SELECT DISTINCT domain_code FROM all_pageviews").collect()]
        for name, table in listing.relations(codes).items():
            spark.createDataFrame(table).createOrReplaceTempView(name)
        spark.sql(render("listed_pageviews", excluded_patterns=listing.exclude)).createOrReplaceTempView(
            "listed_pageviews"
        )
        return codes

    def _project_top(self, listed_top: pa.Table) -> pa.Table:
        """The list over projects with each page's mobile share (project_top.sql)."""
        self.spark.createDataFrame(listed_top).createOrReplaceTempView("listed_top")
        return _as_result(self.spark.sql(render("project_top")).toArrow())

    def _match_blacklist(self) -> DataFrame:
        """The retitled_pages and blacklisted_pages views of the current page_totals; the
        latter cached (the caller unpersists it)."""
        spark = self.spark
        spark.sql(render("retitled_pages")).createOrReplaceTempView("retitled_pages")
        blacklisted_pages = spark.sql(render("blacklisted_pages")).persist()
        blacklisted_pages.createOrReplaceTempView("blacklisted_pages")
        return blacklisted_pages

    def _register_blacklist(self, blacklist: Blacklist) -> None:
        """The blacklist relation, cached while the same list is used (a range's hours).

        Rows made on the driver travel inside Spark's tasks: the list goes in slices (Spark
        warns of tasks over 1 MB), and once shuffled into the cache, tasks no longer carry it.
        """
        if blacklist.sha256 == self._blacklist_sha256:
            return
        if self._blacklist_frame is not None:
            self._blacklist_frame.unpersist()
        table = blacklist.table
        starts = range(0, max(table.num_rows, 1), BLACKLIST_SLICE_ROWS)
        slices = [table.slice(start, BLACKLIST_SLICE_ROWS) for start in starts]
        frame = functools.reduce(DataFrame.union, map(self.spark.createDataFrame, slices))
        self._blacklist_frame = frame.repartition(1).persist()
        self._blacklist_frame.createOrReplaceTempView("blacklist")
        self._blacklist_sha256 = blacklist.sha256

    def close(self) -> None:
        if self._spark is not None:
            self._spark.stop()
            self._spark = None
            self._blacklist_sha256 = self._blacklist_frame = None


def _start_session(spark_conf: dict[str, str]) -> SparkSession:
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise RuntimeError("the spark engine needs a Java 17+ runtime: java on the PATH or JAVA_HOME")
    # Under spark-submit the master it was given stands unless --spark-conf names another.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    master = spark_conf.get("spark.master") or (None if submitted else DEFAULT_MASTER)
    local = master is not None and master.startswith("local")
    defaults = {**DEFAULTS, **({"spark.master": master} if master else {}), **(LOCAL_DEFAULTS if local else {})}
    conf = {**defaults, **spark_conf, **SQL_SEMANTICS}
    # Read by the JVM and the Python workers PySpark starts, so they go in the environment.
    # PySpark takes the workers' Python from PYSPARK_PYTHON alone (default: python3 on the
    # PATH); local workers need this interpreter, which has pyarrow.
    worker_python = conf.get("spark.pyspark.python") or (sys.executable if local else None)
    if worker_python:
        os.environ.setdefault("PYSPARK_PYTHON", worker_python)
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # nothing outside needs to reach it
    with tempfile.TemporaryDirectory(prefix="wikitop-spark-") as config_dir:
        log4j_file = Path(config_dir) / "log4j2.properties"
        log4j_file.write_text(LOG4J2_PROPERTIES)
        # The driver JVM reads this once at start; a user's own -D options come after and win.
        java_options = f"-Dlog4j.configurationFile={log4j_file} {conf.get('spark.driver.extraJavaOptions', '')}"
        builder = SparkSession.builder
        for key, value in {**conf, "spark.driver.extraJavaOptions": java_options.strip()}.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
    for key, value in SQL_SEMANTICS.items():
        spark.conf.set(key, value)  # also when getOrCreate returned a running session
    log.info("spark %s session on %s", spark.version, spark.sparkContext.master)

    # Shipped by value, so that executors need PySpark and pyarrow but not wikitop.
    cloudpickle.register_pickle_by_value(wikitop)
    spark.udf.register("wikitop_canonical_title", arrow_udf(canonical_titles, "string"))
    return spark


@contextlib.contextmanager
def _overflowing_page_named(spark: SparkSession, summed: str) -> Iterator[None]:
    """Turns Spark's error on a sum of views past 2^63-1 into ViewsOverflow, naming a page of
    the ``summed`` relation whose views add up past it; other errors pass as they are."""
    try:
        yield
    except ArithmeticException:
        spark.sql(f"SELECT domain_code, page_title, views FROM {summed}").createOrReplaceTempView("summed_pageviews")
        pages = spark.sql(render("overflowing_pages")).collect()
        if not pages:
            raise
        raise ViewsOverflow(*pages[0]) from None


def _spark_path(path: Path) -> str:
    """A local path as Hadoop reads it: never resolved against a cluster's default filesystem."""
    return "file://" + str(path.resolve())


def _as_result(table: pa.Table) -> pa.Table:
    """Spark's window ranks are 32-bit and its columns may be marked not null."""
    schema = result_schema(table.column_names)
    return table.select(schema.names).cast(schema)


def _write_totals(page_totals, path: Path) -> None:
    """Page totals as one Parquet file, written to a temporary folder and moved into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        (
            page_totals.repartition(1)
            .sortWithinPartitions("domain_code", "page_title")
            .write.option("compression", "zstd")
            .parquet(_spark_path(temporary))
        )
        [part] = temporary.glob("part-*.parquet")
        os.replace(part, path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
