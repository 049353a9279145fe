"""A deterministic planner behind LangChain's chat-model interface.

It reads the latest request, maps it to tool calls with fixed rules, looks at the tool
results that come back (a budget check that fits is followed by the queueing it was for),
and then answers with them. No key, no weights, and the same input always gives the same
plan, so the whole agent loop (create_agent, tool calls, tool messages, approvals) runs and
is tested offline. When a request lacks something it needs (which job?), it asks; when it
does not understand, it says so and shows what it can do.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

NUMBER_WORDS = {"one": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5,
                "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twenty": 20,
                "fifty": 50, "hundred": 100}
PRIORITIES = ("urgent", "normal", "background")
# Separate queue_training_job calls (each approved on its own) up to this many; beyond it, one
# batch; beyond MAX_BATCH, a refusal.
MAX_SEPARATE = 10
MAX_BATCH = 100
STATES = ("queued", "running", "succeeded", "failed", "cancelled")

HELP = ("I did not understand that. I can: queue training jobs (\"train a 64-host scheduler "
        "for 2M steps with a $5 budget\", \"queue 20 configs urgently\"), run a hyperparameter "
        "sweep (\"queue 50 hyperparameter configs, max $0.50\"), check a budget, show the "
        "system status or the dashboard, list jobs, explain a job (\"why is job 12 still "
        "waiting?\"), cancel, retry or start a job now, forecast a job's cost, report spend, "
        "suggest savings (\"how can I reduce training costs?\"), set a budget, and show or "
        "compare runs and their evaluation against the heuristics.")


def _call(name: str, args: dict[str, Any], salt: str, index: int = 0) -> dict[str, Any]:
    # Deterministic ids, unique within a conversation (the salt includes its length).
    digest = hashlib.sha1(f"{salt}:{index}:{name}".encode()).hexdigest()[:12]
    return {"name": name, "args": args, "id": f"call_{digest}", "type": "tool_call"}


def _number(token: str) -> int:
    return int(token) if token.isdigit() else NUMBER_WORDS[token]


def _count(text: str) -> int:
    words = "|".join(NUMBER_WORDS)
    m = re.search(rf"\b(\d+|{words})\s+(?:[\w-]+\s+){{0,3}}?"
                  r"(?:jobs?|runs?|configs?|configurations?|schedulers?|policies|models?)\b",
                  text)
    return _number(m.group(1)) if m else 1


def _timesteps(text: str) -> int | None:
    m = re.search(r"(\d[\d_,]*(?:\.\d+)?)\s*([km])?\s*(?:time)?steps", text)
    if not m:
        return None
    value = float(m.group(1).replace(",", "").replace("_", ""))
    return int(value * {"k": 1_000, "m": 1_000_000}.get(m.group(2) or "", 1))


def _hosts(text: str) -> int | None:
    m = re.search(r"(\d+)[\s-]*(?:hosts?|nodes?|machines?)\b", text)
    return int(m.group(1)) if m else None


def _dollars(text: str) -> str | None:
    m = re.search(r"\$\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*(?:dollars|usd)\b", text)
    return (m.group(1) or m.group(2)) if m else None


def _priority(text: str) -> str | None:
    if re.search(r"\burgent|\basap\b|high[- ]priority", text):
        return "urgent"
    if re.search(r"\bbackground\b|low[- ]priority", text):
        return "background"
    if re.search(r"\bnormal\b", text):
        return "normal"
    return None


def _job_ids(text: str) -> list[int]:
    """Ids named as "job 7", "jobs 3, 4 and 5" or "#7", in order, each once."""
    found: list[int] = []
    for group in re.findall(r"\bjobs?\s*#?\s*(\d+(?:\s*(?:,|and|&)\s*#?\s*\d+)*)\b", text):
        found += [int(x) for x in re.findall(r"\d+", group)]
    found += [int(x) for x in re.findall(r"#(\d+)\b", text)]
    return list(dict.fromkeys(found))


def _training_args(text: str, index: int = 0, priority: str | None = None) -> dict[str, Any]:
    prio = priority or _priority(text) or "normal"
    args: dict[str, Any] = {"priority": prio, "seed": index + 1}
    hosts, steps = _hosts(text), _timesteps(text)
    name = f"place-{hosts}h" if hosts else "place"
    args["name"] = f"{name}-{prio}-{index + 1}"
    if hosts:
        args["num_hosts"] = hosts
    if steps:
        args["total_timesteps"] = steps
    if "spot" in text:
        args["spot"] = True
    for mode in ("pick", "hierarchical"):
        if re.search(rf"\b{mode}\b", text):
            args["mode"] = mode
    return args


Rule = Callable[[str, set[str], str], "list[dict[str, Any]] | str | None"]


def _cancel(text: str, available: set[str], salt: str) -> list[dict[str, Any]] | str | None:
    if not re.search(r"\b(cancel|kill|abort)\b|\bstop\s+(?:job|#)", text):
        return None
    ids = _job_ids(text)
    if not ids:
        return "Which job should I cancel? Say e.g. 'cancel job 3'."
    return [_call("cancel_job", {"job_id": j}, salt, i) for i, j in enumerate(ids[:10])]


def _one_job(text: str, pattern: str, tool: str, ask: str | None,
             salt: str) -> list[dict[str, Any]] | str | None:
    """A rule about one job: `tool` on the first job id named, `ask` when none is."""
    if not re.search(pattern, text):
        return None
    ids = _job_ids(text)
    if not ids:
        return ask
    return [_call(tool, {"job_id": ids[0]}, salt)]


def _why_waiting(text: str, available: set[str], salt: str) -> list[dict[str, Any]] | str | None:
    return _one_job(text, r"\b(why|waiting|pending|stuck|not (?:yet )?(?:running|started))\b",
                    "job_details", "Which job? Say e.g. 'why is job 12 still waiting?'.", salt)


def _savings(text: str, available: set[str], salt: str) -> list[dict[str, Any]] | str | None:
    if not (re.search(r"\b(reduce|cut|lower|save|saving|savings|cheaper|optimi[sz]e)\b", text)
            and re.search(r"\b(cost|costs|spend|spending|money|bill|cheaper|savings?)\b", text)):
        return None
    ids = _job_ids(text)
    return [_call("recommend_savings", {"job_id": ids[0]} if ids else {}, salt)]


def _sweep(text: str, available: set[str], salt: str) -> list[dict[str, Any]] | str | None:
    if not re.search(r"\b(sweep|hyper-?parameters?|hparams?|grid search|random search)\b", text):
        return None
    n = _count(text)
    args: dict[str, Any] = {"n": min(n, 200) if n > 1 else 10,
                            "method": "grid" if "grid" in text else "random",
                            "name": "sweep"}
    if n > 200:
        return f"That is {n} configs; a sweep here queues at most 200."
    if args["method"] == "grid":
        return ("Which values should the grid cover? Say e.g. 'grid sweep lr 1e-4,3e-4 and "
                "ent_coef 0.01,0.02' — or ask for a random sweep.")
    cap = _dollars(text)
    if cap:
        args["max_total_usd"] = cap
    if (prio := _priority(text)) is not None:
        args["priority"] = prio
    if (steps := _timesteps(text)) is not None:
        args["total_timesteps"] = steps
    return [_call("hyperparameter_sweep", args, salt)]


def _start_now(text: str, available: set[str], salt: str) -> list[dict[str, Any]] | str | None:
    # Without a job id this is not a start-now request ("run a sweep now"): no question.
    return _one_job(text, r"\bstart\b.*\bnow\b|\bprioriti[sz]e\b|\bbump\b|\brun\b.*\bnow\b",
                    "start_now", None, salt)


def _retry(text: str, available: set[str], salt: str) -> list[dict[str, Any]] | str | None:
    return _one_job(text, r"\b(retry|resume|re-run|rerun|resubmit|continue)\b", "resume_job",
                    "Which job should I resume? Say e.g. 'resume job 5'.", salt)


def _set_budget(text: str, available: set[str], salt: str) -> list[dict[str, Any]] | str | None:
    if not re.search(r"\b(set|create|make|add|limit)\b.*\bbudget\b|\bbudget\b.*\bof\b", text) \
            or re.search(r"\b(train|queue|submit)\b", text):
        return None
    amount = _dollars(text)
    if amount is None:
        return "How much should the budget allow? Say e.g. 'set a $50 monthly budget for team ml'."
    period = "weekly" if re.search(r"\bweek", text) else "monthly"
    team = re.search(r"\bteam\s+([\w.-]+)", text)
    project = re.search(r"\bproject\s+([\w.-]+)", text)
    args: dict[str, Any] = {"limit_usd": amount, "period": period, "hard": "soft" not in text}
    if team:
        args.update(scope="team", scope_value=team.group(1), name=f"{team.group(1)}-{period}")
    elif project:
        args.update(scope="project", scope_value=project.group(1),
                    name=f"{project.group(1)}-{period}")
    else:
        args["name"] = f"global-{period}"
    return [_call("set_budget", args, salt)]


def _train(text: str, available: set[str], salt: str) -> list[dict[str, Any]] | str | None:
    if not (re.search(r"\b(queue|submit|launch|start|train|schedule|run)\b", text)
            and re.search(r"\b(jobs?|runs?|train\w*|configs?|configurations?|schedulers?|"
                          r"polic(?:y|ies)|models?)\b", text)):
        return None
    if re.search(r"\b(status|list|show)\b", text):
        return None
    n = _count(text)
    if n > MAX_BATCH:
        return f"That is {n} jobs; I queue at most {MAX_BATCH} per request."
    cap = _dollars(text)
    if n == 1 and cap and "check_budget" in available:
        # Check first; the queueing follows once the check says it fits.
        return [_call("check_budget", {**_training_args(text), "max_cost_usd": cap}, salt)]
    if "different priorit" in text or "each priorit" in text:
        return [_call("queue_training_job",
                      _training_args(text, i, PRIORITIES[i % len(PRIORITIES)]), salt, i)
                for i in range(n)]
    if n > MAX_SEPARATE or (n > 1 and "submit_batch" in available
                            and re.search(r"\bconfigs?|configurations?|batch\b", text)):
        args: dict[str, Any] = {"name": "batch", "count": n,
                                "priority": _priority(text) or "normal"}
        if (steps := _timesteps(text)) is not None:
            args["total_timesteps"] = steps
        if (hosts := _hosts(text)) is not None:
            args["num_hosts"] = hosts
        return [_call("submit_batch", args, salt)]
    return [_call("queue_training_job", _training_args(text, i), salt, i) for i in range(n)]


def _check_budget(text: str, available: set[str], salt: str) -> list[dict[str, Any]] | str | None:
    if not re.search(r"\b(afford|fit|fits|within (?:the )?budget|check (?:the |my )?budget)\b",
                     text):
        return None
    args = {**_training_args(text), "name": "planned"}  # a check only: nothing follows it
    if (cap := _dollars(text)) is not None:
        args["max_cost_usd"] = cap
    return [_call("check_budget", args, salt)]


def _results(text: str, available: set[str], salt: str) -> list[dict[str, Any]] | str | None:
    ids = _job_ids(text)
    if re.search(r"\bcompare\b", text) and len(ids) >= 2:
        return [_call("compare_runs", {"job_ids": ids[:20]}, salt)]
    if not ids:
        return None
    job = {"job_id": ids[0]}
    if re.search(r"\b(evaluat\w*|heuristics?|baselines?|how (?:good|well)|how did)\b", text):
        return [_call("evaluate_policy", job, salt)]
    if re.search(r"\b(metrics?|reward|return|loss|sps)\b", text):
        return [_call("run_metrics", job, salt)]
    if re.search(r"\b(forecast|cost|costs|how much|price)\b", text):
        return [_call("forecast_job_cost", job, salt)]
    if re.search(r"\b(show|detail|details|about|how is|status of|what about|explain)\b", text):
        return [_call("job_details", job, salt)]
    return None


def _overview(text: str, available: set[str], salt: str) -> list[dict[str, Any]] | str | None:
    if re.search(r"\b(report|spent|spend|spending)\b", text):
        period = next((p for p in ("day", "week", "month") if p in text), "week")
        if "today" in text:
            period = "day"
        by = next((g for g in ("project", "priority", "status") if f"by {g}" in text), "team")
        return [_call("cost_report", {"period": period, "group_by": by}, salt)]
    if re.search(r"\blist\b|\bwhich jobs\b|\bshow (?:me )?(?:the |all )?jobs\b", text):
        state = next((s for s in STATES if s in text), None)
        return [_call("list_jobs", {"state": state} if state else {}, salt)]
    if re.search(r"\b(system|dashboard|overview|health|alerts?|everything)\b", text):
        return [_call("dashboard", {}, salt)]
    if re.search(r"\b(status|queue|running|how are)\b", text):
        return [_call("queue_status", {}, salt)]
    return None


RULES: tuple[Rule, ...] = (_cancel, _sweep, _savings, _set_budget, _retry, _start_now,
                           _why_waiting, _train, _check_budget, _results, _overview)


def plan(request: str, available: set[str], salt: str = "") -> list[dict[str, Any]] | str:
    """Tool calls for a request, or a direct answer (a question back, or help)."""
    text = " ".join(request.lower().split())
    salt = f"{salt}:{request}"
    for rule in RULES:
        decided = rule(text, available, salt)
        if decided is None:
            continue
        if isinstance(decided, list):
            missing = sorted({c["name"] for c in decided} - available)
            if missing:
                return f"I cannot do that here: no {', '.join(missing)} tool is available."
        return decided
    return HELP


def follow_up(calls: list[dict[str, Any]], results: list[ToolMessage],
              salt: str) -> list[dict[str, Any]] | None:
    """A second step, when the first asked for one: a budget check made on the way to
    queueing a job queues it once the check says it fits."""
    if len(calls) != 1 or calls[0]["name"] != "check_budget" or len(results) != 1:
        return None
    found = results[0].artifact
    if not isinstance(found, dict) or not found.get("fits"):
        return None
    args = {k: v for k, v in calls[0]["args"].items() if k != "max_cost_usd"}
    if args.get("name", "planned") == "planned":
        return None  # a plain check: nothing to queue
    return [_call("queue_training_job", args, salt)]


class OfflineChatModel(BaseChatModel):
    """Deterministic, offline stand-in for an LLM that supports tool calling."""

    @property
    def _llm_type(self) -> str:
        return "oppen-offline-planner"

    def bind_tools(self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
                   *, tool_choice: str | None = None,
                   **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        available = {t["function"]["name"] for t in kwargs.get("tools", [])}
        last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)),
                         default=-1)
        turn = messages[last_human + 1:]
        results = [m for m in turn if isinstance(m, ToolMessage)]
        if last_human < 0:
            message = AIMessage(content=HELP)
        elif results:
            asked = [c for m in turn if isinstance(m, AIMessage) for c in m.tool_calls]
            more = follow_up(asked, results, salt=str(len(messages)))
            message = AIMessage(content="", tool_calls=more) if more else \
                AIMessage(content=" ".join(str(r.content) for r in results))
        else:
            decided = plan(str(messages[last_human].content), available, salt=str(len(messages)))
            message = (AIMessage(content=decided) if isinstance(decided, str)
                       else AIMessage(content="", tool_calls=decided))
        return ChatResult(generations=[ChatGeneration(message=message)])
