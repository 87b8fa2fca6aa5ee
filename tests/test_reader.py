"""Reading submissions back: round trips, what people type, moved layouts, CSV, and never crashing."""

from __future__ import annotations

import io
import random
import re
from datetime import datetime

import pytest
from openpyxl import load_workbook

from baocao.intake.reader import read_submission
from baocao.intake.results import Limits, Problem
from baocao.opening.forms import (
    COUNT_HEADER_ROW,
    COUNT_HEADERS,
    SHEET_COUNTS,
    SHEET_TASKS,
    SHEET_TEXTS,
    TASK_HEADER_ROW,
    TEXT_HEADER_ROW,
)
from baocao.rules.catalog import Catalog, Indicator
from baocao.rules.config import Config
from tests.data.make_bad_files import (
    CATALOG,
    PERIOD,
    SECRET,
    UNIT,
    blank,
    counts_part,
    filled,
    good_values,
    rezip,
    spec,
)


def _errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def _row(ws, code: str) -> int:  # noqa: ANN001
    return next(r for r in range(1, ws.max_row + 1) if any(c.value == code for c in ws[r]))


def _first_value_cell() -> str:
    """Where today's form holds the first count's Giá trị (title rows and a group row stand above it)."""
    ws = load_workbook(io.BytesIO(blank()))[SHEET_COUNTS]
    return f"D{_row(ws, CATALOG.counts[0].code)}"


def _col_of(ws, label: str) -> int:  # noqa: ANN001
    return next(c.column for c in ws[COUNT_HEADER_ROW] if c.value == label)


def _with_value(value: object, index: int = 0) -> bytes:
    def mutate(wb) -> None:  # noqa: ANN001
        ws = wb[SHEET_COUNTS]
        ws.cell(_row(ws, list(good_values())[index]), 4).value = value
    return filled(mutate)


# ------------------------------------------------------------------------------------------ round trips
def test_round_trip_filled_in_openpyxl(cfg: Config) -> None:
    data = filled()
    subs, problems = read_submission(data, "BaoCao_2026-H1_X10714.xlsx", cfg.catalog)
    assert _errors(problems) == []
    assert len(subs) == 1
    sub = subs[0]
    assert (sub.unit_code, sub.period, sub.form_version, sub.fmt) == (UNIT, PERIOD, 1, "xlsx")
    assert sub.token == spec().token
    assert sub.values == good_values()
    assert sub.cells[cfg.catalog.counts[0].code] == _first_value_cell()
    assert sub.previous_year[cfg.catalog.counts[0].code] == 12
    assert set(sub.texts) == {i.code for i in cfg.catalog.texts}
    assert [(t.number, t.status) for t in sub.tasks] == [(1, "done"), (2, "in_progress")]


def test_round_trip_with_moved_columns_and_rows(cfg: Config) -> None:
    """A unit copies the table elsewhere: title rows on top, columns reordered, rows reversed."""
    def mutate(wb) -> None:  # noqa: ANN001
        ws = wb[SHEET_COUNTS]
        for merged in list(ws.merged_cells.ranges):
            ws.unmerge_cells(str(merged))
        rows = [[c.value for c in row] for row in ws.iter_rows(min_row=COUNT_HEADER_ROW, max_row=ws.max_row)]
        ws.delete_rows(1, ws.max_row)
        ws.cell(1, 1, "Biểu số liệu của phường")
        order = [rows[0].index(label) for label in ("Ghi chú", "Giá trị", "Chỉ tiêu", "Mã", "Cùng kỳ năm trước",
                                                    "Đơn vị tính")]
        for r, row in enumerate([rows[0], *rows[1:][::-1]], start=4):
            for c, src in enumerate(order, start=3):
                ws.cell(r, c, row[src])
        ws.cell(5, 3, "số liệu tạm tính")

    subs, problems = read_submission(filled(mutate), "moved.xlsx", cfg.catalog)
    assert _errors(problems) == []
    sub = subs[0]
    assert sub.values == good_values()
    last = cfg.catalog.counts[-1].code
    assert sub.cells[last] == "D5" and sub.notes[last] == "số liệu tạm tính"
    assert sub.previous_year[cfg.catalog.counts[0].code] == 12


