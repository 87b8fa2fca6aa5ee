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
    assert problems[0].message_vi.startswith(f"Tệp «{FILE}», trang «Chỉ tiêu», ô {sub.cells[code]}, mã «{code}»")
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


def test_every_catalogue_relation_fails_when_broken(cfg: Config, relation: Relation) -> None:
    sub = good(cfg.catalog)
    sub.values[relation.left], sub.values[relation.right] = 1234, 999
    problems = validate(sub, cfg.catalog, filename=FILE)
    assert rules(problems) == [("error", "relation")]
    message = problems[0].message_vi
    assert relation.message in message
    assert "1.234" in message and "999" in message
    assert sub.cells[relation.left] in message and sub.cells[relation.right] in message
    assert FILE in message


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
    assert message.startswith("Tệp «a.csv», dòng 5") and "(dòng 4)" in message


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
