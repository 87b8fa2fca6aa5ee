"""The `retry-unit` flow: redo one step for one unit, from the Prefect UI's run form.

Steps: `dispatch` (write and send the unit's request and form again if it was not delivered),
`collect` (read the unit's latest received file again), `consolidate` (make the unit's report
again, as a correction if one exists) and `send-report` (send the unit's report messages that
are still pending or failed). Each step is idempotent: what was done is not done twice.
"""

from __future__ import annotations

from typing import Any, Literal

import pendulum
from prefect import flow, get_run_logger
from prefect.states import Failed, State

from baocao import runtime
from baocao.consolidation import steps as consolidation
from baocao.consolidation.reporting import figures_for, make_report
from baocao.intake import pipeline as intake
from baocao.intake.steps import send_replies
from baocao.opening import dispatch
from baocao.opening import steps as opening
from baocao.opening.forms import FormBuilder
from baocao.store.queries import find_cycle
from flows import runnames
from flows.failures import MESSAGE_LIMIT, UnitsFailed

Step = Literal["dispatch", "collect", "consolidate", "send-report"]


@flow(name="retry-unit", flow_run_name=runnames.namer("retry-unit", runnames.retry_unit_name))
def retry_unit(unit: str, period: str, step: Step, plan: str = "") -> dict[str, Any] | State[Any]:
    """Redo `step` for `unit` in `period` (the plan's cycle that includes the unit), as of now.

    The Args below are what the deployment's run form shows under each field, so they are in
    Vietnamese, for the operators. Every parameter has a plain type and no null default: an
    Optional parameter's schema (`anyOf` string or null, default null) made the Prefect UI show
    'Property is type "None"' in place of a text box. An empty `plan` means "the newest cycle of
    the period that includes the unit".

    Args:
        unit: Mã đơn vị cần làm lại, ví dụ `X10714` (xã) hoặc `X11074-VP` (phòng, ban của xã).
        period: Kỳ báo cáo, ví dụ `2026-H1` (6 tháng đầu năm 2026), `2026-Q3` (quý III), `2026-9M` (9 tháng) hoặc `2026-Y` (năm).
        step: Bước làm lại: `dispatch` gửi lại yêu cầu và biểu mẫu; `collect` đọc lại tệp mới nhất đơn vị
            đã gửi; `consolidate` lập lại báo cáo tổng hợp (bản đính chính); `send-report` gửi lại báo
            cáo tổng hợp chưa gửi được.
        plan: Mã kế hoạch, ví dụ `national` hoặc `tu-ky`; để trống thì dùng đợt báo cáo mới nhất của kỳ có
            đơn vị này.
    """
    cfg = runtime.config()
    db = runtime.database(cfg)
    logger = get_run_logger()
    as_of = pendulum.now(cfg.calendar.settings.timezone)
    if unit not in cfg.hierarchy:
        raise ValueError(f"no unit with code {unit!r}")
    cycle = find_cycle(db, period, plan, None) if plan else None
    if cycle is None or unit not in cfg.hierarchy.subtree_codes(cycle.root):
        cycle = next((c for c in _cycles_with(db, period, unit)), None)
    if cycle is None:
        raise ValueError(f"unit {unit} is in no cycle of {period}")
    name = cfg.hierarchy[unit].name
    if step == "dispatch":
        prepared = dispatch.prepare_requests(db, cfg, cycle, [unit], FormBuilder(cfg.catalog_for(cycle.plan)))
        if prepared.failed:
            raise RuntimeError(f"unit {unit} ({name}): {prepared.failed[unit]}")
        delivery = opening.send_requests(db, cfg, cycle, [unit])
        result: dict[str, Any] = {"sent": len(delivery.sent), "failed": delivery.units_failed}
    elif step == "collect":
        outcomes = intake.reprocess_latest(db, cfg, unit, cycle.period)
        result = {"outcomes": [u.status for o in outcomes for u in o.units]}
        delivery = send_replies(db, cfg, units=[unit], with_operator=False)
        result["failed"] = delivery.units_failed
    elif step == "consolidate":
        figures = figures_for(db, cfg, cycle, as_of)
        result = {"report": make_report(db, cfg, cycle, unit, figures, as_of, correction=True)}
        delivery = consolidation.send_reports(db, cfg, cycle, [unit])
        result["failed"] = delivery.units_failed
    else:
        delivery = consolidation.send_reports(db, cfg, cycle, [unit])
        result = {"sent": len(delivery.sent), "failed": delivery.units_failed}
    if result.get("failed"):  # the unit's reason, once; a refusal is not a bug: no traceback
        logger.error("unit %s (%s): %s failed again: %s", unit, name, step, result["failed"])
        reason = "; ".join(str(r) for r in result["failed"].values())
        return Failed(message=f"{name}: bước {step} chưa làm lại được: {reason}"[:MESSAGE_LIMIT],
                      data=UnitsFailed({unit: reason}, f"retry-unit {step} {period}"))
    logger.info("unit %s (%s): %s redone: %s", unit, name, step, result)
    return result


def _cycles_with(db, period: str, unit: str):  # noqa: ANN001, ANN202 - small helper
    from sqlalchemy import select

    from baocao.store.db import Cycle, Request
    from baocao.store.queries import CycleInfo

    with db.session() as s:
        rows = s.execute(select(Cycle).join(Request).where(Cycle.period == period, Request.unit_code == unit)
                         .order_by(Cycle.id.desc())).scalars().all()
        return [CycleInfo(c.id, c.period, c.plan, c.root_code) for c in rows]
