"""Issuing a reviewed report: the unit returns the version it numbered and signed, and it goes up.

Under `[report] issue = "review"` a consolidator's report is made as a draft (Dự thảo) and mailed to the
unit itself (:func:`baocao.consolidation.reporting.make_report`). The unit checks it, writes its own
assessment, has it signed and numbered, and sends the signed PDF back: by replying to the draft's mail
(its token, of a purpose of its own, names the draft) or through `baocao report issue`. Both call
:func:`record_issued`, which keeps the number, date, files and what the PDF's digital signature says,
answers the consolidator's request (accepted, on time or not by the arrival), and writes the report to
the parent (signed PDF + data appendix with "(Kèm theo Báo cáo số ...)" filled, Reply-To the unit) and a
receipt to the unit. Nothing is sent here: the consolidate step sends the report, the collect step the receipt.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from io import BytesIO
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from baocao.consolidation.report import attached_line, body_name, symbol_for
from baocao.consolidation.reporting import (
    XLSX_MIME,
    addressee,
    attachment_names,
    mark_request_done,
    recipients,
    report_contact,
    report_subject,
    unit_reply_to,
)
from baocao.errors import IssueError
from baocao.mail import outbox, threads
from baocao.mail.kinds import Kind
from baocao.mail.templating import render_mail
from baocao.opening.tokens import find_report_token, verify_report_token
from baocao.rules.config import Config
from baocao.rules.formatting import date_vi
from baocao.rules.periods import Period
from baocao.store.db import Blob, Cycle, Database, Report, Request
from baocao.store.queries import CycleInfo, find_cycle

log = logging.getLogger("baocao.issuing")
PDF_MIME = "application/pdf"
_NUMBER = re.compile(r"Số\s*[:.]?\s*(?P<n>\d{1,6}(?:/\d{4})?/[A-ZĐ][A-ZĐ0-9.\-]*)", re.IGNORECASE)
_DATE_NUM = re.compile(r"ngày\s*(?P<d>\d{1,2})\s*[/.\-]\s*(?P<m>\d{1,2})\s*[/.\-]\s*(?P<y>\d{4})", re.IGNORECASE)
_DATE_WORDS = re.compile(r"ngày\s*(?P<d>\d{1,2})\s*tháng\s*(?P<m>\d{1,2})\s*năm\s*(?P<y>\d{4})", re.IGNORECASE)


@dataclass(frozen=True)
class Signature:
    state: str  # valid | invalid | unsigned
    signer: str | None = None
    signed_at: datetime | None = None

    def text_vi(self, tz: ZoneInfo) -> str:
        """What the receipt says of the signature, the signing time in the office's time zone."""
        if self.state == "unsigned":
            return "tệp PDF không có chữ ký số (đã tiếp nhận và ghi nhận là chưa ký số)"
        when = self.signed_at.astimezone(tz) if self.signed_at else None
        who = f"{self.signer}" + (f", ký lúc {when:%H:%M} ngày {date_vi(when.date())}" if when else "")
        if self.state == "valid":
            return f"hợp lệ, tệp còn nguyên vẹn từ khi ký; người ký: {who}"
        return f"không hợp lệ: tệp đã bị thay đổi sau khi ký hoặc chữ ký bị hỏng; người ký ghi trong chữ ký: {who}"


@dataclass(frozen=True)
class Issued:
    report_id: int
    unit: str
    number: str
    issued_on: date
    signature: Signature
    on_time: bool | None
    again: bool = False  # the same file came a second time: nothing new written


def parse_number_date(text: str) -> tuple[str | None, date | None]:
    """("123/BC-UBND", date(2026, 6, 10)) from "Số: 123/BC-UBND, ngày 10/6/2026" in a mail's subject or body."""
    number = m["n"].upper() if (m := _NUMBER.search(text or "")) else None
    found = _DATE_NUM.search(text or "") or _DATE_WORDS.search(text or "")
    day = None
    if found:
        try:
            day = date(int(found["y"]), int(found["m"]), int(found["d"]))
        except ValueError:
            day = None
    return number, day


