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
  cáo, Hạn gửi báo cáo (dd/mm/yyyy), Đầu mối liên hệ, Email đầu mối, Nơi gửi báo cáo, Phiên bản biểu
  mẫu, Mã xác thực; then the instructions. Everything locked.
* ``Chỉ tiêu``: Mã | Chỉ tiêu | Đơn vị tính | Giá trị | Cùng kỳ năm trước | Ghi chú, one row per count
  indicator in catalogue order. Giá trị and Ghi chú unlocked; Giá trị and Cùng kỳ năm trước carry a
  whole-number >= 0 validation. Cùng kỳ năm trước is prefilled and locked where the system knows last
  year's figure, and left empty and unlocked where it does not (the first year), so the unit gives it.
* ``Nhiệm vụ``: STT | Nội dung công việc | Vai trò | Thời hạn | Trạng thái | Sản phẩm | Ghi chú, one row
  per assigned task (possibly none); Trạng thái is a drop-down, the last three columns are unlocked.
* ``Đánh giá``: Mã | Nội dung | Ý kiến của đơn vị, one row per text indicator; the answer is unlocked.

Every sheet is protected without a password: protection prevents accidental edits, it is not a
security boundary (the token is). Columns and rows can still be resized.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Protection, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from baocao.rules.catalog import Catalog
from baocao.rules.hierarchy import Unit
from baocao.rules.periods import Period

__all__ = [
    "COUNT_HEADERS",
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
    "TEXT_HEADERS",
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
TASK_HEADERS = ("STT", "Nội dung công việc", "Vai trò", "Thời hạn", "Trạng thái", "Sản phẩm", "Ghi chú")
TEXT_HEADERS = ("Mã", "Nội dung", "Ý kiến của đơn vị")

INFO_LABELS: Mapping[str, str] = {
    "unit_code": "Mã đơn vị",
    "unit_name": "Tên đơn vị",
    "period_code": "Mã kỳ báo cáo",
    "period_label": "Kỳ báo cáo",
    "deadline": "Hạn gửi báo cáo",
    "coordinator_name": "Đầu mối liên hệ",
    "coordinator_email": "Email đầu mối",
    "reply_to": "Nơi gửi báo cáo",
    "form_version": "Phiên bản biểu mẫu",
    "token": "Mã xác thực",
}
"""Label (column A of ``Thông tin``) of each value (column B). The reader finds values by label."""

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
    "1. Trang «Chỉ tiêu»: nhập số liệu lũy kế từ đầu năm đến hết kỳ báo cáo vào cột «Giá trị» "
    "(số nguyên, không âm, ví dụ 12 hoặc 1.234). Nếu cột «Cùng kỳ năm trước» còn trống, "
    "xin nhập số liệu cùng kỳ năm trước của đơn vị. Có thể ghi giải thích ở cột «Ghi chú».\n"
    "2. Trang «Nhiệm vụ»: chọn «Trạng thái» của từng nhiệm vụ được giao, ghi «Sản phẩm» và «Ghi chú».\n"
    "3. Trang «Đánh giá»: ghi ý kiến của đơn vị vào cột «Ý kiến của đơn vị».\n"
    "4. Lưu tệp dưới dạng Excel (.xlsx), giữ nguyên tên trang, tiêu đề cột và mã xác thực, "
    "rồi gửi tệp đính kèm thư điện tử đến địa chỉ ở mục «Nơi gửi báo cáo».\n"
    "Các ô màu trắng có viền là ô được nhập; các ô khác được khóa để tránh sửa nhầm "
    "(trang được bảo vệ không đặt mật khẩu)."
)


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


