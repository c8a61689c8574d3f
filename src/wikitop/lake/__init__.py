"""The pageviews lake: every hour's full per-page totals, before any blacklist or filter, as a
hive-partitioned Parquet dataset that wikitop and any other reader (DuckDB, Spark, Polars,
pyarrow, Athena) can read, on a local disk or any fsspec URL (s3://...).

``LAKE/pageviews/year=YYYY/month=MM/day=DD/hour=HH/`` (HH: the UTC hour of views) holds one
data file ``part-<digest16>.parquet`` (``domain_code``, ``page_title``, ``views``; a row per
page) and a JSON manifest ``_SUCCESS`` written last (``wikitop.storage``): an hour without a
manifest, or whose manifest names a missing file, is not in the lake. The engines write an
hour's totals to a local file (``staging``), which ``write_hour`` puts in place; readers get
local paths of the hours they ask for (``files``), downloaded first from a remote lake.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from wikitop import __version__, locks
from wikitop.hours import dump_file_name, format_hour, hours_between, parse_totals_file_name
from wikitop.model import HOUR_RULE
from wikitop.redact import without_userinfo
from wikitop.storage import MARKER, FolderStore, StorageError, marker_record, now_text

log = logging.getLogger(__name__)

DATASET = "pageviews"
COLUMNS = ("domain_code", "page_title", "views")
# Parallel requests when checking or fetching many hours of a remote lake (a year is 8,760).
REQUESTS_AT_ONCE = 8
_PARTITION = re.compile(r"(?:^|/)year=(\d{4})/month=(\d{2})/day=(\d{2})/hour=(\d{2})$")


def default_lake(cache_dir: Path) -> Path:
    """Where the lake is when --lake does not say: a folder of the cache."""
    return Path(cache_dir) / "lake"


def hour_of_partition(folder: str) -> datetime | None:
    """The hour of a partition folder (``.../year=YYYY/month=MM/day=DD/hour=HH``), None for another path."""
    match = _PARTITION.search(folder)
    return datetime(*map(int, match.groups()), tzinfo=UTC) if match else None


class LakeError(StorageError):
    """The lake cannot be read or written."""


@dataclass(frozen=True)
class Source:
    """Where an hour's totals were computed from: its dump file, the URL (or mirror path) it
    came from, and its size."""

    file: str
    url: str | None = None
    bytes: int | None = None
    series: str = "pageviews"

    def metadata(self) -> dict:
        return {"series": self.series, "file": self.file, "url": self.url and without_userinfo(self.url),
                "bytes": self.bytes}


class Lake(FolderStore):
    """The lake under ``url`` (a folder or an fsspec URL); ``storage_options`` go to fsspec."""

    error = LakeError

    @classmethod
    def of_settings(cls, settings) -> Lake:
        """The lake ``settings`` (a wikitop.settings.Settings) name; when it is the default one,
        with the totals the cache kept before the lake moved into it."""
        lake = cls(settings.lake_url, settings.lake_storage_options)
        if settings.lake is None:
            migrate_cache_totals(settings.cache_dir, lake)
        return lake

    def partition(self, hour: datetime) -> str:
        return f"{self.root}/{DATASET}/year={hour:%Y}/month={hour:%m}/day={hour:%d}/hour={hour:%H}"

    def manifest(self, hour: datetime) -> dict | None:
        """The hour's manifest, when it has one naming a file that exists; else None."""
        folder = self.partition(hour)
        manifest = self.read_marker_in(folder)
        return manifest if manifest is not None and self.file_in(folder, manifest) else None

    def has(self, hour: datetime) -> bool:
        return self.manifest(hour) is not None

    def held(self, hours: Iterable[datetime]) -> set[datetime]:
        """Those of ``hours`` the lake holds, checked several at a time (two requests each on S3)."""
        hours = list(hours)
        with ThreadPoolExecutor(REQUESTS_AT_ONCE, thread_name_prefix="lake") as checkers:
            return {hour for hour, held in zip(hours, checkers.map(self.has, hours)) if held}

    def hours(self) -> list[datetime]:
        """Every hour the lake holds, in order: one listing, then the manifests."""
        base = f"{self.root}/{DATASET}"
        try:
            self.fs.invalidate_cache(base)
            found = self.fs.find(base) if self.fs.exists(base) else []
        except Exception as error:
            raise LakeError(f"cannot list {self.display(base)}: {self._describe(error)}") from None
        files = set(found)
        manifests = sorted(path for path in found if path.endswith(f"/{MARKER}"))
        try:
            contents = self.fs.cat(manifests, on_error="return") if manifests else {}
        except Exception as error:
            raise LakeError(f"cannot read the manifests of {self.display(base)}: {self._describe(error)}") from None
        held = []
        for path in manifests:
            folder = path.rpartition("/")[0]
            hour = hour_of_partition(folder)
            content = contents.get(path)
            manifest = marker_record(content) if isinstance(content, bytes) else None
            if hour and manifest and f"{folder}/{manifest['file']}" in files:
                held.append(hour)
        return held

    @contextlib.contextmanager
    def holding(self, hours: Iterable[datetime]) -> Iterator[None]:
        """Keep other processes (a cache prune) from removing these hours of a local lake meanwhile."""
        paths = [Path(self.partition(hour)) / MARKER for hour in hours] if self.is_local else []
        with locks.holding(paths):
            yield

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A local path for an engine to write an hour's totals to, before ``write_hour``."""
        with tempfile.TemporaryDirectory(prefix="wikitop-lake-") as folder:
            yield Path(folder) / "totals.parquet"

    def write_hour(self, hour: datetime, staged: Path, *, rows: int, source: Source, lines: dict | None) -> str:
        """Put the hour's totals (the Parquet file ``staged``) in the lake: data, then manifest."""
        data = Path(staged).read_bytes()
        manifest = {
            "hour": format_hour(hour),
            "hour_rule": HOUR_RULE,
            "rows": rows,
            "source": source.metadata(),
            "lines": lines,
            "wikitop_version": __version__,
            "written_at": now_text(),
        }
        return self.write_folder(self.partition(hour), data, "parquet", manifest)

    def data_path(self, hour: datetime, manifest: dict) -> str:
        return f"{self.partition(hour)}/{manifest['file']}"

    @contextlib.contextmanager
    def files(self, hours: Iterable[datetime]) -> Iterator[list[Path]]:
        """Local paths of the data files of ``hours`` (which the lake must hold), held for the
        block; a remote lake's are downloaded to a temporary folder first, several at a time."""
        hours = list(hours)
        with self.holding(hours):
            manifests = self._manifests(hours)
            remote = [self.data_path(hour, manifests[hour]) for hour in hours]
            if self.is_local:
                yield [Path(path) for path in remote]
                return
            with tempfile.TemporaryDirectory(prefix="wikitop-lake-") as folder:
                local = [Path(folder) / f"{format_hour(hour)}.parquet" for hour in hours]
                try:
                    with ThreadPoolExecutor(REQUESTS_AT_ONCE, thread_name_prefix="lake") as getters:
                        list(getters.map(self.fs.get_file, remote, map(str, local)))
                except Exception as error:
                    raise LakeError(f"cannot read the lake {self.location}: {self._describe(error)}") from None
                yield local

    def _manifests(self, hours: list[datetime]) -> dict[datetime, dict]:
        with ThreadPoolExecutor(REQUESTS_AT_ONCE, thread_name_prefix="lake") as readers:
            manifests = dict(zip(hours, readers.map(self.manifest, hours)))
        absent = [format_hour(hour) for hour, manifest in manifests.items() if manifest is None]
        if absent:
            raise LakeError(f"the lake {self.location} does not hold {', '.join(absent)} (removed meanwhile?)")
        return manifests