def read_signature(pdf: bytes) -> Signature:
    """What the PDF's first digital signature says: signer (CN, O), signing time, and integrity.

    "valid" means the signed bytes are unchanged and the signature verifies against its certificate;
    whether that certificate is trusted (a Ban Cơ yếu CA) is not judged here. A PDF with no signature
    is "unsigned"."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    reader = PdfFileReader(BytesIO(pdf), strict=False)
    sigs = reader.embedded_signatures
    if not sigs:
        return Signature("unsigned")
    sig = sigs[0]
    cert = sig.signer_cert
    subject = cert.subject.native
    signer = ", ".join(v for v in (subject.get("common_name"), subject.get("organization_name")) if v) or None
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)  # trust paths of a self-signed test certificate
    try:
        status = validate_pdf_signature(sig, ValidationContext(trust_roots=[cert], allow_fetching=False),
                                        skip_diff=True)
        state = "valid" if status.intact and status.valid else "invalid"
        signed_at = status.signer_reported_dt
    except Exception as exc:  # noqa: BLE001 - a broken signature is "invalid", not a failed intake
        log.warning("signature of an issued PDF cannot be validated: %s", exc)
        state, signed_at = "invalid", None
    return Signature(state, signer, signed_at)


def _draft_for_token(db: Database, cfg: Config, token: str | None, report_id: int | None) -> Report:
    with db.reading() as s:
        report = s.get(Report, report_id) if report_id is not None else None
        cycle = s.get(Cycle, report.cycle_id) if report is not None else None
        if report is None or cycle is None or not verify_report_token(
                cfg.settings.token_secret, token, report.id, report.unit_code, cycle.period):
            raise IssueError(f"mã báo cáo “{token or ''}” trong tiêu đề thư không đúng: không tìm thấy dự thảo báo "
                             "cáo nào mang mã này")
        latest = s.scalar(select(func.max(Report.version)).where(Report.cycle_id == report.cycle_id,
                                                                  Report.unit_code == report.unit_code))
        if latest != report.version:
            raise IssueError(f"mã “{token}” là của dự thảo phiên bản {report.version}, đã được thay bằng dự thảo "
                             f"phiên bản {latest} (hết hiệu lực); đề nghị trả lời thư gửi dự thảo mới nhất")
        s.expunge(report)
        return report


def draft_report(db: Database, cfg: Config, unit: str, period: str, plan: str | None = None) -> Report:
    """The latest report of `unit` in the period's cycle (the one `baocao report issue` issues)."""
    cycle = find_cycle(db, period, plan)
    if cycle is None:
        raise IssueError(f"không có kỳ báo cáo {period}")
    with db.reading() as s:
        report = s.scalar(select(Report).where(Report.cycle_id == cycle.id, Report.unit_code == unit)
                          .order_by(Report.version.desc()).limit(1))
        if report is None:
            raise IssueError(f"{cfg.hierarchy[unit].name} chưa có dự thảo báo cáo kỳ {Period.parse(period).label_vi}")
        s.expunge(report)
        return report


