"""wikitop_hourly_kubernetes: wikitop_hourly, with the work done by `wikitop hour` in a pod.

For clusters where workers should stay small: the sensor still runs in Airflow (a HEAD
request per poke, so the Airflow environment needs `pip install wikitop` too), and the
hour is computed by the container image (see docs/deploy.md) through the
KubernetesPodOperator (pip install apache-airflow-providers-cncf-kubernetes).

Hours, retries, the sensor and the connection limit are those of wikitop_hourly (see its
documentation): the pod runs exactly the command line the sensor returns, e.g.
`wikitop hour 2020-01-22T02 --source ... --max-connections 1`, holding one slot of the
pool wikimedia_dumps until it ends. Settings travel as flags, from the Airflow Variables
SOURCE_URL_PREFIX, PATH_OUT_PREFIX, BLACKLIST_URL_IN and WIKITOP_HOUR_ARGS; anything else,
credentials above all, goes into the pod's environment from the ConfigMap and the Secret
named `wikitop`, both optional. Unlike wikitop_hourly, an hour the sources do not have fails
the run, since `wikitop hour` exits 1 for it as for any failure.

Parse-time settings, from the DAG processor's environment: those of wikitop_hourly, plus
WIKITOP_IMAGE (default wikitop:latest) and WIKITOP_NAMESPACE (default: the connection's).
"""

from __future__ import annotations

import os

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import dag
from kubernetes.client import models as k8s
from wikitop_common import POOL, dag_arguments, wait_for_dump

CONFIGURATION = "wikitop"


@dag(dag_id="wikitop_hourly_kubernetes", doc_md=__doc__, **dag_arguments())
def wikitop_hourly_kubernetes():
    KubernetesPodOperator(
        task_id="publish_top_pages",
        pool=POOL,
        name="wikitop-hour",
        namespace=os.environ.get("WIKITOP_NAMESPACE"),
        image=os.environ.get("WIKITOP_IMAGE", "wikitop:latest"),
        cmds=["wikitop"],
        arguments=wait_for_dump(),
        env_from=[
            k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=CONFIGURATION, optional=True)),
            k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=CONFIGURATION, optional=True)),
        ],
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "1", "memory": "2Gi"}, limits={"memory": "4Gi"}
        ),
        # A deferred task gives its pool slot back while the pod still downloads.
        deferrable=False,
        get_logs=True,
        on_finish_action="delete_pod",
    )


wikitop_hourly_kubernetes()
