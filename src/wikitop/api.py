"""wikitop as a library: a top list as an Arrow table, published results, read back.

    import wikitop

    table = wikitop.top_pages("2020-01-22T02", source="./mirror", top=10)
    wikitop.publish_result(("2020-01-22T00", "2020-01-22T23"), out="s3://bucket/wikitop")

Settings not given as keywords come from the environment variables of the command line
(``Settings.from_env``). Failures raise a ``WikitopError`` (``NotPublished`` when an hour's
dump is not out yet); ``run_range`` reports each hour's outcome instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from wikitop.model import Period
from wikitop.pipeline import Outcome, Status, Wikitop
from wikitop.publish.results import NotPublishedResult, read_published
from wikitop.publish.store import ResultStore
from wikitop.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa


PeriodLike = Period | datetime | str | tuple


def make_settings(settings: Settings | None = None, *, source: str | list[str] | None = None, **options) -> Settings:
    """``settings`` (by default from the environment) with ``options`` (Settings' field
    names) replaced; ``source`` is one source or a list tried in order."""
    if source is not None:
        options["sources"] = [source] if isinstance(source, str) else list(source)
    return dataclasses.replace(settings or Settings.from_env(), **options)


def top_pages(period: PeriodLike, *, settings: Settings | None = None, source: str | list[str] | None = None,
              **options) -> pa.Table:
    """The top pages of every domain code for an hour (``"2020-01-22T02"`` or a datetime)
    or a window (``(start, end)``, both included), as an Arrow table with the published
    columns, not published. Options are Settings' fields: ``blacklist`` (a path or URL,
    None for none), ``top``, ``ties``, ``engine``, ``cache_dir``, ``strict``..."""
    period = Period.of(period)
    session = Wikitop(make_settings(settings, source=source, **options))
    try:
        return session.top_pages(period)
    finally:
        session.close()


def publish_result(period: PeriodLike, *, settings: Settings | None = None, source: str | list[str] | None = None,
            **options) -> Outcome:
    """Publish the result of an hour, a day (``Period.day``) or a window to ``out``, as
    ``wikitop hour`` and ``wikitop window`` do; its Outcome (done or already done), or the
    error that stopped it, raised."""
    from wikitop.runner import publish_period

    period = Period.of(period)
    session = Wikitop(make_settings(settings, source=source, **options))
    try:
        outcome = next(o for o in publish_period(session, period) if o.period == period)
    finally:
        session.close()
    if outcome.error is not None:
        raise outcome.error
    return outcome


def run_range(start: datetime | str, end: datetime | str, *, settings: Settings | None = None,
              source: str | list[str] | None = None, hourly: bool = True, daily: bool = False,
              allow_incomplete: bool = False, keep_raw: bool = True,
              on_outcome: Callable[[Outcome], None] | None = None, **options) -> list[Outcome]:
    """Publish every hour from start to end (both included) and, with ``daily``, each whole
    UTC day (only days with ``hourly=False``); one Outcome per result, a failed or missing
    hour reported, not raised."""
    from wikitop import runner

    window = Period.of((start, end))
    session = Wikitop(make_settings(settings, source=source, **options))
    try:
        return runner.run_range(session, window.start, window.end, hourly=hourly, daily=daily,
                                allow_incomplete=allow_incomplete, keep_raw=keep_raw, on_outcome=on_outcome)
    finally:
        session.close()


def read_result(out: str, period: PeriodLike, fmt: str | None = None,
                storage_options: dict | None = None) -> pa.Table:
    """A published result read back from ``out`` (a folder or fsspec URL); without ``fmt``
    the first published of csv, parquet and jsonl. NotPublishedResult when there is none."""
    return read_published(ResultStore(out, storage_options or {}), Period.of(period), fmt).table


__all__ = ["Outcome", "Period", "Settings", "Status", "make_settings", "publish_result", "read_result", "run_range",
           "top_pages", "NotPublishedResult"]
