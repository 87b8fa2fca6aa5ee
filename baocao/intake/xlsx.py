"""Reading the XLSX form however a unit edited it: sheets, header rows and the
``Mã`` column found by their labels, never by fixed addresses; values read
with python-calamine.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import python_calamine

from baocao.intake.cells import _code, _count, _is_empty, _norm, _ref, _text
from baocao.intake.results import Limits, Submitted, TaskStatus, _Problems, _Refused, _short
from baocao.intake.safety import _check_zip, _Package, _sheet_bounds
from baocao.opening.forms import (
    CONTACT_LABELS,
    COUNT_HEADERS,
    INFO_LABELS,
    SHEET_COUNTS,
    SHEET_INFO,
    SHEET_TASKS,
    SHEET_TEXTS,
    STATUS_LABELS,
    TASK_HEADERS,
    TEXT_HEADERS,
)
from baocao.rules.catalog import Catalog
from baocao.rules.formatting import number_vi, parse_vi_int
from baocao.rules.periods import Period, PeriodError

# ------------------------------------------------------------------------------------------ XLSX
_INFO_BY_NORM = {_norm(label): key for key, label in (*INFO_LABELS.items(), *CONTACT_LABELS.items())}
_HEADER_ALIASES = {
    "code": ("ma", "ma chi tieu", "ma so"),
    "value": ("gia tri", "so lieu", "gia tri ky bao cao"),
    "previous": ("cung ky nam truoc", "cung ky"),
    "note": ("ghi chu",),
    "number": ("stt", "so tt", "so thu tu"),
    "status": ("trang thai",),
    "product": ("san pham",),
    "answer": ("y kien cua don vi", "y kien", "noi dung bao cao"),
}
_STATUS_BY_NORM = {_norm(label): key for key, label in STATUS_LABELS.items()} | {
    "hoan thanh": "done", "da thuc hien": "done", "dang trien khai": "in_progress", "chua": "not_started",
}
assert _norm(COUNT_HEADERS[0]) == "ma" and _norm(COUNT_HEADERS[3]) == "gia tri"
assert _norm(TASK_HEADERS[0]) == "stt" and _norm(TEXT_HEADERS[2]) == "y kien cua don vi"


class _Book:
    """The opened workbook: sheets by (normalised) name, loaded lazily and bounded."""

    def __init__(self, data: bytes, package: _Package, limits: Limits) -> None:
        try:
            self.wb = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        except python_calamine.PasswordError:
            raise _Refused("encrypted", "tệp được đặt mật khẩu, hệ thống không mở được. Đề nghị đơn vị gỡ mật khẩu.") from None
        except python_calamine.CalamineError:
            raise _Refused("unreadable", "không đọc được tệp Excel (nội dung bị hỏng). "
                           "Đề nghị đơn vị mở biểu mẫu bằng Excel hoặc LibreOffice, lưu lại rồi gửi lại.") from None
        self.package = package
        self.limits = limits
        self.names = list(self.wb.sheet_names)
        self.by_norm: dict[str, str] = {}
        self._special: dict[str, dict[str, tuple[str, str]]] = {}
        for name in self.names:
            self.by_norm.setdefault(_norm(name), name)

    def find(self, wanted: str) -> str | None:
        if wanted in self.names:
            return wanted
        return self.by_norm.get(_norm(wanted))

    def rows(self, name: str) -> list[list[Any]]:
        content = self.package.parts.get(self.package.sheet_parts.get(name, ""))
        if content is None:
            # Never let calamine open a sheet whose XML we have not bounded (see _sheet_bounds).
            raise _Refused("unreadable", "không tìm thấy nội dung của trang này trong tệp (tệp bị hỏng). "
                           "Đề nghị đơn vị mở biểu mẫu bằng Excel hoặc LibreOffice, lưu lại rồi gửi lại.", sheet=name)
        rows, cols = _sheet_bounds(content, self.limits.max_rows, self.limits.max_cols)
        if rows > self.limits.max_rows or cols > self.limits.max_cols:
            raise _Refused("sheet_too_large", _too_large_vi(rows, cols, self.limits), sheet=name)
        try:
            sheet = self.wb.get_sheet_by_name(name)
        except python_calamine.CalamineError:
            raise _Refused("unreadable", "không đọc được trang này (nội dung bị hỏng). "
                           "Đề nghị đơn vị mở biểu mẫu bằng Excel hoặc LibreOffice, lưu lại rồi gửi lại.", sheet=name) from None
        end = sheet.end
        if end is not None and (end[0] + 1 > self.limits.max_rows or end[1] + 1 > self.limits.max_cols):
            raise _Refused("sheet_too_large", _too_large_vi(end[0] + 1, end[1] + 1, self.limits), sheet=name)
        return sheet.to_python(skip_empty_area=False)

    def why_empty(self, sheet: str, ref: str) -> tuple[str, str] | None:
        """Why a cell calamine gives as empty is not really empty: a formula saved without its result
        (openpyxl and some export tools do that) or an Excel error such as #DIV/0!. Each deserves its
        own message; the XML is scanned only when an empty required value is met."""
        if sheet not in self._special:
            content = self.package.parts.get(self.package.sheet_parts.get(sheet, "")) or b""
            special: dict[str, tuple[str, str]] = {}
            for attrs, body in _CELL_ELEMENT.findall(content):
                where = _ATTR_R.search(attrs)
                if where is None:
                    continue
                if _ATTR_T_ERROR.search(attrs):
                    value = _VALUE.search(body)
                    special[where[1].decode()] = ("formula_error", value[1].decode("utf-8", "replace") if value else "")
                elif _FORMULA.search(body):
                    special[where[1].decode()] = ("formula_without_value", "")
            self._special[sheet] = special
        return self._special[sheet].get(ref)


# A cell's body ends at its </c>; it cannot run on into the next <c ...> (that made unclosed cells quadratic).
_CELL_ELEMENT = re.compile(rb"<(?:\w+:)?c\s([^<>]*+)(?<!/)>((?:[^<]++|<(?!/?(?:\w+:)?c[\s/>]))*?)</(?:\w+:)?c>")
_ATTR_R = re.compile(rb"\br=[\"']([A-Z]{1,7}[0-9]{1,10})[\"']")
_ATTR_T_ERROR = re.compile(rb"\bt=[\"']e[\"']")
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]{0,40})</")
_FORMULA = re.compile(rb"<(?:\w+:)?f\b")


def _too_large_vi(rows: int, cols: int, limits: Limits) -> str:
    return (f"trang có vùng dữ liệu quá lớn ({number_vi(rows)} dòng × {number_vi(cols)} cột; tối đa "
            f"{number_vi(limits.max_rows)} dòng, {number_vi(limits.max_cols)} cột). "
            "Đề nghị đơn vị xóa các dòng, cột thừa (kể cả ô chỉ có dấu cách) rồi gửi lại.")


@dataclass
class _Header:
    """Where a table's header row is and which column holds each wanted role."""

    row: int | None
    columns: dict[str, int]
    missing: list[str]


