"""The form as the clerk meets it (issue 21 point 7): printed from LibreOffice, grouped and numbered,
with marked input cells, a place for who prepared it, read back into the store and the receipt; and a
form of the earlier layout still read the same."""

from __future__ import annotations

import io
import re
import subprocess
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from baocao.intake.reader import read_submission
from baocao.opening.forms import (
    CONTACT_LABELS,
    COUNT_HEADER_ROW,
    SHEET_COUNTS,
    SHEET_INFO,
    SHEET_TASKS,
    SHEET_TEXTS,
    TASK_HEADER_ROW,
    FormBuilder,
    FormSpec,
    FormTask,
)
from baocao.opening.tokens import make_token
from baocao.rules.config import Config
from baocao.rules.periods import Period
from tests.support.office import Office
from tests.support.tuky import ON_TIME, TuKy, text_of

OLD_FORM = Path(__file__).parent / "data" / "forms" / "form_v1_2026-H1_X10714-VHXH.xlsx"
PERIOD = Period.parse("2026-H1")
LONG = ("Chuẩn hóa chế độ báo cáo, thống nhất hệ thống biểu mẫu, chỉ tiêu báo cáo theo quy định của Nghị định "
        "số 09/2019/NĐ-CP ngày 24/01/2019 của Chính phủ và Thông tư số 05/2025/TT-VPCP ngày 31/12/2025")


def _spec(cfg: Config, unit: str, tasks: int) -> FormSpec:
    return FormSpec(
        unit=cfg.hierarchy[unit], period=PERIOD, deadline=date(2026, 6, 5),
        token=make_token("test-secret", unit, PERIOD.code, 1), form_version=1,
        coordinator_name="Thành phố Hải Phòng", coordinator_email="daumoi@haiphong.example",
        reply_to="nopbaocao@bonoivu.example",
        tasks=[FormTask(n, LONG if n % 3 else "Rà soát, cắt giảm hội họp", "Trước 10/5/2026 (ngày 10/5/2026 là Chủ "
                        "nhật; hạn tính đến ngày 08/5/2026)" if n % 2 else "Thường xuyên", "lead")
               for n in range(1, tasks + 1)],
    )


@pytest.fixture(scope="module")
def forms(cfg: Config) -> dict[str, bytes]:
    """A commune department with 19 long tasks, and a city department with none."""
    builder = FormBuilder(cfg.catalog)
    return {"X10714-VHXH": builder.build(_spec(cfg, "X10714-VHXH", 19)),
            "T31-SNV": builder.build(_spec(cfg, "T31-SNV", 0))}


