"""Reading a submission sent as CSV: the same figures as the form, columns
found by their headers.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from baocao.intake.cells import _norm
from baocao.intake.results import Limits, Submitted, _Problems, _Refused, _short
from baocao.opening.forms import (
    CSV_OPTIONAL_COLUMNS,
    CSV_REQUIRED_COLUMNS,
)
from baocao.opening.tokens import token_version
from baocao.rules.catalog import Catalog
from baocao.rules.formatting import number_vi, parse_vi_int
from baocao.rules.periods import Period, PeriodError

# ------------------------------------------------------------------------------------------ CSV
_CSV_ALIASES = {
    "ma_don_vi": "ma_don_vi", "don_vi": "ma_don_vi",
    "ky_bao_cao": "ky_bao_cao", "ky": "ky_bao_cao",
    "ma_chi_tieu": "ma_chi_tieu", "chi_tieu": "ma_chi_tieu",
    "gia_tri": "gia_tri",
    "cung_ky_nam_truoc": "cung_ky_nam_truoc",
    "ghi_chu": "ghi_chu",
    "ma_xac_thuc": "ma_xac_thuc", "token": "ma_xac_thuc",
}


def _of_period(code: str | None) -> str:
    """ " (kỳ báo cáo 6 tháng đầu năm 2026)": the period in words, for a CSV that may hold several;
    the unit is not named, the reply goes to that unit (its rows' problems are its own)."""
    try:
        return f" (kỳ báo cáo {Period.parse(code or '').label_vi})"
    except PeriodError:
        return ""


def _csv_column(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", _norm(name.lstrip("\ufeff")))


def _read_csv(data: bytes, file: str, catalog: Catalog, limits: Limits, problems: _Problems) -> list[Submitted]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _Refused("csv_encoding", "tệp CSV được lưu ở mã UTF-16. Đề nghị đơn vị lưu lại dạng “CSV UTF-8 (phân "
                       "cách bằng dấu phẩy)” rồi gửi lại.")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _Refused("csv_encoding", f"tệp CSV không ở mã UTF-8 (lỗi ở dòng {line}), chữ tiếng Việt sẽ bị sai. "
                       "Đề nghị đơn vị lưu lại dạng “CSV UTF-8” rồi gửi lại.") from None
    if "\x00" in text:
        raise _Refused("csv_encoding", "tệp CSV có ký tự không hợp lệ (tệp nhị phân?). Đề nghị đơn vị gửi tệp "
                       "CSV UTF-8.")
    first = text.split("\n", 1)[0]
    delimiter = max((";", ",", "\t"), key=first.count)
    if first.count(delimiter) == 0:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise _Refused("empty_file", "tệp CSV rỗng.")
        columns = {}
        for i, name in enumerate(header):
            key = _CSV_ALIASES.get(_csv_column(name))
            if key and key not in columns:
                columns[key] = i
        missing = [c for c in CSV_REQUIRED_COLUMNS if c not in columns]
        if missing:
            need = ", ".join(CSV_REQUIRED_COLUMNS)
            raise _Refused("csv_missing_columns", f"thiếu cột {', '.join(missing)} ở dòng tiêu đề. Dòng tiêu đề "
                           f"phải có: {need} (có thể thêm {', '.join(CSV_OPTIONAL_COLUMNS)}).")
        return _csv_rows(reader, columns, catalog, limits, problems)
    except csv.Error as exc:
        raise _Refused("csv_syntax", f"tệp CSV sai cú pháp ở dòng {reader.line_num}: dấu ngoặc kép hoặc "
                       f"dấu phân cách không đúng ({_short(exc)}).") from None


def _csv_rows(reader: Any, columns: dict[str, int], catalog: Catalog, limits: Limits,
              problems: _Problems) -> list[Submitted]:
    subs: dict[tuple[str, str], Submitted] = {}
    lines: dict[tuple[str, str, str], int] = {}
    bad_periods: set[tuple[str, str]] = set()
    count = 0
    for row in reader:
        line = reader.line_num
        if not any(field.strip() for field in row):
            continue
        count += 1
        if count > limits.max_csv_rows:
            raise _Refused("too_large", f"tệp CSV có quá nhiều dòng (tối đa {number_vi(limits.max_csv_rows)}).")

        def get(name: str, row: list[str] = row) -> str:
            i = columns.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        where = f"dòng {line}"
        unit, period_text, code = get("ma_don_vi").upper(), get("ky_bao_cao"), get("ma_chi_tieu").upper()
        # A row's problems are its unit's (and period's): the other units of the file do not share them.
        # A row naming no unit may hold anyone's figures, so that one stays the whole file's problem.
        if not unit or not period_text or not code:
            empty = [n for n, v in (("ma_don_vi", unit), ("ky_bao_cao", period_text), ("ma_chi_tieu", code)) if not v]
            problems.error("csv_missing_field", f"thiếu {', '.join(empty)}.", cell=where, unit=unit or None)
            continue
        try:
            period = Period.parse(period_text).code
        except PeriodError as exc:
            if (unit, period_text) not in bad_periods:
                bad_periods.add((unit, period_text))
                problems.error("bad_period", exc.message_vi, cell=where, value=period_text, unit=unit)
            continue
        mine = {"unit": unit, "period": period}
        sub = subs.get((unit, period))
        if sub is None:
            sub = subs[(unit, period)] = Submitted(unit, period, None, None, "csv")
        token = get("ma_xac_thuc")
        if token:
            if sub.token is None:
                sub.token, sub.form_version = token, token_version(token)
            elif token != sub.token:
                problems.error("csv_conflicting_token", "mã xác thực khác với các dòng trước của cùng đơn vị và kỳ "
                               "báo cáo.", cell=where, value=token, **mine)
        key = (unit, period, code)
        if key in lines:
            problems.error("duplicate_code", f"mã “{code}” đã có ở dòng {lines[key]} cho cùng đơn vị và kỳ "
                           "báo cáo.", cell=where, code=code, **mine)
            sub.reported.add(code)
            continue
        lines[key] = line
        if code not in catalog or catalog[code].kind not in ("count", "text"):
            problems.warning("unknown_code", f"mã “{code}” không có trong danh mục chỉ tiêu; dòng bị bỏ qua.",
                             cell=where, code=code, value=code, **mine)
            continue
        indicator = catalog[code]
        value = get("gia_tri")
        note = get("ghi_chu")
        if note:
            sub.notes[code] = note
        sub.cells[code] = where
        if indicator.kind == "text":
            if value:
                sub.texts[code] = value
            continue
        if not value:
            sub.values[code] = None
            if indicator.required:
                sub.reported.add(code)
                problems.error("required", f"chưa có giá trị cho chỉ tiêu bắt buộc “{indicator.label}” "
                               "(nếu không có thì ghi 0).", cell=where, code=code, **mine)
        else:
            try:
                sub.values[code] = parse_vi_int(value)
            except ValueError as exc:
                sub.values[code] = None
                sub.reported.add(code)
                problems.error("non_negative_integer", f"giá trị không hợp lệ: {exc}", cell=where, code=code,
                               value=value, **mine)
        previous = get("cung_ky_nam_truoc")
        if "cung_ky_nam_truoc" in columns:
            sub.previous_year[code] = None
        if previous:
            try:
                sub.previous_year[code] = parse_vi_int(previous)
            except ValueError as exc:
                problems.error("non_negative_integer", f"số liệu cùng kỳ năm trước không hợp lệ: {exc}",
                               cell=where, code=code, value=previous, **mine)
    if not subs and not problems.items:
        raise _Refused("empty_file", "tệp CSV không có dòng số liệu nào (chỉ có dòng tiêu đề).")
    # A unit whose every row has a problem that hides its period still gets an answer of its own
    # (its problems), rather than having them land on the other units of the file.
    read_units = {unit for unit, _ in subs}
    for unit in dict.fromkeys(p.unit for p in problems.items if p.unit and p.unit not in read_units):
        subs[(unit, "")] = Submitted(unit, None, None, None, "csv")
    for sub in subs.values():
        for indicator in catalog.counts:
            if indicator.required and indicator.code not in sub.values and indicator.code not in sub.reported:
                sub.reported.add(indicator.code)
                problems.error("missing_row", f"thiếu dòng cho chỉ tiêu bắt buộc “{indicator.label}”"
                               f"{_of_period(sub.period)}.", code=indicator.code,
                               unit=sub.unit_code, period=sub.period)
    return list(subs.values())
