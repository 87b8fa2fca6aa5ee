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
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from baocao.consolidation.aggregate import Figures
from baocao.consolidation.children import categories, child_statuses, direct_child, tally
from baocao.consolidation.docx_appendix import figures_appendix_xml
from baocao.consolidation.narrative import TextGroup, group_texts
from baocao.consolidation.peers import FLAG_WORD, PeerFlag, peer_flags
from baocao.paths import TEMPLATES_DIR
from baocao.rules.catalog import Catalog, Indicator
from baocao.rules.dataperiod import data_period_vi
from baocao.rules.formatting import date_vi, number_vi, place_date_vi, verdict_percent_vi
from baocao.rules.hierarchy import Hierarchy, Unit
from baocao.rules.periods import Period

__all__ = [
    "DOCX_TEMPLATE",
    "TEMPLATES_DIR",
    "ReportContext",
    "ReportText",
    "default_recipients",
    "email_subject",
    "archive_line",
    "issuer_lines_for",
    "place_for",
    "recipients_for",
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
MAX_GROUPS = 5
"""Points per narrative indicator stated in the report body (the largest groups of units' words,
:mod:`baocao.consolidation.narrative`); all of them, with the units' names, are in the appendix."""
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
    basis: tuple[str, ...] = ()
    """The documents the report carries out ("Thực hiện ..."): Plan.basis_for; empty: the plan's name."""
    cutoff: tuple[date, date] | None = None
    """The data window of the period (ND 09/2019: WorkCalendar.cutoff_window); None: not stated."""
    draft: bool = False
    """A draft (Dự thảo) for the unit to check, number and sign (plan `report.issue = "review"`): marked so."""
    addressee: str = "Quý cơ quan, đơn vị"
    """Who the report's email is to, by name ("Ủy ban nhân dân thành phố Hải Phòng", "Bộ Nội vụ")."""
    issued: tuple[str, date] | None = None
    """(number, date) once the unit issued it: the appendix's "(Kèm theo Báo cáo số ...)" is filled."""

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


def body_name(unit: Unit) -> str:
    """The body a unit is as a letter addresses it: "Ủy ban nhân dân phường Nhị Chiểu", "Bộ Nội vụ"."""
    return _body_name(unit)


def _short_name(unit: Unit) -> str:
    if unit.level in ("province", "commune"):
        return "UBND " + _lower_first(_full_name(unit))
    return _nfc(unit.name)


def archive_line(unit: Unit, hierarchy: Hierarchy) -> str:
    """ "- Lưu: VT, SNV.": the records office and the department that drafted the report (ND 30/2020).

    The drafting department is the unit's child department marked ``drafts = true`` in config/hierarchy.toml,
    abbreviated by the last part of its code (T31-SNV -> SNV), as offices write it.
    """
    drafting = [child.code.rsplit("-", 1)[-1] for child in hierarchy.children(unit.code) if child.drafts]
    return "- Lưu: VT" + "".join(f", {d}" for d in drafting) + "."


def recipients_for(plan_recipients: Iterable[str], unit: Unit, hierarchy: Hierarchy,
                   extra_emails: Iterable[str] = ()) -> tuple[str, ...]:
    """Nơi nhận: the bodies the report is actually mailed to, by name, then the archive line.

    ``plan_recipients`` are the plan's ``[report] recipients`` ("parent:head", "unit:T46-SNV"); the parent's
    coordinator and head are one body. ``self:`` copies and addresses outside the hierarchy are not bodies
    that receive the document (the unit keeps its copy under "Lưu").
    """
    bodies: list[Unit] = []
    for entry in plan_recipients:
        role, _, target = entry.partition(":")
        body = hierarchy.parent(unit.code) if role == "parent" else (
            hierarchy[target] if role == "unit" and target in hierarchy else None)
        if body is not None and body not in bodies:
            bodies.append(body)
    wanted = set(extra_emails)
    if wanted:
        bodies += [u for u in hierarchy.units.values() if wanted & set(u.all_emails) and u not in bodies]
    return (*(f"- {_short_name(b)} (b/c);" for b in bodies), archive_line(unit, hierarchy))


def default_recipients(unit: Unit, hierarchy: Hierarchy) -> tuple[str, ...]:
    """Nơi nhận when no plan says otherwise: the body reported to (b/c), then the archive."""
    return recipients_for(("parent:coordinator", "parent:head"), unit, hierarchy)


def _recipients(ctx: ReportContext) -> list[str]:
    """The Nơi nhận list as given, always ending with a "- Lưu: VT, ..." line (ND 30/2020)."""
    lines = [_clean(r) for r in (ctx.recipients or default_recipients(ctx.unit, ctx.hierarchy)) if _clean(r)]
    lines = [line if line.startswith("-") else f"- {line}" for line in lines]
    if not lines or not lines[-1].startswith(LUU):
        lines = [line for line in lines if not line.startswith(LUU)] + [archive_line(ctx.unit, ctx.hierarchy)]
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
        "signer_name": unit.head_name,
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
    return f"{number_vi(float(value), 1)}%"


def _tpct(target: float) -> str:
    return f"{number_vi(float(target), 0 if float(target).is_integer() else 1)}%"


def _printed(text: str) -> float:
    """The number a reader sees in "1.234,56%" (the wording compares the printed figure with the target)."""
    return float(text.rstrip("%").replace(".", "").replace(",", "."))


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
    env.filters.update(num=_num, pct=_pct, tpct=_tpct, r1=_r1, vpct=verdict_percent_vi, dvi=date_vi)
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
    data_period: str
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
    """Per section (results, shortcomings, next_steps): [{label, lines}], the largest points only."""
    opinions: list[dict[str, Any]]
    """The appendix of the units' words: [{label, groups: [{text, units, names}]}], every point."""
    proposals: list[dict[str, Any]]
    """The children's proposals to this unit (an annex for it, not its own to the parent): [{text, units, names}]."""
    proposals_to: str
    annexes: dict[str, str]
    """The Roman numeral of each appendix present: {"figures": "I", "tasks": "II", "opinions": ..., "proposals": ...}."""
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
    """ "Tỷ lệ hội nghị trực tuyến đạt 64,2%, vượt chỉ tiêu (≥ 60%)."

    The verdict is the figure's own (``met``), and the figure is printed with the digits that show it
    (99,95% is not "100,0%, chưa đạt"): :func:`baocao.rules.formatting.verdict_percent_vi`.
    """
    e = figures.derived[code]
    shown = _value_text(e).lstrip("-")  # a negative cut is said "không giảm mà tăng 5,0%"
    number = None if e["value"] is None else _printed(shown)
    return _say("derived_sentence", _clean(e["label"]), e["kind"], e["value"], e["target"], e["op"], e["met"],
                e["has_target"], _derived_unit(catalog, code), shown, number)


def _value_text(entry: dict[str, Any]) -> str:
    """A derived figure as printed everywhere in the report: a count, or a percentage with deciding digits."""
    if entry["value"] is None:
        return "—"
    if entry["kind"] == "max":
        return _num(entry["value"])
    value = float(entry["value"])
    if entry["kind"] == "cut" and _r1(value) < 0:
        return verdict_percent_vi(value)  # "-5,0%" in a table: an increase, not a cut
    return verdict_percent_vi(value, entry["target"] if entry.get("has_target") else None, entry["op"])


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
                line = _children_sentence(ctx, e)
                if line:
                    sentences.append(line)
        if sentences:
            groups.append({"number": len(groups) + 1, "title": _clean(title), "sentences": sentences})
    return groups


def _children_sentence(ctx: ReportContext, e: dict[str, Any]) -> str:
    """ "Có 50/112 xã, phường, đặc khu và 1/2 sở, ngành đạt chỉ tiêu; chưa đạt: ...": each count of its kind."""
    h, unit = ctx.hierarchy, ctx.figures.unit
    met, missed = e["children_met"], e["children_missed"]
    if not met and not missed:
        return ""
    parts = [(n, total, noun) for n, total, noun in _all_kinds(met, unit, h)]
    no_data = [c for c in ctx.figures.children if c not in set(met) | set(missed)]
    names, more = _capped(_names(ctx, missed))
    return _say("children_sentence", parts, names, more, tally(no_data, unit, h))


def _all_kinds(codes: Iterable[str], unit: str, hierarchy: Hierarchy) -> list[tuple[int, int, str]]:
    """(n, of, noun) for every kind of the unit's children, zeros included ("0/2 sở, ngành")."""
    wanted = set(codes)
    return [(sum(1 for c in members if c in wanted), len(members), noun)
            for noun, members in categories(unit, hierarchy).values()]


def _completeness(ctx: ReportContext) -> list[str]:
    """The completeness sentence and who is missing, partly in or late: the unit's direct children by kind."""
    f, h = ctx.figures, ctx.hierarchy
    if not f.children:
        c = f.completeness
        return [_say("completeness_leaf", c["accepted"], c["expected"])]
    statuses = child_statuses(f, ctx.child_figures, h)
    counted = [s for s in statuses if s.state != "exempt"]
    sent = [s.code for s in counted if s.state == "sent"]
    on_time = [s.code for s in counted if s.state == "sent" and s.on_time]
    kinds = categories(f.unit, h)
    expected = {cat: [c for c in members if c in {s.code for s in counted}] for cat, (_, members) in kinds.items()}
    sent_parts = [(n, total, noun) for n, total, noun in
                  ((sum(1 for c in expected[cat] if c in set(sent)), len(expected[cat]), noun)
                   for cat, (noun, _) in kinds.items()) if total]
    on_time_parts = [(sum(1 for c in expected[cat] if c in set(on_time)), len(expected[cat]), noun)
                     for cat, (noun, _) in kinds.items() if expected[cat]]
    deeper = any(ctx.child_figures.get(c) is not None and ctx.child_figures[c].children for c in f.children)
    c = f.completeness
    forms = (c["accepted"], c["expected"]) if deeper else None
    exempt = [(n, None, noun) for n, _, noun in tally([s.code for s in statuses if s.state == "exempt"], f.unit, h)]
    lines = [_say("completeness_sentence", sent_parts, on_time_parts, forms, exempt)]
    missing = [s.code for s in counted if s.state == "missing"]
    if missing:
        lines.append(_say("missing_sentence", tally(missing, f.unit, h, of=expected),
                          *_capped(_names(ctx, missing))))
    partial = [s for s in counted if s.state == "partial"]
    if partial:
        lines.append(_say("partial_sentence", [(_clean(s.name), s.received, s.expected) for s in partial]))
    late = [s.code for s in counted if s.state in ("sent", "partial") and not s.on_time]
    if late:
        lines.append(_say("late_sentence", tally(late, f.unit, h, of=expected), *_capped(_names(ctx, late))))
    return lines


def _texts_by_child(ctx: ReportContext, entries: list[dict[str, str]]) -> dict[str, list[str]]:
    """The words of the units below, by the direct child they come from: a ward's departments speak as the ward."""
    out: dict[str, list[str]] = {}
    for entry in entries:
        text = _clean_lines(entry["text"])
        if not text:
            continue
        child = direct_child(entry["unit"], ctx.figures.unit, ctx.hierarchy)
        if child is not None:
            out.setdefault(child, []).append(text)
    return out


def _clean_lines(text: str) -> str:
    """A unit's answer safe for XML, its lines kept (each line a point of its own)."""
    lines = (_clean(line) for line in unicodedata.normalize("NFC", str(text)).splitlines())
    return "\n".join(line for line in lines if line)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1].rstrip() + "…"


