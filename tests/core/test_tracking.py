"""The MLflow store a new home gets: migrated once per MLflow version, then copied from the
cache folder; a kept copy MLflow refuses (damaged, or from an older schema) is replaced by a
freshly migrated store, and a cache folder that cannot be written costs only the time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.core.tracking import Tracker


def _tracker(home: Path, cache: Path | None) -> Tracker:
    return Tracker(f"sqlite:///{home / 'mlflow.db'}", home / "mlartifacts", cache_dir=cache)


def _default_experiment_made_at(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("select creation_time from experiments where experiment_id = 0"
                         ).fetchone()[0]


def _works(tracker: Tracker) -> None:
    run = tracker.create_run("check", {}, {"a": "1"})
    tracker.end_run(run, {"m": 1.0}, [])
    assert tracker.run_summary(run).metrics == {"m": 1.0}


def test_a_new_home_starts_from_the_kept_empty_store(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _tracker(tmp_path / "a", cache)
    first.experiment_id()
    kept = list(cache.glob("mlflow-*-empty-store.db"))
    assert len(kept) == 1
    second = _tracker(tmp_path / "b", cache)
    second.experiment_id()
    # The copy carries the kept store's own Default experiment, made when it was migrated.
    assert _default_experiment_made_at(tmp_path / "b" / "mlflow.db") == \
        _default_experiment_made_at(kept[0])
    _works(second)
    assert sorted(p.name for p in (tmp_path / "b").iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("damage", ["not-a-database", "older-schema"])
def test_a_kept_store_mlflow_refuses_is_replaced_by_a_migrated_one(
        tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "cache"
    _tracker(tmp_path / "a", cache).experiment_id()
    kept = next(cache.glob("mlflow-*-empty-store.db"))
    if damage == "not-a-database":
        kept.write_bytes(b"\x00not sqlite\n" * 100)
    else:
        with sqlite3.connect(kept) as c:
            c.execute("update alembic_version set version_num = '451aebb31d03'")
    tracker = _tracker(tmp_path / "b", cache)
    tracker.experiment_id()
    _works(tracker)
    with sqlite3.connect(kept) as c:  # the kept copy is a current store again
        current = c.execute("select version_num from alembic_version").fetchone()[0]
    with sqlite3.connect(tmp_path / "b" / "mlflow.db") as c:
        assert c.execute("select version_num from alembic_version").fetchone()[0] == current
    assert current != "451aebb31d03"


def test_a_cache_folder_that_cannot_be_written_costs_only_the_time(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    tracker = _tracker(tmp_path / "home", blocked / "cache")
    tracker.experiment_id()
    _works(tracker)
    assert blocked.read_text() == "not a folder"


def test_a_client_asked_for_first_makes_the_store_the_guarded_way(tmp_path: Path) -> None:
    """Pricing a submission reads run history before anything has trained: the store is made
    under the lock, from the kept copy, not migrated in place by a bare MLflow client."""
    cache = tmp_path / "cache"
    _tracker(tmp_path / "a", cache).experiment_id()
    kept = next(cache.glob("mlflow-*-empty-store.db"))
    tracker = _tracker(tmp_path / "b", cache)
    assert tracker.client().search_experiments(max_results=5)
    assert _default_experiment_made_at(tmp_path / "b" / "mlflow.db") == \
        _default_experiment_made_at(kept)
    assert (tmp_path / "b" / "mlflow.init.lock").exists()
