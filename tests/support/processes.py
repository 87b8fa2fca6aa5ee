"""Background processes for tests that start a real Prefect server, workers or `baocao up` as subprocesses.

Shared by test_production and test_result_storage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from baocao.rules.config import PROJECT_DIR


class Processes:
    """Background processes with their output in files; every one is stopped at the end."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs = logs
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, *args], env=env or self.env, cwd=PROJECT_DIR, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], env=self.env, cwd=PROJECT_DIR, capture_output=True, text=True,
                              timeout=timeout)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@contextmanager
def processes(tmp_path: Path, env: dict[str, str]) -> Iterator[Processes]:
    procs = Processes(tmp_path / "logs", env)
    try:
        yield procs
    finally:
        procs.stop_all()


def wait_for(what: str, check: Callable[[], Any], timeout: float, *, diagnose: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{diagnose()}")


def flow_runs(api: str, deployment: str | None = None, **flow_run_filter: Any) -> list[dict[str, Any]]:
    """Flow runs through the REST filter (optionally of one deployment, by name)."""
    body: dict[str, Any] = {"limit": 200, "sort": "EXPECTED_START_TIME_ASC"}
    if deployment:
        body["deployments"] = {"name": {"any_": [deployment]}}
    if flow_run_filter:
        body["flow_runs"] = flow_run_filter
    r = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10)
    r.raise_for_status()
    return r.json()


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BAOCAO_"))}
    env.update({
        "BAOCAO_DATABASE_URL": f"sqlite:///{tmp_path / 'baocao.db'}",
        "BAOCAO_VAR_DIR": str(tmp_path / "var"),
        "BAOCAO_DROP_FOLDER": str(tmp_path / "var" / "dropbox"),
        "BAOCAO_MAIL_DIR": str(tmp_path / "var" / "mail"),
        "BAOCAO_TOKEN_SECRET": "test-token-secret-0123456789",
        "BAOCAO_SMTP__BACKOFF_BASE": "0.05",
        "BAOCAO_COLLECT_EVERY_MINUTES": "0.1",  # a scheduled collect every 6 s
        "BAOCAO_SCHEDULING_CHECK_SECONDS": "40",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "250",  # tables on one line each
    })
    return env


def httpx_alive(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
