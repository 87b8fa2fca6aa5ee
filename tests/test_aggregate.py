"""Consolidation rules on hand-computed examples (baocao/consolidation/aggregate.py), and the national tree."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from baocao.consolidation.aggregate import Figures, consolidate_tree, consolidate_unit
from baocao.rules.catalog import Catalog, Derived, Group, Indicator
from baocao.rules.hierarchy import Hierarchy, Unit

NaN = float("nan")


# ----------------------------------------------------------------------------- builders
def mini_catalog() -> Catalog:
    """A small catalogue with one of each derived kind and a plan-specific target."""
    return Catalog(
        groups=(Group("4", "Hội họp"), Group("5", "Chuyển đổi số")),
        indicators=(
            Indicator("HN_TONG", "Tổng số hội nghị", "count", "cuộc", "4"),
            Indicator("HN_TRUC_TUYEN", "Số hội nghị trực tuyến", "count", "cuộc", "4"),
            Indicator("HN_VUOT", "Số hội nghị vượt thời gian", "count", "cuộc", "4"),
            Indicator("CBCC", "Số cán bộ", "count", "người", "5"),
            Indicator("CBCC_SO", "Số cán bộ có kỹ năng số", "count", "người", "5"),
            Indicator("KIEN_NGHI", "Kiến nghị", "text", section="proposals"),
            Indicator("HAN_CHE", "Hạn chế", "text", section="shortcomings"),
        ),
        derived=(
            Derived("TL_TT", "Tỷ lệ hội nghị trực tuyến", "ratio", ">=", 60, "4",
                    numerator="HN_TRUC_TUYEN", denominator="HN_TONG"),
            Derived("GIAM_HN", "Tỷ lệ giảm hội nghị", "cut", ">=", 10, "4", of="HN_TONG"),
            Derived("VUOT", "Hội nghị vượt thời gian", "max", "<=", 0, "4", of="HN_VUOT"),
            Derived("TL_SO", "Tỷ lệ cán bộ có kỹ năng số", "ratio", ">=", 100, "5",
                    numerator="CBCC_SO", denominator="CBCC", plans=("hue",)),
        ),
        relations=(),
    )


def tree(root: str, *edges: tuple[str, str | None, str]) -> Hierarchy:
    """Hierarchy from (code, parent, level) triples; the unit's name is "Đơn vị <code>"."""
    units = {code: Unit(code=code, name=f"Đơn vị {code}", level=level, parent=parent) for code, parent, level in edges}
    return Hierarchy(units=units, root_code=root)


def values(rows: dict[str, dict[str, tuple[float, float] | float]]) -> pd.DataFrame:
    """{unit: {indicator: value or (value, previous_year)}} -> the values frame."""
    out = []
    for unit, figures in rows.items():
        for indicator, v in figures.items():
            now, before = v if isinstance(v, tuple) else (v, NaN)
            out.append({"unit_code": unit, "indicator": indicator, "value": float(now), "previous_year": float(before)})
    return pd.DataFrame(out, columns=["unit_code", "indicator", "value", "previous_year"])


def requests(states: dict[str, tuple[str, bool | None]], h: Hierarchy) -> pd.DataFrame:
    rows = [
        {"unit_code": code, "parent_code": h[code].parent, "role": "consolidate" if h.has_children(code) else "form",
         "state": state, "on_time": on_time, "deadline": None}
        for code, (state, on_time) in states.items()
    ]
    return pd.DataFrame(rows, columns=["unit_code", "parent_code", "role", "state", "on_time", "deadline"])


def all_accepted(h: Hierarchy, root: str) -> pd.DataFrame:
    return requests({u.code: ("accepted", True) for u in h.leaves(root)}, h)


def flat(*leaves: str) -> Hierarchy:
    return tree("R", ("R", None, "province"), *((code, "R", "commune") for code in leaves))


