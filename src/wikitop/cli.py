"""The ``wikitop`` command: a thin layer of flags over the library.

Exit codes: 0 done or already done, 1 the work failed, 2 bad usage.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from wikitop import __version__
from wikitop.cli_help import LOGGING, HelpGroup, grouped_option
from wikitop.hours import HourError, check_hour_available, default_hour, format_hour, parse_hour
from wikitop.model import Period
from wikitop.pipeline import Outcome, Status, Wikitop
from wikitop.publish.store import FORMATS
from wikitop.rank import DEFAULT_MEMORY_LIMIT, ENGINES
from wikitop.rank.blacklist import DEFAULT_BLACKLIST, BlacklistError
from wikitop.rank.projects import GROUPS, NAMESPACES
from wikitop.rank.sql import TIE_RULES
from wikitop.redact import RedactingFilter, redact
from wikitop.settings import Settings, default_cache_dir, parse_spark_properties, storage_options_from_flags
from wikitop.source.download import DEFAULT_USER_AGENT, SERVER_CONNECTION_LIMIT
from wikitop.storage import StorageError
from wikitop.units import parse_duration, parse_size

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from wikitop.runner import Summary

log = logging.getLogger("wikitop")

HOUR_HELP = (
    "Hours are UTC hours of views: 2020-01-22T02 is 02:00-02:59, in pageviews-20200122-030000.gz; "
    "2020-01-22T02:00 and '2020-01-22 02:00:00' are accepted, with +02:00 or Z too."
)

source_option = grouped_option("Source")
ranking_option = grouped_option("Ranking")
output_option = grouped_option("Output and storage")
run_option = grouped_option("Run")
logging_option = grouped_option(LOGGING)


class HourType(click.ParamType):
    name = "HOUR"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            return parse_hour(value)
        except HourError as error:
            self.fail(str(error), param, ctx)


HOUR = HourType()


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx):
        try:
            return parse_duration(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def _memory_limit(ctx, param, value: str) -> str:
    try:
        parse_size(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    return value.strip()


def _spark_conf(ctx, param, values):
    conf = {}
    try:
        conf.update(parse_spark_properties(ctx.params.get("spark_properties") or ""))
        for value in values:
            conf.update(parse_spark_properties(value))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    return conf


OUT_OPTIONS = [
    output_option("--out", default="./wikitop-out", show_default=True, envvar="PATH_OUT_PREFIX", metavar="URL|DIR",
                  help="Results: a folder or an fsspec URL (s3://... needs wikitop[s3])."),
    output_option("--s3-endpoint-url", metavar="URL",
                  show_default="AWS_ENDPOINT_URL_S3 or the profile's", help="S3-compatible endpoint."),
    output_option("--s3-region", envvar="AWS_REGION", metavar="REGION",
                  show_default="the profile's", help="S3 region."),
    output_option("--storage-option", "storage_option_pairs", multiple=True, metavar="KEY=VALUE",
                  help="An fsspec option, e.g. profile=work (repeatable)."),
]


def out_options(command):
    for option in reversed(OUT_OPTIONS):
        command = option(command)
    return command


def s3_options(command):
    """The S3 flags of OUT_OPTIONS (all but --out), for a command that reads only the lake."""
    for option in reversed(OUT_OPTIONS[1:]):
        command = option(command)
    return command


def storage_options(options: dict, url: str | None = None) -> dict:
    """fsspec options from the S3 flags for ``url`` (default: --out)."""
    try:
        return storage_options_from_flags(
            options["out"] if url is None else url, options["s3_endpoint_url"], options["s3_region"],
            options["storage_option_pairs"]
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None


CACHE_DIR_OPTION = output_option(
    "--cache-dir", type=click.Path(file_okay=False), default=None, envvar="WIKITOP_CACHE_DIR", metavar="DIR",
    show_default=str(default_cache_dir()), help="Downloaded dumps and the default lake.")
LAKE_OPTION = output_option(
    "--lake", envvar="WIKITOP_LAKE", metavar="URL|DIR", show_default="lake/ in the cache",
    help="Every hour's page totals as Parquet, read instead of the hour's dump.")

COMMON_OPTIONS = [
    source_option("--source", "sources", multiple=True, envvar="SOURCE_URL_PREFIX", metavar="URL|DIR",
                  show_default="the dump server", help="The dumps, or a mirror laid out alike; repeat to fail over."),
    *OUT_OPTIONS,
    output_option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True,
                  help="The result's format."),
    ranking_option("--blacklist", default=DEFAULT_BLACKLIST, envvar="BLACKLIST_URL_IN", metavar="PATH|URL",
                   show_default="shipped", help="'domain_code page_title' lines to leave out."),
    ranking_option("--no-blacklist", is_flag=True, help="Rank every page."),
    ranking_option("--top", type=click.IntRange(min=1), default=25, show_default=True, metavar="N",
                   help="Places per domain code."),
    ranking_option("--ties", type=click.Choice(TIE_RULES), default="rank", show_default=True,
                   help="rank: ties share a place; dense: N distinct counts; row: exactly N rows."),
    ranking_option("--exclude-noise", is_flag=True, help="Leave out '-', main pages, special pages."),
    ranking_option("--namespace", type=click.Choice(NAMESPACES), default="all", show_default=True,
                   help="main: articles only (no Talk:, User:...)."),
    ranking_option("--min-views", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
                   help="Only pages with N views or more."),
    ranking_option("--exclude", "exclude_patterns", multiple=True, metavar="PATTERN",
                   help="Leave out titles matching a glob, e.g. 'Special:*' (repeatable)."),
    ranking_option("--group", type=click.Choice(GROUPS), default="domain", show_default=True,
                   help="project: en + en.m as en.wikipedia, with mobile shares."),
    run_option("--strict", is_flag=True, help="Fail on a bad line instead of counting it."),
    run_option("--allow-empty", is_flag=True, help="Publish an empty top for a dump with no good line."),
    run_option("--force", is_flag=True, envvar="FORCE_REPROCESS", help="Publish again what is published."),
    run_option("--engine", type=click.Choice(ENGINES), default="duckdb", show_default=True,
               envvar="WIKITOP_ENGINE", help="spark: pip install 'wikitop[spark]'."),
    run_option("--memory-limit", metavar="SIZE", default=DEFAULT_MEMORY_LIMIT, show_default=True,
               envvar="WIKITOP_DUCKDB_MEMORY_LIMIT", callback=_memory_limit, help="DuckDB's, past which it spills."),
    click.option("--spark-properties", envvar="SPARK_PROPERTIES", hidden=True, is_eager=True,
                 help="key=value lines. [env SPARK_PROPERTIES]"),
    run_option("--spark-conf", multiple=True, metavar="KEY=VALUE", callback=_spark_conf,
               help="A Spark property (repeatable); adds to SPARK_PROPERTIES."),
    CACHE_DIR_OPTION,
    LAKE_OPTION,
    output_option("--keep-totals/--no-keep-totals", default=None, help="Keep each hour's page totals in the lake."),
    source_option("--user-agent", default=DEFAULT_USER_AGENT, envvar="WIKITOP_USER_AGENT", metavar="AGENT",
                  help="With contact details, as Wikimedia asks."),
    source_option("--max-connections", type=click.IntRange(min=1), default=SERVER_CONNECTION_LIMIT,
                  show_default=True, metavar="N", help="Per host, whole process."),
    source_option("--allow-more-connections", is_flag=True, help="Allow more than 3 (own mirrors only)."),
    source_option("--wait", "wait_seconds", type=Duration(), default="0", metavar="DURATION",
                  help="Wait up to this long (e.g. 3h) for a new file."),
    source_option("--poll-interval", type=Duration(), default="10s", show_default=True, metavar="DURATION",
                  envvar="WIKITOP_POLL_INTERVAL", help="--wait's first pause, doubling to 5m."),
    source_option("--retries", type=click.IntRange(min=0), default=6, show_default=True, envvar="WIKITOP_RETRIES",
                  metavar="N", help="Per request; new bytes reset the count."),
    source_option("--retry-delay", type=Duration(), default="1s", show_default=True, metavar="DURATION",
                  envvar="WIKITOP_RETRY_DELAY", help="The first, doubling to 5m."),
    source_option("--stall-timeout", type=Duration(), default="60s", show_default=True, metavar="DURATION",
                  envvar="WIKITOP_STALL_TIMEOUT", help="Retry a connection silent this long."),
    source_option("--deadline", type=Duration(), default="30m", show_default=True, metavar="DURATION",
                  envvar="WIKITOP_DEADLINE", help="Give up on a file not fetched in this long; 0: never."),
    logging_option("-v", "--verbose", count=True, help="More log lines."),
    logging_option("-q", "--quiet", is_flag=True, help="Only errors."),
]


def common_options(command):
    for option in reversed(COMMON_OPTIONS):
        command = option(command)
    return command


def setup_logging(verbose: int, quiet: bool) -> bool:
    """Rich log lines on a terminal, plain ones otherwise; returns whether to draw progress bars."""
    level = logging.ERROR if quiet else logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    interactive = sys.stderr.isatty() and not quiet
    if interactive:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, show_time=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("wikitop: %(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    # Libraries' warnings (urllib3, botocore, asyncio) through the same handler, redacted too.
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.WARNING))
    return interactive


def open_session(options: dict, keep_totals_default: bool) -> Wikitop:
    interactive = setup_logging(options["verbose"], options["quiet"])
    try:
        settings = Settings.from_options(options, keep_totals_default)
        progress = _progress_bar() if interactive else None
        session = Wikitop(settings, progress)
    except ValueError as error:
        raise click.UsageError(redact(str(error))) from None
    try:
        _ = session.blacklist_sha256  # a blacklist that cannot be used fails the run before any download
    except BlacklistError:
        session.close()
        raise
    return session


def _progress_bar():
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    progress = Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True)
    state = {}

    def update(done: int, total: int | None) -> None:
        if "task" not in state:
            progress.start()
            state["task"] = progress.add_task("download", total=total)
        progress.update(state["task"], completed=done, total=total)
        if total is not None and done >= total:
            progress.stop()
            state.clear()

    return update


def report(outcome: Outcome, quiet: bool) -> None:
    label = outcome.period.label
    if outcome.status is Status.FAILED:
        click.echo(redact(f"wikitop: error: {label}: {outcome.message}"), err=True)
    elif outcome.status is Status.MISSING:
        click.echo(redact(f"wikitop: missing: {outcome.message}"), err=True)
    elif not quiet:
        where = f" -> {outcome.location}" if outcome.location else ""
        click.echo(redact(f"{label}: {outcome.status.value}: {outcome.message}{where}"))


def with_errors_as_exit_codes(command):
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except click.ClickException:
            raise
        except (StorageError, BlacklistError) as error:  # the run cannot start, e.g. before a range
            click.echo(redact(f"wikitop: error: {error}"), err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("wikitop: interrupted; nothing half-written was published", err=True)
            sys.exit(130)

    return wrapper


@click.group(cls=HelpGroup, examples=[
    ("wikitop hour", "the hour that started 24 hours ago"),
    ("wikitop range 2020-01-01T00 2020-01-31T23 --daily", "744 hours and 31 days"),
    ("wikitop show 2020-01-22T02 --domain en", "a published top in the terminal"),
], context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="wikitop")
def main():
    """The most viewed pages of each Wikimedia wiki, from the pageview dumps."""


@main.command(examples=[
    ("wikitop hour", "the hour that started 24 hours ago"),
    ("wikitop hour 2020-01-22T02 --source ./mirror --top 10", "from a mirror"),
    ("wikitop hour 2020-01-22T02 --out s3://bucket/tops --format parquet", "to S3"),
], help=f"""Publish the top pages of every domain code for one hour.

