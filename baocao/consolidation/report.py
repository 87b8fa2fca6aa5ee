"""The consolidated report (Báo cáo per Nghị định 30/2020/NĐ-CP): Word, XLSX appendix and email.

Pure functions of a :class:`ReportContext` (figures from :mod:`baocao.consolidation.aggregate`, the hierarchy and
the catalogue): no Prefect, no database, so a report can be rebuilt and tested anywhere.

One source of wording: every sentence about a figure is a macro of templates/report_sentences.j2,
rendered to a plain string once (:func:`report_text`) and handed to the Word template, the email and
the workbook, so the three never disagree. Everything else a reader sees in the Word report lives in
templates/report.docx (docxtpl), which office staff edit in Word.

Text written by units (names, narrative answers) is untrusted: it is autoescaped in HTML and XML,
stripped of control characters, and stored in the workbook as text that no spreadsheet will read
as a formula.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from baocao.consolidation.aggregate import Figures
from baocao.paths import TEMPLATES_DIR
from baocao.rules.catalog import Catalog, Indicator
from baocao.rules.formatting import number_vi, place_date_vi
from baocao.rules.hierarchy import Hierarchy, Unit
from baocao.rules.periods import Period

__all__ = [
    "DOCX_TEMPLATE",
    "TEMPLATES_DIR",
    "ReportContext",
    "ReportText",
    "default_recipients",
    "email_subject",
    "issuer_lines_for",
    "place_for",
    "render_all",
    "render_docx",
    "render_email",
    "render_xlsx",
    "report_context",
    "report_text",
    "signer_title_for",
    "symbol_for",
]

DOCX_TEMPLATE = TEMPLATES_DIR / "report.docx"

MAX_NAMES = 10
"""Unit names listed in one sentence before "... và N đơn vị khác": a sentence stays readable."""
MAX_TEXTS = 15
"""Units' comments per indicator in the report body; the workbook keeps all of them."""
MAX_TEXT_CHARS = 600
"""A longer comment is cut in the body (the workbook keeps it whole)."""
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
"""A cell starting with one of these may be read as a formula by a spreadsheet (CSV/formula injection)."""

UBND = "ỦY BAN NHÂN DÂN"
LUU = "- Lưu:"


@dataclass
class ReportContext:
    """Everything one report needs; build it with :func:`report_context` to get the derived defaults."""

    figures: Figures
    child_figures: dict[str, Figures]
    hierarchy: Hierarchy
    catalog: Catalog
    period: Period
    plan_name: str
    report_date: date
    place: str
    issuer_lines: tuple[str, ...]
    signer_title: tuple[str, ...] = ("TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH")
    signer_name: str = ""
    recipients: tuple[str, ...] = ()
    correction_of: int | None = None
    tasks: list[dict] | None = None
    symbol: str = "BC-UBND"

    @property
    def unit(self) -> Unit:
        return self.hierarchy[self.figures.unit]


# ----------------------------------------------------------------------------- who issues the report
def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _strip_prefix(name: str, prefixes: Iterable[str]) -> str:
    for prefix in prefixes:
        if name.casefold().startswith(prefix.casefold() + " "):
            return name[len(prefix) + 1 :].strip()
    return name


def _full_name(unit: Unit) -> str:
    """The official list names most provinces without their kind ("Lai Châu"): add "Tỉnh"."""
    name = _nfc(unit.name)
    if unit.level == "province" and _strip_prefix(name, ("Thành phố", "Tỉnh")) == name:
        return f"Tỉnh {name}"
    return name


def _own_name(unit: Unit, parent: Unit | None) -> str:
    """A department's name without its parent's ("Văn phòng UBND tỉnh Lai Châu" -> "Văn phòng UBND")."""
    name = _nfc(unit.name)
    if parent is not None:
        for suffix in (_full_name(parent).casefold(), _nfc(parent.name).casefold()):
            if name.casefold().endswith(" " + suffix):
                return name[: -len(suffix) - 1].strip()
    return name


def _issuer_own(unit: Unit, parent: Unit | None) -> str:
    """The department line under its parent's: "UBND" is already said on the line above."""
    name = _own_name(unit, parent)
    if parent is not None and parent.level in ("province", "commune"):
        if name.endswith(" UBND") and not name.endswith(" và UBND"):
            name = name[: -len(" UBND")]
    return name


