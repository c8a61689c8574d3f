"""The ``wikitop`` command: a thin layer of flags over the library.

Exit codes: 0 done or already done, 1 the work failed, 2 bad usage.
"""

from __future__ import annotations

import functools
import logging
import sys
from datetime import datetime
from pathlib import Path

import click

from wikitop import __version__
from wikitop.blacklist import DEFAULT_BLACKLIST
from wikitop.engines import ENGINES
from wikitop.fetch import DEFAULT_SOURCE, DEFAULT_USER_AGENT, SERVER_CONNECTION_LIMIT
from wikitop.hours import HourError, default_hour, format_hour, parse_hour
from wikitop.pipeline import Outcome, Status, Wikitop
from wikitop.publish import FORMATS
from wikitop.settings import Settings, default_cache_dir, parse_spark_properties
from wikitop.sql import TIE_RULES

log = logging.getLogger("wikitop")

HOUR_HELP = (
    "An hour is the UTC hour of views: 2020-01-22T02 means 02:00-02:59 UTC, read from the "
    "file stamped one hour later (pageviews-20200122-030000.gz), as Wikimedia stamps files "
    "with the end of the hour. Accepted: 2020-01-22T02, 2020-01-22T02:00, "
    "'2020-01-22 02:00:00', optionally with a UTC offset (+02:00, Z)."
)


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
    """``90``, ``90s``, ``30m``, ``6h``, ``2d`` as seconds."""

    name = "DURATION"
    _UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip().lower()
        unit = text[-1] if text and text[-1] in self._UNITS else "s"
        number = text[:-1] if text and text[-1] in self._UNITS else text
        try:
            seconds = float(number) * self._UNITS[unit]
        except ValueError:
            self.fail(f"{value!r} is not a duration such as 90s, 30m or 6h", param, ctx)
        if seconds < 0:
            self.fail("a duration cannot be negative", param, ctx)
        return seconds


def _spark_conf(ctx, param, values):
    conf = {}
    try:
        conf.update(parse_spark_properties(ctx.params.get("spark_properties") or ""))
        for value in values:
            conf.update(parse_spark_properties(value))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    return conf


COMMON_OPTIONS = [
    click.option("--source", "sources", multiple=True, envvar="SOURCE_URL_PREFIX", metavar="URL|DIR",
                 help=f"Where the dumps are: an https:// prefix laid out like {DEFAULT_SOURCE}, or a "
                 "mirror directory with the same layout. Repeat to fail over in order. "
                 "[env SOURCE_URL_PREFIX; default: the dump server]"),
    click.option("--out", default="./wikitop-out", show_default=True, envvar="PATH_OUT_PREFIX",
                 help="Where results go: a directory or an fsspec URL such as s3://bucket/prefix. "
                 "[env PATH_OUT_PREFIX]"),
    click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True,
                 help="Result format: gzipped CSV, Parquet, or gzipped JSON lines."),
    click.option("--blacklist", default=DEFAULT_BLACKLIST, envvar="BLACKLIST_URL_IN", metavar="PATH|URL",
                 help="Blacklist of 'domain_code page_title' lines; the default is the assignment's "
                 "list shipped with wikitop. [env BLACKLIST_URL_IN]"),
    click.option("--no-blacklist", is_flag=True, help="Rank every page."),
    click.option("--top", type=click.IntRange(min=1), default=25, show_default=True,
                 help="How many places per domain code."),
    click.option("--ties", type=click.Choice(TIE_RULES), default="rank", show_default=True,
                 help="rank: tied pages share a place, so a domain can list more than --top rows; "
                 "dense: --top distinct view counts; row: exactly --top rows, ties broken by title."),
    click.option("--strict", is_flag=True, help="Fail on any bad line instead of skipping and counting it."),
    click.option("--force", is_flag=True, envvar="FORCE_REPROCESS",
                 help="Compute and publish even when a result with the same parameters exists. "
                 "[env FORCE_REPROCESS]"),
    click.option("--engine", type=click.Choice(ENGINES), default="duckdb", show_default=True,
                 envvar="WIKITOP_ENGINE", help="DuckDB in-process, or Spark (pip install 'wikitop[spark]')."),
    click.option("--spark-properties", envvar="SPARK_PROPERTIES", hidden=True, is_eager=True,
                 help="key=value lines. [env SPARK_PROPERTIES]"),
    click.option("--spark-conf", multiple=True, metavar="KEY=VALUE", callback=_spark_conf,
                 help="A Spark property (repeatable), e.g. spark.master=local[2]; adds to SPARK_PROPERTIES."),
    click.option("--cache-dir", type=click.Path(file_okay=False), default=None, envvar="WIKITOP_CACHE_DIR",
                 help=f"Downloaded dumps and hourly totals. [default: {default_cache_dir()}]"),
    click.option("--keep-totals/--no-keep-totals", default=None,
                 help="Keep each hour's full page totals as Parquet in the cache, for days and windows."),
    click.option("--user-agent", default=DEFAULT_USER_AGENT, envvar="WIKITOP_USER_AGENT",
                 help="User-Agent for every request; Wikimedia requires contact details in it."),
    click.option("--max-connections", type=click.IntRange(min=1), default=SERVER_CONNECTION_LIMIT,
                 show_default=True, help="Connections per host for the whole process."),
    click.option("--allow-more-connections", is_flag=True,
                 help="Allow --max-connections above the dump server's limit of 3 (own mirrors only)."),
    click.option("--wait", "wait_seconds", type=Duration(), default="0", metavar="DURATION",
                 help="Wait up to this long (e.g. 3h) for a file not published yet, polling cheaply."),
    click.option("-v", "--verbose", count=True, help="More log lines."),
    click.option("-q", "--quiet", is_flag=True, help="Only errors."),
]