def _group_rows(ctx: ReportContext, groups: list[TextGroup]) -> list[dict[str, Any]]:
    h, unit = ctx.hierarchy, ctx.figures.unit
    return [{"text": _cut(g.text), "count": _say("fractions", tally(g.units, unit, h)), "units": list(g.units),
             "names": ", ".join(_names(ctx, g.units))} for g in groups]


def _narrative(ctx: ReportContext) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]],
                                             list[dict[str, Any]]]:
    """(body sections, appendix of every point, the children's proposals) from the units' own words.

    The body states the largest points once each, with how many units of which kind raised them
    ("42/114 xã, phường phản ánh: ..."); the appendix lists every point with the units' names. The
    children's proposals (section "proposals") are addressed to this unit: they go to an annex for it,
    never into the body as this unit's own proposals to its parent.
    """
    sections: dict[str, list[dict[str, Any]]] = {"results": [], "shortcomings": [], "next_steps": []}
    opinions: list[dict[str, Any]] = []
    proposals: list[dict[str, Any]] = []
    for ind in ctx.catalog.texts:
        groups = group_texts(_texts_by_child(ctx, ctx.figures.texts.get(ind.code, [])))
        if not groups:
            continue
        rows = _group_rows(ctx, groups)
        if (ind.section or "results") == "proposals":
            proposals += rows
            continue
        lines = [_say("text_group", row["count"], row["text"]) for row in rows[:MAX_GROUPS]]
        rest = groups[MAX_GROUPS:]
        if rest:
            lines.append(_say("more_texts", len(rest), len({u for g in rest for u in g.units}),
                              _annex_numbers(ctx)["opinions"]))
        sections.setdefault(ind.section or "results", []).append({"label": _clean(ind.label), "lines": lines})
        opinions.append({"label": _clean(ind.label), "groups": rows})
    return sections, opinions, proposals


