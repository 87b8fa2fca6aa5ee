"""Checks on what a unit reported, beyond "is this a number": the catalogue's rules and history.

Errors send the form back (a required figure missing, a relation of the catalogue broken: more
online conferences than conferences). Warnings are accepted but pointed out, because they are often
right (a cumulative count lower than the unit's Q1 report, a count three times last year's): the
reply email lists them so the unit can correct or explain.

Everything comes from the :class:`~baocao.rules.catalog.Catalog`; messages are Vietnamese and name the
file, the sheet and cell (or CSV line), the code and both values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from baocao.intake.results import Problem, Submitted, make_problem
from baocao.opening.forms import SHEET_INFO
from baocao.opening.tokens import token_version, verify_token
from baocao.rules.catalog import Catalog
from baocao.rules.formatting import number_vi
from baocao.rules.periods import Period, PeriodError

__all__ = ["has_errors", "summary_vi", "token_problems", "validate"]


def _known(values: Mapping[str, int | None] | None, code: str) -> int | None:
    if not values:
        return None
    value = values.get(code)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def validate(
    sub: Submitted, catalog: Catalog, *, filename: str,
    earlier_same_year: Mapping[str, int | None] | None = None,
    last_year: Mapping[str, int | None] | None = None,
) -> list[Problem]:
    """Problems with one submission's figures.

    ``earlier_same_year``: the unit's accepted figures of the latest earlier report of the same year
    (Q1 for H1...): cumulative counts must not shrink. ``last_year``: the same period of last year
    (from the system; if it has no figure for a code, the one the unit typed in ``Cùng kỳ năm
    trước`` is used), for the jump check.
    """
    problems: list[Problem] = []
    sheet = sub.sheet

    def where(code: str) -> dict[str, str | None]:
        return {"sheet": sheet, "cell": sub.cells.get(code), "code": code}

    for ind in catalog.counts:
        if ind.required and sub.values.get(ind.code) is None and ind.code not in sub.reported:
            problems.append(make_problem(
                "error", filename, "required",
                f"thiếu giá trị cho chỉ tiêu bắt buộc “{ind.label}” (nếu không có thì ghi 0).", **where(ind.code),
            ))

    for rel in catalog.relations:
        part, whole = _known(sub.values, rel.part), _known(sub.values, rel.whole)
        if part is None or whole is None or rel.holds(part, whole):
            continue
        problems.append(make_problem(
            "error", filename, "relation",
            f"{rel.part_name} ({_figure_at(sub, rel.part, part)}) lớn hơn {rel.whole_name} "
            f"({_figure_at(sub, rel.whole, whole)}). Đề nghị đơn vị kiểm tra lại.",
            sheet=sheet, cell=sub.cells.get(rel.part), code=rel.part, value=str(part),
        ))

    for ind in catalog.counts:
        code = ind.code
        value = _known(sub.values, code)
        if value is None:
            continue
        earlier = _known(earlier_same_year, code)
        if earlier is not None and value < earlier:
            problems.append(make_problem(
                "warning", filename, "not_cumulative",
                f"“{ind.label}” = {number_vi(value)} nhỏ hơn số đơn vị đã báo cáo ở kỳ trước trong năm "
                f"({number_vi(earlier)}). Số liệu các kỳ trong năm được tính lũy kế nên không giảm; đề nghị đơn vị kiểm tra lại "
                "hoặc ghi rõ lý do ở cột “Ghi chú”.", value=str(value), **where(code),
            ))
        before = _known(last_year, code)
        if before is None:
            before = _known(sub.previous_year, code)
        if before is not None and _jump(value, before, catalog):
            problems.append(make_problem(
                "warning", filename, "jump",
                f"“{ind.label}” = {number_vi(value)} chênh lệch lớn so với cùng kỳ năm trước "
                f"({number_vi(before)}; quá {number_vi(catalog.jump_ratio, 1 if catalog.jump_ratio % 1 else 0)} "
                "lần). Đề nghị đơn vị kiểm tra lại (có thể nhập thừa hoặc thiếu chữ số) hoặc ghi lý do ở cột “Ghi chú”.",
                value=str(value), **where(code),
            ))
    return problems


def _figure_at(sub: Submitted, code: str, value: int) -> str:
    """ "ô D7: 73" (a form's cell), "dòng 5: 73" (a CSV line) or just "73": where the clerk looks."""
    cell = sub.cells.get(code)
    if not cell:
        return number_vi(value)
    return f"{cell if cell.startswith('dòng') else 'ô ' + cell}: {number_vi(value)}"


def _jump(value: int, before: int, catalog: Catalog) -> bool:
    """More than jump_ratio times, or less than 1/jump_ratio of, last year's, when either is large enough
    to matter (from 2 to 7 conferences is not news)."""
    if max(value, before) < catalog.jump_min_value:
        return False
    low, high = sorted((value, before))
    return low == 0 or high > catalog.jump_ratio * low


def token_problems(sub: Submitted, secret: str, *, filename: str, form_version: int, required: bool = True,
                   unit_code: str | None = None, period: str | None = None,
                   unit_name: str | None = None) -> list[Problem]:
    """The one token check, as problems (rules ``token_missing``, ``form_version``, ``token_invalid``).

    The intake and ``baocao validate`` both call it with the identity the intake uses
    (:func:`baocao.intake.pipeline.form_identity`: the unit code stripped and upper-cased, the
    parsed period), so a file gets the same answer from both. Without them it checks the form's own
    unit and period as typed. It never says which part of the token is wrong and never repeats the
    expected token.
    """
    sheet = SHEET_INFO if sub.fmt == "xlsx" else None
    unit_code = unit_code or (sub.unit_code or "").strip().upper() or None
    period = period or (sub.period or "").strip() or None
    who = unit_name or "đơn vị ghi trên biểu mẫu"  # the name, never the code (the caller knows the tree)
    again = "Đề nghị đơn vị dùng đúng biểu mẫu đã được gửi cho đơn vị."
    shown = (sub.token or "")[:8] + "…"
    if not sub.token:
        if not required:
            return []
        return [make_problem("error", filename, "token_missing",
                             f"biểu mẫu của {who} không có mã xác thực. {again}", sheet=sheet)]
    if not unit_code or not period:
        return [make_problem("error", filename, "token_invalid",
                             "thiếu mã đơn vị hoặc kỳ báo cáo nên không kiểm tra được mã xác thực. " + again,
                             sheet=sheet, value=shown)]
    claimed = token_version(sub.token)
    if claimed is not None and claimed != form_version:
        return [make_problem("error", filename, "form_version",
                             f"biểu mẫu của {who} là phiên bản {claimed}, đã cũ (phiên bản hiện hành là "
                             f"{form_version}). Đề nghị đơn vị điền vào biểu mẫu mới nhất đã được gửi cho đơn vị.",
                             sheet=sheet, value=shown)]
    if not verify_token(secret, sub.token, unit_code, period, form_version):
        return [make_problem("error", filename, "token_invalid",
                             f"mã xác thực không đúng với {who} và kỳ {_period_vi(period)} (biểu mẫu của đơn vị khác, của kỳ "
                             f"khác hoặc đã bị sửa). {again}", sheet=sheet, value=shown)]
    return []


def _period_vi(code: str) -> str:
    """ "6 tháng đầu năm 2026": the period in words; text that is no period, quoted as the clerk wrote it."""
    try:
        return Period.parse(code).label_vi
    except PeriodError:
        return f"“{code}”"


def has_errors(problems: Iterable[Problem]) -> bool:
    """Whether the submission must be sent back (any error; warnings alone do not)."""
    return any(p.severity == "error" for p in problems)


def summary_vi(problems: Iterable[Problem]) -> str:
    """The problems as a plain-text Vietnamese list for the reply email: errors first, then warnings."""
    items = list(problems)
    errors = [p for p in items if p.severity == "error"]
    warnings = [p for p in items if p.severity != "error"]
    if not items:
        return "Không phát hiện lỗi hoặc điểm cần lưu ý trong báo cáo."
    lines = []
    if errors:
        lines.append(f"Báo cáo có {len(errors)} lỗi cần sửa rồi gửi lại:")
        lines.extend(f"{i}. {p.message_vi}" for i, p in enumerate(errors, start=1))
    if warnings:
        if lines:
            lines.append("")
        lines.append(f"Điểm cần lưu ý ({len(warnings)}), đề nghị kiểm tra lại:")
        lines.extend(f"{i}. {p.message_vi}" for i, p in enumerate(warnings, start=1))
    return "\n".join(lines)