def issuer_lines_for(unit: Unit, hierarchy: Hierarchy) -> tuple[str, ...]:
    """The issuing body's lines at the top left (ND 30/2020: governing body above, issuer below).

    ministry: ("BỘ NỘI VỤ",); province and commune: ("ỦY BAN NHÂN DÂN", "THÀNH PHỐ HẢI PHÒNG");
    department: its parent's short name above its own, e.g. ("UBND TỈNH LAI CHÂU", "VĂN PHÒNG").
    """
    if unit.level in ("province", "commune"):
        return (UBND, _full_name(unit).upper())
    if unit.level == "ministry" or unit.parent is None:
        return (_nfc(unit.name).upper(),)
    parent = hierarchy[unit.parent]
    if parent.level in ("province", "commune"):
        above = "UBND " + _full_name(parent).upper()
    else:
        above = _full_name(parent).upper()
    return (above, _issuer_own(unit, parent).upper())


def place_for(unit: Unit, hierarchy: Hierarchy) -> str:
    """The place in the date line: the province or commune name without its kind ("Hải Phòng", "Nhị Chiểu").

    A department writes its parent's place; the ministry writes "Hà Nội".
    """
    if unit.level == "ministry":
        return "Hà Nội"
    if unit.level == "province":
        place = _strip_prefix(_nfc(unit.name), ("Thành phố", "Tỉnh"))
        return "Thành phố Hồ Chí Minh" if place == "Hồ Chí Minh" else place
    if unit.level == "commune":
        return _strip_prefix(_nfc(unit.name), ("Xã", "Phường", "Đặc khu", "Thị trấn"))
    parent = hierarchy.parent(unit.code)
    return place_for(parent, hierarchy) if parent is not None else _nfc(unit.name)


def _initial(word: str) -> str:
    if word.isupper() and len(word) > 1:
        return word  # an acronym: UBND, HĐND
    first = word[0].upper()
    return first if first == "Đ" else unicodedata.normalize("NFD", first)[0]


def symbol_for(unit: Unit, hierarchy: Hierarchy) -> str:
    """The document symbol after "Số: .../": BC-UBND for a People's Committee, else initials (BC-VPUBND)."""
    if unit.level in ("province", "commune"):
        return "BC-UBND"
    if unit.level == "ministry":
        words = _nfc(unit.name).split()
    else:
        words = _own_name(unit, hierarchy.parent(unit.code)).split()
    letters = "".join(_initial(w) for w in words if w.isalpha() and w.casefold() != "và")
    return f"BC-{letters or 'UBND'}"


def signer_title_for(unit: Unit, hierarchy: Hierarchy) -> tuple[str, ...]:
    """The signature block's title lines; a guess from the unit's kind that the caller may override."""
    if unit.level in ("province", "commune"):
        return ("TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH")
    if unit.level == "ministry":
        return ("BỘ TRƯỞNG",)
    own = _own_name(unit, hierarchy.parent(unit.code)).casefold()
    for start, title in (
        ("sở", "GIÁM ĐỐC"),
        ("văn phòng", "CHÁNH VĂN PHÒNG"),
        ("thanh tra", "CHÁNH THANH TRA"),
        ("phòng", "TRƯỞNG PHÒNG"),
        ("trung tâm", "GIÁM ĐỐC"),
        ("ban", "TRƯỞNG BAN"),
    ):
        if own.startswith(start + " "):
            return (title,)
    return ("THỦ TRƯỞNG ĐƠN VỊ",)


def _body_name(unit: Unit) -> str:
    """How the body text names the issuer: "Ủy ban nhân dân thành phố Hải Phòng", "Văn phòng UBND ..."."""
    if unit.level in ("province", "commune"):
        return "Ủy ban nhân dân " + _lower_first(_full_name(unit))
    return _nfc(unit.name)


def _short_name(unit: Unit) -> str:
    if unit.level in ("province", "commune"):
        return "UBND " + _lower_first(_full_name(unit))
    return _nfc(unit.name)


