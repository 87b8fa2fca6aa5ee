"""Simulated units for the demo and the benchmarks: fill a form as an officer would.

Figures are drawn from a seeded generator and made to satisfy the catalogue's relations (a
left-hand count is drawn as a share of its right-hand one), so that no indicator code appears
here. A "mistake" breaks one relation or types a decimal comma, which the intake must catch.
"""

from __future__ import annotations

import email.utils
import io
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from openpyxl import load_workbook

from baocao.opening.forms import (
    CONTACT_LABELS,
    COUNT_HEADERS,
    SHEET_COUNTS,
    SHEET_INFO,
    SHEET_TASKS,
    SHEET_TEXTS,
    STATUS_LABELS,
    TASK_HEADERS,
    TEXT_HEADERS,
)
from baocao.rules.catalog import Catalog

SAMPLE_TEXTS = {
    "results": ["Đã tổ chức quán triệt Kết luận 226-KL/TW đến toàn thể cán bộ, công chức; tăng cường họp trực tuyến.",
                "Tỷ lệ hồ sơ thủ tục hành chính xử lý trực tuyến tăng rõ rệt so với cùng kỳ."],
    "shortcomings": ["Hạ tầng họp trực tuyến ở một số điểm cầu còn hạn chế; đường truyền chưa ổn định.",
                     "Một bộ phận người dân chưa quen sử dụng dịch vụ công trực tuyến."],
    "next_steps": ["Tiếp tục cắt giảm hội họp, văn bản; nâng cấp trang thiết bị phòng họp trực tuyến.",
                   "Đẩy mạnh số hóa hồ sơ, kết quả giải quyết thủ tục hành chính."],
    "proposals": ["Đề nghị cấp trên hỗ trợ kinh phí nâng cấp hệ thống họp trực tuyến.",
                  "Đề nghị tổ chức tập huấn kỹ năng số cho cán bộ, công chức cấp xã."],
}


XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def unit_mail(sender: str, to: str, subject: str, files: Sequence[tuple[str, bytes]], *, sent_at: datetime,
              in_reply_to: str = "", references: Sequence[str] = ()) -> EmailMessage:
    """A unit's reply as a real mail client writes it: its own Message-ID and Date, and the thread.

    Real clients give every mail a Message-ID (in the sender's domain: ``.example`` in the demo) and a
    Date, and a reply names what it answers (In-Reply-To, References = the request's References and
    Message-ID); the intake's answers thread under that id, so the simulation must not leave it out.
    """
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = email.utils.format_datetime(sent_at)
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or "donvi.example")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join([*references, in_reply_to])
    msg.set_content("Kính gửi bộ phận tổng hợp,\n\nĐơn vị gửi báo cáo theo biểu mẫu đính kèm.\n\nTrân trọng.")
    for filename, data in files:
        msg.add_attachment(data, maintype=XLSX_TYPE[0], subtype=XLSX_TYPE[1], filename=filename)
    return msg


@dataclass(frozen=True)
class Filled:
    values: dict[str, int]
    previous_year: dict[str, int]


def figures(catalog: Catalog, rng: random.Random, scale: float = 1.0) -> Filled:
    """Plausible counts for one unit that satisfy every relation of the catalogue."""
    values = {i.code: int(rng.randint(5, 60) * scale) + 1 for i in catalog.counts}
    lefts = {r.left for r in catalog.relations}
    # Right-hand sides first, so a chain (a <= b <= c) settles in one pass in catalogue order.
    for r in sorted(catalog.relations, key=lambda r: r.right in lefts):
        values[r.right] = max(values[r.right], 10)
        values[r.left] = int(values[r.right] * rng.uniform(0.5, 1.0))
    for d in catalog.derived:
        if d.kind == "max" and d.of:
            values[d.of] = rng.choice([0, 0, 0, 1])
    previous = {code: int(v * rng.uniform(1.0, 1.3)) for code, v in values.items()}
    for r in catalog.relations:
        previous[r.left] = min(previous[r.left], previous[r.right])
    return Filled(values, previous)


def _header_columns(ws, headers: tuple[str, ...]) -> tuple[int, dict[str, int]]:  # noqa: ANN001 - openpyxl sheet
    for row in ws.iter_rows(min_row=1, max_row=30):
        labels = {str(c.value).strip(): c.column for c in row if c.value is not None}
        if headers[0] in labels and all(h in labels for h in headers[:3]):
            return row[0].row, labels
    raise ValueError(f"header {headers} not found on sheet {ws.title}")


DEMO_PEOPLE = ("Nguyễn Thị Hoa", "Trần Văn Bình", "Lê Thị Thu", "Phạm Văn Đức", "Hoàng Thị Lan", "Vũ Văn Nam")
"""Made-up names the demo's clerks write on their forms."""


