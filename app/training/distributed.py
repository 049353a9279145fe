"""The workers of one data-parallel (DD-PPO) run: who this process is among them and the
few collectives PPO needs. A run of one worker has no process group and every collective
is the identity, so the trainer has one code path for both.

Workers are started by `torch.distributed.run` (torchrun), which sets RANK, WORLD_SIZE,
LOCAL_RANK and the rendezvous (MASTER_ADDR/PORT); gloo carries the collectives on a CPU,
NCCL on CUDA devices.
"""

from __future__ import annotations

import ctypes
import datetime
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from app.core.errors import ConfigError

# How long a collective may wait for a peer before it fails. A dead peer usually fails a
# gloo collective at once (its socket closes); this bounds the case where it does not (a
# machine gone from the network), and it must exceed the longest gap between collectives,
# which is rank 0's evaluation.
COLLECTIVE_TIMEOUT_S = 600
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Workers:
    rank: int = 0
    world: int = 1

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def shard(self, num_envs: int) -> tuple[int, int]:
        """This worker's environments of the run's `num_envs`: (first index, count)."""
        per = num_envs // self.world
        return self.rank * per, per

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sums `tensor` over the workers in place (and returns it)."""
        if self.world > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def max_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor

    def cat(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """Every worker's `tensor` (equal shapes) concatenated along `dim` in rank order:
        the workers' environment columns put back together as one worker holds them."""
        if self.world == 1:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=dim)

    def gather(self, obj: Any) -> list[Any]:
        """Every worker's `obj` (picklable), in rank order, on every worker."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def from_leader(self, obj: Any) -> Any:
        """Rank 0's `obj` on every worker (the others pass anything)."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


SOLO = Workers()


def launched() -> bool:
    """Whether this process is one of several workers torchrun started."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def join(num_workers: int, device: torch.device) -> Workers:
    """Joins the run's process group (torchrun's environment) and returns this worker."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world == 1:
        return SOLO
    if world != num_workers:
        raise ConfigError(f"training option num_workers is {num_workers} but {world} workers "
                          "were started")
    _die_with_launcher()
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    return Workers(dist.get_rank(), dist.get_world_size())


def worker_device(device: torch.device) -> torch.device:
    """A CUDA worker uses the GPU of its local rank (one per worker on a machine)."""
    if device.type != "cuda" or not launched():
        return device
    index = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def peer_lost(exc: BaseException) -> bool:
    """Whether a collective failed because another worker vanished (its process or its
    machine), not because of this worker's own work."""
    if not launched() or not isinstance(exc, RuntimeError):
        return False
    text = str(exc)
    return isinstance(exc, dist.DistError) or any(
        sign in text for sign in ("Connection closed by peer", "Connection reset by peer",
                                  "Broken pipe", "Gloo", "NCCL"))


def _die_with_launcher() -> None:
    """torchrun starts each worker in a session of its own, so a job's process-group signal
    does not reach it: have the kernel kill it if its launcher dies (Linux), rather than
    leave it training alone."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the launcher was already gone before the call took
        os.kill(os.getpid(), signal.SIGKILL)
