"""The submission contract is the only one: the CLI, POST /jobs, POST /jobs/batch and the
agent's tools refuse the same bad inputs with the same field-named error, and store nothing.

The table holds values no caller may get through: NaN, infinities, integers past 64 bits,
1e300, 10,000-character names, control characters. Each entry point gets each value in its
own form (CLI text, JSON numbers, tool arguments); the error each answers with must contain
the contract's own words for that field, and the queue must stay empty.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from app.api.operations import LocalOperations
from app.cli import cli
from app.core.submission import SubmissionError, parse_submission
from app.services import Services
from app.tools.registry import build_tools

BAD: list[tuple[str, Any]] = [
    ("name", "x" * 10_000),
    ("name", "bell\x07name"),
    ("cpus", math.nan),
    ("cpus", math.inf),
    ("cpus", -math.inf),
    ("cpus", 1e300),
    ("cpus", 0),
    ("memory_mb", 2**62),
    ("memory_mb", 2**70),
    ("memory_mb", 1e300),
    ("memory_mb", math.nan),
    ("gpus", 100_000),
    ("gpus", 2**62),
    ("gpus", math.inf),
    ("gpus", -1),
    ("max_runtime_s", 1e300),
    ("max_runtime_s", math.inf),
    ("max_runtime_s", math.nan),
    ("max_runtime_s", 0),
    ("priority", "asap"),
]
IDS = [f"{field}={str(value)[:12]}" for field, value in BAD]
# The CLI's option for each field (the name is the positional argument).
FLAGS = {"cpus": "--cpus", "memory_mb": "--memory-mb", "gpus": "--gpus",
         "max_runtime_s": "--max-runtime", "priority": "--priority"}


def contract_error(field: str, value: Any) -> str:
    """The contract's own words for this bad value: ``field: message``."""
    item = {"name": "ok", field: value}
    with pytest.raises(SubmissionError) as info:
        parse_submission(item)
    [only] = [f for f in info.value.fields if f["field"] == field]
    return f"{only['field']}: {only['message']}"


def post(url: str, token: str, body: Any) -> httpx.Response:
    """As a hostile client sends it: NaN and Infinity written into the JSON as Python's
    encoder writes them (httpx's own encoder refuses them)."""
    return httpx.post(url, content=json.dumps(body), timeout=30,
                      headers={"Authorization": f"Bearer {token}",
                               "Content-Type": "application/json"})


def submission(field: str, value: Any) -> dict[str, Any]:
    return {"name": "ok", "config": {"total_timesteps": 2048}, field: value}


def test_the_table_is_refused_by_the_contract_itself() -> None:
    for field, value in BAD:
        assert contract_error(field, value).startswith(f"{field}: ")


@pytest.mark.parametrize("field,value", BAD, ids=IDS)
def test_post_jobs(api_server: tuple[str, str, Services], field: str, value: Any) -> None:
    url, token, services = api_server
    r = post(f"{url}/api/v1/jobs", token, submission(field, value))
    assert r.status_code == 422, r.text
    assert contract_error(field, value) in r.json()["error"]
    assert services.queue.counts() == {}


@pytest.mark.parametrize("field,value", BAD, ids=IDS)
def test_post_jobs_batch(api_server: tuple[str, str, Services], field: str, value: Any) -> None:
    url, token, services = api_server
    jobs = [{"name": "fine"}, submission(field, value)]
    r = post(f"{url}/api/v1/jobs/batch", token, {"jobs": jobs})
    assert r.status_code == 422, r.text
    body = r.json()
    assert [e["index"] for e in body["errors"]] == [1]
    assert contract_error(field, value) in body["errors"][0]["error"]
    assert contract_error(field, value) in body["error"]
    assert services.queue.counts() == {}


@pytest.mark.parametrize("field,value", BAD, ids=IDS)
def test_cli_queue_submit(oppen_home: Any, field: str, value: Any) -> None:
    args = ["queue", "submit", value if field == "name" else "ok"]
    if field != "name":
        args += [FLAGS[field], str(value)]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 2, done.output
    assert contract_error(field, value) in done.stderr
    assert "Traceback" not in done.output and "unexpected" not in done.stderr
    assert Services().queue.counts() == {}


@pytest.mark.parametrize("field,value", BAD, ids=IDS)
def test_agent_tool(services: Services, field: str, value: Any) -> None:
    [tool] = [t for t in build_tools(LocalOperations(services))
              if t.name == "queue_training_job"]
    answer = tool.invoke({"name": "ok", field: value})
    assert answer.startswith("error: ")
    assert contract_error(field, value) in answer
    assert services.queue.counts() == {}


def test_unknown_fields_are_named_everywhere(api_server: tuple[str, str, Services]) -> None:
    url, token, services = api_server
    headers = {"Authorization": f"Bearer {token}"}
    one = httpx.post(f"{url}/api/v1/jobs", json={"name": "ok", "gpu": 1}, headers=headers)
    batch = httpx.post(f"{url}/api/v1/jobs/batch", json={"jobs": [{"name": "ok", "gpu": 1}]},
                       headers=headers)
    assert one.status_code == batch.status_code == 422
    assert "gpu: unknown field" in one.json()["error"]
    assert "gpu: unknown field" in batch.json()["errors"][0]["error"]
    assert services.queue.counts() == {}


@pytest.mark.parametrize("field,value", BAD[:8], ids=IDS[:8])
def test_remote_operations_raise_the_servers_contract_error(
        api_server: tuple[str, str, Services], field: str, value: Any) -> None:
    """The CLI talking to a server (OPPEN_SERVER_URL) gets the same error, rebuilt from the
    server's answer, with NaN and Infinity sent as written rather than failing to encode."""
    from app.api.client import RemoteOperations

    url, token, services = api_server
    remote = RemoteOperations(url, token)
    try:
        with pytest.raises(SubmissionError) as info:
            remote.submit(submission(field, value))
    finally:
        remote.close()
    assert contract_error(field, value) in str(info.value)
    assert services.queue.counts() == {}
