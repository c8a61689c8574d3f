"""What results are: the periods they cover and the columns they hold.

Kept apart from the engines that compute results and the stores that publish them, so
that either can name a result's shape without importing the other.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from wikitop.hours import ONE_HOUR, HourError, format_hour, parse_hour

if TYPE_CHECKING:
    import pyarrow as pa

HOUR_RULE = (
    "hour = the UTC hour of views (HH:00:00-HH:59:59); its dump file is stamped one hour later"
)


@dataclass(frozen=True)
class Period:
    """What a result covers: an hour, a UTC day, or a window of hours (end included)."""

    kind: str
    start: datetime
    end: datetime

    @classmethod
    def hour(cls, hour: datetime) -> Period:
        return cls("hour", hour, hour)

    @classmethod
    def day(cls, first_hour: datetime) -> Period:
        return cls("day", first_hour, first_hour + 23 * ONE_HOUR)

    @classmethod
    def window(cls, start: datetime, end: datetime) -> Period:
        return cls("window", start, end)

    @property
    def hours(self) -> list[datetime]:
        count = int((self.end - self.start) / ONE_HOUR) + 1
        return [self.start + i * ONE_HOUR for i in range(count)]

    @property
    def partition(self) -> str:
        s = self.start
        if self.kind == "hour":
            return f"year={s:%Y}/month={s:%m}/day={s:%d}/hour={s:%H}"
        if self.kind == "day":
            return f"year={s:%Y}/month={s:%m}/day={s:%d}"
        return f"period={self.label}"  # START..END, as show and report take it

    @property
    def label(self) -> str:
        if self.kind == "hour":
            return format_hour(self.start)
        if self.kind == "day":
            return f"{self.start:%Y-%m-%d}"
        return f"{format_hour(self.start)}..{format_hour(self.end)}"

    @classmethod
    def of(cls, value: Period | datetime | str | tuple, day: bool = False) -> Period:
        """A Period as given, an hour (a datetime or its text), a ``(start, end)`` window of
        hours, or the text ``START..END``; with ``day``, the UTC day of the hour (or of the
        day) given. HourError when it cannot be read."""
        if day:
            period = cls.of(value)
            if period.kind == "window":
                raise HourError(f"a day is named by one of its hours, not by the window {period.label}")
            return cls.day(period.start.replace(hour=0))
        if isinstance(value, Period):
            return value
        if isinstance(value, tuple):
            start, end = (cls.of(hour).start for hour in value)
            if end < start:
                raise HourError(f"the window ends ({format_hour(end)}) before it starts ({format_hour(start)})")
            return cls.window(start, end)
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            hour = value.astimezone(UTC)
            if hour.minute or hour.second or hour.microsecond:
                raise HourError(f"{value.isoformat()} is not the start of an hour")
            return cls.hour(hour)
        start, dots, end = str(value).partition("..")
        return cls.of((start, end)) if dots else cls.hour(parse_hour(start))

    def metadata(self) -> dict:
        return {"kind": self.kind, "start": format_hour(self.start), "end": format_hour(self.end)}

    @classmethod
    def from_metadata(cls, record: dict) -> Period:
        return cls(record["kind"], parse_hour(record["start"]), parse_hour(record["end"]))


_SCHEMA_NAMES = frozenset({"RESULT_SCHEMA", "PROJECT_RESULT_SCHEMA", "TOTALS_SCHEMA"})


@functools.cache
def _schemas() -> dict[str, pa.Schema]:
    import pyarrow as pa

    totals = [("domain_code", pa.string()), ("page_title", pa.string()), ("views", pa.int64())]
    return {
        "RESULT_SCHEMA": pa.schema([*totals, ("rank", pa.int64())]),
        "PROJECT_RESULT_SCHEMA": pa.schema(
            [("project", pa.string()), *totals[1:], ("mobile_share", pa.float64()), ("rank", pa.int64())]
        ),
        "TOTALS_SCHEMA": pa.schema(totals),
    }


def result_schema(names) -> pa.Schema:
    """The schema of a published table with these columns: by domain code, or by project."""
    schemas = _schemas()
    return schemas["PROJECT_RESULT_SCHEMA"] if "project" in names else schemas["RESULT_SCHEMA"]


def __getattr__(name: str) -> pa.Schema:
    """RESULT_SCHEMA (the published table), PROJECT_RESULT_SCHEMA (the same, by project
    with each page's mobile share) and TOTALS_SCHEMA (an hour's kept totals), made
    on first use: Arrow takes a fifth of a second to import, which commands that only plan,
    fetch or list need not pay, and a range's first requests need not wait for."""
    # The name first: the import system asks for names such as __path__, which must not import Arrow.
    if name not in _SCHEMA_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _schemas()[name]
