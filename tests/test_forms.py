"""The XLSX form: four sheets, protection, validation, prefill; built by patching one template."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zipfile
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from baocao.intake.reader import read_submission
from baocao.opening.forms import (
    COUNT_COLUMNS,
    COUNT_HEADER_ROW,
    COUNT_HEADERS,
    CSV_COLUMNS,
    INFO_LABELS,
    SHEET_COUNTS,
    SHEET_INFO,
    SHEET_TASKS,
    SHEET_TEXTS,
    STATUS_LABELS,
    TASK_HEADER_ROW,
    TASK_HEADERS,
    TEXT_COLUMNS,
    TEXT_HEADER_ROW,
    TEXT_HEADERS,
    FormBuilder,
    FormSpec,
    FormTask,
    csv_template,
    form_filename,
)
from baocao.opening.tokens import make_token
from baocao.rules.config import Config
from baocao.rules.periods import Period


@pytest.fixture(scope="module")
def builder(cfg: Config) -> FormBuilder:
    return FormBuilder(cfg.catalog)


@pytest.fixture(scope="module")
def spec(cfg: Config) -> FormSpec:
    period = Period.parse("2026-H1")
    first = cfg.catalog.counts[0].code
    return FormSpec(
        unit=cfg.hierarchy["X10714"], period=period, deadline=date(2026, 6, 5),
        token=make_token("test-secret", "X10714", period.code, 1), form_version=1,
        coordinator_name="Phòng Văn hóa - Xã hội, UBND TP. Hải Phòng",
        coordinator_email="vhxh@haiphong.example", reply_to="nopbaocao@haiphong.example",
        previous_year={first: 1234},
        tasks=[FormTask(1, "Quán triệt Kết luận 226-KL/TW", "Trước 10/5/2026", "lead"),
               FormTask(2, "Rà soát, cắt giảm hội họp", "Thường xuyên", "partner")],
    )


def _info(ws) -> dict[str, object]:  # noqa: ANN001
    return {row[0].value: row[1] for row in ws.iter_rows(min_row=1, max_col=2) if row[0].value}


def _code_rows(ws) -> dict[str, int]:  # noqa: ANN001
    """code -> row on Chỉ tiêu (found by the Mã column, as the reader does)."""
    col = COUNT_COLUMNS.index("Mã") + 1
    return {ws.cell(r, col).value: r for r in range(COUNT_HEADER_ROW + 1, ws.max_row + 1) if ws.cell(r, col).value}


def test_four_sheets_in_order(builder: FormBuilder, spec: FormSpec) -> None:
    wb = load_workbook(io.BytesIO(builder.build(spec)))
    assert wb.sheetnames == [SHEET_INFO, SHEET_COUNTS, SHEET_TASKS, SHEET_TEXTS]
    assert all(ws.protection.sheet for ws in wb.worksheets)
    assert all(ws.protection.password is None for ws in wb.worksheets)  # documented: no password


def test_info_sheet_has_the_unit_period_contacts_and_token(builder: FormBuilder, spec: FormSpec) -> None:
    ws = load_workbook(io.BytesIO(builder.build(spec)))[SHEET_INFO]
    info = _info(ws)
    expected = {
        "unit_code": "X10714", "unit_name": "Phường Nhị Chiểu", "period_code": "2026-H1",
        "period_label": "6 tháng đầu năm 2026", "deadline": "05/6/2026",
        "coordinator_name": spec.coordinator_name, "coordinator_email": spec.coordinator_email,
        "reply_to": spec.reply_to, "form_version": 1, "token": spec.token,
    }
    for key, value in expected.items():
        assert info[INFO_LABELS[key]].value == value, key
    assert info[INFO_LABELS["token"]].protection.locked
    assert any("Hướng dẫn" in str(c.value) for c in ws["A"])


def test_counts_sheet_layout_locks_and_prefill(builder: FormBuilder, spec: FormSpec, cfg: Config) -> None:
    ws = load_workbook(io.BytesIO(builder.build(spec)))[SHEET_COUNTS]
    assert tuple(c.value for c in ws[COUNT_HEADER_ROW]) == COUNT_COLUMNS
    assert set(COUNT_HEADERS) <= set(COUNT_COLUMNS)  # the contract's labels are all there
    counts = cfg.catalog.counts
    rows = _code_rows(ws)
    assert set(rows) == {i.code for i in counts}
    first, second = rows[counts[0].code], rows[counts[1].code]
    assert ws.cell(first, 2).value == counts[0].label and ws.cell(first, 3).value == counts[0].unit
    for r in rows.values():
        assert not ws.cell(r, 4).protection.locked, "Giá trị must be editable"
        assert not ws.cell(r, 6).protection.locked, "Ghi chú must be editable"
        assert all(ws.cell(r, c).protection.locked for c in (1, 2, 3, 7))
    # Known last-year figure: shown and locked. Unknown: empty and open for the unit to give it.
    assert ws.cell(first, 5).value == 1234 and ws.cell(first, 5).protection.locked
    assert ws.cell(second, 5).value is None and not ws.cell(second, 5).protection.locked


def test_value_column_has_whole_number_validation_in_vietnamese(builder: FormBuilder, spec: FormSpec,
                                                                 cfg: Config) -> None:
    ws = load_workbook(io.BytesIO(builder.build(spec)))[SHEET_COUNTS]
    rules = [dv for dv in ws.data_validations.dataValidation if dv.type == "whole"]
    assert len(rules) == 1
    rule = rules[0]
    rows = sorted(_code_rows(ws).values())
    assert f"D{rows[-1]}" in rule.sqref and f"D{rows[0]}" in rule.sqref and f"E{rows[1]}" in rule.sqref
    assert rule.operator == "greaterThanOrEqual" and rule.formula1 == "0"
    assert rule.showErrorMessage and rule.errorStyle == "stop"
    assert "số nguyên không âm" in rule.error


def test_tasks_sheet_lists_tasks_with_a_status_drop_down(builder: FormBuilder, spec: FormSpec) -> None:
    ws = load_workbook(io.BytesIO(builder.build(spec)))[SHEET_TASKS]
    assert tuple(c.value for c in ws[TASK_HEADER_ROW]) == TASK_HEADERS
    first = TASK_HEADER_ROW + 1
    assert [c.value for c in ws[first]] == [1, "Quán triệt Kết luận 226-KL/TW", "Chủ trì", "Trước 10/5/2026",
                                           None, None, None]
    assert ws.cell(first + 1, 3).value == "Phối hợp"
    for col in (5, 6, 7):
        assert not ws.cell(first, col).protection.locked
    assert ws.cell(first, 2).protection.locked
    assert ws.row_dimensions[first].height and ws.row_dimensions[first].customHeight
    assert "Đơn vị được giao 2 nhiệm vụ" in ws["A2"].value
    lists = [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]
    assert len(lists) == 1 and f"E{first}" in lists[0].sqref
    assert all(label in lists[0].formula1 for label in STATUS_LABELS.values())


def test_a_unit_without_tasks_is_told_why_the_sheet_is_empty(builder: FormBuilder, spec: FormSpec) -> None:
    ws = load_workbook(io.BytesIO(builder.build(replace(spec, tasks=()))))[SHEET_TASKS]
    assert ws.max_row == TASK_HEADER_ROW and tuple(c.value for c in ws[TASK_HEADER_ROW]) == TASK_HEADERS
    assert ws["A2"].value.startswith("Đơn vị không được giao nhiệm vụ nào trong Phụ lục kế hoạch trong kỳ này")


def test_texts_sheet_has_one_editable_wrapped_row_per_text_indicator(builder: FormBuilder, spec: FormSpec,
                                                                     cfg: Config) -> None:
    ws = load_workbook(io.BytesIO(builder.build(spec)))[SHEET_TEXTS]
    assert tuple(c.value for c in ws[TEXT_HEADER_ROW]) == TEXT_COLUMNS and set(TEXT_HEADERS) <= set(TEXT_COLUMNS)
    texts = cfg.catalog.texts
    rows = range(TEXT_HEADER_ROW + 1, TEXT_HEADER_ROW + len(texts) + 1)
    assert [(ws.cell(r, 1).value, ws.cell(r, 4).value, ws.cell(r, 2).value) for r in rows] == [
        (n, i.code, i.label) for n, i in enumerate(texts, start=1)]
    answer = ws.cell(TEXT_HEADER_ROW + 1, 3)
    assert not answer.protection.locked and answer.alignment.wrap_text


def test_unit_text_is_escaped_and_control_characters_dropped(builder: FormBuilder, spec: FormSpec) -> None:
    tricky = replace(spec, coordinator_name='A <b> & "c" \x07 ]]>', tasks=[FormTask(1, "x < y & z", "Quý IV", "lead")])
    wb = load_workbook(io.BytesIO(builder.build(tricky)))
    assert _info(wb[SHEET_INFO])[INFO_LABELS["coordinator_name"]].value == 'A <b> & "c"  ]]>'
    assert wb[SHEET_TASKS].cell(TASK_HEADER_ROW + 1, 2).value == "x < y & z"


def test_build_is_deterministic_and_a_valid_zip(builder: FormBuilder, spec: FormSpec) -> None:
    data = builder.build(spec)
    assert builder.build(spec) == data
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert zf.namelist()[0] == "[Content_Types].xml"
        sheets = b"".join(zf.read(n) for n in zf.namelist() if n.startswith("xl/worksheets/"))
    assert not re.search(rb"<v>9[0-9]{9}</v>", sheets), "a template placeholder leaked into the form"


def test_two_units_differ_only_where_they_should(builder: FormBuilder, spec: FormSpec, cfg: Config) -> None:
    other = replace(spec, unit=cfg.hierarchy["X11074"], token=make_token("t", "X11074", "2026-H1", 1))
    info = _info(load_workbook(io.BytesIO(builder.build(other)))[SHEET_INFO])
    assert info[INFO_LABELS["unit_code"]].value == "X11074"
    assert info[INFO_LABELS["unit_name"]].value == cfg.hierarchy["X11074"].name


def test_form_filename_is_what_a_clerk_would_name_it(spec: FormSpec) -> None:
    """Issue 21 §2: the period's and the unit's names, not codes; nothing a file system refuses."""
    assert form_filename(spec) == "Biểu báo cáo 6 tháng đầu năm 2026 - Phường Nhị Chiểu.xlsx"
    odd = replace(spec, unit=replace(spec.unit, name='Phòng "A"/B: C\r\nD*?<>|' + "x" * 300))
    name = form_filename(odd)
    assert name.endswith(".xlsx") and len(name) <= 125
    assert not set('/\\:*?"<>|\r\n') & set(name)


def test_too_many_tasks_is_refused(builder: FormBuilder, spec: FormSpec) -> None:
    with pytest.raises(ValueError):
        builder.build(replace(spec, tasks=[FormTask(i, "x", "", "lead") for i in range(1, 502)]))


def test_csv_template_has_the_documented_columns_and_reads_back(cfg: Config) -> None:
    text = csv_template(cfg.catalog, unit_code="X10714", period="2026-H1", token="v1-abc")
    lines = text.splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert len(lines) == 1 + len(cfg.catalog.counts) + len(cfg.catalog.texts)
    filled = [lines[0]] + [line.replace(",,,,", ",7,,,", 1) for line in lines[1:]]
    subs, problems = read_submission("\n".join(filled).encode(), "mau.csv", cfg.catalog)
    assert [p for p in problems if p.severity == "error"] == []
    assert subs[0].values == {i.code: 7 for i in cfg.catalog.counts}
    assert subs[0].texts == {i.code: "7" for i in cfg.catalog.texts}


def _calc_available() -> bool:
    soffice = shutil.which("soffice")
    return bool(soffice) and any(Path(p).exists() for p in (
        "/usr/lib/libreoffice/program/libsclo.so", "/opt/libreoffice/program/libsclo.so"))


@pytest.mark.skipif(not _calc_available(), reason="LibreOffice Calc is not installed")
def test_libreoffice_opens_and_resaves_the_form(builder: FormBuilder, spec: FormSpec, cfg: Config,
                                                tmp_path: Path) -> None:
    """What a unit using LibreOffice does: open the form, save it as .xlsx; we must read it back."""
    wb = load_workbook(io.BytesIO(builder.build(spec)))
    ws = wb[SHEET_COUNTS]
    for r in _code_rows(ws).values():
        ws.cell(r, 4).value = 5
    source = tmp_path / "in" / "BaoCao.xlsx"
    source.parent.mkdir()
    wb.save(source)
    out = tmp_path / "out"
    subprocess.run(
        ["soffice", "--headless", "--norestore", f"-env:UserInstallation=file://{tmp_path}/profile",
         "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", str(out), str(source)],
        check=True, capture_output=True, timeout=120,
    )
    data = (out / "BaoCao.xlsx").read_bytes()
    subs, problems = read_submission(data, "BaoCao.xlsx", cfg.catalog)
    assert [p for p in problems if p.severity == "error"] == []
    assert subs[0].unit_code == "X10714" and subs[0].token == spec.token
    assert subs[0].values == {i.code: 5 for i in cfg.catalog.counts}
    assert subs[0].previous_year[cfg.catalog.counts[0].code] == 1234
    lo = load_workbook(io.BytesIO(data))[SHEET_COUNTS]
    first = min(_code_rows(lo).values())
    assert lo.protection.sheet and not lo[f"D{first}"].protection.locked and lo[f"A{first}"].protection.locked
