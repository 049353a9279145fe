"""Durable checkpoint stores: a folder, and S3 through boto3 against a real moto server.

A checkpoint is taken only when its index names it and its bytes match the index's size and
hash: an upload killed midway, or a file damaged after it was written, is never resumed from.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.errors import ConfigError
from app.training.checkpoint_store import (
    FolderStore,
    S3Store,
    restore_latest,
    store_for_job,
)
from tests.support.moto import moto_server
from tests.support.paths import REPO

BUCKET = "oppen-checkpoints"


def _file(path: Path, size: int, fill: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((fill * (size // len(fill) + 1))[:size])
    return path


def test_folder_store_publishes_and_restores_the_newest_whole_checkpoint(tmp_path: Path) -> None:
    store = store_for_job(None, tmp_path / "home", 7)
    assert isinstance(store, FolderStore)
    assert store.location.endswith("checkpoints/job-7")
    assert restore_latest(store, tmp_path / "into") is None  # nothing yet: step 0
    scratch = tmp_path / "scratch"
    store.publish(_file(scratch / "step-100.pt", 1000, b"a"), 100)
    store.publish(_file(scratch / "step-200.pt", 1000, b"b"), 200)
    path, step = restore_latest(store, tmp_path / "into")
    assert step == 200 and path.read_bytes() == b"b" * 1000
    # The newest file is damaged after it was indexed: the one before is taken instead.
    (Path(store.location) / "step-200.pt").write_bytes(b"b" * 10)
    path, step = restore_latest(store, tmp_path / "into")
    assert step == 100 and path.read_bytes() == b"a" * 1000


def test_a_checkpoint_uri_of_another_kind_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OPPEN_CHECKPOINT_URI 'gs://b/p'"):
        store_for_job("gs://b/p", tmp_path, 1)
    with pytest.raises(ConfigError, match="no bucket"):
        store_for_job("s3:///prefix", tmp_path, 1)
    assert store_for_job(str(tmp_path / "ck"), tmp_path, 3).location == str(tmp_path / "ck" / "job-3")


@pytest.fixture
def s3_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    with moto_server(tmp_path / "moto.log") as url:
        env = {"AWS_ENDPOINT_URL_S3": url, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield env


def test_checkpoints_round_trip_through_s3(s3_env: dict[str, str], tmp_path: Path) -> None:
    store = store_for_job(f"s3://{BUCKET}/runs", tmp_path, 12)
    assert isinstance(store, S3Store) and store.location == f"s3://{BUCKET}/runs/job-12"
    for step in (10, 20, 30, 40):
        store.publish(_file(tmp_path / "w" / f"step-{step}.pt", 3000, bytes([step])), step)
    assert [e.step for e in store.entries()] == [20, 30, 40]  # the oldest is let go
    keys = {o["Key"] for o in store.client.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {f"runs/job-12/{n}" for n in
                    ("index.json", "step-20.pt", "step-30.pt", "step-40.pt")}
    path, step = restore_latest(store, tmp_path / "pod-2")
    assert step == 40 and path.read_bytes() == bytes([40]) * 3000
    # An object damaged under its name (a writer that ignored the index's order) is refused.
    store.client.put_object(Bucket=BUCKET, Key="runs/job-12/step-40.pt", Body=b"torn")
    path, step = restore_latest(store, tmp_path / "pod-3")
    assert step == 30 and path.read_bytes() == bytes([30]) * 3000


UPLOAD_THEN_STALL = """
import sys, time
from pathlib import Path
from app.training.checkpoint_store import store_for_job

store = store_for_job(sys.argv[1], Path(sys.argv[2]), 5)
flag = Path(sys.argv[3])

def first_part_sent(**_):
    flag.write_text("part sent")
    time.sleep(120)  # killed here, midway through the multipart upload

store.client.meta.events.register("after-call.s3.UploadPart", first_part_sent)
store.publish(Path(sys.argv[4]), 2)
"""


def test_an_upload_killed_midway_is_not_resumed_from(s3_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    uri = f"s3://{BUCKET}/runs"
    store = store_for_job(uri, tmp_path, 5)
    store.publish(_file(tmp_path / "w" / "step-1.pt", 2000, b"1"), 1)
    big = _file(tmp_path / "w" / "step-2.pt", 24 * 1024 * 1024, b"2")  # multipart: 3 parts
    flag = tmp_path / "part-sent"
    writer = subprocess.Popen([sys.executable, "-c", UPLOAD_THEN_STALL, uri, str(tmp_path),
                               str(flag), str(big)], cwd=REPO, env={**os.environ, **s3_env})
    deadline = time.monotonic() + 180
    while not flag.exists():
        assert writer.poll() is None, "the writer ended before uploading a part"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    uploads = store.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["runs/job-5/step-2.pt"]  # really midway
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert [e.step for e in store.entries()] == [1]
    path, step = restore_latest(store, tmp_path / "after")
    assert step == 1 and path.read_bytes() == b"1" * 2000