def record_issued(db: Database, cfg: Config, report_id: int, *, pdf: bytes, pdf_name: str, number: str | None,
                  issued_on: date | None, via: str, issued_at: datetime, docx: bytes | None = None,
                  file_id: int | None = None, reply_headers: dict[str, object] | None = None) -> Issued:
    """Record the issued version of a draft report and write the report to the parent and the receipt.

    Raises :class:`IssueError` (Vietnamese, naming file and field) when the file is not a PDF, the number
    or date is missing, or the draft was issued already with another file; nothing is written then."""
    problems = []
    if not pdf.lstrip()[:5] == b"%PDF-":
        problems.append(f"tệp “{pdf_name}” không phải tệp PDF (cần bản báo cáo đã ký, định dạng PDF)")
    if not number:
        problems.append("thiếu số của báo cáo: ghi trong thư, ví dụ \"Số: 123/BC-UBND\"")
    if issued_on is None:
        problems.append("thiếu ngày ban hành của báo cáo: ghi trong thư, ví dụ \"ngày 10/6/2026\"")
    if problems:
        raise IssueError("; ".join(problems))
    assert number is not None and issued_on is not None
    signature = read_signature(pdf)
    digest = hashlib.sha256(pdf).hexdigest()
    with db.session() as s:
        report = s.get(Report, report_id)
        assert report is not None
        cycle_row = s.get(Cycle, report.cycle_id)
        assert cycle_row is not None
        cycle = CycleInfo(cycle_row.id, cycle_row.period, cycle_row.plan, cycle_row.root_code)
        unit = report.unit_code
        if report.status == "issued":
            old = s.get(Blob, report.issued_pdf_blob_id) if report.issued_pdf_blob_id else None
            if old is not None and old.sha256 == digest:
                return Issued(report.id, unit, report.number or number, report.issued_on or issued_on,
                              Signature(report.signature or "unsigned", report.signer, report.signed_at), None,
                              again=True)
            raise IssueError(f"báo cáo này đã được ban hành (Số: {report.number}, ngày {date_vi(report.issued_on)}) "
                             f"và đã gửi lên cấp trên; tệp “{pdf_name}” không thay thế báo cáo đó. Nếu cần đính chính, "
                             "đề nghị liên hệ bộ phận tổng hợp để lập báo cáo đính chính")
        if report.status != "draft":
            raise IssueError(f"báo cáo {Period.parse(cycle.period).label_vi} của {body_name(cfg.hierarchy[unit])} "
                             "được gửi thẳng lên cấp trên ngay khi lập, không qua bước ký ban hành: không có dự "
                             f"thảo nào để ban hành; tệp “{pdf_name}” không được ghi nhận")
        h = cfg.hierarchy
        xlsx = _fill_attached(s.get(Blob, report.xlsx_blob_id).content,  # type: ignore[union-attr]
                              attached_line(symbol_for(h[unit], h), body_name(h[unit]), (number, issued_on)))
        report.status, report.number, report.issued_on, report.issued_at = "issued", number, issued_on, issued_at
        report.issued_pdf_blob_id = outbox.store_blob(s, pdf)
        report.issued_docx_blob_id = outbox.store_blob(s, docx) if docx else None
        report.issued_file_id, report.issued_via = file_id, via[:100]
        report.signature, report.signer, report.signed_at = signature.state, (signature.signer or None), signature.signed_at
        report.sent_at = None
        s.flush()
        req = s.scalar(select(Request).where(Request.cycle_id == cycle.id, Request.unit_code == unit))
        mark_request_done(s, cycle, unit, issued_at, cfg)
        deadline = req.deadline if req is not None else issued_on
        on_time = cfg.calendar.local_date(issued_at) <= deadline
        names = attachment_names(cfg, cycle, unit)
        u, parent = h[unit], h.parent(unit)
        label = Period.parse(cycle.period).label_vi
        common = {"unit_body": body_name(u), "parent_body": addressee(cfg, unit), "period_label": label,
                  "number": number, "issued_on": date_vi(issued_on), "correction": report.correction}
        subject, text, html = render_mail(
            "report_issued", **common, pdf_name=names["pdf"], xlsx_name=names["xlsx"],
            **report_contact(cfg, cycle.plan, unit))
        to, cc = recipients(cfg, cycle.plan, unit)
        outbox.enqueue(
            s, key=outbox.message_key(cycle.period, cycle.plan, unit, Kind.REPORT, f"v{report.version}"),
            kind=Kind.REPORT, stage=f"v{report.version}", unit=unit, period=cycle.period, cycle_id=cycle.id,
            to=to, cc=cc, subject=subject if parent is not None else report_subject(cfg, cycle, unit, report.correction),
            text=text, html=html,
            attachments=[outbox.FileAttachment(names["pdf"], pdf, PDF_MIME),
                         outbox.FileAttachment(names["xlsx"], xlsx, XLSX_MIME)],
            headers=unit_reply_to(cfg, unit))
        r_subject, r_text, r_html = render_mail(
            "report_issued_receipt", **common, pdf_name=pdf_name, signature_text=signature.text_vi(ZoneInfo(str(cfg.calendar.settings.timezone))),
            received=f"{issued_at.astimezone(ZoneInfo(str(cfg.calendar.settings.timezone))):%H:%M ngày %d/%m/%Y}",
            on_time=on_time, deadline=date_vi(deadline))
        outbox.enqueue(
            s, key=outbox.message_key(cycle.period, cycle.plan, unit, Kind.RECEIPT, f"issued-v{report.version}"),
            kind=Kind.RECEIPT, stage=f"issued-v{report.version}", unit=unit, period=cycle.period, cycle_id=cycle.id,
            to=list(dict.fromkeys([*u.coordinator_emails, *u.head_emails])), subject=r_subject, text=r_text,
            html=r_html, headers=reply_headers)
        return Issued(report.id, unit, number, issued_on, signature, on_time)


