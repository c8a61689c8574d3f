"""wikitop_hourly: publish each hour's top pages per domain code once its dump file is out.

Hours. A run publishes the UTC hour of views that contains its logical date: the run with
logical date 2020-01-22T02:00 UTC publishes hour=02 from pageviews-20200122-030000.gz.
Runs are scheduled on hourly data intervals, so that run starts at 03:00, once the hour
is over, then waits for the file. Backfills and runs triggered with a logical date follow
the same rule; a run triggered without one takes the hour under way at that moment.

Tasks. wait_for_dump polls the dump server with one HEAD request every 10 minutes in
reschedule mode and fails the run after 6 hours. publish_top_pages then runs wikitop's
library in the worker, with the settings `wikitop hour` would use: the Airflow Variables
SOURCE_URL_PREFIX, PATH_OUT_PREFIX, BLACKLIST_URL_IN and WIKITOP_HOUR_ARGS (more flags),
else the worker's environment variables. An hour already published with the same
parameters is not computed again, and the downloaded dump is deleted once the hour is
published. An hour the sources do not have ends skipped; any other failure is retried 3
times with exponential backoff.

Connections. The dump server allows 3 connections per client, and the whole deployment
usually reaches it from one address. Every task that talks to it runs in the pool
wikimedia_dumps, which must have 3 slots (`airflow pools set wikimedia_dumps 3 ...`), and
opens at most one connection (--max-connections 1), so at most 3 are open at any time,
however many runs, backfills and workers there are. The sensor takes its slot only while
it pokes. max_active_tasks (3) and max_active_runs bound this DAG further. Enable this DAG
or wikitop_hourly_kubernetes, not both: they publish the same results.

Parse-time settings, from the DAG processor's environment: WIKITOP_DAG_START_DATE (ISO
8601, default 2015-05-01T00:00+00:00, the first hour of the dumps), WIKITOP_DAG_CATCHUP
(default false) and WIKITOP_DAG_MAX_ACTIVE_RUNS (default 4). See README.md beside this file.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowException, AirflowSkipException
from wikitop_common import POOL, dag_arguments, parse_wikitop_hour, wait_for_dump


@task(pool=POOL)
def publish_top_pages(arguments: list[str]) -> dict:
    from wikitop.pipeline import Status, Wikitop

    hour, settings = parse_wikitop_hour(arguments)
    session = Wikitop(settings)
    try:
        outcome = session.run_hour(hour)
    finally:
        session.close()
    if outcome.status is Status.MISSING:
        raise AirflowSkipException(outcome.message)
    if outcome.status is Status.FAILED:
        raise AirflowException(f"{outcome.period.label}: {outcome.message}")
    # An hourly worker would otherwise keep every dump it ever downloaded.
    session.dumps.discard_cached(hour)
    return {"hour": outcome.period.label, "status": outcome.status.value, "location": outcome.location}


@dag(dag_id="wikitop_hourly", doc_md=__doc__, **dag_arguments())
def wikitop_hourly():
    publish_top_pages(wait_for_dump())


wikitop_hourly()
