"""The chart of the report email: each child's rates against the targets.

Which figures: every *ratio* of the catalogue that has a target in this plan (``has_target`` in the
figures), e.g. online conferences (>= 60 %) and procedures handled digitally (>= 95 %). Ratios are
the figures a target is a share of, and they compare fairly across units of any size; cuts (against
last year) and caps (a count) read better as sentences. Nothing is named here: the list comes from
the catalogue, so a new ratio with a target appears in the chart by itself.

One panel per ratio, one bar per direct child (green when the target is met, red when missed, no bar
when the unit has no figure), the consolidated figure on top, and the target as a dashed line. A
province has a hundred communes: above :data:`MAX_UNITS` children, the chart shows those with the
most targets missed, and says so.

Matplotlib's object API with the Agg canvas (no pyplot, no display, safe in worker threads).
"""

from __future__ import annotations

import textwrap
from io import BytesIO
from typing import TYPE_CHECKING

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.transforms import blended_transform_factory

from baocao.rules.formatting import number_vi

if TYPE_CHECKING:
    from baocao.consolidation.aggregate import Figures
    from baocao.consolidation.report import ReportContext

__all__ = ["MAX_UNITS", "chart_derived", "chart_png", "chart_units"]

MAX_UNITS = 24
"""Children shown at most: beyond that the bars are unreadable in an email."""
GREEN, RED, BLUE, GREY = "#2e7d32", "#c62828", "#1565c0", "#9e9e9e"
DPI = 90
LABELS_IN = 2.0  # room left of the first panel for unit names (at most 30 characters, 7 pt)
TITLES_IN = 1.25  # room above the panels for the title (2 lines, 10 pt) and panel titles (up to 4 lines, 8 pt)


def chart_derived(figures: Figures) -> list[str]:
    """Codes of the ratios with a target, in catalogue order."""
    return [code for code, e in figures.derived.items() if e["kind"] == "ratio" and e["has_target"]]


def chart_units(ctx: ReportContext, codes: list[str]) -> tuple[list[Figures], int]:
    """The children drawn (in the tree's order) and how many children there are in all."""
    children = [ctx.child_figures[c] for c in ctx.figures.children if c in ctx.child_figures]
    if len(children) <= MAX_UNITS:
        return children, len(children)
    position = {f.unit: i for i, f in enumerate(children)}

    def missed(f: Figures) -> int:
        return sum(1 for code in codes if f.derived[code]["met"] is False)

    worst = sorted(children, key=lambda f: (-missed(f), position[f.unit]))[:MAX_UNITS]
    return sorted(worst, key=lambda f: position[f.unit]), len(children)


def _short(name: str, width: int = 30) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    out = BytesIO()
    # zlib level 1 (PIL's default is 6): about the same size for these flat colours, less time
    fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return out.getvalue()


def chart_png(ctx: ReportContext) -> bytes:
    """A small PNG: the consolidated figure and each child's, per ratio with a target."""
    codes = chart_derived(ctx.figures)
    if not codes:
        fig = Figure(figsize=(6, 1.2))
        fig.text(0.5, 0.5, "Không có chỉ tiêu tỷ lệ để so sánh.", ha="center", va="center", fontsize=11)
        return _png(fig)
    children, n_children = chart_units(ctx, codes)
    rows = [ctx.figures, *children]
    labels = [_short(f"{ctx.figures.name} (tổng hợp)")] + [_short(f.name) for f in children]
    height = 1.5 + 0.26 * len(rows)
    fig = Figure(figsize=(2.2 + 2.5 * len(codes), height))
    # Not sharey: shared axes each make (and draw) a tick per unit, a third of the chart's time; the
    # names are plain texts beside the first panel instead, and no panel has y ticks.
    axes = fig.subplots(1, len(codes), squeeze=False)[0]
    y = list(range(len(rows)))
    for ax, code in zip(axes, codes, strict=True):
        ax.set_ylim(len(rows) - 0.5, -0.5)  # first row on top
        ax.set_yticks([])
        entry = ctx.figures.derived[code]
        values = [f.derived[code]["value"] for f in rows]
        colours = [
            BLUE if i == 0 else (GREEN if f.derived[code]["met"] else RED if f.derived[code]["met"] is False else GREY)
            for i, f in enumerate(rows)
        ]
        # One collection of rectangles instead of barh's patch per bar (with the PNG's lighter
        # compression below, a third of the chart's time less); the same picture, pixel for pixel.
        ax.add_collection(PolyCollection(
            [[(0, yi - 0.35), (v or 0, yi - 0.35), (v or 0, yi + 0.35), (0, yi + 0.35)]
             for yi, v in zip(y, values, strict=True)],
            facecolors=colours, edgecolors="none", linewidths=0))
        top = max([100.0, *(v for v in values if v is not None)]) * 1.12
        ax.set_xlim(0, top)
        for yi, v in zip(y, values, strict=True):
            shown = "—" if v is None else number_vi(float(v), 1)
            ax.text((v or 0) + top * 0.01, yi, shown, va="center", fontsize=7)
        ax.axvline(entry["target"], color="#333333", linestyle="--", linewidth=1)
        op = "≥" if entry["op"] == ">=" else "≤"
        title = textwrap.fill(entry["label"], 26) + f"\n(chỉ tiêu {op} {number_vi(float(entry['target']), 0)} %)"
        ax.set_title(title, fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))  # a narrow panel: few ticks, none overlapping
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{number_vi(float(x), 0)} %"))
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
    names = blended_transform_factory(axes[0].transAxes, axes[0].transData)
    for yi, label in zip(y, labels, strict=True):
        axes[0].text(-0.03, yi, label, transform=names, ha="right", va="center", fontsize=7)
    note = f"{len(children)}/{n_children} đơn vị có nhiều chỉ tiêu chưa đạt nhất" if len(children) < n_children else ""
    fig.suptitle("Tỷ lệ đạt được theo đơn vị so với chỉ tiêu" + (f"\n{note}" if note else ""), fontsize=10)
    # Fixed margins in inches instead of tight_layout() and a tight bounding box, which each draw the
    # whole figure once more only to measure it (together about 40 % of the chart's time).
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=LABELS_IN / width, right=1 - 0.45 / width, bottom=0.45 / height,
                        top=1 - TITLES_IN / height, wspace=0.18)
    return _png(fig)
