"""The consolidate step: which reports are due with the figures they need, and sending them up the
chain level by level. The flow, a unit's retry, the crash harness and the benchmark call these, so
the order the flow sends in is the order every one of them exercises."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from baocao.consolidation.aggregate import Figures
from baocao.consolidation.reporting import due_units, figures_for
from baocao.mail import outbox
from baocao.mail.kinds import STEP_KINDS
from baocao.rules.config import Config
from baocao.store.db import Database
from baocao.store.queries import CycleInfo


def reports_due(db: Database, cfg: Config, cycle: CycleInfo, as_of: datetime,
                resend: str | None = None) -> tuple[list[str], dict[str, Figures]]:
    """The consolidators whose report is due (children before parents) and the whole tree's figures
    (none computed when nothing is due)."""
    units = due_units(db, cfg, cycle, as_of, resend=resend)
    return units, (figures_for(db, cfg, cycle, as_of) if units else {})


def send_reports(db: Database, cfg: Config, cycle: CycleInfo,
                 units: Sequence[str] | None = None) -> outbox.Delivery:
    """Send the cycle's reports waiting in the outbox (of `units`, or all), deepest level first, a level
    at a time.

    Mail goes out over several connections at once, so within one call the order of arrival is not
    kept; sending level by level makes a parent's report arrive after its children's, as recipients
    reading them in order expect (a province's report after its communes' ones).
    """
    wanted = set(units) if units is not None else None
    waiting = {m.unit_code for status in ("pending", "failed") for kind in STEP_KINDS["consolidate"]
               for m in outbox.messages(db, cycle_id=cycle.id, kind=kind, status=status)
               if m.unit_code and (wanted is None or m.unit_code in wanted)}
    total = outbox.Delivery()
    for depth in sorted({cfg.hierarchy.depth(u) for u in waiting}, reverse=True):
        level = [u for u in waiting if cfg.hierarchy.depth(u) == depth]
        delivery = outbox.deliver(db, cfg.settings, cycle_id=cycle.id, kinds=STEP_KINDS["consolidate"], units=level)
        total.sent += delivery.sent
        total.failed.update(delivery.failed)
        total.units_failed.update(delivery.units_failed)
        total.refused.update(delivery.refused)
        total.busy += delivery.busy
    return total
