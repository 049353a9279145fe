"""A plain-Python implementation of simrs's `place` mode, semantically identical to the Rust
one, kept as the baseline of `oppen bench sim` (and checked against it by the tests).

It replays an episode given as data (hosts and jobs, exported by ``simrs.Env.episode()``), so
both implementations run the very same workload. Reward: minus waiting job-hours.
"""

from __future__ import annotations

import heapq

import numpy as np

ARRIVAL, COMPLETION = 0, 1


class ReferencePlaceEnv:
    def __init__(self, hosts: list[tuple[int, int]],
                 jobs: list[tuple[int, int, int, int, int]]) -> None:
        self.cores = [c for c, _ in hosts]
        self.mem = [m for _, m in hosts]
        max_cores, max_mem = max(self.cores), max(self.mem)
        self.rel_cores = [np.float32(c) / np.float32(max_cores) for c in self.cores]
        self.rel_mem = [np.float32(m) / np.float32(max_mem) for m in self.mem]
        self.inv_cores = [np.float32(1.0) / np.float32(c) for c in self.cores]
        self.inv_mem = [np.float32(1.0) / np.float32(m) for m in self.mem]
        self.jobs = jobs
        self.inv_job_cores = np.float32(1.0) / np.float32(max(j[3] for j in jobs))
        self.inv_job_mem = np.float32(1.0) / np.float32(max(j[4] for j in jobs))
        self.used_cores = [0] * len(hosts)
        self.used_mem = [0] * len(hosts)
        self.queue: list[int] = []
        self.events: list[tuple[int, int, int, int, int]] = []  # (time, seq, kind, job, host)
        self.seq = 0
        for i, job in enumerate(jobs):
            self._push(job[0], ARRIVAL, i, -1)
        self.now = min(j[0] for j in jobs)
        self.started = 0
        self.done = False
        self._advance_to_decision()

    def _push(self, time: int, kind: int, job: int, host: int) -> None:
        heapq.heappush(self.events, (time, self.seq, kind, job, host))
        self.seq += 1

    def _fits(self, h: int, job: int) -> bool:
        _, _, _, cores, mem = self.jobs[job]
        return (self.cores[h] - self.used_cores[h] >= cores
                and self.mem[h] - self.used_mem[h] >= mem)

    def _head_fits_somewhere(self) -> bool:
        return bool(self.queue) and any(self._fits(h, self.queue[0]) for h in range(len(self.cores)))

    def _advance_to_decision(self) -> float:
        waited = 0.0
        while not self._head_fits_somewhere():
            if not self.events:
                break
            t = self.events[0][0]
            waited += len(self.queue) * (t - self.now)
            self.now = t
            while self.events and self.events[0][0] == t:
                _, _, kind, job, host = heapq.heappop(self.events)
                if kind == ARRIVAL:
                    self.queue.append(job)
                else:
                    self.used_cores[host] -= self.jobs[job][3]
                    self.used_mem[host] -= self.jobs[job][4]
        if self.started == len(self.jobs) or not self.queue:
            self.done = True
        return waited

    def step(self, host: int) -> tuple[float, bool]:
        if self.done:
            raise RuntimeError("episode is over")
        job = self.queue[0]
        if not (0 <= host < len(self.cores) and self._fits(host, job)):
            raise ValueError(f"invalid action {host}")
        self.used_cores[host] += self.jobs[job][3]
        self.used_mem[host] += self.jobs[job][4]
        self.queue.pop(0)
        self._push(self.now + self.jobs[job][1], COMPLETION, job, host)
        self.started += 1
        waited = self._advance_to_decision()
        return -waited / 3600.0, self.done

    def observe(self, out: np.ndarray) -> None:
        n = len(self.cores)
        for h in range(n):
            out[4 * h] = np.float32(self.used_cores[h]) * self.inv_cores[h]
            out[4 * h + 1] = np.float32(self.used_mem[h]) * self.inv_mem[h]
            out[4 * h + 2] = self.rel_cores[h]
            out[4 * h + 3] = self.rel_mem[h]
        if self.queue and not self.done:
            _, _, _, cores, mem = self.jobs[self.queue[0]]
            out[4 * n] = np.float32(cores) * self.inv_job_cores
            out[4 * n + 1] = np.float32(mem) * self.inv_job_mem
        else:
            out[4 * n] = out[4 * n + 1] = 0.0

    def action_mask(self, out: np.ndarray) -> None:
        if self.queue and not self.done:
            for h in range(len(self.cores)):
                out[h] = 1 if self._fits(h, self.queue[0]) else 0
        else:
            out[:] = 0
