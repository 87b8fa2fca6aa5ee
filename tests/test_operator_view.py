"""What an operator sees of a failing cycle in the Prefect UI, read back through the real Prefect API:
run and task names, a short state message without a traceback, the status and completeness
artifacts, and the retry-unit deployment's run form (its parameter schema)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pendulum
import pytest
from prefect.client.orchestration import get_client

from flows.dashboards import STATE_VI
from flows.failures import MESSAGE_LIMIT, failure_message
from flows.open_period import UnitsFailed, open_period
from flows.runnames import collect_name, consolidate_name, open_period_name, retry_unit_name

REFUSED = ("X11074-VP", "X11074-KT", "X11074-TTHCC")
MORNING = pendulum.datetime(2026, 5, 19, 1, 30, tz="UTC")  # 08:30 in Hà Nội


def api(path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a REST filter: prefect 3.8's read_task_runs/read_artifacts send null sort/limit (refused)."""
    with get_client(sync_client=True) as client:
        response = client.request("POST", path, json={"limit": 200, "offset": 0} | body)
        response.raise_for_status()
        return response.json()


def run_logs(flow_run_id: str) -> list[dict[str, Any]]:
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    return api("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC"})


def artifact(key: str, flow_run_id: str) -> dict[str, Any]:
    (found,) = api("/artifacts/filter", {"artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [flow_run_id]}},
                                         "sort": "CREATED_DESC"})
    return found


# ------------------------------------------------------------------------------------ plain functions
def test_run_names_say_what_and_when_in_local_time(cfg):
    assert open_period_name(cfg, {"period": "H1", "plan": "tu-ky", "as_of": MORNING}) == "open 2026-H1 tu-ky X11074"
    assert open_period_name(cfg, {"period": "2026-H1", "plan": "tu-ky", "subtree": "X11074-VP"}) \
        == "open 2026-H1 tu-ky X11074-VP"
    assert collect_name(cfg, {"as_of": MORNING.isoformat()}) == "collect 19/05 08:30"
    assert collect_name(cfg, {"as_of": None, "folder": False}, now=MORNING) == "collect 19/05 08:30 mailbox only"
    assert consolidate_name(cfg, {"period": "2026-H1", "plan": "tu-ky", "as_of": MORNING, "resend": "X11074"}) \
        == "consolidate 2026-H1 tu-ky 19/05 08:30 correction X11074"
    assert retry_unit_name(cfg, {"unit": "X11074-VP", "step": "dispatch", "period": "2026-H1"}) \
        == "retry-unit X11074-VP dispatch 2026-H1"


def test_a_failure_message_counts_names_the_first_few_and_points_to_the_artifact(cfg):
    h = cfg.hierarchy
    many = {u.code: "550 5.1.1 No such user" for u in h.walk()}  # the whole country
    key = "open-2026-h1-national-t31-failures"
    message = failure_message(many, h, "chưa nhận được yêu cầu", key)
    assert len(message) <= MESSAGE_LIMIT
    assert message.startswith(f"{len(many)} đơn vị chưa nhận được yêu cầu: {h[h.root_code].name} ({h.root_code})")
    assert f"và {len(many) - 3} đơn vị khác" in message and f"«{key}»" in message
    one = failure_message({"X11074-KT": "550"}, h, "chưa nhận được yêu cầu", "k")
    assert one == f"1 đơn vị chưa nhận được yêu cầu: {h['X11074-KT'].name} (X11074-KT). Chi tiết: artifact «k»."


