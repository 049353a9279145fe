"""Capacity and use: Kubernetes nodes through the API, or the local machine."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Node:
    name: str
    cpu_allocatable: float | None
    cpu_requested: float
    memory_allocatable_mb: int | None
    memory_requested_mb: int
    gpu_allocatable: int | None
    gpu_requested: int


@dataclass
class Cluster:
    source: str  # "local" | "kubernetes"
    nodes: list[Node] = field(default_factory=list)
    detail: str = ""


def local_gpus() -> int:
    """GPUs nvidia-smi lists (0 without the tool): no CUDA import on the dashboard's path."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def local_cluster(requested_cpus: float, requested_mb: int, requested_gpus: int) -> Cluster:
    import psutil

    node = Node(os.uname().nodename, float(os.cpu_count() or 0), requested_cpus,
                int(psutil.virtual_memory().total / 2**20), requested_mb, local_gpus(),
                requested_gpus)
    return Cluster("local", [node], "this machine; requested = Oppen's running jobs")


def _cpu(quantity: str | None) -> float:
    if not quantity:
        return 0.0
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _mb(quantity: str | None) -> int:
    if not quantity:
        return 0
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6,
             "G": 10**9, "T": 10**12}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor / 2**20)
    return int(float(quantity) / 2**20)


def kubernetes_cluster(api_client: Any, namespace: str) -> Cluster:
    """Allocatable per node from the node list; requested from the pods in Oppen's
    namespace (what its Role may read). Without permission to list nodes, says so."""
    from app.core.adaptors import kubernetes as k8s

    ApiException = k8s.api_exception()
    core = k8s.core_api(api_client)
    try:
        nodes = core.list_node(_request_timeout=3).items
    except ApiException as exc:
        return Cluster("kubernetes", [], f"N/A: cannot list nodes (HTTP {exc.status})")
    except Exception as exc:  # noqa: BLE001 - unreachable API: shown, never fatal
        return Cluster("kubernetes", [], f"N/A: {type(exc).__name__}")
    requested: dict[str, list[float]] = {}
    try:
        for pod in core.list_namespaced_pod(namespace, _request_timeout=3).items:
            if pod.status.phase not in ("Pending", "Running") or not pod.spec.node_name:
                continue
            totals = requested.setdefault(pod.spec.node_name, [0.0, 0.0, 0.0])
            for container in pod.spec.containers:
                req = (container.resources.requests or {}) if container.resources else {}
                totals[0] += _cpu(req.get("cpu"))
                totals[1] += _mb(req.get("memory"))
                totals[2] += int(req.get("nvidia.com/gpu", 0) or 0)
    except ApiException:
        pass  # requested stays unknown per node: shown as 0 of allocatable
    out = []
    for node in nodes:
        alloc = node.status.allocatable or {}
        used = requested.get(node.metadata.name, [0.0, 0.0, 0.0])
        out.append(Node(node.metadata.name, _cpu(alloc.get("cpu")), used[0],
                        _mb(alloc.get("memory")), int(used[1]),
                        int(alloc.get("nvidia.com/gpu", 0) or 0), int(used[2])))
    return Cluster("kubernetes", out, f"requested = pods in namespace {namespace}")