HOUR defaults to the hour that started 24 hours ago [env var: EXECUTION_DATETIME]. {HOUR_HELP}
Results go to OUT/format=FMT/year=YYYY/month=MM/day=DD/hour=HH/, not computed again unless --force.""")
@click.argument("hour", type=HOUR, required=False, envvar="EXECUTION_DATETIME")
@common_options
@with_errors_as_exit_codes
def hour(hour, **options):
    from wikitop.runner import publish_period

    hour = hour or default_hour()
    try:
        check_hour_available(hour)
    except HourError as error:
        raise click.UsageError(str(error)) from None
    session = open_session(options, keep_totals_default=False)
    try:
        [outcome] = publish_period(session, Period.hour(hour))
    finally:
        session.close()
    report(outcome, options["quiet"])
    sys.exit(0 if outcome.ok else 1)


RANGE_OPTIONS = [
    click.option("--daily", is_flag=True, help="Also publish a top per UTC day wholly inside the range."),
    click.option("--hourly/--no-hourly", default=True, envvar="HOURLY", show_default=True,
                 help="Publish a top per hour; --no-hourly (HOURLY=false) publishes only days."),
    click.option("--allow-incomplete", is_flag=True,
                 help="Publish days and windows even when some of their hours are missing (listed in "
                 "the result's metadata)."),
]
KEEP_RAW_OPTION = output_option("--keep-raw/--no-keep-raw", default=True, show_default=True,
                               help="Keep downloaded dumps in the cache after use.")


def range_options(command):
    for option in reversed([*RANGE_OPTIONS, KEEP_RAW_OPTION]):
        command = option(command)
    return command


def run_and_summarize(options: dict, run: Callable[..., list[Outcome]], required: Iterable[Period] = ()) -> NoReturn:
    """``run(session, on_outcome=..., on_plan=...)`` over a session with progress, then the
    summary table; exits 1 when the run failed (``Summary.failed``), else 0."""
    from wikitop.runner import Summary

    session = open_session(options, keep_totals_default=True)
    try:
        outcomes = with_progress(functools.partial(run, session), options["quiet"])
    except HourError as error:
        raise click.UsageError(str(error)) from None
    finally:
        session.close()
    summary = Summary.of(outcomes)
    print_summary(summary, options["quiet"])
    sys.exit(1 if summary.failed(options["strict"], required=required) else 0)


def with_progress(run: Callable[..., list[Outcome]], quiet: bool) -> list[Outcome]:
    """``run(on_outcome=..., on_plan=...)`` (the runner's run_range or publish_period) with live
    progress: a bar with ETA on a terminal, log lines otherwise."""
    interactive = sys.stderr.isatty() and not quiet
    if not interactive:
        return run(on_outcome=lambda o: report(o, quiet))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    with Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("hours", total=None)

        def on_plan(plan):
            bar.update(task, total=plan.steps + len(plan.skipped))

        def on_outcome(outcome):
            bar.advance(task)
            bar.update(task, description=f"{outcome.period.label}: {outcome.status.value}")
            if not outcome.ok:
                report(outcome, quiet)

        return run(on_outcome=on_outcome, on_plan=on_plan)


def print_summary(summary: Summary, quiet: bool) -> None:
    """A table of how many results had each status, then one of those that were not ok."""
    if not quiet:
        from rich.console import Console
        from rich.table import Table

        console = Console(stderr=False, soft_wrap=True)
        table = Table(title="wikitop summary", show_edge=False)
        for column in ("status", "count"):
            table.add_column(column)
        for status in Status:
            table.add_row(status.value, str(summary.counts[status]))
        console.print(table)
        if summary.problems:
            details = Table(show_edge=False)
            for column in ("period", "status", "reason"):
                details.add_column(column, overflow="fold")
            for outcome in summary.problems:
                details.add_row(outcome.period.label, outcome.status.value, outcome.message)
            console.print(details)


@main.command(name="range", examples=[
    ("wikitop range 2020-01-22T00 2020-01-22T23", "24 hourly tops"),
    ("wikitop range 2020-01-01T00 2020-01-31T23 --daily", "and 31 daily ones"),
    ("wikitop range 2020-01-01T00 2020-01-07T23 --daily --no-hourly", "days only"),
], help=f"""Publish one result per hour from START to END (both included).

With --daily, also one result per UTC day wholly inside the range, computed from the
hours' full page totals (kept as Parquet in the cache), never from hourly top lists, in
OUT/daily/format=FMT/year=YYYY/month=MM/day=DD/.
Hours already published with the same parameters are skipped. A missing hour fails the
run only with --strict; a failed hour always does. {HOUR_HELP}""")
@click.argument("start", type=HOUR)
@click.argument("end", type=HOUR)
@range_options
@common_options
@with_errors_as_exit_codes
def range_command(start, end, daily, hourly, allow_incomplete, keep_raw, **options):
    from wikitop.runner import run_range

    run_and_summarize(options, functools.partial(run_range, start=start, end=end, hourly=hourly, daily=daily,
                                                 allow_incomplete=allow_incomplete, keep_raw=keep_raw))


@main.command(examples=[
    ("wikitop window 2020-01-22T00 2020-01-28T23", "a week's top"),
    ("wikitop window 2020-01-22T00 2020-01-22T05 --top 10", "six hours' top 10"),
], help=f"""Publish one top over all hours from START to END (both included).

Totals are summed over the hours' full page totals, kept as Parquet in the cache, so a
window over hours already seen reads no dump again. Results go to
OUT/windows/format=FMT/period=START..END/. {HOUR_HELP}""")
@click.argument("start", type=HOUR)
@click.argument("end", type=HOUR)
@click.option("--allow-incomplete", is_flag=True, help="Publish even when some hours are missing.")
@KEEP_RAW_OPTION
@common_options
@with_errors_as_exit_codes
def window(start, end, allow_incomplete, keep_raw, **options):
    from wikitop.runner import publish_period

    period = Period.window(start, end)
    run_and_summarize(options, functools.partial(publish_period, period=period, allow_incomplete=allow_incomplete,
                                                 keep_raw=keep_raw), required=[period])


@main.command(examples=[
    ("wikitop ingest 2020-01-01T00 2020-01-31T23", "a month into the default lake"),
    ("wikitop ingest 2020-01-01T00 2020-01-01T23 --lake s3://b/lake", "to S3"),
], help=f"""Fill the pageviews lake with every hour from START to END (both included).

The lake (--lake) gets each hour's full page totals, ranking nothing: hours it holds are
skipped, downloads run ahead as in 'wikitop range', and a killed ingest resumes where it stopped. {HOUR_HELP}""")
@click.argument("start", type=HOUR)
@click.argument("end", type=HOUR)
@KEEP_RAW_OPTION
@common_options
@with_errors_as_exit_codes
def ingest(start, end, keep_raw, **options):
    from wikitop.runner import run_ingest

    run_and_summarize(options, functools.partial(run_ingest, start=start, end=end, keep_raw=keep_raw))


def open_lake(settings: Settings):
    from wikitop.lake import Lake

    return Lake.of_settings(settings)


@main.group(name="lake", short_help="What the pageviews lake holds.", examples=[
    ("wikitop lake ls", "every day it holds an hour of"),
    ("wikitop lake ls 2020-01-01T00 2020-01-31T23 --json", "January, for machines"),
], help="""The pageviews lake (--lake).

Every hour's full page totals as hive-partitioned Parquet, LAKE/pageviews/year=/month=/day=/hour=/.""")
def lake_group():
    pass


@lake_group.command(name="ls", examples=[
    ("wikitop lake ls", "every day it holds an hour of"),
    ("wikitop lake ls 2020-01-01T00 2020-01-31T23 --lake s3://b/lake", "January"),
], help=f"""List the hours the lake holds, a row per UTC day.

Each day's hours held and missing, within START..END (both included) when given, else
within the days it holds an hour of.

Only hours whose manifest names a data file that exists count. {HOUR_HELP}""")
@click.argument("start", type=HOUR, required=False)
@click.argument("end", type=HOUR, required=False)
@click.option("--json", "as_json", is_flag=True, help="A JSON array of the days, with their hours, for machines.")
@LAKE_OPTION
@CACHE_DIR_OPTION
@s3_options
@with_errors_as_exit_codes
def lake_ls(start, end, as_json, lake, cache_dir, **options):
    import json

    from wikitop.lake import Holdings, hour_ranges

    if (start is None) != (end is None):
        raise click.UsageError("give both START and END, or neither")
    if start is not None and end < start:
        raise click.UsageError(f"END {format_hour(end)} is before START {format_hour(start)}")
    settings = Settings(cache_dir=Path(cache_dir) if cache_dir else default_cache_dir(), lake=lake,
                        lake_storage_options=storage_options(options, lake or ""))
    held = open_lake(settings)
    holdings = Holdings.of(held, start, end)
    if not holdings.held and start is None:
        fail(f"the lake {held.location} holds no hour")
    days = holdings.by_day()
    if as_json:
        click.echo(redact(json.dumps(days, indent=2)))
        return
    span = f" of {format_hour(start)}..{format_hour(end)}" if start else ""
    title = (f"{len(holdings.held)} hours held, {len(holdings.missing)} missing{span} in {held.location}")
    rows = [[d["day"], len(d["held"]), hour_ranges(d["held"]), len(d["missing"]), hour_ranges(d["missing"])]
            for d in days]
    print_table(["day", "held", "held_hours", "missing", "missing_hours"], rows, title,
                right_aligned={"held", "missing"})


def fail(message: str) -> NoReturn:
    click.echo(redact(f"wikitop: {message}"), err=True)
    sys.exit(1)


def period_argument(text: str, day: bool) -> Period:
    try:
        return Period.of(text, day=day)
    except HourError as error:
        raise click.BadParameter(str(error), param_hint="PERIOD") from None


def print_table(columns: list[str], rows: list[list], title: str, right_aligned: set[str] = frozenset()) -> None:
    """A rich table on a terminal; otherwise tab-separated lines with a header, the title on stderr."""
    title = redact(title)
    if not sys.stdout.isatty():
        click.echo(title, err=True)
        click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join("" if value is None else str(value) for value in row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False)
    for column in columns:
        table.add_column(column, justify="right" if column in right_aligned else "left", overflow="fold")
    for row in rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    Console().print(table)


def read_published(store, period: Period, fmt: str | None):
    """The published ``period`` (``wikitop.publish.results.read_published``); fails the command when there is none."""
    from wikitop.publish.results import NotPublishedResult
    from wikitop.publish.results import read_published as read

    try:
        return read(store, period, fmt)
    except NotPublishedResult as error:
        fail(str(error))


@main.command(short_help="Print a published result as a table.", examples=[
    ("wikitop show 2020-01-22T02 --domain en", "an hour of English Wikipedia"),
    ("wikitop show 2020-01-22T00 --day --limit 5", "a day, 5 rows per domain code"),
    ("wikitop show 2020-01-22T00..2020-01-28T23 --out s3://bucket/tops", "a window"),
], help="""Print a published result as a table.

PERIOD is an hour (e.g. 2020-01-22T02), with --day the UTC day of that hour, or
START..END for a window.

Reads the _SUCCESS marker and the data file it names from --out (a directory or an
fsspec URL such as s3://bucket/prefix). Without --format, the first published of csv,
parquet and jsonl is read. A table on a terminal, tab-separated lines otherwise.""")
@click.argument("period_text", metavar="PERIOD")
@click.option("--day", is_flag=True, help="Show the UTC day that PERIOD's hour falls in.")
@click.option("--domain", "domains", multiple=True, metavar="CODE",
              help="Only this domain code, e.g. en or de.m, or project of a result by project, e.g. "
              "en.wikipedia (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N rows per domain code.")
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="The published format to read. [default: the first published of csv, parquet, jsonl]")
@out_options
@with_errors_as_exit_codes
def show(period_text, day, domains, limit, fmt, **options):
    from wikitop.publish.results import absent_groups, shown_rows
    from wikitop.publish.store import ResultStore

    period = period_argument(period_text, day)
    store = ResultStore(options["out"], storage_options(options))
    published = read_published(store, period, fmt)
    table, marker = published.table, published.marker
    shown = shown_rows(table, domains, limit)
    found = {row[0] for row in shown}
    if domains and not found >= set(domains):
        fail(f"{period.label} ({published.fmt}, {table.num_rows} rows): {absent_groups(table, domains, found)}")
    params = marker.get("params", {})
    title = (f"{period.kind} {period.label} · {published.fmt} · top {params.get('top', '?')} "
             f"({params.get('ties', '?')} ties) · {len(shown)} of {table.num_rows} rows · "
             f"published {marker.get('published_at', '?')}")
    print_table(table.column_names, shown, title, right_aligned={"views", "mobile_share", "rank"})


