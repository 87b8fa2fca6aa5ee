"""The opening step's sending: what the open-period flow, a unit's retry, the crash harness and the
benchmark all call, so that none of them rebuilds the order or the bookkeeping by hand."""

from __future__ import annotations

from collections.abc import Sequence

from baocao.mail import outbox
from baocao.mail.kinds import STEP_KINDS
from baocao.opening import dispatch
from baocao.rules.config import Config
from baocao.store.db import Database
from baocao.store.queries import CycleInfo


def send_requests(db: Database, cfg: Config, cycle: CycleInfo, units: Sequence[str] | None = None) -> outbox.Delivery:
    """Send the cycle's requests still pending or failed (of `units`, or of the whole tree), higher
    levels first, and mark those sent.

    Higher levels first: a province's coordinator has the ministry's request before its communes
    write to ask about theirs.
    """
    codes = list(units) if units is not None else cfg.hierarchy.subtree_codes(cycle.root)
    depth = {code: cfg.hierarchy.depth(code) for code in codes}
    delivery = outbox.deliver(db, cfg.settings, cycle_id=cycle.id, kinds=STEP_KINDS["open"], units=units,
                              order_by_depth=depth)
    dispatch.mark_sent(db, cycle, delivery.sent)
    return delivery