def _find_header(rows: list[list[Any]], required: dict[str, str], optional: Iterable[str],
                 scan: int = 30) -> _Header:
    """Find the header row by its labels (units insert title rows and move columns around)."""
    best_missing: list[str] = list(required.values())
    for r, row in enumerate(rows[:scan]):
        columns: dict[str, int] = {}
        for c, value in enumerate(row):
            if not isinstance(value, str) or not value.strip():
                continue
            key = _norm(value)
            for role, aliases in _HEADER_ALIASES.items():
                if key in aliases and role not in columns:
                    columns[role] = c
        missing = [label for role, label in required.items() if role not in columns]
        if not missing:
            wanted = [*required, *optional]
            return _Header(r, {role: c for role, c in columns.items() if role in wanted}, [])
        if len(missing) < len(best_missing):
            best_missing = missing
    return _Header(None, {}, best_missing)


def _missing_headers(header: _Header, sheet: str, problems: _Problems) -> bool:
    for label in header.missing:
        problems.error("missing_header", f"không tìm thấy cột “{label}” (dòng tiêu đề). Đề nghị đơn vị giữ nguyên "
                       "tiêu đề các cột của biểu mẫu.", sheet=sheet)
    return header.row is None


def _read_xlsx(data: bytes, file: str, catalog: Catalog, limits: Limits, problems: _Problems) -> Submitted:
    package = _check_zip(data, limits)
    book = _Book(data, package, limits)
    sub = Submitted(unit_code=None, period=None, token=None, form_version=None, fmt="xlsx")
    found = {wanted: book.find(wanted) for wanted in (SHEET_INFO, SHEET_COUNTS, SHEET_TASKS, SHEET_TEXTS)}
    missing = [wanted for wanted, name in found.items() if name is None]
    if missing:
        have = ", ".join(f"“{n}”" for n in book.names) or "không có trang nào"
        for wanted in missing:
            problems.error("missing_sheet", f"không tìm thấy trang “{wanted}” (tệp có: {have}). "
                           "Đề nghị đơn vị dùng đúng biểu mẫu đã nhận và giữ nguyên tên các trang.")
    if found[SHEET_INFO]:
        _read_info(book.rows(found[SHEET_INFO]), found[SHEET_INFO], sub, problems)
    if found[SHEET_COUNTS]:
        _read_counts(book, found[SHEET_COUNTS], catalog, sub, problems)
    else:
        sub.reported.update(i.code for i in catalog.counts)
    if found[SHEET_TEXTS]:
        _read_texts(book.rows(found[SHEET_TEXTS]), found[SHEET_TEXTS], catalog, sub, problems)
    if found[SHEET_TASKS]:
        _read_tasks(book.rows(found[SHEET_TASKS]), found[SHEET_TASKS], sub, problems)
    return sub