_ROMAN = ("I", "II", "III", "IV", "V", "VI")


def _annex_numbers(ctx: ReportContext, opinions: bool = True, proposals: bool = True) -> dict[str, str]:
    """Phụ lục I (figures), II (tasks, when any), then the units' words and the children's proposals (when any)."""
    names = ["figures"] + (["tasks"] if ctx.tasks else []) + (["opinions"] if opinions else []) + (
        ["proposals"] if proposals else [])
    return {name: _ROMAN[i] for i, name in enumerate(names)}


def _own_plan(document: str, unit_name: str, place: str) -> str:
    """The unit's own plan without its place, as offices write it before naming themselves in full:
    "Kế hoạch số 144/KH-UBND ... của Ủy ban nhân dân thành phố, Ủy ban nhân dân thành phố Hải Phòng báo cáo"."""
    suffix = f" của {unit_name}"
    if place and document.endswith(suffix) and unit_name.endswith(" " + place):
        return document[: -len(place) - 1]
    return document


def _data_period(ctx: ReportContext) -> str:
    """ND 09/2019's data window, and that what lies after the units' submission is an estimate (số ước)."""
    if ctx.cutoff is None:
        return ""
    return data_period_vi(ctx.cutoff, ctx.report_date)  # the request's and the form's words


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
                   totals["overdue"], _annex_numbers(ctx)["tasks"])
    return rows, summary


