"""Deployments of the flows with the year's schedules: served in one process, or applied to a work pool.

`baocao serve` runs every deployment in this process (the embedded default: a local Prefect,
SQLite). `baocao deploy --pool NAME` registers them with a Prefect server for workers of a process
work pool (production: Prefect server on PostgreSQL, several workers). Global concurrency limits
keep a large cycle from flooding the SMTP server: `prefect concurrency-limit create smtp N` limits
every task that sends mail (they carry the `smtp` tag when such a limit exists: flows/limits.py).

A deployment names its flow by module (`flows.collect.collect`), not by file (`flows/collect.py`):
loading a flow from its file puts `flows/` on the run's `sys.path`, where our modules would stand in
for the standard library's in every process the run starts, and imports each module twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from flows.config import PROJECT_DIR, Config
from flows.schedules import ScheduleSpec, specs


def flow_object(name: str) -> Any:
    from flows.chase import chase
    from flows.collect import collect
    from flows.consolidate import consolidate
    from flows.open_period import open_period
    from flows.retry_unit import retry_unit

    return {"open-period": open_period, "collect": collect, "chase": chase, "consolidate": consolidate,
            "retry-unit": retry_unit}[name]


def runner_deployments(cfg: Config, year: int | None = None) -> list[Any]:
    year = year or datetime.now().year
    tz = cfg.calendar.settings.timezone
    out = []
    for spec in specs(cfg, year):
        kwargs: dict[str, Any] = {"name": spec.name, "description": spec.description, "tags": ["baocao"]}
        if spec.cron:
            kwargs["schedules"] = [Cron(spec.cron, timezone=tz)]
        if spec.parameters:
            kwargs["parameters"] = spec.parameters
        out.append(runner_deployment(spec.flow, **kwargs))
    return out


def runner_deployment(flow: str, **kwargs: Any) -> Any:
    """A deployment of the flow named `flow` (`collect`, ...) to serve from this process."""
    return flow_object(flow).to_deployment(entrypoint_type=EntrypointType.MODULE_PATH, **kwargs)


def serve(cfg: Config, year: int | None = None) -> None:
    """Serve every deployment from this process until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*runner_deployments(cfg, year))


async def deploy_one(flow: str, name: str, work_pool: str, *, cron: str | None = None, timezone: str | None = None,
                     parameters: dict[str, Any] | None = None, description: str = "") -> str:
    """Register one deployment for a process work pool; its workers run the code of this checkout."""
    dep = await flow_object(flow).ato_deployment(
        name=name, parameters=parameters or {}, description=description, tags=["baocao"],
        schedules=[Cron(cron, timezone=timezone)] if cron else None,
        job_variables={"working_dir": str(PROJECT_DIR)}, entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return str(await dep.apply(work_pool_name=work_pool))


async def deploy(cfg: Config, work_pool: str, year: int | None = None) -> list[str]:
    """Register every deployment with the Prefect server for workers of `work_pool`.

    Besides the scheduled ones, `open-period/open-subtree` is the deployment a fanned-out national
    cycle starts once per province (`open_period(..., fan_out="open-period/open-subtree")`).
    """
    year = year or datetime.now().year
    tz = cfg.calendar.settings.timezone
    ids = [await deploy_one(s.flow, s.name, work_pool, cron=s.cron, timezone=tz, parameters=s.parameters,
                            description=s.description) for s in specs(cfg, year)]
    ids.append(await deploy_one("open-period", "open-subtree", work_pool,
                                description="One part of a fanned-out cycle (started by open-period)"))
    return ids


def describe(cfg: Config, year: int) -> list[ScheduleSpec]:
    return specs(cfg, year)
