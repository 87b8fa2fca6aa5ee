"""Validation rules, each with a failing and a passing case; summary and token helpers."""

from __future__ import annotations

import pytest

from baocao.intake.results import Problem, Submitted, make_problem
from baocao.intake.validation import has_errors, summary_vi, token_problems, validate
from baocao.opening.tokens import make_token
from baocao.rules.catalog import Catalog, Relation
from baocao.rules.config import Config, load_config

FILE = "BaoCao_2026-H1_X10714.xlsx"


def good(catalog: Catalog) -> Submitted:
    values = {i.code: 40 for i in catalog.counts}
    for rel in catalog.relations:
        values[rel.left] = 30
    cells = {i.code: f"D{n}" for n, i in enumerate(catalog.counts, start=2)}
    return Submitted("X10714", "2026-H1", None, 1, "xlsx", values=values, cells=cells, sheet="Chỉ tiêu")


def rules(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.severity, p.rule) for p in problems]


def test_a_good_submission_has_no_problems(cfg: Config) -> None:
    assert validate(good(cfg.catalog), cfg.catalog, filename=FILE) == []


def test_required_value_missing_is_an_error(cfg: Config) -> None:
    sub = good(cfg.catalog)
    code = next(i.code for i in cfg.catalog.counts if i.required)
    sub.values[code] = None
    problems = validate(sub, cfg.catalog, filename=FILE)
    assert rules(problems) == [("error", "required")]
    assert problems[0].code == code and problems[0].cell == sub.cells[code]
    assert problems[0].message_vi.startswith(f"Tệp “{FILE}”, trang “Chỉ tiêu”, ô {sub.cells[code]}: ")
    assert code not in problems[0].message_vi  # named by its words and cell (issue 21 §2)
    del sub.values[code]
    assert rules(validate(sub, cfg.catalog, filename=FILE)) == [("error", "required")]


def test_required_value_already_reported_by_the_reader_is_not_repeated(cfg: Config) -> None:
    sub = good(cfg.catalog)
    code = cfg.catalog.counts[0].code
    sub.values[code] = None
    sub.reported.add(code)
    assert validate(sub, cfg.catalog, filename=FILE) == []


RELATIONS = load_config(env={}).catalog.relations


@pytest.fixture(params=RELATIONS, ids=[f"{r.left}<={r.right}" for r in RELATIONS])
def relation(request: pytest.FixtureRequest) -> Relation:
    return request.param


def test_every_catalogue_relation_fails_at_one_more(cfg: Config, relation: Relation) -> None:
    sub = good(cfg.catalog)
    sub.values[relation.part], sub.values[relation.whole] = 1000, 999
    problems = validate(sub, cfg.catalog, filename=FILE)
    assert rules(problems) == [("error", "relation")]
    message = problems[0].message_vi
    part_cell, whole_cell = sub.cells[relation.part], sub.cells[relation.whole]
    assert message.endswith(f"{relation.part_name} (ô {part_cell}: 1.000) lớn hơn {relation.whole_name} "
                            f"(ô {whole_cell}: 999). Đề nghị đơn vị kiểm tra lại.")
    assert FILE in message and problems[0].cell == part_cell


def test_a_dissemination_conference_is_a_conference(cfg: Config) -> None:
    """Issue 21: a commune's receipt accepted 73 dissemination conferences against 47 in all."""
    cells = {code: c for code, c in (("HN_QUAN_TRIET", "D7"), ("HN_TONG", "D5"))}
    sub = good(cfg.catalog)
    sub.cells.update(cells)
    sub.values.update(HN_QUAN_TRIET=73, HN_TONG=47, HN_TRUC_TUYEN=20, HN_VUOT_THOI_GIAN=0)
    (problem,) = validate(sub, cfg.catalog, filename=FILE)
    assert problem.severity == "error"
    assert problem.message_vi.endswith("Số hội nghị quán triệt (ô D7: 73) lớn hơn tổng số hội nghị (ô D5: 47). "
                                       "Đề nghị đơn vị kiểm tra lại.")
    sub.values["HN_QUAN_TRIET"] = 47
    assert validate(sub, cfg.catalog, filename=FILE) == []


def test_every_catalogue_relation_passes_at_equality(cfg: Config, relation: Relation) -> None:
    sub = good(cfg.catalog)
    sub.values[relation.left] = sub.values[relation.right] = 999
    assert validate(sub, cfg.catalog, filename=FILE) == []


