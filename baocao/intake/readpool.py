"""Reading many submitted files on every core: a process pool for large drop folders.

Reading a filled form (unzipping, parsing with calamine, the zip-bomb and XML checks) is pure CPU
and holds the GIL; at national scale it is most of the intake. :class:`ReadPool` hands batches of
files to reader processes while the calling process stores the batch read before, so reading and
storing overlap and both cores work. The processes are started with ``spawn`` (safe under Prefect's
worker threads, where ``fork`` is not) and import only :mod:`baocao.intake.reader`.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from baocao.intake.reader import read_submission
from baocao.intake.results import Problem, Submitted
from baocao.rules.catalog import Catalog

log = logging.getLogger("baocao.readpool")

Read = tuple[list[Submitted], list[Problem]]  # as baocao.intake.pipeline.Read (not imported: readers import only the reader)

_catalog: Catalog | None = None
_max_bytes = 0


def _start(catalog: Catalog, max_bytes: int) -> None:
    global _catalog, _max_bytes
    _catalog, _max_bytes = catalog, max_bytes


def _read_all(items: Sequence[tuple[bytes, str]]) -> list[Read]:
    assert _catalog is not None
    return [read_submission(data, name, _catalog, max_bytes=_max_bytes) for data, name in items]


class Job:
    """Files handed to a :class:`ReadPool`; :meth:`ReadPool.result` gives what each holds."""

    def __init__(self, items: list[tuple[bytes, str]], future: Future[list[Read]] | None) -> None:
        self.items, self.future = items, future


class ReadPool:
    """``result(submit(files))`` is what :func:`baocao.intake.reader.read_submission` gives for each file.

    With ``processes=0`` (one core, or too few files to pay for starting processes) the files are
    read in this process when the result is asked for, so callers need no second code path. If a
    reader process fails (killed, out of memory), its files are read here instead.
    """

    def __init__(self, catalog: Catalog, max_bytes: int, processes: int) -> None:
        self.catalog, self.max_bytes = catalog, max_bytes
        self._pool: ProcessPoolExecutor | None = None
        if processes > 0:
            self._pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start, initargs=(catalog, max_bytes))

    def submit(self, items: Sequence[tuple[bytes, str]]) -> Job:
        items = list(items)
        future = None
        if self._pool is not None and items:
            try:
                future = self._pool.submit(_read_all, items)
            except Exception as exc:  # noqa: BLE001 - a broken pool: read here from now on
                log.warning("reader processes unavailable (%s); reading in this process", exc)
                self._pool = None
        return Job(items, future)

    def result(self, job: Job) -> list[Read]:
        if job.future is not None:
            try:
                return job.future.result()
            except Exception as exc:  # noqa: BLE001 - BrokenProcessPool and the like: read here
                log.warning("reader process failed (%s); reading its %d files in this process", exc, len(job.items))
        return [read_submission(data, name, self.catalog, max_bytes=self.max_bytes) for data, name in job.items]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ReadPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
