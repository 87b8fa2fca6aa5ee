"""Report contexts the report tests share: Hải Phòng with three communes (hand-computed figures), and the
real city tree (114 communes, departments under two of them) with seeded random figures."""

from __future__ import annotations

import io
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
from docx import Document
from docx.oxml.ns import qn

from baocao.consolidation.aggregate import consolidate_tree
from baocao.consolidation.report import ReportContext, report_context
from baocao.rules.hierarchy import Hierarchy, Unit
from baocao.rules.periods import Period

H1 = Period(2026, "H1")
REPORT_DATE = date(2026, 6, 5)
PLAN_NAME = "Kế hoạch số 144/KH-UBND ngày 21/4/2026 của UBND thành phố Hải Phòng"


def docx_paragraphs(data: bytes) -> list[str]:
    """Every paragraph's text, those inside tables included (the ND 30 header is a table)."""
    body = Document(io.BytesIO(data)).element.body
    return ["".join(t.text or "" for t in p.iter(qn("w:t"))) for p in body.iter(qn("w:p"))]


def half_up(value: float, places: int = 1) -> float:
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def small_tree(child_names: tuple[str, str, str] = ("Phường Một", "Xã Hai", "Xã Ba")) -> Hierarchy:
    units = {"T31": Unit("T31", "Thành phố Hải Phòng", "province", None)}
    for code, name in zip(("X1", "X2", "X3"), child_names, strict=True):
        units[code] = Unit(code, name, "commune", "T31")
    return Hierarchy(units=units, root_code="T31")


def small_context(cfg, *, child_names=("Phường Một", "Xã Hai", "Xã Ba"), texts=None, **overrides) -> ReportContext:
    """Hải Phòng with three communes; X3 did not report, X2 reported late.

    Hand-computed: conferences 1.000 + 234 = 1.234 (last year 1.100 + 302 = 1.402, a cut of 11,98 %),
    online 700 + 92 = 792 (64,18 %), procedures 90 + 95 of 100 + 100 (92,5 %).
    """
    h = small_tree(child_names)
    special = {
        "X1": {"HN_TONG": (1000, 1100), "HN_TRUC_TUYEN": (700, 600), "TTHC_TIEP_NHAN": (100, 90),
               "TTHC_MOI_TRUONG_SO": (90, 80), "HN_VUOT_THOI_GIAN": (0, 1)},
        "X2": {"HN_TONG": (234, 302), "HN_TRUC_TUYEN": (92, 50), "TTHC_TIEP_NHAN": (100, 90),
               "TTHC_MOI_TRUONG_SO": (95, 80), "HN_VUOT_THOI_GIAN": (0, 0)},
    }
    rows = []
    for unit, given in special.items():
        for ind in cfg.catalog.counts:
            now, before = given.get(ind.code, (5, 5))
            rows.append({"unit_code": unit, "indicator": ind.code, "value": float(now), "previous_year": float(before)})
    values = pd.DataFrame(rows)
    requests = pd.DataFrame({"unit_code": ["X1", "X2", "X3"], "state": ["accepted", "accepted", "late"],
                             "on_time": [True, False, None]})
    figs = consolidate_tree("T31", h, cfg.catalog, values, requests, texts=texts, plan="national", period="2026-H1")
    return report_context(figs, "T31", h, cfg.catalog, H1, PLAN_NAME, REPORT_DATE, **overrides)


def haiphong_context(cfg) -> ReportContext:  # noqa: ANN001
    """Hải Phòng's real tree (114 communes, departments under two of them) with random figures."""
    h, cat = cfg.hierarchy, cfg.catalog
    leaves = [u.code for u in h.leaves("T31")]
    rng = np.random.default_rng(31)
    rows = []
    for unit in leaves[4:]:  # the first four did not report
        total = int(rng.integers(20, 400))
        for ind in cat.counts:
            value = int(rng.integers(0, 300))
            rows.append({"unit_code": unit, "indicator": ind.code, "value": float(value),
                         "previous_year": float(rng.integers(0, 300))})
        rows[-len(cat.counts):] = [
            {**r, "value": float(total)} if r["indicator"] == "HN_TONG" else r for r in rows[-len(cat.counts):]
        ]
    values = pd.DataFrame(rows)
    values.loc[(values["indicator"] == "HN_TRUC_TUYEN"), "value"] = (
        values.loc[values["indicator"] == "HN_TRUC_TUYEN", "value"] % 150
    )
    requests = pd.DataFrame({"unit_code": leaves, "state": ["late"] * 4 + ["accepted"] * (len(leaves) - 4),
                             "on_time": [None] * 4 + [bool(x) for x in rng.random(len(leaves) - 4) < 0.8]})
    texts = pd.DataFrame([
        {"unit_code": leaves[10], "indicator": "KIEN_NGHI", "text": "Đề nghị thành phố bổ sung kinh phí số hóa."},
        {"unit_code": leaves[11], "indicator": "KIEN_NGHI", "text": "đề nghị thành phố bổ sung kinh phí số hóa"},
        {"unit_code": leaves[12], "indicator": "HAN_CHE", "text": "Hạ tầng mạng còn yếu."},
    ])
    figs = consolidate_tree("T31", h, cat, values, requests, texts=texts, plan="nhi-chieu", period="2026-H1")
    tasks = [{"number": 1, "content": "Quán triệt Kết luận 226-KL/TW", "done": 80, "in_progress": 30,
              "not_started": 9, "overdue": 2, "overdue_units": ["Phường Nhị Chiểu", "Xã Tứ Kỳ"]}]
    return report_context(figs, "T31", h, cat, H1, PLAN_NAME, REPORT_DATE, tasks=tasks,
                          signer_name="Nguyễn Văn A")