def fill_form(form: bytes, catalog: Catalog, filled: Filled, rng: random.Random, *,
              mistake: str | None = None, task_status: Mapping[int, str] | None = None) -> bytes:
    """The form with `Giá trị`, `Cùng kỳ năm trước` (where empty), tasks and narrative filled in.

    `mistake`: None, "relation" (a left-hand count above its right-hand one) or "decimal" (types 12,5).
    """
    wb = load_workbook(io.BytesIO(form))
    ws = wb[SHEET_COUNTS]
    header_row, cols = _header_columns(ws, COUNT_HEADERS)
    code_col, value_col, prev_col = cols["Mã"], cols["Giá trị"], cols["Cùng kỳ năm trước"]
    values = dict(filled.values)
    if mistake == "relation" and catalog.relations:
        r = catalog.relations[0]
        values[r.left] = values[r.right] + 5
    decimal_code = catalog.counts[0].code if mistake == "decimal" else None
    for row in range(header_row + 1, ws.max_row + 1):
        code = ws.cell(row, code_col).value
        if code not in values:
            continue
        ws.cell(row, value_col).value = "12,5" if code == decimal_code else values[code]
        if ws.cell(row, prev_col).value in (None, ""):
            ws.cell(row, prev_col).value = filled.previous_year[code]
    if SHEET_TEXTS in wb.sheetnames:
        wt = wb[SHEET_TEXTS]
        header_row, cols = _header_columns(wt, TEXT_HEADERS)
        sections = {i.code: i.section for i in catalog.texts}
        for row in range(header_row + 1, wt.max_row + 1):
            code = wt.cell(row, cols["Mã"]).value
            if code in sections and rng.random() < 0.8:
                wt.cell(row, cols["Ý kiến của đơn vị"]).value = rng.choice(SAMPLE_TEXTS.get(sections[code], ["—"]))
    if SHEET_TASKS in wb.sheetnames:
        wk = wb[SHEET_TASKS]
        header_row, cols = _header_columns(wk, TASK_HEADERS)
        for row in range(header_row + 1, wk.max_row + 1):
            number = wk.cell(row, cols["STT"]).value
            if number in (None, ""):
                continue
            status = (task_status or {}).get(int(number)) or rng.choice(list(STATUS_LABELS))
            wk.cell(row, cols["Trạng thái"]).value = STATUS_LABELS[status]
            if status == "done":
                wk.cell(row, cols["Sản phẩm"]).value = "Văn bản đã ban hành"
    if SHEET_INFO in wb.sheetnames:  # who prepared it, a phone and the head, as a clerk writes them
        wi = wb[SHEET_INFO]
        own = random.Random(form)  # not `rng`: the draws the demo's other choices make stay as they were
        given = {"preparer": own.choice(DEMO_PEOPLE), "phone": f"0220.3000.{own.randrange(1000):03d}",
                 "head": own.choice(DEMO_PEOPLE)}
        by_label = {label: key for key, label in CONTACT_LABELS.items()}
        for row in wi.iter_rows(max_col=1):
            key = by_label.get(str(row[0].value or "").strip())
            if key:
                wi.cell(row[0].row, 2).value = given[key]
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


PDF_TYPE = ("application", "pdf")


def issued_report_lines(draft_docx: bytes, number: str, issued_on_long: str, *, width: int = 80,
                        max_lines: int = 49) -> list[str]:
    """The issued report's page as the records office prints it: the draft's header block with the number
    after "Số:" and the date of issue, the "DỰ THẢO" mark removed, as much of the body as fits on a page,
    then the signature block ("Đã ký") and Nơi nhận.

    The signed PDF stands for the version the unit signed, so it is made from the draft the unit
    received (read as a reader would, table cell by cell and paragraph by paragraph), not from a fixed text."""
    import re
    import textwrap

    from docx import Document

    def lines_of(texts: list[str]) -> list[str]:
        out: list[str] = []
        for text in texts:
            for line in text.split("\n"):
                line = " ".join(line.split())
                if not line or line.upper() == "DỰ THẢO":
                    continue
                line = re.sub(r"^Số:\s*[^/]*/", f"Số: {number.split('/', 1)[0]}/", line)
                line = re.sub(r"ngày[\s\d.…]*tháng[\s\d.…]*năm\s*\d{4}", issued_on_long, line)
                out += textwrap.wrap(line, width)
        return out

    doc = Document(io.BytesIO(draft_docx))
    cells = [[cell.text for row in table.rows for cell in row.cells] for table in doc.tables]
    header = lines_of(cells[0]) if cells else []
    closing = []
    if len(cells) > 1:  # Nơi nhận | the signature block: the title, "(Đã ký)", the signer's name
        *title, name = [line for line in lines_of(cells[1][-1:])] or [""]
        closing = ["", *title, "(Đã ký)", name, "", *lines_of(cells[1][:-1])]
    body = lines_of([p.text for p in doc.paragraphs])
    room = max_lines - len(header) - len(closing) - 2
    if len(body) > room:
        body = [*body[:room - 1], "(...)"]
    return [*header, "", *body, *closing]


def issued_reply(draft: EmailMessage, sender: str, to: str, *, number: str, issued_on: str, pdf: bytes,
                 pdf_name: str, sent_at: datetime) -> EmailMessage:
    """A unit coordinator's answer to the draft report's mail, as a mail client writes a reply.

    What the draft's mail asks for: a reply (same subject, so the report's token stays in it, In-Reply-To
    and References of the draft) to the intake mailbox with the signed PDF attached and the number and
    date of issue written in the body ("Số: 123/BC-UBND, ngày 4/6/2026")."""
    subject = str(draft.get("Subject", ""))
    message_id = str(draft.get("Message-ID", "")).strip()
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, to
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    msg["Date"] = email.utils.format_datetime(sent_at)
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or "donvi.example")
    if message_id:
        msg["In-Reply-To"] = message_id
        msg["References"] = " ".join([*str(draft.get("References", "")).split(), message_id])
    msg.set_content("Kính gửi bộ phận tổng hợp,\n\n"
                    "Đơn vị gửi báo cáo đã được lãnh đạo ký số và văn thư đăng ký ban hành "
                    f"(tệp PDF đính kèm).\nSố: {number}, ngày {issued_on}.\n\nTrân trọng.")
    msg.add_attachment(pdf, maintype=PDF_TYPE[0], subtype=PDF_TYPE[1], filename=pdf_name)
    return msg
