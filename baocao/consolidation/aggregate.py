"""Consolidation: the figures of every unit of a reporting tree, from its leaves' accepted forms.

Pure pandas/numpy, no Prefect and no database, so that the rules below can be tested on
hand-computed examples and the national tree (3,390 units) consolidates well under a second.

The rules (docs/domain.md, "The figures"):

* A parent's figures are those of its subtree; each leaf is counted once, whatever the depth.
  Only leaves fill forms: a consolidating unit's own rows in ``values`` are ignored, otherwise
  the figures of a commune that has departments would be counted twice.
* Missing figures are never invented: a total is the sum over the leaves that reported that count,
  and ``covered`` says how many did. ``None`` when none did.
* A ratio is the ratio of the summed numerator and the summed denominator (never a mean of
  percentages), both summed over the same leaves: those that reported both counts.
* A cut compares this period with the same period of last year over the same leaves: those that
  reported both numbers; ``previous_year`` is last year's total over exactly those leaves.
* A cap ("max") compares the total count with the target.
* Completeness and timeliness follow DHIS2: over the leaves below, exempt ones not expected.

The keys of :meth:`Figures.to_dict` are a documented contract (``baocao figures --format json``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from baocao.rules.catalog import Catalog, Derived
from baocao.rules.hierarchy import Hierarchy
from baocao.store.states import RequestState, Standing

__all__ = [
    "RECEIVED_STATES",
    "Figures",
    "consolidate_tree",
    "consolidate_unit",
]

RECEIVED_STATES = frozenset({RequestState.RECEIVED, Standing.ACCEPTED, RequestState.REJECTED, RequestState.RETURNED})
"""States (in the aggregation's vocabulary, :func:`baocao.store.states.standing`) in which the unit
has sent something (DHIS2's "received", valid or not)."""
OVERDUE_STATE = Standing.OVERDUE
"""The state of a request whose deadline passed with nothing accepted."""
EXEMPT_STATE = Standing.EXEMPT

VALUE_COLUMNS = ("unit_code", "indicator", "value", "previous_year")
TEXT_COLUMNS = ("unit_code", "indicator", "text")
REQUEST_COLUMNS = ("unit_code", "state", "on_time")

# Completeness columns of the accumulation matrix, in order.
_COMPLETENESS = ("expected", "received", "accepted", "on_time", "exempt")


@dataclass
class Figures:
    """The consolidated figures of one unit for one period (see the module docstring for the rules)."""

    unit: str
    name: str
    period: str | None
    totals: dict[str, float | None]
    previous_year: dict[str, float | None]
    covered: dict[str, int]
    derived: dict[str, dict[str, Any]]
    completeness: dict[str, Any]
    missing: list[str]
    late: list[str]
    children: list[str]
    texts: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    change: dict[str, float | None] = field(default_factory=dict)
    """Per count: per cent change against the same period of last year, over the units that gave both
    numbers (so a cut of the same count is exactly ``-change``); None when last year's total is 0."""
    own: dict[str, Any] | None = None
    """A consolidator's own request as the aggregation counts it, ``{"state", "on_time"}`` (None for a
    leaf or when the cycle has no request of it): its parent counts it as reported only when its own
    report is issued or sent (state ``accepted``), late when ``on_time`` is False. Its figures still
    add every leaf below it, whatever its own state."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (no NaN, no numpy types): the documented `baocao figures` format.

        What ``dataclasses.asdict`` gives (a test compares them), without its ``deepcopy`` of every
        string and number: the fields hold only dicts, lists and immutable values, and a ministry's
        figures carry every unit's words (asdict took 0.3 s for them, twice per report).
        """
        return {f.name: _plain_copy(getattr(self, f.name)) for f in fields(self)}


def _plain_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain_copy(v) for v in value)
    return value


# ----------------------------------------------------------------------------- input checks
def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, df.columns))}")


