"""The embedded engine: DuckDB, in-process, all cores, no server."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import duckdb

from wikitop.blacklist import Blacklist, canonical_title
from wikitop.engines import EngineResult, LineReport, blacklist_table
from wikitop.gzipfile import decompress_verified
from wikitop.sql import render

# DuckDB's CSV reader rejects these lines; map its error types to our kinds.
_REJECT_KINDS = {
    "INVALID ENCODING": "invalid_utf8",
    "INVALID UNICODE": "invalid_utf8",
    "TOO MANY COLUMNS": "wrong_field_count",
    "MISSING COLUMNS": "wrong_field_count",
    "LINE SIZE OVER MAXIMUM": "line_too_long",
}

# Quoting is off: pre-2023 titles hold bare double quotes, and the Spark-era quoting
# is undone in clean_lines.sql. Every field is text so that bad counts can be named.
_READ_DUMP = """
CREATE TEMP VIEW raw_fields AS
SELECT * FROM read_csv(
    {path},
    delim = ' ', quote = '', escape = '', header = false, new_line = '\\n',
    auto_detect = false, strict_mode = true, ignore_errors = true,
    store_rejects = true, rejects_table = 'rejected_lines', rejects_scan = 'rejected_scans',
    columns = {{'domain_code': 'VARCHAR', 'page_title': 'VARCHAR',
                'views_text': 'VARCHAR', 'response_size': 'VARCHAR'}}
)
"""

# The reader gives NULL for an empty field; clean_lines.sql wants '' there, and NULL
# only for the domain code of an empty line (which reads as four NULL fields).
_RAW_LINES = """
CREATE TEMP VIEW raw_lines AS
SELECT
    CASE WHEN domain_code IS NULL AND page_title IS NULL AND views_text IS NULL
              AND response_size IS NULL THEN NULL
         ELSE coalesce(domain_code, '') END AS domain_code,
    coalesce(page_title, '') AS page_title,
    coalesce(views_text, '') AS views_text
FROM raw_fields
"""


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, threads: int | None = None, memory_limit: str | None = None):
        self.threads = threads or os.cpu_count() or 1
        self.memory_limit = memory_limit or os.environ.get("WIKITOP_DUCKDB_MEMORY_LIMIT")

    def _connect(self) -> duckdb.DuckDBPyConnection:
        config = {"threads": self.threads, "preserve_insertion_order": False}
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        connection = duckdb.connect(config=config)
        connection.create_function(
            "wikitop_canonical_title", canonical_title, ["VARCHAR"], "VARCHAR", side_effects=False
        )
        connection.execute("CREATE MACRO xxhash64(a, b) AS hash(a, b)")
        return connection

    def process_hour(self, dump_path, blacklist, top, ties, strict=False, totals_path=None, line_count=None):
        dump_path = Path(dump_path)
        with self._connect() as con, _plain_text(dump_path) as (text_path, counted_lines):
            con.execute(_READ_DUMP.format(path=_sql_string(str(text_path))))
            con.execute(_RAW_LINES)
            con.execute("CREATE TEMP VIEW clean_lines AS " + render("clean_lines"))
            con.execute("CREATE TEMP TABLE hour_lines AS SELECT * FROM clean_lines")
            lines, unique_pairs = self._line_report(con, counted_lines or line_count)
            if strict:
                lines.check_strict(dump_path.name)
            con.execute(
                "CREATE TEMP VIEW pageviews AS SELECT domain_code, page_title, views"
                " FROM hour_lines WHERE problem IS NULL"
            )
            if unique_pairs:
                con.execute("CREATE TEMP VIEW page_totals AS SELECT * FROM pageviews")
            else:
                con.execute("CREATE TEMP TABLE page_totals AS " + render("page_totals"))
            if totals_path is not None:
                _write_totals(con, Path(totals_path))
            result = self._top(con, blacklist, top, ties)
            result.lines = lines
            return result

    def process_totals(self, totals_paths, blacklist, top, ties):
        files = "[" + ", ".join(_sql_string(str(p)) for p in totals_paths) + "]"
        with self._connect() as con:
            con.execute(
                f"CREATE TEMP VIEW pageviews AS SELECT domain_code, page_title, views FROM read_parquet({files})"
            )
            con.execute("CREATE TEMP TABLE page_totals AS " + render("page_totals"))
            return self._top(con, blacklist, top, ties)

    def _line_report(self, con, line_count: int | None) -> tuple[LineReport, bool]:
        """Lines by problem, and whether every good line is a distinct pair."""
        report = LineReport()
        unique_pairs = True
        for problem, count, distinct_pairs in con.sql(render("line_stats")).fetchall():
            if problem is None:
                report.good = count
                unique_pairs = distinct_pairs == count
            else:
                report.bad[problem] += count
        for error_type, line in con.sql("SELECT error_type, csv_line FROM rejected_lines").fetchall():
            kind = _REJECT_KINDS.get(error_type, error_type.lower().replace(" ", "_"))
            if kind == "wrong_field_count" and line is not None and line.startswith(" "):
                kind = "empty_domain_code"
            report.bad[kind] += 1
        if line_count is not None:
            # DuckDB's reader drops empty lines silently: they are the lines unaccounted for.
            unaccounted = line_count - report.good - sum(report.bad.values())
            if unaccounted > 0:
                report.bad["empty_line"] += unaccounted
        return report, unique_pairs

    def _top(self, con, blacklist: Blacklist, top: int, ties: str) -> EngineResult:
        con.register("blacklist", blacklist_table(blacklist))
        con.execute("CREATE TEMP TABLE allowed_pages AS " + render("allowed_pages"))
        [(pages,)] = con.sql("SELECT count(*) FROM page_totals").fetchall()
        [(allowed,)] = con.sql("SELECT count(*) FROM allowed_pages").fetchall()
        table = con.sql(render("top_pages", top=top, ties=ties)).to_arrow_table()
        return EngineResult(table=table, pages=pages, blacklisted_pages=pages - allowed)

    def close(self) -> None:
        pass


@contextmanager
def _plain_text(dump_path: Path):
    """The dump as plain text, which DuckDB parses on all cores (a gzip stream it reads on one).

    Decompressing also verifies the gzip trailers and counts the lines.
    """
    if dump_path.suffix != ".gz":
        yield dump_path, None
        return
    with tempfile.TemporaryDirectory(prefix="wikitop-") as scratch:
        text_path = Path(scratch) / dump_path.with_suffix(".txt").name
        lines = decompress_verified(dump_path, text_path)
        yield text_path, lines


def _write_totals(con, path: Path) -> None:
    """Page totals as Parquet, written under a temporary name and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    con.execute(
        f"COPY (SELECT * FROM page_totals ORDER BY domain_code, page_title) TO {_sql_string(str(temporary))}"
        " (FORMAT parquet, COMPRESSION zstd)"
    )
    os.replace(temporary, path)
