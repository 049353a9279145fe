"""The JSON Schema of `oppen dashboard --json` (schema_version 2), documented in
docs/dashboard.md and checked by the tests."""

from __future__ import annotations

from typing import Any

_NUM = {"type": ["number", "null"]}
_STR = {"type": ["string", "null"]}
_MONEY = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(props), "properties": props,
            "additionalProperties": False}


SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "oppen dashboard --json",
    **_obj({
        "schema_version": {"const": 2},
        "generated_at": {"type": "string"},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "cluster": _obj({
            "source": {"enum": ["local", "kubernetes"]},
            "nodes": {"type": "array", "items": _obj({
                "name": {"type": "string"}, "cpu_allocatable": _NUM, "cpu_requested": _NUM,
                "memory_allocatable_mb": {"type": ["integer", "null"]},
                "memory_requested_mb": {"type": "integer"},
                "gpu_allocatable": {"type": ["integer", "null"]},
                "gpu_requested": {"type": "integer"}})},
            "detail": {"type": "string"}}),
        "queue_by_class": _obj({k: {"type": "integer"}
                                for k in ("urgent", "normal", "background")}),
        "queued": {"type": "array", "items": _obj({
            "position": {"type": ["integer", "null"]}, "id": {"type": "integer"},
            "name": {"type": "string"},
            "priority_class": {"enum": ["urgent", "normal", "background"]},
            "pending_reason": _STR, "pending_detail": _STR, "eta_start": _STR,
            "estimated_cost_usd": {"type": ["string", "null"]}})},
        "running": {"type": "array", "items": _obj({
            "id": {"type": "integer"}, "name": {"type": "string"},
            "priority_class": {"type": "string"}, "state": {"enum": ["dispatching", "waiting", "running"]},
            "kueue_position": {"type": ["integer", "null"], "minimum": 1},
            "workers": {"type": "integer", "minimum": 1},
            "progress": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "global_step": {"type": ["integer", "null"]}, "total_timesteps": {"type": "integer"},
            "steps_per_second": _NUM, "elapsed_s": _NUM, "eta_s": _NUM,
            "cost_so_far_usd": _MONEY, "forecast_cost_usd": _MONEY,
            "reward_curve": {"type": "array", "items": {"type": "number"}},
            "mlflow_run_id": _STR})},
        "recent": {"type": "array", "items": _obj({
            "id": {"type": "integer"}, "name": {"type": "string"},
            "priority_class": {"type": "string"},
            "state": {"enum": ["succeeded", "failed", "cancelled", "budget_exhausted",
                               "pruned"]},
            "duration_s": _NUM, "cost_usd": _MONEY, "eval_ratio": _NUM, "reason": _STR,
            "mlflow_run_id": _STR})},
        "costs": _obj({"today_usd": _MONEY, "month_usd": _MONEY, "currency": {"type": "string"},
                       "budgets": {"type": "array", "items": {"type": "object"}}}),
        "alerts": {"type": "array", "items": _obj({
            "level": {"enum": ["warn", "error"]},
            "kind": {"enum": ["budget", "failed", "stalled", "dispatcher", "paused"]},
            "message": {"type": "string"}})},
        "health": {"type": "array", "items": _obj({
            "component": {"enum": ["database", "mlflow", "dispatcher", "executor"]},
            "status": {"enum": ["ok", "warn", "error"]}, "detail": {"type": "string"}})},
        "sweeps": {"type": "array", "items": _obj({
            "id": {"type": "integer"}, "name": {"type": "string"},
            "state": {"enum": ["running", "stopped", "completed", "capped"]},
            "sampler": {"type": "string"}, "pruner": {"type": "string"},
            "objective": {"type": "string"}, "direction": {"enum": ["minimize", "maximize"]},
            "n_trials": {"type": "integer"},
            "trials": {"type": "object", "additionalProperties": {"type": "integer"}},
            "best_value": _NUM, "best_params": {"type": "object"},
            "spent_usd": _MONEY, "max_cost_usd": {"anyOf": [_MONEY, {"type": "null"}]}})},
    }),
}