def _tristate(value: Any) -> bool | None:
    """on_time arrives as bool, numpy bool, None, NaN or pd.NA depending on the query."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return bool(value)


# ----------------------------------------------------------------------------- the tree
@dataclass
class _Tree:
    """The subtree below ``root`` as arrays: bottom-up order, parent index and relative depth."""

    codes: list[str]
    index: dict[str, int]
    is_leaf: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    children: dict[str, list[str]]


def _tree(root: str, hierarchy: Hierarchy) -> _Tree:
    if root not in hierarchy:
        raise KeyError(f"no unit with code {root!r}")
    pre = [u.code for u in hierarchy.walk(root)]
    children = {code: [c.code for c in hierarchy.children(code)] for code in pre}
    depth_of = {root: 0}
    for code in pre:
        for child in children[code]:
            depth_of[child] = depth_of[code] + 1
    codes = [u.code for u in hierarchy.walk_bottom_up(root)]
    index = {code: i for i, code in enumerate(codes)}
    parent = np.array(
        [-1 if code == root else index[hierarchy[code].parent] for code in codes], dtype=np.int64
    )
    return _Tree(
        codes=codes,
        index=index,
        is_leaf=np.array([not children[code] for code in codes], dtype=bool),
        parent=parent,
        depth=np.array([depth_of[code] for code in codes], dtype=np.int64),
        children=children,
    )


def _accumulate(matrix: np.ndarray, tree: _Tree) -> None:
    """Add every row into its parent's, deepest level first, so each row ends as its subtree's sum."""
    for level in range(int(tree.depth.max(initial=0)), 0, -1):
        rows = np.flatnonzero(tree.depth == level)
        np.add.at(matrix, tree.parent[rows], matrix[rows])


def _leaf_values(values: pd.DataFrame, tree: _Tree, counts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(now, previous) as units x counts arrays, NaN where a leaf gave no number."""
    _require(values, VALUE_COLUMNS, "values")
    now = np.full((len(tree.codes), len(counts)), np.nan)
    prev = np.full_like(now, np.nan)
    if values.empty:
        return now, prev
    col_of = {code: j for j, code in enumerate(counts)}
    rows = values["unit_code"].map(tree.index)
    cols = values["indicator"].map(col_of)
    keep = rows.notna() & cols.notna()
    kept = values[keep]
    duplicated = kept.duplicated(["unit_code", "indicator"], keep=False)
    if duplicated.any():
        sample = kept.loc[duplicated, ["unit_code", "indicator"]].head(3).to_records(index=False).tolist()
        raise ValueError(f"values has more than one row per unit and indicator, e.g. {sample}")
    r = rows[keep].to_numpy(dtype=np.int64)
    c = cols[keep].to_numpy(dtype=np.int64)
    now[r, c] = pd.to_numeric(kept["value"], errors="coerce").to_numpy(dtype=float)
    prev[r, c] = pd.to_numeric(kept["previous_year"], errors="coerce").to_numpy(dtype=float)
    consolidators = ~tree.is_leaf
    now[consolidators] = np.nan
    prev[consolidators] = np.nan
    return now, prev


def _leaf_status(
    requests: pd.DataFrame, tree: _Tree, hierarchy: Hierarchy, root: str, has_values: np.ndarray
) -> tuple[np.ndarray, list[bool], list[bool]]:
    """Completeness columns per leaf, and each leaf's missing / late flags.

    A leaf with no request row is still expected (it is in the tree), and counts as accepted when
    it has values. An exempt consolidator exempts every leaf below it.
    """
    _require(requests, REQUEST_COLUMNS, "requests")
    if requests["unit_code"].duplicated().any():
        dup = requests.loc[requests["unit_code"].duplicated(), "unit_code"].head(3).tolist()
        raise ValueError(f"requests has more than one row for unit(s) {dup}")
    state = dict(zip(requests["unit_code"], requests["state"], strict=True))
    on_time = dict(zip(requests["unit_code"], requests["on_time"], strict=True))
    exempt: dict[str, bool] = {}
    for unit in hierarchy.walk(root):
        up = exempt.get(unit.parent, False) if unit.code != root else False
        exempt[unit.code] = up or state.get(unit.code) == EXEMPT_STATE
    n = len(tree.codes)
    status = np.zeros((n, len(_COMPLETENESS)))
    missing = [False] * n
    late = [False] * n
    for i in np.flatnonzero(tree.is_leaf):
        code = tree.codes[i]
        if exempt[code]:
            status[i, 4] = 1
            continue
        st = state.get(code)
        if st is None:
            received = accepted = bool(has_values[i])
            punctual = None
        else:
            received, accepted = st in RECEIVED_STATES, st == Standing.ACCEPTED
            punctual = _tristate(on_time.get(code)) if accepted else None
        status[i, :4] = (1, received, accepted, punctual is True)
        missing[i] = not accepted
        late[i] = punctual is False or st == OVERDUE_STATE
    return status, missing, late


def _gather_texts(
    texts: pd.DataFrame | None, tree: _Tree, hierarchy: Hierarchy, text_codes: list[str]
) -> dict[str, dict[str, list[dict[str, str]]]]:
    """Per unit, per text indicator: the non-empty answers of the unit and of every unit below it."""
    own: dict[str, dict[str, list[dict[str, str]]]] = {}
    if texts is not None and not texts.empty:
        _require(texts, TEXT_COLUMNS, "texts")
        wanted = set(text_codes)
        for unit, indicator, text in zip(texts["unit_code"], texts["indicator"], texts["text"], strict=True):
            if unit not in tree.index or indicator not in wanted or not isinstance(text, str) or not text.strip():
                continue
            entry = {"unit": unit, "name": hierarchy[unit].name, "text": text.strip()}
            own.setdefault(unit, {}).setdefault(indicator, []).append(entry)
    gathered: dict[str, dict[str, list[dict[str, str]]]] = {}
    for code in tree.codes:  # children before parents
        mine = own.get(code, {})
        gathered[code] = {
            t: list(mine.get(t, [])) + [e for child in tree.children[code] for e in gathered[child][t]]
            for t in text_codes
        }
    return gathered


