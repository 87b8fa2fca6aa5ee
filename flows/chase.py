"""The `chase` flow: every open cycle's reminders, overdue notices and escalations for the day."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pendulum
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from baocao import runtime
from baocao.chasing.reminders import chase_cycle
from baocao.chasing.steps import send_notices
from baocao.store.queries import CycleInfo, open_cycles
from flows import dashboards, runnames
from flows.failures import failed_state
from flows.limits import smtp_limited


@task(name="chase-cycle", cache_policy=NO_CACHE, task_run_name="chase {cycle.period} {cycle.plan} {cycle.root}")
def chase_one(cycle: CycleInfo, as_of: datetime) -> list[dict[str, Any]]:
    cfg = runtime.config()
    actions = chase_cycle(runtime.database(cfg), cfg, cycle, as_of)
    logger = get_run_logger()
    for a in actions:
        logger.info("%s %s -> %s%s", a.stage, a.unit, ", ".join(a.recipients),
                    f" (children: {', '.join(a.units)})" if a.units else "")
    return [{"stage": a.stage, "unit": a.unit, "name": cfg.hierarchy[a.unit].name,
             "recipients": ", ".join(a.recipients + a.cc), "children": ", ".join(a.units)} for a in actions]


@task(name="send-chase", cache_policy=NO_CACHE, task_run_name="send reminders and notices")
def send_chase() -> dict[str, Any]:
    cfg = runtime.config()
    delivery = send_notices(runtime.database(cfg), cfg)
    for unit, reason in delivery.units_failed.items():
        get_run_logger().error("unit %s (%s): chase message not sent: %s", unit, cfg.hierarchy[unit].name, reason)
    return {"sent": len(delivery.sent), "failed": delivery.units_failed}


@flow(name="chase", flow_run_name=runnames.namer("chase", runnames.chase_name))
def chase(as_of: datetime | None = None) -> dict[str, Any] | State[Any]:
    """Send what the reminder policy owes today for every open cycle, each message once."""
    cfg = runtime.config()
    as_of = as_of or pendulum.now(cfg.calendar.settings.timezone)
    rows: list[dict[str, Any]] = []
    for info in open_cycles(runtime.database(cfg)):
        rows += chase_one(info, as_of)
    sent = smtp_limited(send_chase)()
    create_table_artifact(key="chase-actions", table=rows or [{"stage": "", "unit": "", "name": "nothing owed today",
                                                               "recipients": "", "children": ""}],
                          description=f"Chase actions on {cfg.calendar.local_date(as_of):%d/%m/%Y}")
    dashboards.publish_progress(as_of)
    if sent["failed"]:  # each unit was logged once by send-chase; the table lists them with the server's reply
        create_table_artifact(key="chase-failures", table=[
            {"unit": u, "name": cfg.hierarchy[u].name, "problem": r} for u, r in sorted(sent["failed"].items())],
            description=f"Đơn vị chưa nhận được thư nhắc, thông báo ngày {cfg.calendar.local_date(as_of):%d/%m/%Y}")
        return failed_state(sent["failed"], cfg.hierarchy, "chưa nhận được thư nhắc, thông báo", "chase-failures",
                            f"chase {cfg.calendar.local_date(as_of):%d/%m/%Y}")
    return {"actions": len(rows), "sent": sent["sent"]}
