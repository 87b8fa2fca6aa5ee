"""The `open-period` flow: record the cycle and send every unit its request, top-down.

Units are handled in batches (one per subtree under the cycle's root) so that a national
cycle of 3,356 units costs a few dozen task runs, not thousands. A unit that fails is named in
the logs, in the run's table artifact and in the flow's final error; the flow run then ends
Failed, and its Retry (or running the flow again) sends only what is still missing: batches
that completed come from Prefect's result cache, messages already sent are skipped by the outbox.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pendulum
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from baocao import runtime
from baocao.machine import cores
from baocao.opening import dispatch
from baocao.opening import steps as opening
from baocao.opening.forms import FormBuilder
from baocao.rules.periods import Period
from baocao.store.queries import CycleInfo, open_cycle
from flows import results, runnames
from flows.failures import UnitsFailed, failed_state
from flows.limits import smtp_limited
from flows.schedules import resolve_period

_builders: dict[int, FormBuilder] = {}
_builders_lock = threading.Lock()


def _builder(plan: str) -> FormBuilder:
    """The process's form builder for the plan's catalogue (its wording, e.g. Tứ Kỳ's meeting limits),
    made once: the batches' tasks start together in six threads, and each made its own (0.7 s apiece,
    fighting for the GIL) before."""
    catalog = runtime.config().catalog_for(plan)
    key = id(catalog)
    with _builders_lock:
        if key not in _builders:
            _builders[key] = FormBuilder(catalog)
        return _builders[key]


@task(name="record-cycle", persist_result=True, task_run_name="record the cycle {period} {plan}")
def record_cycle(period: str, plan: str, root: str | None) -> dict[str, Any]:
    cfg = runtime.config()
    info = open_cycle(runtime.database(cfg), cfg, Period.parse(period), plan, root)
    get_run_logger().info("cycle %s: %s under plan %s from %s", info.id, info.period, info.plan, info.root)
    return info.as_dict()  # a persisted result stays a plain value (a later code version loads it)


@task(name="prepare-requests", persist_result=True, retries=1, retry_delay_seconds=2,
      task_run_name="prepare requests {label}")
def prepare_batch(cycle: CycleInfo, units: list[str], label: str) -> dict[str, Any]:
    """Build the forms and write the request messages of one subtree; fail naming the units that failed."""
    cfg = runtime.config()
    result = dispatch.prepare_requests(runtime.database(cfg), cfg, cycle, units, _builder(cycle.plan))
    logger = get_run_logger()
    for unit, reason in result.failed.items():
        logger.error("unit %s (%s): %s", unit, cfg.hierarchy[unit].name, reason)
    if result.failed:
        raise UnitsFailed(result.failed, label)
    return {"written": len(result.written), "already": len(result.already)}


@task(name="send-requests", cache_policy=NO_CACHE, task_run_name=runnames.for_units("send requests"))
def send_requests(cycle: CycleInfo, units: list[str]) -> dict[str, Any]:
    """Send the requests of these units still pending or failed, higher levels first."""
    cfg = runtime.config()
    delivery = opening.send_requests(runtime.database(cfg), cfg, cycle, units)
    logger = get_run_logger()
    for unit, reason in sorted(delivery.units_failed.items()):
        logger.error("unit %s (%s): request not delivered: %s", unit, cfg.hierarchy[unit].name, reason)
    return {"sent": len(delivery.sent), "failed": delivery.units_failed}


def _run_subtree(deployment: str, parameters: dict[str, Any]) -> Any:
    from prefect.deployments import run_deployment

    return run_deployment(deployment, parameters=parameters, timeout=None, poll_interval=2)


PREPARE_THREADS = cores()
"""Batches prepared at once. Building forms holds the GIL, so threads beyond the cores only contend:
Prefect's default, a thread per task, took 2.2 s for the national cycle's 25 batches where two
threads took 1.6 s and the same calls one after another 1.3 s."""


@flow(name="open-period", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=PREPARE_THREADS),
      flow_run_name=runnames.namer("open-period", runnames.open_period_name))
def open_period(period: str, plan: str = "national", root: str | None = None,
                as_of: datetime | None = None, subtree: str | None = None,
                fan_out: str | None = None) -> dict[str, Any] | State[Any]:
    """Open `period` under `plan` for `root`'s subtree and email every unit its request and form.

    `period` is a code (`2026-H1`) or a bare kind (`H1`: that kind of the year of `as_of`, which
    is what the schedules pass). `as_of` defaults to now.
    `subtree` limits the run to one child's part of the cycle (a province of the national cycle).
    `fan_out` names a deployment of this flow (`open-period/open-subtree`): the root's own request
    is sent here and each child subtree becomes its own flow run, which the work pool's workers
    pick up in parallel (scale-out on Prefect's own machinery).
    """
    cfg = runtime.config()
    logger = get_run_logger()
    period = resolve_period(period, as_of or pendulum.now(cfg.calendar.settings.timezone), cfg).code
    cycle = CycleInfo.from_dict(results.shared(record_cycle, cfg.settings)(period, plan, root))
    logger.info("running in process %s (parent %s)", os.getpid(), os.getppid())
    top = subtree or cycle.root
    if subtree and subtree not in cfg.hierarchy.subtree_codes(cycle.root):
        raise ValueError(f"{subtree} is not in the cycle's tree ({cycle.root})")
    batches = [[top]] if fan_out else dispatch.cascade_batches(cfg, top)
    prepare = results.shared(prepare_batch, cfg.settings)  # a Retry on another worker finds its batches
    futures = [prepare.submit(cycle, units, f"{units[0]}" + (f" +{len(units) - 1}" if len(units) > 1 else "")) for units in batches]
    wait(futures)
    failed: dict[str, str] = {}
    for units, future in zip(batches, futures, strict=True):
        if future.state.is_failed():
            exc = future.state.result(raise_on_failure=False)
            failed.update(exc.failed if isinstance(exc, UnitsFailed) else {units[0]: str(exc)})
    sent = smtp_limited(send_requests)(cycle, [top] if fan_out else [u for b in batches for u in b])
    failed.update(sent["failed"])
    children_runs: dict[str, str] = {}
    if fan_out:
        params = {"period": period, "plan": plan, "root": cycle.root, "as_of": as_of}
        children = [c.code for c in cfg.hierarchy.children(top)]
        with ThreadPoolExecutor(max_workers=min(16, len(children) or 1)) as pool:
            runs = dict(zip(children, pool.map(lambda c: _run_subtree(fan_out, params | {"subtree": c}), children),
                            strict=True))
        for child, run in runs.items():
            children_runs[child] = str(run.id)
            if run.state is None or not run.state.is_completed():
                failed[child] = f"flow run {run.name} ended {run.state.name if run.state else '?'}: " \
                                f"{run.state.message if run.state else ''}"
    rows = [{"unit": u, "name": cfg.hierarchy[u].name, "problem": r} for u, r in sorted(failed.items())]
    failures_key = f"open-{period.lower()}-{plan}-{top.lower()}-failures"
    create_table_artifact(
        key=failures_key,
        table=rows or [{"unit": "", "name": "", "problem": "none"}],
        description=f"Đơn vị chưa nhận được yêu cầu báo cáo kỳ {period} ({plan}, {cfg.hierarchy[top].name}) "
                    f"trong lần chạy này",
    )
    summary = {"cycle": cycle.id, "batches": len(batches), "sent": sent["sent"], "failed": failed,
               "pid": os.getpid(), "children_runs": children_runs}
    if failed:
        # Each unit's reason is logged once by the task that met it and listed in the artifact.
        return failed_state(failed, cfg.hierarchy, "chưa nhận được yêu cầu", failures_key,
                            f"open-period {period} {plan} {top}")
    logger.info("period %s opened for %s: %d messages sent", period, top, sent["sent"])
    return summary