def test_headers_and_sheet_names_match_without_accents_or_case(cfg: Config) -> None:
    def mutate(wb) -> None:  # noqa: ANN001
        ws = wb[SHEET_COUNTS]
        ws.cell(COUNT_HEADER_ROW, _col_of(ws, "Mã"), "MÃ")
        ws.cell(COUNT_HEADER_ROW, _col_of(ws, "Giá trị"), "  gia tri ")
        ws.title = "chi tieu"
    subs, problems = read_submission(filled(mutate), "f.xlsx", cfg.catalog)
    assert _errors(problems) == []
    assert subs[0].values == good_values()


def test_previous_year_typed_by_the_unit_is_read(cfg: Config) -> None:
    second = cfg.catalog.counts[1].code

    def mutate(wb) -> None:  # noqa: ANN001
        ws = wb[SHEET_COUNTS]
        ws.cell(_row(ws, second), 5).value = "1.500"
    subs, _ = read_submission(filled(mutate), "f.xlsx", cfg.catalog)
    assert subs[0].previous_year[second] == 1500


# ------------------------------------------------------------------------------------------ typed values
@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (1234, 1234), (0, 0), (12.0, 12), ("1.234", 1234), ("1 234", 1234), ("1\u00a0234", 1234),
        ("1234", 1234), (" 12 ", 12), ("1.234.567", 1234567),
    ],
)
def test_accepted_values(cfg: Config, typed: object, expected: int) -> None:
    subs, problems = read_submission(_with_value(typed), "f.xlsx", cfg.catalog)
    assert _errors(problems) == []
    assert subs[0].values[cfg.catalog.counts[0].code] == expected


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("12,5", "thập phân"), ("abc", "không phải số nguyên"), (-5, "số âm"), ("-5", "số âm"),
        (12.5, "không phải số nguyên"), (datetime(2026, 5, 12), "ngày"), (True, "đúng/sai"),
        ("#DIV/0!", "lỗi công thức"),
    ],
)
def test_refused_values_name_file_sheet_cell_code_and_value(cfg: Config, typed: object, words: str) -> None:
    code = cfg.catalog.counts[0].code
    subs, problems = read_submission(_with_value(typed), "BaoCao.xlsx", cfg.catalog)
    errors = _errors(problems)
    assert len(errors) == 1
    error = errors[0]
    ref = _first_value_cell()
    assert (error.rule, error.sheet, error.cell, error.code) == ("non_negative_integer", SHEET_COUNTS, ref, code)
    assert error.message_vi.startswith(f"Tệp “BaoCao.xlsx”, trang “{SHEET_COUNTS}”, ô {ref}: ")
    assert words in error.message_vi
    assert subs[0].values[code] is None and code in subs[0].reported


def test_formula_cached_value_is_read(cfg: Config) -> None:
    data = _with_value(777777)
    part = counts_part(data)
    data = rezip(data, transform={part: lambda xml: re.sub(rb"<v>777777</v>", b"<f>SUM(5,7)</f><v>12</v>", xml)})
    subs, problems = read_submission(data, "f.xlsx", cfg.catalog)
    assert _errors(problems) == []
    assert subs[0].values[cfg.catalog.counts[0].code] == 12


def test_empty_required_value_is_an_error(cfg: Config) -> None:
    subs, problems = read_submission(_with_value(None), "f.xlsx", cfg.catalog)
    assert [(p.rule, p.cell) for p in _errors(problems)] == [("required", _first_value_cell())]


def test_empty_optional_value_is_none_without_error() -> None:
    catalog = Catalog(groups=(), derived=(), relations=(), indicators=(
        Indicator("A_REQ", "Bắt buộc", "count", required=True), Indicator("B_OPT", "Tùy chọn", "count")))
    text = "ma_don_vi,ky_bao_cao,ma_chi_tieu,gia_tri\nX1,2026-H1,A_REQ,3\nX1,2026-H1,B_OPT,\n"
    subs, problems = read_submission(text.encode(), "a.csv", catalog)
    assert problems == []
    assert subs[0].values == {"A_REQ": 3, "B_OPT": None}


