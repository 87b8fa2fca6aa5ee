"""Where a cycle stands: each unit's state, and at any parent the counts of its subtree.

Used by `baocao status`, by the dashboards (Prefect artifacts) and by the demo's last table.
States: pending (not sent), sent, accepted, late (accepted after the deadline), rejected,
returned, exempt. `received` counts units with any readable file, accepted or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from baocao.mail.kinds import Kind
from baocao.rules.config import Config
from baocao.store.db import Database, OutboxMessage, Request, Submission
from baocao.store.queries import CycleInfo
from baocao.store.states import ANSWERED, RequestState


@dataclass(frozen=True)
class UnitStatus:
    unit: str
    name: str
    parent: str | None
    role: str
    state: str
    deadline: str
    state_at: datetime
    sent_at: datetime | None
    accepted_at: datetime | None
    on_time: bool | None
    files: int
    reason: str | None


def unit_statuses(db: Database, cfg: Config, cycle: CycleInfo, under: str | None = None) -> list[UnitStatus]:
    codes = set(cfg.hierarchy.subtree_codes(under)) if under else None
    with db.session() as s:
        files = dict(s.execute(select(Submission.request_id, func.count()).group_by(Submission.request_id)).all())
        reqs = list(s.scalars(select(Request).where(Request.cycle_id == cycle.id).order_by(Request.id)))
        # Why a request is still not sent: the mail server's last reply (a 550 for an address it
        # refuses), so an operator sees the reason beside the unit, not only in a run's log.
        undelivered = dict(s.execute(select(OutboxMessage.unit_code, OutboxMessage.last_error).where(
            OutboxMessage.cycle_id == cycle.id, OutboxMessage.kind == Kind.REQUEST, OutboxMessage.status != "sent",
            OutboxMessage.last_error.is_not(None))).all())
    out = []
    for r in reqs:
        if codes is not None and r.unit_code not in codes:
            continue
        out.append(UnitStatus(r.unit_code, cfg.hierarchy[r.unit_code].name, r.parent_code, r.role, r.state,
                              r.deadline.isoformat(), r.state_at, r.sent_at, r.accepted_at, r.on_time,
                              files.get(r.id, 0), r.state_reason or _not_delivered(r.state, undelivered.get(r.unit_code))))
    return out


def _not_delivered(state: str, last_error: str | None) -> str | None:
    return f"chưa gửi được yêu cầu: {last_error}" if state == RequestState.PENDING and last_error else None


def subtree_counts(cfg: Config, statuses: list[UnitStatus], unit: str) -> dict[str, Any]:
    """Expected, received, accepted and on-time form units below `unit` (DHIS2 completeness/timeliness)."""
    below = set(cfg.hierarchy.subtree_codes(unit))
    forms = [s for s in statuses if s.unit in below and s.role == "form"]
    expected = [s for s in forms if s.state != RequestState.EXEMPT]
    accepted = [s for s in expected if s.state in ANSWERED]
    on_time = [s for s in accepted if s.on_time]
    received = [s for s in expected if s.files > 0]
    n = len(expected)
    return {
        "unit": unit, "expected": n, "received": len(received), "accepted": len(accepted), "on_time": len(on_time),
        "exempt": len(forms) - n, "completeness": (len(accepted) / n) if n else None,
        "timeliness": (len(on_time) / n) if n else None,
    }


def status_json(db: Database, cfg: Config, cycle: CycleInfo, unit: str | None = None) -> dict[str, Any]:
    """The document `baocao status --format json` prints (keys documented in the README)."""
    root = unit or cycle.root
    statuses = unit_statuses(db, cfg, cycle, root)
    parents = [s.unit for s in statuses if s.role == "consolidate"]
    return {
        "cycle": {"id": cycle.id, "period": cycle.period, "plan": cycle.plan, "root": cycle.root},
        "units": [
            {"unit": s.unit, "name": s.name, "parent": s.parent, "role": s.role, "state": s.state,
             "deadline": s.deadline, "state_at": s.state_at.isoformat(),
             "sent_at": s.sent_at.isoformat() if s.sent_at else None,
             "accepted_at": s.accepted_at.isoformat() if s.accepted_at else None,
             "on_time": s.on_time, "files": s.files, "reason": s.reason}
            for s in statuses
        ],
        "totals": [subtree_counts(cfg, statuses, p) for p in parents] or [subtree_counts(cfg, statuses, root)],
    }
