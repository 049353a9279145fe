"""The batch/v1 Job for one attempt of an Oppen job, as plain data.

A data-parallel job (`num_workers` > 1) is an Indexed Job of one pod per worker, each
requesting its share of the job's CPUs, memory and GPUs, with a headless Service of the
same name whose DNS gives rank 0's pod (`<job>-0.<job>`) as torchrun's rendezvous. Kueue
admits an Indexed Job as one Workload of `num_workers` pods: all of them or none.

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
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# The non-root user the training image runs as (docker/Dockerfile.train creates it).
TRAINING_UID = 10001
# Where rank 0's torchrun agent serves the rendezvous (its TCP store).
RENDEZVOUS_PORT = 29500
RENDEZVOUS_ENV = "OPPEN_RENDEZVOUS"


@dataclass(frozen=True)
class JobTemplate:
    """Cluster-wide choices, from settings."""

    namespace: str = "oppen"
    image: str = "oppen:latest"
    # The training pods' own account: no API rights, and no token mounted (Terraform's
    # k8s-platform module creates it).
    service_account: str = "oppen-training"
    tracking_uri: str | None = None
    database_secret: str = "oppen-database"
    database_secret_key: str = "database-url"
    # The Kueue LocalQueue; "{team}" in it is replaced by the job's team (one queue per team).
    kueue_queue: str | None = None
    ttl_after_finished_s: int = 86400
    spot: bool = False
    image_pull_policy: str = "IfNotPresent"
    # Where checkpoints outlive the pod (OPPEN_CHECKPOINT_URI: s3://bucket/prefix).
    checkpoint_uri: str | None = None


def attempt_name(job_id: int, attempt: int) -> str:
    """Deterministic, so a restarted dispatcher finds the attempt instead of starting another."""
    return f"oppen-job-{job_id}-a{max(1, attempt)}"


def _memory(mb: int) -> str:
    return f"{int(mb)}Mi"


def _cpu(cores: float) -> str:
    return f"{max(1, math.ceil(cores * 1000))}m"


def workers_of(job: Job) -> int:
    """The job's data-parallel workers (its training option, validated at submission)."""
    value = (job.config or {}).get("num_workers", 1)
    return value if isinstance(value, int) and value > 1 else 1


def _labels(job: Job, name: str) -> dict[str, str]:
    return {
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


def render_job(job: Job, t: JobTemplate) -> dict[str, Any]:
    name = attempt_name(job.id, job.attempts)
    labels = _labels(job, name)
    job_labels = dict(labels)
    queue = kueue_queue_for(job, t)
    if queue:
        job_labels[KUEUE_QUEUE_LABEL] = queue
    workers = workers_of(job)
    # Each pod is one worker with its share of the job's resources (the job's are the
    # gang's totals: what admission, quotas and cost estimates count).
    cpus, memory_mb, gpus = job.cpus / workers, job.memory_mb // workers, job.gpus // workers
    requests: dict[str, str] = {"cpu": _cpu(cpus), "memory": _memory(memory_mb)}
    limits: dict[str, str] = {"cpu": _cpu(cpus), "memory": _memory(memory_mb)}
    if gpus:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(gpus)
    env: list[dict[str, Any]] = [
        {"name": "OPPEN_HOME", "value": HOME},
        {"name": "OPPEN_DATABASE_URL", "valueFrom": {"secretKeyRef": {
            "name": t.database_secret, "key": t.database_secret_key}}},
        {"name": "OPPEN_JOB_ID", "value": str(job.id)},
    ]
    if t.tracking_uri:
        env.append({"name": "OPPEN_MLFLOW_TRACKING_URI", "value": t.tracking_uri})
        env.append({"name": "MLFLOW_TRACKING_URI", "value": t.tracking_uri})
    if t.checkpoint_uri:
        env.append({"name": "OPPEN_CHECKPOINT_URI", "value": t.checkpoint_uri})
    if workers > 1:
        # Rank 0's pod by its stable name under the headless Service; each pod's rank is
        # its completion index (JOB_COMPLETION_INDEX, set by Kubernetes).
        env.append({"name": RENDEZVOUS_ENV,
                    "value": f"{name}-0.{name}.{t.namespace}.svc:{RENDEZVOUS_PORT}"})
    node_selector = {"oppen.dev/pool": "gpu-training" if job.gpus else "cpu-training"}
    tolerations: list[dict[str, Any]] = []
    if job.gpus:
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    if t.spot or job.spot:  # the spot pool Terraform creates: its label and its taint
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
                "automountServiceAccountToken": False,
                # The restricted Pod Security Standard, every rule of it.
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": TRAINING_UID,
                    "runAsGroup": TRAINING_UID,
                    "fsGroup": TRAINING_UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
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
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "privileged": False,
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    # The root filesystem is read-only: scratch goes to these.
                    "volumeMounts": [{"name": "home", "mountPath": HOME},
                                     {"name": "tmp", "mountPath": "/tmp"}],
                }],
                "volumes": [{"name": "home", "emptyDir": {}},
                            {"name": "tmp", "emptyDir": {}}],
            },
        },
    }
    if workers > 1:
        # One worker failing fails the Job (backoffLimit 0), and the Job controller stops
        # the others: the attempt fails cleanly on every rank and Oppen's retry resumes.
        spec.update(completionMode="Indexed", completions=workers, parallelism=workers)
        pod = spec["template"]["spec"]
        pod["subdomain"] = name
        pod["containers"][0]["ports"] = [{"name": "rendezvous",
                                          "containerPort": RENDEZVOUS_PORT, "protocol": "TCP"}]
    if job.max_runtime_s:
        spec["activeDeadlineSeconds"] = max(1, int(math.ceil(job.max_runtime_s)))
    if queue:
        spec["suspend"] = True  # Kueue unsuspends it once admitted
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": t.namespace, "labels": job_labels,
                     "annotations": {"oppen.dev/job-name": job.name[:200]}},
        "spec": spec,
    }


def render_service(job: Job, t: JobTemplate) -> dict[str, Any] | None:
    """The headless Service that names a data-parallel job's pods (None for one worker).
    Not-ready addresses are published: the rendezvous happens before any pod is Ready."""
    if workers_of(job) == 1:
        return None
    name = attempt_name(job.id, job.attempts)
    labels = _labels(job, name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": t.namespace, "labels": labels},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {"app.kubernetes.io/instance": name},
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT,
                       "targetPort": RENDEZVOUS_PORT, "protocol": "TCP"}],
        },
    }


def kueue_queue_for(job: Job, t: JobTemplate) -> str | None:
    """The LocalQueue the job's Kubernetes Job goes to: one per team when the setting names
    ``{team}`` (Terraform creates ``oppen-<team>`` for each team)."""
    if not t.kueue_queue:
        return None
    return t.kueue_queue.replace("{team}", job.team)
