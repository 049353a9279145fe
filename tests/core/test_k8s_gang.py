"""A data-parallel job on Kubernetes, against the fake API server: an Indexed Job of one pod
per worker beside a headless Service for torchrun's rendezvous, both valid under the
official schema (strict), admitted as one gang by Oppen's admission and by Kueue, failing
as a whole when one worker fails, and torn down together on cancel."""

from __future__ import annotations

import kubernetes_validate
import pytest

from app.core.executors.k8s_manifest import JobTemplate, render_job, render_service
from app.core.models import Job
from app.core.submission import SubmissionError
from app.services import Services
from tests.core.test_k8s_cluster import _dispatcher, _executor, _skip_backoff
from tests.support.fake_k8s import KUBERNETES_VERSION, FakeKubernetes

TWO_WORKERS = {"total_timesteps": 4096, "num_envs": 8, "num_workers": 2}


def test_the_gang_renders_as_an_indexed_job_and_a_headless_service() -> None:
    job = Job(id=12, name="dd-ppo", config=TWO_WORKERS, cpus=4.0, memory_mb=8192, gpus=2,
              attempts=1, team="ml")
    template = JobTemplate(namespace="training", kueue_queue="oppen-{team}")
    manifest, service = render_job(job, template), render_service(job, template)
    assert service is not None
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)
    spec = manifest["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert spec["backoffLimit"] == 0 and spec["suspend"] is True
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    # Each pod asks for its worker's share; the job's numbers are the gang's totals.
    assert container["resources"]["requests"] == {"cpu": "2000m", "memory": "4096Mi",
                                                  "nvidia.com/gpu": "1"}
    assert container["resources"]["limits"] == container["resources"]["requests"]
    # Rank 0 is found by its stable name under the Service the pods are a subdomain of.
    name = "oppen-job-12-a1"
    assert pod["subdomain"] == service["metadata"]["name"] == name
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OPPEN_RENDEZVOUS"] == f"{name}-0.{name}.training.svc:29500"
    assert container["ports"] == [{"name": "rendezvous", "containerPort": 29500,
                                   "protocol": "TCP"}]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    pod_labels = spec["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in service["spec"]["selector"].items())
    # One worker stays a plain Job with no Service.
    single = Job(id=13, name="one", config={"num_workers": 1}, cpus=4.0, memory_mb=8192,
                 attempts=1, team="ml")
    assert render_service(single, template) is None
    assert "completionMode" not in render_job(single, template)["spec"]


def test_a_job_whose_workers_cannot_share_its_resources_is_refused(services: Services) -> None:
    with pytest.raises(SubmissionError, match="cpus: num_workers=4 needs at least 4"):
        services.queue.submit("thin", {**TWO_WORKERS, "num_workers": 4}, cpus=2)
    with pytest.raises(SubmissionError, match="3 GPUs do not split evenly between 2 workers"):
        services.queue.submit("odd", TWO_WORKERS, cpus=2, gpus=3)
    with pytest.raises(SubmissionError, match="num_workers: must divide num_envs"):
        services.queue.submit("uneven", {**TWO_WORKERS, "num_envs": 7}, cpus=2)


def test_the_gang_is_admitted_whole_runs_and_completes_under_kueue(services: Services,
                                                                  fake: FakeKubernetes) -> None:
    services.settings.max_cpus = 3.0
    dispatcher = _dispatcher(services, _executor(fake, kueue_queue="oppen-{team}"))
    job = services.queue.submit("dd-ppo", TWO_WORKERS, cpus=4, memory_mb=4096, team="rl")
    # Oppen's admission counts every worker: 4 CPUs do not fit under 3, so no pod of it starts.
    assert dispatcher.tick().launched == []
    assert services.queue.show(job.id).pending.reason.value == "resource-quota"
    assert fake.jobs == {} and fake.services == {}
    services.settings.max_cpus = 4.0
    dispatcher = _dispatcher(services, _executor(fake, kueue_queue="oppen-{team}"))
    assert dispatcher.tick().launched == [job.id]
    name = f"oppen-job-{job.id}-a1"
    assert ("oppen", name) in fake.services and ("oppen", name) in fake.jobs
    # Kueue sees one Workload of both pods, so it reserves quota for the whole gang or none.
    (workload,) = fake.workloads.values()
    (pod_set,) = workload["spec"]["podSets"]
    assert pod_set["count"] == 2
    assert pod_set["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "2000m"
    dispatcher.tick()
    assert services.queue.show(job.id).job.state == "waiting"
    fake.kueue_admit(name)
    for index in (0, 1):
        fake.start_pod(name, index=index)
    dispatcher.tick()
    assert services.queue.show(job.id).job.state == "running"
    fake.finish_index(name, 1, 0)
    dispatcher.tick()
    assert services.queue.show(job.id).job.state == "running"  # rank 0 is still at it
    fake.finish_index(name, 0, 0)
    dispatcher.tick()
    assert services.queue.show(job.id).job.state == "succeeded"


def test_one_worker_failing_fails_the_attempt_and_the_retry_makes_a_new_gang(
        services: Services, fake: FakeKubernetes) -> None:
    dispatcher = _dispatcher(services, _executor(fake))
    job = services.queue.submit("dd-ppo", TWO_WORKERS, cpus=2, max_attempts=3)
    assert dispatcher.tick().launched == [job.id]
    name = f"oppen-job-{job.id}-a1"
    for index in (0, 1):
        fake.start_pod(name, index=index)
    dispatcher.tick()
    # Rank 1's pod is OOM-killed: the Job fails and its controller stops rank 0's pod.
    fake.finish_index(name, 1, 137)
    assert len(fake.pods_of(name)) == 1
    report = dispatcher.tick()
    assert report.retried == [job.id]
    shown = services.queue.show(job.id).to_dict()
    assert shown["exit_code"] == 137  # the failed worker's, not rank 0's stopped pod's
    assert shown["attempt_history"][0]["outcome"] == "infrastructure"  # OOM: retried
    assert ("oppen", name) not in fake.jobs and ("oppen", name) not in fake.services
    _skip_backoff(services, job.id)
    assert dispatcher.tick().launched == [job.id]
    again = f"oppen-job-{job.id}-a2"
    assert ("oppen", again) in fake.jobs and ("oppen", again) in fake.services


def test_cancel_tears_down_the_job_and_its_service(services: Services,
                                                    fake: FakeKubernetes) -> None:
    dispatcher = _dispatcher(services, _executor(fake))
    job = services.queue.submit("dd-ppo", TWO_WORKERS, cpus=2)
    assert dispatcher.tick().launched == [job.id]
    name = f"oppen-job-{job.id}-a1"
    for index in (0, 1):
        fake.start_pod(name, index=index)
    dispatcher.tick()
    services.queue.cancel(job.id, "not needed")
    dispatcher.tick()
    assert services.queue.show(job.id).job.state == "cancelled"
    assert fake.jobs == {} and fake.services == {} and fake.pods == {}
    assert {d.get("kind", "Job") for d in fake.deletions if d["name"] == name} == \
        {"Job", "Service"}


def test_queue_render_prints_the_service_and_the_indexed_job(services: Services) -> None:
    import yaml
    from click.testing import CliRunner

    from app.cli import cli

    job = services.queue.submit("dd-ppo", TWO_WORKERS, cpus=2)
    shown = CliRunner().invoke(cli, ["queue", "render", str(job.id)])
    assert shown.exit_code == 0, shown.output
    service, manifest = yaml.safe_load_all(shown.output)
    assert service["kind"] == "Service" and manifest["kind"] == "Job"
    assert manifest["spec"]["completionMode"] == "Indexed"
    assert manifest["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"]
