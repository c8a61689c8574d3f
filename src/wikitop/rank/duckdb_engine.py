"""The embedded engine: DuckDB, in-process, all cores, no server."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from wikitop.files import write_atomically
from wikitop.rank.base import (
    DEFAULT_MEMORY_LIMIT,
    HOURS_AT_ONCE,
    EngineResult,
    LineReport,
    ViewsOverflow,
    fold_line_stats,
)
from wikitop.rank.blacklist import Blacklist, canonical_titles
from wikitop.rank.projects import Listing, project_blacklist
from wikitop.rank.spill import remove_dead_spill_folders, spill_folder
from wikitop.rank.sql import render
from wikitop.source.dump_reader import RAW_LINES_SCHEMA, PairOrder, read_dump
from wikitop.units import parse_size

if TYPE_CHECKING:
    from collections.abc import Iterator

    import duckdb


HASH_BYTES = 8


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, threads: int | None = None, memory_limit: str = DEFAULT_MEMORY_LIMIT):
        self.threads = threads or os.cpu_count() or 1
        # Each connection is a database of its own: the hours computed at once share the limit.
        connection_memory = parse_size(memory_limit) // HOURS_AT_ONCE[self.name]
        self.connection_memory_limit = f"{connection_memory}B"
        # The pair hashes are checked outside DuckDB, where its limit does not reach: at
        # most this many (8 bytes each, about as much again while DuckDB hands them over).
        self.max_checked_hashes = connection_memory // 4 // (2 * HASH_BYTES)
        remove_dead_spill_folders()  # those runs killed outright left (wikitop.rank.spill)
        # Where DuckDB spills beyond its memory limit (by default it would use the working
        # folder), a folder per connection, since each deletes its own when it closes.
        self.spill_dir = spill_folder(self)
        self._connections = itertools.count()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        # Imported here, not with the module: an hour's dump is already being read meanwhile.
        import duckdb

        self.spill_dir.mkdir(exist_ok=True)  # DuckDB makes its folder only where the parent exists
        config = {
            "threads": self.threads,
            "preserve_insertion_order": False,
            "memory_limit": self.connection_memory_limit,
            "temp_directory": str(self.spill_dir / str(next(self._connections))),
        }
        connection = duckdb.connect(config=config)
        # Drawn on stdout, into the CLI's output, whenever a query takes more than 2 s.
        connection.execute("SET enable_progress_bar_print = false")
        connection.create_function(
            "wikitop_canonical_title", canonical_titles, ["VARCHAR"], "VARCHAR", type="arrow", side_effects=False
        )
        connection.execute("CREATE MACRO xxhash64(a, b) AS hash(a, b)")
        connection.execute("CREATE MACRO div(a, b) AS a // b")
        connection.execute("CREATE MACRO regexp_like(text, pattern) AS regexp_matches(text, pattern)")
        return connection

    def process_hour(self, dump_path, blacklist, top, ties, strict=False, totals_path=None, listing=Listing()):
        dump_path = Path(dump_path)
        # With pages left out or regrouped, the hour's page totals are the input of
        # listed_pageviews.sql; page_totals is then what that leaves.
        totals = "all_pageviews" if listing.selects_pages else "page_totals"
        with read_dump(dump_path) as pieces, self._connect() as con:
            lines, pages = self._page_totals(con, pieces, dump_path, strict, totals, totals_path)
            if listing.selects_pages:
                self._list_pages(con, listing)
                listed = render("project_totals") if listing.grouped else "SELECT * FROM listed_pageviews"
                with _overflowing_page_named(con, "listed_pageviews"):
                    con.execute("CREATE TEMP TABLE page_totals AS " + listed)
            if listing.grouped:
                blacklist = project_blacklist(blacklist)
            result = self._top(con, blacklist, top, ties, pages, listing.min_views)
            if listing.grouped:
                result.table = _project_top(con, result.table)
            result.lines = lines
            return result

    def write_hour_totals(self, dump_path, totals_path, strict=False):
        dump_path = Path(dump_path)
        with read_dump(dump_path) as pieces, self._connect() as con:
            return self._page_totals(con, pieces, dump_path, strict, "page_totals", totals_path)

    def _page_totals(self, con, pieces, dump_path: Path, strict: bool, totals: str,
                     totals_path: Path | None) -> tuple[LineReport, int]:
        """The relation ``totals`` of the hour's page totals, written to ``totals_path`` if
        given; returns the hour's line report and how many pages it has."""
        parse_problems, order = _read_hour_lines(con, pieces)
        lines, unique_pairs = self._line_report(con, parse_problems, order.increasing)
        if strict:
            lines.check_strict(dump_path.name)
        if lines.bad:
            # Counted, the bad lines go: the queries that follow then read every row
            # without filtering (0.08 s less in all, for 0.01 s).
            con.execute("DELETE FROM hour_lines WHERE problem IS NOT NULL")
        con.execute("CREATE TEMP VIEW pageviews AS SELECT domain_code, page_title, views FROM hour_lines")
        if unique_pairs:
            con.execute(f"CREATE TEMP VIEW {totals} AS SELECT * FROM pageviews")
        else:
            with _overflowing_page_named(con, "hour_lines"):
                con.execute(f"CREATE TEMP TABLE {totals} AS " + render("page_totals"))
        if totals_path is not None:
            _write_totals(con, Path(totals_path), totals)
        if unique_pairs:
            return lines, lines.good
        [(pages,)] = con.sql(f"SELECT count(*) FROM {totals}").fetchall()
        return lines, pages

    def process_totals(self, totals_paths, blacklist, top, ties, listing=Listing()):
        files = "[" + ", ".join(_sql_string(str(p)) for p in totals_paths) + "]"
        rows_per_page = len(totals_paths)
        hourly = "all_pageviews" if listing.selects_pages else "hourly_totals"
        with self._connect() as con:
            con.execute(
                f"CREATE TEMP VIEW {hourly} AS SELECT domain_code, page_title, views"
                f" FROM read_parquet({files})"
            )
            [(page_hours,)] = con.sql(f"SELECT count(*) FROM {hourly}").fetchall()
            if listing.selects_pages:
                rows_per_page *= listing.rows_per_page_hour(self._list_pages(con, listing))
                con.execute(
                    "CREATE TEMP VIEW hourly_totals AS SELECT domain_code, page_title, views FROM listed_pageviews"
                )
            con.register("blacklist", (project_blacklist(blacklist) if listing.grouped else blacklist).table)
            with _overflowing_page_named(con, "hourly_totals"):
                result = self._window_top(con, top, ties, rows_per_page, page_hours, listing.min_views)
                if listing.grouped:
                    result.table = _project_top(con, result.table)
                return result

    def _window_top(self, con, top: int, ties: str, hours: int, page_hours: int, min_views: int) -> EngineResult:
        """The window's top list of hourly_totals (window_seeds.sql, window_bounds.sql,
        window_pageviews.sql), summed again without the bounds that may have cut it short;
        ``hours`` is the most rows a page has."""
        ranked = render("top_pages", top=top, ties=ties, min_views=min_views)
        con.execute("CREATE TEMP TABLE page_totals AS " + render("window_seeds", top=top, hours=hours))
        self._match_blacklist(con)
        con.execute("CREATE TEMP TABLE seed_top AS " + ranked)
        con.execute("CREATE TEMP TABLE window_bounds AS " + render("window_bounds", top=top, ties=ties))
        con.execute("CREATE TEMP VIEW pageviews AS " + render("window_pageviews", hours=hours, min_views=min_views))
        unproven_bounds = render("window_unproven_bounds", top=top, ties=ties)
        while True:
            con.execute("CREATE OR REPLACE TEMP TABLE page_totals AS " + render("page_totals"))
            self._match_blacklist(con)
            table = con.sql(ranked).to_arrow_table()
            con.register("window_top", table)
            [(unbounded,)] = con.execute(
                f"DELETE FROM window_bounds WHERE domain_code IN ({unproven_bounds})"
            ).fetchall()
            if not unbounded:
                return EngineResult(table=table, page_hours=page_hours)

    def _line_report(self, con, parse_problems: Counter, pairs_increase: bool) -> tuple[LineReport, bool]:
        """Lines by problem, and whether every good line is shown to be a distinct pair (known
        when the pairs increase, as in every file Wikimedia publishes; checked otherwise,
        unless there are too many lines to check within the memory limit: the lines are
        then summed by pair, which DuckDB does within it)."""
        report = LineReport(bad=Counter(parse_problems))
        fold_line_stats(con.sql(render("line_stats")).fetchall(), report)
        if pairs_increase:
            return report, True
        if report.good > self.max_checked_hashes:
            return report, False
        # Sorting the hashes in NumPy takes a fraction of a hash aggregate over millions of keys.
        hashes = con.sql(render("pair_hashes")).fetchnumpy()["pair_hash"]
        hashes.sort()
        return report, not (hashes[1:] == hashes[:-1]).any()

    def _top(self, con, blacklist: Blacklist, top: int, ties: str, pages: int, min_views: int) -> EngineResult:
        """The top list of page_totals; the hour had ``pages`` pages."""
        con.register("blacklist", blacklist.table)
        self._match_blacklist(con)
        [(blacklisted,)] = con.sql("SELECT count(*) FROM blacklisted_pages").fetchall()
        table = con.sql(render("top_pages", top=top, ties=ties, min_views=min_views)).to_arrow_table()
        return EngineResult(table=table, pages=pages, blacklisted_pages=blacklisted)

    @staticmethod
    def _list_pages(con, listing: Listing) -> list[str]:
        """The listed_pageviews view over all_pageviews, with the relations it joins made
        for the domain codes of all_pageviews, which it returns."""
        codes = [code for (code,) in con.sql("SELECT DISTINCT domain_code FROM all_pageviews").fetchall()]
        for name, table in listing.relations(codes).items():
            con.register(name, table)
        con.execute(
            "CREATE TEMP VIEW listed_pageviews AS " + render("listed_pageviews", excluded_patterns=listing.exclude)
        )
        return codes

    @staticmethod
    def _match_blacklist(con) -> None:
        """The retitled_pages and blacklisted_pages tables of the current page_totals."""
        con.execute("CREATE OR REPLACE TEMP TABLE retitled_pages AS " + render("retitled_pages"))
        con.execute("CREATE OR REPLACE TEMP TABLE blacklisted_pages AS " + render("blacklisted_pages"))

    def close(self) -> None:
        shutil.rmtree(self.spill_dir, ignore_errors=True)


