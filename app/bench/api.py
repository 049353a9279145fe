"""A load test of the API server on loopback: `oppen serve` in its own process on a fresh
SQLite database, driven by an open-loop client (requests start on schedule whether or not
earlier ones have answered, so a slow server shows up as latency, not as a lower rate).

Phase 1: submissions at a fixed rate for a fixed time. Phase 2: many clients reading the
dashboard at once. Afterwards every accepted submission must be in the queue (no lost job).
The dispatcher is off (--no-dispatcher): launching thousands of training jobs would measure
the training, not the API.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from app.api.client import wait_until_healthy
from app.api.tokens import TokenService
from app.core.db import init_db, make_engine
from app.core.errors import OppenError

API = "/api/v1"
# The figures the issue asks for.
TARGET_RATE = 200.0
TARGET_P99_MS = 100.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _summary(latencies_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in latencies_s] or [float("nan")]
    return {"median_ms": round(statistics.median(ms), 2), "p95_ms": round(_percentile(ms, .95), 2),
            "p99_ms": round(_percentile(ms, .99), 2), "max_ms": round(max(ms), 2)}


async def _submissions(url: str, token: str, rate: float, seconds: float,
                       workers: int = 32) -> dict[str, Any]:
    """Request i is due at start + i / rate. A pool of workers takes them in order; a
    request that starts late (every worker busy) is timed from when it was due, so a server
    that falls behind shows its true latency (no coordinated omission)."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors: list[str] = []
    accepted: list[int] = []
    upcoming = iter(range(total))
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        begin = time.perf_counter()

        async def worker() -> None:
            for i in upcoming:
                due = begin + i / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                try:
                    r = await client.post(f"{API}/jobs", json={
                        "name": f"load-{i}", "config": {"total_timesteps": 4096 + i},
                        "priority": ("urgent", "normal", "background")[i % 3]})
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - due)
                if r.status_code == 201:
                    accepted.append(r.json()["id"])
                else:
                    errors.append(f"{r.status_code}: {r.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.perf_counter() - begin
    return {"requests": total, "accepted": len(accepted), "distinct_ids": len(set(accepted)),
            "errors": errors[:10], "error_count": len(errors), "seconds": round(elapsed, 2),
            "achieved_rate": round(len(accepted) / elapsed, 1), **_summary(latencies)}


async def _dashboard_readers(url: str, token: str, clients: int,
                             reads_each: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60,
                                 headers={"Authorization": f"Bearer {token}"}) as client:

        async def reader() -> None:
            for _ in range(reads_each):
                start = time.perf_counter()
                try:
                    r = await client.get(f"{API}/dashboard")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - start)
                if r.status_code != 200 or r.json().get("schema_version") != 2:
                    errors.append(f"{r.status_code}: {r.text[:200]}")

        begin = time.perf_counter()
        await asyncio.gather(*(reader() for _ in range(clients)))
        elapsed = time.perf_counter() - begin
    return {"clients": clients, "reads": clients * reads_each, "errors": errors[:10],
            "error_count": len(errors), "seconds": round(elapsed, 2), **_summary(latencies)}


def run(rate: float = TARGET_RATE, seconds: float = 30.0, readers: int = 50,
        reads_each: int = 4) -> dict[str, Any]:
    # The client's own collector pauses would be timed as server latency.
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory(prefix="oppen-bench-api-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPPEN_")}
        env["OPPEN_HOME"] = home
        engine = make_engine(f"sqlite:///{Path(home) / 'oppen.db'}")
        init_db(engine)
        token = TokenService(engine).create("load", "submitter")[1]
        engine.dispose()
        port = _free_port()
        # The server's output goes to a file: a pipe nobody reads could fill and stall it.
        log = Path(home) / "server.log"
        with log.open("w") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--port", str(port), "--no-dispatcher"],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_until_healthy(url, lambda: server.poll() is None)
            except OppenError as exc:
                raise OppenError(f"{exc}: {log.read_text()[-2000:]}") from None
            httpx.post(f"{url}{API}/jobs", json={"name": "warm-up"}, timeout=30,
                       headers={"Authorization": f"Bearer {token}"}).raise_for_status()
            submit = asyncio.run(_submissions(url, token, rate, seconds))
            read = asyncio.run(_dashboard_readers(url, token, readers, reads_each))
            status = httpx.get(f"{url}{API}/queue", timeout=30,
                               headers={"Authorization": f"Bearer {token}"}).json()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    stored = status["counts"]["queued"] - 1  # less the warm-up job
    submit["stored"] = stored
    submit["lost"] = submit["accepted"] - stored
    return {
        "database": "sqlite", "target_rate": rate, "target_p99_ms": TARGET_P99_MS,
        "submit": submit, "dashboard": read,
        "meets_targets": {
            "rate": submit["achieved_rate"] >= rate * 0.98 and submit["error_count"] == 0,
            "p99": submit["p99_ms"] < TARGET_P99_MS,
            "no_lost_job": submit["lost"] == 0 and submit["distinct_ids"] == submit["accepted"],
            "dashboard_no_error": read["error_count"] == 0}}