@main.command(name="report", short_help="Write a published result as a self-contained HTML page.", examples=[
    ("wikitop report 2020-01-22T00 --day --domain en", "a day of English Wikipedia"),
    ("wikitop report 2020-01-22T02 --busiest 3 --html top.html", "3 busiest"),
], help="""Write a published result as one HTML page that needs no network to open.

Per domain code a ranked table with bars and, for a day or window, each page's views per
hour as a sparkline.

PERIOD is read as by 'wikitop show': an hour, with --day the UTC day of that hour, or
START..END for a window. The domain codes are those given with --domain, or else the
--busiest ones (by the views of their listed pages). An hour's views come from the hourly
page totals kept in the cache when there, else from the hour's published top list, where a
page not listed is shown as not known. Needs pip install 'wikitop[report]'.""")
@click.argument("period_text", metavar="PERIOD")
@click.option("--day", is_flag=True, help="Report the UTC day that PERIOD's hour falls in.")
@click.option("--domain", "domains", multiple=True, metavar="CODE",
              help="A domain code (or the result's group, e.g. a project) to report, in this order (repeatable).")
@click.option("--busiest", type=click.IntRange(min=1), default=5, show_default=True, metavar="N",
              help="Without --domain: report the N domain codes whose listed pages have the most views.")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True, metavar="N",
              help="Rows per domain code.")
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="The published format to read. [default: the first published of csv, parquet, jsonl]")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              show_default="wikitop-report-PERIOD.html", help="Where to write the page.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, envvar="WIKITOP_CACHE_DIR",
              metavar="DIR", show_default=str(default_cache_dir()), help="Where the kept hourly totals are.")
