"""Fixtures the core tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_k8s import FakeKubernetes


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    """The fake Kubernetes API server, running; its URL at `fake.url`."""
    server = FakeKubernetes()
    server.url = server.start()  # type: ignore[attr-defined]
    yield server
    server.stop()