# ----------------------------------------------------------------------------- ratios and cuts
def test_ratio_is_ratio_of_sums_not_mean_of_ratios():
    h, cat = flat("A", "B"), mini_catalog()
    v = values({"A": {"HN_TONG": 10, "HN_TRUC_TUYEN": 1}, "B": {"HN_TONG": 10, "HN_TRUC_TUYEN": 9}})
    root = consolidate_unit("R", h, cat, v, all_accepted(h, "R"))
    assert root.derived["TL_TT"]["value"] == pytest.approx(50.0)  # 10/20, not (10 % + 90 %) / 2 = 50 by luck
    assert root.derived["TL_TT"]["met"] is False  # 50 < 60

    v = values({"A": {"HN_TONG": 10, "HN_TRUC_TUYEN": 1}, "B": {"HN_TONG": 100, "HN_TRUC_TUYEN": 90}})
    root = consolidate_unit("R", h, cat, v, all_accepted(h, "R"))
    assert root.derived["TL_TT"]["value"] == pytest.approx(91 / 110 * 100)  # 82,7 %, the mean would be 50 %
    assert root.derived["TL_TT"]["basis"] == {"numerator": 91.0, "denominator": 110.0, "units": 2}
    assert root.derived["TL_TT"]["met"] is True
    assert root.derived["TL_TT"]["children_met"] == ["B"]
    assert root.derived["TL_TT"]["children_missed"] == ["A"]
    assert (root.derived["TL_TT"]["n_children_met"], root.derived["TL_TT"]["n_children_missed"]) == (1, 1)


def test_ratio_uses_only_units_that_gave_both_counts():
    h, cat = flat("A", "B"), mini_catalog()
    v = values({"A": {"HN_TONG": NaN, "HN_TRUC_TUYEN": 5}, "B": {"HN_TONG": 10, "HN_TRUC_TUYEN": 1}})
    root = consolidate_unit("R", h, cat, v, all_accepted(h, "R"))
    assert root.totals["HN_TRUC_TUYEN"] == 6 and root.totals["HN_TONG"] == 10
    assert root.covered["HN_TONG"] == 1 and root.covered["HN_TRUC_TUYEN"] == 2
    assert root.derived["TL_TT"]["value"] == pytest.approx(10.0)  # 1/10 (B only), not 6/10


def test_cut_against_same_period_last_year():
    h, cat = flat("A", "B"), mini_catalog()
    v = values({"A": {"HN_TONG": (90, 100)}, "B": {"HN_TONG": (45, 50)}})
    root = consolidate_unit("R", h, cat, v, all_accepted(h, "R"))
    assert root.totals["HN_TONG"] == 135 and root.previous_year["HN_TONG"] == 150
    assert root.derived["GIAM_HN"]["value"] == pytest.approx(10.0)  # 1 - 135/150
    assert root.derived["GIAM_HN"]["met"] is True
    assert root.change["HN_TONG"] == pytest.approx(-10.0)

    v = values({"A": {"HN_TONG": (120, 100)}, "B": {"HN_TONG": (45, 50)}})
    root = consolidate_unit("R", h, cat, v, all_accepted(h, "R"))
    assert root.derived["GIAM_HN"]["value"] == pytest.approx((1 - 165 / 150) * 100)  # -10 %: an increase
    assert root.derived["GIAM_HN"]["met"] is False
    assert root.derived["GIAM_HN"]["children_met"] == ["B"] and root.derived["GIAM_HN"]["children_missed"] == ["A"]


def test_cut_compares_the_same_units_and_is_none_without_a_base():
    h, cat = flat("A", "B"), mini_catalog()
    v = values({"A": {"HN_TONG": (90, 100)}, "B": {"HN_TONG": (50, NaN)}})
    root = consolidate_unit("R", h, cat, v, all_accepted(h, "R"))
    assert root.totals["HN_TONG"] == 140  # both units this year
    assert root.previous_year["HN_TONG"] == 100  # only A gave last year's figure
    assert root.derived["GIAM_HN"]["value"] == pytest.approx(10.0)  # A against A: 1 - 90/100
    assert root.derived["GIAM_HN"]["basis"] == {"now": 90.0, "before": 100.0, "units": 1}

    v = values({"A": {"HN_TONG": (5, 0)}, "B": {"HN_TONG": (7, 0)}})
    root = consolidate_unit("R", h, cat, v, all_accepted(h, "R"))
    assert root.derived["GIAM_HN"]["value"] is None and root.derived["GIAM_HN"]["met"] is None
    assert root.change["HN_TONG"] is None


