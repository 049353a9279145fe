"""An in-process fake of the Kubernetes API server, for the Kubernetes executor's tests.

No API server can run on these machines, so this implements exactly the endpoints the
executor uses, with real Kubernetes JSON shapes: Job and Pod objects, PodList, metav1.Status
errors (404 NotFound, 409 AlreadyExists, 403 Forbidden for an exceeded quota, 422 Invalid,
500), and plain-text pod logs. Created Jobs are validated against the official Kubernetes
schema, as the real server would. Tests play the Job controller and kubelet through the
helpers (``start_pod``, ``finish``, ...).

Kueue, as far as the executor meets it: a Job created suspended with a
``kueue.x-k8s.io/queue-name`` label gets a Workload (kueue.x-k8s.io/v1beta1, owned by the
Job, with Kueue's QuotaReserved / Admitted / Evicted conditions) and a place among its
LocalQueue's pending workloads, served by the visibility API
(visibility.kueue.x-k8s.io/v1beta1 PendingWorkloadsSummary). Tests play Kueue's controller
(``kueue_admit`` unsuspends, ``kueue_preempt`` suspends again) and the node lifecycle
(``disrupt`` sets a pod's DisruptionTarget condition, ``lose_node`` removes its pod).

A data-parallel job is an Indexed Job (one pod per completion index, each with its index
label and hostname) beside a headless Service (v1 Service: create, read, delete, validated
like Jobs). Its Workload has one pod set of ``parallelism`` pods, which Kueue admits
together. ``finish_index`` ends one index's pod: a failure fails the Job (backoffLimit 0)
and the Job controller deletes the other pods; the Job completes once every index has.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate

KUBERNETES_VERSION = "1.33"
JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?$")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
SERVICES = re.compile(r"^/api/v1/namespaces/([^/]+)/services(?:/([^/]+))?$")
NODES = "/api/v1/nodes"
POD_LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")
WORKLOADS = re.compile(r"^/apis/kueue.x-k8s.io/v1beta1/namespaces/([^/]+)/workloads(?:/([^/]+))?$")
PENDING = re.compile(r"^/apis/visibility.kueue.x-k8s.io/v1beta1/namespaces/([^/]+)/"
                     r"localqueues/([^/]+)/pendingworkloads$")
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_error(code: int, reason: str, message: str, name: str = "",
                 kind: str = "jobs") -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason,
            "details": {"name": name, "group": "batch", "kind": kind}, "code": code}


class FakeKubernetes:
    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.requests: list[tuple[str, str]] = []
        self.deletions: list[dict[str, Any]] = []
        self._fail_next: list[tuple[int, str, str]] = []
        self.nodes: list[dict[str, Any]] = []
        self.nodes_forbidden = False
        self.workloads: dict[tuple[str, str], dict[str, Any]] = {}
        # Each LocalQueue's pending workloads, in Kueue's order (here: arrival).
        self.pending: dict[tuple[str, str], list[str]] = {}
        self.visibility_api = True  # Kueue's visibility API installed (an optional component)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- test controls -----------------------------------------------------------------

    def fail_next_create(self, code: int, reason: str, message: str) -> None:
        self._fail_next.append((code, reason, message))

    def start_pod(self, job_name: str, namespace: str = "oppen", log: str = "",
                  started_at: str | None = None, index: int | None = None) -> str:
        """The Job controller creates a pod (of completion ``index`` in an Indexed Job), the
        kubelet starts its container (at ``started_at``, RFC 3339, default now)."""
        job = self.jobs[(namespace, job_name)]
        labels = {**job["spec"]["template"]["metadata"]["labels"], "job-name": job_name,
                  "batch.kubernetes.io/job-name": job_name}
        spec = json.loads(json.dumps(job["spec"]["template"]["spec"]))
        if index is not None:
            labels["batch.kubernetes.io/job-completion-index"] = str(index)
            spec["hostname"] = f"{job_name}-{index}"
            spec["containers"][0].setdefault("env", []).append(
                {"name": "JOB_COMPLETION_INDEX", "value": str(index)})
        pod_name = f"{job_name}-{'' if index is None else f'{index}-'}{uuid.uuid4().hex[:5]}"
        self.pods[(namespace, pod_name)] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": namespace, "uid": str(uuid.uuid4()),
                         "creationTimestamp": _now(), "labels": labels},
            "spec": spec,
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "train", "image": "oppen", "imageID": "", "ready": True,
                "restartCount": 0, "state": {"running": {"startedAt": started_at or _now()}}}]},
        }
        self.logs[(namespace, pod_name)] = log
        active = sum(1 for (ns, _), p in self.pods.items() if ns == namespace
                     and p["metadata"]["labels"]["job-name"] == job_name)
        job["status"] = {"active": active, "startTime": _now()}
        return pod_name

    def pods_of(self, job_name: str, namespace: str = "oppen") -> list[dict[str, Any]]:
        return [p for (ns, _), p in self.pods.items()
                if ns == namespace and p["metadata"]["labels"]["job-name"] == job_name]

    def finish_index(self, job_name: str, index: int, exit_code: int,
                     namespace: str = "oppen") -> None:
        """One index's container exits. A failure fails the Indexed Job (backoffLimit 0) and
        the Job controller deletes its other pods; the last success completes it."""
        pods = self.pods_of(job_name, namespace)
        pod = next(p for p in pods if p["metadata"]["labels"].get(
            "batch.kubernetes.io/job-completion-index") == str(index))
        pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        state = pod["status"]["containerStatuses"][0]["state"]
        pod["status"]["containerStatuses"][0]["state"] = {"terminated": {
            "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": state.get("running", {}).get("startedAt", _now()),
            "finishedAt": _now()}}
        if exit_code != 0:
            for other in pods:
                if other is not pod and other["status"]["phase"] == "Running":
                    self.pods.pop((namespace, other["metadata"]["name"]))
            self._condition(job_name, namespace, False, "BackoffLimitExceeded",
                            "Job has reached the specified backoff limit")
        elif all(p["status"]["phase"] == "Succeeded" for p in pods) and \
                len(pods) == self.jobs[(namespace, job_name)]["spec"].get("completions", 1):
            self._condition(job_name, namespace, True, "", "")

    def add_node(self, name: str, cpu: str, memory: str, gpus: int = 0) -> None:
        allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
        if gpus:
            allocatable["nvidia.com/gpu"] = str(gpus)
        self.nodes.append({"apiVersion": "v1", "kind": "Node",
                           "metadata": {"name": name, "uid": str(uuid.uuid4())},
                           "status": {"allocatable": allocatable, "capacity": allocatable}})

    def schedule(self, pod_name: str, node: str, namespace: str = "oppen") -> None:
        self.pods[(namespace, pod_name)]["spec"]["nodeName"] = node

    def wait_on_image(self, job_name: str, namespace: str = "oppen") -> None:
        pod = self._pod_of(job_name, namespace)
        pod["status"]["phase"] = "Pending"
        pod["status"]["containerStatuses"][0]["ready"] = False
        pod["status"]["containerStatuses"][0]["state"] = {"waiting": {
            "reason": "ImagePullBackOff",
            "message": 'Back-off pulling image "oppen:missing"'}}

    def finish(self, job_name: str, exit_code: int, reason: str = "",
               namespace: str = "oppen") -> None:
        """The container exits; the Job controller marks the Job Complete or Failed."""
        pod = self._pod_of(job_name, namespace)
        pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        state = pod["status"]["containerStatuses"][0]["state"]
        pod["status"]["containerStatuses"][0]["state"] = {"terminated": {
            "exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "startedAt": state.get("running", {}).get("startedAt", _now()),
            "finishedAt": _now()}}
        self._condition(job_name, namespace, exit_code == 0,
                        "BackoffLimitExceeded", "Job has reached the specified backoff limit")

    def evict(self, job_name: str, namespace: str = "oppen") -> None:
        pod = self._pod_of(job_name, namespace)
        pod["status"] = {"phase": "Failed", "reason": "Evicted",
                         "message": "The node was low on resource: memory."}
        self._condition(job_name, namespace, False, "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit")

    # --- Kueue ----------------------------------------------------------------------------

    def _workload_of(self, job_name: str, namespace: str) -> dict[str, Any]:
        uid = self.jobs[(namespace, job_name)]["metadata"]["uid"]
        for (ns, _), wl in self.workloads.items():
            if ns == namespace and wl["metadata"]["ownerReferences"][0]["uid"] == uid:
                return wl
        raise KeyError(f"no workload for job {job_name}")

    def _set_conditions(self, wl: dict[str, Any], **conditions: tuple[bool, str, str]) -> None:
        kept = {c["type"]: c for c in wl["status"].get("conditions", [])}
        for kind, (ok, reason, message) in conditions.items():
            kept[kind] = {"type": kind, "status": "True" if ok else "False", "reason": reason,
                          "message": message, "lastTransitionTime": _now()}
        wl["status"]["conditions"] = list(kept.values())

    def _queue_workload(self, namespace: str, job: dict[str, Any]) -> None:
        """What Kueue's job controller does for a suspended Job with a queue name."""
        queue = job["metadata"]["labels"][QUEUE_LABEL]
        name = f"job-{job['metadata']['name']}-{uuid.uuid4().hex[:5]}"
        wl = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "Workload",
              "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                           "labels": {"kueue.x-k8s.io/job-uid": job["metadata"]["uid"]},
                           "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                                                "name": job["metadata"]["name"],
                                                "uid": job["metadata"]["uid"],
                                                "controller": True}]},
              # One pod set of all the Job's pods: Kueue reserves quota for all or none.
              "spec": {"queueName": queue, "podSets": [{
                  "name": "main", "count": job["spec"].get("parallelism", 1),
                  "template": job["spec"]["template"]}]},
              "status": {}}
        self._set_conditions(wl, QuotaReserved=(
            False, "Pending", "couldn't assign flavors to pod set main: insufficient unused "
            "quota for cpu in flavor on-demand"))
        self.workloads[(namespace, name)] = wl
        self.pending.setdefault((namespace, queue), []).append(name)

    def kueue_admit(self, job_name: str, namespace: str = "oppen") -> None:
        """Quota reserved and admitted: Kueue unsuspends the Job."""
        wl = self._workload_of(job_name, namespace)
        self.pending[(namespace, wl["spec"]["queueName"])].remove(wl["metadata"]["name"])
        self._set_conditions(wl, QuotaReserved=(True, "QuotaReserved", "Quota reserved in "
                                                "ClusterQueue oppen"),
                             Admitted=(True, "Admitted", "The workload is admitted"),
                             Evicted=(False, "", ""))
        self.jobs[(namespace, job_name)]["spec"]["suspend"] = False

    def kueue_preempt(self, job_name: str, namespace: str = "oppen") -> None:
        """Kueue evicts the workload for a higher-priority one: the Job is suspended again,
        its pods deleted, and the workload queued again."""
        wl = self._workload_of(job_name, namespace)
        self._set_conditions(wl, Evicted=(True, "Preempted", "Preempted to accommodate a "
                                          "higher priority Workload"),
                             QuotaReserved=(False, "Pending", "Preempted"),
                             Admitted=(False, "NoReservation", "The workload has no reservation"))
        self.pending.setdefault((namespace, wl["spec"]["queueName"]), []).insert(
            0, wl["metadata"]["name"])
        job = self.jobs[(namespace, job_name)]
        job["spec"]["suspend"] = True
        job["status"] = {}
        for key in [k for k, p in self.pods.items()
                    if k[0] == namespace and p["metadata"]["labels"].get("job-name") == job_name]:
            self.pods.pop(key)

    # --- the node lifecycle --------------------------------------------------------------

    def disrupt(self, job_name: str, reason: str = "DeletionByTaintManager",
                namespace: str = "oppen") -> None:
        """The pod is disrupted (a spot node reclaimed and tainted, a preemption): Kubernetes
        sets its DisruptionTarget condition and SIGTERMs it; the trainer checkpoints and exits
        143; the Job fails."""
        pod = self._pod_of(job_name, namespace)
        pod["status"]["phase"] = "Failed"
        pod["status"]["conditions"] = [{
            "type": "DisruptionTarget", "status": "True", "reason": reason,
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": _now()}]
        state = pod["status"]["containerStatuses"][0]["state"]
        pod["status"]["containerStatuses"][0]["state"] = {"terminated": {
            "exitCode": 143, "reason": "Error",
            "startedAt": state.get("running", {}).get("startedAt", _now()),
            "finishedAt": _now()}}
        self._condition(job_name, namespace, False, "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit")

    def lose_node(self, job_name: str, namespace: str = "oppen") -> None:
        """The pod's node is gone: the pod is garbage-collected and the Job fails."""
        pod = self._pod_of(job_name, namespace)
        self.pods.pop((namespace, pod["metadata"]["name"]))
        self._condition(job_name, namespace, False, "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit")

    def deadline(self, job_name: str, namespace: str = "oppen") -> None:
        self._condition(job_name, namespace, False, "DeadlineExceeded",
                        "Job was active longer than specified deadline")

    def _condition(self, job_name: str, namespace: str, ok: bool, reason: str, msg: str) -> None:
        job = self.jobs[(namespace, job_name)]
        kind = "Complete" if ok else "Failed"
        conditions = [{"type": kind, "status": "True", "lastProbeTime": _now(),
                       "lastTransitionTime": _now()}]
        if not ok:
            conditions[0].update(reason=reason, message=msg)
        job["status"] = {"conditions": conditions, "startTime": _now(),
                         "succeeded" if ok else "failed": 1}

    def _pod_of(self, job_name: str, namespace: str) -> dict[str, Any]:
        for (ns, _), pod in self.pods.items():
            if ns == namespace and pod["metadata"]["labels"]["job-name"] == job_name:
                return pod
        raise KeyError(f"no pod for job {job_name}")

    # --- server ----------------------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def do_POST(self) -> None:
                with fake._lock:
                    fake._route(self, "POST")

            def do_GET(self) -> None:
                with fake._lock:
                    fake._route(self, "GET")

            def do_DELETE(self) -> None:
                with fake._lock:
                    fake._route(self, "DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _route(self, h: Any, method: str) -> None:
        url = urlsplit(h.path)
        query = parse_qs(url.query)
        self.requests.append((method, url.path))
        if m := JOBS.match(url.path):
            namespace, name = m.groups()
            if method == "POST" and name is None:
                return self._create_job(h, namespace, h._body())
            if name is not None and (namespace, name) not in self.jobs:
                return h._send(404, status_error(404, "NotFound",
                                                 f'jobs.batch "{name}" not found', name))
            if method == "GET" and name is not None:
                return h._send(200, self.jobs[(namespace, name)])
            if method == "DELETE" and name is not None:
                self.deletions.append({"name": name, **h._body()})
                job = self.jobs.pop((namespace, name))
                for key in [k for k, w in self.workloads.items()  # owned: collected with it
                            if w["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]]:
                    wl = self.workloads.pop(key)
                    waiting = self.pending.get((namespace, wl["spec"]["queueName"]), [])
                    if wl["metadata"]["name"] in waiting:
                        waiting.remove(wl["metadata"]["name"])
                for key in [k for k, p in self.pods.items()
                            if p["metadata"]["labels"].get("job-name") == name]:
                    self.pods.pop(key)
                return h._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                     "status": "Success",
                                     "details": {"name": name, "group": "batch", "kind": "jobs",
                                                 "uid": job["metadata"]["uid"]}})
        if m := SERVICES.match(url.path):
            namespace, name = m.groups()
            if method == "POST" and name is None:
                return self._create_service(h, namespace, h._body())
            if name is None or (namespace, name) not in self.services:
                return h._send(404, status_error(404, "NotFound", f'services "{name}" not '
                                                 "found", name or "", "services"))
            if method == "GET":
                return h._send(200, self.services[(namespace, name)])
            if method == "DELETE":
                self.deletions.append({"name": name, "kind": "Service"})
                # As the real server does for a Service: the deleted object comes back.
                return h._send(200, self.services.pop((namespace, name)))
        if (m := PODS.match(url.path)) and method == "GET":
            namespace = m.group(1)
            selector = dict(part.split("=", 1) for part in
                            query.get("labelSelector", [""])[0].split(",") if "=" in part)
            items = [p for (ns, _), p in self.pods.items() if ns == namespace and all(
                p["metadata"]["labels"].get(k) == v for k, v in selector.items())]
            return h._send(200, {"kind": "PodList", "apiVersion": "v1",
                                 "metadata": {"resourceVersion": "1"}, "items": items})
        if url.path == NODES and method == "GET":
            if self.nodes_forbidden:
                return h._send(403, status_error(
                    403, "Forbidden", 'nodes is forbidden: User "system:serviceaccount:oppen:'
                    'oppen-dispatcher" cannot list resource "nodes" in API group "" at the '
                    "cluster scope", kind="nodes"))
            return h._send(200, {"kind": "NodeList", "apiVersion": "v1",
                                 "metadata": {"resourceVersion": "1"}, "items": self.nodes})
        if (m := WORKLOADS.match(url.path)) and method == "GET":
            namespace, name = m.groups()
            if name is not None:
                if (namespace, name) not in self.workloads:
                    return h._send(404, status_error(404, "NotFound", f'workloads.kueue.x-k8s.io '
                                                     f'"{name}" not found', name, "workloads"))
                return h._send(200, self.workloads[(namespace, name)])
            return h._send(200, {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "WorkloadList",
                                 "metadata": {"resourceVersion": "1"},
                                 "items": [w for (ns, _), w in self.workloads.items()
                                           if ns == namespace]})
        if (m := PENDING.match(url.path)) and method == "GET" and self.visibility_api:
            namespace, queue = m.groups()
            names = self.pending.get((namespace, queue), [])
            items = []
            for i, name in enumerate(names):
                wl = self.workloads[(namespace, name)]
                items.append({"metadata": {"name": name, "namespace": namespace,
                                           "creationTimestamp": _now(),
                                           "ownerReferences": wl["metadata"]["ownerReferences"]},
                              "priority": 0, "localQueueName": queue,
                              "positionInClusterQueue": i, "positionInLocalQueue": i})
            return h._send(200, {"kind": "PendingWorkloadsSummary",
                                 "apiVersion": "visibility.kueue.x-k8s.io/v1beta1",
                                 "metadata": {"creationTimestamp": None}, "items": items})
        if (m := POD_LOG.match(url.path)) and method == "GET":
            key = (m.group(1), m.group(2))
            if key not in self.logs:
                return h._send(404, status_error(404, "NotFound", f'pods "{key[1]}" not found',
                                                 key[1], "pods"))
            lines = self.logs[key].splitlines()
            tail = int(query.get("tailLines", [len(lines)])[0])
            return h._send(200, "\n".join(lines[-tail:] if tail else []), "text/plain")
        return h._send(404, status_error(404, "NotFound", "the server could not find the "
                                         "requested resource", kind=""))

    def _create_service(self, h: Any, namespace: str, body: dict[str, Any]) -> None:
        name = body.get("metadata", {}).get("name", "")
        try:
            kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return h._send(422, status_error(422, "Invalid", f'Service "{name}" is invalid: '
                                             f"{exc.message}", name, "services"))
        if (namespace, name) in self.services:
            return h._send(409, status_error(409, "AlreadyExists",
                                             f'services "{name}" already exists', name,
                                             "services"))
        stored = json.loads(json.dumps(body))
        stored["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()),
                                  creationTimestamp=_now(), resourceVersion="1")
        stored["status"] = {"loadBalancer": {}}
        self.services[(namespace, name)] = stored
        return h._send(201, stored)

    def _create_job(self, h: Any, namespace: str, body: dict[str, Any]) -> None:
        name = body.get("metadata", {}).get("name", "")
        if self._fail_next:
            code, reason, message = self._fail_next.pop(0)
            return h._send(code, status_error(code, reason, message, name))
        try:
            kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return h._send(422, status_error(422, "Invalid",
                                             f'Job.batch "{name}" is invalid: {exc.message}', name))
        if body["metadata"].get("namespace", namespace) != namespace:
            return h._send(400, status_error(400, "BadRequest", "the namespace of the object "
                                             "does not match the namespace on the request", name))
        if (namespace, name) in self.jobs:
            return h._send(409, status_error(409, "AlreadyExists",
                                             f'jobs.batch "{name}" already exists', name))
        stored = json.loads(json.dumps(body))
        stored["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()),
                                  creationTimestamp=_now(), resourceVersion="1")
        stored["status"] = {}
        self.jobs[(namespace, name)] = stored
        if stored["spec"].get("suspend") and QUEUE_LABEL in stored["metadata"].get("labels", {}):
            self._queue_workload(namespace, stored)
        return h._send(201, stored)