def _read_info(rows: list[list[Any]], sheet: str, sub: Submitted, problems: _Problems) -> None:
    values: dict[str, tuple[Any, str]] = {}
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if not isinstance(cell, str) or not cell.strip():
                continue
            key = _INFO_BY_NORM.get(_norm(cell))
            if key is None or key in values:
                continue
            value, ref = "", _ref(r, c + 1)
            for c2 in range(c + 1, len(row)):
                if not _is_empty(row[c2]):
                    value, ref = row[c2], _ref(r, c2)
                    break
            values[key] = (value, ref)
    for key in ("unit_code", "period_code", "form_version", "token"):
        if key not in values:
            problems.error("missing_field", f"không tìm thấy dòng “{INFO_LABELS[key]}”. "
                           "Đề nghị đơn vị giữ nguyên trang “Thông tin” của biểu mẫu.", sheet=sheet)
    if "unit_code" in values:
        value, ref = values["unit_code"]
        sub.unit_code = _code(value) or None
        if sub.unit_code is None:
            problems.error("missing_field", "chưa có mã đơn vị.", sheet=sheet, cell=ref)
    if "period_code" in values:
        value, ref = values["period_code"]
        try:
            sub.period = Period.parse(_text(value)).code
        except PeriodError as exc:
            problems.error("bad_period", exc.message_vi, sheet=sheet, cell=ref, value=value)
    if "form_version" in values:
        value, ref = values["form_version"]
        try:
            sub.form_version = _count(value)
        except ValueError:
            problems.error("bad_form_version", f"phiên bản biểu mẫu “{_short(value)}” không hợp lệ.",
                           sheet=sheet, cell=ref, value=value)
    if "token" in values:
        sub.token = _text(values["token"][0]) or None
    for key in CONTACT_LABELS:  # forms before issue 21 have no such rows: nothing to read
        if key in values and _text(values[key][0]):
            sub.contact[key] = _short(_text(values[key][0]), 200)


def _read_counts(book: _Book, sheet: str, catalog: Catalog, sub: Submitted, problems: _Problems) -> None:
    sub.sheet = sheet
    rows = book.rows(sheet)
    header = _find_header(rows, {"code": COUNT_HEADERS[0], "value": COUNT_HEADERS[3]}, ("previous", "note"))
    if _missing_headers(header, sheet, problems) or header.row is None:
        sub.reported.update(i.code for i in catalog.counts)
        return
    columns = header.columns
    code_col, value_col = columns["code"], columns["value"]
    prev_col, note_col = columns.get("previous"), columns.get("note")
    seen: dict[str, str] = {}
    for r in range(header.row + 1, len(rows)):
        row = rows[r]

        def cell(c: int | None, row: list[Any] = row) -> Any:
            return row[c] if c is not None and c < len(row) else ""

        code = _code(cell(code_col))
        value = cell(value_col)
        ref = _ref(r, value_col)
        if not code:
            if not _is_empty(value):
                problems.warning("value_without_code", f"có giá trị “{_short(value)}” nhưng dòng không có mã chỉ "
                                 "tiêu; giá trị này bị bỏ qua.", sheet=sheet, cell=ref, value=value)
            continue
        if code in seen:
            problems.error("duplicate_code", f"mã “{code}” xuất hiện hai lần (dòng {seen[code]} và dòng {r + 1}). "
                           "Mỗi chỉ tiêu chỉ được ghi một dòng.", sheet=sheet, cell=_ref(r, code_col), code=code)
            sub.reported.add(code)
            continue
        seen[code] = str(r + 1)
        if code not in catalog or catalog[code].kind != "count":
            problems.warning("unknown_code", f"mã “{code}” không có trong danh mục chỉ tiêu số lượng; "
                             "dòng này bị bỏ qua.", sheet=sheet, cell=_ref(r, code_col), code=code, value=code)
            continue
        indicator = catalog[code]
        sub.cells[code] = ref
        if _is_empty(value):
            sub.values[code] = None
            if indicator.required:
                sub.reported.add(code)
                reason = book.why_empty(sheet, ref)
                if reason is not None and reason[0] == "formula_error":
                    problems.error("non_negative_integer", f"ô có lỗi công thức “{reason[1] or '#'}”, không phải số "
                                   "nguyên. Đề nghị đơn vị sửa công thức hoặc nhập thẳng số.", sheet=sheet, cell=ref, code=code,
                                   value=reason[1])
                elif reason is not None:
                    problems.error("formula_without_value", "ô có công thức nhưng chưa có kết quả tính sẵn. "
                                   "Đề nghị đơn vị mở tệp bằng Excel hoặc LibreOffice để tính lại rồi lưu, hoặc nhập thẳng số.",
                                   sheet=sheet, cell=ref, code=code)
                else:
                    problems.error("required", f"chưa nhập giá trị cho chỉ tiêu “{indicator.label}” "
                                   "(bắt buộc; nếu không có thì nhập 0).", sheet=sheet, cell=ref, code=code)
        else:
            try:
                sub.values[code] = _count(value)
            except ValueError as exc:
                sub.values[code] = None
                sub.reported.add(code)
                problems.error("non_negative_integer", f"giá trị không hợp lệ: {exc}", sheet=sheet, cell=ref,
                               code=code, value=value)
        if prev_col is not None:
            prev = cell(prev_col)
            sub.previous_year[code] = None
            if not _is_empty(prev):
                try:
                    sub.previous_year[code] = _count(prev)
                except ValueError as exc:
                    problems.error("non_negative_integer", f"số liệu cùng kỳ năm trước không hợp lệ: {exc}",
                                   sheet=sheet, cell=_ref(r, prev_col), code=code, value=prev)
        note = _text(cell(note_col))
        if note:
            sub.notes[code] = note
    for indicator in catalog.counts:
        if indicator.required and indicator.code not in seen:
            sub.reported.add(indicator.code)
            problems.error("missing_row", f"không có dòng cho chỉ tiêu bắt buộc “{indicator.label}”. "
                           "Đề nghị đơn vị dùng đúng biểu mẫu đã nhận, không xóa dòng.", sheet=sheet, code=indicator.code)