@dataclass(frozen=True)
class Holdings:
    """What a lake holds: the hours held and, within a span (or else within the days it holds
    an hour of), the hours missing."""

    held: list[datetime]
    missing: list[datetime]

    @classmethod
    def of(cls, lake: Lake, start: datetime | None = None, end: datetime | None = None) -> Holdings:
        held = lake.hours()
        if start is None or end is None:
            days = sorted({hour.replace(hour=0) for hour in held})
            span = [day.replace(hour=h) for day in days for h in range(24)]
        else:
            span = list(hours_between(start, end))
            held = [hour for hour in held if start <= hour <= end]
        inside = set(held)
        return cls(held, [hour for hour in span if hour not in inside])

    def by_day(self) -> list[dict]:
        """A row per UTC day: its hours (0-23) held and missing."""
        days: dict[str, dict] = {}
        for hour, kind in sorted([(h, "held") for h in self.held] + [(h, "missing") for h in self.missing]):
            day = days.setdefault(f"{hour:%Y-%m-%d}", {"day": f"{hour:%Y-%m-%d}", "held": [], "missing": []})
            day[kind].append(hour.hour)
        return list(days.values())


def hour_ranges(numbers: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` as ``00-02,05,07-08``."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ",".join(f"{a:02d}" if a == b else f"{a:02d}-{b:02d}" for a, b in spans)


def migrate_cache_totals(cache_dir: Path, lake: Lake) -> int:
    """Move the hourly totals that wikitop kept in ``CACHE/totals/YYYY/YYYY-MM/`` before the
    lake into ``lake``; returns how many hours it moved. A file is deleted once its hour is in
    the lake, so a migration killed midway goes on at the next run."""
    moved = 0
    folder = Path(cache_dir) / "totals"
    for path in sorted(folder.glob("*/*/totals-*.parquet")):
        hour = parse_totals_file_name(path.name)
        if hour is None:
            continue
        if not lake.has(hour):
            import pyarrow.parquet as pq  # only with something to migrate: every session runs this

            rows = pq.ParquetFile(path).metadata.num_rows
            lake.write_hour(hour, path, rows=rows, source=Source(dump_file_name(hour)), lines=None)
            moved += 1
        path.unlink()
    for emptied in sorted(folder.glob("*/*"), reverse=True) + sorted(folder.glob("*")) + [folder]:
        with contextlib.suppress(OSError):
            emptied.rmdir()  # only when empty
    if moved:
        log.info("moved the kept totals of %d hours from %s into the lake %s", moved, folder, lake.location)
    return moved
