"""Fixtures that live with their helpers in tests/support; registered by `pytest_plugins` in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.app import App, started_app
from tests.support.office import office  # noqa: F401 - the session fixture, registered here
from tests.support.tuky import TuKy, open_tu_ky


@pytest.fixture
def tu_ky(app: Any) -> TuKy:
    return open_tu_ky(app)


@pytest.fixture
def app_any_db(any_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, smtp_server: Any,
               imap_server: Any) -> Iterator[App]:
    """The conftest `app`, on SQLite and on this machine's PostgreSQL."""
    with started_app(any_db_url, smtp_server, imap_server, tmp_path, monkeypatch) as app:
        yield app


# --------------------------------------------------------------- figures from pytest-xdist workers
_figures: list[str] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """Gather the figure lines (crash, fault, concurrency tests) a worker could not print itself."""
    _figures.extend(getattr(node, "workeroutput", {}).get("baocao_figures", []))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the workers' figure lines once the run is over, as a single process prints them as it goes."""
    if _figures:
        terminalreporter.section("figures")
        for line in _figures:
            terminalreporter.write_line(line)
