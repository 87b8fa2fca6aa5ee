"""Issuing a reviewed report in tests: the draft a unit receives, the signed PDF it returns, the plan's mode.

Under `[report] issue = "review"` (Ủy ban nhân dân reports) the consolidate flow mails a draft to the unit
and nothing reaches the parent until the unit returns the numbered, signed PDF. Tests about a report's
content or delivery go that way: :func:`draft_mails` (what the unit receives), then :func:`issue` (as
`baocao report issue` does, at a time of the test's choosing) or :func:`reply_with_pdf` (the unit answers
the draft's mail). Tests about something else can run a plan as made: :func:`direct_config`.
"""

from __future__ import annotations

import re
import shutil
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from baocao.devservers.signedpdf import signed_report_pdf
from baocao.paths import CONFIG_DIR


def draft_mails(app: Any, unit: str | None = None) -> list:
    """The draft (Dự thảo) messages the SMTP server accepted, of `unit` or all, in order."""
    return [m for m in app.smtp.messages if m.message["X-Baocao-Kind"] == "draft"
            and (unit is None or m.message["X-Baocao-Unit"] == unit)]


def signed_pdf(app: Any, unit: str, number: str) -> bytes:
    """The issued report as the unit's office makes it: a PDF signed by its head (a self-signed certificate)."""
    from baocao.rules.bodies import body_name

    body = body_name(app.cfg.hierarchy[unit])
    return signed_report_pdf([body.upper(), f"Số: {number}", "BÁO CÁO"], f"Chủ tịch {body}", body)


def issue(app: Any, unit: str, period: str, plan: str, *, number: str, issued_on: date, at: datetime,
          pdf: bytes | None = None, send: bool = True) -> Any:
    """What `baocao report issue --unit U --period P --file signed.pdf --number N --date D` does, received `at`:
    record the unit's latest draft as issued, then (``send``) send the report up and the receipt to the unit.

    The command stamps the wall clock; tests pass the instant so that "on time" is the scenario's."""
    from baocao.consolidation import issuing, steps
    from baocao.intake.steps import send_replies
    from baocao.store.queries import find_cycle

    draft = issuing.draft_report(app.db, app.cfg, unit, period, plan)
    issued = issuing.record_issued(app.db, app.cfg, draft.id, pdf=pdf or signed_pdf(app, unit, number),
                                   pdf_name="bao-cao-da-ky.pdf", number=number, issued_on=issued_on, via="cli:test",
                                   issued_at=at)
    if send:
        cycle = next(c for c in (find_cycle(app.db, period, plan),) if c is not None)
        steps.send_reports(app.db, app.cfg, cycle, [unit])
        send_replies(app.db, app.cfg, units=[unit], with_operator=False)
    return issued


def reply_with_pdf(app: Any, draft: Any, files: list[tuple[str, bytes]], text: str, *, at: datetime,
                   subject: str | None = None) -> None:
    """The unit's coordinator answers the draft's mail, as a mail client writes it, into the intake mailbox."""
    unit = app.cfg.hierarchy[draft.message["X-Baocao-Unit"]]
    msg = EmailMessage()
    msg["From"] = unit.coordinator_emails[0]
    msg["To"] = app.cfg.settings.reply_to
    msg["Subject"] = subject if subject is not None else "Re: " + draft.message["Subject"]
    msg["Message-ID"] = make_msgid(domain="donvi.example")
    msg["Date"] = format_datetime(at)
    msg["In-Reply-To"] = draft.message["Message-ID"]
    msg.set_content(text)
    for name, data in files:
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    app.imap.append(bytes(msg), internal_date=at)


def direct_config(app: Any, monkeypatch: Any, *plans: str,
                  unit_contacts: dict[str, dict[str, str]] | None = None) -> Path:
    """Run `plans` with `[report] issue = "direct"` (reports go up as made) from now on: a copy of config/.

    For tests about something other than issuing (task tables, figures of a cycle, retries) that read the
    report mail as a direct plan sends it. `app.cfg` and every flow read the copy from here on."""
    from baocao import runtime

    target = app.tmp_path / "config-direct"
    if not target.exists():
        shutil.copytree(CONFIG_DIR, target)
    for plan in plans:
        path = target / "plans" / f"{plan}.toml"
        text = path.read_text(encoding="utf-8")
        text, n = re.subn(r'(?m)^issue\s*=\s*"(review|direct)".*$', 'issue = "direct"', text)
        if n == 0:
            text, n = re.subn(r"(?m)^\[report\]\s*$", '[report]\nissue = "direct"', text, count=1)
        assert n == 1, f"{path}: no [report] table to set issue in"
        path.write_text(text, encoding="utf-8")
    for code, fields in (unit_contacts or {}).items():  # before the copy is read: it is cached by directory
        path = target / "hierarchy.toml"
        text = path.read_text(encoding="utf-8")
        lines = "".join(f'{k} = "{v}"\n' for k, v in fields.items())
        header = f"[unit_contacts.{code}]\n"
        text = text.replace(header, header + lines, 1) if header in text else f"{text}\n{header}{lines}"
        path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("BAOCAO_CONFIG_DIR", str(target))
    app.cfg = runtime.config()
    return target