def report_text(ctx: ReportContext) -> ReportText:
    """All the wording of one report, shared by the Word report, the email and the workbook."""
    f = ctx.figures
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
            missed.append(_say("missed_target", row["label"], e["kind"], e["value"], row["value"], row["target"], unit))
    shortcomings = [_say("missed_targets_sentence", missed)] if missed else []
    completeness, *who = _completeness(ctx)
    shortcomings += who
    tasks, tasks_summary = _tasks(ctx)
    sections, opinions, proposals = _narrative(ctx)
    basis = [_own_plan(_clean(b), unit_name, ctx.place) for b in ctx.basis if _clean(b)] or [_clean(ctx.plan_name)]
    return ReportText(
        summary=_say("summary_line", period_label),
        intro=_say("intro", basis, unit_name, period_label),
        data_period=_data_period(ctx),
        subject=_say("email_subject", _clean(f.name), period_label, ctx.correction_of),
        unit_name=unit_name,
        period_label=period_label,
        place_date=place_date_vi(ctx.place, ctx.report_date),
        completeness=completeness,
        correction_note=_say("correction_note", ctx.correction_of) if ctx.correction_of else "",
        groups=_groups(ctx),
        derived_rows=derived_rows,
        shortcomings_auto=shortcomings,
        sections=sections,
        opinions=opinions,
        proposals=proposals,
        proposals_to=_short_name(ctx.unit),
        annexes=_annex_numbers(ctx, bool(opinions), bool(proposals)),
        tasks_summary=tasks_summary,
        tasks=tasks,
        recipients=_recipients(ctx),
    )