def test_max_is_the_total_against_the_cap():
    h, cat = flat("A", "B"), mini_catalog()
    v = values({"A": {"HN_VUOT": 0}, "B": {"HN_VUOT": 2}})
    figs = consolidate_tree("R", h, cat, v, all_accepted(h, "R"))
    assert figs["R"].derived["VUOT"]["value"] == 2 and figs["R"].derived["VUOT"]["met"] is False
    assert figs["A"].derived["VUOT"]["met"] is True
    assert figs["R"].derived["VUOT"]["children_met"] == ["A"]


def test_target_of_another_plan_is_computed_without_target():
    h, cat = flat("A"), mini_catalog()
    v = values({"A": {"CBCC": 40, "CBCC_SO": 30}})
    national = consolidate_unit("R", h, cat, v, all_accepted(h, "R"), plan="national")
    assert national.derived["TL_SO"]["value"] == pytest.approx(75.0)
    assert national.derived["TL_SO"]["has_target"] is False
    assert national.derived["TL_SO"]["target"] is None and national.derived["TL_SO"]["met"] is None
    hue = consolidate_unit("R", h, cat, v, all_accepted(h, "R"), plan="hue")
    assert hue.derived["TL_SO"]["has_target"] is True and hue.derived["TL_SO"]["met"] is False


# ----------------------------------------------------------------------------- missing, exempt, late
def test_missing_child_is_not_invented():
    h, cat = flat("A", "B", "C"), mini_catalog()
    v = values({"A": {"HN_TONG": 10, "HN_TRUC_TUYEN": 7}, "B": {"HN_TONG": 30, "HN_TRUC_TUYEN": 20}})
    req = requests({"A": ("accepted", True), "B": ("accepted", True), "C": ("sent", None)}, h)
    root = consolidate_unit("R", h, cat, v, req)
    assert root.totals["HN_TONG"] == 40 and root.covered["HN_TONG"] == 2
    assert root.totals["HN_VUOT"] is None and root.covered["HN_VUOT"] == 0
    assert root.missing == ["C"]
    c = root.completeness
    assert (c["expected"], c["received"], c["accepted"], c["on_time"]) == (3, 2, 2, 2)
    assert c["rate"] == pytest.approx(2 / 3) and c["timeliness"] == pytest.approx(2 / 3)
    assert root.derived["TL_TT"]["value"] == pytest.approx(27 / 40 * 100)
    assert root.derived["TL_TT"]["n_children_met"] + root.derived["TL_TT"]["n_children_missed"] == 2


def test_exempt_units_are_not_expected():
    h = tree("R", ("R", None, "province"), ("A", "R", "commune"), ("B", "R", "commune"),
             ("C", "R", "commune"), ("C1", "C", "department"), ("C2", "C", "department"))
    v = values({"A": {"HN_TONG": 10}})
    req = requests({"A": ("accepted", True), "B": ("exempt", None), "C": ("exempt", None),
                    "C1": ("pending", None), "C2": ("sent", None)}, h)
    figs = consolidate_tree("R", h, mini_catalog(), v, req)
    c = figs["R"].completeness
    assert (c["expected"], c["accepted"], c["exempt"]) == (1, 1, 3)  # C exempts its departments too
    assert c["rate"] == 1.0
    assert figs["R"].missing == []
    assert figs["C"].completeness["expected"] == 0 and figs["C"].completeness["rate"] is None


def test_timeliness_and_late_units():
    h, cat = flat("A", "B", "C", "D"), mini_catalog()
    v = values({"A": {"HN_TONG": 1}, "B": {"HN_TONG": 2}})
    req = requests({"A": ("accepted", True), "B": ("accepted", False), "C": ("late", None),
                    "D": ("rejected", None)}, h)
    root = consolidate_unit("R", h, cat, v, req)
    c = root.completeness
    assert (c["expected"], c["received"], c["accepted"], c["on_time"]) == (4, 3, 2, 1)
    assert c["rate"] == pytest.approx(0.5) and c["timeliness"] == pytest.approx(0.25)
    assert root.late == ["B", "C"]  # B sent late, C is overdue
    assert root.missing == ["C", "D"]