# ----------------------------------------------------------------------------- derived figures
def _derived_index(d: Derived, col: dict[str, int]) -> tuple[int, ...]:
    """Where a derived figure's inputs sit in the accumulated row (looked up once, not per unit)."""
    if d.kind == "ratio":
        return col[f"pair_num:{d.code}"], col[f"pair_den:{d.code}"], col[f"pair_n:{d.code}"]
    if d.kind == "cut":
        return col[f"matched_now:{d.of}"], col[f"matched_prev:{d.of}"], col[f"matched_n:{d.of}"]
    return col[f"now:{d.of}"], col[f"covered:{d.of}"]


def _derived_value(kind: str, row: list[float], at: tuple[int, ...]) -> tuple[float | None, dict[str, Any]]:
    """The figure of one derived indicator from a unit's accumulated row, and what it was computed from.

    Multiplying by 100 before dividing keeps whole-number results exact (18 * 100 / 30 is 60.0, where
    18 / 30 * 100 is 60.00000000000001), so a figure exactly on its target meets it."""
    if kind == "ratio":
        num, den, n = row[at[0]], row[at[1]], int(row[at[2]])
        return (num * 100 / den if den > 0 else None), {"numerator": num, "denominator": den, "units": n}
    if kind == "cut":
        now, before, n = row[at[0]], row[at[1]], int(row[at[2]])
        basis = {"now": now if n else None, "before": before if n else None, "units": n}
        return ((before - now) * 100 / before if n and before > 0 else None), basis
    covered = int(row[at[1]])
    total = row[at[0]] if covered else None
    return total, {"count": total, "units": covered}


def _columns(counts: list[str], derived: list[Derived]) -> list[str]:
    cols = []
    for code in counts:
        cols += [f"now:{code}", f"covered:{code}", f"matched_now:{code}", f"matched_prev:{code}", f"matched_n:{code}"]
    for d in derived:
        if d.kind == "ratio":
            cols += [f"pair_num:{d.code}", f"pair_den:{d.code}", f"pair_n:{d.code}"]
    return cols + [f"completeness:{c}" for c in _COMPLETENESS]


def _leaf_matrix(now: np.ndarray, prev: np.ndarray, counts: list[str], derived: list[Derived], status: np.ndarray):
    has_now = ~np.isnan(now)
    matched = has_now & ~np.isnan(prev)
    parts: list[np.ndarray] = []
    for j in range(len(counts)):
        parts += [
            np.where(has_now[:, j], now[:, j], 0.0),
            has_now[:, j].astype(float),
            np.where(matched[:, j], now[:, j], 0.0),
            np.where(matched[:, j], prev[:, j], 0.0),
            matched[:, j].astype(float),
        ]
    col_of = {code: j for j, code in enumerate(counts)}
    for d in derived:
        if d.kind == "ratio":
            assert d.numerator is not None and d.denominator is not None
            n, m = col_of[d.numerator], col_of[d.denominator]
            pair = has_now[:, n] & has_now[:, m]
            parts += [np.where(pair, now[:, n], 0.0), np.where(pair, now[:, m], 0.0), pair.astype(float)]
    parts += [status[:, k] for k in range(status.shape[1])]
    return np.column_stack(parts) if parts else np.zeros((now.shape[0], 0))