def form_filename(spec: FormSpec) -> str:
    """``BaoCao_2026-H1_X10714.xlsx``: ASCII only, so that no mail client or Windows share mangles it."""
    unit = re.sub(r"[^A-Za-z0-9-]+", "-", spec.unit.code).strip("-") or "DonVi"
    return f"BaoCao_{spec.period.code}_{unit}.xlsx"


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
_FONT = Font(name="Times New Roman", size=12)
_BOLD = Font(name="Times New Roman", size=12, bold=True)
_TITLE = Font(name="Times New Roman", size=14, bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
_LOCKED_FILL = PatternFill("solid", fgColor="F2F2F2")
_INPUT_FILL = PatternFill("solid", fgColor="FFFFFF")
_WRAP = Alignment(wrap_text=True, vertical="top")
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_UNLOCKED = Protection(locked=False)
_LOCKED = Protection(locked=True)
_NUMBER_FORMAT = "#,##0"


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

    def _info_sheet(self, ws) -> None:  # noqa: ANN001 - openpyxl Worksheet
        ws.column_dimensions["A"].width = 28
        ws.column_dimensions["B"].width = 70
        ws["A1"] = "BIỂU MẪU BÁO CÁO KẾT QUẢ THỰC HIỆN KẾT LUẬN SỐ 226-KL/TW"
        ws["A1"].font = _TITLE
        ws.merge_cells("A1:B1")
        numeric = {"form_version"}
        for row, (key, label) in enumerate(INFO_LABELS.items(), start=3):
            label_cell = ws.cell(row=row, column=1, value=label)
            label_cell.font = _BOLD
            label_cell.border = _BORDER
            label_cell.fill = _LOCKED_FILL
            value_cell = ws.cell(row=row, column=2)
            value_cell.font = _BOLD if key in ("unit_code", "unit_name", "token", "deadline") else _FONT
            value_cell.border = _BORDER
            value_cell.alignment = Alignment(horizontal="left", vertical="top", wrap_text=True)
            value_cell.protection = _LOCKED
            if key in numeric:
                self._slot(value_cell, lambda ref, s: lambda spec: _num_cell(ref, s, spec.form_version))
            else:
                self._slot(value_cell, _info_renderer(key))
        row = len(INFO_LABELS) + 4
        note = ws.cell(row=row, column=1, value=INSTRUCTIONS)
        note.font = _FONT
        note.alignment = _WRAP
        ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=2)
        ws.row_dimensions[row].height = 200
        ws.protection.sheet = True
        ws.protection.formatColumns = False
        ws.protection.formatRows = False

    def _header(self, ws, headers: Sequence[str], widths: Sequence[float]) -> None:  # noqa: ANN001
        for col, (title, width) in enumerate(zip(headers, widths, strict=True), start=1):
            cell = ws.cell(row=1, column=col, value=title)
            cell.font = _BOLD
            cell.fill = _HEADER_FILL
            cell.border = _BORDER
            cell.alignment = _CENTER
            ws.column_dimensions[get_column_letter(col)].width = width
        ws.freeze_panes = "A2"
        ws.protection.sheet = True
        ws.protection.formatColumns = False
        ws.protection.formatRows = False

    def _counts_sheet(self, ws) -> None:  # noqa: ANN001
        self._header(ws, COUNT_HEADERS, (22, 60, 14, 16, 18, 36))
        last = len(self._counts) + 1
        for row, ind in enumerate(self._counts, start=2):
            for col, value in ((1, ind.code), (2, ind.label), (3, ind.unit)):
                cell = ws.cell(row=row, column=col, value=value)
                cell.font = _FONT
                cell.border = _BORDER
                cell.fill = _LOCKED_FILL
                cell.alignment = _WRAP
            value_cell = ws.cell(row=row, column=4)
            self._input(value_cell, number=True)
            prev = ws.cell(row=row, column=5)
            prev.font = _FONT
            prev.border = _BORDER
            prev.fill = _LOCKED_FILL
            prev.number_format = _NUMBER_FORMAT
            prev.protection = _LOCKED
            self._prev_locked_style = prev.style_id
            self._prev_open_style = value_cell.style_id  # an unknown last-year figure is an input cell
            code = ind.code
            self._slot(prev, lambda ref, s, code=code: self._prev_renderer(ref, code))
            self._input(ws.cell(row=row, column=6), number=False)
        dv = DataValidation(
            type="whole", operator="greaterThanOrEqual", formula1="0", allow_blank=True,
            showErrorMessage=True, showInputMessage=True, errorStyle="stop",
            errorTitle="Giá trị không hợp lệ",
            error="Chỉ nhập số nguyên không âm (0, 1, 2, ...), không có phần thập phân, không nhập chữ.",
            promptTitle="Số liệu lũy kế", prompt="Nhập số nguyên không âm, lũy kế từ đầu năm.",
        )
        ws.add_data_validation(dv)
        dv.add(f"D2:E{last}")

    def _input(self, cell, *, number: bool) -> None:  # noqa: ANN001
        cell.font = _FONT
        cell.border = _BORDER
        cell.fill = _INPUT_FILL
        cell.protection = _UNLOCKED
        if number:
            cell.number_format = _NUMBER_FORMAT
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
        self._header(ws, TASK_HEADERS, (7, 60, 12, 20, 20, 30, 30))
        styles = []
        for col in range(1, len(TASK_HEADERS) + 1):
            cell = ws.cell(row=2, column=col)
            cell.font = _FONT
            cell.border = _BORDER
            if col >= 5:
                self._input(cell, number=False)
            else:
                cell.fill = _LOCKED_FILL
                cell.alignment = _CENTER if col in (1, 3) else _WRAP
            styles.append(cell.style_id)
            del ws._cells[(2, col)]  # the style stays registered; rows are written per form
        self._task_styles = styles
        choices = ",".join(STATUS_LABELS.values())
        dv = DataValidation(
            type="list", formula1=f'"{choices}"', allow_blank=True, showErrorMessage=True,
            errorStyle="stop", errorTitle="Trạng thái không hợp lệ",
            error="Chọn một trong: " + ", ".join(STATUS_LABELS.values()) + ".",
        )
        ws.add_data_validation(dv)
        dv.add(f"E2:E{MAX_TASK_ROWS + 1}")

    def _texts_sheet(self, ws) -> None:  # noqa: ANN001
        self._header(ws, TEXT_HEADERS, (22, 40, 90))
        for row, ind in enumerate(self.catalog.texts, start=2):
            for col, value in ((1, ind.code), (2, ind.label)):
                cell = ws.cell(row=row, column=col, value=value)
                cell.font = _FONT
                cell.border = _BORDER
                cell.fill = _LOCKED_FILL
                cell.alignment = _WRAP
            self._input(ws.cell(row=row, column=3), number=False)
            ws.row_dimensions[row].height = 120

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
            self._sheets.append(sheet)
        if self._sentinels:
            raise RuntimeError(f"template cells not found in the XML: {sorted(self._sentinels)}")
        dynamic = {s.path for s in self._sheets}
        # [Content_Types].xml first, as Office writes it; then everything else in template order.
        order = ["[Content_Types].xml"] + [n for n in names if n != "[Content_Types].xml"]
        self._order = order
        self._static = {n: _Member.of(n, static[n]) for n in order if n not in dynamic}

    def _task_rows(self, spec: FormSpec, xml: str) -> str:
        if not spec.tasks:
            return xml
        s = self._task_styles
        rows = []
        for i, task in enumerate(spec.tasks, start=2):
            cells = (
                _num_cell(f"A{i}", s[0], task.number),
                _str_cell(f"B{i}", s[1], task.content),
                _str_cell(f"C{i}", s[2], ROLE_LABELS.get(task.role, task.role)),
                _str_cell(f"D{i}", s[3], task.deadline_text),
                _str_cell(f"E{i}", s[4], ""),
                _str_cell(f"F{i}", s[5], ""),
                _str_cell(f"G{i}", s[6], ""),
            )
            rows.append(f'<row r="{i}">{"".join(cells)}</row>')
        last = len(spec.tasks) + 1
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


def _info_renderer(key: str) -> Callable[[str, int], _Renderer]:
    getters: dict[str, Callable[[FormSpec], str]] = {
        "unit_code": lambda spec: spec.unit.code,
        "unit_name": lambda spec: spec.unit.name,
        "period_code": lambda spec: spec.period.code,
        "period_label": lambda spec: spec.period.label_vi,
        "deadline": lambda spec: f"{spec.deadline:%d/%m/%Y}",
        "coordinator_name": lambda spec: spec.coordinator_name,
        "coordinator_email": lambda spec: spec.coordinator_email,
        "reply_to": lambda spec: spec.reply_to,
        "token": lambda spec: spec.token,
    }
    get = getters[key]

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
