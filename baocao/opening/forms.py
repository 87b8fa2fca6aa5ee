"""The XLSX form a unit fills in, and the CSV alternative for machine-to-machine submissions.

The national cycle sends 3,356 forms, so building them must be cheap. openpyxl takes tens of
milliseconds per workbook; instead :class:`FormBuilder` builds the styled template ONCE with openpyxl
(protection, data validation, column widths, fonts) and then, for each unit, patches only the parts
that change (the cells of ``Thông tin``, the ``Cùng kỳ năm trước`` column and the task rows) into
the template's sheet XML and writes a new zip. Unchanged parts are compressed once and copied as
raw bytes into every file.

How the patching finds its cells: every cell whose content depends on the unit is written into the
template holding a unique sentinel number (9 000 000 000 + n). openpyxl serialises it as
``<c r="B4" s="3" t="n"><v>9000000007</v></c>``; the template's XML is split at those cells once, and
each form is the static chunks joined with the rendered cells (inline strings, XML-escaped). Nothing
is parsed per form.

Layout (sheet names, column headers and ``Thông tin`` labels are a contract with :mod:`baocao.intake.reader`
and with the units' habits: change them only together with ``form_version``):

* ``Thông tin``: label in column A, value in column B: Mã đơn vị, Tên đơn vị, Mã kỳ báo cáo, Kỳ báo
  cáo, Hạn gửi báo cáo (05/6/2026), Đầu mối liên hệ, Email đầu mối, Nơi gửi báo cáo, Phiên bản biểu
  mẫu, Mã xác thực (locked); then Người lập biểu, Số điện thoại, Thủ trưởng đơn vị (input cells the
  intake reads back into ``submissions.contact``); then the legend and the instructions.
* ``Chỉ tiêu``: title, the unit's line, the legend, then the header STT | Chỉ tiêu | Đơn vị tính | Giá
  trị | Cùng kỳ năm trước | Ghi chú | Mã on row :data:`COUNT_HEADER_ROW`; the count indicators under
  the catalogue's groups (a bold row "I", "II", … per group, as the plans number them; STT runs 1, 2, …
  across groups). Giá trị and Ghi chú are inputs; Giá trị and Cùng kỳ năm trước carry a whole-number
  >= 0 validation. Cùng kỳ năm trước is prefilled and locked where the system knows last year's figure,
  and an input where it does not (the first year), so the unit gives it. ``Mã`` is last, small and
  grey: the reader's key, not something the clerk needs to read.
* ``Nhiệm vụ``: title, one line saying how many tasks the unit has (or that it has none in this
  period, and need not fill the sheet), the legend, then STT | Nội dung công việc | Vai trò | Thời hạn |
  Trạng thái | Sản phẩm | Ghi chú, one row per assigned task; Trạng thái is a drop-down, the last three
  columns are inputs.
* ``Đánh giá``: title, legend, STT | Nội dung | Ý kiến của đơn vị | Mã, one row per text indicator.

The reader finds every table by its header labels and every value by ``Mã`` (never by position), so
forms of the earlier layout (header on row 1, ``Mã`` in column A, no groups) read the same; the
layout changed without a new ``form_version`` for that reason (tests/data/forms/ keeps such a file).

Printing (the clerk prints it for the head to sign): A4, fit to the page width (any number of pages
tall), the header row repeated on every page, "Trang n/N" in the footer; every wrapped row gets an
explicit height estimated from its text and column width (openpyxl does not size rows, and LibreOffice
does not either for a row whose height the file gives). Input cells are light yellow with a border
and unlocked; locked cells have no fill (prefilled system values in grey).

Every sheet is protected without a password: protection prevents accidental edits, it is not a
security boundary (the token is). Columns and rows can still be resized.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import unicodedata
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Protection, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.page import PageMargins

from baocao.rules.catalog import Catalog, Indicator
from baocao.rules.formatting import date_vi
from baocao.rules.hierarchy import Unit
from baocao.rules.periods import Period

__all__ = [
    "CONTACT_LABELS",
    "COUNT_COLUMNS",
    "COUNT_HEADERS",
    "COUNT_HEADER_ROW",
    "CSV_COLUMNS",
    "CSV_OPTIONAL_COLUMNS",
    "CSV_REQUIRED_COLUMNS",
    "INFO_LABELS",
    "SHEET_COUNTS",
    "SHEET_INFO",
    "SHEET_TASKS",
    "SHEET_TEXTS",
    "STATUS_LABELS",
    "TASK_HEADERS",
    "TASK_HEADER_ROW",
    "TEXT_COLUMNS",
    "TEXT_HEADERS",
    "TEXT_HEADER_ROW",
    "FormBuilder",
    "FormSpec",
    "FormTask",
    "csv_template",
    "form_filename",
]

# ------------------------------------------------------------------------------------------ contract
SHEET_INFO = "Thông tin"
SHEET_COUNTS = "Chỉ tiêu"
SHEET_TASKS = "Nhiệm vụ"
SHEET_TEXTS = "Đánh giá"

COUNT_HEADERS = ("Mã", "Chỉ tiêu", "Đơn vị tính", "Giá trị", "Cùng kỳ năm trước", "Ghi chú")
"""The count table's header labels (the contract the reader and units' tools use, in any column order)."""
TASK_HEADERS = ("STT", "Nội dung công việc", "Vai trò", "Thời hạn", "Trạng thái", "Sản phẩm", "Ghi chú")
TEXT_HEADERS = ("Mã", "Nội dung", "Ý kiến của đơn vị")

COUNT_COLUMNS = ("STT", "Chỉ tiêu", "Đơn vị tính", "Giá trị", "Cùng kỳ năm trước", "Ghi chú", "Mã")
"""The columns of ``Chỉ tiêu`` as printed, left to right (Giá trị stays in column D)."""
TEXT_COLUMNS = ("STT", "Nội dung", "Ý kiến của đơn vị", "Mã")
"""The columns of ``Đánh giá`` as printed (Ý kiến của đơn vị stays in column C)."""
COUNT_HEADER_ROW = 4
TASK_HEADER_ROW = 4
TEXT_HEADER_ROW = 3
"""Rows of the header labels (title, unit line and legend above them)."""

INFO_LABELS: Mapping[str, str] = {
    "unit_code": "Mã đơn vị",
    "unit_name": "Tên đơn vị",
    "period_code": "Mã kỳ báo cáo",
    "period_label": "Kỳ báo cáo",
    "deadline": "Hạn gửi báo cáo",
    "data_period": "Thời gian lấy số liệu",
    "coordinator_name": "Đầu mối liên hệ",
    "coordinator_email": "Email đầu mối",
    "reply_to": "Nơi gửi báo cáo",
    "form_version": "Phiên bản biểu mẫu",
    "token": "Mã xác thực",
}
"""Label (column A of ``Thông tin``) of each value (column B). The reader finds values by label."""

CONTACT_LABELS: Mapping[str, str] = {
    "preparer": "Người lập biểu",
    "phone": "Số điện thoại",
    "head": "Thủ trưởng đơn vị",
}
"""The unit's own entries on ``Thông tin`` (input cells), read back into ``submissions.contact``."""