def _read_hour_lines(con, pieces: Iterator[tuple[pa.Table, Counter, PairOrder]]) -> tuple[Counter, PairOrder]:
    """The hour_lines table (clean_lines.sql over a dump's parsed pieces), filled as the
    pieces are parsed; returns the lines the parser rejected, by kind, and the order of
    the pairs. One statement reads the pieces as a stream: a statement for each piece
    (28 in a 6M-line hour) planned clean_lines.sql anew, and all of them took 0.1-0.2 s
    more, in wall time and in CPU time, than this one."""
    parse_problems: Counter = Counter()
    order = PairOrder(True)
    failure: list[Exception] = []

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal order
        try:
            for raw_lines, piece_problems, piece_order in pieces:
                parse_problems.update(piece_problems)
                order = order.followed_by(piece_order)
                yield from raw_lines.to_batches()
        except Exception as error:  # DuckDB reports it as an error of its own: kept to raise as it was
            failure.append(error)
            raise

    con.register("raw_lines", pa.RecordBatchReader.from_batches(RAW_LINES_SCHEMA, batches()))
    try:
        con.execute("CREATE TEMP TABLE hour_lines AS " + render("clean_lines"))
    except Exception:
        if failure:
            raise failure[0] from None
        raise
    finally:
        con.unregister("raw_lines")
    return parse_problems, order