def common_options(command):
    for option in reversed(COMMON_OPTIONS):
        command = option(command)
    return command


def make_settings(options: dict, keep_totals_default: bool) -> Settings:
    keep_totals = options["keep_totals"]
    return Settings(
        sources=list(options["sources"]) or [DEFAULT_SOURCE],
        out=options["out"],
        fmt=options["fmt"],
        blacklist=None if options["no_blacklist"] else options["blacklist"],
        top=options["top"],
        ties=options["ties"],
        strict=options["strict"],
        force=options["force"],
        engine=options["engine"],
        spark_conf=options["spark_conf"],
        cache_dir=Path(options["cache_dir"]) if options["cache_dir"] else default_cache_dir(),
        keep_totals=keep_totals_default if keep_totals is None else keep_totals,
        user_agent=options["user_agent"],
        max_connections=options["max_connections"],
        allow_more_connections=options["allow_more_connections"],
        wait_seconds=options["wait_seconds"],
    )


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
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    return interactive


def open_session(options: dict, keep_totals_default: bool) -> Wikitop:
    interactive = setup_logging(options["verbose"], options["quiet"])
    try:
        settings = make_settings(options, keep_totals_default)
        progress = _progress_bar() if interactive else None
        return Wikitop(settings, progress)
    except ValueError as error:
        raise click.UsageError(str(error)) from None


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
        click.echo(f"wikitop: error: {label}: {outcome.message}", err=True)
    elif outcome.status is Status.MISSING:
        click.echo(f"wikitop: missing: {outcome.message}", err=True)
    elif not quiet:
        where = f" -> {outcome.location}" if outcome.location else ""
        click.echo(f"{label}: {outcome.status.value}: {outcome.message}{where}")


def with_errors_as_exit_codes(command):
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except click.ClickException:
            raise
        except KeyboardInterrupt:
            click.echo("wikitop: interrupted; nothing half-written was published", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="wikitop")
def main():
    """The most viewed pages of each Wikimedia wiki, from the public pageview dumps."""


@main.command(help=f"""Publish the top pages of every domain code for one hour.

HOUR defaults to the hour that started 24 hours before the current UTC hour
[env EXECUTION_DATETIME]. {HOUR_HELP}

Results go to OUT/format=FMT/year=YYYY/month=MM/day=DD/hour=HH/ (HH: the hour of views)
with a _SUCCESS marker written last. A result with a marker and the same parameters is
not computed again unless --force.""")
@click.argument("hour", type=HOUR, required=False, envvar="EXECUTION_DATETIME")
@common_options
@with_errors_as_exit_codes
def hour(hour, **options):
    session = open_session(options, keep_totals_default=False)
    try:
        outcome = session.run_hour(hour or default_hour())
    finally:
        session.close()
    report(outcome, options["quiet"])
    sys.exit(0 if outcome.ok else 1)


