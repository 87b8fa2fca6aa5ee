"""Who a message is addressed to and who signs it, the same for every kind of message.

Every template greets ``addressee`` (the body: "Ủy ban nhân dân phường Nhị Chiểu"), is signed by
``sender`` (the office that collects for the plan and level, with its contact person and phone,
:mod:`baocao.rules.bodies`), and ends with ``technical``: the one line an operator reads to find
the unit, period and plan in the store. Codes appear nowhere else in what people read.
"""

from __future__ import annotations

from typing import Any

from baocao.rules.bodies import Collector, body_name
from baocao.rules.config import Config

__all__ = ["letter", "system_letter", "technical_line"]

SYSTEM_BODY = "Bộ phận tiếp nhận báo cáo"
"""Signs the answers to a mail or file that names no unit (no plan, so no collecting office)."""


def technical_line(*parts: tuple[str, str | None]) -> str:
    """ "Mã kỹ thuật: đơn vị X10714; kỳ 2026-H1; kế hoạch national": for the operator, printed last and small."""
    shown = [f"{label} {value}" for label, value in parts if value]
    return "Mã kỹ thuật: " + "; ".join(shown) if shown else ""


def letter(cfg: Config, plan: str, unit_code: str, period: str | None = None, *, sender_for: str | None = None,
           **technical: str) -> dict[str, Any]:
    """The addressing keywords of a message to `unit_code` in a cycle of `plan` (for ``render_mail``).

    The sender is the body that collects `unit_code`'s report; for an escalation to a parent, the one
    that collects its late units' (``sender_for``: one of them), not the parent's own superior.
    ``technical``: more (label, value) pairs for the operator's line, e.g. ``tep="a1b2"``.
    """
    unit = cfg.hierarchy[unit_code]
    sender = cfg.plan(plan).collector(cfg.hierarchy, sender_for or unit_code, fallback_email=cfg.settings.reply_to)
    extra = [(k.replace("_", " "), v) for k, v in technical.items()]
    addressee = body_name(unit)
    # The office that collects may itself report (Tứ Kỳ's Phòng Văn hóa - Xã hội collects the
    # departments' reports and is one of them): it is not asked by itself, but by the body it collects for.
    requester = sender.body
    if requester == addressee and (parent := cfg.hierarchy.parent(unit_code)) is not None:
        requester = body_name(parent)
    return {
        "addressee": addressee, "sender": sender, "requester": requester,
        "contact_name": sender.person or sender.body, "contact_email": sender.email,
        "technical": technical_line(("đơn vị", unit.code), ("kỳ", period), ("kế hoạch", plan), *extra),
    }


def system_letter(cfg: Config, **technical: str) -> dict[str, Any]:
    """The addressing keywords of an answer to a sender no unit is known for (a file with no valid form)."""
    sender = Collector(body=SYSTEM_BODY, email=cfg.settings.reply_to)
    return {"addressee": "", "sender": sender, "requester": sender.body, "contact_name": sender.body,
            "contact_email": sender.email,
            "technical": technical_line(*[(k.replace("_", " "), v) for k, v in technical.items()])}
