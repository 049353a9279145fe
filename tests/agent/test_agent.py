"""The agent on the offline planner: real create_agent loop, real tools, real approvals."""

from __future__ import annotations

import pytest

from app.agent.agent import Agent, chat_model
from app.agent.offline_model import OfflineChatModel, plan
from app.api.operations import LocalOperations
from app.core.errors import ConfigError, DependencyError
from app.services import Services

ALL = {"queue_training_job", "queue_status", "list_jobs", "job_details", "cancel_job"}


def test_planner_maps_requests_to_tool_calls() -> None:
    calls = plan("Queue three jobs with different priorities, 2k steps", ALL)
    assert [c["args"]["priority"] for c in calls] == ["urgent", "normal", "background"]
    assert all(c["args"]["total_timesteps"] == 2000 for c in calls)
    batch = plan("submit 2 background training runs", ALL | {"submit_batch"})
    assert [(c["name"], c["args"]) for c in batch] == \
        [("submit_batch", {"count": 2, "priority": "background"})]
    assert plan("cancel job 4", ALL)[0]["args"] == {"job_id": 4}
    show = plan("show me job #12", ALL)
    assert (show[0]["name"], show[0]["args"]) == ("job_details", {"job_id": 12})
    assert show == plan("show me job #12", ALL)  # deterministic, ids included
    assert plan("list failed jobs", ALL)[0]["args"] == {"state": "failed"}
    assert plan("what's the status?", ALL | {"system_status"})[0]["name"] == "system_status"
    assert "no system_status tool" in plan("what's the status?", ALL)
    assert isinstance(plan("tell me a joke", ALL), str)
    assert "at most" in plan("queue 500 jobs", ALL)
    assert isinstance(plan("cancel it", ALL), str)  # no id: ask instead of guessing


def test_agent_queues_jobs_after_approval(services: Services) -> None:
    asked: list[str] = []
    agent = Agent(LocalOperations(services))
    turn = agent.ask("queue two urgent training jobs, 1024 steps",
                     approve=lambda req: asked.append(req["name"]) or True)
    assert asked == ["submit_batch"]  # one approval for the two
    jobs = services.queue.list(["queued"])
    assert len(jobs) == 2 and {v.job.priority_class for v in jobs} == {"urgent"}
    assert all(v.job.config["total_timesteps"] == 1024 for v in jobs)
    assert "Queued 2 urgent jobs" in turn.answer and turn.refused == []
    status = agent.ask("what is the queue status?", approve=lambda _r: False)
    assert status.answer.startswith("2 queued")
    assert status.tool_results[0]["data"]["status"]["counts"]["queued"] == 2


def test_agent_refuses_spending_without_approval(services: Services) -> None:
    turn = Agent(LocalOperations(services)).ask("queue a training job", approve=lambda _r: False)
    assert turn.refused == ["queue_training_job"]
    assert services.queue.list() == []
    assert "rejected" in turn.answer.lower()


def test_tool_errors_reach_the_model_as_text(services: Services) -> None:
    turn = Agent(LocalOperations(services)).ask("show job 99", approve=lambda _r: True)
    assert turn.answer == "error: no job with id 99"


def test_chat_model_selection() -> None:
    assert isinstance(chat_model("offline"), OfflineChatModel)
    with pytest.raises(ConfigError, match="provider:model"):
        chat_model("gpt-4")
    with pytest.raises((DependencyError, ConfigError)):
        chat_model("anthropic:claude-sonnet-4-5")  # provider package is an optional extra


def test_turns_are_traced_in_mlflow_when_asked(services: Services) -> None:
    import mlflow

    from app.agent import tracing

    experiment = tracing.enable(services.settings)
    try:
        Agent(LocalOperations(services)).ask("what is the queue status?", lambda _r: False)
        mlflow.flush_trace_async_logging()
        traces = mlflow.search_traces(locations=[experiment])
    finally:
        tracing.disable()
    assert len(traces) == 1
    assert "what is the queue status?" in str(traces.iloc[0]["request"])
    assert "0 queued" in str(traces.iloc[0]["response"])
