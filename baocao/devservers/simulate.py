"""Simulated units for the demo and the benchmarks: fill a form as an officer would.

Figures are drawn from a seeded generator and made to satisfy the catalogue's relations (a
left-hand count is drawn as a share of its right-hand one), so that no indicator code appears
here. A "mistake" breaks one relation or types a decimal comma, which the intake must catch.
"""

from __future__ import annotations

import io
import random
from collections.abc import Mapping
from dataclasses import dataclass

from openpyxl import load_workbook

from baocao.opening.forms import (
    COUNT_HEADERS,
    SHEET_COUNTS,
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
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