RANGE_OPTIONS = [
    click.option("--daily", is_flag=True, help="Also publish a top per UTC day wholly inside the range."),
    click.option("--hourly/--no-hourly", default=True, envvar="HOURLY", show_default=True,
                 help="Publish a top per hour; --no-hourly (HOURLY=false) publishes only days. [env HOURLY]"),
    click.option("--allow-incomplete", is_flag=True,
                 help="Publish days and windows even when some of their hours are missing (listed in "
                 "the result's metadata)."),
    click.option("--keep-raw/--no-keep-raw", default=True, show_default=True,
                 help="Keep downloaded dumps in the cache after use."),
]


def range_options(command):
    for option in reversed(RANGE_OPTIONS):
        command = option(command)
    return command


def run_many(session: Wikitop, start, end, quiet: bool, **kwargs) -> list[Outcome]:
    """run_range with live progress (a bar with ETA on a terminal, log lines otherwise)."""
    from wikitop.runner import run_range

    interactive = sys.stderr.isatty() and not quiet
    if not interactive:
        return run_range(session, start, end, on_outcome=lambda o: report(o, quiet), **kwargs)
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

        return run_range(session, start, end, on_outcome=on_outcome, on_plan=on_plan, **kwargs)


def summarize(outcomes: list[Outcome], strict: bool, quiet: bool) -> int:
    """Print a table of what happened; return the exit code."""
    from collections import Counter

    counts = Counter(o.status for o in outcomes)
    problems = [o for o in outcomes if not o.ok]
    if not quiet:
        from rich.console import Console
        from rich.table import Table

        console = Console(stderr=False, soft_wrap=True)
        table = Table(title="wikitop summary", show_edge=False)
        for column in ("status", "count"):
            table.add_column(column)
        for status in Status:
            table.add_row(status.value, str(counts.get(status, 0)))
        console.print(table)
        if problems:
            details = Table(show_edge=False)
            for column in ("period", "status", "reason"):
                details.add_column(column, overflow="fold")
            for outcome in problems:
                details.add_row(outcome.period.label, outcome.status.value, outcome.message)
            console.print(details)
    failed = counts.get(Status.FAILED, 0) or (strict and counts.get(Status.MISSING, 0))
    return 1 if failed else 0


@main.command(name="range", help=f"""Publish one result per hour from START to END (both included).

With --daily, also one result per UTC day wholly inside the range, computed from the
hours' full page totals (kept as Parquet in the cache), never from hourly top lists.
Hours already published with the same parameters are skipped. A missing hour fails the
run only with --strict; a failed hour always does. {HOUR_HELP}""")
@click.argument("start", type=HOUR)
@click.argument("end", type=HOUR)
@range_options
@common_options
@with_errors_as_exit_codes
def range_command(start, end, daily, hourly, allow_incomplete, keep_raw, **options):
    session = open_session(options, keep_totals_default=True)
    try:
        outcomes = run_many(session, start, end, options["quiet"], hourly=hourly, daily=daily or not hourly,
                            allow_incomplete=allow_incomplete, keep_raw=keep_raw)
    except HourError as error:
        raise click.UsageError(str(error)) from None
    finally:
        session.close()
    sys.exit(summarize(outcomes, options["strict"], options["quiet"]))


@main.command(help=f"""Publish one top over all hours from START to END (both included).

Totals are summed over the hours' full page totals, kept as Parquet in the cache, so a
window over hours already seen reads no dump again. Results go to
OUT/format=FMT/window=STARTHOUR-ENDHOUR/. {HOUR_HELP}""")
@click.argument("start", type=HOUR)
@click.argument("end", type=HOUR)
@click.option("--allow-incomplete", is_flag=True, help="Publish even when some hours are missing.")
@click.option("--keep-raw/--no-keep-raw", default=True, show_default=True,
              help="Keep downloaded dumps in the cache after use.")
@common_options
@with_errors_as_exit_codes
def window(start, end, allow_incomplete, keep_raw, **options):
    from wikitop.publish import Period

    session = open_session(options, keep_totals_default=True)
    try:
        outcomes = run_many(session, start, end, options["quiet"], hourly=False,
                            windows=[Period.window(start, end)], allow_incomplete=allow_incomplete,
                            keep_raw=keep_raw)
    except HourError as error:
        raise click.UsageError(str(error)) from None
    finally:
        session.close()
    code = summarize(outcomes, options["strict"], options["quiet"])
    sys.exit(1 if any(o.period.kind == "window" and not o.ok for o in outcomes) else code)


if __name__ == "__main__":
    main()
