"""Each plan's own wording and targets (config/plans/<plan>.toml `[indicators.*]`, `[targets.*]`).

Built from the seeds' own sentences (tests/data/seeds, copies of ../shared/seeds): a form or report
of a cycle says what *its* plan says, and never claims a target its plan did not set.
"""

from __future__ import annotations

import io
import shutil
from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from baocao.consolidation.reporting import cycle_figures, render
from baocao.errors import ConfigError
from baocao.opening.forms import SHEET_COUNTS, FormBuilder, FormSpec
from baocao.paths import PROJECT_DIR
from baocao.rules.config import Config, load_config
from baocao.rules.periods import Period
from baocao.store.queries import CycleInfo
from tests.support.reports import docx_paragraphs
from tests.support.seeds import SEEDS

SEED = {"tu-ky": "000", "nhi-chieu": "001", "lai-chau-vp": "002", "hue": "003", "thien-tan": "004"}
DOC_CUT = "Tỷ lệ giảm số lượng văn bản hành chính so với cùng kỳ"


def seed_text(plan: str) -> str:
    """The seed's words with its line breaks and spaces collapsed (the PDFs' text wraps mid-sentence)."""
    (path,) = SEEDS.glob(f"{SEED[plan]}_*.txt")
    return " ".join(path.read_text(encoding="utf-8").split())


def form_label(form: bytes, code: str) -> str:
    ws = openpyxl.load_workbook(io.BytesIO(form))[SHEET_COUNTS]
    header = next(r for r in ws.iter_rows() if any(c.value == "Mã" for c in r))  # found as the reader finds it
    col = {c.value: c.column - 1 for c in header}
    return next(str(row[col["Chỉ tiêu"]].value) for row in ws.iter_rows() if row[col["Mã"]].value == code)


def _spec(cfg: Config, unit: str) -> FormSpec:
    return FormSpec(unit=cfg.hierarchy[unit], period=Period(2026, "H1"), deadline=date(2026, 6, 2),
                    token="t", form_version=1, coordinator_name="", coordinator_email="", reply_to="")


# ----------------------------------------------------------------------------- meeting limits
def test_tu_ky_form_states_its_discussion_limit_of_one_day(tu_ky) -> None:  # noqa: ANN001
    """Seed 000 (Tứ Kỳ), II.4: "hội nghị chuyên môn không quá 01 ngày; các cuộc họp cần thảo luận
    không quá 01 ngày". The form mailed by the opening (dispatch.prepare_requests, handed a builder
    for the catalogue as written) states that limit, not the 1,5 days of the other plans."""
    assert "các cuộc họp cần thảo luận không quá 01 ngày" in seed_text("tu-ky")
    for unit, (_, form) in tu_ky.forms.items():
        label = form_label(form, "HN_VUOT_THOI_GIAN")
        assert "thảo luận > 01 ngày" in label, (unit, label)
        assert "1,5" not in label


@pytest.mark.parametrize("plan", ["nhi-chieu", "lai-chau-vp", "hue", "thien-tan"])
def test_other_plans_forms_state_one_and_a_half_days(cfg: Config, plan: str) -> None:
    """Seeds 001 (II.4.a), 002 (II.4), 003 (II.4.b), 004 (II.4.b): "các hội nghị quan trọng cần thảo
    luận không quá 1,5 ngày"."""
    assert "các hội nghị quan trọng cần thảo luận không quá 1,5 ngày" in seed_text(plan)
    unit = cfg.plan(plan).root
    label = form_label(FormBuilder(cfg.catalog_for(plan)).build(_spec(cfg, unit)), "HN_VUOT_THOI_GIAN")
    assert "thảo luận > 1,5 ngày" in label


def test_tu_ky_report_states_its_discussion_limit(cfg: Config) -> None:
    """Seed 000, II.4 again: the consolidated report of Tứ Kỳ names the count with its own limits."""
    report = _report(cfg, "tu-ky")
    assert any("thảo luận > 01 ngày" in p for p in report.paragraphs)
    assert not any("1,5 ngày" in t for t in report.everything)


# ----------------------------------------------------------------------------- the 15 % cut of documents
class _Report:
    def __init__(self, docx: bytes, xlsx: bytes, text: str) -> None:
        self.paragraphs = docx_paragraphs(docx)
        book = openpyxl.load_workbook(io.BytesIO(xlsx))
        cells = [str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row if c]
        self.everything = [*self.paragraphs, *cells, text]


def _report(cfg: Config, plan: str) -> _Report:
    """The report of the plan's root for 2026-H1, through the cycle's path (cycle_figures, render).

    Every leaf reports 10 of everything (last year 10), and 8 documents against 10: a 20,0 % cut of
    documents, so "15%" can only come from a target.
    """
    root = cfg.plan(plan).root
    cycle = CycleInfo(1, "2026-H1", plan, root)
    leaves = [u.code for u in cfg.hierarchy.leaves(root)]
    rows = [{"unit_code": u, "indicator": i.code, "value": 8.0 if i.code == "VB_HANH_CHINH" else 10.0,
             "previous_year": 10.0} for u in leaves for i in cfg.catalog.counts]
    requests = pd.DataFrame({"unit_code": leaves, "state": "accepted", "on_time": True})
    texts = pd.DataFrame(columns=["unit_code", "indicator", "text"])
    figures = cycle_figures(cfg, cycle, pd.DataFrame(rows), texts, requests)
    out = render(cfg, cycle, root, figures, date(2026, 6, 5), tasks=None, correction_of=None)
    return _Report(out.docx, out.xlsx, out.text)


