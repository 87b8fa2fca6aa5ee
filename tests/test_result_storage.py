"""Results a Retry reuses are kept where every worker reaches them (`result_storage`, flows/results.py).

The slow test is the situation of a work pool with several machines: the first run of `open-period`
runs on worker A and fails (one unit's address is refused); worker A is gone, and the operator's
Retry runs on worker B, which has another home and another local result storage. With
`BAOCAO_RESULT_STORAGE` pointing at a directory both reach, the Retry takes the prepared batches from
the cache ("Cached" in the UI); without it the batches are silently built again, as before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import httpx
import pytest
from prefect.filesystems import LocalFileSystem

from baocao.rules.config import PROJECT_DIR, ConfigError, load_settings
from flows.results import shared, storage
from tests.support.app import app_env
from tests.support.processes import Processes, base_env, httpx_alive, processes, wait_for
from tests.support.servers import SmtpServer, free_port

SETTINGS = PROJECT_DIR / "config" / "settings.toml"


# ----------------------------------------------------------------------------- the setting
def test_empty_setting_keeps_prefects_default():
    assert storage(load_settings(SETTINGS, env={"BAOCAO_RESULT_STORAGE": ""})) is None


def test_a_path_becomes_a_local_file_system_and_relative_paths_start_at_the_project(tmp_path):
    from prefect.results import resolve_result_storage

    absolute = storage(load_settings(SETTINGS, env={"BAOCAO_RESULT_STORAGE": str(tmp_path / "r")}))
    assert absolute == tmp_path / "r"
    relative = storage(load_settings(SETTINGS, env={"BAOCAO_RESULT_STORAGE": "var/results"}))
    assert relative == PROJECT_DIR / "var" / "results"
    # What Prefect makes of it when the task runs.
    resolved = resolve_result_storage(absolute, _sync=True)
    assert isinstance(resolved, LocalFileSystem) and resolved.basepath == str(tmp_path / "r")


def test_a_block_is_named_by_its_slug():
    settings = load_settings(SETTINGS, env={"BAOCAO_RESULT_STORAGE": "block:s3-bucket/baocao-results"})
    assert storage(settings) == "s3-bucket/baocao-results"


@pytest.mark.parametrize("value", ["block:", "block:s3-bucket", "block:s3-bucket/a/b", "block:/name"])
def test_a_malformed_block_name_says_how_to_write_it(value):
    with pytest.raises(ConfigError) as err:
        storage(load_settings(SETTINGS, env={"BAOCAO_RESULT_STORAGE": value}))
    assert err.value.key == "result_storage" and "block:<block-type>/<block-name>" in str(err.value)


def test_the_tasks_a_retry_reuses_get_the_storage_and_keep_persisting(tmp_path):
    from flows.open_period import prepare_batch, record_cycle

    settings = load_settings(SETTINGS, env={"BAOCAO_RESULT_STORAGE": str(tmp_path)})
    for task in (record_cycle, prepare_batch):
        configured = shared(task, settings)
        assert configured.result_storage == tmp_path
        assert configured.persist_result is True and configured.name == task.name
    assert shared(prepare_batch, load_settings(SETTINGS, env={})) is prepare_batch


# ----------------------------------------------------------------------------- a Retry on another worker
POOL = "results-pool"
DEPLOYMENT = "open-period/retry-elsewhere"
VICTIM = "X11074-KT"


def _final(api: str, run_id: str, timeout: float, diagnose) -> dict[str, Any]:  # noqa: ANN001
    def check() -> dict[str, Any] | None:
        run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
        return run if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    return wait_for(f"flow run {run_id} to finish", check, timeout, diagnose=diagnose)


def _prepare_states(api: str, run_id: str) -> list[str]:
    """The state names of the run's `prepare-requests` task runs, both attempts."""
    body = {"flow_runs": {"id": {"any_": [run_id]}}, "limit": 200}
    task_runs = httpx.post(f"{api}/task_runs/filter", json=body, timeout=10).json()
    return sorted(t["state"]["name"] for t in task_runs if t["task_key"].startswith("prepare_batch"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A `prefect server start` on SQLite, a process work pool and the `open-period` deployment."""
    root = tmp_path_factory.mktemp("prefect-server")
    env = base_env(root)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env["PREFECT_HOME"] = str(root / "server-home")
    with processes(root, env) as procs:
        proc = procs.start("server", "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port))
        wait_for("the server", lambda: httpx_alive(api) or proc.poll() is not None, 180,
                 diagnose=lambda: procs.log("server")[-3000:])
        env["PREFECT_API_URL"] = api
        for args in (("-m", "prefect", "work-pool", "create", POOL, "--type", "process"),
                     ("-c", "import asyncio; from flows.deployments import deploy_one; "
                            f"asyncio.run(deploy_one('open-period', 'retry-elsewhere', '{POOL}'))")):
            done = procs.run(*args, timeout=300)
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        yield api, procs


def _start_worker(procs: Processes, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return procs.start(name, "-m", "prefect", "worker", "start", "--pool", POOL, "--name", name, env=env)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(60)


@pytest.mark.slow
@pytest.mark.parametrize("shared_storage", [True, False], ids=["shared-storage", "local-storage"])
def test_a_retry_on_another_worker_reuses_the_batches_only_with_shared_storage(server, tmp_path, cfg,
                                                                            shared_storage):
    api, procs = server
    results = tmp_path / "shared-results"
    victim = cfg.hierarchy[VICTIM].coordinator_emails[0]
    with SmtpServer() as smtp:
        env = base_env(tmp_path) | app_env(f"sqlite:///{tmp_path / 'app.db'}", smtp.port, None, tmp_path)
        env |= {"PREFECT_API_URL": api, "PREFECT_WORKER_QUERY_SECONDS": "1"}
        if shared_storage:
            env["BAOCAO_RESULT_STORAGE"] = str(results)
        init = subprocess.run([sys.executable, "-m", "flows.cli", "init"], env=env, cwd=PROJECT_DIR,
                              capture_output=True, text=True, timeout=300)
        assert init.returncode == 0, init.stderr

        def machine(name: str) -> dict[str, str]:
            home = tmp_path / name
            (home / ".prefect").mkdir(parents=True, exist_ok=True)
            return env | {"HOME": str(home), "PREFECT_HOME": str(home / ".prefect"),
                          "PREFECT_LOCAL_STORAGE_PATH": str(home / ".prefect" / "storage")}

        def diagnose() -> str:
            return "\n".join(procs.log(n)[-3000:] for n in procs.procs if n.startswith(tmp_path.name))

        # The first run, on worker A: one unit's address is refused, so the run fails.
        smtp.reject_rcpt(victim)
        worker_a = _start_worker(procs, f"{tmp_path.name}-a", machine("a"))
        created = httpx.get(f"{api}/deployments/name/{DEPLOYMENT}", timeout=10)
        created.raise_for_status()
        run_id = httpx.post(f"{api}/deployments/{created.json()['id']}/create_flow_run", timeout=10,
                            json={"parameters": {"period": "2026-H1", "plan": "tu-ky"}}).json()["id"]
        try:
            first = _final(api, run_id, 300, diagnose)
        finally:
            _stop(worker_a)
        assert first["state_type"] == "FAILED", diagnose()
        assert VICTIM in (first["state"]["message"] or "")
        batches = len(_prepare_states(api, run_id))
        assert batches >= 2 and _prepare_states(api, run_id) == ["Completed"] * batches

        # The operator fixes the address and presses Retry; only worker B is there to run it.
        smtp.reset_faults()
        before = len(smtp.messages)
        worker_b = _start_worker(procs, f"{tmp_path.name}-b", machine("b"))
        try:
            httpx.post(f"{api}/flow_runs/{run_id}/set_state", timeout=10, json={
                "state": {"type": "SCHEDULED", "name": "AwaitingRetry"}, "force": True}).raise_for_status()
            wait_for("the retry to start", lambda: httpx.get(f"{api}/flow_runs/{run_id}", timeout=10)
                     .json()["run_count"] >= 2, 300, diagnose=diagnose)
            retried = _final(api, run_id, 300, diagnose)
        finally:
            _stop(worker_b)  # the next case's runs are for its own workers
        assert retried["state_type"] == "COMPLETED", diagnose()
        assert [r for m in smtp.messages[before:] for r in m.rcpt_tos] == [victim]

    states = _prepare_states(api, run_id)
    if shared_storage:
        # Worker B found every batch worker A had prepared: none was built again.
        assert states == sorted(["Completed"] * batches + ["Cached"] * batches), states
        assert any(p.is_file() for p in results.iterdir())
        assert not (tmp_path / "a" / ".prefect" / "storage").exists()  # nothing was left on worker A alone
    else:
        # Today's behaviour without the setting: worker B cannot see A's results and redoes every batch.
        assert states == ["Completed"] * (2 * batches), states
        assert any((tmp_path / "a" / ".prefect" / "storage").iterdir())
