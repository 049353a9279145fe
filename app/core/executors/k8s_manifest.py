"""The batch/v1 Job for one attempt of an Oppen job, as plain data.

Pure: the Kubernetes executor submits it, `oppen queue render ID` prints it, and the tests
validate it against the official Kubernetes schema.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.core.models import Job

GPU_RESOURCE = "nvidia.com/gpu"
HOME = "/var/lib/oppen"


@dataclass(frozen=True)
class JobTemplate:
    """Cluster-wide choices, from settings."""

    namespace: str = "oppen"
    image: str = "oppen:latest"
    service_account: str = "oppen-dispatcher"
    tracking_uri: str | None = None
    database_secret: str = "oppen-database"
    database_secret_key: str = "database-url"
    kueue_queue: str | None = None
    ttl_after_finished_s: int = 86400
    spot: bool = False
    image_pull_policy: str = "IfNotPresent"


def attempt_name(job_id: int, attempt: int) -> str:
    """Deterministic, so a restarted dispatcher finds the attempt instead of starting another."""
    return f"oppen-job-{job_id}-a{max(1, attempt)}"


def _memory(mb: int) -> str:
    return f"{int(mb)}Mi"


def _cpu(cores: float) -> str:
    return f"{max(1, math.ceil(cores * 1000))}m"


def render_job(job: Job, t: JobTemplate) -> dict[str, Any]:
    name = attempt_name(job.id, job.attempts)
    labels = {
        "app.kubernetes.io/name": "oppen-training",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "training",
        "app.kubernetes.io/part-of": "oppen",
        "app.kubernetes.io/managed-by": "oppen",
        "oppen.dev/job-id": str(job.id),
        "oppen.dev/attempt": str(max(1, job.attempts)),
        "oppen.dev/priority-class": job.priority_class,
        "oppen.dev/team": job.team,
    }
    job_labels = dict(labels)
    if t.kueue_queue:
        job_labels["kueue.x-k8s.io/queue-name"] = t.kueue_queue
    requests: dict[str, str] = {"cpu": _cpu(job.cpus), "memory": _memory(job.memory_mb)}
    limits: dict[str, str] = {"cpu": _cpu(job.cpus), "memory": _memory(job.memory_mb)}
    if job.gpus:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(job.gpus)
    env: list[dict[str, Any]] = [
        {"name": "OPPEN_HOME", "value": HOME},
        {"name": "OPPEN_DATABASE_URL", "valueFrom": {"secretKeyRef": {
            "name": t.database_secret, "key": t.database_secret_key}}},
        {"name": "OPPEN_JOB_ID", "value": str(job.id)},
    ]
    if t.tracking_uri:
        env.append({"name": "OPPEN_MLFLOW_TRACKING_URI", "value": t.tracking_uri})
        env.append({"name": "MLFLOW_TRACKING_URI", "value": t.tracking_uri})
    node_selector = {"oppen.dev/pool": "gpu-training" if job.gpus else "cpu-training"}
    tolerations: list[dict[str, Any]] = []
    if job.gpus:
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    if t.spot:
        node_selector["oppen.dev/capacity-type"] = "spot"
        tolerations.append({"key": "oppen.dev/spot", "operator": "Exists", "effect": "NoSchedule"})
    spec: dict[str, Any] = {
        "backoffLimit": 0,  # Oppen owns retries, with backoff and failure classification
        "ttlSecondsAfterFinished": t.ttl_after_finished_s,
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "priorityClassName": f"oppen-{job.priority_class}",
                "serviceAccountName": t.service_account,
                "nodeSelector": node_selector,
                "tolerations": tolerations,
                # The trainer checkpoints on SIGTERM; give it time to.
                "terminationGracePeriodSeconds": 60,
                "containers": [{
                    "name": "train",
                    "image": t.image,
                    "imagePullPolicy": t.image_pull_policy,
                    "args": ["train", "--job-id", str(job.id)],
                    "env": env,
                    "resources": {"requests": requests, "limits": limits},
                    "volumeMounts": [{"name": "home", "mountPath": HOME}],
                }],
                "volumes": [{"name": "home", "emptyDir": {}}],
            },
        },
    }
    if job.max_runtime_s:
        spec["activeDeadlineSeconds"] = max(1, int(math.ceil(job.max_runtime_s)))
    if t.kueue_queue:
        spec["suspend"] = True  # Kueue unsuspends it once admitted
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": t.namespace, "labels": job_labels,
                     "annotations": {"oppen.dev/job-name": job.name[:200]}},
        "spec": spec,
    }
