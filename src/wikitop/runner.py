"""Ranges of hours, days and windows: plan cheaply, fetch ahead, report in order.

Hours whose results are published are skipped by reading their markers. Hours the
pageviews lake holds are ranked from it, and days and windows are computed from
the lake's hourly page totals, so an hour's dump is read once whatever is asked
of it later. Downloads run ahead in
a few threads (bounded by the per-host connection limit) while the engine works
on the previous hours (DuckDB two at once), and at most a few dumps wait on disk
at any time. Every output is written atomically, so a killed range resumes where
it stopped.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from wikitop.hours import ONE_HOUR, check_hour_available, format_hour, hours_between, truncate_to_hour
from wikitop.model import Period
from wikitop.pipeline import Outcome, Status, Wikitop
from wikitop.rank import HOURS_AT_ONCE
from wikitop.source.fetch import DumpFile, FetchError, NotPublished

log = logging.getLogger(__name__)

OutcomeCallback = Callable[[Outcome], None]
MARKER_READERS = 8


@dataclass
class RangePlan:
    """What a range needs: which hours to compute from their dumps, which to publish (from
    their dumps, or from the lake), which spans to build."""

    hours: list[datetime]
    publish_hours: set[datetime] = field(default_factory=set)
    compute_hours: list[datetime] = field(default_factory=list)
    lake_hours: list[datetime] = field(default_factory=list)
    spans: list[Period] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.compute_hours) + len(self.lake_hours) + len(self.spans)


def days_within(start: datetime, end: datetime) -> tuple[list[Period], list[datetime]]:
    """The UTC days wholly inside [start, end], and the first hours of days only partly inside."""
    whole, partial = [], []
    day = truncate_to_hour(start).replace(hour=0)
    while day <= end:
        if day >= start and day + 23 * ONE_HOUR <= end:
            whole.append(Period.day(day))
        else:
            partial.append(day)
        day += 24 * ONE_HOUR
    return whole, partial


def plan_range(
    session: Wikitop, start: datetime, end: datetime, hourly: bool, daily: bool, windows: Iterable[Period] = ()
) -> RangePlan:
    check_hour_available(start)
    check_hour_available(end)
    plan = RangePlan(hours=list(hours_between(start, end)))
    spans: list[Period] = []
    if daily:
        whole_days, partial_days = days_within(start, end)
        spans.extend(whole_days)
        for day in partial_days:
            log.warning("day %s is only partly inside the range: no daily result for it", f"{day:%Y-%m-%d}")
    spans.extend(windows)
    done = _published(session, spans + ([Period.hour(hour) for hour in plan.hours] if hourly else []))
    needed_totals: set[datetime] = set()
    for span in spans:
        if span in done:
            plan.skipped.append(session.already_done(span))
        else:
            plan.spans.append(span)
            needed_totals.update(span.hours)
    for hour in plan.hours:
        if hourly and Period.hour(hour) not in done:
            plan.publish_hours.add(hour)
        elif hourly:
            plan.skipped.append(session.already_done(Period.hour(hour)))
    in_lake = session.lake.held(plan.publish_hours | needed_totals)
    for hour in plan.hours:
        if hour in plan.publish_hours and hour in in_lake:
            plan.lake_hours.append(hour)
        elif hour in plan.publish_hours or (hour in needed_totals and hour not in in_lake):
            plan.compute_hours.append(hour)
    return plan


def _published(session: Wikitop, periods: list[Period]) -> set[Period]:
    """The periods already published with the same parameters: one marker read each (one
    request on S3), several at a time, since a year of hours is 8,760 of them."""
    with ThreadPoolExecutor(MARKER_READERS, thread_name_prefix="markers") as readers:
        return {period for period, done in zip(periods, readers.map(session.is_done, periods)) if done}


def run_range(
    session: Wikitop,
    start: datetime,
    end: datetime,
    *,
    hourly: bool = True,
    daily: bool = False,
    windows: Iterable[Period] = (),
    allow_incomplete: bool = False,
    keep_raw: bool = True,
    on_outcome: OutcomeCallback | None = None,
    on_plan: Callable[[RangePlan], None] | None = None,
) -> list[Outcome]:
    """Publish every hour of [start, end] (if hourly), each whole UTC day (if daily, or when
    neither hours nor windows are asked for) and windows."""
    windows = list(windows)
    plan = plan_range(session, start, end, hourly, daily or not (hourly or windows), windows)
    if on_plan:
        on_plan(plan)
    outcomes: list[Outcome] = list(plan.skipped)
    report = on_outcome or (lambda outcome: None)
    for outcome in plan.skipped:
        report(outcome)
    if plan.spans:
        session.settings.keep_totals = True
    unavailable: dict[datetime, Outcome] = {}
    for outcome in _compute_hours(session, plan, keep_raw, session.compute_hour):
        if not outcome.ok:
            unavailable[outcome.period.start] = outcome
        outcomes.append(outcome)
        report(outcome)
    for span in plan.spans:
        outcome = _compute_span(session, span, unavailable, allow_incomplete)
        outcomes.append(outcome)
        report(outcome)
    return outcomes


def publish_period(
    session: Wikitop,
    period: Period,
    *,
    allow_incomplete: bool = False,
    keep_raw: bool = True,
    on_outcome: OutcomeCallback | None = None,
    on_plan: Callable[[RangePlan], None] | None = None,
) -> list[Outcome]:
    """Publish one hour, day or window: an hour's one Outcome, or a day's or window's and
    those of its hours (computed for their totals only)."""
    if period.kind == "hour":
        outcome = session.run_hour(period.start)
        if on_outcome:
            on_outcome(outcome)
        return [outcome]
    return run_range(session, period.start, period.end, hourly=False, windows=[period],
                     allow_incomplete=allow_incomplete, keep_raw=keep_raw, on_outcome=on_outcome, on_plan=on_plan)


@dataclass(frozen=True)
class Summary:
    """How many outcomes had each status, and those that were not ok, in order."""

    counts: dict[Status, int]
    problems: list[Outcome]

    @classmethod
    def of(cls, outcomes: Iterable[Outcome]) -> Summary:
        outcomes = list(outcomes)
        counts = {status: sum(o.status is status for o in outcomes) for status in Status}
        return cls(counts, [o for o in outcomes if not o.ok])

    def failed(self, strict: bool = False, required: Iterable[Period] = ()) -> bool:
        """Whether the run failed: an outcome failed, one was missing under ``strict``, or one
        of the ``required`` periods (e.g. the window asked for) is not ok."""
        required = set(required)
        return bool(self.counts[Status.FAILED] or (strict and self.counts[Status.MISSING])
                    or any(o.period in required for o in self.problems))


def run_ingest(
    session: Wikitop,
    start: datetime,
    end: datetime,
    *,
    keep_raw: bool = True,
    on_outcome: OutcomeCallback | None = None,
    on_plan: Callable[[RangePlan], None] | None = None,
) -> list[Outcome]:
    """Put every hour of [start, end] that the lake does not hold in it, ranking nothing;
    downloads run ahead as in a range, and a killed ingest resumes where it stopped."""
    check_hour_available(start)
    check_hour_available(end)
    plan = RangePlan(hours=list(hours_between(start, end)))
    in_lake = session.lake.held(plan.hours)
    plan.compute_hours = [hour for hour in plan.hours if hour not in in_lake]
    plan.skipped = [Outcome(Period.hour(hour), Status.ALREADY_DONE, "in the lake",
                            session.lake.display(session.lake.partition(hour)))
                    for hour in plan.hours if hour in in_lake]
    if on_plan:
        on_plan(plan)
    report = on_outcome or (lambda outcome: None)
    outcomes = list(plan.skipped)
    for outcome in plan.skipped:
        report(outcome)

    def ingest(hour: datetime, dump: DumpFile, publish: bool, fetch_seconds: float) -> Outcome:
        return session.ingest_hour(hour, dump, fetch_seconds=fetch_seconds)

    for outcome in _compute_hours(session, plan, keep_raw, ingest):
        outcomes.append(outcome)
        report(outcome)
    return outcomes


ComputeHour = Callable[[datetime, DumpFile, bool, float], Outcome]


def _compute_hours(session: Wikitop, plan: RangePlan, keep_raw: bool, compute: ComputeHour) -> Iterable[Outcome]:
    """Outcomes of plan.compute_hours (by ``compute``, from their dumps) and plan.lake_hours
    (ranked from the lake), in hour order, with downloads running ahead and as many hours
    computed at once as the engine takes (HOURS_AT_ONCE)."""
    workers = session.settings.max_connections
    lookahead = 2 * workers
    at_once = HOURS_AT_ONCE.get(session.settings.engine, 1)  # an unknown engine fails each hour, as one
    from_lake = set(plan.lake_hours)
    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as fetchers,
        ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="compute") as computers,
    ):
        fetching: dict[datetime, Future] = {}
        computing: deque[Future[Outcome]] = deque()
        queue = list(plan.compute_hours)

        def top_up(position: int) -> None:
            for hour in queue[position : position + lookahead]:
                if hour not in fetching:
                    fetching[hour] = fetchers.submit(_timed_fetch, session, hour)

        if queue:
            session.dumps.ready_to_fetch()
            top_up(0)
        if queue or from_lake:
            session.prepare()  # while the first hours download
        position = 0
        for hour in sorted([*queue, *from_lake]):
            if hour in from_lake:
                computing.append(computers.submit(session.rank_from_lake, hour))
            else:
                top_up(position)
                position += 1
                publish = hour in plan.publish_hours
                computing.append(computers.submit(_compute_fetched, session, hour, fetching.pop(hour), publish,
                                                  keep_raw, compute))
            if len(computing) == at_once:
                yield computing.popleft().result()
        while computing:
            yield computing.popleft().result()


def _timed_fetch(session: Wikitop, hour: datetime) -> tuple[DumpFile, float]:
    started = time.monotonic()
    dump = session.dumps.fetch(hour, wait_seconds=session.settings.wait_seconds)
    return dump, time.monotonic() - started


def _compute_fetched(session: Wikitop, hour: datetime, fetching: Future, publish: bool, keep_raw: bool,
                     compute: ComputeHour) -> Outcome:
    period = Period.hour(hour)
    try:
        dump, seconds = fetching.result()
    except NotPublished as error:
        return Outcome(period, Status.MISSING, str(error))
    except FetchError as error:
        return Outcome(period, Status.FAILED, str(error))
    try:
        outcome = compute(hour, dump, publish, seconds)
        if not keep_raw:
            session.dumps.discard_cached(hour)
    finally:
        session.dumps.release(hour)
    return outcome


def _compute_span(
    session: Wikitop, span: Period, unavailable: dict[datetime, Outcome], allow_incomplete: bool
) -> Outcome:
    in_lake = session.lake.held(span.hours)
    missing = [h for h in span.hours if h not in in_lake]
    failed = [h for h in missing if h in unavailable and unavailable[h].status is Status.FAILED]
    if failed:
        return Outcome(span, Status.FAILED, f"hours failed: {', '.join(format_hour(h) for h in failed)}")
    # Every hour of a span had its totals kept when the range was planned or got them computed since.
    vanished = [h for h in missing if h not in unavailable]
    if vanished:
        hours = ", ".join(format_hour(h) for h in vanished)
        return Outcome(span, Status.FAILED, f"the lake's totals of {len(vanished)} hours ({hours}) were deleted "
                       f"during the run (a cache prune?); run it again to compute them anew")
    if missing and not allow_incomplete:
        hours = ", ".join(format_hour(h) for h in missing)
        return Outcome(span, Status.MISSING, f"incomplete: {len(missing)} hours missing ({hours}); "
                       "pass --allow-incomplete to publish it without them")
    if len(missing) == len(span.hours):
        return Outcome(span, Status.MISSING, "no hour of it is available")
    return session.compute_from_totals(span, missing)
