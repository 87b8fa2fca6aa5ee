"""The chase step's sending: the reminders, overdue notices and escalations chasing wrote."""

from __future__ import annotations

from baocao.mail import outbox
from baocao.mail.kinds import STEP_KINDS
from baocao.rules.config import Config
from baocao.store.db import Database


def send_notices(db: Database, cfg: Config) -> outbox.Delivery:
    """Send every reminder, overdue notice and escalation still pending or failed."""
    return outbox.deliver(db, cfg.settings, kinds=STEP_KINDS["chase"])
