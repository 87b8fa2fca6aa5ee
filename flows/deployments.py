"""Deployments of the flows with their schedules: served in one process, or applied to a work pool.

`baocao serve` (and `baocao up`, which also starts what serve needs) runs every deployment in this
process. `baocao deploy --pool NAME` registers them with a Prefect server for workers of a process
work pool (production: Prefect server on PostgreSQL, several workers). Global concurrency limits
keep a large cycle from flooding the SMTP server: `prefect concurrency-limit create smtp N` limits
every task that sends mail (they carry the `smtp` tag when such a limit exists: flows/limits.py).

A deployment names its flow by module (`flows.collect.collect`), not by file (`flows/collect.py`):
loading a flow from its file puts `flows/` on the run's `sys.path`, where our modules would stand in
for the standard library's in every process the run starts, and imports each module twice.

Serving is checked, not assumed: a Prefect server whose scheduler does not run (as with SQLAlchemy
2.1 under Prefect 3.8.8: every scheduler pass failed in the server's log, and no scheduled run was
ever created) accepts the deployments and then does nothing. `check_scheduling` asks the server for
the runs it owes and says so in red when they are missing.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pendulum
from prefect.runner import Runner
from prefect.types.entrypoint import EntrypointType

from baocao.rules.config import PROJECT_DIR, Config
from flows.schedules import ScheduleSpec, prefect_schedules, specs

log = logging.getLogger("baocao.serve")

PAUSE_TIMEOUT = 5.0
"""Seconds the shutdown may spend pausing the schedules. Prefect's runner pauses every deployment on
the way out and its client retries a server that went away for minutes: `serve` hung at "Pausing all
deployments..." until killed. Past this the schedules stay as they are and the process exits."""

SCHEDULING_HORIZON = timedelta(hours=25)
"""Deployments whose next run falls within this are expected to have a scheduled run on the server
soon after they are applied (collect, chase, consolidate; an opening months ahead is created by the
server's scheduler only when it comes within its own horizon)."""


def flow_object(name: str) -> Any:
    from flows.chase import chase
    from flows.collect import collect
    from flows.consolidate import consolidate
    from flows.open_period import open_period
    from flows.retry_unit import retry_unit

    return {"open-period": open_period, "collect": collect, "chase": chase, "consolidate": consolidate,
            "retry-unit": retry_unit}[name]


def _deployment_kwargs(spec: ScheduleSpec, tz: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"name": spec.name, "description": spec.description, "tags": ["baocao"]}
    schedules = prefect_schedules(spec, tz)
    if schedules:
        kwargs["schedules"] = schedules
    if spec.parameters:
        kwargs["parameters"] = spec.parameters
    return kwargs


def runner_deployments(cfg: Config, now: datetime | None = None) -> list[Any]:
    """Every deployment, with its schedules as of `now`, to serve from this process."""
    tz = cfg.calendar.settings.timezone
    return [runner_deployment(spec.flow, **_deployment_kwargs(spec, tz)) for spec in specs(cfg, now)]


def runner_deployment(flow: str, **kwargs: Any) -> Any:
    """A deployment of the flow named `flow` (`collect`, ...) to serve from this process."""
    return flow_object(flow).to_deployment(entrypoint_type=EntrypointType.MODULE_PATH, **kwargs)


