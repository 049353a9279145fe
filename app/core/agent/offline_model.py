"""A deterministic planner behind LangChain's chat-model interface.

It reads the latest request, maps it to tool calls with fixed rules, and once the tool
results are back it answers with them. No key, no weights, and the same input always gives
the same plan, so the whole agent loop (create_agent, tool calls, tool messages) runs and is
tested offline.
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
                "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
PRIORITIES = ("urgent", "normal", "background")
MAX_JOBS_PER_REQUEST = 20

HELP = ("I can queue PPO training jobs (\"queue 3 jobs with different priorities\"), show the "
        "queue status, list jobs, show a job's details (\"show job 2\") and cancel a job "
        "(\"cancel job 2\").")


def _call(name: str, args: dict[str, Any], salt: str, index: int = 0) -> dict[str, Any]:
    # Deterministic ids, unique within a conversation (the salt includes its length).
    digest = hashlib.sha1(f"{salt}:{index}:{name}".encode()).hexdigest()[:12]
    return {"name": name, "args": args, "id": f"call_{digest}", "type": "tool_call"}


def _count(text: str) -> int:
    m = re.search(r"\b(\d+|" + "|".join(NUMBER_WORDS) + r")\s+(?:\w+\s+){0,3}?(?:jobs?|runs?)\b",
                  text)
    if not m:
        return 1
    token = m.group(1)
    return int(token) if token.isdigit() else NUMBER_WORDS[token]


def _timesteps(text: str) -> int | None:
    m = re.search(r"(\d[\d_,]*)\s*(k)?\s*(?:time)?steps", text)
    if not m:
        return None
    value = int(m.group(1).replace(",", "").replace("_", ""))
    return value * 1000 if m.group(2) else value


def plan(request: str, available: set[str], salt: str = "") -> list[dict[str, Any]] | str:
    """Tool calls for a request, or a direct answer when no tool applies."""
    text = request.lower()
    salt = f"{salt}:{request}"
    job_id = re.search(r"\bjob\s*#?\s*(\d+)\b|#(\d+)", text)
    jid = int(next(g for g in job_id.groups() if g)) if job_id else None

    if re.search(r"\bcancel\b|\bstop\b|\bkill\b", text) and "cancel_job" in available:
        return [_call("cancel_job", {"job_id": jid}, salt)] if jid else "Which job? Say e.g. 'cancel job 3'."
    if re.search(r"\b(queue|submit|launch|start|train|schedule)\b", text) and \
            re.search(r"\b(jobs?|runs?|train\w*)\b", text) and \
            not re.search(r"\b(status|list|show)\b", text) and "queue_training_job" in available:
        n = _count(text)
        if n > MAX_JOBS_PER_REQUEST:
            return f"That is {n} jobs; I queue at most {MAX_JOBS_PER_REQUEST} per request."
        if "different priorit" in text or "each priorit" in text:
            priorities = [PRIORITIES[i % len(PRIORITIES)] for i in range(n)]
        else:
            named = [p for p in PRIORITIES if p in text]
            priorities = [named[0] if named else "normal"] * n
        steps = _timesteps(text)
        calls = []
        for i, prio in enumerate(priorities):
            args: dict[str, Any] = {"name": f"place-{prio}-{i + 1}", "priority": prio,
                                    "seed": i + 1}
            if steps:
                args["total_timesteps"] = steps
            calls.append(_call("queue_training_job", args, salt, i))
        return calls
    if jid and re.search(r"\b(show|detail|details|about|how is|status of)\b", text) and \
            "job_details" in available:
        return [_call("job_details", {"job_id": jid}, salt)]
    if re.search(r"\blist\b", text) and "list_jobs" in available:
        state = next((s for s in ("queued", "running", "succeeded", "failed", "cancelled")
                      if s in text), None)
        return [_call("list_jobs", {"state": state} if state else {}, salt)]
    if re.search(r"\b(status|queue|dashboard|running|overview|how are)\b", text) and \
            "queue_status" in available:
        return [_call("queue_status", {}, salt)]
    return HELP


class OfflineChatModel(BaseChatModel):
    """Deterministic, offline stand-in for an LLM that supports tool calling."""

    tool_names: tuple[str, ...] = ()

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
        results = [m for m in messages[last_human + 1:] if isinstance(m, ToolMessage)]
        if results:
            message = AIMessage(content=" ".join(str(r.content) for r in results))
        elif last_human < 0:
            message = AIMessage(content=HELP)
        else:
            decided = plan(str(messages[last_human].content), available, salt=str(len(messages)))
            message = (AIMessage(content=decided) if isinstance(decided, str)
                       else AIMessage(content="", tool_calls=decided))
        return ChatResult(generations=[ChatGeneration(message=message)])
