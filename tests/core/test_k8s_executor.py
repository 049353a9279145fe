"""The Kubernetes executor through the official client against the fake API server, and its
manifests against the official Kubernetes schema."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from app.core.executors.base import LaunchError, Phase
from app.core.executors.k8s_manifest import JobTemplate, render_job
from app.core.executors.kubernetes import KubernetesExecutor
from app.core.failures import FailureKind, classify
from app.core.models import Job
from tests.support.fake_k8s import KUBERNETES_VERSION, FakeKubernetes


@pytest.fixture
def executor(fake: FakeKubernetes) -> KubernetesExecutor:
    from kubernetes import client

    config = client.Configuration(host=fake.url)
    template = JobTemplate(namespace="oppen", image="registry.example/oppen:0.1.0",
                           tracking_uri="http://oppen-mlflow.oppen.svc:5000")
    return KubernetesExecutor(template, client.ApiClient(config))


def make_job(job_id: int = 7, gpus: int = 0, priority: str = "normal", attempts: int = 1,
             max_runtime_s: float | None = None) -> Job:
    return Job(id=job_id, name=f"sweep point {job_id}", priority_class=priority, priority=100,
               config={"total_timesteps": 4096}, cpus=2.5, memory_mb=3072, gpus=gpus,
               attempts=attempts, max_runtime_s=max_runtime_s, team="ml")


@pytest.mark.parametrize("gpus,priority,kueue,spot", [
    (0, "normal", None, False), (1, "urgent", None, False), (2, "background", "team-a", True)])
def test_rendered_jobs_validate_against_the_kubernetes_schema(gpus: int, priority: str,
                                                               kueue: str | None,
                                                               spot: bool) -> None:
    template = JobTemplate(kueue_queue=kueue, spot=spot, tracking_uri="http://mlflow:5000")
    manifest = render_job(make_job(gpus=gpus, priority=priority, max_runtime_s=3600.5), template)
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    spec = manifest["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert manifest["metadata"]["name"] == "oppen-job-7-a1"
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 3601
    assert spec["ttlSecondsAfterFinished"] == 86400
    assert pod["priorityClassName"] == f"oppen-{priority}"
    assert pod["restartPolicy"] == "Never"
    assert container["args"] == ["train", "--job-id", "7"]
    assert container["resources"]["requests"]["cpu"] == "2500m"
    assert container["resources"]["limits"]["memory"] == "3072Mi"
    labels = manifest["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "oppen"
    assert labels["oppen.dev/job-id"] == "7"
    env = {e["name"]: e for e in container["env"]}
    assert env["OPPEN_MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
    assert env["OPPEN_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "oppen-database"
    if gpus:
        assert container["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
            pod["tolerations"]
        assert pod["nodeSelector"]["oppen.dev/pool"] == "gpu-training"
    else:
        assert "nvidia.com/gpu" not in container["resources"]["limits"]
    if kueue:
        assert labels["kueue.x-k8s.io/queue-name"] == kueue
        assert spec["suspend"] is True
    else:
        assert "suspend" not in spec
    assert (pod["nodeSelector"].get("oppen.dev/capacity-type") == "spot") is spot


def test_launch_poll_success_and_logs(fake: FakeKubernetes, executor: KubernetesExecutor) -> None:
    ref = executor.launch(make_job())
    assert json.loads(ref) == {"namespace": "oppen", "name": "oppen-job-7-a1"}
    assert ("POST", "/apis/batch/v1/namespaces/oppen/jobs") in fake.requests
    assert executor.poll(ref).phase is Phase.RUNNING  # no pod yet
    fake.start_pod("oppen-job-7-a1", log="step 1\nstep 2\nstep 3")
    assert executor.poll(ref).phase is Phase.RUNNING
    assert executor.logs(ref, 2) == "step 2\nstep 3"
    fake.finish("oppen-job-7-a1", 0)
    status = executor.poll(ref)
    assert (status.phase, status.exit_code) == (Phase.EXITED, 0)


@pytest.mark.parametrize("outcome,kind,words", [
    ("oom", FailureKind.INFRASTRUCTURE, "OOMKilled"),
    ("evicted", FailureKind.PREEMPTION, "Evicted"),
    ("image", FailureKind.INFRASTRUCTURE, "ImagePullBackOff"),
    ("config", FailureKind.USER, "configuration error"),
    ("deadline", FailureKind.TIMEOUT, "DeadlineExceeded"),
])
def test_failures_are_read_from_job_and_pod_states(fake: FakeKubernetes,
                                                   executor: KubernetesExecutor, outcome: str,
                                                   kind: FailureKind, words: str) -> None:
    ref = executor.launch(make_job())
    name = "oppen-job-7-a1"
    fake.start_pod(name)
    {"oom": lambda: fake.finish(name, 137, "OOMKilled"),
     "evicted": lambda: fake.evict(name),
     "image": lambda: fake.wait_on_image(name),
     "config": lambda: fake.finish(name, 2),
     "deadline": lambda: fake.deadline(name)}[outcome]()
    failure = classify(executor.poll(ref))
    assert failure.kind is kind
    assert words in failure.reason


def test_conflict_adopts_the_existing_attempt(fake: FakeKubernetes,
                                              executor: KubernetesExecutor) -> None:
    job = make_job()
    first = executor.launch(job)
    assert executor.launch(job) == first  # 409 AlreadyExists: the same attempt, not a second
    assert len(fake.jobs) == 1
    assert executor.find(job) == first
    assert executor.find(make_job(attempts=2)) is None


def test_quota_and_server_errors_are_retryable_invalid_is_not(fake: FakeKubernetes,
                                                              executor: KubernetesExecutor) -> None:
    fake.fail_next_create(403, "Forbidden", 'jobs.batch "oppen-job-7-a1" is forbidden: exceeded '
                          "quota: oppen-general, requested: requests.nvidia.com/gpu=1")
    with pytest.raises(LaunchError, match="exceeded quota") as info:
        executor.launch(make_job(gpus=1))
    assert info.value.retryable
    fake.fail_next_create(500, "InternalError", "etcdserver: request timed out")
    with pytest.raises(LaunchError, match="etcdserver") as info:
        executor.launch(make_job())
    assert info.value.retryable
    fake.fail_next_create(422, "Invalid", 'Job.batch "oppen-job-7-a1" is invalid: '
                          "spec.template.spec.containers[0].image: Required value")
    with pytest.raises(LaunchError, match="Required value") as info:
        executor.launch(make_job())
    assert not info.value.retryable
    assert fake.jobs == {}


def test_stop_deletes_with_background_propagation(fake: FakeKubernetes,
                                                  executor: KubernetesExecutor) -> None:
    ref = executor.launch(make_job())
    fake.start_pod("oppen-job-7-a1")
    executor.stop(ref)
    assert fake.deletions[0]["name"] == "oppen-job-7-a1"
    assert fake.deletions[0]["propagationPolicy"] == "Background"
    assert fake.pods == {}
    executor.stop(ref)  # idempotent: 404 is fine
    status = executor.poll(ref)
    assert status.phase is Phase.LOST
    assert classify(status).kind is FailureKind.INFRASTRUCTURE


def test_dispatcher_runs_a_job_on_kubernetes_end_to_end(fake: FakeKubernetes,
                                                        executor: KubernetesExecutor,
                                                        services) -> None:
    """Queue -> dispatcher -> Job on the (fake) cluster -> OOM -> retried -> succeeds."""
    from app.core.dispatcher import Dispatcher
    from app.core.lease import Lease

    dispatcher = Dispatcher(services.engine, executor, Lease(services.engine, "k8s-test", 30),
                            services.settings.admission_limits())
    job = services.queue.submit("on the cluster", {"total_timesteps": 1000})
    assert dispatcher.tick().launched == [job.id]
    fake.start_pod(f"oppen-job-{job.id}-a1")
    fake.finish(f"oppen-job-{job.id}-a1", 137, "OOMKilled")
    report = dispatcher.tick()
    assert report.retried == [job.id]
    view = services.queue.show(job.id)
    assert view.job.state == "queued"
    assert view.pending.reason.value == "backoff"
    assert fake.jobs == {}  # the failed attempt was cleaned up
    # Skip the backoff wait, then the second attempt runs under its own name.
    from sqlmodel import Session

    with Session(services.engine) as s:
        row = s.get(Job, job.id)
        row.not_before = None
        s.add(row)
        s.commit()
    assert dispatcher.tick().launched == [job.id]
    fake.start_pod(f"oppen-job-{job.id}-a2")
    fake.finish(f"oppen-job-{job.id}-a2", 0)
    dispatcher.tick()
    final = services.queue.show(job.id)
    assert final.job.state == "succeeded"
    assert final.job.attempts == 2
    assert [e["to"] for e in final.to_dict()["events"]] == [
        "queued", "dispatching", "running", "failed", "queued", "dispatching", "running",
        "succeeded"]


def test_dashboard_cluster_section_reads_nodes_and_oppen_pods(fake: FakeKubernetes,
                                                              executor: KubernetesExecutor) -> None:
    from app.dashboard.cluster import kubernetes_cluster

    fake.add_node("gpu-a", "7910m", "31Gi", gpus=1)
    fake.add_node("cpu-a", "15890m", "60Gi")
    executor.launch(make_job(gpus=1))
    fake.schedule(fake.start_pod("oppen-job-7-a1"), "gpu-a")
    cluster = kubernetes_cluster(executor._api_client, "oppen")
    nodes = {n.name: n for n in cluster.nodes}
    assert nodes["gpu-a"].cpu_allocatable == pytest.approx(7.91)
    assert nodes["gpu-a"].memory_allocatable_mb == 31 * 1024
    assert (nodes["gpu-a"].cpu_requested, nodes["gpu-a"].memory_requested_mb,
            nodes["gpu-a"].gpu_requested) == (2.5, 3072, 1)
    assert nodes["cpu-a"].gpu_allocatable == 0 and nodes["cpu-a"].cpu_requested == 0
    fake.nodes_forbidden = True  # the dispatcher's Role may not list nodes
    denied = kubernetes_cluster(executor._api_client, "oppen")
    assert denied.nodes == [] and "HTTP 403" in denied.detail