# ----------------------------------------------------------------------------- public API
def consolidate_tree(
    root: str,
    hierarchy: Hierarchy,
    catalog: Catalog,
    values: pd.DataFrame,
    requests: pd.DataFrame,
    *,
    texts: pd.DataFrame | None = None,
    plan: str | None = None,
    period: str | None = None,
) -> dict[str, Figures]:
    """Figures of every unit of ``root``'s subtree (consolidators and leaves), computed in one pass.

    ``values``: unit_code, indicator, value, previous_year (accepted leaf values; NaN when missing).
    ``requests``: unit_code, state, on_time (parent_code, role, deadline may be present; unused).
    ``texts``: unit_code, indicator, text. ``plan`` decides which targets apply (Derived.plans).
    """
    tree = _tree(root, hierarchy)
    counts = [i.code for i in catalog.counts]
    derived = catalog.derived_for(plan)
    now, prev = _leaf_values(values, tree, counts)
    status, missing_flag, late_flag = _leaf_status(
        requests, tree, hierarchy, root, has_values=(~np.isnan(now)).any(axis=1)
    )
    columns = _columns(counts, derived)
    col = {name: j for j, name in enumerate(columns)}
    matrix = _leaf_matrix(now, prev, counts, derived, status)
    _accumulate(matrix, tree)
    rows = matrix.tolist()
    gathered = _gather_texts(texts, tree, hierarchy, [i.code for i in catalog.texts])
    own = {code: {"state": str(st), "on_time": _tristate(ot) if st == Standing.ACCEPTED else None}
           for code, st, ot in zip(requests["unit_code"], requests["state"], requests["on_time"], strict=True)
           if code in tree.index and not tree.is_leaf[tree.index[code]]}

    missing: dict[str, list[str]] = {}
    late: dict[str, list[str]] = {}
    for i, code in enumerate(tree.codes):  # children before parents
        if tree.is_leaf[i]:
            missing[code] = [code] if missing_flag[i] else []
            late[code] = [code] if late_flag[i] else []
        else:
            missing[code] = [m for child in tree.children[code] for m in missing[child]]
            late[code] = [m for child in tree.children[code] for m in late[child]]

    count_at = [
        (c, col[f"now:{c}"], col[f"covered:{c}"], col[f"matched_now:{c}"], col[f"matched_prev:{c}"],
         col[f"matched_n:{c}"])
        for c in counts
    ]
    derived_at = [(d, _derived_index(d, col), d.applies_to(plan)) for d in derived]
    completeness_at = [col[f"completeness:{c}"] for c in _COMPLETENESS]
    result: dict[str, Figures] = {}
    for i, code in enumerate(tree.codes):
        row = rows[i]
        totals: dict[str, float | None] = {}
        previous: dict[str, float | None] = {}
        change: dict[str, float | None] = {}
        covered: dict[str, int] = {}
        for c, j_now, j_cov, j_mnow, j_mprev, j_mn in count_at:
            n = int(row[j_cov])
            covered[c] = n
            totals[c] = row[j_now] if n else None
            matched, before = row[j_mn], row[j_mprev]
            previous[c] = before if matched else None
            change[c] = (row[j_mnow] - before) * 100 / before if matched and before > 0 else None
        figures_derived: dict[str, dict[str, Any]] = {}
        for d, at, has_target in derived_at:
            value, basis = _derived_value(d.kind, row, at)
            figures_derived[d.code] = {
                "label": d.label,
                "kind": d.kind,
                "group": d.group,
                "value": value,
                "target": d.target if has_target else None,
                "op": d.op,
                "met": d.met(value) if has_target else None,
                "has_target": has_target,
                "basis": basis,
                "children_met": [],
                "children_missed": [],
                "n_children_met": 0,
                "n_children_missed": 0,
            }
        expected, received, accepted, on_time, exempt = (int(row[j]) for j in completeness_at)
        result[code] = Figures(
            unit=code,
            name=hierarchy[code].name,
            period=period,
            totals=totals,
            previous_year=previous,
            covered=covered,
            derived=figures_derived,
            completeness={
                "expected": expected,
                "received": received,
                "accepted": accepted,
                "on_time": on_time,
                "exempt": exempt,
                "rate": accepted / expected if expected else None,
                "timeliness": on_time / expected if expected else None,
            },
            missing=missing[code],
            late=late[code],
            children=list(tree.children[code]),
            texts=gathered[code],
            change=change,
            own=own.get(code),
        )

    for code in tree.codes:
        figures = result[code]
        for d in derived:
            entry = figures.derived[d.code]
            for child in figures.children:
                met = result[child].derived[d.code]["met"]
                if met is True:
                    entry["children_met"].append(child)
                elif met is False:
                    entry["children_missed"].append(child)
            entry["n_children_met"] = len(entry["children_met"])
            entry["n_children_missed"] = len(entry["children_missed"])
    return result


def consolidate_unit(
    unit: str,
    hierarchy: Hierarchy,
    catalog: Catalog,
    values: pd.DataFrame,
    requests: pd.DataFrame,
    *,
    texts: pd.DataFrame | None = None,
    plan: str | None = None,
    period: str | None = None,
) -> Figures:
    """The figures of one unit: its subtree consolidated (children's figures come with consolidate_tree)."""
    return consolidate_tree(
        unit, hierarchy, catalog, values, requests, texts=texts, plan=plan, period=period
    )[unit]


def empty_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Empty (values, texts, requests) frames with the expected columns, for callers with no data yet."""
    return (
        pd.DataFrame(columns=list(VALUE_COLUMNS)),
        pd.DataFrame(columns=list(TEXT_COLUMNS)),
        pd.DataFrame(columns=["unit_code", "parent_code", "role", "state", "on_time", "deadline"]),
    )