def test_on_time_accepts_numpy_and_missing_markers():
    h, cat = flat("A", "B", "C"), mini_catalog()
    req = pd.DataFrame({"unit_code": ["A", "B", "C"], "state": ["accepted"] * 3,
                        "on_time": pd.array([True, pd.NA, False], dtype="boolean")})
    root = consolidate_unit("R", h, cat, values({"A": {"HN_TONG": 1}}), req)
    assert root.completeness["on_time"] == 1
    assert root.late == ["C"]


def test_leaf_without_request_counts_by_its_values():
    h, cat = flat("A", "B"), mini_catalog()
    v = values({"A": {"HN_TONG": 3}})
    root = consolidate_unit("R", h, cat, v, requests({}, h))
    assert root.completeness["expected"] == 2 and root.completeness["accepted"] == 1
    assert root.missing == ["B"]


# ----------------------------------------------------------------------------- shapes of trees
def test_department_under_commune_is_counted_once():
    h = tree("P", ("P", None, "province"), ("X", "P", "commune"), ("X-VP", "X", "department"),
             ("X-KT", "X", "department"), ("Y", "P", "commune"))
    v = values({
        "X-VP": {"HN_TONG": 10, "HN_TRUC_TUYEN": 9},
        "X-KT": {"HN_TONG": 20, "HN_TRUC_TUYEN": 9},
        "X": {"HN_TONG": 30, "HN_TRUC_TUYEN": 18},  # a consolidator's own row: ignored, not counted twice
        "Y": {"HN_TONG": 50, "HN_TRUC_TUYEN": 20},
    })
    figs = consolidate_tree("P", h, mini_catalog(), v, all_accepted(h, "P"))
    assert figs["X"].totals["HN_TONG"] == 30 and figs["X"].covered["HN_TONG"] == 2
    assert figs["P"].totals["HN_TONG"] == 80 and figs["P"].totals["HN_TRUC_TUYEN"] == 38
    assert figs["P"].children == ["X", "Y"] and figs["X"].children == ["X-VP", "X-KT"]
    assert figs["X"].derived["TL_TT"]["value"] == pytest.approx(60.0)  # 18/30, met
    assert figs["P"].derived["TL_TT"]["children_met"] == ["X"]  # through X's own consolidated figures
    assert figs["P"].derived["TL_TT"]["children_missed"] == ["Y"]  # 20/50 = 40 %
    assert figs["X"].derived["TL_TT"]["children_met"] == ["X-VP"]
    assert figs["P"].completeness["expected"] == 3


def test_tree_of_depth_four_by_hand():
    h = tree(
        "M", ("M", None, "ministry"),
        ("P1", "M", "province"), ("P2", "M", "province"),
        ("C1", "P1", "commune"), ("C2", "P1", "commune"),
        ("D1", "C1", "department"), ("D2", "C1", "department"),
        ("D1a", "D1", "department"), ("D1b", "D1", "department"),
    )
    v = values({
        "D1a": {"HN_TONG": (1, 2), "HN_TRUC_TUYEN": 1},
        "D1b": {"HN_TONG": (2, 2), "HN_TRUC_TUYEN": 1},
        "D2": {"HN_TONG": (4, 4)},
        "C2": {"HN_TONG": (8, 10), "HN_TRUC_TUYEN": 8},
        "P2": {"HN_TONG": (16, 20), "HN_TRUC_TUYEN": 0},
    })
    req = requests({"D1a": ("accepted", True), "D1b": ("accepted", False), "D2": ("accepted", True),
                    "C2": ("accepted", True), "P2": ("accepted", True)}, h)
    figs = consolidate_tree("M", h, mini_catalog(), v, req, period="2026-H1")
    assert set(figs) == {"M", "P1", "P2", "C1", "C2", "D1", "D2", "D1a", "D1b"}
    expected_totals = {"D1": 3, "C1": 7, "P1": 15, "M": 31, "P2": 16, "D1a": 1}
    assert {code: figs[code].totals["HN_TONG"] for code in expected_totals} == expected_totals
    assert figs["M"].previous_year["HN_TONG"] == 38
    assert figs["M"].derived["GIAM_HN"]["value"] == pytest.approx((1 - 31 / 38) * 100)
    assert figs["M"].covered["HN_TONG"] == 5 and figs["M"].covered["HN_TRUC_TUYEN"] == 4
    # ratio over the units that gave both: D1a 1/1, D1b 1/2, C2 8/8, P2 0/16 -> 10/27
    assert figs["M"].derived["TL_TT"]["value"] == pytest.approx(10 / 27 * 100)
    assert figs["P1"].derived["TL_TT"]["value"] == pytest.approx(10 / 11 * 100)
    assert figs["M"].completeness["on_time"] == 4 and figs["M"].late == ["D1b"]
    assert figs["D1b"].late == ["D1b"] and figs["D1b"].children == []
    assert figs["M"].period == "2026-H1" and figs["M"].name == "Đơn vị M"