STATUS_LABELS: Mapping[str, str] = {
    "done": "Đã hoàn thành",
    "in_progress": "Đang thực hiện",
    "not_started": "Chưa thực hiện",
}
ROLE_LABELS: Mapping[str, str] = {"lead": "Chủ trì", "partner": "Phối hợp"}

CSV_REQUIRED_COLUMNS = ("ma_don_vi", "ky_bao_cao", "ma_chi_tieu", "gia_tri")
CSV_OPTIONAL_COLUMNS = ("cung_ky_nam_truoc", "ghi_chu", "ma_xac_thuc")
CSV_COLUMNS = CSV_REQUIRED_COLUMNS + CSV_OPTIONAL_COLUMNS

MAX_TASK_ROWS = 500
"""The Trạng thái drop-down covers this many task rows (plans have 12-19 tasks)."""

INSTRUCTIONS = (
    "Hướng dẫn điền biểu mẫu:\n"
    "1. Trang Chỉ tiêu: nhập số liệu lũy kế trong thời gian lấy số liệu ghi ở trên vào cột Giá trị "
    "(số nguyên, không âm, ví dụ 12 hoặc 1.234). Nếu cột Cùng kỳ năm trước còn trống, "
    "đề nghị đơn vị nhập số liệu cùng kỳ năm trước của đơn vị. Có thể ghi giải thích ở cột Ghi chú.\n"
    "2. Trang Nhiệm vụ: chọn Trạng thái của từng nhiệm vụ được giao, ghi Sản phẩm và Ghi chú.\n"
    "3. Trang Đánh giá: ghi ý kiến của đơn vị vào cột Ý kiến của đơn vị.\n"
    "4. Ghi Người lập biểu, Số điện thoại và Thủ trưởng đơn vị ở trang này.\n"
    "5. Lưu tệp dưới dạng Excel (.xlsx), giữ nguyên tên trang, tiêu đề cột và mã xác thực, "
    "rồi gửi tệp đính kèm thư điện tử đến địa chỉ ở mục Nơi gửi báo cáo."
)

LEGEND = ("Ô nền vàng có viền là ô đơn vị nhập; các ô khác đã khóa để tránh sửa nhầm (chữ xám: thông tin "
          "hệ thống điền sẵn; trang được bảo vệ không đặt mật khẩu).")
"""The legend line on every sheet, next to a sample input cell."""


# ------------------------------------------------------------------------------------------ specs
@dataclass(frozen=True)
class FormTask:
    """One task of the plan's appendix assigned to the unit, as listed on ``Nhiệm vụ``."""

    number: int
    content: str
    deadline_text: str
    role: str  # "lead" (chủ trì) | "partner" (phối hợp)