@out_options
@with_errors_as_exit_codes
def report_command(period_text, day, domains, busiest, limit, fmt, html_path, cache_dir, **options):
    from wikitop.publish import report as html_report
    from wikitop.publish.store import ResultStore

    period = period_argument(period_text, day)
    try:
        html_report.require_extra()
        store = ResultStore(options["out"], storage_options(options))
        published = read_published(store, period, fmt)
        lake = open_lake(Settings(cache_dir=Path(cache_dir) if cache_dir else default_cache_dir()))
        html, groups = html_report.build_report(published.table, period, published.marker, domains, busiest, limit,
                                                lake, store,
                                                formats=[published.fmt, *(f for f in FORMATS if f != published.fmt)])
        written = html_report.write_report(html, Path(html_path or html_report.default_report_name(period)))
    except html_report.ReportError as error:
        fail(f"error: {error}")
    click.echo(redact(f"{period.kind} {period.label} ({', '.join(groups)}) -> {written}"))


@main.command(name="ls", short_help="List the published results.", examples=[
    ("wikitop ls", "what ./wikitop-out holds"),
    ("wikitop ls --out s3://bucket/tops --format parquet --json", "for machines"),
], help="""List the results published under --out.

Read from their _SUCCESS markers.

Only results with a readable marker count; data files without one (a run killed
midway) are not listed.""")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Only results in this format.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of every result's details, for machines.")
@out_options
@with_errors_as_exit_codes
def list_command(fmt, as_json, **options):
    import json

    from wikitop.publish.results import list_published
    from wikitop.publish.store import ResultStore

    store = ResultStore(options["out"], storage_options(options))
    entries = list_published(store, fmt)
    if not entries:
        fail(f"nothing published under {store.location}" + (f" in format {fmt}" if fmt else ""))
    if as_json:
        click.echo(redact(json.dumps(entries, indent=2, ensure_ascii=False)))
        return
    columns = ["kind", "period", "format", "top", "ties", "rows", "hours", "published_at"]
    title = f"{len(entries)} result{'s' if len(entries) > 1 else ''} under {store.location}"
    print_table(columns, [[e[c] for c in columns] for e in entries], title, right_aligned={"top", "rows", "hours"})


