"""Runs each attempt as a Kubernetes batch/v1 Job through the official client.

The client comes through app.core.adaptors.kubernetes (imported lazily, configured once: the
pod's service account in a cluster, else kubeconfig), or is an explicit ``ApiClient`` (tests
point one at a fake API server).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from app.core.adaptors import kubernetes as k8s
from app.core.executors.base import ExecStatus, LaunchError, Phase
from app.core.executors.k8s_manifest import (
    KUEUE_QUEUE_LABEL,
    JobTemplate,
    attempt_name,
    render_job,
    render_service,
)
from app.core.models import Job

# Container or pod states that mean the attempt cannot go on and must be replaced.
STUCK_WAITING = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError")
# Kueue's on-demand visibility API: the pending workloads of a LocalQueue, in order.
PENDING_WORKLOADS = ("/apis/visibility.kueue.x-k8s.io/v1beta1/namespaces/{namespace}/"
                     "localqueues/{queue}/pendingworkloads")


class KubernetesExecutor:
    name = "kubernetes"

    def __init__(self, template: JobTemplate, api_client: Any = None,
                 request_timeout_s: float = 10.0) -> None:
        self.template = template
        self._api_client = api_client
        # Every API call ends within this (the dispatcher calls them inside its lease).
        self.request_timeout_s = request_timeout_s
        # Jobs go to Kueue, which keeps each suspended until its quota allows (the dispatcher
        # shows them waiting, not running).
        self.queue_name = template.kueue_queue

    # The client objects are made on first use, never at import or construction.
    def _apis(self) -> tuple[Any, Any]:
        return k8s.batch_api(self.api_client), k8s.core_api(self.api_client)

    @property
    def api_client(self) -> Any:
        """The client's connection (in-cluster, kubeconfig, or the one given)."""
        if self._api_client is None:
            self._api_client = k8s.default_api_client()
        return self._api_client

    def ping(self, timeout_s: float = 2.0) -> None:
        """One cheap read of the namespace's Jobs; raises if the API cannot be reached."""
        batch, _ = self._apis()
        batch.list_namespaced_job(self.template.namespace, limit=1, _request_timeout=timeout_s)

    def render(self, job: Job) -> dict[str, Any]:
        return render_job(job, self.template)

    def launch(self, job: Job) -> str:
        batch, core = self._apis()
        manifest = self.render(job)
        ref = self._ref(manifest["metadata"]["name"])
        service = render_service(job, self.template)
        if service is not None:
            # The Service first: a gang's pods resolve rank 0 through it as they start.
            self._create(lambda: core.create_namespaced_service(
                self.template.namespace, service, _request_timeout=self.request_timeout_s),
                "Service")
        self._create(lambda: batch.create_namespaced_job(
            self.template.namespace, k8s.job_from_manifest(manifest),
            _request_timeout=self.request_timeout_s), "Job")
        return ref

    @staticmethod
    def _create(call: Any, kind: str) -> None:
        ApiException = k8s.api_exception()
        try:
            call()
        except ApiException as exc:
            if exc.status == 409:
                return  # this attempt's object exists already (a restart mid-launch): adopt it
            message = _api_message(exc)
            if exc.status in (400, 422):
                raise LaunchError(f"the cluster rejected the {kind}: {message}",
                                  retryable=False) from None
            # 403 (quota exceeded, RBAC), 429 and 5xx: the cluster's trouble, not the job's.
            raise LaunchError(f"HTTP {exc.status}: {message}") from None

    def find(self, job: Job) -> str | None:
        ApiException = k8s.api_exception()
        batch, _ = self._apis()
        name = attempt_name(job.id, job.attempts)
        try:
            batch.read_namespaced_job(name, self.template.namespace,
                                      _request_timeout=self.request_timeout_s)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self._ref(name)

    def poll(self, ref: str) -> ExecStatus:
        ApiException = k8s.api_exception()
        batch, core = self._apis()
        info = json.loads(ref)
        try:
            k8s_job = batch.read_namespaced_job(info["name"], info["namespace"],
                                                _request_timeout=self.request_timeout_s)
        except ApiException as exc:
            if exc.status == 404:
                return ExecStatus(Phase.LOST, None, "the Kubernetes Job was deleted")
            raise
        conditions = {c.type: c for c in (k8s_job.status.conditions or []) if c.status == "True"}
        pods = core.list_namespaced_pod(info["namespace"],
                                        label_selector=f"job-name={info['name']}",
                                        _request_timeout=self.request_timeout_s).items
        started, ended = _run_times(pods)
        if "Complete" in conditions:
            return ExecStatus(Phase.EXITED, 0, "Job complete", started, ended)
        if "Failed" in conditions:
            cond = conditions["Failed"]
            if cond.reason == "DeadlineExceeded":
                return ExecStatus(Phase.TIMEOUT, None,
                                  f"DeadlineExceeded: {cond.message or 'activeDeadlineSeconds'}",
                                  started, ended)
            code, detail = _pod_outcome(pods)
            return ExecStatus(Phase.EXITED, code,
                              detail or f"{cond.reason}: {cond.message or ''}".strip(": "),
                              started, ended)
        if k8s_job.spec.suspend:  # Kueue holds it until its ClusterQueue has quota
            return ExecStatus(Phase.WAITING, None, "suspended by Kueue, waiting for quota",
                              position=self._pending_position(k8s_job))
        for pod in pods:  # still running: is it stuck where waiting will not help?
            for status in (pod.status.container_statuses or []):
                waiting = status.state.waiting if status.state else None
                if waiting is not None and waiting.reason in STUCK_WAITING:
                    return ExecStatus(Phase.EXITED, None,
                                      f"{waiting.reason}: {waiting.message or ''}".strip(": "))
        return ExecStatus(Phase.RUNNING)

    def _pending_position(self, k8s_job: Any) -> int | None:
        """The Job's place (1 = next) among its LocalQueue's pending workloads, from Kueue's
        visibility API; None when the API is absent or does not list it (yet)."""
        queue = (k8s_job.metadata.labels or {}).get(KUEUE_QUEUE_LABEL)
        if not queue:
            return None
        path = PENDING_WORKLOADS.format(namespace=k8s_job.metadata.namespace, queue=queue)
        try:
            summary = k8s.get_json(self.api_client, path, self.request_timeout_s)
        except Exception:  # noqa: BLE001 - the position is a courtesy (the API is optional)
            return None
        for item in (summary or {}).get("items") or []:
            owners = (item.get("metadata") or {}).get("ownerReferences") or []
            if any(o.get("uid") == k8s_job.metadata.uid for o in owners):
                return int(item.get("positionInLocalQueue", 0)) + 1
        return None

    def stop(self, ref: str) -> None:
        """Deletes the Job, whose pods the garbage collector removes (SIGTERM first), and a
        data-parallel job's Service (absent for one worker: a 404 is the same outcome)."""
        ApiException = k8s.api_exception()
        batch, core = self._apis()
        info = json.loads(ref)
        try:
            batch.delete_namespaced_job(info["name"], info["namespace"],
                                        propagation_policy="Background",
                                        body=k8s.background_delete(),
                                        _request_timeout=self.request_timeout_s)
        except ApiException as exc:
            if exc.status != 404:
                raise
        try:
            core.delete_namespaced_service(info["name"], info["namespace"],
                                           _request_timeout=self.request_timeout_s)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def logs(self, ref: str, lines: int = 50) -> str:
        ApiException = k8s.api_exception()
        _, core = self._apis()
        info = json.loads(ref)
        try:
            pods = core.list_namespaced_pod(info["namespace"],
                                            label_selector=f"job-name={info['name']}",
                                        _request_timeout=self.request_timeout_s).items
            if not pods:
                return ""
            # The latest pod; one without a timestamp yet sorts first, never compared to one.
            newest = max(pods, key=lambda p: (p.metadata.creation_timestamp is not None,
                                              p.metadata.creation_timestamp or 0))
            return core.read_namespaced_pod_log(newest.metadata.name, info["namespace"],
                                                tail_lines=lines,
                                                _request_timeout=self.request_timeout_s) or ""
        except ApiException:
            return ""  # logs are a courtesy; a failure to read them changes nothing

    def _ref(self, name: str) -> str:
        return json.dumps({"namespace": self.template.namespace, "name": name})