def attached_line(symbol: str, unit_name: str, issued: tuple[str, date] | None) -> str:
    """The appendix's link to its report: "(Kèm theo Báo cáo số 123/BC-UBND ngày 10/6/2026 của ...)" once
    issued; with dots for the number and date before (the records office writes them in)."""
    if issued is None:
        return f"(Kèm theo Báo cáo số …/{_clean(symbol)} ngày … của {unit_name})"
    return f"(Kèm theo Báo cáo số {_clean(issued[0])} ngày {date_vi(issued[1])} của {unit_name})"


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
        "draft": ctx.draft,
        "attached": attached_line(ctx.symbol, text.unit_name, ctx.issued),
        "summary": text.summary,
        "intro": text.intro,
        "data_period": text.data_period,
        "completeness": text.completeness,
        "period_label": text.period_label,
        "unit_name": text.unit_name,
        "groups": text.groups,
        "results": text.sections.get("results", []),
        "shortcomings": text.sections.get("shortcomings", []),
        "shortcomings_auto": text.shortcomings_auto,
        "next_steps": text.sections.get("next_steps", []),
        "proposals": text.proposals,
        "proposals_to": text.proposals_to,
        "opinions": text.opinions,
        "annex": text.annexes,
        "tasks_summary": text.tasks_summary,
        "tasks": text.tasks,
        "recipients": text.recipients,
        "signer_title": [_clean(s) for s in ctx.signer_title],
        "signer_name": _clean(ctx.signer_name),
        "figures_appendix": figures_appendix_xml(ctx),
    }


def _properties(document: Any, ctx: ReportContext, text: ReportText) -> None:
    """File > Properties says what this report is and who issued it, not what the template was made from.

    Title, author (the issuing body), company (the same), created and modified now; the template's
    thumbnail (a picture of another page) is dropped.
    """
    from docx.opc.constants import RELATIONSHIP_TYPE as RT

    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)  # python-docx writes naive times as UTC
    props = document.core_properties
    props.title = f"Báo cáo {_lower_first(text.summary)}"
    props.subject = _clean(ctx.plan_name)
    props.author = props.last_modified_by = text.unit_name
    props.comments = ""
    props.created = props.modified = now
    props.revision = 1
    package = document.part.package
    for r_id, rel in list(package.rels.items()):
        if rel.reltype == RT.THUMBNAIL:
            package.rels.pop(r_id)
    for part in package.iter_parts():
        if str(part.partname) == "/docProps/app.xml":
            company = f"<Company>{xml_escape(text.unit_name)}</Company>"
            part._blob = re.sub(rb"<Company\s*/>|<Company>.*?</Company>", company.encode("utf-8"), part.blob)


def render_docx(ctx: ReportContext) -> bytes:
    """The Word report from templates/report.docx; autoescaped, so units' text cannot break the XML."""
    from docxtpl import DocxTemplate

    text = report_text(ctx)
    template = DocxTemplate(str(DOCX_TEMPLATE))
    template.render(docx_context(ctx, text), jinja_env=Environment(autoescape=True), autoescape=True)
    _properties(template.docx, ctx, text)
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
        "proposals": text.proposals,
        "correction_of": ctx.correction_of,
        "addressee": _clean(ctx.addressee),
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


def _xlsx_format(entry: dict[str, Any]) -> str:
    """The cell's number format: a count, or a percentage with the decimals the report prints it with
    (0.00 for 99.95 against 100, so the cell never shows 100.0 beside "Chưa đạt")."""
    if entry["kind"] == "max":
        return "#,##0"
    if entry["value"] is None:
        return "0.0"
    decimals = len(_value_text(entry).rstrip("%").partition(",")[2]) or 1
    return "0." + "0" * decimals