# ------------------------------------------------------------------------------------------ printed
def _lines(pdf: Path) -> list[list[tuple[float, float, float, float, str]]]:
    """Each page's text lines with their boxes (pdftotext -bbox-layout)."""
    xml = subprocess.run(["pdftotext", "-bbox-layout", str(pdf), "-"], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    pages = []
    for page in xml.split("<page ")[1:]:
        lines = []
        for m in re.finditer(r'<line xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</line>',
                             page, re.S):
            words = " ".join(re.findall(r">([^<]*)</word>", m[5]))
            lines.append((float(m[1]), float(m[2]), float(m[3]), float(m[4]), words))
        pages.append(lines)
    return pages


def overlaps(pdf: Path) -> list[tuple[int, str, str]]:
    """Pairs of text lines printed over each other (more than a third of the lower one's height)."""
    found = []
    for number, lines in enumerate(_lines(pdf), start=1):
        for i, a in enumerate(lines):
            for b in lines[i + 1:]:
                dx = min(a[2], b[2]) - max(a[0], b[0])
                dy = min(a[3], b[3]) - max(a[1], b[1])
                if dx > 1 and dy > min(a[3] - a[1], b[3] - b[1]) / 3:
                    found.append((number, a[4], b[4]))
    return found


@pytest.mark.slow
@pytest.mark.parametrize(("unit", "max_pages"), [("X10714-VHXH", 6), ("T31-SNV", 4)])
def test_the_form_prints_on_few_a4_pages_with_no_text_over_another(office: Office, forms: dict[str, bytes], cfg: Config,
                                                                   tmp_path: Path, unit: str, max_pages: int) -> None:
    source = tmp_path / f"{unit}.xlsx"
    source.write_bytes(forms[unit])
    pdf = office.to_pdf(source, tmp_path)
    sizes = office.page_sizes(pdf)
    assert 4 <= len(sizes) <= max_pages  # the old layout: 11 pages
    assert all(sorted((round(w), round(h))) == [595, 842] for w, h in sizes)  # A4, either way round
    assert overlaps(pdf) == []
    text = "\n".join(office.page_texts(pdf))
    flat = " ".join(text.split())
    for group in cfg.catalog.groups:  # the report's six groups, as the catalogue names them
        assert group.title in flat
    for label in CONTACT_LABELS.values():
        assert label in flat
    assert "05/6/2026" in flat and "05/06/2026" not in flat
    assert "«" not in flat.split("1. Trang")[0] and "CHƯA" not in flat and "Hãy" not in flat
    pages = office.page_texts(pdf)
    assert sum("STT" in page and "Chỉ tiêu" in page and "Giá trị" in page for page in pages) >= 1
    task_pages = [page for page in pages if "NHIỆM VỤ ĐƯỢC GIAO" in page or "Nội dung công việc" in page]
    assert all("Nội dung công việc" in page for page in task_pages)  # the header row is repeated on each page
    if unit == "T31-SNV":
        assert "Đơn vị không được giao nhiệm vụ nào trong Phụ lục kế hoạch trong kỳ này" in flat
    else:
        assert len(task_pages) >= 2 and "Đơn vị được giao 19 nhiệm vụ" in flat


# ------------------------------------------------------------------------------------------ the workbook
def test_counts_are_numbered_under_the_catalogues_groups_in_bold(cfg: Config, forms: dict[str, bytes]) -> None:
    ws = load_workbook(io.BytesIO(forms["T31-SNV"]))[SHEET_COUNTS]
    rows = list(ws.iter_rows(min_row=COUNT_HEADER_ROW + 1, values_only=False))
    groups = [(r[0].value, r[1].value, r[1].font.b) for r in rows if r[6].value is None and r[1].value]
    titles = [g.title for g in cfg.catalog.groups if any(i.group == g.code for i in cfg.catalog.counts)]
    assert [g[1] for g in groups] == titles
    assert [g[0] for g in groups] == ["I", "II", "III", "IV", "V", "VI"][:len(titles)]
    assert all(bold for *_, bold in groups)
    numbered = [(r[0].value, r[6].value) for r in rows if r[6].value]
    assert [n for n, _ in numbered] == list(range(1, len(cfg.catalog.counts) + 1))
    order = {g.code: k for k, g in enumerate(cfg.catalog.groups)}
    expected = sorted(cfg.catalog.counts, key=lambda i: order[i.group])  # stable: catalogue order within a group
    assert [c for _, c in numbered] == [i.code for i in expected]


def test_input_cells_are_yellow_and_unlocked_the_rest_locked_without_fill(forms: dict[str, bytes]) -> None:
    wb = load_workbook(io.BytesIO(forms["X10714-VHXH"]))
    counts = wb[SHEET_COUNTS]
    header = [c.value for c in counts[COUNT_HEADER_ROW]]
    value_col, label_col = header.index("Giá trị") + 1, header.index("Chỉ tiêu") + 1
    row = next(r for r in range(COUNT_HEADER_ROW + 1, counts.max_row + 1) if counts.cell(r, 7).value)
    value, label = counts.cell(row, value_col), counts.cell(row, label_col)
    assert value.protection.locked is False and value.fill.fgColor.rgb.endswith("FFF2CC")
    assert label.protection.locked is True and label.fill.fill_type is None
    info = wb[SHEET_INFO]
    contact = {r[0].value: r[1] for r in info.iter_rows(max_col=2) if r[0].value in CONTACT_LABELS.values()}
    assert set(contact) == set(CONTACT_LABELS.values())
    assert all(c.protection.locked is False and c.fill.fgColor.rgb.endswith("FFF2CC") for c in contact.values())
    tasks = wb[SHEET_TASKS]
    status = tasks.cell(TASK_HEADER_ROW + 1, 5)
    assert status.protection.locked is False and status.fill.fgColor.rgb.endswith("FFF2CC")
    assert tasks.cell(TASK_HEADER_ROW + 1, 2).protection.locked is True
    for ws in wb.worksheets:
        assert ws.protection.sheet and ws.protection.password is None
        assert int(ws.page_setup.paperSize) == 9  # A4
        assert (ws.page_setup.fitToWidth, ws.page_setup.fitToHeight) == (1, 0) and ws.sheet_properties.pageSetUpPr.fitToPage
        legend = " ".join(str(c.value) for row in ws.iter_rows(max_row=40) for c in row if c.value)
        assert "Ô nền vàng có viền là ô đơn vị nhập" in legend
    assert wb[SHEET_COUNTS].print_title_rows and wb[SHEET_TASKS].print_title_rows and wb[SHEET_TEXTS].print_title_rows


# ------------------------------------------------------------------------------------------ contract
def test_a_form_of_the_earlier_layout_still_reads_the_same(cfg: Config) -> None:
    """tests/data/forms/ keeps a form made and filled before issue 21 (header on row 1, Mã in column A)."""
    subs, problems = read_submission(OLD_FORM.read_bytes(), OLD_FORM.name, cfg.catalog)
    assert problems == []
    (sub,) = subs
    assert (sub.unit_code, sub.period, sub.form_version) == ("X10714-VHXH", "2026-H1", 1)
    assert sub.values == {ind.code: 10 * n for n, ind in enumerate(cfg.catalog.counts, start=1)}
    assert sub.previous_year[cfg.catalog.counts[0].code] == 40
    assert sub.notes == {cfg.catalog.counts[0].code: "Số liệu đến 31/5"}
    assert [(t.number, t.status, t.product) for t in sub.tasks] == [(1, "done", "Kế hoạch số 12/KH-UBND"),
                                                                     (4, "in_progress", "")]
    assert sub.contact == {}


def test_todays_form_filled_in_reads_back_values_tasks_texts_and_contact(cfg: Config, forms: dict[str, bytes]) -> None:
    wb = load_workbook(io.BytesIO(forms["X10714-VHXH"]))
    counts = wb[SHEET_COUNTS]
    for r in range(COUNT_HEADER_ROW + 1, counts.max_row + 1):
        if counts.cell(r, 7).value:
            counts.cell(r, 4).value = 7
    wb[SHEET_TASKS].cell(TASK_HEADER_ROW + 1, 5).value = "Đã hoàn thành"
    info = wb[SHEET_INFO]
    typed = {"preparer": "Nguyễn Thị Hoa", "phone": "0912 345 678", "head": "Trần Văn Nam"}
    for row in info.iter_rows(max_col=2):
        for key, label in CONTACT_LABELS.items():
            if row[0].value == label:
                row[1].value = typed[key]
    out = io.BytesIO()
    wb.save(out)
    (sub,), problems = read_submission(out.getvalue(), "f.xlsx", cfg.catalog)
    assert [p for p in problems if p.severity == "error"] == []
    assert sub.values == {i.code: 7 for i in cfg.catalog.counts}
    assert sub.tasks[0].number == 1 and sub.tasks[0].status == "done"
    assert sub.contact == typed


# ------------------------------------------------------------------------------------------ through the intake
def _with_contact(data: bytes, typed: dict[str, str]) -> bytes:
    wb = load_workbook(io.BytesIO(data))
    for row in wb[SHEET_INFO].iter_rows(max_col=2):
        for key, label in CONTACT_LABELS.items():
            if row[0].value == label and key in typed:
                row[1].value = typed[key]
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_preparer_phone_and_head_reach_the_store_and_the_receipt(tu_ky: TuKy) -> None:
    """Through the real path: mailbox, collect flow, store, the receipt as the SMTP server got it."""
    typed = {"preparer": "Nguyễn Thị Hoa", "phone": "0220 3851 234", "head": "Trần Văn Nam"}
    data, _ = tu_ky.fill("X11074-VHXH")
    tu_ky.mail("X11074-VHXH", _with_contact(data, typed))
    bare, _ = tu_ky.fill("X11074-VP")  # the demo's clerks sign; this one left the three fields empty
    tu_ky.mail("X11074-VP", _with_contact(bare, dict.fromkeys(CONTACT_LABELS, None)))
    assert tu_ky.collect(ON_TIME)["mailbox"]["by_status"] == {"accepted": 2}
    stored = {s.unit_code: s.contact for s in tu_ky.submissions()}
    assert stored == {"X11074-VHXH": typed, "X11074-VP": {}}
    receipts = {m.message["X-Baocao-Unit"]: text_of(m) for m in tu_ky.replies()}
    assert ("Người lập biểu: Nguyễn Thị Hoa, điện thoại 0220 3851 234; Thủ trưởng đơn vị: Trần Văn Nam."
            in receipts["X11074-VHXH"])
    assert ("Biểu mẫu chưa ghi người lập biểu, số điện thoại và thủ trưởng đơn vị (trang Thông tin); "
            "đề nghị đơn vị ghi ở lần gửi sau." in receipts["X11074-VP"])