@dataclass(frozen=True)
class FormSpec:
    """Everything that differs between two units' forms."""

    unit: Unit
    period: Period
    deadline: date
    token: str
    form_version: int
    coordinator_name: str
    coordinator_email: str
    reply_to: str
    previous_year: Mapping[str, int | None] = field(default_factory=dict)
    tasks: Sequence[FormTask] = ()
    data_period: str = ""  # the request's words for the ND 09/2019 window and the estimates (baocao.rules.dataperiod)


_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f\\/:*?"<>|]+')


def form_filename(spec: FormSpec) -> str:
    """ "Biểu báo cáo 6 tháng đầu năm 2026 - Phường Nhị Chiểu.xlsx": the name a clerk would give it.

    Vietnamese letters travel RFC 2231-encoded (baocao.mail.mime); what Windows or a mail client
    cannot hold in a file name (path separators, ``:*?"<>|``, control characters) is dropped, and the
    name is capped so that a long department name still leaves the ``.xlsx``.
    """
    name = unicodedata.normalize("NFC", f"Biểu báo cáo {spec.period.label_vi} - {spec.unit.name}")
    name = " ".join(_UNSAFE_IN_NAME.sub(" ", name).split()).strip(" .")[:120].rstrip(" .")
    return f"{name or 'Biểu báo cáo'}.xlsx"


# ------------------------------------------------------------------------------------------ XML helpers
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: str) -> str:
    """Escape text for an element body; drop characters XML 1.0 cannot carry (they break Excel)."""
    value = _INVALID_XML.sub("", value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _style(style: int | None) -> str:
    return f' s="{style}"' if style else ""


def _str_cell(ref: str, style: int | None, text: str) -> str:
    if not text:
        return f'<c r="{ref}"{_style(style)}/>'
    return f'<c r="{ref}"{_style(style)} t="inlineStr"><is><t xml:space="preserve">{_xml_text(text)}</t></is></c>'


def _num_cell(ref: str, style: int | None, number: int | None) -> str:
    if number is None:
        return f'<c r="{ref}"{_style(style)}/>'
    return f'<c r="{ref}"{_style(style)}><v>{int(number)}</v></c>'


# ------------------------------------------------------------------------------------------ raw zip
@dataclass(frozen=True)
class _Member:
    """A zip member already compressed: static parts are deflated once, at template time."""

    name: bytes
    crc: int
    size: int
    data: bytes  # raw deflate stream

    @classmethod
    def of(cls, name: str, content: bytes, level: int = 6) -> _Member:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        data = compressor.compress(content) + compressor.flush()
        return cls(name.encode("utf-8"), zlib.crc32(content), len(content), data)


_DOS_TIME, _DOS_DATE = 0, (2026 - 1980) << 9 | 1 << 5 | 1  # 01/01/2026 00:00, fixed: forms are reproducible


def _zip(members: Sequence[_Member]) -> bytes:
    """A plain deflate zip (no zip64, no data descriptors): what Excel and LibreOffice read best."""
    out = io.BytesIO()
    central = []
    for m in members:
        offset = out.tell()
        flags = 0x800  # names are UTF-8
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 8, _DOS_TIME, _DOS_DATE,
                              m.crc, len(m.data), m.size, len(m.name), 0))
        out.write(m.name)
        out.write(m.data)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, 8, _DOS_TIME, _DOS_DATE,
                                   m.crc, len(m.data), m.size, len(m.name), 0, 0, 0, 0, 0, offset) + m.name)
    start = out.tell()
    for entry in central:
        out.write(entry)
    size = out.tell() - start
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), size, start, 0))
    return out.getvalue()


# ------------------------------------------------------------------------------------------ template
_SENTINEL_BASE = 9_000_000_000
_SENTINEL_CELL = re.compile(
    r'<c r="(?P<ref>[A-Z]+[0-9]+)"(?: s="(?P<s>[0-9]+)")?(?: t="n")?><v>(?P<v>9[0-9]{9})</v></c>'
)

_Renderer = Callable[[FormSpec], str]


@dataclass
class _Sheet:
    """A sheet's XML split at its unit-dependent cells: chunks[0] r0 chunks[1] r1 ... chunks[n]."""

    path: str
    chunks: list[str]
    renderers: list[_Renderer]
    tail: Callable[[FormSpec, str], str] | None = None  # final rewrite (task rows, dimension)

    def render(self, spec: FormSpec) -> bytes:
        parts = [self.chunks[0]]
        for renderer, chunk in zip(self.renderers, self.chunks[1:], strict=True):
            parts.append(renderer(spec))
            parts.append(chunk)
        xml = "".join(parts)
        if self.tail is not None:
            xml = self.tail(spec, xml)
        return xml.encode("utf-8")