def render_xlsx(ctx: ReportContext) -> bytes:
    """The appendix: figures by unit against the targets, units missing or late, tasks, units' words."""
    from openpyxl import Workbook
    from openpyxl.formatting.rule import FormulaRule
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    from baocao.consolidation.xlsx_print import pages_wide, print_ready, title_row

    text = report_text(ctx)
    f, catalog = ctx.figures, ctx.catalog
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    red = PatternFill(start_color="FFC7CE", end_color="FFC7CE", fill_type="solid")
    green = PatternFill(start_color="C6EFCE", end_color="C6EFCE", fill_type="solid")

    wb = Workbook()
    ws = wb.active
    ws.title = "Số liệu theo đơn vị"
    _put(ws, 1, 1, f"PHỤ LỤC: SỐ LIỆU THEO ĐƠN VỊ - {text.period_label.upper()}")
    _put(ws, 2, 1, text.unit_name)
    _put(ws, 3, 1, attached_line(ctx.symbol, text.unit_name, ctx.issued)).font = Font(italic=True)
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
    flags = peer_flags({code: fig.totals for _, code, fig in rows}, [code for _, code, _ in rows], ctx.hierarchy,
                       catalog)
    rows.append((None, f.unit, f))
    for r, (number, code, figures) in enumerate(rows, start=first_row):
        is_total = figures is f
        _put(ws, r, 1, number)
        _put(ws, r, 2, code)
        _put(ws, r, 3, "Tổng cộng: " + _clean(figures.name) if is_total else _clean(figures.name))
        _put(ws, r, 4, _report_status(code, figures)).alignment = wrap
        for j, ind in enumerate(counts, start=5):
            cell = _put(ws, r, j, _number(figures.totals.get(ind.code)), number_format="#,##0")
            if (flag := flags.get((code, ind.code))) is not None and not is_total:
                _flag_cell(cell, flag)
        for k, dcode in enumerate(derived_codes):
            e = figures.derived[dcode]
            col = first_derived_col + 2 * k
            _put(ws, r, col, _number(e["value"]), number_format=_xlsx_format(e))
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
    if flags:  # in the footer: printed on every page, and the table keeps its last row
        ws.oddFooter.left.text = _peer_legend(catalog)
        ws.oddFooter.left.size = 8
    ws.freeze_panes = ws.cell(row=first_row, column=5)
    widths = [5, 11, 30, 16] + [11] * len(counts) + [10, 11] * len(derived_codes)
    for j, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(j)].width = w
    ws.row_dimensions[header_row].height = 120
    # The title is merged across the used columns when they print on one page; across the repeated unit
    # columns (A:C) when the sheet prints several pages wide, so that it is whole on every page it is on.
    title_cols = len(headers) if pages_wide(widths, 3) == 1 else 3
    title_row(ws, 1, title_cols, height=54 if title_cols == 3 else 36)
    title_row(ws, 2, title_cols, size=12, bold=False, height=20)
    print_ready(ws, table=(header_row, 1, last_row, len(headers)), title_rows=(header_row, target_row),
                title_cols=3, widths=widths)

    _missing_sheet(wb, ctx, bold, wrap)
    if text.tasks:
        _tasks_sheet(wb, text, bold, wrap)
    _texts_sheet(wb, ctx, bold, wrap)
    _summary_sheet(wb, text, bold, wrap)
    out = BytesIO()
    wb.save(out)
    return out.getvalue()


PEER_FILL = "FFEB9C"  # amber: a look, not a verdict (red and green are the targets')


def _flag_cell(cell: Any, flag: PeerFlag) -> None:
    """Mark a count far above its peers: amber fill (prints) and a comment saying by how much."""
    from openpyxl.comments import Comment
    from openpyxl.styles import PatternFill

    cell.fill = PatternFill(start_color=PEER_FILL, end_color=PEER_FILL, fill_type="solid")
    cell.comment = Comment(f"{FLAG_WORD}: {_num(flag.value)}, gấp {number_vi(flag.times, 1)} lần trung vị "
                           f"({_num(flag.median)}) của {_num(flag.peers)} đơn vị cùng cấp.", "baocao")


def _peer_legend(catalog: Catalog) -> str:
    return (f"Ô nền vàng: {FLAG_WORD} - số liệu lớn hơn {number_vi(catalog.peer_factor, 1 if catalog.peer_factor % 1 else 0)}"
            " lần trung vị của các đơn vị cùng cấp; đề nghị đối chiếu với đơn vị trước khi sử dụng.")


def _table(ws, headers: list[str], widths: list[int], bold, wrap) -> None:
    from openpyxl.utils import get_column_letter

    for j, (h, w) in enumerate(zip(headers, widths, strict=True), start=1):
        cell = _put(ws, 1, j, h)
        cell.font, cell.alignment = bold, wrap
        ws.column_dimensions[get_column_letter(j)].width = w
    ws.freeze_panes = "A2"


def _table_done(ws, widths: list[int]) -> None:
    """Print setup of a one-header-row table sheet (see :mod:`baocao.consolidation.xlsx_print`)."""
    from baocao.consolidation.xlsx_print import print_ready

    print_ready(ws, table=(1, 1, ws.max_row, len(widths)), title_rows=(1, 1), widths=widths)


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
    _table_done(ws, [6, 16, 40, 40, 30])


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
    _table_done(ws, [6, 60, 12, 14, 14, 10, 40])


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
    _table_done(ws, [6, 16, 34, 30, 80])


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
    from baocao.consolidation.xlsx_print import print_ready

    print_ready(ws, table=(1, 1, 0, 0), title_rows=(1, 1), widths=[120])


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
