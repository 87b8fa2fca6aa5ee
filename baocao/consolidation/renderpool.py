"""Rendering many reports on every core: a process pool for a consolidation with many reports due.

A report is mostly CPU in matplotlib (its chart), openpyxl and python-docx, all holding the GIL; a
national cycle renders 39 of them. :class:`RenderPool` renders them in ``spawn``-ed processes (safe
under Prefect's worker threads), and one at a time in the calling process too, while the flow's
report tasks, in threads, wait for theirs and store them. Each process loads the configuration itself (from the same ``BAOCAO_*`` environment), so only
the figures of the unit and its children cross the process boundary, and only the files come back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from typing import Any

from baocao.consolidation.aggregate import Figures
from baocao.machine import cores
from baocao.store.queries import CycleInfo

log = logging.getLogger("baocao.renderpool")

PARALLEL_FROM = 4
"""Reports due in one run from which processes pay for their start (a few seconds of imports)."""
HERE = 1
"""Reports rendered at once in the calling process besides the pool's: its threads mostly wait, so on
two cores one render process and this one use both, with one process's memory (~200 MB) less."""
REPORT_THREADS = cores() + 2
"""Report tasks run at once by a consolidation: one per render slot, and two more storing the report
they got and publishing its headline meanwhile. More threads would only wait for a slot: Prefect's
default, a thread per task, started 39 at once, whose starts contended for the GIL with the renders."""


def _render(cycle: CycleInfo, unit: str, figures: dict[str, Figures], report_date: date,
            tasks: list[dict[str, Any]] | None, correction_of: int | None) -> tuple[bytes, bytes, str, str, bytes]:
    from baocao import runtime
    from baocao.consolidation.reporting import render

    r = render(runtime.config(), cycle, unit, figures, report_date, tasks=tasks, correction_of=correction_of)
    return r.docx, r.xlsx, r.text, r.html, r.chart


def _libc_trim() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): nothing to trim
        return None


_malloc_trim = _libc_trim()


def _give_memory_back() -> None:
    """After a report rendered in this process: hand the heap's free pages back to the system.

    A report allocates tens of MB of small objects (python-docx, openpyxl, matplotlib) and frees
    them; glibc keeps the freed pages, so the flow's process grew by about 100 MB over a national
    cycle's reports (measured: one province's report rendered 12 times, 197 MB without, 177 MB
    with). The pool's processes are left alone: they end with the run.
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


def _warm() -> None:
    """Import the renderers and load the configuration once per process, before the first report."""
    from baocao import runtime  # noqa: F401
    from baocao.consolidation import reporting as consolidation  # noqa: F401

    runtime.config()


class RenderPool:
    """``render(...)`` gives what :func:`baocao.consolidation.reporting.render` gives, rendered in another process
    (or, for :data:`HERE` reports at a time, in this one).

    Thread-safe: the report tasks of one run call it at once. Each call takes the first free slot, a
    process first, then this process's own: a report waits for a free slot, not in a process's queue,
    so no slot idles while reports wait (the flow submits all its report tasks together; queued at
    once to the pool, they would leave this process's slot unused after its first report). If a
    process fails (killed, out of memory), the caller renders that report itself (:meth:`render`
    raises, see ``make_report``).
    """

    def __init__(self, processes: int, here: int = 0) -> None:
        self._pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_warm)
        self._free = {"pool": processes, "here": here}
        self._changed = threading.Condition()
        self.rendered = {"pool": 0, "here": 0}

    @classmethod
    def for_reports(cls, due: int) -> RenderPool | None:
        """A pool when `due` reports make it worth its start on this machine, else None."""
        n = min(cores(), due)
        if due < PARALLEL_FROM or n < 2:
            return None
        here = min(HERE, n - 1)
        return cls(n - here, here)

    def _take(self) -> str:
        with self._changed:
            while True:
                for slot in ("pool", "here"):
                    if self._free[slot] > 0:
                        self._free[slot] -= 1
                        return slot
                self._changed.wait()

    def _give_back(self, slot: str) -> None:
        with self._changed:
            self._free[slot] += 1
            self.rendered[slot] += 1
            self._changed.notify()

    def render(self, cycle: CycleInfo, unit: str, figures: dict[str, Figures], report_date: date, *,
               tasks: list[dict[str, Any]] | None,
               correction_of: int | None) -> tuple[bytes, bytes, str, str, bytes]:
        fig = figures[unit]
        needed = {unit: fig} | {c: figures[c] for c in fig.children if c in figures}
        slot = self._take()
        try:
            if slot == "here":
                try:
                    return _render(cycle, unit, needed, report_date, tasks, correction_of)
                finally:
                    _give_memory_back()
            return self._pool.submit(_render, cycle, unit, needed, report_date, tasks, correction_of).result()
        finally:
            self._give_back(slot)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