def _cache_dir_option(on_subcommand: bool):
    """--cache-dir on the group (wikitop cache --cache-dir D list) or, overriding it, on a subcommand."""

    def remember(ctx, param, value):
        if value is not None or not on_subcommand:
            ctx.ensure_object(dict)["cache_dir"] = Path(value) if value else default_cache_dir()

    return click.option("--cache-dir", type=click.Path(file_okay=False), default=None, expose_value=False,
                        envvar=None if on_subcommand else "WIKITOP_CACHE_DIR", callback=remember, metavar="DIR",
                        show_default="the group's" if on_subcommand else str(default_cache_dir()),
                        help="The cache to look at.")


def _cache_kinds(ctx, param, value) -> tuple[str, ...]:
    from wikitop.cache import KINDS

    return KINDS if value == "all" else (value,)


CACHE_KIND_OPTION = click.option(
    "--kind", "kinds", type=click.Choice(["all", "dumps", "totals"]), default="all", show_default=True,
    callback=_cache_kinds, help="dumps: downloaded hourly files (and partial downloads); totals: the hourly "
    "page totals (Parquet) kept for days and windows.")


def _size(ctx, param, value):
    try:
        return None if value is None else parse_size(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@main.group(short_help="List or prune the cache of dumps and hourly totals.", examples=[
    ("wikitop cache ls", "what the cache holds"),
    ("wikitop cache list --kind dumps --verify", "check every dump now"),
    ("wikitop cache prune --older-than 30d", "delete what is older"),
], help="""The local cache of dumps and hourly totals.

Downloaded dumps (with their verification state and partial downloads) under pageviews/, and
the hourly page totals kept for days and windows in the default lake, under lake/.""")
@_cache_dir_option(on_subcommand=False)
def cache():
    pass


@cache.command(name="list", aliases=["ls"], examples=[
    ("wikitop cache list", "every cached file"),
    ("wikitop cache list --kind dumps --verify", "check every dump's bytes now"),
], help="""List cached files: kind, hour, size, state, modification time, path.

A dump is 'verified' when its gzip trailers and length checked out at download and it has
not changed since (same size and time); 'unverified' ones are checked again before use;
'partial' ones are downloads to be resumed. --verify checks every dump's bytes now.""")
@_cache_dir_option(on_subcommand=True)
@CACHE_KIND_OPTION
@click.option("--verify", "check_now", is_flag=True, help="Check each dump's bytes now; bad ones are deleted.")
@click.pass_obj
def cache_list(obj, kinds, check_now):
    from datetime import UTC

    from wikitop.cache import describe, scan, verify
    from wikitop.units import format_size

    cache_dir = obj["cache_dir"]
    entries = scan(cache_dir, kinds)
    if check_now:
        entries = [verify(entry) for entry in entries]
    if not entries:
        click.echo(f"wikitop: nothing cached in {cache_dir}", err=True)
        return
    rows = [[e.kind, format_hour(e.hour) if e.hour else None, format_size(e.size), e.size, e.state,
             datetime.fromtimestamp(e.modified, UTC).strftime("%Y-%m-%d %H:%M"), e.path.relative_to(cache_dir)]
            for e in entries]
    print_table(["kind", "hour", "size", "bytes", "state", "modified_utc", "path"], rows,
                f"{describe(entries)} in {cache_dir}", right_aligned={"size", "bytes"})


@cache.command(examples=[
    ("wikitop cache prune --older-than 30d", "files modified over 30 days ago"),
    ("wikitop cache prune --kind dumps --max-size 10GB --dry-run", "what would go"),
], help="""Delete cached files, the oldest first.

First those modified more than --older-than ago, then the oldest until what is left of the
chosen kinds fits in --max-size. Whatever a live run holds is kept; partial downloads and
temporary files left by runs that died go once a day old; the DuckDB spill folders (in the
system's temporary folder) of runs no longer alive go at once.""")
@_cache_dir_option(on_subcommand=True)
@click.option("--older-than", type=Duration(), default=None, metavar="DURATION",
              help="Delete files modified longer ago than this, e.g. 30d or 12h.")
@click.option("--max-size", default=None, metavar="SIZE", callback=_size,
              help="Then delete the oldest until the rest fits, e.g. 10GB or 500MiB.")
@CACHE_KIND_OPTION
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.pass_obj
def prune(obj, older_than, max_size, kinds, dry_run):
    from wikitop.cache import describe, prune_cache
    from wikitop.units import format_size

    if older_than is None and max_size is None:
        raise click.UsageError("say what to prune: --older-than DURATION and/or --max-size SIZE")
    cache_dir = obj["cache_dir"]
    pruning = prune_cache(cache_dir, kinds, older_than, max_size, dry_run)
    verb = "would delete" if dry_run else "deleted"
    for label, listed in ((verb, pruning.deleted), ("in use, kept", pruning.in_use)):
        for entry in listed:
            hour = format_hour(entry.hour) if entry.hour else "-"
            click.echo(f"{label}\t{entry.kind}\t{hour}\t{format_size(entry.size)}\t{entry.path.relative_to(cache_dir)}")
    for folder in pruning.spill_folders:
        click.echo(f"{verb}\tspill folder of a dead run\t-\t-\t{folder}")
    deleted, in_use = pruning.deleted, pruning.in_use
    busy = f", {len(in_use)} of them in use by a running wikitop" if in_use else ""
    click.echo(f"{verb} {len(deleted)} files ({format_size(sum(e.size for e in deleted))}); "
               f"{'would keep' if dry_run else 'kept'} {describe(pruning.kept)}{busy} in {cache_dir}", err=True)


def run() -> NoReturn:
    """The console script: main(), then, its output flushed, the end of the process without
    the interpreter's teardown, which spends 0.1-0.2 s unloading DuckDB and Arrow and freeing
    memory that the exit frees anyway. Every command has closed what it opened by then."""
    try:
        main()
        code = 0
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            code = done.code or 0
        else:
            print(done.code, file=sys.stderr)
            code = 1
    try:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. a closed pipe; the exit code still tells
        pass
    os._exit(code)


if __name__ == "__main__":
    run()