def test_texts_are_gathered_from_below_in_tree_order():
    h = tree("P", ("P", None, "province"), ("X", "P", "commune"), ("X-VP", "X", "department"), ("Y", "P", "commune"))
    texts = pd.DataFrame([
        {"unit_code": "Y", "indicator": "KIEN_NGHI", "text": "Bổ sung biên chế"},
        {"unit_code": "X-VP", "indicator": "KIEN_NGHI", "text": "  Tập huấn  "},
        {"unit_code": "X-VP", "indicator": "HAN_CHE", "text": ""},
        {"unit_code": "X-VP", "indicator": "HN_TONG", "text": "not a text indicator"},
    ])
    figs = consolidate_tree("P", h, mini_catalog(), values({}), requests({}, h), texts=texts)
    assert figs["P"].texts["KIEN_NGHI"] == [
        {"unit": "X-VP", "name": "Đơn vị X-VP", "text": "Tập huấn"},
        {"unit": "Y", "name": "Đơn vị Y", "text": "Bổ sung biên chế"},
    ]
    assert figs["P"].texts["HAN_CHE"] == []
    assert figs["X"].texts["KIEN_NGHI"] == [{"unit": "X-VP", "name": "Đơn vị X-VP", "text": "Tập huấn"}]


# ----------------------------------------------------------------------------- contract and inputs
def test_to_dict_is_json_and_has_the_documented_keys():
    h, cat = flat("A", "B"), mini_catalog()
    v = values({"A": {"HN_TONG": (10, 12), "HN_TRUC_TUYEN": 7}})
    root = consolidate_unit("R", h, cat, v, all_accepted(h, "R"), period="2026-H1")
    d = json.loads(json.dumps(root.to_dict(), allow_nan=False))
    assert set(d) == {"unit", "name", "period", "totals", "previous_year", "covered", "derived", "completeness",
                      "missing", "late", "children", "texts", "change", "own"}
    assert d["own"] is None or set(d["own"]) == {"state", "on_time"}  # a consolidator's own request, when it has one
    assert set(d["derived"]["TL_TT"]) == {"label", "kind", "group", "value", "target", "op", "met", "has_target",
                                          "basis", "children_met", "children_missed", "n_children_met",
                                          "n_children_missed"}
    assert set(d["completeness"]) == {"expected", "received", "accepted", "on_time", "exempt", "rate", "timeliness"}
    assert d["totals"]["HN_TONG"] == 10 and d["totals"]["CBCC"] is None
    assert d["derived"]["TL_TT"]["value"] == pytest.approx(70.0)


