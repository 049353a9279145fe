"""Starting a run's workers: `oppen train` with `num_workers` > 1 runs torchrun's launcher
(`torch.distributed.run`) in its own process, which starts `python -m app train …` per
worker. On one machine all workers start here, with a standalone rendezvous on a free
loopback port. In a Kubernetes Indexed Job each pod is one worker: OPPEN_RENDEZVOUS names
rank 0's pod (host:port) and the pod's completion index is its rank.

Workers exit 0 however the run stopped (a non-zero worker exit makes torchrun tear the
others down and report a failure); rank 0 writes the exit code the run means (0, a pruned
trial's 77, SIGTERM's 143) to a file this process reads, so the job sees one exit code as
from a single worker. A worker that fails or is killed fails the whole launch: torchrun
stops the others within its monitor interval, and this says in one line which worker ended
how and returns its code (128 + the signal for a killed one, as for a killed process).
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import tempfile
from pathlib import Path

from app.core.errors import OppenError
from app.core.states import PEER_LOST_EXIT_CODE

OUTCOME_ENV = "OPPEN_WORKERS_OUTCOME"
# How often torchrun checks its workers: a dead worker ends the launch this soon after.
MONITOR_INTERVAL_S = 0.5


class WorkerFailed(OppenError):
    """A worker of a data-parallel run failed or was killed: the attempt fails."""


def torchrun_args(num_workers: int, argv: list[str], rendezvous: str | None = None,
                  node_rank: int = 0) -> list[str]:
    common = ["--max-restarts=0", f"--monitor-interval={MONITOR_INTERVAL_S}",
              "--module", "app", *argv]
    if rendezvous is None:
        return ["--standalone", f"--nproc-per-node={num_workers}", *common]
    host, _, port = rendezvous.rpartition(":")
    return [f"--nnodes={num_workers}", "--nproc-per-node=1", f"--node-rank={node_rank}",
            f"--master-addr={host}", f"--master-port={port}", *common]


def pod_placement(num_workers: int) -> tuple[str | None, int]:
    """(rendezvous, this pod's rank) in an Indexed Job's pod; (None, 0) elsewhere."""
    from app.core.executors.k8s_manifest import RENDEZVOUS_ENV

    rendezvous = os.environ.get(RENDEZVOUS_ENV)
    if not rendezvous:
        return None, 0
    host, _, port = rendezvous.rpartition(":")
    index = os.environ.get("JOB_COMPLETION_INDEX", "")
    if not host or not port.isdigit() or not index.isdigit() or int(index) >= num_workers:
        raise WorkerFailed(f"{RENDEZVOUS_ENV}={rendezvous!r} with JOB_COMPLETION_INDEX="
                           f"{index!r}: expected host:port and an index below {num_workers}")
    return rendezvous, int(index)


def worker_threads(num_workers: int) -> int:
    """Each worker's share of this process's threads (the job's CPUs)."""
    try:
        total = int(os.environ.get("OMP_NUM_THREADS") or 0) or len(os.sched_getaffinity(0))
    except (ValueError, AttributeError):
        total = os.cpu_count() or 1
    return max(1, total // num_workers)


def share_address_space(num_workers: int) -> None:
    """A local job's memory cap (the runner's RLIMIT_AS: the runtime's own share plus the
    job's memory) is per process; split the job's part between its workers, so together
    they stay within what the job asked for. Only the soft limit is lowered."""
    from app.core.executors.runner import BASE_ADDRESS_SPACE_MB

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or num_workers == 1:
        return
    base = BASE_ADDRESS_SPACE_MB * 2**20
    resource.setrlimit(resource.RLIMIT_AS,
                       (base + max(0, soft - base) // num_workers, hard))


def run_workers(num_workers: int, argv: list[str]) -> int:
    """Runs the workers to the end; the exit code the run means."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args
    from torch.distributed.run import run as torchrun

    rendezvous, node_rank = pod_placement(num_workers)
    # torchrun logs each worker it stops; the one line below says what happened.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="oppen-workers-") as tmp:
        outcome = Path(tmp) / "exit-code"
        os.environ[OUTCOME_ENV] = str(outcome)
        local_workers = 1 if rendezvous else num_workers
        os.environ["OMP_NUM_THREADS"] = str(worker_threads(local_workers))
        share_address_space(local_workers)
        try:
            torchrun(parse_args(torchrun_args(num_workers, argv, rendezvous, node_rank)))
        except ChildFailedError as exc:
            # The cause: a killed worker, else one that failed on its own; those that lost
            # a peer (exit 75) failed because of it, whatever torchrun saw first.
            rank, first = min(exc.failures.items(), key=lambda kv: (
                kv[1].exitcode == PEER_LOST_EXIT_CODE, kv[1].exitcode > 0, kv[1].timestamp))
            signalled = first.exitcode < 0
            how = f"exit code {first.exitcode}"
            if signalled:
                try:
                    how = f"signal {signal.Signals(-first.exitcode).name}"
                except ValueError:
                    how = f"signal {-first.exitcode}"
            print(f"oppen: worker rank {rank} of {num_workers} ended with {how}; every worker "
                  "stopped", file=sys.stderr)
            # A killed worker reads as a killed process would (the infrastructure's doing).
            return 128 - first.exitcode if signalled else first.exitcode
        except SignalException as exc:
            # The workers were told to stop and had torchrun's grace to checkpoint.
            if not outcome.exists():
                return 128 + int(exc.sigval)
        if outcome.exists():
            return int(outcome.read_text().strip() or 1)
        if node_rank > 0:
            return 0  # rank 0's pod reports how the run ended
        raise WorkerFailed(f"the {num_workers} workers ended without rank 0's outcome")


def report_outcome(code: int) -> None:
    """Rank 0 of a launched run: the exit code the run means, for `run_workers`."""
    path = os.environ.get(OUTCOME_ENV)
    if path:
        Path(path).write_text(str(code))


def exit_worker(code: int, leader: bool) -> None:
    """A launched worker's exit: rank 0 reports the code, every worker exits 0."""
    if leader:
        report_outcome(code)
    sys.stdout.flush()
    sys.exit(0)
