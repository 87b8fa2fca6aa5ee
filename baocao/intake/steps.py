"""The collect step's sending: the replies to what units sent, and what operators' actions wrote."""

from __future__ import annotations

from collections.abc import Sequence

from baocao.mail import outbox
from baocao.mail.kinds import OPERATOR, REPLIES, STEP_KINDS
from baocao.rules.config import Config
from baocao.store.db import Database


def send_replies(db: Database, cfg: Config, *, units: Sequence[str] | None = None,
                 with_operator: bool = True) -> outbox.Delivery:
    """Send the receipts and lists of problems still pending or failed (of `units`, or of everyone).

    `with_operator` also sends the notices an operator's action wrote (a report returned), as the
    collect flow does; `baocao submit` and a unit's retry answer only the file they took in.
    """
    kinds = STEP_KINDS["collect"] if with_operator else REPLIES
    return outbox.deliver(db, cfg.settings, units=units, kinds=kinds)


def send_returned(db: Database, cfg: Config, unit: str) -> outbox.Delivery:
    """Send the notice that `unit`'s report was returned (`baocao return`), at once."""
    return outbox.deliver(db, cfg.settings, units=[unit], kinds=OPERATOR)
