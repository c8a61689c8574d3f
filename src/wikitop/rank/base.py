"""What every engine shares: its result, its line report, the errors it raises on bad input."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from wikitop.errors import WikitopError
from wikitop.rank.blacklist import Blacklist
from wikitop.rank.projects import Listing

if TYPE_CHECKING:
    import pyarrow as pa

ENGINES = ("duckdb", "spark")
# How many hours of a range an engine computes at once, each from a thread of its own. DuckDB
# keeps about 1.5 of 2 cores busy on one hour (parsing, then queries with serial steps); two
# hours at once fill them (8 generated hours of 1M lines: 8.3-8.9 s -> 7.0 s). A Spark
# session computes one, with views of fixed names.
HOURS_AT_ONCE = {"duckdb": 2, "spark": 1}
# Past this, DuckDB spills to disk instead of growing; the hours computed at once share it.
# DuckDB holds 0.36 GB for a 6M-line hour (the process peaks at 0.6 GB) and a window's
# process 0.4 GB (bench/), so the limit only guards against inputs unlike any dump.
DEFAULT_MEMORY_LIMIT = "2GB"


class BadInput(WikitopError):
    """Input an engine refuses: bad lines in a dump while running with --strict, or views
    that add up past what a result can hold."""


class ViewsOverflow(BadInput):
    """A page's views add up to more than 2^63-1, the most a result's views column holds."""

    def __init__(self, domain_code: str, page_title: str):
        super().__init__(f"the views of {domain_code}/{page_title} add up to more than 2^63-1")


@dataclass
class LineReport:
    """What a dump's lines held: good ones and bad ones by kind."""

    good: int = 0
    bad: Counter = field(default_factory=Counter)

    def metadata(self) -> dict:
        return {"good": self.good, "bad": dict(sorted(self.bad.items())), "bad_total": sum(self.bad.values())}

    def check_strict(self, name: str) -> None:
        if self.bad:
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.bad.items()))
            raise BadInput(f"{name} has bad lines ({kinds}) and --strict is set")

    def check_not_empty(self, name: str) -> None:
        """A real hour always has pageview lines; a dump without one is an empty or broken file."""
        if not self.good:
            bad = sum(self.bad.values())
            held = {0: "it holds no line", 1: "its one line is bad"}.get(bad, f"all its {bad} lines are bad")
            raise BadInput(f"{name} has no pageview line ({held}); --allow-empty publishes an empty top for it")


def fold_line_stats(rows, report: LineReport) -> None:
    """Add line_stats.sql's rows (problem, lines) to report."""
    for problem, count in rows:
        if problem is None:
            report.good = count
        else:
            report.bad[problem] += count


@dataclass
class EngineResult:
    """A top list, with what was counted on the way: an hour counts its distinct pages and
    the blacklisted ones; a window counts the hourly rows it read (counting its distinct
    pages would cost as much as summing every page, which windows avoid)."""

    table: pa.Table
    pages: int | None = None
    blacklisted_pages: int | None = None
    page_hours: int | None = None
    lines: LineReport | None = None


class Engine(Protocol):
    name: str

    def process_hour(
        self,
        dump_path: Path,
        blacklist: Blacklist,
        top: int,
        ties: str,
        strict: bool = False,
        totals_path: Path | None = None,
        listing: Listing = Listing(),
    ) -> EngineResult:
        """Top pages of one hourly dump; also writes its full page totals (every page, by
        domain code) as Parquet if asked."""

    def write_hour_totals(self, dump_path: Path, totals_path: Path, strict: bool = False) -> tuple[LineReport, int]:
        """Only write one hourly dump's full page totals as Parquet (nothing ranked); returns its
        line report and how many pages it has."""

    def process_totals(
        self, totals_paths: list[Path], blacklist: Blacklist, top: int, ties: str, listing: Listing = Listing()
    ) -> EngineResult:
        """Top pages over several hours' Parquet page totals (days and windows), summing only
        the pages that can make the lists (window_seeds.sql, window_bounds.sql,
        window_pageviews.sql)."""

    def close(self) -> None: ...