def test_relation_with_a_missing_side_is_not_checked(cfg: Config) -> None:
    rel = cfg.catalog.relations[0]
    sub = good(cfg.catalog)
    sub.values[rel.right] = None
    sub.reported.add(rel.right)
    assert validate(sub, cfg.catalog, filename=FILE) == []


def test_cumulative_count_smaller_than_earlier_report_is_a_warning(cfg: Config) -> None:
    sub = good(cfg.catalog)
    code = cfg.catalog.counts[0].code
    earlier = {code: sub.values[code] + 1}
    problems = validate(sub, cfg.catalog, filename=FILE, earlier_same_year=earlier)
    assert rules(problems) == [("warning", "not_cumulative")]
    assert problems[0].code == code
    assert validate(sub, cfg.catalog, filename=FILE, earlier_same_year={code: sub.values[code]}) == []


def test_large_jump_against_last_year_is_a_warning(cfg: Config) -> None:
    catalog = cfg.catalog
    sub = good(catalog)
    code = catalog.counts[0].code
    ratio, floor = catalog.jump_ratio, catalog.jump_min_value
    sub.values[code] = int(floor * ratio) + 1
    problems = validate(sub, catalog, filename=FILE, last_year={code: floor})
    assert rules(problems) == [("warning", "jump")]
    assert validate(sub, catalog, filename=FILE, last_year={code: sub.values[code] // 2}) == []


def test_drop_to_a_third_is_a_jump_too_but_small_numbers_are_not(cfg: Config) -> None:
    catalog = cfg.catalog
    sub = good(catalog)
    code = catalog.counts[0].code
    sub.values[code] = 0
    assert rules(validate(sub, catalog, filename=FILE, last_year={code: catalog.jump_min_value})) == [
        ("warning", "jump")]
    assert validate(sub, catalog, filename=FILE, last_year={code: catalog.jump_min_value - 1}) == []


def test_jump_uses_the_previous_year_typed_in_the_form_when_the_system_has_none(cfg: Config) -> None:
    catalog = cfg.catalog
    sub = good(catalog)
    code = catalog.counts[0].code
    sub.values[code] = 1000
    sub.previous_year[code] = 100
    assert rules(validate(sub, catalog, filename=FILE)) == [("warning", "jump")]
    assert validate(sub, catalog, filename=FILE, last_year={code: 900}) == []


def test_csv_cells_are_named_as_lines(cfg: Config) -> None:
    rel = cfg.catalog.relations[0]
    sub = good(cfg.catalog)
    sub.fmt, sub.sheet = "csv", None
    sub.cells = {rel.left: "dòng 5", rel.right: "dòng 4"}
    sub.values[rel.left] = sub.values[rel.right] + 1
    message = validate(sub, cfg.catalog, filename="a.csv")[0].message_vi
    assert message.startswith("Tệp “a.csv”, dòng 5") and f"(dòng 4: {sub.values[rel.right]})" in message


def test_has_errors_and_summary(cfg: Config) -> None:
    error = make_problem("error", FILE, "relation", "lỗi thứ nhất.")
    warning = make_problem("warning", FILE, "jump", "lưu ý thứ nhất.")
    assert has_errors([warning, error]) and not has_errors([warning]) and not has_errors([])
    text = summary_vi([warning, error])
    assert text.index("1 lỗi") < text.index(error.message_vi) < text.index("lưu ý (1)") < text.index(
        warning.message_vi)
    assert "lỗi" not in summary_vi([warning]).split("\n")[0]
    assert summary_vi([]).startswith("Không phát hiện")


def test_token_problems(cfg: Config) -> None:
    sub = good(cfg.catalog)
    sub.token = make_token("k", "X10714", "2026-H1", 1)
    assert token_problems(sub, "k", filename=FILE, form_version=1) == []
    assert rules(token_problems(sub, "other", filename=FILE, form_version=1)) == [("error", "token_invalid")]
    sub.unit_code = "X11074"
    problems = token_problems(sub, "k", filename=FILE, form_version=1)
    assert rules(problems) == [("error", "token_invalid")] and sub.token not in problems[0].message_vi
    sub.token = make_token("k", "X11074", "2026-H1", 0)
    assert rules(token_problems(sub, "k", filename=FILE, form_version=1)) == [("error", "form_version")]
    sub.token = None
    assert rules(token_problems(sub, "k", filename=FILE, form_version=1)) == [("error", "token_missing")]
    assert token_problems(sub, "k", filename=FILE, form_version=1, required=False) == []