@pytest.mark.parametrize("plan", ["tu-ky", "lai-chau-vp"])
def test_plans_silent_on_cutting_documents_claim_no_15_percent_target(cfg: Config, plan: str) -> None:
    """Seed 000 (Tứ Kỳ) I.2.a names its targets: "hội nghị trực tuyến ... không ít hơn 60%; tinh giản 10%
    số lượng hội nghị hằng năm; ... đạt từ 95% trở lên", and seed 002 (VP UBND Lai Châu) I.2.a the same:
    neither sets the 15 % cut of administrative documents, so their reports state the cut without it."""
    assert "15%" not in seed_text(plan) and "15%" not in seed_text(plan)
    report = _report(cfg, plan)
    assert f"- {DOC_CUT} đạt 20,0%." in report.paragraphs
    assert not any("15%" in t for t in report.everything)


@pytest.mark.parametrize(("plan", "words"), [
    ("nhi-chieu", "Thực hiện cắt giảm tối thiểu 15% số lượng văn bản hành chính"),   # seed 001, appendix task 3
    ("hue", "Thực hiện cắt giảm tối thiểu 15% số lượng văn bản hành chính ban hành hằng năm"),  # seed 003, II.3.a
    ("thien-tan", "thực hiện tinh giản tối thiểu 15% số lượng văn bản hành chính hằng năm"),  # seed 004, I.2
], ids=["nhi-chieu", "hue", "thien-tan"])
def test_plans_that_set_the_15_percent_cut_report_against_it(cfg: Config, plan: str, words: str) -> None:
    """Seeds 001 (Nhị Chiểu, appendix task 3), 003 (Huế, II.3.a) and 004 (Thiên Tân, I.2) set the cut of
    administrative documents at 15 % at least: their reports measure the cut against it."""
    assert words in seed_text(plan)
    report = _report(cfg, plan)
    assert f"- {DOC_CUT} đạt 20,0%, vượt chỉ tiêu (≥ 15%)." in report.paragraphs
    assert "≥ 15%" in report.everything


def test_every_seed_target_is_recorded_with_its_plan(cfg: Config) -> None:
    """What each seed sets, figure by figure (the seeds' I.2.a/II.4/II.5 sentences and appendices):
    60 % online, 10 % fewer conferences, 95 % procedures online and digitised, 100 % electronic
    documents everywhere; the 15 % document cut in 001, 003, 004; Huế's 100 % staff trained in digital
    skills (seed 003, appendix task 10: "phấn đấu 100% CBCCVV được đào tạo kỹ năng số")."""
    common = {"TL_HN_TRUC_TUYEN": 60, "GIAM_HN": 10, "HN_VUOT_TG": 0, "TL_TTHC_SO": 95, "TL_SO_HOA": 95,
              "TL_VB_DIEN_TU": 100}
    expected = {
        "tu-ky": common, "lai-chau-vp": common,
        "nhi-chieu": {**common, "GIAM_VB": 15}, "thien-tan": {**common, "GIAM_VB": 15},
        "hue": {**common, "GIAM_VB": 15, "TL_KY_NANG_SO": 100},
    }
    assert "phân đầu 100% CBCCVV được đào tạo kỹ năng số" in seed_text("hue")
    for plan, targets in expected.items():
        got = {d.code: d.target for d in cfg.catalog_for(plan).derived if d.target is not None}
        assert got == targets, plan
        assert all(t.source for t in (cfg.plan(plan).targets or {}).values()), plan


# ----------------------------------------------------------------------------- config check
def _copy_config(tmp_path: Path) -> Path:
    dest = tmp_path / "config"
    shutil.copytree(PROJECT_DIR / "config", dest)
    return dest


@pytest.mark.parametrize(("block", "expected"), [
    ('[indicators.HN_VUOT_THOI_GIAN_X]\nlabel = "x"\n', "indicators.HN_VUOT_THOI_GIAN_X: 'HN_VUOT_THOI_GIAN_X' is not an indicator"),
    ('[targets.GIAM_VB_X]\nop = ">="\ntarget = 15\n', "targets.GIAM_VB_X: 'GIAM_VB_X' is not a derived figure"),
    ('[targets.GIAM_VB]\nop = ">="\ntarget = 15\n', "targets.GIAM_VB: indicators.toml says only national, nhi-chieu"),
], ids=["unknown-indicator", "unknown-target", "target-not-set-by-plan"])
def test_config_check_fails_on_an_override_naming_an_unknown_or_unset_figure(tmp_path, monkeypatch, block,
                                                                              expected) -> None:  # noqa: ANN001
    """A typo in an override would leave the catalogue's wording or target in the plan's forms silently."""
    from flows.cli import app

    d = _copy_config(tmp_path)
    with (d / "plans" / "tu-ky.toml").open("a", encoding="utf-8") as f:
        f.write("\n" + block)
    with pytest.raises(ConfigError) as exc:
        load_config(d, env={})
    assert "tu-ky.toml" in str(exc.value) and expected in str(exc.value)
    monkeypatch.setenv("BAOCAO_CONFIG_DIR", str(d))
    result = CliRunner().invoke(app, ["config", "check", "--year", "2026"], env={"COLUMNS": "400"})
    assert result.exit_code != 0
    assert "".join(expected.split()) in "".join(result.output.split())
