"""Every input refused cleanly (hypothesis): generated submissions, CLI arguments, policy-serve
bodies, settings (environment and files) and SWF traces, valid and hostile (NaN, infinities,
integers past 64 bits, control characters, invalid UTF-8, odd JSON). 1,500 cases in all. Nothing may end in a
traceback, an "unexpected ..." error or a 5xx, and nothing is stored from a refused request.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.cli import cli
from app.core.errors import OppenError
from app.core.settings import load_settings
from app.services import Services
from tests.support.paths import REPO

SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

numbers = (st.integers(min_value=-2**70, max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from([math.nan, math.inf, -math.inf, 1e300, 2**62, 2**64, 0, -1]))
texts = st.text(max_size=60) | st.sampled_from(["x" * 10_000, "a\x00b", "\x1b[31m", "🙂",
                                                 "'; DROP TABLE jobs", ""])
values = st.recursive(st.none() | st.booleans() | numbers | texts,
                      lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                      max_leaves=6)
FIELDS = ["name", "config", "priority", "cpus", "memory_mb", "gpus", "team", "project",
          "max_attempts", "max_runtime_s", "spot", "start_after"]
PLAUSIBLE = {"name": st.text(min_size=1, max_size=30), "priority":
             st.sampled_from(["urgent", "normal", "background", "asap"]),
             "cpus": numbers, "memory_mb": numbers, "gpus": numbers,
             "max_runtime_s": numbers, "max_attempts": numbers,
             "config": st.dictionaries(st.sampled_from(["total_timesteps", "lr", "num_hosts",
                                                        "trace", "mode", "hidden", "colour"]),
                                       values, max_size=3),
             "start_after": texts | st.just("2026-12-24T10:00:00+00:00")}
submissions = st.fixed_dictionaries(
    {}, optional={**{f: values for f in FIELDS}, **PLAUSIBLE, "unknown": values})


def _clean(text: str) -> None:
    assert "Traceback" not in text and "unexpected" not in text, text[-2000:]


@settings(max_examples=300, **SETTINGS)
@given(item=submissions)
def test_post_jobs_answers_4xx_or_stores_exactly_one(api_server: tuple[str, str, Services],
                                                      item: dict[str, Any]) -> None:
    url, token, services = api_server
    before = sum(services.queue.counts().values())
    r = httpx.post(f"{url}/api/v1/jobs", content=json.dumps(item), timeout=30,
                   headers={"Authorization": f"Bearer {token}",
                            "Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    after = sum(services.queue.counts().values())
    assert after == before + (1 if r.status_code == 201 else 0)
    if r.status_code != 201:
        assert r.json()["error"], r.text


@settings(max_examples=200, **SETTINGS)
@given(items=st.lists(submissions, min_size=1, max_size=4))
def test_post_jobs_batch_is_all_or_nothing(api_server: tuple[str, str, Services],
                                           items: list[dict[str, Any]]) -> None:
    url, token, services = api_server
    before = sum(services.queue.counts().values())
    r = httpx.post(f"{url}/api/v1/jobs/batch", content=json.dumps({"jobs": items}),
                   timeout=30, headers={"Authorization": f"Bearer {token}",
                                        "Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    after = sum(services.queue.counts().values())
    assert after == before + (len(items) if r.status_code == 201 else 0)


@settings(max_examples=150, **SETTINGS)
@given(args=st.lists(st.sampled_from(["--cpus", "--memory-mb", "--gpus", "--max-runtime",
                                      "--max-attempts", "--priority", "--team", "--project",
                                      "--start-after", "--set"]), max_size=3),
       raw=st.lists(texts | numbers.map(str), min_size=4, max_size=4),
       name=texts)
def test_cli_queue_submit_never_fails_uncleanly(oppen_home: Path, args: list[str],
                                                raw: list[str], name: str) -> None:
    argv = ["queue", "submit", name or "x"]
    for flag, value in zip(args, raw, strict=False):
        argv += [flag, value if flag != "--set" else f"k={value}"]
    before = sum(Services().queue.counts().values())
    done = CliRunner().invoke(cli, argv)
    assert done.exit_code in (0, 1, 2), done.output
    _clean(done.output + (done.stderr or ""))
    assert done.exception is None or isinstance(done.exception, SystemExit)
    after = sum(Services().queue.counts().values())
    assert after == before + (1 if done.exit_code == 0 else 0)


@pytest.fixture(scope="module")
def policy_client() -> Any:
    from fastapi.testclient import TestClient

    from app.training.inference import LoadedPolicy
    from app.training.serve import create_app

    checkpoint = REPO / "pretrained" / "place-64hosts.pt"
    return TestClient(create_app(LoadedPolicy.from_checkpoint(checkpoint)),
                      raise_server_exceptions=False)


hosts = st.fixed_dictionaries({}, optional={"cores": numbers, "mem_mb": numbers,
                                            "used_cores": numbers, "used_mem_mb": numbers,
                                            "colour": values})


@settings(max_examples=250, **SETTINGS)
@given(body=st.fixed_dictionaries({}, optional={
    "hosts": st.lists(hosts, max_size=4) | values,
    "job": st.fixed_dictionaries({}, optional={"cores": numbers, "mem_mb": numbers}) | values,
    "max_job_cores": numbers, "max_job_mem_mb": numbers}) | values)
def test_policy_serve_answers_every_body_without_a_5xx(policy_client: Any, body: Any) -> None:
    r = policy_client.post("/v1/decide", content=json.dumps(body),
                           headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 409, 422), r.text
    if r.status_code != 200:
        assert r.json()["error"]


SETTING_NAMES = ["OPPEN_MAX_CONCURRENT_JOBS", "OPPEN_LEASE_TTL_S", "OPPEN_DISPATCH_INTERVAL_S",
                 "OPPEN_MAX_CPUS", "OPPEN_MAX_GPUS", "OPPEN_EXECUTOR", "OPPEN_AGING_PER_HOUR",
                 "OPPEN_SERVER_MAX_BODY_BYTES", "OPPEN_TRACE_MAX_BYTES", "OPPEN_STOP_GRACE_S"]


@settings(max_examples=200, **SETTINGS)
@given(name=st.sampled_from(SETTING_NAMES), value=texts | numbers.map(str))
def test_settings_from_the_environment_load_or_name_the_setting(
        oppen_home: Path, name: str, value: str) -> None:
    if "\x00" in value:
        return  # an environment variable cannot hold NUL
    with pytest.MonkeyPatch.context() as env:  # one variable per example, then restored
        env.setenv(name, value)
        try:
            load_settings()
        except OppenError as exc:
            assert name.removeprefix("OPPEN_").lower() in str(exc).lower(), str(exc)


@settings(max_examples=150, **SETTINGS)
@given(lines=st.lists(st.tuples(st.sampled_from([n.removeprefix("OPPEN_").lower()
                                                 for n in SETTING_NAMES] + ["colour", "home"]),
                                texts | numbers.map(str) | st.just('"x"')),
                      max_size=4),
       raw=st.binary(max_size=40))
def test_settings_files_load_or_say_what_is_wrong(tmp_path: Path, lines: list[tuple[str, str]],
                                                  raw: bytes) -> None:
    path = tmp_path / "config.toml"
    text = "\n".join(f"{name} = {value}" for name, value in lines)
    path.write_bytes(text.encode("utf-8", "surrogatepass") + raw)
    with pytest.MonkeyPatch.context() as env:
        for var in [v for v in os.environ if v.startswith("OPPEN_")]:
            env.delenv(var)
        env.setenv("OPPEN_CONFIG", str(path))
        env.setenv("OPPEN_HOME", str(tmp_path / "home"))
        try:
            load_settings()
        except OppenError as exc:
            assert str(exc)


swf_lines = st.lists(st.one_of(
    st.lists(numbers.map(lambda v: str(v)), min_size=1, max_size=20).map(" ".join),
    texts, st.just("; comment"), st.just("1 0 10 100 4 -1 -1 4 200 -1 1 1 1 1 1 -1 -1 -1")),
    max_size=12)


@settings(max_examples=250, **SETTINGS)
@given(lines=swf_lines)
def test_swf_traces_load_or_raise_a_trace_error(tmp_path: Path, lines: list[str]) -> None:
    import simrs

    path = tmp_path / "t.swf"
    # Written as given, invalid UTF-8 (lone surrogates) included.
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    for skip in (False, True):
        try:
            trace = simrs.load_trace(str(path), skip_malformed=skip)
        except simrs.TraceError as exc:
            assert str(exc)
        else:
            assert trace.num_jobs >= 0
