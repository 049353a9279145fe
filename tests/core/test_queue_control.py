"""Controls over the whole queue: pausing admission, moving a job to the front, starts in
words, and lists that say how many there are in all."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.api.operations import LocalOperations
from app.core import admission_pause, start_times
from app.core.dispatcher import Dispatcher
from app.core.errors import ConfigError, InvalidTransitionError, PermissionDeniedError
from app.core.executors.base import ExecStatus, Phase
from app.core.lease import Lease
from app.core.models import Job
from app.services import Services


class Launches:
    """An executor that only records launches (admission is what these tests watch)."""

    name = "recording"

    def __init__(self) -> None:
        self.launched: list[int] = []

    def launch(self, job: Job) -> str:
        self.launched.append(int(job.id or 0))
        return json.dumps({"job": job.id})

    def find(self, job: Job) -> str | None:
        return None

    def poll(self, ref: str) -> ExecStatus:
        return ExecStatus(Phase.RUNNING)

    def stop(self, ref: str) -> None:
        return None

    def logs(self, ref: str, lines: int = 50) -> str:
        return ""


def test_a_paused_queue_admits_nothing_and_every_queued_job_says_why(
        services: Services) -> None:
    ops = LocalOperations(services)
    ids = [services.queue.submit(f"j{i}").id for i in range(3)]
    paused = ops.pause_admission("maintenance window")["paused"]
    assert paused["reason"] == "maintenance window" and paused["by"] == "local admin"
    # A second pause keeps the first one's record.
    assert ops.pause_admission("other")["paused"]["reason"] == "maintenance window"
    executor = Launches()
    dispatcher = Dispatcher(services.engine, executor, Lease(services.engine, "t", 30))
    for _ in range(2):
        dispatcher.tick()
    assert executor.launched == []
    assert all(services.queue.get(i).state == "queued" for i in ids)
    views = ops.list_jobs(["queued"])["jobs"]
    assert {v["pending_reason"] for v in views} == {"admission-paused"}
    assert all("maintenance window" in v["pending_detail"] and v["eta_start"] is None
               for v in views)
    assert ops.queue_status()["paused"]["reason"] == "maintenance window"
    from app.dashboard.data import gather

    first = gather(services).alerts[0]  # the dashboard says so first
    assert (first.level, first.kind) == ("warn", "paused")
    assert "maintenance window" in first.message and "oppen queue unpause" in first.message

    assert ops.resume_admission() == {"paused": None, "was_paused": True}
    assert ops.resume_admission()["was_paused"] is False
    dispatcher.tick()
    assert executor.launched == ids  # the concurrency limit is 3: all of them, in order
    assert admission_pause.read(services.engine) is None


def test_pausing_and_moving_need_an_admin(services: Services) -> None:
    from app.api.access import Principal, Role

    job = services.queue.submit("mine")
    submitter = LocalOperations(services, Principal("default", Role.SUBMITTER))
    for act in (lambda: submitter.pause_admission(), submitter.resume_admission,
                lambda: submitter.move_to_front(job.id)):
        with pytest.raises(PermissionDeniedError, match="admin"):
            act()
    with pytest.raises(ConfigError, match="at most 200"):
        LocalOperations(services).pause_admission("x" * 201)


def test_move_to_front_keeps_the_class_and_its_price(services: Services) -> None:
    ops = LocalOperations(services)
    urgent = services.queue.submit("u", priority="urgent").id
    normal = [services.queue.submit(f"n{i}").id for i in range(3)]
    last = normal[-1]
    before = services.queue.get(last)
    view = ops.move_to_front(last)
    assert view["position"] == 1 and view["priority_class"] == "normal"
    assert view["estimated_cost_usd"] == ops.show_job(normal[0])["estimated_cost_usd"]
    assert services.queue.get(last).estimated_cost_micros == before.estimated_cost_micros
    assert [e["reason"] for e in view["events"]][-1] == "moved to the front of the queue"
    order = [j["id"] for j in ops.list_jobs(["queued"])["jobs"]]
    assert order == [last, urgent, *normal[:-1]]
    # Already first: nothing changes; an urgent job submitted later queues behind it.
    assert ops.move_to_front(last)["position"] == 1
    services.queue.submit("later urgent", priority="urgent")
    assert ops.list_jobs(["queued"])["jobs"][0]["id"] == last
    services.queue.cancel(normal[0])
    with pytest.raises(InvalidTransitionError, match="only queued jobs"):
        ops.move_to_front(normal[0])


def test_lists_say_how_many_there_are_and_can_show_the_newest(services: Services) -> None:
    ops = LocalOperations(services)
    ids = [services.queue.submit(f"j{i}", priority=p).id
           for i, p in enumerate(["normal", "urgent", "normal", "background", "normal"])]
    page = ops.list_jobs(limit=2)
    assert page["total"] == 5 and [j["id"] for j in page["jobs"]] == [ids[1], ids[0]]
    newest = ops.list_jobs(limit=2, newest_first=True)
    assert [j["id"] for j in newest["jobs"]] == [ids[4], ids[3]] and newest["total"] == 5
    assert ops.list_jobs(["failed"])["total"] == 0


ZONE = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(("word", "now", "expected"), [
    ("22:00", datetime(2026, 3, 2, 10, 0, tzinfo=UTC), datetime(2026, 3, 2, 22, 0, tzinfo=ZONE)),
    ("09:30", datetime(2026, 3, 2, 10, 0, tzinfo=UTC), datetime(2026, 3, 3, 9, 30, tzinfo=ZONE)),
    ("tonight", datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
     datetime(2026, 3, 2, 22, 0, tzinfo=ZONE)),
    ("tonight", datetime(2026, 3, 2, 23, 0, tzinfo=UTC), datetime(2026, 3, 2, 23, 0, tzinfo=UTC)),
    ("tomorrow", datetime(2026, 3, 2, 10, 0, tzinfo=UTC), datetime(2026, 3, 3, 0, 0, tzinfo=ZONE)),
    ("tomorrow 09:00", datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
     datetime(2026, 3, 3, 9, 0, tzinfo=ZONE)),
    ("in 90 minutes", datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
     datetime(2026, 3, 2, 11, 30, tzinfo=UTC)),
])
def test_start_words(word: str, now: datetime, expected: datetime) -> None:
    assert start_times.resolve(word, now, ZONE) == expected


def test_off_peak_and_bad_start_words() -> None:
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert start_times.resolve("off-peak", now, ZONE, lambda t: t + timedelta(hours=8)) == \
        now + timedelta(hours=8)
    with pytest.raises(ConfigError, match="price list"):
        start_times.resolve("off-peak", now, ZONE)
    for bad in ("25:00", "soonish", "in 0 minutes", "tomorrow 9am"):
        with pytest.raises(ConfigError):
            start_times.resolve(bad, now, ZONE)


def test_the_contract_takes_start_words_everywhere(services: Services) -> None:
    ops = LocalOperations(services)
    off_peak = ops.submit({"name": "cheap", "start_after": "off-peak"})
    assert off_peak["not_before"] is not None
    pricing_says = services.queue.off_peak
    assert pricing_says is not None
    assert datetime.fromisoformat(off_peak["not_before"]) >= \
        pricing_says(datetime.now(UTC)) - timedelta(seconds=5)
    tonight = ops.submit({"name": "night", "start_after": "tonight"})
    assert tonight["not_before"] is not None
    from app.core.submission import SubmissionError

    # One message per mistake, in the contract's words.
    for bad, says in (("whenever you like", "start_after: use ISO 8601 (2026-12-07T22:00), "
                                            "HH:MM, tonight, tomorrow [HH:MM], off-peak or "
                                            "'in N minutes'"),
                      ("27:00", "start_after: start time '27:00': hours run 00 to 23"),
                      ("2099-01-01", "start_after: must be within a year from now"),
                      ("2099-01-01T10:00+02:00", "start_after: must be within a year from now")):
        with pytest.raises(SubmissionError) as caught:
            ops.submit({"name": "bad", "start_after": bad})
        assert str(caught.value).endswith(says), str(caught.value)
    assert ops.list_jobs()["total"] == 2  # nothing of the refused ones was stored
