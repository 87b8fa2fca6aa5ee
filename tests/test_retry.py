"""Retry as the Prefect UI does: a served deployment's failed run set to AwaitingRetry redoes only the failed unit.

The UI's Retry button forces the flow run's state to AwaitingRetry (a Scheduled state); the
process serving the deployment picks it up and runs the flow again under the same flow run id.
Batches that completed come from Prefect's result cache; messages already sent are skipped by
the outbox; so only the unit whose SMTP recipient was refused is sent again.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from uuid import UUID

import pytest

import flows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


async def _wait_final(client, flow_run_id: UUID, timeout: float = 180.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = await client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run
        await asyncio.sleep(0.5)
    raise TimeoutError(f"flow run {flow_run_id} did not finish")


def test_ui_retry_of_a_failed_flow_run_redoes_only_the_failed_unit(app, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort
    from prefect.deployments import run_deployment
    from prefect.runner import Runner
    from prefect.states import AwaitingRetry

    from flows.deployments import runner_deployment

    victim = app.cfg.hierarchy["X11074-KT"]
    address = victim.coordinator_emails[0]
    app.smtp.reject_rcpt(address)

    runner = Runner(name="retry-test", query_seconds=1, prefetch_seconds=1, pause_on_shutdown=False)
    deployment = runner_deployment("open-period", name="retry-test", parameters={"period": "2026-H1", "plan": "tu-ky"})
    assert deployment.entrypoint == "flows.open_period.open_period"
    runner.add_deployment(deployment)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(runner.start()), daemon=True)
    thread.start()
    try:
        first = run_deployment("open-period/retry-test", timeout=180, poll_interval=1)
        assert first.state is not None and first.state.is_failed(), first.state
        assert "X11074-KT" in (first.state.message or "")
        delivered = [r for m in app.smtp.messages for r in m.rcpt_tos]
        assert address not in delivered and len(delivered) == 4

        app.smtp.reset_faults()  # the operator fixed the address (here: the server accepts it now)
        before = len(app.smtp.messages)

        async def retry() -> object:
            async with get_client() as client:
                await client.set_flow_run_state(first.id, AwaitingRetry(), force=True)
                run = await _wait_final(client, first.id)
                tasks = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[first.id])), limit=200,
                    sort=TaskRunSort.EXPECTED_START_TIME_ASC)
                return run, tasks

        run, task_runs = asyncio.run(retry())
        assert run.state.is_completed(), run.state
        new = app.smtp.messages[before:]
        assert [r for m in new for r in m.rcpt_tos] == [address]  # only that unit was redone
        # The batches that had completed came from the cache on the retry; none was rebuilt.
        prepare_states = [t.state.name for t in task_runs if t.name.startswith("prepare requests")]
        assert prepare_states and "Cached" in prepare_states
    finally:
        asyncio.run_coroutine_threadsafe(runner.astop(), loop).result(timeout=30)
        thread.join(timeout=30)
    # The runner loaded the flow by its module: flows/ did not join sys.path (see flows/deployments.py).
    assert str(Path(flows.__file__).parent) not in sys.path