_THIN = Side(style="thin", color="808080")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_FONT_NAME = "Times New Roman"
_FONT = Font(name=_FONT_NAME, size=12)
_BOLD = Font(name=_FONT_NAME, size=12, bold=True)
_TITLE = Font(name=_FONT_NAME, size=14, bold=True)
_SYSTEM = Font(name=_FONT_NAME, size=12, color="595959")  # prefilled by the system, locked
_SYSTEM_BOLD = Font(name=_FONT_NAME, size=12, color="404040", bold=True)
_CODE = Font(name=_FONT_NAME, size=9, color="808080")  # the reader's key, not for the clerk
_ITALIC = Font(name=_FONT_NAME, size=12, italic=True)
_HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
_INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")  # light yellow: "write here"
_INPUT_BORDER_SIDE = Side(style="thin", color="BF8F00")
_INPUT_BORDER = Border(left=_INPUT_BORDER_SIDE, right=_INPUT_BORDER_SIDE, top=_INPUT_BORDER_SIDE,
                       bottom=_INPUT_BORDER_SIDE)
_WRAP = Alignment(wrap_text=True, vertical="top")
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_CENTER_TOP = Alignment(horizontal="center", vertical="top", wrap_text=True)
_UNLOCKED = Protection(locked=False)
_LOCKED = Protection(locked=True)
_NUMBER_FORMAT = "#,##0"
_TEXT_FORMAT = "@"  # a phone number typed as 0912… keeps its leading zero

_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")

# Column widths (Excel units, about one digit each) of each sheet, left to right.
_INFO_WIDTHS = (30.0, 62.0)
_COUNT_WIDTHS = (6.0, 58.0, 12.0, 14.0, 14.0, 28.0, 17.0)
_TASK_WIDTHS = (6.0, 58.0, 10.0, 18.0, 18.0, 26.0, 24.0)
_TEXT_WIDTHS = (6.0, 36.0, 88.0, 17.0)

_LINE_PT = 15.75  # one line of 12 pt Times New Roman, as Excel and LibreOffice lay it out
_CHARS_PER_WIDTH = 1.25  # characters of 12 pt Times New Roman per width unit, measured in LibreOffice (~1.45), less a margin


def text_lines(text: str, width: float, *, bold: bool = False) -> int:
    """How many lines ``text`` takes wrapped in a column ``width`` wide: greedy word wrap over an
    estimated number of characters per line. openpyxl does not size rows, and LibreOffice keeps the
    height a file gives; a row left at one line under three lines of text prints over the next row."""
    per_line = max(1, int(width * _CHARS_PER_WIDTH * (0.9 if bold else 1.0)) - 1)
    lines = 0
    for paragraph in (text or "").split("\n"):
        count, used = 1, 0
        for word in paragraph.split():
            size = len(word)
            while size > per_line:  # a word longer than the line breaks anywhere
                count += 1 if used else 0
                size -= per_line
                used = 0
            if used and used + 1 + size > per_line:
                count, used = count + 1, size
            else:
                used = used + 1 + size if used else size
        lines += count
    return max(1, lines)


def row_height(*cells: tuple[str, float]) -> float:
    """The height (points) of a row whose wrapped cells are ``(text, column width)``."""
    lines = max((text_lines(text, width) for text, width in cells), default=1)
    return round(lines * _LINE_PT + 4, 2)


def _print_setup(ws, *, landscape: bool, header_row: int | None) -> None:  # noqa: ANN001
    """A4, the whole width on one page, as many pages tall as needed, header row on every page."""
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = "landscape" if landscape else "portrait"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_margins = PageMargins(left=0.5, right=0.5, top=0.6, bottom=0.6, header=0.3, footer=0.3)
    ws.print_options.horizontalCentered = True
    if header_row is not None:
        ws.print_title_rows = f"{header_row}:{header_row}"
    ws.oddFooter.center.text = "&A - Trang &P/&N"
    ws.oddFooter.center.font = _FONT_NAME
    ws.oddFooter.center.size = 10


def _widths(ws, widths: Sequence[float]) -> None:  # noqa: ANN001
    for col, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(col)].width = width


def _protect(ws) -> None:  # noqa: ANN001
    ws.protection.sheet = True
    ws.protection.formatColumns = False
    ws.protection.formatRows = False


