"""The chart of the report email: each child's rates against the targets.

Which figures: every *ratio* of the catalogue that has a target in this plan (``has_target`` in the
figures), e.g. online conferences (>= 60 %) and procedures handled digitally (>= 95 %). Ratios are
the figures a target is a share of, and they compare fairly across units of any size; cuts (against
last year) and caps (a count) read better as sentences. Nothing is named here: the list comes from
the catalogue, so a new ratio with a target appears in the chart by itself.

One panel per ratio, one bar per direct child (green when the target is met, red when missed, no bar
when the unit has no figure), the consolidated figure on top, and the target as a dashed line. The
children are ordered worst first (most targets missed, then the furthest below them), so the units to
chase are read first; a province has a hundred communes: above :data:`MAX_UNITS` children, the chart
shows the worst ones, and says so. A value's label never sits on the target line: a label that would
cross it is written just past it.

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

__all__ = ["MAX_UNITS", "chart_derived", "chart_figure", "chart_png", "chart_units", "label_x", "shortfall"]

MAX_UNITS = 24
"""Children shown at most: beyond that the bars are unreadable in an email."""
GREEN, RED, BLUE, GREY = "#2e7d32", "#c62828", "#1565c0", "#9e9e9e"
DPI = 90
LABELS_IN = 2.0  # room left of the first panel for unit names (at most 30 characters, 7 pt)
TITLES_IN = 1.25  # room above the panels for the title (2 lines, 10 pt) and panel titles (up to 4 lines, 8 pt)


def chart_derived(figures: Figures) -> list[str]:
    """Codes of the ratios with a target, in catalogue order."""
    return [code for code, e in figures.derived.items() if e["kind"] == "ratio" and e["has_target"]]


def shortfall(figures: Figures, codes: list[str]) -> tuple[int, float]:
    """(targets missed, how far below them in all, in percentage points) of one unit, from its figures."""
    missed, gap = 0, 0.0
    for code in codes:
        e = figures.derived[code]
        if e["met"] is False and e["value"] is not None:
            missed += 1
            gap += abs(float(e["value"]) - float(e["target"]))
    return missed, gap


def chart_units(ctx: ReportContext, codes: list[str]) -> tuple[list[Figures], int]:
    """The children drawn, worst first (ties in the tree's order), and how many children there are in all."""
    children = [ctx.child_figures[c] for c in ctx.figures.children if c in ctx.child_figures]
    position = {f.unit: i for i, f in enumerate(children)}

    def worst_first(f: Figures) -> tuple[int, float, int]:
        missed, gap = shortfall(f, codes)
        return -missed, -gap, position[f.unit]

    return sorted(children, key=worst_first)[:MAX_UNITS], len(children)


def label_x(value: float, target: float, top: float, width: float) -> float:
    """Where a value's label starts: just after its bar, or just past the target line when it would cross it.

    ``width`` is the label's width in data units; the gap is 1 % of the axis either side of the line.
    """
    pad = top * 0.01
    start = value + pad
    if start - pad < target + pad and start + width > target - pad:
        return max(start, target + pad)
    return start


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
    return _png(chart_figure(ctx))


LABEL_PT = 7
CHAR_IN = 0.58 * LABEL_PT / 72  # a digit's advance in DejaVu Sans, in inches


def chart_figure(ctx: ReportContext) -> Figure:
    """The chart as a Matplotlib figure (not drawn yet)."""
    codes = chart_derived(ctx.figures)
    if not codes:
        fig = Figure(figsize=(6, 1.2))
        fig.text(0.5, 0.5, "Không có chỉ tiêu tỷ lệ để so sánh.", ha="center", va="center", fontsize=11)
        return fig
    children, n_children = chart_units(ctx, codes)
    rows = [ctx.figures, *children]
    labels = [_short(f"{ctx.figures.name} (tổng hợp)")] + [_short(f.name) for f in children]
    height = 1.5 + 0.26 * len(rows)
    fig_width = 2.2 + 2.5 * len(codes)
    fig = Figure(figsize=(fig_width, height))
    axes_in = (fig_width - LABELS_IN - 0.45) / (len(codes) + 0.18 * (len(codes) - 1))
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
            width = (len(shown) + 0.5) * CHAR_IN / axes_in * top
            ax.text(label_x(v or 0, float(entry["target"]), top, width), yi, shown, va="center",
                    fontsize=LABEL_PT)
        ax.axvline(entry["target"], color="#333333", linestyle="--", linewidth=1)
        op = "≥" if entry["op"] == ">=" else "≤"
        title = textwrap.fill(entry["label"], 26) + f"\n(chỉ tiêu {op} {number_vi(float(entry['target']), 0)}%)"
        ax.set_title(title, fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))  # a narrow panel: few ticks, none overlapping
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{number_vi(float(x), 0)}%"))
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
    return fig