def default_recipients(unit: Unit, hierarchy: Hierarchy) -> tuple[str, ...]:
    """Nơi nhận: the body reported to (b/c), then the archive."""
    parent = hierarchy.parent(unit.code)
    lines = [f"- {_short_name(parent)} (b/c);"] if parent is not None else []
    return (*lines, "- Lưu: VT.")


def _recipients(ctx: ReportContext) -> list[str]:
    """The Nơi nhận list as given, always ending with a "- Lưu: VT, ..." line (ND 30/2020)."""
    lines = [_clean(r) for r in (ctx.recipients or default_recipients(ctx.unit, ctx.hierarchy)) if _clean(r)]
    lines = [line if line.startswith("-") else f"- {line}" for line in lines]
    if not lines or not lines[-1].startswith(LUU):
        lines = [line for line in lines if not line.startswith(LUU)] + ["- Lưu: VT."]
    return lines


def report_context(
    figures: Mapping[str, Figures],
    unit_code: str,
    hierarchy: Hierarchy,
    catalog: Catalog,
    period: Period,
    plan_name: str,
    report_date: date,
    **overrides: Any,
) -> ReportContext:
    """A context for ``unit_code`` from :func:`baocao.consolidation.aggregate.consolidate_tree`'s result, with the
    issuer, place, symbol, signer title and recipients derived from the hierarchy (override any)."""
    unit = hierarchy[unit_code]
    own = figures[unit_code]
    values: dict[str, Any] = {
        "figures": own,
        "child_figures": {c: figures[c] for c in own.children if c in figures},
        "hierarchy": hierarchy,
        "catalog": catalog,
        "period": period,
        "plan_name": plan_name,
        "report_date": report_date,
        "place": place_for(unit, hierarchy),
        "issuer_lines": issuer_lines_for(unit, hierarchy),
        "signer_title": signer_title_for(unit, hierarchy),
        "recipients": default_recipients(unit, hierarchy),
        "symbol": symbol_for(unit, hierarchy),
    }
    values.update(overrides)
    return ReportContext(**values)


# ----------------------------------------------------------------------------- wording
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACE = re.compile(r"\s+")


def _clean(text: Any) -> str:
    """One line of text safe for XML: no control characters, whitespace collapsed."""
    return _SPACE.sub(" ", _CONTROL.sub("", unicodedata.normalize("NFC", str(text)))).strip()