def _fill_attached(xlsx: bytes, line: str) -> bytes:
    """The data appendix with its "(Kèm theo Báo cáo số ...)" line (A3 of the first sheet) filled."""
    from openpyxl import load_workbook

    wb = load_workbook(BytesIO(xlsx))
    ws = wb.worksheets[0]
    ws["A3"].value = line
    out = BytesIO()
    wb.save(out)
    return out.getvalue()


@dataclass(frozen=True)
class MailFile:
    filename: str
    content: bytes


def issue_from_mail(db: Database, cfg: Config, *, subject: str, body: str, files: list[MailFile], sender: str,
                    received_at: datetime, message_id: str | None) -> tuple[Issued | None, dict[str, object] | None]:
    """A reply to a draft's mail: (what was issued, None) or (None, the problems reply's outbox keywords).

    The PDF is the first attachment named .pdf (or typed as one); an edited .docx is kept with it."""
    found = find_report_token(f"{subject}\n{body}")
    token, report_id = (found[1], found[0]) if found else (None, None)
    pdfs = [f for f in files if f.filename.lower().endswith(".pdf")]
    docxs = [f for f in files if f.filename.lower().endswith(".docx")]
    threading = threads.reply_headers(message_id) or None  # a malformed Message-ID is not copied into ours
    unit_body = ""
    try:
        report = _draft_for_token(db, cfg, token, report_id)
        unit_body = body_name(cfg.hierarchy[report.unit_code])
        if not pdfs:
            names = ", ".join(f"“{f.filename}”" for f in files) or "không có tệp nào"
            raise IssueError(f"thư không kèm tệp PDF của báo cáo đã ký (tệp đính kèm: {names})")
        number, issued_on = parse_number_date(f"{subject}\n{body}")
        issued = record_issued(db, cfg, report.id, pdf=pdfs[0].content, pdf_name=pdfs[0].filename, number=number,
                               issued_on=issued_on, via=f"email:{sender}", issued_at=received_at,
                               docx=docxs[0].content if docxs else None, reply_headers=threading)
        return issued, None
    except IssueError as exc:
        problems = [str(exc)]
        r_subject, text, html = render_mail("report_issue_problems", unit_body=unit_body, problems=problems,
                                            reply_to=cfg.settings.reply_to)
        ref = hashlib.sha256(f"{message_id}|{sender}|{received_at.isoformat()}".encode()).hexdigest()[:16]
        reply: dict[str, object] = {"key": outbox.message_key("issue", "", ref, Kind.PROBLEMS, "issue"),
                                    "kind": Kind.PROBLEMS, "stage": ref, "to": [sender], "subject": r_subject,
                                    "text": text, "html": html}
        if threading:
            reply["headers"] = threading
        return None, reply


def subject_and_body(raw: bytes) -> tuple[str, str]:
    """A mail's subject and its plain-text (else HTML) body, '' for what cannot be read."""
    import email
    import email.policy

    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        subject = str(msg.get("Subject", "") or "")
        part = msg.get_body(("plain", "html")) if hasattr(msg, "get_body") else None
        body = part.get_content() if part is not None else ""
        return subject, body if isinstance(body, str) else ""
    except Exception:  # noqa: BLE001 - an unreadable header or body counts as empty
        return "", ""


def names_a_draft(raw: bytes) -> bool:
    """True when a mail answers a draft report (its subject or body carries a report token)."""
    subject, body = subject_and_body(raw)
    return find_report_token(f"{subject}\n{body}") is not None