class FormBuilder:
    """Builds each unit's form from one template made for the catalogue.

    Make one builder per cycle (the template takes ~50 ms) and call :meth:`build` per unit
    (well under 5 ms).
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._counts = list(catalog.counts)
        self._sentinels: dict[int, tuple[str, _Renderer]] = {}
        self._task_styles: list[int] = []
        self._prev_locked_style = 0
        self._prev_open_style = 0
        self._info_rows: dict[str, int] = {}
        workbook = self._template()
        buffer = io.BytesIO()
        workbook.save(buffer)
        self._split(buffer.getvalue())

    # ---------------------------------------------------------------- template (openpyxl, once)
    def _slot(self, cell: object, renderer_of: Callable[[str, int], _Renderer]) -> None:
        number = _SENTINEL_BASE + len(self._sentinels) + 1
        cell.value = number  # type: ignore[attr-defined]
        self._sentinels[number] = (cell.coordinate, renderer_of)  # type: ignore[attr-defined]

    def _template(self) -> Workbook:
        wb = Workbook()
        info = wb.active
        info.title = SHEET_INFO
        counts = wb.create_sheet(SHEET_COUNTS)
        tasks = wb.create_sheet(SHEET_TASKS)
        texts = wb.create_sheet(SHEET_TEXTS)
        self._info_sheet(info)
        self._counts_sheet(counts)
        self._tasks_sheet(tasks)
        self._texts_sheet(texts)
        wb.properties.creator = "baocao"
        wb.properties.title = "Biểu mẫu báo cáo định kỳ"
        return wb

    def _title(self, ws, row: int, text: str, last_col: int, *, font: Font = _TITLE) -> None:  # noqa: ANN001
        cell = ws.cell(row=row, column=1, value=text)
        cell.font = font
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=last_col)
        ws.row_dimensions[row].height = 22

    def _legend(self, ws, row: int, last_col: int, widths: Sequence[float]) -> None:  # noqa: ANN001
        """A sample input cell, then the legend text: what is filled in and what is locked."""
        sample = ws.cell(row=row, column=1)
        sample.fill = _INPUT_FILL
        sample.border = _INPUT_BORDER
        text = ws.cell(row=row, column=2, value=LEGEND)
        text.font = _ITALIC
        text.alignment = _WRAP
        ws.merge_cells(start_row=row, start_column=2, end_row=row, end_column=last_col)
        ws.row_dimensions[row].height = row_height((LEGEND, sum(widths[1:last_col])))

    def _info_sheet(self, ws) -> None:  # noqa: ANN001
        _widths(ws, _INFO_WIDTHS)
        ws["A1"] = "BIỂU MẪU BÁO CÁO KẾT QUẢ THỰC HIỆN KẾT LUẬN SỐ 226-KL/TW"
        ws["A1"].font = _TITLE
        ws["A1"].alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.merge_cells("A1:B1")
        ws.row_dimensions[1].height = 40
        numeric = {"form_version"}
        row = 3
        for key, label in INFO_LABELS.items():
            label_cell = ws.cell(row=row, column=1, value=label)
            label_cell.font = _BOLD
            label_cell.border = _BORDER
            label_cell.alignment = _WRAP
            value_cell = ws.cell(row=row, column=2)
            value_cell.font = _SYSTEM_BOLD if key in ("unit_code", "unit_name", "token", "deadline") else _SYSTEM
            value_cell.border = _BORDER
            value_cell.alignment = Alignment(horizontal="left", vertical="top", wrap_text=True)
            value_cell.protection = _LOCKED
            ws.row_dimensions[row].height = row_height()
            self._info_rows[key] = row
            if key in numeric:
                self._slot(value_cell, lambda ref, s: lambda spec: _num_cell(ref, s, spec.form_version))
            else:
                self._slot(value_cell, _info_renderer(key))
            row += 1
        row += 1
        heading = ws.cell(row=row, column=1, value="Đơn vị ghi:")
        heading.font = _BOLD
        row += 1
        for key, label in CONTACT_LABELS.items():
            label_cell = ws.cell(row=row, column=1, value=label)
            label_cell.font = _BOLD
            label_cell.border = _BORDER
            self._input(ws.cell(row=row, column=2), number=False)
            if key == "phone":
                ws.cell(row=row, column=2).number_format = _TEXT_FORMAT
            ws.row_dimensions[row].height = row_height() + 4
            row += 1
        row += 1
        self._legend(ws, row, 2, _INFO_WIDTHS)
        row += 2
        note = ws.cell(row=row, column=1, value=INSTRUCTIONS)
        note.font = _FONT
        note.alignment = _WRAP
        ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=2)
        ws.row_dimensions[row].height = row_height((INSTRUCTIONS, sum(_INFO_WIDTHS)))
        _print_setup(ws, landscape=False, header_row=None)
        _protect(ws)

    def _header(self, ws, row: int, headers: Sequence[str], widths: Sequence[float]) -> None:  # noqa: ANN001
        for col, title in enumerate(headers, start=1):
            cell = ws.cell(row=row, column=col, value=title)
            cell.font = _BOLD
            cell.fill = _HEADER_FILL
            cell.border = _BORDER
            cell.alignment = _CENTER
        ws.row_dimensions[row].height = row_height(*zip(headers, widths, strict=True))
        _widths(ws, widths)
        ws.freeze_panes = f"A{row + 1}"
        _protect(ws)

    def _locked(self, cell, value: object = None, *, font: Font = _FONT,  # noqa: ANN001
                alignment: Alignment = _WRAP) -> None:
        if value is not None:
            cell.value = value
        cell.font = font
        cell.border = _BORDER
        cell.alignment = alignment
        cell.protection = _LOCKED

    def _count_groups(self) -> list[tuple[str, list[Indicator]]]:
        """The count indicators under the catalogue's groups, in the groups' order (a count whose
        group the catalogue does not list comes last, under its own code)."""
        by_group: dict[str, list[Indicator]] = {}
        for ind in self._counts:
            by_group.setdefault(ind.group, []).append(ind)
        order = [g.code for g in self.catalog.groups if g.code in by_group]
        order += [code for code in by_group if code not in order]
        return [(self.catalog.group_title(code) if code else "Chỉ tiêu khác", by_group[code]) for code in order]

    def _counts_sheet(self, ws) -> None:  # noqa: ANN001
        last_col = len(COUNT_COLUMNS)
        self._title(ws, 1, "SỐ LIỆU KẾT QUẢ THỰC HIỆN KẾT LUẬN SỐ 226-KL/TW", last_col)
        unit_line = ws.cell(row=2, column=1)
        unit_line.font = _BOLD
        unit_line.alignment = Alignment(horizontal="center", vertical="center")
        ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=last_col)
        self._slot(unit_line, lambda ref, s: lambda spec: _str_cell(ref, s, _unit_line(spec)))
        self._legend(ws, 3, last_col, _COUNT_WIDTHS)
        self._header(ws, COUNT_HEADER_ROW, COUNT_COLUMNS, _COUNT_WIDTHS)
        w = _COUNT_WIDTHS
        row, number = COUNT_HEADER_ROW + 1, 0
        first = row
        for g, (title, indicators) in enumerate(self._count_groups()):
            self._locked(ws.cell(row=row, column=1), _ROMAN[g] if g < len(_ROMAN) else str(g + 1), font=_BOLD,
                         alignment=_CENTER_TOP)
            self._locked(ws.cell(row=row, column=2), title, font=_BOLD)
            for col in range(3, last_col + 1):
                self._locked(ws.cell(row=row, column=col))
            ws.merge_cells(start_row=row, start_column=2, end_row=row, end_column=last_col)
            ws.row_dimensions[row].height = row_height((title, sum(w[1:])))
            row += 1
            for ind in indicators:
                number += 1
                self._locked(ws.cell(row=row, column=1), number, alignment=_CENTER_TOP)
                self._locked(ws.cell(row=row, column=2), ind.label)
                self._locked(ws.cell(row=row, column=3), ind.unit, alignment=_CENTER_TOP)
                value_cell = ws.cell(row=row, column=4)
                self._input(value_cell, number=True)
                prev = ws.cell(row=row, column=5)
                self._locked(prev, font=_SYSTEM, alignment=Alignment(vertical="top"))
                prev.number_format = _NUMBER_FORMAT
                self._prev_locked_style = prev.style_id
                self._prev_open_style = value_cell.style_id  # an unknown last-year figure is an input cell
                code = ind.code
                self._slot(prev, lambda ref, s, code=code: self._prev_renderer(ref, code))
                self._input(ws.cell(row=row, column=6), number=False)
                self._locked(ws.cell(row=row, column=7), ind.code, font=_CODE)
                ws.row_dimensions[row].height = row_height((ind.label, w[1]), (ind.unit, w[2]))
                row += 1
        last = row - 1
        dv = DataValidation(
            type="whole", operator="greaterThanOrEqual", formula1="0", allow_blank=True,
            showErrorMessage=True, showInputMessage=True, errorStyle="stop",
            errorTitle="Giá trị không hợp lệ",
            error="Chỉ nhập số nguyên không âm (0, 1, 2, ...), không có phần thập phân, không nhập chữ.",
            promptTitle="Số liệu lũy kế", prompt="Nhập số nguyên không âm, lũy kế trong thời gian lấy số liệu (trang Thông tin).",
        )
        ws.add_data_validation(dv)
        dv.add(f"D{first}:E{last}")
        _print_setup(ws, landscape=True, header_row=COUNT_HEADER_ROW)

    def _input(self, cell, *, number: bool) -> None:  # noqa: ANN001
        cell.font = _FONT
        cell.border = _INPUT_BORDER
        cell.fill = _INPUT_FILL
        cell.protection = _UNLOCKED
        if number:
            cell.number_format = _NUMBER_FORMAT
            cell.alignment = Alignment(vertical="top")
        else:
            cell.alignment = _WRAP

    def _prev_renderer(self, ref: str, code: str) -> _Renderer:
        locked, open_ = self._prev_locked_style, self._prev_open_style

        def render(spec: FormSpec) -> str:
            value = spec.previous_year.get(code)
            if value is None:
                return _num_cell(ref, open_, None)
            return _num_cell(ref, locked, value)

        return render

    def _tasks_sheet(self, ws) -> None:  # noqa: ANN001
        last_col = len(TASK_HEADERS)
        self._title(ws, 1, "NHIỆM VỤ ĐƯỢC GIAO TRONG PHỤ LỤC KẾ HOẠCH", last_col)
        note = ws.cell(row=2, column=1)
        note.font = _BOLD
        note.alignment = Alignment(horizontal="left", vertical="center", wrap_text=True)
        ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=last_col)
        ws.row_dimensions[2].height = row_height() + 4
        self._slot(note, lambda ref, s: lambda spec: _str_cell(ref, s, _tasks_line(spec)))
        self._legend(ws, 3, last_col, _TASK_WIDTHS)
        self._header(ws, TASK_HEADER_ROW, TASK_HEADERS, _TASK_WIDTHS)
        styles = []
        row = TASK_HEADER_ROW + 1
        for col in range(1, len(TASK_HEADERS) + 1):
            cell = ws.cell(row=row, column=col)
            if col >= 5:
                self._input(cell, number=False)
            else:
                self._locked(cell, alignment=_CENTER_TOP if col in (1, 3) else _WRAP)
            styles.append(cell.style_id)
            del ws._cells[(row, col)]  # the style stays registered; rows are written per form
        self._task_styles = styles
        choices = ",".join(STATUS_LABELS.values())
        dv = DataValidation(
            type="list", formula1=f'"{choices}"', allow_blank=True, showErrorMessage=True,
            errorStyle="stop", errorTitle="Trạng thái không hợp lệ",
            error="Chọn một trong: " + ", ".join(STATUS_LABELS.values()) + ".",
        )
        ws.add_data_validation(dv)
        dv.add(f"E{row}:E{MAX_TASK_ROWS + row - 1}")
        _print_setup(ws, landscape=True, header_row=TASK_HEADER_ROW)

    def _texts_sheet(self, ws) -> None:  # noqa: ANN001
        last_col = len(TEXT_COLUMNS)
        self._title(ws, 1, "ĐÁNH GIÁ CỦA ĐƠN VỊ", last_col)
        self._legend(ws, 2, last_col, _TEXT_WIDTHS)
        self._header(ws, TEXT_HEADER_ROW, TEXT_COLUMNS, _TEXT_WIDTHS)
        for number, ind in enumerate(self.catalog.texts, start=1):
            row = TEXT_HEADER_ROW + number
            self._locked(ws.cell(row=row, column=1), number, alignment=_CENTER_TOP)
            self._locked(ws.cell(row=row, column=2), ind.label)
            self._input(ws.cell(row=row, column=3), number=False)
            self._locked(ws.cell(row=row, column=4), ind.code, font=_CODE)
            ws.row_dimensions[row].height = max(90.0, row_height((ind.label, _TEXT_WIDTHS[1])))
        _print_setup(ws, landscape=True, header_row=TEXT_HEADER_ROW)

    # ---------------------------------------------------------------- split the saved template
    def _split(self, template: bytes) -> None:
        import zipfile

        static: dict[str, bytes] = {}
        with zipfile.ZipFile(io.BytesIO(template)) as zf:
            names = zf.namelist()
            for name in names:
                static[name] = zf.read(name)
        # openpyxl names sheet parts by position; the sheets were created in this order.
        sheet_paths = {SHEET_INFO: "xl/worksheets/sheet1.xml", SHEET_COUNTS: "xl/worksheets/sheet2.xml",
                       SHEET_TASKS: "xl/worksheets/sheet3.xml"}
        self._sheets: list[_Sheet] = []
        for title, path in sheet_paths.items():
            xml = static[path].decode("utf-8")
            chunks, renderers, last = [], [], 0
            for match in _SENTINEL_CELL.finditer(xml):
                number = int(match["v"])
                if number not in self._sentinels:
                    continue
                ref, renderer_of = self._sentinels.pop(number)
                if ref != match["ref"]:
                    raise RuntimeError(f"template cell {ref} came out as {match['ref']}")
                chunks.append(xml[last:match.start()])
                renderers.append(renderer_of(ref, int(match["s"] or 0)))
                last = match.end()
            chunks.append(xml[last:])
            sheet = _Sheet(path, chunks, renderers)
            if title == SHEET_TASKS:
                sheet.tail = self._task_rows
            elif title == SHEET_INFO:
                sheet.tail = self._info_heights
            self._sheets.append(sheet)
        if self._sentinels:
            raise RuntimeError(f"template cells not found in the XML: {sorted(self._sentinels)}")
        dynamic = {s.path for s in self._sheets}
        # [Content_Types].xml first, as Office writes it; then everything else in template order.
        order = ["[Content_Types].xml"] + [n for n in names if n != "[Content_Types].xml"]
        self._order = order
        self._static = {n: _Member.of(n, static[n]) for n in order if n not in dynamic}

    def _info_heights(self, spec: FormSpec, xml: str) -> str:
        """The rows of ``Thông tin`` whose text differs per unit get the height their text needs."""
        width = _INFO_WIDTHS[1]
        for key in ("unit_name", "data_period", "coordinator_name", "coordinator_email", "reply_to"):
            text = _INFO_TEXT[key](spec)
            if text_lines(text, width) > 1:
                xml = _with_row_height(xml, self._info_rows[key], row_height((text, width)))
        return xml

    def _task_rows(self, spec: FormSpec, xml: str) -> str:
        if not spec.tasks:
            return xml
        s = self._task_styles
        w = _TASK_WIDTHS
        rows = []
        first = TASK_HEADER_ROW + 1
        for i, task in enumerate(spec.tasks, start=first):
            role = ROLE_LABELS.get(task.role, task.role)
            height = row_height((task.content, w[1]), (role, w[2]), (task.deadline_text, w[3]))
            cells = (
                _num_cell(f"A{i}", s[0], task.number),
                _str_cell(f"B{i}", s[1], task.content),
                _str_cell(f"C{i}", s[2], role),
                _str_cell(f"D{i}", s[3], task.deadline_text),
                _str_cell(f"E{i}", s[4], ""),
                _str_cell(f"F{i}", s[5], ""),
                _str_cell(f"G{i}", s[6], ""),
            )
            rows.append(f'<row r="{i}" ht="{height}" customHeight="1">{"".join(cells)}</row>')
        last = len(spec.tasks) + first - 1
        xml = re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="A1:G{last}"/>', xml, count=1)
        if "<sheetData/>" in xml:
            return xml.replace("<sheetData/>", "<sheetData>" + "".join(rows) + "</sheetData>", 1)
        return xml.replace("</sheetData>", "".join(rows) + "</sheetData>", 1)

    # ---------------------------------------------------------------- per unit
    def build(self, spec: FormSpec) -> bytes:
        """One unit's ``.xlsx`` as bytes (deterministic for the same spec)."""
        if len(spec.tasks) > MAX_TASK_ROWS:
            raise ValueError(f"a form holds at most {MAX_TASK_ROWS} tasks, got {len(spec.tasks)}")
        dynamic = {s.path: _Member.of(s.path, s.render(spec), level=1) for s in self._sheets}
        return _zip([dynamic.get(n) or self._static[n] for n in self._order])


