"""Flow run names an operator can read in the Prefect UI's run list: what the run is, and when.

Prefect names a run with two random words (`solid-cassowary`); a list of those says nothing about
which cycle was opened or which collect run is the morning's. Each flow passes one of the namers
below as its `flow_run_name`: `open 2026-H1 national T31`, `collect 04/12 08:30`. Times are local
(the calendar's time zone) and are the run's `as_of` when it has one (a replay names the instant it
replays), else the moment the run starts. The names are computed by plain functions of the
parameters (tested without Prefect); a namer that cannot compute its name falls back to the flow's
name rather than fail the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pendulum

from baocao import runtime
from baocao.rules.config import Config

log = logging.getLogger("baocao.runnames")


def local_stamp(cfg: Config, instant: datetime | str | None, now: datetime | None = None) -> str:
    """`04/12 08:30` in the calendar's time zone, of `instant` (or `now`, or the current time)."""
    tz = cfg.calendar.settings.timezone
    if isinstance(instant, str):
        instant = pendulum.parse(instant)
    moment = instant or now or pendulum.now(tz)
    if moment.tzinfo is None:
        moment = pendulum.instance(moment, tz=tz)
    return f"{pendulum.instance(moment).in_timezone(tz):%d/%m %H:%M}"


def open_period_name(cfg: Config, params: Mapping[str, Any], now: datetime | None = None) -> str:
    """`open 2026-H1 national T31`: period (a bare kind resolved as the flow does), plan, subtree."""
    from flows.schedules import resolve_period

    plan = params.get("plan") or "national"
    as_of = params.get("as_of")
    if isinstance(as_of, str):
        as_of = pendulum.parse(as_of)
    period = resolve_period(params["period"], as_of or now or pendulum.now(cfg.calendar.settings.timezone), cfg).code
    top = params.get("subtree") or params.get("root") or cfg.plan(plan).root
    return f"open {period} {plan} {top}"


def collect_name(cfg: Config, params: Mapping[str, Any], now: datetime | None = None) -> str:
    """`collect 04/12 08:30`, naming a channel left out (`collect 04/12 08:30 folder only`)."""
    only = "" if params.get("mailbox", True) and params.get("folder", True) else \
        " mailbox only" if params.get("mailbox", True) else " folder only"
    return f"collect {local_stamp(cfg, params.get('as_of'), now)}{only}"


def chase_name(cfg: Config, params: Mapping[str, Any], now: datetime | None = None) -> str:
    """`chase 04/12 08:30`."""
    return f"chase {local_stamp(cfg, params.get('as_of'), now)}"


def consolidate_name(cfg: Config, params: Mapping[str, Any], now: datetime | None = None) -> str:
    """`consolidate 04/12 17:00`, with the cycle when one is named and `correction X10714` for a resend."""
    cycle = " ".join(str(params[k]) for k in ("period", "plan", "root") if params.get(k))
    resend = f" correction {params['resend']}" if params.get("resend") else ""
    return f"consolidate {cycle + ' ' if cycle else ''}{local_stamp(cfg, params.get('as_of'), now)}{resend}"


def retry_unit_name(cfg: Config, params: Mapping[str, Any], now: datetime | None = None) -> str:
    """`retry-unit X10714 dispatch 2026-H1`."""
    return f"retry-unit {params.get('unit')} {params.get('step')} {params.get('period')}"


def namer(flow: str, compute: Callable[[Config, Mapping[str, Any]], str]) -> Callable[[], str]:
    """The `flow_run_name` callable of `flow`: `compute` over the run's parameters.

    Prefect calls it when the run starts, with the parameters in `prefect.runtime`; a problem
    (a period code the flow itself will refuse) names the run after its flow and is logged.
    """
    def name() -> str:
        from prefect.runtime import flow_run

        try:
            return compute(runtime.config(), dict(flow_run.parameters))
        except Exception as exc:  # noqa: BLE001 - a name must never fail the run
            log.warning("run of %s left with a generic name: %s", flow, exc)
            return flow

    name.__name__ = f"{flow.replace('-', '_')}_run_name"
    return name


def for_units(what: str) -> Callable[..., str]:
    """A `task_run_name` callable: `send requests (3,356 units)` from the task's `units` parameter."""
    def name(parameters: dict[str, Any]) -> str:
        units = parameters.get("units") or []
        return f"{what} ({len(units)} unit{'s' if len(units) != 1 else ''})"

    return name
