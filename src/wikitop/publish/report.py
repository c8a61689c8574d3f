"""A published result as one self-contained HTML page: per group (domain code or project)
a ranked table with bars and, for a day or window, each page's views per hour as a sparkline.

The page loads nothing: styles are inline, bars are CSS, sparklines are SVG drawn by
matplotlib and embedded as data URIs (each one its own document, so that the ids matplotlib
gives its elements cannot clash between charts). Jinja2 fills the template with autoescaping
on, since page titles come from the dumps and may hold any markup.

Jinja2 and matplotlib come with ``pip install 'wikitop[report]'`` and are imported here
only, when a report is made.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from wikitop import __version__
from wikitop.files import write_atomically
from wikitop.hours import format_hour
from wikitop.model import HOUR_RULE, Period
from wikitop.publish.results import absent_groups, pick_rows
from wikitop.publish.store import FORMATS, ResultStore

if TYPE_CHECKING:
    import pyarrow as pa

    from wikitop.lake import Lake

# Without a choice of groups, the report shows this many of the busiest: a whole result holds
# some 2,000 domain codes, far more than a page can show readably.
DEFAULT_BUSIEST = 5
DEFAULT_ROWS = 10
KEPT_TOTALS, PUBLISHED_TOP, UNKNOWN = "kept totals", "published hourly top", "unknown"
# The key column of a result's rows when its totals can be looked up in the kept hourly totals.
TOTALS_KEY = "domain_code"

EXTRA_HINT = "the report needs Jinja2 and matplotlib: pip install 'wikitop[report]'"


class ReportError(RuntimeError):
    """A report that cannot be made, in one line."""


class ReportExtraMissing(ReportError):
    """Jinja2 or matplotlib is not installed."""


@dataclass
class HourlyViews:
    """Each wanted page's views in every hour of a period; None where that hour is not known."""

    hours: list[datetime]
    views: dict[tuple[str, str], list[int | None]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # where each hour's views came from

    def of(self, group: str, title: str) -> list[int | None]:
        return self.views.get((group, title), [None] * len(self.hours))


@dataclass
class Row:
    rank: int
    title: str
    views: int
    bar_percent: float
    sparkline: str | None = None  # a data URI
    hourly_text: str = ""


@dataclass
class Group:
    key: str
    rows: list[Row]
    listed_views: int
    total_rows: int


def busiest_groups(table: pa.Table, count: int) -> list[str]:
    """The ``count`` groups (first column) whose listed rows have the most views, busiest first;
    equal views in key order. The listed views stand for a group's traffic: a result holds
    only its top rows."""
    totals: dict[str, int] = defaultdict(int)
    for key, views in zip(table.column(0).to_pylist(), table.column("views").to_pylist()):
        totals[key] += views
    return sorted(totals, key=lambda key: (-totals[key], key))[:count]


def rows_by_group(table: pa.Table, groups: Sequence[str], limit: int) -> dict[str, list[dict]]:
    """The first ``limit`` rows of each group, in the result's order; an unknown group is an error."""
    wanted = {key: [] for key in groups}
    if not wanted:
        return wanted  # pick_rows reads no groups as every group
    # Both result schemas hold the group, title and views first and the rank last.
    for key, title, views, *_, rank in pick_rows(table, groups, limit):
        wanted[key].append({"title": title, "views": views, "rank": rank})
    if not all(wanted.values()):
        raise ReportError(absent_groups(table, groups, [key for key, rows in wanted.items() if rows]))
    return wanted


def hourly_views(
    period: Period,
    pages: Sequence[tuple[str, str]],
    key_column: str,
    lake: Lake | None,
    store: ResultStore | None,
    formats: Sequence[str] = FORMATS,
) -> HourlyViews:
    """The views per hour of ``pages`` ((group, title) pairs) over ``period``: from an hour's kept
    totals when they exist (exact, for results keyed by domain code), else from that hour's
    published top list (a page missing from it is unknown: it had fewer views than the list's
    last place, or was blacklisted), else unknown."""
    hours = period.hours
    result = HourlyViews(hours, {page: [None] * len(hours) for page in pages}, [UNKNOWN] * len(hours))
    if not pages:
        return result
    kept = {}
    if lake is not None and key_column == TOTALS_KEY:
        held = lake.held(hours)
        kept = {position: hour for position, hour in enumerate(hours) if hour in held}
    with lake.files(kept.values()) if kept else contextlib.nullcontext([]) as paths:
        found = _views_in_totals(dict(zip(kept, paths)), pages)
    for (position, group, title), views in found.items():
        result.views[(group, title)][position] = views
    for position in kept:
        result.sources[position] = KEPT_TOTALS
        for page in pages:
            if result.views[page][position] is None:
                result.views[page][position] = 0  # kept totals hold every page viewed that hour
    for position, hour in enumerate(hours):
        if position in kept or store is None:
            continue
        table = _published_hour(store, hour, formats, key_column)
        if table is None:
            continue
        result.sources[position] = PUBLISHED_TOP
        listed = dict(zip(zip(table.column(0).to_pylist(), table.column("page_title").to_pylist()),
                          table.column("views").to_pylist()))
        for page in pages:
            if page in listed:
                result.views[page][position] = listed[page]
    return result


def _views_in_totals(paths: dict[int, Path], pages: Sequence[tuple[str, str]]) -> dict[tuple[int, str, str], int]:
    """{(hour position, domain code, title): views} of ``pages`` in the kept totals files, in one scan."""
    if not paths:
        return {}
    import duckdb
    import pyarrow as pa

    position_of = {str(path): position for position, path in paths.items()}
    codes = sorted({group for group, _ in pages})
    wanted = pa.table({"domain_code": [g for g, _ in pages], "page_title": [t for _, t in pages]})
    query = (
        "SELECT t.filename, t.domain_code, t.page_title, sum(t.views)"
        " FROM read_parquet(?, filename = true) AS t JOIN wanted USING (domain_code, page_title)"
        f" WHERE t.domain_code IN ({', '.join('?' for _ in codes)})"
        " GROUP BY ALL"
    )
    try:
        with duckdb.connect() as con:
            con.register("wanted", wanted)
            rows = con.execute(query, [list(position_of), *codes]).fetchall()
    except duckdb.Error as error:
        raise ReportError(f"cannot read the kept hourly totals: {' '.join(str(error).split())}") from None
    return {(position_of[name], code, title): views for name, code, title, views in rows}


def _published_hour(store: ResultStore, hour: datetime, formats: Sequence[str], key_column: str) -> pa.Table | None:
    for fmt in formats:
        found = store.read_result(Period.hour(hour), fmt)
        if found is not None and found[1].column_names[0] == key_column:
            return found[1]
    return None


def sparkline_svg(values: Sequence[int | None]) -> str:
    """A small line chart of views per hour as an SVG document: gaps and grey bands where an
    hour is unknown, a dot on the highest hour. The same values always give the same bytes."""
    matplotlib, Figure = _matplotlib()
    known = [v for v in values if v is not None]
    series = [math.nan if v is None else v for v in values]
    with matplotlib.rc_context({"svg.hashsalt": "wikitop", "svg.fonttype": "none"}):
        figure = Figure(figsize=(1.8, 0.36), dpi=100)
        axes = figure.add_axes((0.01, 0.08, 0.98, 0.84))
        axes.set_axis_off()
        axes.set_xlim(-0.5, len(values) - 0.5)
        axes.set_ylim(0, max(known, default=0) * 1.08 or 1)
        for position, value in enumerate(values):
            if value is None:
                axes.axvspan(position - 0.5, position + 0.5, color="#e4e4e4", linewidth=0)
        positions = range(len(values))
        axes.fill_between(positions, series, color="#3b6fb6", alpha=0.15, linewidth=0)
        axes.plot(positions, series, color="#3b6fb6", linewidth=1.2, solid_joinstyle="round")
        lonely = [p for p in positions if values[p] is not None
                  and (p == 0 or values[p - 1] is None) and (p == len(values) - 1 or values[p + 1] is None)]
        axes.plot(lonely, [values[p] for p in lonely], linestyle="none", marker="o", markersize=2, color="#3b6fb6")
        if known:
            peak = max(positions, key=lambda p: (values[p] is not None, values[p] or 0))
            axes.plot([peak], [values[peak]], linestyle="none", marker="o", markersize=3, color="#c0392b")
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None}, transparent=True)
    return buffer.getvalue()


