"""What the wikitop DAGs share: the hour of a run, the settings, the dump sensor, the limits.

Kept out of DAG parsing by .airflowignore; the DAG files import it from the DAGs folder,
which Airflow puts on sys.path. wikitop itself is imported only inside tasks, so parsing
stays fast and the scheduler never loads DuckDB or pyarrow.
"""

from __future__ import annotations

import logging
import os
import shlex
from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, PokeReturnValue, Variable, task

log = logging.getLogger(__name__)

POOL = "wikimedia_dumps"
POOL_SLOTS = 3
CONNECTIONS_PER_TASK = 1

# Airflow Variables read at run time, named like the environment variables of `wikitop hour`.
# A Variable that is not set leaves the setting to the worker's environment (or the pod's).
VARIABLE_FLAGS = {"SOURCE_URL_PREFIX": "--source", "PATH_OUT_PREFIX": "--out", "BLACKLIST_URL_IN": "--blacklist"}
EXTRA_ARGUMENTS_VARIABLE = "WIKITOP_HOUR_ARGS"

SENSOR_POKE_INTERVAL = timedelta(minutes=10)
SENSOR_TIMEOUT = timedelta(hours=6)

# Hourly intervals: the run for [H, H+1) has logical date H and starts once H+1 has passed.
# "@hourly" is not used because in Airflow 3 its meaning depends on the deployment's
# [scheduler] create_cron_data_intervals (by default: a zero-length interval at the run time).
HOURLY_INTERVALS = CronDataIntervalTimetable("0 * * * *", timezone="UTC")

DEFAULT_ARGS = {
    "owner": "wikitop",
    "retries": 3,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(hours=1),
}


def dag_arguments() -> dict:
    """Schedule and limits common to both DAGs. Parse-time settings come from the
    environment of the DAG processor, not from Variables, which would cost a metadata
    lookup on every parse."""
    return {
        "schedule": HOURLY_INTERVALS,
        "start_date": datetime.fromisoformat(os.environ.get("WIKITOP_DAG_START_DATE", "2015-05-01T00:00+00:00")),
        "catchup": os.environ.get("WIKITOP_DAG_CATCHUP", "false").strip().lower() in ("1", "true", "yes", "on"),
        "max_active_runs": int(os.environ.get("WIKITOP_DAG_MAX_ACTIVE_RUNS", "4")),
        "max_active_tasks": POOL_SLOTS,
        "default_args": DEFAULT_ARGS,
        "tags": ["wikitop"],
    }


def hour_of_views(logical_date: datetime | None, run_after: datetime) -> datetime:
    """The UTC hour that contains the run's logical date: scheduled runs, backfills and runs
    triggered with a logical date agree. A run triggered without one takes the hour under
    way when it was triggered, which the sensor then waits for."""
    from wikitop.hours import truncate_to_hour

    return truncate_to_hour(logical_date or run_after)


def wikitop_hour_arguments(hour: datetime) -> list[str]:
    """The `wikitop hour` command line (after the program name) for one hour of views.

    --max-connections comes last so that no Variable can raise it: the pool's arithmetic
    counts one connection per task.
    """
    from wikitop.hours import format_hour

    arguments = ["hour", format_hour(hour)]
    for name, flag in VARIABLE_FLAGS.items():
        for value in (Variable.get(name, default=None) or "").split():
            arguments += [flag, value]
    arguments += shlex.split(Variable.get(EXTRA_ARGUMENTS_VARIABLE, default=None) or "")
    return arguments + ["--max-connections", str(CONNECTIONS_PER_TASK)]


def parse_wikitop_hour(arguments: list[str]):
    """The hour and Settings that `wikitop hour` would use for these arguments (``hour HOUR
    FLAGS...``), reading the same environment variables as the command, so that a task and
    the CLI never differ."""
    from airflow.sdk.exceptions import AirflowFailException

    from wikitop.hours import parse_hour
    from wikitop.settings import Settings

    try:
        return parse_hour(arguments[1]), Settings.from_args(arguments[2:])
    except ValueError as error:  # HourError and BadSettings
        raise AirflowFailException(f"bad wikitop settings ({shlex.join(arguments)}): {error}") from None


@task.sensor(
    task_id="wait_for_dump",
    pool=POOL,
    mode="reschedule",
    poke_interval=SENSOR_POKE_INTERVAL,
    timeout=SENSOR_TIMEOUT,
)
def wait_for_dump(logical_date=None, dag_run=None) -> PokeReturnValue:
    """Done once the hour's dump file exists (one HEAD request per poke); its value is the
    `wikitop hour` command line for the next task. In reschedule mode the sensor holds a
    worker and a pool slot only while it pokes. After SENSOR_TIMEOUT the run fails, so that
    `airflow backfill create --reprocess-behavior failed` can redo such hours later."""
    from wikitop.pipeline import Wikitop

    arguments = wikitop_hour_arguments(hour_of_views(logical_date, dag_run.run_after))
    hour, settings = parse_wikitop_hour(arguments)
    session = Wikitop(settings)
    try:
        available = session.dumps.is_available(hour)
    finally:
        session.close()
    log.info("hour %s: dump file %s", arguments[1], "published" if available else "not published yet")
    return PokeReturnValue(is_done=available, xcom_value=arguments)
