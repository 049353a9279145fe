"""The agent loop through langchain-openai against an OpenAI-compatible server on loopback.

The server is a stub (no model can run here): it speaks the Chat Completions protocol as
vLLM, Ollama or llama.cpp do — the first answer asks for tools, the next one answers from
the tool results it was sent — so the request the client really builds (the tool schemas,
the tool messages) is checked, and the tools really run."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("langchain_openai", reason="the openai extra is not installed")

from app.agent.agent import Agent  # noqa: E402
from app.api.operations import LocalOperations  # noqa: E402
from app.services import Services  # noqa: E402
from tests.support.processes import free_port  # noqa: E402


class StubModel(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StubModel.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                   "body": body})
        tool_results = [m for m in body["messages"] if m["role"] == "tool"]
        if not tool_results:
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "queue_status", "arguments": "{}"}},
                {"id": "call_b", "type": "function",
                 "function": {"name": "job_details", "arguments": json.dumps({"job_id": 1})}}]}
            finish = "tool_calls"
        else:
            message = {"role": "assistant",
                       "content": "From the tools: " + " | ".join(m["content"]
                                                                  for m in tool_results)}
            finish = "stop"
        self.answer(body, message, finish)

    def answer(self, body: dict[str, Any], message: dict[str, Any], finish: str) -> None:
        """One Chat Completions response, as an OpenAI-compatible server sends it."""
        data = json.dumps({
            "id": "chatcmpl-stub", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def stub_url() -> Iterator[str]:
    StubModel.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), StubModel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()


def test_tool_calls_from_an_openai_compatible_server_run_and_reach_the_answer(
        services: Services, stub_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    services.queue.submit("first", {"total_timesteps": 2048})
    agent = Agent(LocalOperations(services), "openai:local-model", base_url=stub_url)
    turn = agent.ask("how are things?", approve=lambda _r: True)

    assert [c["name"] for c in turn.tool_calls] == ["queue_status", "job_details"]
    assert turn.answer.startswith("From the tools: 1 queued, 0 running")
    assert "Job 1 'first' is queued" in turn.answer
    first, second = StubModel.requests
    assert first["path"] == "/v1/chat/completions" and first["body"]["model"] == "local-model"
    assert first["auth"] == "Bearer not-needed"
    offered = {t["function"]["name"] for t in first["body"]["tools"]}
    assert len(offered) >= 16 and {"queue_training_job", "check_budget"} <= offered
    schema = next(t["function"]["parameters"] for t in first["body"]["tools"]
                  if t["function"]["name"] == "cancel_job")
    assert schema["properties"]["job_id"]["minimum"] == 1
    assert [m["tool_call_id"] for m in second["body"]["messages"] if m["role"] == "tool"] == \
        ["call_a", "call_b"]


def test_approval_still_gates_a_real_model(services: Services, stub_url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # This time the server's model asks to cancel a job: a gated tool, so the person decides.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    services.queue.submit("keep-me", {"total_timesteps": 2048})

    def cancel_first(self: StubModel) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        if not any(m["role"] == "tool" for m in body["messages"]):
            self.answer(body, {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_x", "type": "function",
                 "function": {"name": "cancel_job", "arguments": "{\"job_id\": 1}"}}]},
                "tool_calls")
        else:
            tool = next(m for m in body["messages"] if m["role"] == "tool")
            self.answer(body, {"role": "assistant", "content": tool["content"]}, "stop")

    monkeypatch.setattr(StubModel, "do_POST", cancel_first)
    turn = Agent(LocalOperations(services), "openai:local-model",
                 base_url=stub_url).ask("clean up", approve=lambda _r: False)
    assert turn.refused == ["cancel_job"]
    assert services.queue.get(1).state == "queued"
    assert "rejected" in turn.answer


def test_a_real_models_answer_streams_token_by_token(
        services: Services, stub_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The server streams (Server-Sent Events, as vLLM and OpenAI do when asked to): the
    # agent hands each token on as it arrives, and the turn says it was streamed.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    tokens = ["Nothing ", "is ", "queued", "."]

    def stream(self: StubModel) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StubModel.requests.append({"body": body})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for token in [*tokens, None]:
            delta = {"role": "assistant", "content": token} if token else {}
            chunk = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0,
                     "model": body["model"],
                     "choices": [{"index": 0, "delta": delta,
                                  "finish_reason": None if token else "stop"}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    monkeypatch.setattr(StubModel, "do_POST", stream)
    heard: list[str] = []
    turn = Agent(LocalOperations(services), "openai:local-model",
                 base_url=stub_url).ask("anything queued?", approve=lambda _r: False,
                                        on_token=heard.append)
    assert StubModel.requests[0]["body"]["stream"] is True
    assert heard == tokens and turn.streamed
    assert turn.answer == "Nothing is queued."
