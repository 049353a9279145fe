"""Where a job's checkpoints outlive the process and the pod that wrote them.

A store holds a job's checkpoint files and one small index, ``index.json``: the checkpoints
published so far, newest last, each with its step, size and SHA-256. A checkpoint is
published by writing its file completely first and only then replacing the index, so a writer
killed midway leaves the index pointing at the previous checkpoint; a reader checks size and
hash before using a file, and falls back to the previous entry if one does not match. A
partial upload is therefore never taken for a checkpoint.

Two kinds, chosen by ``OPPEN_CHECKPOINT_URI``:

- a folder, ``$OPPEN_HOME/checkpoints/job-N`` by default (the local executor's machine);
- ``s3://bucket/prefix``: objects ``prefix/job-N/<file>`` through boto3 (the Terraform
  bucket on a cluster; any S3-compatible server by ``AWS_ENDPOINT_URL_S3``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from app.core.adaptors import s3
from app.core.errors import ConfigError

log = logging.getLogger(__name__)

INDEX = "index.json"
# Entries kept in the index (older files are deleted): enough to fall back past a bad one.
KEEP = 3


@dataclass(frozen=True)
class StoredCheckpoint:
    step: int
    name: str
    size: int
    sha256: str


def digest(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return path.stat().st_size, h.hexdigest()


def _parse_index(raw: bytes, where: str) -> list[StoredCheckpoint]:
    try:
        entries = json.loads(raw)["checkpoints"]
        return [StoredCheckpoint(int(e["step"]), str(e["name"]), int(e["size"]),
                                 str(e["sha256"])) for e in entries]
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("checkpoint index %s is unreadable (%s); starting from step 0", where, exc)
        return []


def _render_index(entries: list[StoredCheckpoint]) -> bytes:
    return json.dumps({"checkpoints": [asdict(e) for e in entries]}, indent=1).encode()


class CheckpointStore(Protocol):
    location: str

    def publish(self, path: Path, step: int) -> StoredCheckpoint:
        """Stores this checkpoint file durably and makes it the latest."""
        ...

    def entries(self) -> list[StoredCheckpoint]:
        """The published checkpoints, oldest first."""
        ...

    def fetch(self, entry: StoredCheckpoint, into: Path) -> Path | None:
        """A local copy of the entry whose size and hash match, else None."""
        ...


def restore_latest(store: CheckpointStore, into: Path) -> tuple[Path, int] | None:
    """The newest published checkpoint that arrives whole, as a local file, and its step."""
    for entry in reversed(store.entries()):
        path = store.fetch(entry, into)
        if path is not None:
            return path, entry.step
        log.warning("checkpoint %s in %s does not match its index (size or hash); trying the "
                    "one before", entry.name, store.location)
    return None


def _verified(path: Path, entry: StoredCheckpoint) -> bool:
    return path.is_file() and digest(path) == (entry.size, entry.sha256)


class FolderStore:
    """A folder on a disk that outlives the process (the local executor's default)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def entries(self) -> list[StoredCheckpoint]:
        index = self.root / INDEX
        return _parse_index(index.read_bytes(), str(index)) if index.is_file() else []

    def publish(self, path: Path, step: int) -> StoredCheckpoint:
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / path.name
        if path.resolve() != target.resolve():
            tmp = target.with_name(f".{target.name}.partial")
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        size, sha = digest(target)
        entry = StoredCheckpoint(step, target.name, size, sha)
        kept = [e for e in self.entries() if e.name != entry.name][-(KEEP - 1):] + [entry]
        tmp_index = self.root / f".{INDEX}.partial"
        tmp_index.write_bytes(_render_index(kept))
        os.replace(tmp_index, self.root / INDEX)  # the file is whole before the index names it
        return entry

    def fetch(self, entry: StoredCheckpoint, into: Path) -> Path | None:
        path = self.root / entry.name
        return path if _verified(path, entry) else None


class S3Store:
    """Objects under ``s3://bucket/prefix/job-N/``; the index is written after the file."""

    def __init__(self, bucket: str, prefix: str, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client if client is not None else s3.client()
        self.location = f"s3://{bucket}/{self.prefix}"

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def entries(self) -> list[StoredCheckpoint]:
        try:
            raw = self.client.get_object(Bucket=self.bucket, Key=self._key(INDEX))["Body"].read()
        except Exception as exc:
            if s3.is_missing(exc):
                return []
            raise
        return _parse_index(raw, f"{self.location}/{INDEX}")

    def publish(self, path: Path, step: int) -> StoredCheckpoint:
        size, sha = digest(path)
        entry = StoredCheckpoint(step, path.name, size, sha)
        # A managed transfer (multipart past 8 MB): an upload that dies midway leaves no
        # object under the key, or the previous one, and the index still names the old entry.
        self.client.upload_file(str(path), self.bucket, self._key(entry.name))
        before = self.entries()
        kept = [e for e in before if e.name != entry.name][-(KEEP - 1):] + [entry]
        self.client.put_object(Bucket=self.bucket, Key=self._key(INDEX), Body=_render_index(kept),
                               ContentType="application/json")
        for old in before:
            if old.name not in {e.name for e in kept}:
                self.client.delete_object(Bucket=self.bucket, Key=self._key(old.name))
        return entry

    def fetch(self, entry: StoredCheckpoint, into: Path) -> Path | None:
        into.mkdir(parents=True, exist_ok=True)
        target = into / entry.name
        tmp = into / f".{entry.name}.partial"
        try:
            self.client.download_file(self.bucket, self._key(entry.name), str(tmp))
        except Exception as exc:
            if s3.is_missing(exc):
                return None
            raise
        if not _verified(tmp, entry):
            tmp.unlink(missing_ok=True)
            return None
        os.replace(tmp, target)
        return target


def store_for_job(uri: str | None, home: Path, job_id: int, client: Any = None) -> CheckpointStore:
    """The store of one job's checkpoints: ``uri`` (OPPEN_CHECKPOINT_URI) or the folder under
    ``home``."""
    if not uri:
        return FolderStore(home / "checkpoints" / f"job-{job_id}")
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"OPPEN_CHECKPOINT_URI {uri!r}: no bucket (s3://bucket/prefix)")
        return S3Store(parsed.netloc, f"{parsed.path.strip('/')}/job-{job_id}".lstrip("/"),
                       client)
    if parsed.scheme in ("", "file"):
        return FolderStore(Path(parsed.path or uri).expanduser() / f"job-{job_id}")
    raise ConfigError(f"OPPEN_CHECKPOINT_URI {uri!r}: use a folder or s3://bucket/prefix")


def publisher(store: CheckpointStore) -> Callable[[Path, int], None]:
    """The trainer's on_checkpoint hook for ``store``: a failed upload is logged and training
    goes on (the next checkpoint tries again); the run is not lost to a store's hiccup."""

    def publish(path: Path, step: int) -> None:
        try:
            store.publish(path, step)
        except Exception as exc:  # noqa: BLE001 - durability is retried at the next checkpoint
            log.warning("checkpoint step %s not stored in %s: %s", step, store.location, exc)

    return publish