def _as_data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


def _hourly_text(hours: Sequence[datetime], values: Sequence[int | None]) -> str:
    return "; ".join(f"{hour:%m-%d %H}h: {'?' if value is None else f'{value:,}'}"
                     for hour, value in zip(hours, values))


def render_report(
    table: pa.Table,
    period: Period,
    marker: dict | None = None,
    groups: Sequence[str] = (),
    limit: int = DEFAULT_ROWS,
    busiest: int = DEFAULT_BUSIEST,
    hourly: HourlyViews | None = None,
) -> str:
    """The HTML page of a result ``table`` (first column the group key, then page_title, views,
    rank) for ``period``: the chosen ``groups`` or else the ``busiest`` ones, ``limit`` rows each,
    with sparklines from ``hourly`` when the period spans more than one hour."""
    jinja2 = _jinja2()
    marker = marker or {}
    chosen = list(dict.fromkeys(groups)) or busiest_groups(table, busiest)
    selected = rows_by_group(table, chosen, limit)
    group_sizes: dict[str, int] = defaultdict(int)
    for key in table.column(0).to_pylist():
        group_sizes[key] += 1
    with_sparklines = hourly is not None and period.kind != "hour"
    rendered = []
    for key in chosen:
        rows = selected[key]
        most = max((row["views"] for row in rows), default=0) or 1
        built = []
        for row in rows:
            item = Row(row["rank"], row["title"], row["views"], round(100 * row["views"] / most, 1))
            if with_sparklines:
                values = hourly.of(key, row["title"])
                item.sparkline = _as_data_uri(sparkline_svg(values))
                item.hourly_text = _hourly_text(hourly.hours, values)
            built.append(item)
        rendered.append(Group(key, built, sum(row["views"] for row in rows), group_sizes[key]))
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("wikitop.publish", "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters["thousands"] = lambda number: f"{number:,}"
    sources = {}
    if with_sparklines:
        for source in hourly.sources:
            sources[source] = sources.get(source, 0) + 1
    params = marker.get("params") or {}
    return environment.get_template("report.html.j2").render(
        period=period,
        period_label=period.label,
        first_hour=format_hour(period.start),
        last_hour=format_hour(period.end),
        key_column=table.column_names[0],
        groups=rendered,
        chosen_by_busiest=not groups,
        with_sparklines=with_sparklines,
        hour_sources=sources,
        sources_names={"kept": KEPT_TOTALS, "published": PUBLISHED_TOP, "unknown": UNKNOWN},
        top=params.get("top"),
        ties=params.get("ties"),
        fmt=marker.get("format"),
        published_at=marker.get("published_at"),
        result_rows=table.num_rows,
        group_count=len(group_sizes),
        hour_rule=HOUR_RULE,
        version=__version__,
    )


def build_report(
    table: pa.Table,
    period: Period,
    marker: dict,
    groups: Sequence[str],
    busiest: int,
    limit: int,
    lake: Lake | None,
    store: ResultStore | None,
    formats: Sequence[str] = FORMATS,
) -> tuple[str, list[str]]:
    """The page of a published result and the groups it shows: ``groups``, or else the
    ``busiest``; for a day or window with the hourly views of their pages (see hourly_views)."""
    chosen = list(dict.fromkeys(groups)) or busiest_groups(table, busiest)
    hourly = None
    if period.kind != "hour":
        selected = rows_by_group(table, chosen, limit)
        pages = [(group, row["title"]) for group in chosen for row in selected[group]]
        hourly = hourly_views(period, pages, table.column_names[0], lake, store, formats)
    html = render_report(table, period, marker, groups=groups, limit=limit, busiest=busiest, hourly=hourly)
    return html, chosen


def write_report(html: str, path: Path) -> Path:
    """Write ``html`` to ``path`` whole or not at all."""
    try:
        return write_atomically(Path(path), html)
    except OSError as error:
        raise ReportError(f"cannot write {path}: {error.strerror or error}") from None


def default_report_name(period: Period) -> str:
    """``wikitop-report-2020-01-22T02.html``, ``...-2020-01-22.html``, ``...-20200122T00-20200128T23.html``."""
    if period.kind == "hour":
        label = f"{period.start:%Y-%m-%dT%H}"
    elif period.kind == "day":
        label = f"{period.start:%Y-%m-%d}"
    else:
        label = f"{period.start:%Y%m%dT%H}-{period.end:%Y%m%dT%H}"
    return f"wikitop-report-{label}.html"


def require_extra() -> None:
    """Raise ReportExtraMissing, with the install hint, unless Jinja2 and matplotlib are importable."""
    _jinja2()
    _matplotlib()


def _jinja2():
    try:
        import jinja2
    except ImportError:
        raise ReportExtraMissing(EXTRA_HINT) from None
    return jinja2


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportExtraMissing(EXTRA_HINT) from None
    return matplotlib, Figure
