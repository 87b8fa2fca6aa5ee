"""What an operator does in the Prefect UI: the retry-unit deployment's flow, and the dashboard artifacts."""

from __future__ import annotations

import asyncio
import warnings

import pytest

from flows.open_period import UnitsFailed, open_period
from flows.retry_unit import retry_unit

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_retry_unit_dispatch_sends_only_that_units_request(app):
    victim = app.cfg.hierarchy["X11074-TTHCC"]
    app.smtp.reject_rcpt(victim.coordinator_emails[0])
    with pytest.raises(UnitsFailed):
        open_period(period="2026-H1", plan="tu-ky")
    app.smtp.reset_faults()
    before = len(app.smtp.messages)
    result = retry_unit(unit="X11074-TTHCC", period="2026-H1", step="dispatch", plan="tu-ky")
    assert result["sent"] == 1
    assert [r for m in app.smtp.messages[before:] for r in m.rcpt_tos] == [victim.coordinator_emails[0]]
    again = retry_unit(unit="X11074-TTHCC", period="2026-H1", step="dispatch", plan="tu-ky")
    assert again["sent"] == 0 and len(app.smtp.messages) == before + 1  # nothing twice


def test_retry_unit_refuses_an_unknown_unit(app):
    open_period(period="2026-H1", plan="tu-ky")
    with pytest.raises(ValueError, match="no unit"):
        retry_unit(unit="X99999", period="2026-H1", step="dispatch")


def test_collect_publishes_the_cycle_dashboards(app):
    from prefect.client.orchestration import get_client

    from flows.collect import collect

    open_period(period="2026-H1", plan="tu-ky")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # "artifact created outside of a flow or task run"
        state = collect(return_state=True)
    run_id = str(state.state_details.flow_run_id)

    async def read(key: str) -> list[dict]:
        # The client's read_artifacts sends null filters that this server version refuses (422), and
        # empty ones join on task runs (flow-level artifacts have none): ask the REST API directly.
        async with get_client() as client:
            response = await client._client.post("/artifacts/filter", json={  # noqa: SLF001
                "artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 10, "offset": 0})
            response.raise_for_status()
            return response.json()

    tables = asyncio.run(read("status-2026-h1-tu-ky-x11074"))
    assert tables and tables[0]["type"] == "table"
    assert "X11074-VHXH" in str(tables[0]["data"])
    progress = asyncio.run(read("completeness-2026-h1-tu-ky-x11074"))
    assert progress and progress[0]["type"] == "progress" and float(progress[0]["data"]) == 0.0
    assert tables[0]["flow_run_id"] == progress[0]["flow_run_id"] == run_id  # in the run's Artifacts tab
