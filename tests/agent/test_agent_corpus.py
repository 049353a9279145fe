"""The request corpus (corpus_*.yaml) against the planner, and the requests whose second
step needs a real database, through the whole agent loop."""

from __future__ import annotations

from typing import Any

from corpus import load, report, score

from app.agent.agent import Agent
from app.agent.offline_model import decide
from app.api.operations import LocalOperations
from app.services import Services
from app.tools import SPENDING_OR_DESTRUCTIVE, TOOL_NAMES, build_tools


def test_the_corpus_is_served_exactly_or_named_and_never_unsafely() -> None:
    results = [score(e) for e in load()]
    summary = report(results)
    assert len(results) >= 300, summary
    # Zero silent drops: a request is exactly right, or says what it did not understand.
    assert all(r.exact or r.said_not_understood for r in results), summary
    # No question or negated request ever spends or destroys, now or as a second step.
    assert not [r.entry["say"] for r in results if r.unsafe], summary
    assert sum(r.exact for r in results) >= 0.9 * len(results), summary
    kinds = {r.entry.get("kind") for r in results}
    assert {"question", "negation"} <= kinds


def test_the_corpus_covers_every_tool_that_acts() -> None:
    named = {name for e in load() for name, _ in e.get("calls", [])}
    planned_second = {"cancel_jobs", "resume_jobs"}
    assert SPENDING_OR_DESTRUCTIVE - {"set_budget", "hyperparameter_sweep"} <= \
        named | planned_second
    assert set(TOOL_NAMES) == {t.name for t in build_tools(LocalOperations.__new__(
        LocalOperations))}


def ask(services: Services, text: str,
        approve: bool = True) -> tuple[Any, list[dict[str, Any]]]:
    asked: list[dict[str, Any]] = []

    def decide_(request: dict[str, Any]) -> bool:
        asked.append(request)
        return approve

    return Agent(LocalOperations(services)).ask(text, decide_), asked


def test_bulk_cancel_finds_the_jobs_then_asks_once_naming_them(services: Services) -> None:
    ids = [services.queue.submit(f"j{i}").id for i in range(5)]
    services.queue.cancel(ids[1])
    turn, asked = ask(services, "cancel all queued jobs")
    assert [c["name"] for c in turn.tool_calls] == ["list_jobs", "cancel_jobs"]
    assert [(a["name"], a["args"]) for a in asked] == \
        [("cancel_jobs", {"job_ids": [ids[0], *ids[2:]]})]
    assert {services.queue.get(i).state for i in ids} == {"cancelled"}
    assert turn.answer.endswith(f"Cancelled 4 jobs: {ids[0]} (cancelled), {ids[2]} "
                                f"(cancelled), {ids[3]} (cancelled), {ids[4]} (cancelled).")


def test_retry_the_failed_jobs_when_there_are_none_says_so(services: Services) -> None:
    services.queue.submit("fine")
    turn, asked = ask(services, "retry the failed jobs")
    assert asked == [] and [c["name"] for c in turn.tool_calls] == ["list_jobs"]
    assert "No jobs in state failed." in turn.answer
    assert "None of those jobs can be resumed." in turn.answer


def test_a_bulk_action_that_partly_fails_reports_each_and_counts_as_failed(
        services: Services) -> None:
    a, b = services.queue.submit("a").id, services.queue.submit("b").id
    services.queue.cancel(b)
    turn, _ = ask(services, f"cancel jobs {a} and {b}")
    assert services.queue.get(a).state == "cancelled"
    assert f"Cancelled 1 job: {a} (cancelled). Not done: job {b}:" in turn.answer
    assert turn.failed == ["cancel_jobs"]


def test_a_question_about_money_only_checks(services: Services) -> None:
    turn, asked = ask(services, "Can I afford a 128-host run of 1M steps under $0.01?")
    assert asked == [] and [c["name"] for c in turn.tool_calls] == ["check_budget"]
    assert services.queue.list() == []
    assert turn.answer.startswith("It fits: estimated $0.0") and "within the $0.01 cap" in turn.answer


def test_a_negated_request_is_not_acted_on(services: Services) -> None:
    ids = [services.queue.submit(f"j{i}").id for i in range(5)]
    turn, asked = ask(services, "please don't cancel job 5, just tell me about it")
    assert asked == [] and services.queue.get(ids[4]).state == "queued"
    assert turn.answer.startswith("As you asked, I will not cancel job 5. Job 5 'j4' is queued")
    turn, asked = ask(services, "never retry job 1")
    assert asked == [] and turn.tool_calls == []
    assert turn.answer == "As you asked, I will not resume job 1."


