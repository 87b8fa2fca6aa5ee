"""Plausibility (issue 21 §6): what the catalogue implies is a rule, what is only unlikely is pointed out.

- A part is at most its whole (73 dissemination conferences against 47 in all was accepted): an error,
  worded with both figures (edges in tests/test_validation.py; the problems reply as received in
  tests/test_intake.py).
- The demo's generator obeys every relation, so the city's totals do too (6,645 within 6,489 before).
- A jump from last year is a warning the receipt gives in words, as the unit receives it.
- A count far above the unit's peers is flagged "Cần kiểm tra" in the report's XLSX appendix.
"""

from __future__ import annotations

import io
import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from baocao.consolidation.aggregate import consolidate_tree
from baocao.consolidation.peers import peer_flags
from baocao.consolidation.report import render_xlsx, report_context
from baocao.devservers.simulate import figures
from baocao.rules.config import Config, load_config
from baocao.rules.hierarchy import Hierarchy, Unit
from tests.support.reports import H1, PLAN_NAME, REPORT_DATE
from tests.support.tuky import ON_TIME, TuKy, text_of

CATALOG = load_config(env={}).catalog


def test_the_catalogue_states_every_part_and_whole_it_implies() -> None:
    pairs = {(r.part, r.whole) for r in CATALOG.relations}
    assert ("HN_QUAN_TRIET", "HN_TONG") in pairs  # the pair the demo broke
    assert {("HN_TRUC_TUYEN", "HN_TONG"), ("HN_VUOT_THOI_GIAN", "HN_TONG"), ("KIEM_TRA_DOT_XUAT", "KIEM_TRA"),
            ("VI_PHAM_XU_LY", "VI_PHAM_PHAT_HIEN"), ("CBCC_KY_NANG_SO", "CBCC_TONG")} <= pairs


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scales=st.lists(st.floats(0.5, 3.0), min_size=1, max_size=40))
def test_the_demo_generator_obeys_every_relation_and_so_do_its_totals(seed: int, scales: list[float]) -> None:
    rng = random.Random(seed)
    units = [figures(CATALOG, rng, scale=s) for s in scales]  # as flows/demo.py draws the units
    totals = {code: sum(u.values[code] for u in units) for code in units[0].values}
    for rel in CATALOG.relations:
        for u in units:
            assert u.values[rel.part] <= u.values[rel.whole], rel
            assert u.previous_year[rel.part] <= u.previous_year[rel.whole], rel
        assert totals[rel.part] <= totals[rel.whole], rel
    assert totals["HN_QUAN_TRIET"] <= totals["HN_TONG"]


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.slow
def test_a_jump_from_last_year_is_accepted_and_the_receipt_says_it_in_words(tu_ky: TuKy) -> None:
    unit = "X11074-VP"
    label = tu_ky.cfg.catalog_for("tu-ky")["TIN_BAI"].label
    data, _ = tu_ky.fill(unit, set_values={"TIN_BAI": 1000})
    tu_ky.mail(unit, data)

    tu_ky.collect(ON_TIME)

    (receipt,) = tu_ky.replies()
    assert receipt.message["X-Baocao-Kind"] == "receipt"
    text = text_of(receipt)
    assert "Lưu ý" in text
    warning = next(line for line in text.splitlines() if "chênh lệch lớn so với cùng kỳ năm trước" in line)
    assert label in warning and "1.000" in warning
    assert tu_ky.unit_status(unit)["state"] == "accepted"


# ----------------------------------------------------------------------------- peers in the appendix
def _communes(n: int) -> Hierarchy:
    units = {"T31": Unit("T31", "Thành phố Hải Phòng", "province", None)}
    for i in range(1, n + 1):
        units[f"X{i}"] = Unit(f"X{i}", f"Xã Số {i}", "commune", "T31")
    units["T31-SNV"] = Unit("T31-SNV", "Sở Nội vụ", "department", "T31")
    return Hierarchy(units=units, root_code="T31")


def _context(cfg: Config, conferences: dict[str, int]):  # noqa: ANN202 - ReportContext
    h = _communes(len([u for u in conferences if u.startswith("X")]))
    rows = [{"unit_code": unit, "indicator": ind.code,
             "value": float(conferences[unit] if ind.code == "HN_TONG" else 10), "previous_year": 10.0}
            for unit in conferences for ind in cfg.catalog.counts]
    requests = pd.DataFrame({"unit_code": list(conferences), "state": ["accepted"] * len(conferences),
                             "on_time": [True] * len(conferences)})
    figs = consolidate_tree("T31", h, cfg.catalog, pd.DataFrame(rows), requests, plan="national", period="2026-H1")
    return report_context(figs, "T31", h, cfg.catalog, H1, PLAN_NAME, REPORT_DATE)


def test_a_count_far_above_its_peers_is_flagged_in_the_appendix(cfg: Config) -> None:
    k = cfg.catalog.peer_factor
    conferences = {f"X{i}": 40 + i for i in range(1, 8)}  # median of the others: 44 or 45
    conferences["X8"] = int(k * 44) + 30  # far above: flagged
    conferences["X9"] = int(k * 40)  # at most k x the median: not flagged
    conferences["T31-SNV"] = 900  # a department: not a commune's peer (and alone at its level)
    ctx = _context(cfg, conferences)

    ws = load_workbook(io.BytesIO(render_xlsx(ctx)))["Số liệu theo đơn vị"]
    header = next(r for r in ws.iter_rows() if any(c.value == "Đơn vị" for c in r))
    col = next(c.column for c in header if str(c.value).startswith(cfg.catalog["HN_TONG"].label))
    by_name = {ws.cell(row=r, column=3).value: ws.cell(row=r, column=col) for r in range(header[0].row + 1, ws.max_row + 1)}
    flagged = {name for name, cell in by_name.items() if cell.comment is not None}
    assert flagged == {"Xã Số 8"}
    cell = by_name["Xã Số 8"]
    assert cell.fill.fgColor.rgb.endswith("FFEB9C")
    assert cell.comment.text.startswith("Cần kiểm tra: ") and "trung vị" in cell.comment.text
    assert "lần trung vị của các đơn vị cùng cấp" in ws.oddFooter.left.text  # printed on every page
    assert by_name["Xã Số 9"].fill.fgColor.rgb in (None, "00000000")


def test_peers_need_enough_siblings_and_a_count_that_matters(cfg: Config) -> None:
    cat = cfg.catalog
    h = _communes(6)
    few = {f"X{i}": {"HN_TONG": 10.0} for i in range(1, 6)} | {"X6": {"HN_TONG": 500.0}}
    assert ("X6", "HN_TONG") in peer_flags(few, list(few), h, cat)
    assert peer_flags({u: few[u] for u in list(few)[1:]}, list(few)[1:], h, cat) == {}  # 4 peers: too few
    small = {f"X{i}": {"HN_TONG": 0.0} for i in range(1, 6)} | {"X6": {"HN_TONG": float(cat.jump_min_value - 1)}}
    assert peer_flags(small, list(small), h, cat) == {}  # 19 against nothing is not news