def _r1(value: float) -> float:
    """Half-up to one decimal, as the figure is printed, so the wording matches what is read."""
    return float(Decimal(repr(float(value))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _pct(value: float) -> str:
    return f"{number_vi(float(value), 1)} %"


def _tpct(target: float) -> str:
    return f"{number_vi(float(target), 0 if float(target).is_integer() else 1)} %"


def _num(value: float) -> str:
    return number_vi(float(value), 0)


def _env(autoescape: bool) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the code: no stat() per sentence
    )
    env.filters.update(num=_num, pct=_pct, tpct=_tpct, r1=_r1)
    return env


@lru_cache(maxsize=2)
def _cached_env(autoescape: bool) -> Environment:
    return _env(autoescape)


@lru_cache(maxsize=8)
def _template(name: str, autoescape: bool = False) -> Template:
    """Loaded once per process and looked up without Jinja's cache lock (see templating.template):
    a report says about a thousand sentences, from report threads running at once. The templates
    of one autoescape setting share one environment."""
    return _cached_env(autoescape).get_template(name)


def _say(macro: str, *args: Any) -> str:
    """Render one macro of report_sentences.j2 to a single line of plain text."""
    module = _template("report_sentences.j2").module
    return _SPACE.sub(" ", str(getattr(module, macro)(*args))).strip()


@dataclass
class ReportText:
    """Every string of the report, rendered once from report_sentences.j2 and the figures."""

    summary: str
    intro: str
    subject: str
    unit_name: str
    period_label: str
    place_date: str
    completeness: str
    correction_note: str
    groups: list[dict[str, Any]]
    derived_rows: list[dict[str, Any]]
    shortcomings_auto: list[str]
    sections: dict[str, list[dict[str, Any]]]
    tasks_summary: str | None
    tasks: list[dict[str, Any]]
    recipients: list[str]


def _names(ctx: ReportContext, codes: Iterable[str]) -> list[str]:
    return [_clean(ctx.hierarchy[c].name) if c in ctx.hierarchy else _clean(c) for c in codes]


def _capped(names: list[str]) -> tuple[list[str], int]:
    return names[:MAX_NAMES], max(0, len(names) - MAX_NAMES)


def count_sentence(figures: Figures, indicator: Indicator) -> str:
    """ "Tổng số hội nghị, cuộc họp đã tổ chức: 1.234 cuộc (giảm 12,0 % so với cùng kỳ)." """
    return _say("count_sentence", _clean(indicator.label), figures.totals.get(indicator.code), indicator.unit,
                figures.change.get(indicator.code))


def _derived_unit(catalog: Catalog, code: str) -> str:
    """A cap is a count: it is said with its indicator's unit ("0 cuộc"); ratios and cuts are in %."""
    d = next(d for d in catalog.derived if d.code == code)
    return catalog[d.of].unit if d.kind == "max" and d.of and d.of in catalog else ""


def derived_sentence(figures: Figures, catalog: Catalog, code: str) -> str:
    """ "Tỷ lệ hội nghị trực tuyến đạt 64,2 %, vượt chỉ tiêu 60 %." """
    e = figures.derived[code]
    return _say("derived_sentence", _clean(e["label"]), e["kind"], e["value"], e["target"], e["op"], e["met"],
                e["has_target"], _derived_unit(catalog, code))


def _value_text(entry: dict[str, Any]) -> str:
    if entry["value"] is None:
        return "—"
    return _num(entry["value"]) if entry["kind"] == "max" else _pct(entry["value"])


def _groups(ctx: ReportContext) -> list[dict[str, Any]]:
    """The body by the catalogue's groups: counts, then derived figures, each followed by which
    children missed its target. A figure whose group is not in the catalogue goes to a last group."""
    f, catalog = ctx.figures, ctx.catalog
    known = {g.code for g in catalog.groups}

    def group_of(code: str) -> str:
        return code if code in known else ""

    groups = []
    for code, title in [(g.code, g.title) for g in catalog.groups] + [("", "Các chỉ tiêu khác")]:
        sentences = [count_sentence(f, i) for i in catalog.counts if group_of(i.group) == code]
        for d in catalog.derived:
            if group_of(d.group) != code or d.code not in f.derived:
                continue
            sentences.append(derived_sentence(f, catalog, d.code))
            e = f.derived[d.code]
            if e["has_target"] and f.children:
                names, more = _capped(_names(ctx, e["children_missed"]))
                line = _say("children_sentence", e["n_children_met"], e["n_children_missed"], names, more)
                if line:
                    sentences.append(line)
        if sentences:
            groups.append({"number": len(groups) + 1, "title": _clean(title), "sentences": sentences})
    return groups


def _text_key(text: str) -> str:
    return _SPACE.sub(" ", text.casefold()).strip(" .;")


def _unit_texts(entries: list[dict[str, str]]) -> list[str]:
    """Units' answers prefixed by who wrote them; the same text from several units is said once."""
    merged: dict[str, tuple[list[str], str]] = {}
    for entry in entries:
        text = _clean(entry["text"])
        if not text:
            continue
        if len(text) > MAX_TEXT_CHARS:
            text = text[: MAX_TEXT_CHARS - 1].rstrip() + "…"
        names, _ = merged.setdefault(_text_key(text), ([], text))
        name = _clean(entry["name"])
        if name not in names:
            names.append(name)
    items = [_say("unit_text", names, text) for names, text in merged.values()]
    if len(items) > MAX_TEXTS:
        items = items[:MAX_TEXTS] + [_say("more_texts", len(items) - MAX_TEXTS)]
    return items


def _sections(ctx: ReportContext) -> dict[str, list[dict[str, Any]]]:
    sections: dict[str, list[dict[str, Any]]] = {"results": [], "shortcomings": [], "next_steps": [], "proposals": []}
    for ind in ctx.catalog.texts:
        items = _unit_texts(ctx.figures.texts.get(ind.code, []))
        if items:
            sections.setdefault(ind.section or "results", []).append({"label": _clean(ind.label), "lines": items})
    return sections


def _tasks(ctx: ReportContext) -> tuple[list[dict[str, Any]], str | None]:
    if not ctx.tasks:
        return [], None
    rows = []
    totals = {"done": 0, "in_progress": 0, "not_started": 0, "overdue": 0}
    for i, task in enumerate(ctx.tasks, start=1):
        row: dict[str, Any] = {"number": task.get("number", i), "content": _clean(task.get("content", ""))}
        for key in totals:
            n = int(task.get(key) or 0)
            totals[key] += n
            row[key] = n
        units = task.get("overdue_units") or []
        if isinstance(units, str):
            units = [units]
        row["overdue_units"] = "; ".join(_names(ctx, units))
        rows.append(row)
    summary = _say("tasks_sentence", len(rows), totals["done"], totals["in_progress"], totals["not_started"],
                   totals["overdue"])
    return rows, summary


def report_text(ctx: ReportContext) -> ReportText:
    """All the wording of one report, shared by the Word report, the email and the workbook."""
    f, c = ctx.figures, ctx.figures.completeness
    unit_name = _body_name(ctx.unit)
    period_label = ctx.period.label_vi
    derived_rows = []
    missed = []
    for code, e in f.derived.items():
        unit = _derived_unit(ctx.catalog, code)
        row = {
            "code": code,
            "label": _clean(e["label"]),
            "value": _value_text(e),
            "target": _say("target_text", e["kind"], e["op"], e["target"], unit),
            "status": _say("status_word", e["value"], e["met"], e["has_target"]),
            "met": e["met"],
            "sentence": derived_sentence(f, ctx.catalog, code),
        }
        derived_rows.append(row)
        if e["met"] is False:
            missed.append(f"{row['label']} ({row['value']}; chỉ tiêu {row['target']})")
    shortcomings = [_say("missed_targets_sentence", missed)] if missed else []
    missing = _names(ctx, f.missing)
    if missing:
        shortcomings.append(_say("missing_sentence", *_capped(missing)))
    said = set(f.missing)
    late = [code for code in f.late if code not in said]  # the missing ones are said above
    if late:
        shortcomings.append(_say("late_sentence", *_capped(_names(ctx, late))))
    tasks, tasks_summary = _tasks(ctx)
    return ReportText(
        summary=_say("summary_line", period_label),
        intro=_say("intro", _clean(ctx.plan_name), unit_name, period_label),
        subject=_say("email_subject", _clean(f.name), period_label, ctx.correction_of),
        unit_name=unit_name,
        period_label=period_label,
        place_date=place_date_vi(ctx.place, ctx.report_date),
        completeness=_say("completeness_sentence", c["expected"], c["received"], c["accepted"], c["on_time"],
                          c.get("exempt", 0)),
        correction_note=_say("correction_note", ctx.correction_of) if ctx.correction_of else "",
        groups=_groups(ctx),
        derived_rows=derived_rows,
        shortcomings_auto=shortcomings,
        sections=_sections(ctx),
        tasks_summary=tasks_summary,
        tasks=tasks,
        recipients=_recipients(ctx),
    )


def email_subject(ctx: ReportContext) -> str:
    return report_text(ctx).subject


# ----------------------------------------------------------------------------- Word
def _issuer_split(lines: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """ND 30: the governing body's line is plain, the issuer's bold; "ỦY BAN NHÂN DÂN / TỈNH X" is all bold."""
    lines_ = [_clean(line) for line in lines if _clean(line)]
    if len(lines_) <= 1 or lines_[0] == UBND:
        return [], lines_
    return lines_[:-1], lines_[-1:]


def docx_context(ctx: ReportContext, text: ReportText | None = None) -> dict[str, Any]:
    """The variables of templates/report.docx (listed in templates/make_report_template.py)."""
    text = text or report_text(ctx)
    plain, bold = _issuer_split(ctx.issuer_lines)
    return {
        "issuer_plain": plain,
        "issuer_bold": bold,
        "symbol": _clean(ctx.symbol),
        "place_date": text.place_date,
        "correction_of": ctx.correction_of,
        "correction_note": text.correction_note,
        "summary": text.summary,
        "intro": text.intro,
        "completeness": text.completeness,
        "period_label": text.period_label,
        "unit_name": text.unit_name,
        "groups": text.groups,
        "results": text.sections.get("results", []),
        "shortcomings": text.sections.get("shortcomings", []),
        "shortcomings_auto": text.shortcomings_auto,
        "next_steps": text.sections.get("next_steps", []),
        "proposals": text.sections.get("proposals", []),
        "tasks_summary": text.tasks_summary,
        "tasks": text.tasks,
        "recipients": text.recipients,
        "signer_title": [_clean(s) for s in ctx.signer_title],
        "signer_name": _clean(ctx.signer_name),
    }


def render_docx(ctx: ReportContext) -> bytes:
    """The Word report from templates/report.docx; autoescaped, so units' text cannot break the XML."""
    from docxtpl import DocxTemplate

    template = DocxTemplate(str(DOCX_TEMPLATE))
    template.render(docx_context(ctx), jinja_env=Environment(autoescape=True), autoescape=True)
    out = BytesIO()
    template.save(out)
    return out.getvalue()


# ----------------------------------------------------------------------------- email
def render_email(ctx: ReportContext) -> tuple[str, str, bytes]:
    """(plain text, HTML, chart PNG). The HTML shows the chart as <img src="cid:chart">."""
    from baocao.consolidation.charts import chart_png

    text = report_text(ctx)
    variables = {
        "t": text,
        "proposals": text.sections.get("proposals", []),
        "correction_of": ctx.correction_of,
    }
    plain = _template("report_email.txt.j2").render(**variables)
    html = _template("report_email.html.j2", autoescape=True).render(**variables)
    return plain, html, chart_png(ctx)


# ----------------------------------------------------------------------------- XLSX appendix
def _put(ws, row: int, col: int, value: Any, *, number_format: str | None = None):
    """Write one cell. Strings are always text: never a formula, whatever they start with."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    cell = ws.cell(row=row, column=col)
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", unicodedata.normalize("NFC", value))
        cell.value = value
        cell.data_type = "s"
        if value.startswith(FORMULA_TRIGGERS):
            cell.quotePrefix = True
    else:
        cell.value = value
        if number_format:
            cell.number_format = number_format
    return cell


def _leaf_status(code: str, figures: Figures) -> str:
    c = figures.completeness
    if c["expected"] == 0 and c.get("exempt"):
        return "exempt"
    if code in figures.missing:
        return "overdue" if code in figures.late else "missing"
    return "late" if code in figures.late else "accepted"


def _report_status(code: str, figures: Figures) -> str:
    """A leaf's reporting status in words; a consolidator's as "accepted/expected đơn vị"."""
    if not figures.children:
        return _say("report_status", _leaf_status(code, figures))
    c = figures.completeness
    return f"{_num(c['accepted'])}/{_num(c['expected'])} đơn vị"


def _number(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else float(value)


def render_xlsx(ctx: ReportContext) -> bytes:
    """The appendix: figures by unit against the targets, units missing or late, tasks, units' words."""
    from openpyxl import Workbook
    from openpyxl.formatting.rule import FormulaRule
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    text = report_text(ctx)
    f, catalog = ctx.figures, ctx.catalog
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    red = PatternFill(start_color="FFC7CE", end_color="FFC7CE", fill_type="solid")
    green = PatternFill(start_color="C6EFCE", end_color="C6EFCE", fill_type="solid")

    wb = Workbook()
    ws = wb.active
    ws.title = "Số liệu theo đơn vị"
    _put(ws, 1, 1, f"PHỤ LỤC: SỐ LIỆU THEO ĐƠN VỊ - {text.period_label.upper()}").font = bold
    _put(ws, 2, 1, text.unit_name)
    header_row, target_row, first_row = 4, 5, 6
    headers: list[str] = ["STT", "Mã đơn vị", "Đơn vị", "Tình hình báo cáo"]
    counts = catalog.counts
    headers += [f"{i.label} ({i.unit})" if i.unit else i.label for i in counts]
    derived_codes = list(f.derived)
    for code in derived_codes:
        e = f.derived[code]
        headers += [f"{e['label']}" + ("" if e["kind"] == "max" else " (%)"), "Đánh giá"]
    for j, h in enumerate(headers, start=1):
        cell = _put(ws, header_row, j, _clean(h))
        cell.font, cell.alignment = bold, wrap
    _put(ws, target_row, 3, "Chỉ tiêu").font = bold
    first_derived_col = 5 + len(counts)
    for k, code in enumerate(derived_codes):
        e = f.derived[code]
        _put(ws, target_row, first_derived_col + 2 * k,
             _say("target_text", e["kind"], e["op"], e["target"], _derived_unit(catalog, code)))

    rows: list[tuple[int | None, str, Figures]] = [
        (n, code, ctx.child_figures[code]) for n, code in enumerate(f.children, start=1) if code in ctx.child_figures
    ]
    rows.append((None, f.unit, f))
    for r, (number, code, figures) in enumerate(rows, start=first_row):
        is_total = figures is f
        _put(ws, r, 1, number)
        _put(ws, r, 2, code)
        _put(ws, r, 3, "Tổng cộng: " + _clean(figures.name) if is_total else _clean(figures.name))
        _put(ws, r, 4, _report_status(code, figures))
        for j, ind in enumerate(counts, start=5):
            _put(ws, r, j, _number(figures.totals.get(ind.code)), number_format="#,##0")
        for k, dcode in enumerate(derived_codes):
            e = figures.derived[dcode]
            col = first_derived_col + 2 * k
            _put(ws, r, col, _number(e["value"]), number_format="#,##0" if e["kind"] == "max" else "0.0")
            _put(ws, r, col + 1, _say("status_word", e["value"], e["met"], e["has_target"]))
        if is_total:
            for j in range(1, len(headers) + 1):
                ws.cell(row=r, column=j).font = bold
    last_row = first_row + len(rows) - 1
    for k, dcode in enumerate(derived_codes):
        e = f.derived[dcode]
        if not e["has_target"] or e["target"] is None:
            continue
        col = get_column_letter(first_derived_col + 2 * k)
        status_col = get_column_letter(first_derived_col + 2 * k + 1)
        ref = f"${col}{first_row}"
        target = repr(float(e["target"]))
        good, bad = (">=", "<") if e["op"] == ">=" else ("<=", ">")
        area = f"{col}{first_row}:{status_col}{last_row}"
        ws.conditional_formatting.add(area, FormulaRule(formula=[f"AND(ISNUMBER({ref}),{ref}{bad}{target})"], fill=red))
        ws.conditional_formatting.add(area, FormulaRule(formula=[f"AND(ISNUMBER({ref}),{ref}{good}{target})"],
                                                        fill=green))
    ws.freeze_panes = ws.cell(row=first_row, column=5)
    widths = [5, 14, 34, 18] + [14] * len(counts) + [14, 12] * len(derived_codes)
    for j, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(j)].width = w
    ws.row_dimensions[header_row].height = 90

    _missing_sheet(wb, ctx, bold, wrap)
    if text.tasks:
        _tasks_sheet(wb, text, bold, wrap)
    _texts_sheet(wb, ctx, bold, wrap)
    _summary_sheet(wb, text, bold, wrap)
    out = BytesIO()
    wb.save(out)
    return out.getvalue()


def _table(ws, headers: list[str], widths: list[int], bold, wrap) -> None:
    from openpyxl.utils import get_column_letter

    for j, (h, w) in enumerate(zip(headers, widths, strict=True), start=1):
        cell = _put(ws, 1, j, h)
        cell.font, cell.alignment = bold, wrap
        ws.column_dimensions[get_column_letter(j)].width = w
    ws.freeze_panes = "A2"


def _missing_sheet(wb, ctx: ReportContext, bold, wrap) -> None:
    ws = wb.create_sheet("Đơn vị chưa báo cáo, trễ hạn")
    _table(ws, ["STT", "Mã đơn vị", "Đơn vị", "Trực thuộc", "Tình trạng"], [6, 16, 40, 40, 30], bold, wrap)
    f = ctx.figures
    missing, late = set(f.missing), set(f.late)  # sets: a national report lists thousands of units
    wanted = missing | late
    order = [u.code for u in ctx.hierarchy.walk(f.unit) if u.code in wanted] if wanted else []
    for r, code in enumerate(order, start=2):
        unit = ctx.hierarchy[code]
        parent = ctx.hierarchy.parent(code)
        status = ("overdue" if code in late else "missing") if code in missing else "late"
        _put(ws, r, 1, r - 1)
        _put(ws, r, 2, code)
        _put(ws, r, 3, _clean(unit.name))
        _put(ws, r, 4, _clean(parent.name) if parent else "")
        _put(ws, r, 5, _say("report_status", status))


def _tasks_sheet(wb, text: ReportText, bold, wrap) -> None:
    ws = wb.create_sheet("Nhiệm vụ")
    _table(ws, ["STT", "Nội dung nhiệm vụ", "Hoàn thành", "Đang thực hiện", "Chưa thực hiện", "Quá hạn",
                "Đơn vị quá hạn"], [6, 60, 12, 14, 14, 10, 40], bold, wrap)
    for r, task in enumerate(text.tasks, start=2):
        for j, key in enumerate(("number", "content", "done", "in_progress", "not_started", "overdue",
                                 "overdue_units"), start=1):
            value = task[key]
            cell = _put(ws, r, j, value if isinstance(value, int | float) else str(value))
            if key == "content":
                cell.alignment = wrap


def _texts_sheet(wb, ctx: ReportContext, bold, wrap) -> None:
    ws = wb.create_sheet("Ý kiến của đơn vị")
    _table(ws, ["STT", "Mã đơn vị", "Đơn vị", "Nội dung", "Ý kiến"], [6, 16, 34, 30, 80], bold, wrap)
    r = 2
    for ind in ctx.catalog.texts:
        for entry in ctx.figures.texts.get(ind.code, []):
            _put(ws, r, 1, r - 1)
            _put(ws, r, 2, entry["unit"])
            _put(ws, r, 3, entry["name"])
            _put(ws, r, 4, ind.label)
            _put(ws, r, 5, entry["text"]).alignment = wrap
            r += 1


def _summary_sheet(wb, text: ReportText, bold, wrap) -> None:
    ws = wb.create_sheet("Tổng hợp")
    ws.column_dimensions["A"].width = 120
    lines: list[tuple[str, bool]] = [(text.summary, True), (text.completeness, False)]
    for group in text.groups:
        lines.append((f"{group['number']}. {group['title']}", True))
        lines += [(s, False) for s in group["sentences"]]
    lines += [(s, False) for s in text.shortcomings_auto]
    for r, (line, is_title) in enumerate(lines, start=1):
        cell = _put(ws, r, 1, line)
        cell.alignment = wrap
        if is_title:
            cell.font = bold


# ----------------------------------------------------------------------------- all files
def _slug(text: str) -> str:
    ascii_ = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    ascii_ = "".join(ch for ch in ascii_ if not unicodedata.combining(ch))
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_).strip("-").lower()


def render_all(ctx: ReportContext, out_dir: Path) -> dict[str, Path]:
    """Write the report (.docx), the appendix (.xlsx), the email (.html, .txt) and the chart (.png).

    Returns {"docx", "xlsx", "html", "txt", "png"} -> path. File names carry the unit and the period
    (and "dinh-chinh-N" for a correction), so reports of several units can share a folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"bao-cao-{_slug(ctx.figures.unit)}-{ctx.period.code.lower()}"
    if ctx.correction_of:
        stem += f"-dinh-chinh-{ctx.correction_of}"
    plain, html, png = render_email(ctx)
    contents: dict[str, tuple[str, bytes]] = {
        "docx": (f"{stem}.docx", render_docx(ctx)),
        "xlsx": (f"{stem}-phu-luc.xlsx", render_xlsx(ctx)),
        "html": (f"{stem}-email.html", html.encode("utf-8")),
        "txt": (f"{stem}-email.txt", plain.encode("utf-8")),
        "png": (f"{stem}-bieu-do.png", png),
    }
    paths = {}
    for key, (name, data) in contents.items():
        path = out_dir / name
        path.write_bytes(data)
        paths[key] = path
    return paths