_INFO_TEXT: dict[str, Callable[[FormSpec], str]] = {
    "unit_code": lambda spec: spec.unit.code,
    "unit_name": lambda spec: spec.unit.name,
    "period_code": lambda spec: spec.period.code,
    "period_label": lambda spec: spec.period.label_vi,
    "deadline": lambda spec: date_vi(spec.deadline),  # 05/6/2026, as the mails write it
    "data_period": lambda spec: spec.data_period,
    "coordinator_name": lambda spec: spec.coordinator_name,
    "coordinator_email": lambda spec: spec.coordinator_email,
    "reply_to": lambda spec: spec.reply_to,
    "token": lambda spec: spec.token,
}


def _unit_line(spec: FormSpec) -> str:
    """The line under the title of ``Chỉ tiêu``: whose figures, for which period (on every printout)."""
    return f"{spec.unit.name} - {spec.period.label_vi} - hạn gửi {date_vi(spec.deadline)}"


def _tasks_line(spec: FormSpec) -> str:
    """Says what the ``Nhiệm vụ`` sheet holds, and why it is empty when the unit has no task."""
    if not spec.tasks:
        return ("Đơn vị không được giao nhiệm vụ nào trong Phụ lục kế hoạch trong kỳ này; "
                "đơn vị không cần điền trang này.")
    return (f"Đơn vị được giao {len(spec.tasks)} nhiệm vụ; đề nghị đơn vị chọn Trạng thái của từng nhiệm vụ, "
            "ghi Sản phẩm và Ghi chú.")


