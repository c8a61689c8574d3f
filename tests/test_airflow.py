"""The Airflow DAGs in airflow/, run by Airflow 3 from its own virtualenv.

Airflow pins too many packages to share the project's venv, so these tests drive a
second one (airflow/README.md says how to make it) through subprocesses, each with a
fresh AIRFLOW_HOME and an SQLite metadata database. Without that venv they are skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import HOUR, run_wikitop, wikitop_env
from dumpserver import DumpServer
from wikitop.hours import dump_relative_path

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "airflow"
AIRFLOW_PYTHON = Path(os.environ.get("WIKITOP_AIRFLOW_PYTHON", REPO / ".venv-airflow" / "bin" / "python"))
POOL = "wikimedia_dumps"
HOUR_ARG = "2020-01-22T02"
PARTITION = "format=csv/year=2020/month=01/day=22/hour=02"
RESULT_PREFIX = "wikitop-test-result: "

# Run in the Airflow venv; the last line starting with RESULT_PREFIX carries the answer
# (Airflow logs to stdout too).
LOAD_DAGS = """
import json, sys
from pathlib import Path
from airflow.dag_processing.dagbag import BundleDagBag

def load_dags(folder):
    # As the DAG processor parses the default bundle: with the folder on sys.path.
    return BundleDagBag(dag_folder=folder, bundle_path=Path(folder), bundle_name="dags-folder")
"""

DESCRIBE_DAGS = LOAD_DAGS + """
bag = load_dags(sys.argv[1])
print(sys.argv[2] + json.dumps({
    "import_errors": bag.import_errors,
    "parsed_files": sorted(Path(stat.file).name for stat in bag.dagbag_stats),
    "dags": {
        dag_id: {"max_active_tasks": dag.max_active_tasks, "pools": {t.task_id: t.pool for t in dag.tasks}}
        for dag_id, dag in bag.dags.items()
    },
}))
"""

TEST_ONE_RUN = LOAD_DAGS + """
from datetime import datetime

bag = load_dags(sys.argv[1])
dag = bag.dags[sys.argv[3]]
# A failure ends the run within seconds instead of waiting out retry delays and sensor pokes.
for task in dag.tasks:
    task.retries = 0
    if getattr(task, "mode", None) == "reschedule":
        task.poke_interval, task.timeout = 1, 5
run = dag.test(logical_date=datetime.fromisoformat(sys.argv[4]))
print(sys.argv[2] + json.dumps({
    "state": run.state,
    "tasks": {ti.task_id: ti.state for ti in run.get_task_instances()},
}))
"""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict:
    """Environment for Airflow commands: a temporary AIRFLOW_HOME with a migrated SQLite database."""
    if not AIRFLOW_PYTHON.exists():
        pytest.skip(f"no Airflow virtualenv ({AIRFLOW_PYTHON} is missing): create it as airflow/README.md says")
    home = tmp_path_factory.mktemp("airflow-home")
    env = {k: v for k, v in wikitop_env().items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
    )
    airflow(env, "db", "migrate")
    return env


def airflow(env: dict, *args: str, timeout: float = 120) -> str:
    """Run the airflow command; its output."""
    return run_checked([AIRFLOW_PYTHON, "-m", "airflow", *args], env, timeout)


def run_in_airflow_venv(script: str, env: dict, *args: str, timeout: float = 180) -> tuple[dict, str]:
    """Run a script in the Airflow venv; its result and its output."""
    output = run_checked([AIRFLOW_PYTHON, "-c", script, str(DAGS_FOLDER), RESULT_PREFIX, *args], env, timeout)
    results = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    assert results, f"no result line in:\n{output[-5000:]}"
    return json.loads(results[-1][len(RESULT_PREFIX):]), output


def run_checked(command: list, env: dict, timeout: float) -> str:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, command[:4]))} exited {result.returncode}:\n{output[-5000:]}"
    return output


def test_dags_import_cleanly_and_share_one_pool(airflow_env):
    described, _ = run_in_airflow_venv(DESCRIBE_DAGS, airflow_env)
    assert described["import_errors"] == {}
    assert described["parsed_files"] == ["wikitop_hourly.py", "wikitop_hourly_kubernetes.py"]
    assert described["dags"] == {
        dag_id: {"max_active_tasks": 3, "pools": {"wait_for_dump": POOL, "publish_top_pages": POOL}}
        for dag_id in ("wikitop_hourly", "wikitop_hourly_kubernetes")
    }


def published(out: Path) -> tuple[dict, bytes]:
    folder = out / PARTITION
    marker = json.loads((folder / "_SUCCESS").read_text())
    return marker, (folder / marker["file"]).read_bytes()


def test_a_run_publishes_what_wikitop_hour_publishes(airflow_env, mirror, real_hour, tmp_path):
    mirror.add(HOUR, real_hour)
    airflow_cache, airflow_out, cli_out = tmp_path / "airflow-cache", tmp_path / "airflow-out", tmp_path / "cli-out"
    with DumpServer(mirror.root) as server:
        env = dict(
            airflow_env,
            AIRFLOW_VAR_SOURCE_URL_PREFIX=server.url,
            AIRFLOW_VAR_PATH_OUT_PREFIX=str(airflow_out),
            AIRFLOW_VAR_WIKITOP_HOUR_ARGS="--top 10 --ties=dense -v",
            WIKITOP_CACHE_DIR=str(airflow_cache),
        )
        run, log = run_in_airflow_venv(TEST_ONE_RUN, env, "wikitop_hourly", f"{HOUR_ARG}:00+00:00")
        airflow_requests = [(r.method, r.path) for r in server.requests]
        airflow_peak_connections = server.peak_connections
        cli = run_wikitop("hour", HOUR_ARG, "--source", server.url, "--out", cli_out, "--top", "10", "--ties", "dense",
                          env=wikitop_env(WIKITOP_CACHE_DIR=str(tmp_path / "cli-cache")))
    succeeded = {"state": "success", "tasks": {"wait_for_dump": "success", "publish_top_pages": "success"}}
    assert run == succeeded, log[-5000:]
    assert cli.returncode == 0, cli.stderr

    airflow_marker, airflow_data = published(airflow_out)
    cli_marker, cli_data = published(cli_out)
    assert airflow_data == cli_data
    assert airflow_marker["params"] == cli_marker["params"] and cli_marker["params"]["ties"] == "dense"
    assert airflow_marker["period"] == {"kind": "hour", "start": HOUR_ARG, "end": HOUR_ARG}

    file_path = "/" + dump_relative_path(HOUR)
    assert airflow_requests == [("HEAD", file_path), ("GET", file_path)]
    assert airflow_peak_connections == 1
    assert not (airflow_cache / "pageviews" / dump_relative_path(HOUR)).exists()


def test_a_backfill_runs_one_hour_of_views_per_logical_date(airflow_env):
    airflow(airflow_env, "dags", "reserialize")
    plan = airflow(airflow_env, "backfill", "create", "--dag-id", "wikitop_hourly", "--dry-run",
                   "--from-date", "2020-01-21T22:00:00+00:00", "--to-date", "2020-01-22T01:00:00+00:00")
    planned = plan.split("Runs to be attempted")[-1]
    expected = ["2020-01-21 22:00:00+00:00", "2020-01-21 23:00:00+00:00",
                "2020-01-22 00:00:00+00:00", "2020-01-22 01:00:00+00:00"]
    assert [stamp for stamp in expected if stamp in planned] == expected
    assert "2020-01-22 02:00:00+00:00" not in planned and "2020-01-21 21:00:00+00:00" not in planned
