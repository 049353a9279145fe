"""The agent: LangChain's create_agent over Oppen's tools, with approval for spending or
destructive calls and limits on model and tool calls."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from app.agent.offline_model import OfflineChatModel
from app.api.operations import Operations
from app.core.errors import ConfigError, DependencyError
from app.tools import SPENDING_OR_DESTRUCTIVE, build_tools

SYSTEM_PROMPT = (
    "You are Oppen, an assistant that queues, budgets and watches PPO training jobs for "
    "cluster-scheduling policies. Use the tools; never invent job ids or numbers. Keep answers "
    "short and quote the figures the tools return."
)
MODEL_CALL_LIMIT = 12
TOOL_CALL_LIMIT = 30
PROVIDER_EXTRAS = {"openai": "openai", "anthropic": "anthropic"}

# Called with each pending action; returns True to run it. The REPL asks the person.
Approver = Callable[[dict[str, Any]], bool]


def chat_model(spec: str, base_url: str | None = None) -> BaseChatModel:
    """'offline', or 'provider:model' through init_chat_model (OPPEN_LLM). ``base_url``
    (OPPEN_LLM_BASE_URL) points an OpenAI-compatible provider at any server: vLLM, Ollama,
    llama.cpp."""
    if spec == "offline":
        return OfflineChatModel()
    provider, _, model = spec.partition(":")
    if not model:
        raise ConfigError(f"OPPEN_LLM must be 'offline' or 'provider:model', got {spec!r}")
    from langchain.chat_models import init_chat_model

    extra: dict[str, Any] = {}
    if base_url:
        extra["base_url"] = base_url
        if provider == "openai" and not os.environ.get("OPENAI_API_KEY"):
            extra["api_key"] = "not-needed"  # local servers take any key; the client wants one
    try:
        return init_chat_model(model, model_provider=provider, **extra)
    except ImportError as exc:
        extra = PROVIDER_EXTRAS.get(provider, provider)
        raise DependencyError(
            f"the {provider!r} chat model needs its package: pip install 'oppen[{extra}]' "
            f"({exc})") from None
    except ValueError as exc:
        raise ConfigError(f"cannot use chat model {spec!r}: {exc}") from None


@dataclass
class TurnResult:
    answer: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    # Tools that answered with an error, or did only part of a bulk action.
    failed: list[str] = field(default_factory=list)
    # The answer already went out token by token (a real provider streaming).
    streamed: bool = False


def full_arguments(tool: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Every argument the tool will run with: what the model gave and the defaults it left
    out (what an approval shows). Arguments the schema refuses are shown as given."""
    schema = getattr(tool, "args_schema", None)
    if schema is None or not isinstance(args, dict):
        return args
    try:
        return schema.model_validate(args).model_dump(mode="json")
    except (ValueError, TypeError):
        return args


class Agent:
    """One conversation over ``ops`` (the local database's operations, or a server's), with
    the chat model ``llm`` names (OPPEN_LLM) unless a model is given."""

    def __init__(self, ops: Operations, llm: str = "offline",
                 model: BaseChatModel | None = None, base_url: str | None = None,
                 saver: Any | None = None, session_id: str | None = None) -> None:
        from langchain.agents import create_agent
        from langchain.agents.middleware import (
            HumanInTheLoopMiddleware,
            ModelCallLimitMiddleware,
            ToolCallLimitMiddleware,
        )
        from langgraph.checkpoint.memory import InMemorySaver

        self.ops = ops
        self.llm = llm
        tools = build_tools(ops)
        self.tools = {t.name: t for t in tools}
        gated = {t.name: {"allowed_decisions": ["approve", "reject"]}
                 for t in tools if t.name in SPENDING_OR_DESTRUCTIVE}
        self.graph = create_agent(
            model or chat_model(llm, base_url),
            tools,
            system_prompt=SYSTEM_PROMPT,
            middleware=[
                HumanInTheLoopMiddleware(interrupt_on=gated),
                ModelCallLimitMiddleware(run_limit=MODEL_CALL_LIMIT, exit_behavior="end"),
                ToolCallLimitMiddleware(run_limit=TOOL_CALL_LIMIT, exit_behavior="continue"),
            ],
            checkpointer=saver if saver is not None else InMemorySaver(),
        )
        self.thread_id = session_id or uuid.uuid4().hex[:12]

    def ask(self, text: str, approve: Approver,
            on_tool_call: Callable[[str, dict[str, Any]], None] | None = None,
            on_token: Callable[[str], None] | None = None) -> TurnResult:
        """One turn. ``approve`` decides each gated call (it sees every argument, defaults
        filled in); ``on_tool_call`` hears every call the model makes, as it makes it (the
        REPL prints a line per call); ``on_token`` hears a real provider's answer as it
        streams."""
        from langgraph.types import Command

        config = {"configurable": {"thread_id": self.thread_id}}
        payload: Any = {"messages": [HumanMessage(text)]}
        refused: list[str] = []
        heard: set[str] = set()  # approval re-emits the calls it lets through
        streamed = False
        stream = on_token is not None and self.llm != "offline"
        modes = ["updates", "messages"] if stream else ["updates"]
        while True:
            interrupts: list[Any] = []
            for mode, chunk in self.graph.stream(payload, config, stream_mode=modes):
                if mode == "messages":
                    token, meta = chunk
                    if meta.get("langgraph_node") == "model" and isinstance(token.content, str) \
                            and token.content and not getattr(token, "tool_call_chunks", None):
                        assert on_token is not None
                        on_token(token.content)
                        streamed = True
                    continue
                for node, data in chunk.items():
                    if node == "__interrupt__":
                        interrupts.extend(data)
                    elif on_tool_call is not None and isinstance(data, dict):
                        for message in data.get("messages", []):
                            if isinstance(message, AIMessage):
                                for call in message.tool_calls:
                                    if call.get("id") not in heard:
                                        heard.add(str(call.get("id")))
                                        on_tool_call(call["name"], call["args"])
            if not interrupts:
                break
            decisions = []
            for pending in interrupts:
                for request in pending.value["action_requests"]:
                    tool = self.tools.get(request["name"])
                    request = {**request, "args": full_arguments(tool, request["args"])}
                    if approve(request):
                        decisions.append({"type": "approve"})
                    else:
                        refused.append(request["name"])
                        decisions.append({"type": "reject",
                                          "message": "The person did not approve this action."})
            payload = Command(resume={"decisions": decisions})
        state = self.graph.get_state(config).values
        result = self._result(state["messages"], text, refused)
        result.streamed = streamed
        return result

    def restart(self) -> None:
        """A fresh conversation (after a turn was interrupted half-way, its thread holds
        calls without answers)."""
        self.thread_id = uuid.uuid4().hex[:12]

    @staticmethod
    def _result(messages: list[Any], text: str, refused: list[str]) -> TurnResult:
        start = max(i for i, m in enumerate(messages)
                    if isinstance(m, HumanMessage) and m.content == text)
        turn = messages[start + 1:]
        calls = [c for m in turn if isinstance(m, AIMessage) for c in m.tool_calls]
        results = [{"tool": m.name, "content": m.content, "data": m.artifact,
                    "status": m.status} for m in turn if isinstance(m, ToolMessage)]
        refused_names = set(refused)
        failed = [r["tool"] for r in results
                  if (r["status"] == "error" and r["tool"] not in refused_names)
                  or (isinstance(r["data"], dict) and r["data"].get("failed"))]
        final = next((m for m in reversed(turn) if isinstance(m, AIMessage) and m.content), None)
        answer = str(final.content) if final else ""
        return TurnResult(answer, calls, results, refused, failed)