def test_to_dict_gives_what_asdict_gives_and_shares_nothing_with_the_figures():
    """to_dict copies without dataclasses.asdict's deepcopy of every leaf (a ministry's figures
    carry every unit's words); the result must be the same, and a deep copy all the same."""
    import dataclasses

    h, cat = flat("A", "B"), mini_catalog()
    v = values({"A": {"HN_TONG": (10, 12), "HN_TRUC_TUYEN": 7}, "B": {"HN_TONG": 4}})
    root = consolidate_unit("R", h, cat, v, all_accepted(h, "R"), period="2026-H1")
    root.texts = {"HAN_CHE": [{"unit": "A", "name": "Đơn vị A", "text": "Thiếu người"}]}
    d = root.to_dict()
    assert d == dataclasses.asdict(root)
    d["texts"]["HAN_CHE"][0]["text"] = "đã sửa"
    d["derived"]["TL_TT"]["children_met"].append("Z")
    d["missing"].append("Z")
    assert root.texts["HAN_CHE"][0]["text"] == "Thiếu người"
    assert "Z" not in root.derived["TL_TT"]["children_met"] and "Z" not in root.missing


def test_bad_inputs_are_refused():
    h, cat = flat("A"), mini_catalog()
    dup = values({"A": {"HN_TONG": 1}})
    with pytest.raises(ValueError, match="more than one row"):
        consolidate_unit("R", h, cat, pd.concat([dup, dup]), all_accepted(h, "R"))
    with pytest.raises(ValueError, match="lacks column"):
        consolidate_unit("R", h, cat, dup.drop(columns="previous_year"), all_accepted(h, "R"))
    with pytest.raises(KeyError):
        consolidate_unit("NOPE", h, cat, dup, all_accepted(h, "R"))


def test_units_outside_the_subtree_are_ignored():
    h = tree("R", ("R", None, "ministry"), ("P", "R", "province"), ("A", "P", "commune"), ("B", "R", "province"))
    v = values({"A": {"HN_TONG": 5}, "B": {"HN_TONG": 7}})
    p = consolidate_unit("P", h, mini_catalog(), v, all_accepted(h, "R"))
    assert p.totals["HN_TONG"] == 5 and p.completeness["expected"] == 1


# ----------------------------------------------------------------------------- the national tree
def test_national_tree_root_equals_plain_sum_over_leaves(cfg):
    h, cat = cfg.hierarchy, cfg.catalog
    leaves = [u.code for u in h.leaves()]
    counts = [i.code for i in cat.counts]
    rng = np.random.default_rng(2026)
    v = pd.MultiIndex.from_product([leaves, counts], names=["unit_code", "indicator"]).to_frame(index=False)
    v["value"] = rng.integers(0, 1000, len(v)).astype(float)
    v["previous_year"] = rng.integers(1, 1000, len(v)).astype(float)
    v.loc[rng.random(len(v)) < 0.02, "value"] = np.nan  # some values not given
    req = requests({code: ("accepted", bool(rng.random() < 0.9)) for code in leaves}, h)
    figs = consolidate_tree(h.root_code, h, cat, v, req, plan="national", period="2026-H1")

    assert len(figs) == len(h)
    root = figs[h.root_code]
    sums = v.groupby("indicator")["value"].sum()
    given = v.groupby("indicator")["value"].count()
    for code in counts:
        assert root.totals[code] == pytest.approx(sums[code])
        assert root.covered[code] == given[code]
    assert root.completeness["expected"] == len(leaves) == 3351
    assert root.children == [u.code for u in h.children(h.root_code)]

    # every province equals the plain sum over its own leaves
    province_of = {code: next(a.code for a in [h[code], *h.ancestors(code)] if a.level == "province") for code in leaves}
    by_province = v.assign(p=v["unit_code"].map(province_of)).groupby(["p", "indicator"])["value"].sum()
    for p in root.children:
        assert figs[p].totals["HN_TONG"] == pytest.approx(by_province[(p, "HN_TONG")])

    ratio = next(d for d in cat.derived if d.kind == "ratio")
    both = v.pivot(index="unit_code", columns="indicator", values="value")[[ratio.numerator, ratio.denominator]].dropna()
    expected = both[ratio.numerator].sum() / both[ratio.denominator].sum() * 100
    assert root.derived[ratio.code]["value"] == pytest.approx(expected)
    assert all(isinstance(f, Figures) for f in figs.values())
    assert not any(isinstance(x, float) and math.isnan(x) for x in root.totals.values())
