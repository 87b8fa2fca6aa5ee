"""Peak resident memory of the benchmark and its child processes, sampled with psutil.

A thread samples the RSS of this process and of every descendant (recursive) every `interval`
seconds and keeps, per role, the largest value seen, and the largest *sum* seen at one instant.
Roles: ``benchmark`` (this process: the flows, tasks and plain functions all run here),
``prefect server`` (Prefect's ephemeral API, a uvicorn subprocess), ``smtp sink`` and ``imap server``
(the loopback test servers, reported apart since they stand in for the outside world), ``pool
processes`` (the reader and render processes the intake and the reports start), ``other``.
This process's own peak is also taken from the kernel (``ru_maxrss``), which no sampling can miss.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Callable

import psutil

__all__ = ["SYSTEM_ROLES", "MemorySampler"]

SYSTEM_ROLES = ("benchmark", "prefect server", "pool processes")
"""The processes baocao itself runs: their sum at one instant is the peak RSS of the table."""


class MemorySampler:
    def __init__(self, classify: Callable[[psutil.Process], str], interval: float = 0.1) -> None:
        self.classify = classify
        self.interval = interval
        self.peak: dict[str, int] = {}
        self.peak_system = 0  # the SYSTEM_ROLES together, at one instant
        self.peak_all = 0  # every process of the tree, at one instant
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._me = psutil.Process(os.getpid())

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def sample(self) -> None:
        by_role: dict[str, int] = {}
        procs = [self._me]
        try:
            procs += self._me.children(recursive=True)
        except psutil.Error:
            pass
        for p in procs:
            try:
                rss = p.memory_info().rss
                role = "benchmark" if p.pid == self._me.pid else self.classify(p)
            except psutil.Error:
                continue
            by_role[role] = by_role.get(role, 0) + rss
        for role, rss in by_role.items():
            self.peak[role] = max(self.peak.get(role, 0), rss)
        system = sum(by_role.get(r, 0) for r in SYSTEM_ROLES)
        self.peak_system = max(self.peak_system, system)
        self.peak_all = max(self.peak_all, sum(by_role.values()))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    @staticmethod
    def self_maxrss() -> int:
        """This process's peak RSS in bytes, from the kernel (Linux reports KiB)."""
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
