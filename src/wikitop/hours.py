"""Hours of views and the dump files that hold them.

Wikimedia stamps each hourly file with the END of the hour it aggregates:
``pageviews-20200122-030000.gz`` holds the views of 02:00:00-02:59:59 UTC.
Everywhere in wikitop an hour means the hour of views (its start, in UTC).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from wikitop.errors import WikitopError

ONE_HOUR = timedelta(hours=1)
_DUMP_FILE_NAME = re.compile(r"pageviews-(?P<stamp>\d{8}-\d{2})0000\.gz(?P<suffix>.*)")
_TOTALS_FILE_NAME = re.compile(r"totals-(?P<hour>\d{8}-\d{2})\.parquet")
FIRST_HOUR = datetime(2015, 5, 1, 0, tzinfo=UTC)

# fromisoformat reads every spelling but a one-digit hour, and takes +02:60 for +03:00.
_ONE_DIGIT_HOUR = re.compile(r"(\d{4}-\d{2}-\d{2}[T ])(\d)(?!\d)")
_DATE_FIRST = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]|$)")
_OFFSET = re.compile(r"[+-](?P<hours>\d{2}):?(?P<minutes>\d{2})?$")


class HourError(WikitopError, ValueError):
    """An hour that cannot be read, or that has no dump file."""


def parse_hour(text: str) -> datetime:
    """Read ``2020-01-22T02``, ``2020-01-22T02:00``, ``2020-01-22 02:00:00`` or a date.

    An optional UTC offset (``Z``, ``+02:00``, ``-0500``), less than 24 hours either
    way, is converted to UTC; without one the time is taken as UTC. The result must
    be the start of a UTC hour.
    """
    spelled = _ONE_DIGIT_HOUR.sub(r"\g<1>0\g<2>", text.strip(), count=1)
    offset = _OFFSET.search(spelled[10:])
    if offset and (int(offset["hours"]) >= 24 or int(offset["minutes"] or 0) >= 60):
        raise HourError(f"cannot read hour {text!r}: the UTC offset {offset[0]} is not between -23:59 and +23:59")
    spelling_hint = f"cannot read hour {text!r}: use YYYY-MM-DDTHH, e.g. 2020-01-22T02"
    if not _DATE_FIRST.match(spelled):  # fromisoformat also reads week dates and 20200122T02
        raise HourError(spelling_hint)
    try:
        local = datetime.fromisoformat(spelled)
    except ValueError as error:
        if str(error).startswith("Invalid isoformat string"):
            raise HourError(spelling_hint) from None
        raise HourError(f"cannot read hour {text!r}: {error}") from None  # e.g. day is out of range for month
    moment = local.replace(tzinfo=local.tzinfo or UTC).astimezone(UTC)
    if moment.minute or moment.second or moment.microsecond:
        raise HourError(
            f"{text!r} is not the start of an hour: it is {moment.replace(tzinfo=None).isoformat()} UTC, "
            "minutes, seconds and their fractions must be 0 in UTC"
        )
    return moment


def default_hour(now: datetime | None = None) -> datetime:
    """The hour that started 24 hours before the current hour."""
    now = now or datetime.now(UTC)
    return truncate_to_hour(now) - timedelta(hours=24)


def truncate_to_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def check_hour_available(hour: datetime, now: datetime | None = None) -> None:
    """Raise HourError for hours before the dataset or not yet over."""
    now = now or datetime.now(UTC)
    if hour < FIRST_HOUR:
        raise HourError(
            f"{format_hour(hour)} is before the pageview dumps begin ({format_hour(FIRST_HOUR)})"
        )
    if hour + ONE_HOUR > now:
        raise HourError(f"{format_hour(hour)} is not over yet (now {now:%Y-%m-%dT%H:%M} UTC)")


def format_hour(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%dT%H")


def dump_file_name(hour: datetime) -> str:
    """The name of the file that holds the views of ``hour`` (stamped one hour later)."""
    return (hour + ONE_HOUR).strftime("pageviews-%Y%m%d-%H0000.gz")


def dump_relative_path(hour: datetime) -> str:
    """The file's path below the pageviews prefix: ``YYYY/YYYY-MM/pageviews-...gz``."""
    stamp = hour + ONE_HOUR
    return f"{stamp:%Y}/{stamp:%Y-%m}/{dump_file_name(hour)}"


def parse_dump_file_name(name: str) -> tuple[datetime, str] | None:
    """The hour of views of a file named as ``dump_file_name`` names it, and what follows
    the ``.gz`` (e.g. ``.part``, for a download's pieces); None for another name."""
    match = _DUMP_FILE_NAME.fullmatch(name)
    if not match:
        return None
    return datetime.strptime(match["stamp"], "%Y%m%d-%H").replace(tzinfo=UTC) - ONE_HOUR, match["suffix"]


def parse_totals_file_name(name: str) -> datetime | None:
    """The hour of a file of page totals as wikitop kept them in the cache before the lake
    (``totals-YYYYMMDD-HH.parquet``, named after the hour of views); None for another name."""
    match = _TOTALS_FILE_NAME.fullmatch(name)
    return datetime.strptime(match["hour"], "%Y%m%d-%H").replace(tzinfo=UTC) if match else None


def hours_between(start: datetime, end: datetime) -> Iterator[datetime]:
    """Every hour from start to end, both included."""
    if end < start:
        raise HourError(f"the range ends ({format_hour(end)}) before it starts ({format_hour(start)})")
    hour = start
    while hour <= end:
        yield hour
        hour += ONE_HOUR


def hours_of_day(day: date) -> list[datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return [start + i * ONE_HOUR for i in range(24)]
