"""A retried POST never queues a job twice: every submission from the client carries an
idempotency key, the client retries a POST whose answer was lost, and the server finds the
job that key already made."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.api.client import RemoteOperations
from app.api.tokens import TokenService
from app.core.settings import load_settings
from app.services import Services
from tests.support.live_server import live_server
from tests.support.processes import free_port


class DropsFirstAnswer(httpx.BaseTransport):
    """Sends every request to the real server, but loses the answer to the first POST, as a
    connection cut after the server committed would."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.posts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST":
            self.posts += 1
            if self.posts == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset after the request was sent",
                                      request=request)
        return response


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Services]]:
    services = Services(load_settings(home=tmp_path_factory.mktemp("oppen-home")))
    token = TokenService(services.engine).create("alpha", "submitter")[1]
    with live_server(services, free_port()) as url:
        yield url, token, services


def test_a_post_whose_answer_was_lost_is_retried_and_queues_one_job(
        server: tuple[str, str, Services]) -> None:
    url, token, services = server
    transport = DropsFirstAnswer()
    remote = RemoteOperations(url, token, transport=transport)
    remote.retry_base_s = 0.01
    try:
        job = remote.submit({"name": "once", "config": {"total_timesteps": 2048}})
    finally:
        remote.close()
    assert transport.posts == 2  # the first answer was lost; the retry got the job
    assert services.queue.counts() == {"queued": 1}
    assert job["name"] == "once" and job["state"] == "queued"


def test_the_same_key_twice_is_one_job_and_keys_are_per_team(
        server: tuple[str, str, Services]) -> None:
    url, token, services = server
    other = TokenService(services.engine).create("beta", "submitter")[1]

    def post(bearer: str, key: str, name: str = "keyed") -> httpx.Response:
        return httpx.post(f"{url}/api/v1/jobs", json={"name": name}, timeout=30,
                          headers={"Authorization": f"Bearer {bearer}", "Idempotency-Key": key})

    first, again = post(token, "k-1"), post(token, "k-1", name="a retry")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert post(token, "k-2").json()["id"] != first.json()["id"]
    assert post(other, "k-1").json()["team"] == "beta"  # another team's key space
    assert services.queue.counts() == {"queued": 3}
    bad = post(token, "has space")
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["error"]
    assert services.queue.counts() == {"queued": 3}