def _read_texts(rows: list[list[Any]], sheet: str, catalog: Catalog, sub: Submitted, problems: _Problems) -> None:
    header = _find_header(rows, {"code": TEXT_HEADERS[0], "answer": TEXT_HEADERS[2]}, ())
    if _missing_headers(header, sheet, problems) or header.row is None:
        return
    columns = header.columns
    for r in range(header.row + 1, len(rows)):
        row = rows[r]
        code = _code(row[columns["code"]]) if columns["code"] < len(row) else ""
        answer = _text(row[columns["answer"]]) if columns["answer"] < len(row) else ""
        if not code:
            continue
        if code not in catalog or catalog[code].kind != "text":
            problems.warning("unknown_code", f"mã “{code}” không có trong danh mục nội dung đánh giá; "
                             "dòng này bị bỏ qua.", sheet=sheet, cell=_ref(r, columns["code"]), code=code, value=code)
            continue
        if answer:
            if code in sub.texts:
                sub.texts[code] += "\n" + answer
            else:
                sub.texts[code] = answer


def _read_tasks(rows: list[list[Any]], sheet: str, sub: Submitted, problems: _Problems) -> None:
    header = _find_header(rows, {"number": TASK_HEADERS[0], "status": TASK_HEADERS[4]}, ("product", "note"))
    if _missing_headers(header, sheet, problems) or header.row is None:
        return
    columns = header.columns
    for r in range(header.row + 1, len(rows)):
        row = rows[r]

        def cell(role: str, row: list[Any] = row) -> Any:
            c = columns.get(role)
            return row[c] if c is not None and c < len(row) else ""

        number_text = _text(cell("number"))
        if not number_text:
            continue
        try:
            number = parse_vi_int(number_text)
        except ValueError:
            problems.warning("bad_task_number", f"số thứ tự “{_short(number_text)}” không hợp lệ; dòng bị bỏ qua.",
                             sheet=sheet, cell=_ref(r, columns["number"]), value=number_text)
            continue
        raw = _text(cell("status"))
        status = _STATUS_BY_NORM.get(_norm(raw)) if raw else None
        if raw and status is None:
            choices = ", ".join(f"“{v}”" for v in STATUS_LABELS.values())
            problems.warning("bad_status", f"trạng thái “{_short(raw)}” không hợp lệ; đề nghị chọn một trong {choices}.",
                             sheet=sheet, cell=_ref(r, columns["status"]), value=raw)
        sub.tasks.append(TaskStatus(number, status, _text(cell("product")), _text(cell("note"))))  # type: ignore[arg-type]
