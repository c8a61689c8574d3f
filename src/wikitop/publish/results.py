"""Published results read back: one result in a given or the first published format, its
rows picked by domain code, and what is published under a prefix, read from the markers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wikitop.errors import WikitopError
from wikitop.hours import format_hour
from wikitop.model import Period
from wikitop.publish.store import FORMATS, ResultStore, rounded_share

if TYPE_CHECKING:
    import pyarrow as pa

KIND_ORDER = {"hour": 0, "day": 1, "window": 2}


class NotPublishedResult(WikitopError, LookupError):
    """No published result for the period, in the formats looked for."""


@dataclass(frozen=True)
class PublishedResult:
    fmt: str
    marker: dict
    table: pa.Table


def read_published(store: ResultStore, period: Period, fmt: str | None = None) -> PublishedResult:
    """The published ``period`` in ``fmt``, or else in the first of FORMATS published."""
    formats = [fmt] if fmt else list(FORMATS)
    for candidate in formats:
        found = store.read_result(period, candidate)
        if found is not None:
            return PublishedResult(candidate, *found)
    raise NotPublishedResult(f"nothing published for {period.kind} {period.label} under {store.location} "
                             f"(looked for format {', '.join(formats)})")


def pick_rows(table: pa.Table, domains: Iterable[str] = (), limit: int | None = None) -> list[list]:
    """The table's rows (in its order) of the given domain codes (all when none), at most
    ``limit`` per domain code; the domain code is the first column."""
    wanted = set(domains)
    picked, per_domain = [], Counter()
    for row in zip(*(table.column(name).to_pylist() for name in table.column_names)):
        domain = row[0]
        if (wanted and domain not in wanted) or (limit and per_domain[domain] >= limit):
            continue
        per_domain[domain] += 1
        picked.append(list(row))
    return picked


def absent_groups(table: pa.Table, wanted: Iterable[str], found: Iterable[str]) -> str:
    """Why a result has no rows for the groups asked for and not found; a result ranked by
    project names what to ask for instead of a domain code (en -> en.wikipedia)."""
    from wikitop.rank.projects import project_of

    absent = [group for group in wanted if group not in set(found)]
    text = f"the result has no rows for {table.column_names[0]} {', '.join(absent)}"
    if table.column_names[0] != "project":
        return text
    projects = dict.fromkeys(project_of(group)[0] for group in absent)
    suggested = [project for project in projects if project not in absent]
    if suggested:
        text += f" (it is ranked by project, with --group project: ask for {', '.join(suggested)})"
    return text


def shown_rows(table: pa.Table, domains: Iterable[str] = (), limit: int | None = None) -> list[list]:
    """pick_rows as ``show`` prints them: mobile shares to 4 decimals, as in CSV."""
    if "mobile_share" in table.column_names:
        column = table.column_names.index("mobile_share")
        table = table.set_column(column, "mobile_share", rounded_share(table.column(column)))
    return [[f"{value:g}" if isinstance(value, float) else value for value in row]
            for row in pick_rows(table, domains, limit)]


def listing_entry(store: ResultStore, folder: str, marker: dict) -> dict:
    """What a published result's marker tells: its period, format, parameters, size and place.
    A marker whose period cannot be read is listed with kind ``?`` and the folder's path."""
    params = marker.get("params") or {}
    period = _period_of(marker)
    kind, label = (period.kind, period.label) if period else ("?", folder.rpartition("format=")[2])
    hours = marker.get("hours") or {}
    included = hours.get("included")
    return {
        "kind": kind,
        "period": label,
        "format": marker.get("format"),
        "top": params.get("top"),
        "ties": params.get("ties"),
        "rows": marker.get("rows"),
        "hours": f"{included}/{included + len(hours.get('missing', []))}" if included is not None else None,
        "published_at": marker.get("published_at"),
        "location": store.display(folder),
        "file": marker["file"],
        "params": params,
    }


def list_published(store: ResultStore, fmt: str | None = None) -> list[dict]:
    """The listing entries of every result published under the store (in ``fmt`` only, when
    given), by first hour, then hours before days before windows, then period and format."""
    keyed = []
    for folder, marker in store.markers():
        if fmt is not None and marker.get("format") != fmt:
            continue
        entry = listing_entry(store, folder, marker)
        period = _period_of(marker)
        start = format_hour(period.start) if period else ""
        keyed.append(((start, KIND_ORDER.get(entry["kind"], 3), entry["period"], entry["format"] or ""), entry))
    return [entry for _, entry in sorted(keyed, key=lambda pair: pair[0])]


def _period_of(marker: dict) -> Period | None:
    try:
        return Period.from_metadata(marker["period"])
    except (KeyError, TypeError, ValueError):
        return None
