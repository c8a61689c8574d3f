"""One result, end to end: check the marker, fetch, compute, publish."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING

from wikitop import __version__
from wikitop.clock import SYSTEM_CLOCK, Clock
from wikitop.hours import HourError, check_hour_available, format_hour
from wikitop.lake import Lake, Source
from wikitop.model import HOUR_RULE, Period
from wikitop.publish.store import ResultStore
from wikitop.rank import BadInput, Engine, EngineResult, LineReport, create_engine
from wikitop.rank.blacklist import Blacklist, BlacklistError, load_blacklist, read_blacklist_bytes
from wikitop.redact import redact, remember_secrets, secrets_in_url
from wikitop.settings import Settings
from wikitop.source.download import check_fetch_settings
from wikitop.source.fetch import DumpFile, DumpStore, FetchError, NotPublished, ProgressCallback
from wikitop.storage import StorageError

if TYPE_CHECKING:
    import pyarrow as pa

    from wikitop.source.download import Fetcher

log = logging.getLogger(__name__)


class _Failure:
    outcome: Outcome | None = None


@contextlib.contextmanager
def outcome_of_failures(period: Period):
    """Turn the expected failures of computing ``period`` into an Outcome instead of a traceback."""
    failure = _Failure()
    try:
        yield failure
    except NotPublished as error:
        failure.outcome = Outcome(period, Status.MISSING, str(error), error=error)
    except (FetchError, HourError, BadInput, StorageError, BlacklistError) as error:
        failure.outcome = Outcome(period, Status.FAILED, str(error), error=error)
    except Exception as error:  # an engine's own error (corrupt data, out of memory)
        log.debug("unexpected error", exc_info=True)
        message = f"{type(error).__name__}: {' '.join(str(error).split())}"
        failure.outcome = Outcome(period, Status.FAILED, message, error=error)


class Status(str, Enum):
    DONE = "done"
    ALREADY_DONE = "already done"
    MISSING = "missing"
    FAILED = "failed"


@dataclass
class Outcome:
    period: Period
    status: Status
    message: str = ""
    location: str | None = None
    metadata: dict = field(default_factory=dict)
    # What made a result missing or failed, for callers that raise it again.
    error: BaseException | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Where an outcome becomes text: every printer (summary tables, JSON, logs) gets it masked.
        self.message = redact(self.message)

    @property
    def ok(self) -> bool:
        return self.status in (Status.DONE, Status.ALREADY_DONE)


class Wikitop:
    """A configured session: one fetcher, result store, engine and blacklist for many results."""

    def __init__(self, settings: Settings, progress: ProgressCallback | None = None, clock: Clock = SYSTEM_CLOCK):
        self.settings = settings
        self.progress = progress
        self.clock = clock
        urls = [*settings.sources, settings.blacklist or ""]
        remember_secrets(value for url in urls for value in secrets_in_url(url))
        check_fetch_settings(settings.user_agent, settings.max_connections, settings.allow_more_connections)
        # The HTTP client (and its libraries) only when a server is asked for something.
        self.dumps = DumpStore(settings.sources, settings.cache_dir, self._make_fetcher)
        self.results = ResultStore(settings.out, settings.storage_options)
        self.lake = Lake.of_settings(settings)
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self._blacklist: Blacklist | None = None
        self._blacklist_bytes: bytes | None = None
        self._blacklist_sha256: str | None = None
        self._blacklist_lock = threading.Lock()

    def _make_fetcher(self) -> Fetcher:
        from wikitop.source.download import Fetcher

        s = self.settings
        return Fetcher(s.user_agent, s.max_connections, s.allow_more_connections, s.retry_policy, clock=self.clock)

    @property
    def fetcher(self) -> Fetcher:
        return self.dumps.fetcher

    @property
    def engine(self) -> Engine:
        with self._engine_lock:  # a range computes hours from several threads
            if self._engine is None:
                self._engine = create_engine(self.settings.engine, self.settings.spark_conf, self.settings.memory_limit)
            return self._engine

    @property
    def blacklist_sha256(self) -> str:
        """The digest of the blacklist's bytes, which results are matched on: known from
        the bytes alone, so that checking what is done does not wait for the titles to be
        canonicalised."""
        with self._blacklist_lock:  # the range planner checks markers from several threads
            if self._blacklist is not None:
                return self._blacklist.sha256
            if self._blacklist_sha256 is None:
                location = self.settings.blacklist
                raw = b"" if location is None else read_blacklist_bytes(location, lambda: self.fetcher)
                self._blacklist_bytes = raw
                self._blacklist_sha256 = hashlib.sha256(raw).hexdigest()
            return self._blacklist_sha256

    @property
    def blacklist(self) -> Blacklist:
        with self._blacklist_lock:
            if self._blacklist is None:
                self._blacklist = load_blacklist(
                    self.settings.blacklist, lambda: self.fetcher, self.settings.cache_dir, raw=self._blacklist_bytes
                )
                self._blacklist_bytes = None
                log.info(
                    "blacklist %s: %d entries, %d lines skipped",
                    self._blacklist.source,
                    self._blacklist.table.num_rows,
                    sum(self._blacklist.skipped.values()),
                )
            return self._blacklist

    def prepare(self) -> None:
        """Create the engine and load the blacklist before a computation needs them, e.g.
        while its dump downloads. A failure is left to the computation, which meets it
        again and reports it as its own."""
        with contextlib.suppress(Exception):
            _ = self.engine, self.blacklist

    def close(self) -> None:
        self.dumps.close()
        if self._engine is not None:
            self._engine.close()

    def params(self, period: Period) -> dict:
        """What makes two results the same; a marker with other params is not 'done'."""
        s = self.settings
        return {
            "period": period.metadata(),
            "top": s.top,
            "ties": s.ties,
            "format": s.fmt,
            "blacklist_sha256": self.blacklist_sha256,
            **s.listing.params(),
        }

    def is_done(self, period: Period) -> bool:
        """A marker with the same parameters exists and the data file it names too; a day or
        window published without some of its hours is not done, so that a rerun completes
        it once they appear."""
        if self.settings.force:
            return False
        marker = self.results.read_marker(period, self.settings.fmt)
        if marker is None or marker.get("params") != self.params(period):
            return False
        if not marker.get("hours", {}).get("complete", True):
            return False
        return self.results.data_exists(period, self.settings.fmt, marker)

    def already_done(self, period: Period) -> Outcome:
        folder = self.results.display(self.results.folder(period, self.settings.fmt))
        return Outcome(period, Status.ALREADY_DONE, "already published with the same parameters", folder)

    def run_hour(self, hour: datetime) -> Outcome:
        """Fetch, compute and publish one hour, unless it is already published."""
        period = Period.hour(hour)
        with outcome_of_failures(period) as failed:
            check_hour_available(hour)
            if self.is_done(period):
                return self.already_done(period)
            if self.lake.has(hour):
                return self.rank_from_lake(hour)
            started = time.monotonic()
            dump = self.fetch(hour)
            try:
                return self.compute_hour(hour, dump, publish=True, fetch_seconds=time.monotonic() - started)
            finally:
                self.dumps.release(hour)
        return failed.outcome

    def top_pages(self, period: Period) -> pa.Table:
        """The period's top list, computed and not published; expected failures raise. An hour
        in the lake, a day or a window is ranked from the lake's totals, and the hours of a day
        or window that the lake does not hold are put in it first."""
        s = self.settings
        for hour in period.hours:
            check_hour_available(hour)
        if period.kind == "hour" and not self.lake.has(period.start):
            dump = self.fetch(period.start)
            try:
                result = self.engine.process_hour(dump.path, self.blacklist, s.top, s.ties, strict=s.strict,
                                                  listing=s.listing)
                self._check_not_empty(result.lines, dump.name)
                return result.table
            finally:
                self.dumps.release(period.start)
        for hour in sorted(set(period.hours) - self.lake.held(period.hours)):
            dump = self.fetch(hour)
            try:
                self._ingest_dump(hour, dump)
            finally:
                self.dumps.release(hour)
        return self._rank_lake_hours(period.hours).table

    def compute_hour(self, hour: datetime, dump: DumpFile, publish: bool, fetch_seconds: float = 0.0) -> Outcome:
        """Compute an hour from its fetched dump; keep its totals in the lake and publish it as configured."""
        period = Period.hour(hour)
        with outcome_of_failures(period) as failed:
            started = time.monotonic()
            keep = self.settings.keep_totals
            with self.lake.staging() if keep else contextlib.nullcontext() as staged:
                result = self.engine.process_hour(
                    dump.path, self.blacklist, self.settings.top, self.settings.ties,
                    strict=self.settings.strict, totals_path=staged, listing=self.settings.listing,
                )
                self._check_not_empty(result.lines, dump.name)
                if keep:
                    self._write_lake_hour(hour, dump, staged, result.lines, result.pages)
            metadata = self._metadata(period, result, [dump])
            metadata["timings_seconds"] = {
                "fetch": round(fetch_seconds, 3),
                "compute": round(time.monotonic() - started, 3),
            }
            if not publish:
                return Outcome(period, Status.DONE, "totals kept in the lake",
                               self.lake.display(self.lake.partition(hour)) if keep else None, metadata)
            location = self.results.publish(period, self.settings.fmt, result.table, metadata)
            rows = f"{result.table.num_rows} rows"
            return Outcome(period, Status.DONE, rows, self.results.display(location), metadata)
        return failed.outcome

    def ingest_hour(self, hour: datetime, dump: DumpFile, fetch_seconds: float = 0.0) -> Outcome:
        """Put an hour's full page totals in the lake from its fetched dump, ranking nothing."""
        period = Period.hour(hour)
        with outcome_of_failures(period) as failed:
            started = time.monotonic()
            pages = self._ingest_dump(hour, dump)
            seconds = {"fetch": round(fetch_seconds, 3), "compute": round(time.monotonic() - started, 3)}
            return Outcome(period, Status.DONE, f"{pages} pages into the lake",
                           self.lake.display(self.lake.partition(hour)), {"timings_seconds": seconds})
        return failed.outcome

    def _ingest_dump(self, hour: datetime, dump: DumpFile) -> int:
        """Put the hour's full page totals from its fetched dump in the lake; returns its pages."""
        with self.lake.staging() as staged:
            lines, pages = self.engine.write_hour_totals(dump.path, staged, strict=self.settings.strict)
            self._check_not_empty(lines, dump.name)
            self._write_lake_hour(hour, dump, staged, lines, pages)
        return pages

    def _check_not_empty(self, lines: LineReport | None, name: str) -> None:
        if lines is not None and not self.settings.allow_empty:
            lines.check_not_empty(name)

    def _write_lake_hour(self, hour: datetime, dump: DumpFile, staged, lines: LineReport, pages: int) -> None:
        source = Source(dump.name, dump.source, dump.size)
        self.lake.write_hour(hour, staged, rows=pages, source=source, lines=lines.metadata())

    def rank_from_lake(self, hour: datetime) -> Outcome:
        """Publish an hour from its totals in the lake, reading no dump; the marker names the
        lake and the dump its totals came from."""
        period = Period.hour(hour)
        with outcome_of_failures(period) as failed:
            started = time.monotonic()
            manifest = self.lake.manifest(hour)
            if manifest is None:
                raise self.lake.error(f"the lake {self.lake.location} no longer holds {format_hour(hour)}")
            lines = manifest.get("lines")
            if lines:
                report = LineReport(lines.get("good", 0), Counter(lines.get("bad", {})))
                if self.settings.strict:
                    report.check_strict(manifest["source"]["file"])
                self._check_not_empty(report, manifest["source"]["file"])
            result = self._rank_lake_hours([hour])
            metadata = self._metadata(period, result, [])
            source = manifest.get("source", {})
            metadata["inputs"] = [{"file": source.get("file"), "source": source.get("url"),
                                   "bytes": source.get("bytes"), "lake": self.lake.location,
                                   "lake_file": manifest["file"]}]
            metadata["lines"] = lines
            metadata["timings_seconds"] = {"compute": round(time.monotonic() - started, 3)}
            location = self.results.publish(period, self.settings.fmt, result.table, metadata)
            return Outcome(period, Status.DONE, f"{result.table.num_rows} rows from the lake",
                           self.results.display(location), metadata)
        return failed.outcome

    def _rank_lake_hours(self, hours: list[datetime]) -> EngineResult:
        s = self.settings
        with self.lake.files(hours) as paths:
            return self.engine.process_totals(paths, self.blacklist, s.top, s.ties, listing=s.listing)

    def compute_from_totals(self, period: Period, missing_hours: list[datetime]) -> Outcome:
        """Publish a day or window from the lake's totals of its hours."""
        with outcome_of_failures(period) as failed:
            started = time.monotonic()
            hours = [h for h in period.hours if h not in set(missing_hours)]
            result = self._rank_lake_hours(hours)
            metadata = self._metadata(period, result, [])
            metadata["hours"] = {
                "included": len(hours),
                "missing": [format_hour(h) for h in missing_hours],
                "complete": not missing_hours,
            }
            metadata["timings_seconds"] = {"compute": round(time.monotonic() - started, 3)}
            location = self.results.publish(period, self.settings.fmt, result.table, metadata)
            note = f", {len(missing_hours)} hours missing" if missing_hours else ""
            return Outcome(period, Status.DONE, f"{result.table.num_rows} rows from {len(hours)} hours{note}",
                           self.results.display(location), metadata)
        return failed.outcome

    def fetch(self, hour: datetime) -> DumpFile:
        """The hour's verified dump, waiting for it (polling cheaply) up to --wait; held
        until ``self.dumps.release(hour)``."""
        return self.dumps.fetch(hour, self.progress, wait_seconds=self.settings.wait_seconds)

    def _metadata(self, period: Period, result: EngineResult, dumps: list[DumpFile]) -> dict:
        table = result.table
        return {
            "wikitop_version": __version__,
            "period": period.metadata(),
            "hour_rule": HOUR_RULE,
            "params": self.params(period),
            "engine": self.engine.name,
            "strict": self.settings.strict,
            "inputs": [
                {"file": d.name, "source": d.source, "bytes": d.size, "lines": d.lines} for d in dumps
            ],
            "lines": result.lines.metadata() if result.lines else None,
            "blacklist": self.blacklist.metadata() | _known(removed_pages=result.blacklisted_pages),
            **_known(pages=result.pages, page_hours=result.page_hours),
            "rows": table.num_rows,
            "domains": len(set(table.column(0).to_pylist())),
        }


def _known(**counts: int | None) -> dict:
    """The counts an engine made (an hour's are not a window's)."""
    return {name: count for name, count in counts.items() if count is not None}