class BoundedRunner(Runner):
    """Prefect's runner, whose shutdown cannot hang on a server that went away first."""

    def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
        """Leave the event loop; the runner's own exit then stops its loops and pauses the schedules.

        Prefect's handler also calls `self.stop()` from the signal handler, which inside the running
        loop only creates a coroutine that is never awaited (a RuntimeWarning on every stop).
        """
        self._logger.info("SIGTERM received, shutting down")
        sys.exit(0)

    async def _pause_schedules(self) -> None:
        try:
            await asyncio.wait_for(super()._pause_schedules(), timeout=PAUSE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the server is gone or slow: leave the schedules as they are
            self._logger.warning("schedules not paused (the Prefect server did not answer within %.0f s: %s)",
                                 PAUSE_TIMEOUT, type(exc).__name__)


def serve(cfg: Config, now: datetime | None = None, *,
          on_started: Callable[[list[ScheduleSpec]], None] | None = None) -> None:
    """Serve every deployment from this process until interrupted (Ctrl-C or SIGTERM).

    `on_started` is called in a thread once the deployments are registered (`baocao up` prints what
    is scheduled next and checks that the server schedules them).
    """
    import threading

    from prefect.exceptions import TerminationSignal

    spec_list = specs(cfg, now)
    tz = cfg.calendar.settings.timezone
    runner = BoundedRunner(pause_on_shutdown=True)
    for spec in spec_list:
        runner.add_deployment(runner_deployment(spec.flow, **_deployment_kwargs(spec, tz)))
    if on_started is not None:
        threading.Thread(target=on_started, args=(spec_list,), name="baocao-started", daemon=True).start()
    try:
        asyncio.run(_quietly_cancelled(runner.start()))
    except (KeyboardInterrupt, TerminationSignal, SystemExit):
        log.info("serve stopped")


async def _quietly_cancelled(main: Any) -> Any:
    """Run `main` in a loop that does not print a traceback for a connection cancelled at shutdown.

    A flow run's process stays connected to the runner's control channel while it ends. When SIGTERM
    comes in that moment, the loop's teardown cancels the connection's handler, and Python 3.11's
    `StreamReaderProtocol` callback then calls `task.exception()` on a cancelled task: the operator saw
    "Exception in callback ... CancelledError" with a long traceback on a clean stop (fixed in CPython
    3.12, which checks `task.cancelled()` first). Any other error still goes to the default handler.
    """
    asyncio.get_running_loop().set_exception_handler(ignore_cancelled_callbacks)
    return await main


def ignore_cancelled_callbacks(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler: a CancelledError from a callback is a stop, not an error."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        log.debug("cancelled at shutdown: %s", context.get("message"))
        return
    loop.default_exception_handler(context)


async def deploy_one(flow: str, name: str, work_pool: str, *, schedules: list[Any] | None = None,
                     parameters: dict[str, Any] | None = None, description: str = "") -> str:
    """Register one deployment for a process work pool; its workers run the code of this checkout."""
    dep = await flow_object(flow).ato_deployment(
        name=name, parameters=parameters or {}, description=description, tags=["baocao"],
        schedules=schedules or None,
        job_variables={"working_dir": str(PROJECT_DIR)}, entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return str(await dep.apply(work_pool_name=work_pool))


async def deploy(cfg: Config, work_pool: str, now: datetime | None = None) -> list[str]:
    """Register every deployment with the Prefect server for workers of `work_pool`.

    Besides the scheduled ones, `open-period/open-subtree` is the deployment a fanned-out national
    cycle starts once per province (`open_period(..., fan_out="open-period/open-subtree")`).
    """
    tz = cfg.calendar.settings.timezone
    ids = [await deploy_one(s.flow, s.name, work_pool, schedules=prefect_schedules(s, tz), parameters=s.parameters,
                            description=s.description) for s in specs(cfg, now)]
    ids.append(await deploy_one("open-period", "open-subtree", work_pool,
                                description="One part of a fanned-out cycle (started by open-period)"))
    return ids


# ----------------------------------------------------------------------------- what the server says
@dataclass(frozen=True)
class NextRun:
    """A deployment's next run: as the server has scheduled it, or computed when the server has none yet."""

    flow: str
    deployment: str
    when: str
    at: datetime | None
    source: str  # "server" | "computed"
    parameters: dict[str, Any]


def computed_next(spec: ScheduleSpec, tz: str, now: datetime) -> tuple[datetime | None, dict[str, Any]]:
    """The next run of a spec after `now`, computed with Prefect's own schedule arithmetic."""
    from prefect.server.schemas.schedules import CronSchedule, IntervalSchedule

    if spec.runs:
        for at, params in spec.runs:
            if at > now:
                return at, {**spec.parameters, **params}
        return None, spec.parameters
    if spec.cron:
        sched: Any = CronSchedule(cron=spec.cron, timezone=tz)
    elif spec.every:
        sched = IntervalSchedule(interval=spec.every, anchor_date=pendulum.instance(now).in_tz(tz).start_of("day"),
                                 timezone=tz)
    else:
        return None, spec.parameters
    dates = list(sched._get_dates_generator(n=1, start=now + timedelta(seconds=1)))  # strictly after `now`
    return (pendulum.instance(dates[0]).in_tz(tz) if dates else None), spec.parameters


async def server_next_runs(cfg: Config, spec_list: Sequence[ScheduleSpec] | None = None,
                           now: datetime | None = None) -> list[NextRun]:
    """Each deployment's next scheduled run as the Prefect server holds it (computed where it holds none).

    Raises what the client raises when no server answers.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    tz = cfg.calendar.settings.timezone
    now = now or pendulum.now(tz)
    spec_list = list(spec_list or specs(cfg, now))
    out: list[NextRun] = []
    async with get_client() as client:
        deployments = {d.name: d for d in await client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[s.name for s in spec_list])))}
        for spec in spec_list:
            dep = deployments.get(spec.name)
            run = None
            if dep is not None:
                runs = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id={"any_": [dep.id]}),
                    flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
                    sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=1)
                run = runs[0] if runs else None
            if run is not None and run.expected_start_time is not None:
                at = pendulum.instance(run.expected_start_time).in_tz(tz)
                out.append(NextRun(spec.flow, spec.name, spec.when, at, "server", {**spec.parameters, **run.parameters}))
            else:
                at, params = computed_next(spec, tz, now)
                out.append(NextRun(spec.flow, spec.name, spec.when, at, "computed", params))
    return out


def computed_next_runs(cfg: Config, now: datetime | None = None) -> list[NextRun]:
    """Each deployment's next run computed from its schedule (no server asked)."""
    tz = cfg.calendar.settings.timezone
    now = now or pendulum.now(tz)
    out = []
    for spec in specs(cfg, now):
        at, params = computed_next(spec, tz, now)
        out.append(NextRun(spec.flow, spec.name, spec.when, at, "computed", params))
    return out


async def check_scheduling(cfg: Config, spec_list: Sequence[ScheduleSpec], *, timeout: float | None = None,
                           poll: float = 2.0) -> list[str]:
    """Deployments due within `SCHEDULING_HORIZON` for which the server created no scheduled run in `timeout`.

    An empty list means the server's scheduler works. Prefect's scheduler looks at recently changed
    deployments every few seconds, so a healthy server answers within seconds of `serve` starting.
    """
    tz = cfg.calendar.settings.timezone
    timeout = cfg.settings.scheduling_check_seconds if timeout is None else timeout
    now = pendulum.now(tz)
    due = []
    for spec in spec_list:
        at, _ = computed_next(spec, tz, now)
        if at is not None and at - now <= SCHEDULING_HORIZON:
            due.append(spec)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        missing = [r.deployment for r in await server_next_runs(cfg, due, now) if r.source != "server"]
        if not missing or asyncio.get_running_loop().time() >= deadline:
            return missing
        await asyncio.sleep(poll)