def test_an_approval_shows_every_argument_the_tool_runs_with(services: Services) -> None:
    turn, asked = ask(services, "a 64-host job for tonight off-peak")
    [request] = asked
    assert request["name"] == "queue_training_job"
    assert request["args"] == {
        "name": "chat", "priority": "normal", "total_timesteps": 4096, "num_hosts": 64,
        "mode": "place", "seed": 1, "num_workers": 1, "gpus": 0, "cpus": 1.0,
        "memory_mb": 1024, "max_runtime_s": None, "spot": False, "start_after": "off-peak"}
    [job] = [v.job for v in services.queue.list()]
    assert job.config["num_hosts"] == 64 and job.not_before is not None
    assert "not before" in turn.answer


def test_workers_reach_the_job_with_a_cpu_each(services: Services) -> None:
    turn, _ = ask(services, "train a 64 host scheduler for 1M steps on 4 workers")
    [job] = [v.job for v in services.queue.list()]
    assert (job.config["num_workers"], job.config["num_envs"], job.cpus) == (4, 8, 4.0)
    assert "4 workers" in turn.answer


def test_gpus_and_steps_reach_the_job(services: Services) -> None:
    ask(services, "Train a 64 host scheduler for 2 million steps with 8 gpus")
    [job] = [v.job for v in services.queue.list()]
    assert (job.config["num_hosts"], job.config["total_timesteps"], job.gpus) == \
        (64, 2_000_000, 8)


def test_what_it_does_not_understand_is_named_and_nothing_is_queued(
        services: Services) -> None:
    turn, asked = ask(services, "train for 2 epochs")
    assert asked == [] and services.queue.list() == []
    assert turn.answer == ("I did not understand '2 epochs': Oppen trains for a number of "
                           "steps (say e.g. '2M steps'), so I did nothing.")


def test_pause_move_eta_logs_and_best_through_the_agent(services: Services) -> None:
    ids = [services.queue.submit(f"j{i}").id for i in range(4)]
    turn, asked = ask(services, "pause the queue")
    assert [a["name"] for a in asked] == ["pause_admission"]
    assert turn.answer.startswith("Admission is paused since")
    turn, _ = ask(services, f"what is the ETA of job {ids[2]}")
    assert "no start can be estimated while admission is paused" in turn.answer
    turn, asked = ask(services, f"move job {ids[3]} to the front")
    assert services.queue.show(ids[3]).position == 1
    turn, _ = ask(services, "unpause the queue")
    assert turn.answer.startswith("Admission resumed")
    turn, _ = ask(services, f"what is the ETA of job {ids[0]}")
    assert f"Job {ids[0]} is queued at position 2, starts about" in turn.answer
    turn, _ = ask(services, f"show me the logs of job {ids[0]}")
    assert turn.failed == ["job_logs"] and "has no attempt with logs yet" in turn.answer
    turn, _ = ask(services, "which run was best?")
    assert turn.answer.startswith("No finished job has an evaluation yet")


def test_best_runs_ranks_by_evaluation_and_names_what_differs(services: Services) -> None:
    from sqlmodel import Session

    from app.core.models import Job

    ids = [services.queue.submit(f"lr{i}", {"lr": lr}).id
           for i, lr in enumerate([1e-3, 3e-4, 1e-4])]
    with Session(services.engine) as s:
        for job_id, ratio in zip(ids, [0.9, 0.7, 1.2], strict=True):
            job = s.get(Job, job_id)
            assert job is not None
            job.state, job.eval_ratio = "succeeded", ratio
            s.add(job)
        s.commit()
    turn, _ = ask(services, "top 2 runs")
    assert turn.answer.startswith(
        f"Ranked by evaluation (PPO's mean wait over the best heuristic's; lower is better): "
        f"1. job {ids[1]} 'lr1' 0.700x (lr=0.0003); 2. job {ids[0]} 'lr0' 0.900x (lr=0.001).")
    assert "1 more evaluated." in turn.answer


def test_typos_are_read_and_said(services: Services) -> None:
    services.queue.submit("x")
    turn, asked = ask(services, "cancle job 1")
    assert [a["name"] for a in asked] == ["cancel_job"]
    assert decide("cancle job 1").notes == ["(I read 'cancle' as 'cancel'.)"]
    assert turn.answer.startswith("(I read 'cancle' as 'cancel'.) Job 1 is cancelled")


def test_a_request_too_long_to_be_one_is_refused_in_a_line() -> None:
    answer = decide("cancel job 1 " * 400).answer
    assert answer is not None and answer.startswith(
        "I did not understand that: the request is 5,200 characters, more than a request of "
        "2,000, so I did nothing.")
    assert decide("cancel job 1 " * 400).calls == []