def _project_top(con, listed_top: pa.Table) -> pa.Table:
    """The list over projects with each page's mobile share (project_top.sql)."""
    con.register("listed_top", listed_top)
    return con.sql(render("project_top")).to_arrow_table()


def _write_totals(con, path: Path, relation: str) -> None:
    """Page totals as Parquet, written under a temporary name and renamed; in no particular
    order, since sorting them would cost more than the rest of the hour. zstd's fastest
    level: a 6M-line hour in 1.2 s instead of 1.8 s, for 16% more bytes. Parquet 2's
    encodings (titles as lengths and bytes, views as deltas) take 8% less space than
    Parquet 1's and 15% less time to read back (24 generated hours: 254 MB instead of
    278 MB, their window 6.4-7.2 s instead of 7.4-8.8 s); a 6M-line hour takes 61 MB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda temporary: con.execute(
        f"COPY (SELECT * FROM {relation}) TO {_sql_string(str(temporary))}"
        " (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARQUET_VERSION V2)"
    ))


@contextlib.contextmanager
def _overflowing_page_named(con, summed: str) -> Iterator[None]:
    """Turns DuckDB's error on a sum of views past 2^63-1 into ViewsOverflow, naming a page of
    the ``summed`` relation whose views add up past it; other errors pass as they are."""
    import duckdb

    try:
        yield
    except duckdb.DataError:
        con.execute(f"CREATE OR REPLACE TEMP VIEW summed_pageviews AS SELECT domain_code, page_title, views"
                    f" FROM {summed}")
        pages = con.sql(render("overflowing_pages")).fetchall()
        if not pages:
            raise
        raise ViewsOverflow(*pages[0]) from None