def test_unknown_code_is_a_warning_only(cfg: Config) -> None:
    def mutate(wb) -> None:  # noqa: ANN001
        ws = wb[SHEET_COUNTS]
        ws.cell(ws.max_row + 1, _col_of(ws, "Mã"), "CHI_TIEU_LA")
        ws.cell(ws.max_row, 4, 3)
    subs, problems = read_submission(filled(mutate), "f.xlsx", cfg.catalog)
    assert _errors(problems) == []
    assert [p.rule for p in problems] == ["unknown_code"]
    assert "CHI_TIEU_LA" not in subs[0].values


def test_missing_sheet_and_header_say_what_is_missing(cfg: Config) -> None:
    def drop(wb) -> None:  # noqa: ANN001
        del wb[SHEET_TEXTS]
    _, problems = read_submission(filled(drop), "f.xlsx", cfg.catalog)
    assert [(p.rule, SHEET_TEXTS in p.message_vi) for p in _errors(problems)] == [("missing_sheet", True)]

    def rename(wb) -> None:  # noqa: ANN001
        wb[SHEET_COUNTS].cell(COUNT_HEADER_ROW, 4, "Số liệu kỳ này")
    _, problems = read_submission(filled(rename), "f.xlsx", cfg.catalog)
    errors = _errors(problems)
    assert [p.rule for p in errors] == ["missing_header"]
    assert f"“{COUNT_HEADERS[3]}”" in errors[0].message_vi


def test_task_statuses_and_bad_status_warning(cfg: Config) -> None:
    def mutate(wb) -> None:  # noqa: ANN001
        ws = wb[SHEET_TASKS]
        first = TASK_HEADER_ROW + 1
        ws[f"E{first}"], ws[f"F{first}"], ws[f"G{first}"] = "chưa thực hiện", "Kế hoạch số 12", "chờ kinh phí"
        ws[f"E{first + 1}"] = "xong rồi"
    subs, problems = read_submission(filled(mutate), "f.xlsx", cfg.catalog)
    tasks = subs[0].tasks
    assert (tasks[0].status, tasks[0].product, tasks[0].note) == ("not_started", "Kế hoạch số 12", "chờ kinh phí")
    assert tasks[1].status is None
    assert [p.rule for p in problems] == ["bad_status"] and problems[0].cell == f"E{TASK_HEADER_ROW + 2}"


# ------------------------------------------------------------------------------------------ CSV
def _csv(sep: str = ",", units: tuple[str, ...] = (UNIT,), extra: str = "") -> str:
    lines = [sep.join(["ma_don_vi", "ky_bao_cao", "ma_chi_tieu", "gia_tri", "cung_ky_nam_truoc", "ghi_chu"])]
    for unit in units:
        for code, value in good_values().items():
            lines.append(sep.join([unit, PERIOD, code, str(value), "7", ""]))
    return "\n".join(lines) + "\n" + extra


