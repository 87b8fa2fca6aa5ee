"""The `consolidate` flow: each level's report when its time comes, sent up the chain.

The figures of the whole tree are computed in one pass (fast, pure pandas); then every
consolidator that is due renders its report and writes its message, one task per unit (a national
cycle has 39). With many reports due, the tasks run at once and render in a process pool
(:mod:`baocao.consolidation.renderpool`): a report is CPU-bound, so that is what uses every core. A report needs
only the figures, not its children's reports, so the costliest start first (the ministry's, whose
appendix lists every unit's words, takes several times a province's; started last, it ran alone
on one core). The reports are sent a level at a time, deepest first, whatever order they were made
in. A unit that fails is named and the run ends Failed; its Retry redoes only what is missing
(reports already made are not made again).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pendulum
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from baocao import runtime
from baocao.consolidation import steps
from baocao.consolidation.aggregate import Figures
from baocao.consolidation.renderpool import REPORT_THREADS, RenderPool
from baocao.consolidation.reporting import costliest_first, make_report
from baocao.store.queries import CycleInfo, find_cycle, open_cycles
from flows import dashboards, runnames
from flows.failures import failed_state
from flows.limits import smtp_limited


@task(name="make-report", cache_policy=NO_CACHE, retries=1, task_run_name="report {unit}")
def report_unit(cycle: CycleInfo, unit: str, as_of: datetime, figures: dict[str, Figures],
                correction: bool = False, pool: RenderPool | None = None) -> int:
    """Make `unit`'s report; `pool` (passed quoted: the task is not cached, so it is never hashed) is the
    run's render processes, shared by the report tasks' threads."""
    cfg = runtime.config()
    db = runtime.database(cfg)
    logger = get_run_logger()
    report_id = make_report(db, cfg, cycle, unit, figures, as_of, correction=correction, pool=pool)
    logger.info("report %s of %s (%s) written", report_id, unit, cfg.hierarchy[unit].name)
    # The report and its message are committed: from here on nothing may fail the task, or its retry
    # would make the report a second time. The headline artifact is a view; a failure is only logged.
    try:
        dashboards.publish_headline(unit, cycle.period, cycle.plan, figures[unit].to_dict())
    except Exception as exc:  # noqa: BLE001 - a dashboard must not cost a duplicate report
        logger.warning("headline artifact of %s not published: %s", unit, exc)
    return report_id


@task(name="send-reports", cache_policy=NO_CACHE, task_run_name="send reports {cycle.period} {cycle.plan}")
def send_reports(cycle: CycleInfo) -> dict[str, Any]:
    """Send the reports waiting in the outbox, deepest level first, one level at a time."""
    cfg = runtime.config()
    delivery = steps.send_reports(runtime.database(cfg), cfg, cycle)
    for unit, reason in delivery.units_failed.items():
        get_run_logger().error("unit %s (%s): report not delivered: %s", unit, cfg.hierarchy[unit].name, reason)
    return {"sent": len(delivery.sent), "failed": delivery.units_failed}


def consolidate_cycle(cycle: CycleInfo, as_of: datetime, resend: str | None = None) -> dict[str, Any]:
    cfg = runtime.config()
    db = runtime.database(cfg)
    units, figures = steps.reports_due(db, cfg, cycle, as_of, resend)  # children before parents
    made, failed = [], {}
    pool = RenderPool.for_reports(len(units))
    if pool is None:
        states = [report_unit(cycle, unit, as_of, quote(figures), correction=resend is not None,
                              return_state=True) for unit in units]
    else:  # many reports: rendered at once in the pool's processes, the costliest first
        try:
            futures = {unit: report_unit.submit(cycle, unit, as_of, quote(figures),
                                                correction=resend is not None, pool=quote(pool))
                       for unit in costliest_first(cfg, units)}
            wait(list(futures.values()))
            states = [futures[unit].state for unit in units]
        finally:
            pool.close()
    for unit, state in zip(units, states, strict=True):
        if state.is_failed():
            failed[unit] = str(state.message)
        else:
            made.append(unit)
    sent = smtp_limited(send_reports)(cycle)
    failed.update(sent["failed"])
    return {"reports": made, "sent": sent["sent"], "failed": failed}


@flow(name="consolidate", task_runner=ThreadPoolTaskRunner(max_workers=REPORT_THREADS),
      flow_run_name=runnames.namer("consolidate", runnames.consolidate_name))
def consolidate(period: str | None = None, plan: str | None = None, root: str | None = None,
                as_of: datetime | None = None, resend: str | None = None) -> dict[str, Any] | State[Any]:
    """Consolidate every open cycle (or the one named) whose units are due; `resend` makes a correction."""
    cfg = runtime.config()
    db = runtime.database(cfg)
    as_of = as_of or pendulum.now(cfg.calendar.settings.timezone)
    if period:
        info = find_cycle(db, period, plan, root)
        if info is None:
            raise ValueError(f"no cycle for {period} {plan or ''} {root or ''}")
        cycles = [info]
    else:
        cycles = open_cycles(db)
    results, rows = {}, []
    for info in cycles:
        res = consolidate_cycle(info, as_of, resend)
        results[f"{info.period}/{info.plan}/{info.root}"] = res
        rows += [{"cycle": f"{info.period} {info.plan} {info.root}", "unit": u, "name": cfg.hierarchy[u].name,
                  "result": "report written"} for u in res["reports"]]
        rows += [{"cycle": f"{info.period} {info.plan} {info.root}", "unit": u, "name": cfg.hierarchy[u].name,
                  "result": f"FAILED: {r}"} for u, r in res["failed"].items()]
    create_table_artifact(key="consolidate-runs", table=rows or [{"cycle": "", "unit": "", "name": "",
                                                                  "result": "nothing due"}],
                          description=f"Báo cáo tổng hợp lập ngày {cfg.calendar.local_date(as_of):%d/%m/%Y}")
    failed = {u: r for res in results.values() for u, r in res["failed"].items()}
    if failed:  # each unit was logged once by its task; the table has every reason
        return failed_state(failed, cfg.hierarchy, "chưa có báo cáo tổng hợp được gửi", "consolidate-runs",
                            f"consolidate {cfg.calendar.local_date(as_of):%d/%m/%Y}")
    return results
