"""Quiet consoles (flows/quiet.py): a `baocao` command on a temporary Prefect server prints no noise.

The commands run as operators run them: `python -m flows.cli` in a subprocess, PREFECT_API_URL unset
(so Prefect starts its temporary server), a home of their own. The machine is made as offline as a
government network by an HTTPS proxy that does not exist (loopback stays direct), so Prefect's
telemetry fails the same way wherever the test runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from baocao.rules.config import PROJECT_DIR
from flows.quiet import TELEMETRY, quiet_prefect
from tests.support.app import app_env
from tests.support.servers import SmtpServer, free_port


def test_telemetry_is_turned_off_unless_the_operator_chose():
    env: dict[str, str] = {}
    quiet_prefect(env)
    assert env == {TELEMETRY: "false"}
    chosen = {TELEMETRY: "true"}
    quiet_prefect(chosen)
    assert chosen == {TELEMETRY: "true"}


def _cli(tmp_path: Path, smtp_port: int, *args: str, db: str = "app.db") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BAOCAO_"))}
    env |= app_env(f"sqlite:///{tmp_path / db}", smtp_port, None, tmp_path)
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_LOGGING_LEVEL": "INFO", "COLUMNS": "200",
            # Offline: the way out is a proxy nobody listens on; loopback (the temporary server) is direct.
            "HTTPS_PROXY": f"http://127.0.0.1:{free_port()}", "NO_PROXY": "127.0.0.1,localhost"}
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env, cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=300)


def _noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if "Traceback" in line or "| ERROR" in line or "Logging error" in line or "telemetry" in line]


@pytest.mark.slow
def test_a_command_on_a_temporary_prefect_server_prints_no_traceback(tmp_path):
    with SmtpServer() as smtp:
        assert _cli(tmp_path, smtp.port, "init").returncode == 0
        done = _cli(tmp_path, smtp.port, "cycle", "open", "--period", "2026-H1", "--plan", "tu-ky",
                    "--as-of", "2026-05-20T08:00")
        assert done.returncode == 0, done.stderr
        assert "Starting temporary server" in done.stderr  # it did run on a temporary server
        assert len({r for m in smtp.messages for r in m.rcpt_tos}) == 5  # and did its work
    assert _noise(done.stderr) == [], done.stderr


@pytest.mark.slow
def test_a_real_error_still_prints_its_traceback(tmp_path):
    """A database nobody initialised: the flow fails, and the console says why."""
    with SmtpServer() as smtp:
        done = _cli(tmp_path, smtp.port, "cycle", "open", "--period", "2026-H1", "--plan", "tu-ky",
                    "--as-of", "2026-05-20T08:00", db="never-initialised.db")
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "no such table" in done.stderr, done.stderr[-3000:]
    assert "Failed to send telemetry" not in done.stderr


_OPEN_CONNECTION_AT_STOP = """
import asyncio, sys
from flows.deployments import _quietly_cancelled

async def main():
    async def handle(reader, writer):
        await reader.read(1)      # as the runner's control channel waits on a flow run's process
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    client = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])  # noqa: F841 - kept open
    await asyncio.sleep(0.1)      # and the loop ends (SIGTERM) with the connection still open

asyncio.run(_quietly_cancelled(main()) if sys.argv[1] == "served" else main())
"""


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="CPython 3.12 checks task.cancelled() itself")
@pytest.mark.parametrize("how", ["plain", "served"])
def test_a_stop_with_a_flow_run_still_connected_prints_no_traceback(how):
    """`baocao up` stopped 0.5 s after a consolidate run ended printed "Exception in callback ... CancelledError"."""
    done = subprocess.run([sys.executable, "-c", _OPEN_CONNECTION_AT_STOP, how], cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=60)
    out = done.stdout + done.stderr  # Prefect's console handler prints the asyncio logger's record
    noisy = "Traceback" in out and "CancelledError" in out
    assert noisy == (how == "plain"), out[-2000:]  # plain asyncio shows the bug this guards against