@pytest.mark.parametrize("sep", [",", ";", "\t"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_csv_separators_and_bom(cfg: Config, sep: str, bom: bytes) -> None:
    subs, problems = read_submission(bom + _csv(sep).encode(), "solieu.csv", cfg.catalog)
    assert problems == []
    assert [(s.unit_code, s.period, s.fmt) for s in subs] == [(UNIT, PERIOD, "csv")]
    assert subs[0].values == good_values()
    assert set(subs[0].previous_year.values()) == {7}


def test_csv_several_units_texts_and_token(cfg: Config) -> None:
    text_code = cfg.catalog.texts[0].code
    token = spec().token
    lines = ["ma_don_vi,ky_bao_cao,ma_chi_tieu,gia_tri,ma_xac_thuc"]
    for unit, unit_token in ((UNIT, token), ("X11074", "")):
        lines += [f"{unit},{PERIOD},{code},{value},{unit_token}" for code, value in good_values().items()]
    lines.append(f'{UNIT},{PERIOD},{text_code},"Kết quả tốt, vượt kế hoạch",{token}')
    subs, problems = read_submission("\r\n".join(lines).encode(), "tonghop.csv", cfg.catalog)
    assert problems == []
    assert [s.unit_code for s in subs] == [UNIT, "X11074"]
    assert subs[0].texts == {text_code: "Kết quả tốt, vượt kế hoạch"}
    assert subs[0].token == token and subs[0].form_version == 1
    assert subs[1].token is None and subs[1].values == good_values()
    assert subs[0].cells[cfg.catalog.counts[0].code] == "dòng 2"


def test_csv_value_errors_name_the_line(cfg: Config) -> None:
    text = _csv(";").replace(f";{good_values()[cfg.catalog.counts[0].code]};7;", ";12,5;7;", 1)
    _, problems = read_submission(text.encode(), "a.csv", cfg.catalog)
    assert [(p.rule, p.cell) for p in _errors(problems)] == [("non_negative_integer", "dòng 2")]
    assert problems[0].message_vi.startswith("Tệp “a.csv”, dòng 2")


# ------------------------------------------------------------------------------------------ hostile input
def test_oversize_file_is_refused_before_parsing(cfg: Config) -> None:
    data = blank()
    subs, problems = read_submission(data, "f.xlsx", cfg.catalog, max_bytes=len(data) - 1)
    assert subs == [] and [p.rule for p in problems] == ["file_too_large"]
    _, problems = read_submission(b"\x00" * 2_000_001, "f.xlsx", cfg.catalog, max_bytes=2_000_000)
    assert [p.rule for p in problems] == ["file_too_large"]


def test_problem_flood_is_capped(cfg: Config) -> None:
    """The cap is per unit and period: one unit's 500 bad rows do not crowd out another unit's problem."""
    lines = (["ma_don_vi,ky_bao_cao,ma_chi_tieu,gia_tri"] + [f"X1,2026-H1,KHONG_CO_{i},1" for i in range(500)]
             + ["X2,2026-H1,KHONG_CO,1"])
    _, problems = read_submission("\n".join(lines).encode(), "a.csv", cfg.catalog,
                                  limits=Limits(max_problems=20, max_problems_total=1_000))
    x1 = [p for p in problems if p.unit == "X1"]
    assert len(x1) == 21 and x1[-1].rule == "too_many_problems"
    assert [p.rule for p in problems if p.unit == "X2" and p.rule == "unknown_code"] == ["unknown_code"]
    _, problems = read_submission("\n".join(lines).encode(), "a.csv", cfg.catalog,
                                  limits=Limits(max_problems=1_000, max_problems_total=20))
    assert len(problems) <= 20 + 2 and problems[-1].rule == "too_many_problems"  # and a total cap, for memory


def test_random_damage_never_raises(cfg: Config) -> None:
    """Flip, cut and splice bytes of a good form: every result is a list of Problems, never an exception."""
    rng = random.Random(226)
    good = filled()
    for i in range(150):
        data = bytearray(good)
        kind = i % 3
        if kind == 0:
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:
            data = data[: rng.randrange(len(data))]
        else:
            start = rng.randrange(len(data))
            data[start:start] = rng.randbytes(rng.randint(1, 500))
        subs, problems = read_submission(bytes(data), f"hong_{i}.xlsx", cfg.catalog)
        assert isinstance(subs, list) and isinstance(problems, list)
        assert subs or any(p.severity == "error" for p in problems)
        assert all(p.message_vi.startswith(f"Tệp “hong_{i}.xlsx”") for p in problems)


def test_random_bytes_as_csv_never_raise(cfg: Config) -> None:
    rng = random.Random(534)
    for i in range(100):
        subs, problems = read_submission(rng.randbytes(rng.randint(1, 3000)), f"r{i}.csv", cfg.catalog)
        assert subs or problems


def test_reader_token_is_read_not_verified(cfg: Config) -> None:
    """Verification needs the secret and happens at intake; the reader returns what the file says."""
    subs, _ = read_submission(filled(), "f.xlsx", cfg.catalog)
    assert subs[0].token == spec().token and SECRET not in repr(subs[0])


def test_texts_are_read_from_their_sheet(cfg: Config) -> None:
    def mutate(wb) -> None:  # noqa: ANN001
        wb[SHEET_TEXTS].cell(TEXT_HEADER_ROW + 1, 3, "Dòng 1\nDòng 2")
    subs, _ = read_submission(filled(mutate), "f.xlsx", cfg.catalog)
    assert subs[0].texts[cfg.catalog.texts[0].code] == "Dòng 1\nDòng 2"


def test_openpyxl_can_still_open_what_we_read(cfg: Config) -> None:
    """Sanity: the files in these tests are real workbooks, not something only our reader accepts."""
    wb = load_workbook(io.BytesIO(filled()))
    assert wb[SHEET_COUNTS][_first_value_cell()].value == good_values()[cfg.catalog.counts[0].code]