_ROW_TAG = r'<row r="{row}"(?P<attrs>[^>]*?)(?P<end>/?)>'


def _with_row_height(xml: str, row: int, height: float) -> str:
    """Set the height of one row of a sheet's XML (the template wrote one for every row)."""
    def fix(match: re.Match[str]) -> str:
        attrs = re.sub(r'\s(?:ht|customHeight)="[^"]*"', "", match["attrs"])
        return f'<row r="{row}"{attrs} ht="{height}" customHeight="1"{match["end"]}>'

    return re.sub(_ROW_TAG.format(row=row), fix, xml, count=1)


def _info_renderer(key: str) -> Callable[[str, int], _Renderer]:
    get = _INFO_TEXT[key]

    def renderer_of(ref: str, style: int) -> _Renderer:
        return lambda spec: _str_cell(ref, style, get(spec))

    return renderer_of


_builders: dict[int, FormBuilder] = {}
_builders_lock = threading.Lock()


def builder_for(catalog: Catalog) -> FormBuilder:
    """The process's builder for one catalogue (each plan has its own wording), made once: a builder
    takes 0.7 s to make. The builder keeps its catalogue alive, so the id never names another one."""
    with _builders_lock:
        builder = _builders.get(id(catalog))
        if builder is None or builder.catalog is not catalog:
            builder = _builders[id(catalog)] = FormBuilder(catalog)
        return builder


# ------------------------------------------------------------------------------------------ CSV
def csv_template(catalog: Catalog, *, unit_code: str = "", period: str = "", token: str = "") -> str:
    """A CSV with the header and one empty row per indicator (counts, then texts), for a system that
    submits by file instead of filling the XLSX. Pass a unit, period and token to prefill them."""
    lines = [",".join(CSV_COLUMNS)]
    for ind in [*catalog.counts, *catalog.texts]:
        lines.append(",".join((_csv_field(unit_code), _csv_field(period), _csv_field(ind.code), "", "", "",
                               _csv_field(token))))
    return "\r\n".join(lines) + "\r\n"


def _csv_field(value: str) -> str:
    if any(ch in value for ch in ',;"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value
