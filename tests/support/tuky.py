"""The Tứ Kỳ cycle 2026-H1 for intake tests: open it, fill the departments' forms, mail them, read what came back.

Four departments fill forms: deadline 02/6/2026, lock 12/6/2026. Shared by test_intake and the
modules that build on it (collect, operations CLI, security, faults, batch intake, replies); the
`tu_ky` fixture itself is in :mod:`tests.support.fixtures`.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from sqlalchemy import func, select

from baocao.devservers.simulate import Filled, figures, fill_form
from baocao.mail import outbox
from baocao.opening import dispatch
from baocao.opening.forms import SHEET_COUNTS, SHEET_INFO, FormBuilder
from baocao.rules.catalog import Catalog
from baocao.rules.periods import Period
from baocao.store.db import AuditEvent, OutboxMessage, ReceivedFile, Request, Submission, Value
from baocao.store.queries import CycleInfo, open_cycle
from baocao.store.status import status_json
from flows.collect import collect

VN = ZoneInfo("Asia/Ho_Chi_Minh")
ON_TIME = datetime(2026, 5, 20, 10, 0, tzinfo=VN)
LATE = datetime(2026, 6, 5, 10, 0, tzinfo=VN)  # after the departments' deadline (02/6), before the lock (12/6)
LOCKED = datetime(2026, 6, 20, 10, 0, tzinfo=VN)  # after the lock
DEPARTMENTS = ("X11074-VHXH", "X11074-VP", "X11074-KT", "X11074-TTHCC")
XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@cache
def _builder(catalog: Catalog) -> FormBuilder:
    return FormBuilder(catalog)


def set_info(data: bytes, label: str, value: str) -> bytes:
    """The workbook with one value of the `Thông tin` sheet changed, as a person would edit it."""
    wb = load_workbook(io.BytesIO(data))
    ws = wb[SHEET_INFO]
    for row in ws.iter_rows(max_col=2):
        if row[0].value == label:
            row[1].value = value
            break
    else:
        raise AssertionError(f"no {label!r} on {SHEET_INFO}")
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def info_value(data: bytes, label: str) -> str:
    wb = load_workbook(io.BytesIO(data))
    return next(str(r[1].value) for r in wb[SHEET_INFO].iter_rows(max_col=2) if r[0].value == label)


def value_cell(data: bytes, code: str) -> str:
    """Where the form holds the `Giá trị` of `code` (found with openpyxl, not with our reader)."""
    ws = load_workbook(io.BytesIO(data))[SHEET_COUNTS]
    header = next(r for r in ws.iter_rows() if any(c.value == "Giá trị" for c in r))
    col = next(c.column_letter for c in header if c.value == "Giá trị")
    code_col = next(c.column - 1 for c in header if c.value == "Mã")
    row = next(r[0].row for r in ws.iter_rows(min_row=header[0].row + 1) if r[code_col].value == code)
    return f"{col}{row}"


def text_of(mail: Any) -> str:
    return mail.message.get_body(("plain",)).get_content()


@dataclass
class TuKy:
    """The opened Tứ Kỳ cycle: the forms the departments received, and the units' side of the mail."""

    app: Any
    info: CycleInfo
    forms: dict[str, tuple[str, bytes]]  # unit -> (file name, the form as it reached the unit)
    seen: int = 0  # SMTP messages already handed out by replies()

    @property
    def cfg(self):  # noqa: ANN201 - baocao.rules.config.Config
        return self.app.cfg

    def coordinator(self, unit: str) -> str:
        return self.cfg.hierarchy[unit].coordinator_emails[0]

    def fill(self, unit: str, seed: int = 1, *, mistake: str | None = None, set_values: dict[str, object] | None = None,
             drop: tuple[str, ...] = ()) -> tuple[bytes, Filled]:
        """The unit's form filled by baocao.devservers.simulate; `set_values`/`drop` type a value over or leave it empty."""
        rng = random.Random(seed)
        filled = figures(self.cfg.catalog, rng)
        values: dict[str, Any] = dict(filled.values) | dict(set_values or {})
        for code in drop:
            values.pop(code)
        data = fill_form(self.forms[unit][1], self.cfg.catalog, Filled(values, filled.previous_year), rng,
                         mistake=mistake)
        return data, filled

    def mail(self, unit: str | None, *files: bytes | tuple[str, bytes], sender: str | None = None) -> int:
        """A unit's reply (From its coordinator unless `sender`) with the files attached, APPENDed to the mailbox."""
        msg = EmailMessage()
        msg["From"] = sender or self.coordinator(unit or "")
        msg["To"] = self.cfg.settings.reply_to
        msg["Subject"] = f"Báo cáo 6 tháng đầu năm 2026 - {unit}"
        msg.set_content("Kính gửi Bộ phận tổng hợp, đơn vị gửi báo cáo theo biểu mẫu đính kèm.")
        for f in files:
            name, data = f if isinstance(f, tuple) else (self.forms[unit or ""][0], f)
            msg.add_attachment(data, maintype=XLSX[0], subtype=XLSX[1], filename=name)
        return self.app.imap.append(msg.as_bytes())

    def collect(self, as_of: datetime, **kwargs: Any) -> dict[str, Any]:
        return collect(as_of=as_of, **kwargs)

    def replies(self) -> list[Any]:
        """SMTP messages received since the last call."""
        msgs = self.app.smtp.messages
        new, self.seen = msgs[self.seen:], len(msgs)
        return new

    def replies_to(self, address: str) -> list[Any]:
        return [m for m in self.replies() if address in m.rcpt_tos]

    def status(self) -> dict[str, Any]:
        return status_json(self.app.db, self.cfg, self.info)

    def unit_status(self, unit: str) -> dict[str, Any]:
        return next(u for u in self.status()["units"] if u["unit"] == unit)

    def request(self, unit: str) -> Request:
        with self.app.db.session() as s:
            return s.scalars(select(Request).where(Request.cycle_id == self.info.id, Request.unit_code == unit)).one()

    def submissions(self, unit: str | None = None) -> list[Submission]:
        with self.app.db.session() as s:
            q = select(Submission).order_by(Submission.id)
            if unit:
                q = q.where(Submission.unit_code == unit)
            return list(s.scalars(q))

    def values(self, submission_id: int) -> dict[str, float | None]:
        with self.app.db.session() as s:
            return {v.indicator: v.number for v in s.scalars(
                select(Value).where(Value.submission_id == submission_id, Value.text.is_(None)))}

    def counts(self) -> dict[str, int]:
        """How many files, submissions and replies the database holds."""
        with self.app.db.session() as s:
            return {
                "files": s.scalar(select(func.count()).select_from(ReceivedFile)) or 0,
                "submissions": s.scalar(select(func.count()).select_from(Submission)) or 0,
                "receipts": s.scalar(select(func.count()).select_from(OutboxMessage)
                                     .where(OutboxMessage.kind == "receipt")) or 0,
                "problems": s.scalar(select(func.count()).select_from(OutboxMessage)
                                     .where(OutboxMessage.kind == "problems")) or 0,
            }

    def audit(self, action: str) -> list[AuditEvent]:
        with self.app.db.session() as s:
            return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def open_tu_ky(app: Any) -> TuKy:
    """Open 2026-H1 under plan tu-ky the way the open-period flow's tasks do, and mail every request.

    (The flow itself is tested in test_open_period.py; calling its steps directly keeps each test
    here a few seconds shorter.) The forms are taken from the messages the SMTP server received.
    """
    cfg = app.cfg
    info = open_cycle(app.db, cfg, Period.parse("2026-H1"), "tu-ky")
    prepared = dispatch.prepare_requests(app.db, cfg, info, cfg.hierarchy.subtree_codes(info.root),
                                         _builder(cfg.catalog))
    assert not prepared.failed, prepared.failed
    delivery = outbox.deliver(app.db, cfg.settings, cycle_id=info.id, kinds=["request"])
    dispatch.mark_sent(app.db, info, delivery.sent)
    forms: dict[str, tuple[str, bytes]] = {}
    for m in app.smtp.messages:
        for att in m.message.iter_attachments():
            forms[str(m.message["X-Baocao-Unit"])] = (att.get_filename(), att.get_content())
    assert set(forms) == set(DEPARTMENTS)
    return TuKy(app, info, forms, seen=len(app.smtp.messages))