def _run_times(pods: list[Any]) -> tuple[datetime | None, datetime | None]:
    """When the training containers started and ended (their own record): what is charged.
    A data-parallel job's pods run together: from the first start to the last end."""
    starts, ends = [], []
    for pod in pods:
        for status in (pod.status.container_statuses or []):
            term = status.state.terminated if status.state else None
            if term is not None:
                starts += [term.started_at] if term.started_at else []
                ends += [term.finished_at] if term.finished_at else []
    return (min(starts) if starts else None), (max(ends) if ends else None)


def _pod_outcome(pods: list[Any]) -> tuple[int | None, str]:
    """Exit code and reason of the failed attempt from its pod: OOMKilled, Evicted, a
    DisruptionTarget condition (preempted, a spot node reclaimed, its node gone), ... Of a
    data-parallel job's pods, the failed ones speak first (the others ended 0 or were
    stopped because of it)."""
    pods = sorted(pods, key=lambda p: p.status.phase != "Failed")
    for pod in pods:
        for cond in (pod.status.conditions or []):
            if cond.type == "DisruptionTarget" and cond.status == "True":
                return None, f"DisruptionTarget: {cond.reason or ''}: {cond.message or ''}" \
                    .strip(": ")
        if pod.status.reason:  # e.g. Evicted, NodeLost, Shutdown, DeletedByController
            return None, f"{pod.status.reason}: {pod.status.message or ''}".strip(": ")
        for status in (pod.status.container_statuses or []):
            term = status.state.terminated if status.state else None
            if term is not None:
                detail = term.reason or ""
                if term.message:
                    detail = f"{detail}: {term.message}" if detail else term.message
                return term.exit_code, detail
    if not pods:
        return None, "node is gone: the attempt's pod no longer exists"
    return None, ""


def _api_message(exc: Any) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError):
        return str(exc.reason)
