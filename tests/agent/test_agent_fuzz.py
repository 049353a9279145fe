"""Generated input for the agent (hypothesis): arguments for every tool, valid and not, and
free text for the planner and the whole loop. Nothing may raise; every failure must come
back as one clear line for the model."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import ToolMessage

from app.agent.agent import Agent
from app.agent.offline_model import plan
from app.api.operations import LocalOperations
from app.services import Services
from app.tools import build_tools

SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
EXAMPLES_PER_TOOL = 60  # 30 tools: 1,800 generated calls
WORDS = ["queue", "train", "cancel", "job", "jobs", "#3", "7", "status", "budget", "$5",
         "$0.50", "2M", "steps", "64-host", "urgent", "background", "sweep", "hyperparameter",
         "configs", "why", "waiting", "compare", "and", "retry", "start", "now", "reduce",
         "costs", "report", "month", "set", "team", "ml", "evaluate", "metrics", "list",
         "failed", "dashboard", "1e9", "-4", "0", "99999999999999999999", "'; DROP TABLE jobs",
         "\x00", "ünïcödé", "🙂"]

values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=8)


def arguments(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts over the tool's own field names (and a few strangers), with any values."""
    return st.dictionaries(st.sampled_from([*fields, "unknown", "job_id", "name"]), values,
                           max_size=6)


def valid(schema: dict[str, Any], root: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values that satisfy the subset of JSON Schema the tools' argument models use, so the
    calls get past validation and reach the operations."""
    root = root or schema
    if "$ref" in schema:
        return valid(root["$defs"][schema["$ref"].split("/")[-1]], root)
    if "anyOf" in schema:
        return st.one_of(*(valid(option, root) for option in schema["anyOf"]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low, high = schema.get("minimum", -10**6), schema.get("maximum", 10**6)
        # Small ids most of the time, so calls reach jobs that exist.
        return st.integers(low, min(high, low + 8)) | st.integers(low, high)
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda t: len(t) < 60)
        return st.text(max_size=20)
    if kind == "array":
        return st.lists(valid(schema.get("items", {}), root),
                        min_size=schema.get("minItems", 0),
                        max_size=min(schema.get("maxItems", 4), 4))
    if kind == "object":
        props = schema.get("properties")
        if props is None:  # free-form: training options and sweep spaces
            return st.dictionaries(st.sampled_from(["lr", "gamma", "num_hosts", "seed", "x"]),
                                   values, max_size=3)
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: valid(v, root) for k, v in props.items() if k in required},
            optional={k: valid(v, root) for k, v in props.items() if k not in required})
    return values


def _check_answer(message: Any) -> None:
    assert isinstance(message, ToolMessage)
    text = str(message.content)
    assert text and "Traceback" not in text
    if message.status == "error":
        assert text.startswith("error: ") and "\n" not in text, text


def _fuzz(tool: Any) -> int:
    """Runs one tool on generated arguments; returns how many calls it made."""
    model = tool.args_schema
    fields = list(model.model_fields)
    calls = 0

    @settings(max_examples=EXAMPLES_PER_TOOL, **SETTINGS)  # type: ignore[arg-type]
    @given(args=valid(model.model_json_schema()) | arguments(fields))
    def run(args: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        _check_answer(tool.invoke({"type": "tool_call", "name": tool.name, "args": args,
                                   "id": "call_fuzz"}))

    run()
    return calls


def test_generated_arguments_for_every_tool(services: Services) -> None:
    services.queue.submit_batch([{"name": f"seed-{i}"} for i in range(3)])
    tools = build_tools(LocalOperations(services))
    assert len(tools) >= 16
    assert sum(_fuzz(tool) for tool in tools) >= 1000


@settings(max_examples=1000, **SETTINGS)  # type: ignore[arg-type]
@given(text=st.text(max_size=120) | st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join))
def test_the_planner_answers_any_text(text: str) -> None:
    available = {"queue_training_job", "submit_batch", "queue_status", "list_jobs",
                 "job_details", "cancel_job", "resume_job", "start_now", "check_budget",
                 "set_budget", "forecast_job_cost", "cost_report", "recommend_savings",
                 "compare_configs", "hyperparameter_sweep", "dashboard", "run_metrics",
                 "compare_runs", "evaluate_policy"}
    decided = plan(text, available)
    if isinstance(decided, str):
        assert decided
    else:
        assert decided and all(c["name"] in available for c in decided)


def test_free_text_through_the_whole_loop(services: Services) -> None:
    agent = Agent(LocalOperations(services))
    turns = 0

    @settings(max_examples=100, **SETTINGS)  # type: ignore[arg-type]
    @given(text=st.lists(st.sampled_from(WORDS), min_size=1, max_size=10).map(" ".join))
    def run(text: str) -> None:
        nonlocal turns
        turns += 1
        turn = agent.ask(text, approve=lambda _r: turns % 2 == 0)
        assert isinstance(turn.answer, str) and turn.answer
        assert "Traceback" not in turn.answer

    run()
    assert turns == 100