# ------------------------------------------------------------------------------------ through Prefect
@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_failing_opening_as_the_operator_sees_it(app):
    from flows.collect import collect

    h = app.cfg.hierarchy
    for code in REFUSED:
        app.smtp.reject_rcpt(h[code].coordinator_emails[0])
    state = open_period(period="H1", plan="tu-ky", as_of=MORNING, return_state=True)
    run_id = str(state.state_details.flow_run_id)
    (run,) = api("/flow_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}, "sort": "ID_DESC"})

    assert run["name"] == "open 2026-H1 tu-ky X11074"
    assert run["state"]["type"] == "FAILED"
    message = run["state"]["message"]
    assert len(message) <= MESSAGE_LIMIT and message.startswith("3 đơn vị chưa nhận được yêu cầu: ")
    assert all(f"{h[code].name} ({code})" in message for code in REFUSED)
    assert "open-2026-h1-tu-ky-x11074-failures" in message
    with pytest.raises(UnitsFailed) as raised:  # the caller still gets every unit and its reason
        state.result()
    assert set(raised.value.failed) == set(REFUSED)

    logs = run_logs(run_id)
    assert not [lg for lg in logs if "Traceback" in lg["message"]]  # a refused address is not a bug
    for code in REFUSED:  # each unit's reply once, not per log line of every level
        assert len([lg for lg in logs if code in lg["message"] and "550" in lg["message"]]) == 1, code
    tasks = api("/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}, "sort": "EXPECTED_START_TIME_ASC"})
    assert sorted(t["name"] for t in tasks) == ["prepare requests X11074", "prepare requests X11074-VHXH +3",
                                               "record the cycle 2026-H1 tu-ky", "send requests (5 units)"]

    collected = collect(as_of=MORNING, return_state=True)
    collect_id = str(collected.state_details.flow_run_id)
    (run,) = api("/flow_runs/filter", {"flow_runs": {"id": {"any_": [collect_id]}}, "sort": "ID_DESC"})
    assert run["name"] == "collect 19/05 08:30"
    status = artifact("status-2026-h1-tu-ky-x11074", collect_id)
    rows = status["data"] if isinstance(status["data"], list) else __import__("json").loads(status["data"])
    for row in rows:  # the server's refusal beside each unit not reached
        assert ("550" in row["reason"]) == (row["unit"] in REFUSED), row
    header = status["description"].split(": ", 1)[1]
    total, parts = re.fullmatch(r"(\d+) đơn vị trực thuộc: (.*)", header).groups()
    assert int(total) == len(rows)
    shown = {label: int(n) for n, label in re.findall(r"(\d+) ([^,]+)", parts)}
    assert shown == {STATE_VI[s]: n for s, n in Counter(r["state"] for r in rows).items()}
    progress = artifact("completeness-2026-h1-tu-ky-x11074", collect_id)
    assert "0/4 đơn vị đã nộp" in progress["description"]
    table = artifact("completeness-2026-h1-tu-ky", collect_id)
    data = table["data"] if isinstance(table["data"], list) else __import__("json").loads(table["data"])
    assert [(r["unit"], r["expected"], r["received"], r["accepted"]) for r in data] == [("X11074", 4, 0, 0)]


@pytest.mark.usefixtures("prefect_api")
def test_the_retry_unit_form_explains_each_field_with_plain_types(app):
    from flows.retry_unit import retry_unit

    deployment_id = retry_unit.to_deployment(name="retry-unit-form").apply()
    with get_client(sync_client=True) as client:
        schema = client.read_deployment(deployment_id).parameter_openapi_schema
        properties = schema["properties"]
        assert set(properties) == {"unit", "period", "step", "plan"}
        for name, prop in properties.items():  # no anyOf with a "null" branch: the UI's 'Property is type "None"'
            assert prop.get("type") == "string" and "anyOf" not in prop and prop.get("default", "") is not None, name
            assert prop.get("description"), name
        assert "X10714" in properties["unit"]["description"]
        assert "2026-H1" in properties["period"]["description"]
        assert properties["step"]["enum"] == ["dispatch", "collect", "consolidate", "send-report"]
        run = client.create_flow_run_from_deployment(  # the form's values as the UI submits them
            deployment_id, parameters={"unit": "X10714", "period": "2026-H1", "step": "dispatch", "plan": ""})
        assert run.name == "retry-unit X10714 dispatch 2026-H1" or run.parameters["unit"] == "X10714"
