"""Hours of views and the dump files that hold them.

Wikimedia stamps each hourly file with the END of the hour it aggregates:
``pageviews-20200122-030000.gz`` holds the views of 02:00:00-02:59:59 UTC.
Everywhere in wikitop an hour means the hour of views (its start, in UTC).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

from wikitop.errors import WikitopError

ONE_HOUR = timedelta(hours=1)
FIRST_HOUR = datetime(2015, 5, 1, 0, tzinfo=UTC)

_HOUR_PATTERN = re.compile(
    r"""^\s*(?P<date>\d{4}-\d{2}-\d{2})
        (?:[T\s](?P<hour>\d{1,2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?)?
        \s*(?P<offset>Z|[+-]\d{2}(?::?\d{2})?)?\s*$""",
    re.VERBOSE,
)


class HourError(WikitopError, ValueError):
    """An hour that cannot be read, or that has no dump file."""


def parse_hour(text: str) -> datetime:
    """Read ``2020-01-22T02``, ``2020-01-22T02:00``, ``2020-01-22 02:00:00`` or a date.

    An optional UTC offset (``Z``, ``+02:00``, ``-0500``), less than 24 hours either
    way, is converted to UTC; without one the time is taken as UTC. The result must
    be the start of a UTC hour.
    """
    match = _HOUR_PATTERN.match(text)
    if not match:
        raise HourError(f"cannot read hour {text!r}: use YYYY-MM-DDTHH, e.g. 2020-01-22T02")
    try:
        day = date.fromisoformat(match["date"])
        hour = int(match["hour"] or 0)
        minute = int(match["minute"] or 0)
        second = int(match["second"] or 0)
        local = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=_zone(match["offset"]))
    except ValueError as error:
        raise HourError(f"cannot read hour {text!r}: {error}") from None
    moment = local.astimezone(UTC)
    if moment.minute or moment.second:
        raise HourError(
            f"{text!r} is not the start of an hour: it is {moment:%Y-%m-%dT%H:%M:%S} UTC, "
            "minutes and seconds must be 0 in UTC"
        )
    return moment


def _zone(offset: str | None) -> timezone:
    """The time zone of a UTC offset (``Z``, ``+02``, ``+02:00``, ``-0500``); ValueError when out of range."""
    if not offset or offset == "Z":
        return UTC
    digits = offset[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours >= 24 or minutes >= 60:
        raise ValueError(f"the UTC offset {offset} is not between -23:59 and +23:59")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(delta if offset[0] == "+" else -delta)


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
