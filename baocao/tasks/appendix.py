"""A plan's task appendix (Phụ lục "Phân công nhiệm vụ cụ thể"): read it, then resolve it to units.

Two steps, kept apart because they fail for different reasons and are fixed by different people:

1. Reading (:func:`read_appendix_text`, :func:`read_appendix_xlsx`, :func:`read_appendix`) turns a
   pasted or typed table into :class:`AppendixRow` values. The seed appendices are tab-separated
   text after a "PHỤ LỤC" heading, with the header repeated after each page break and rows split
   across a page break: the continuation row has an empty STT cell and its cells continue the
   previous row's cells. Markdown pipe tables and XLSX sheets with the same columns (in any order)
   read the same way.
2. Resolving (:func:`resolve_tasks`) maps each "Cơ quan chủ trì" / "Cơ quan phối hợp" cell to unit
   codes of the plan's subtree, using the units' names and aliases from the hierarchy plus the
   per-plan rules of ``config/task_bodies.toml`` (groups such as "Các phòng, đơn vị", extra
   aliases, and bodies outside the hierarchy). It is all or nothing: every problem in the appendix
   is collected and reported at once, so an office fixes its file in one pass instead of one error
   per upload.

Everything here is pure (no Prefect, no database): callers store the result.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from baocao.errors import AppendixImportError
from baocao.rules.hierarchy import Hierarchy
from baocao.tasks.duephrases import Due, DuePhraseError
from baocao.tasks.names import SEPARATORS, clean_cell, join_continuation, name_key, name_tokens
from baocao.tasks.recurrence import read_task_due
from baocao.tasks.taskbodies import BodyRules, TaskBodiesError, require_unit

# ----------------------------------------------------------------------------- data types

FIELDS = ("number", "content", "lead", "partners", "product", "deadline")
# The column titles as the plans print them: used in messages to the office.
COLUMN_VI = {
    "number": "STT",
    "content": "Nội dung công việc",
    "lead": "Cơ quan chủ trì",
    "partners": "Cơ quan phối hợp",
    "product": "Sản phẩm/Kết quả",
    "deadline": "Thời hạn",
}
_REQUIRED_COLUMNS = ("number", "content", "lead", "deadline")


@dataclass(frozen=True)
class AppendixRow:
    """One task row as written, with split rows already merged. ``line`` is where the row starts
    (text line or sheet row, 1-based), so that messages point at the right place."""

    number: int
    content: str
    lead: str
    partners: str
    product: str
    deadline: str
    line: int


@dataclass(frozen=True)
class ImportedTask:
    """A task of a plan, with its bodies resolved to unit codes and its deadline read."""

    plan: str
    number: int
    content: str
    lead_text: str
    partners_text: str
    product: str
    deadline_text: str
    due: Due
    lead_units: tuple[str, ...]
    partner_units: tuple[str, ...]
    external_bodies: tuple[str, ...]
    due_basis: str = "deadline"  # where ``due`` was read: "deadline", "product" or "override" (config)


@dataclass(frozen=True)
class AppendixProblem:
    """One thing wrong in an appendix: where (line, STT, column), the text as written, and why."""

    line: int
    number: int | None
    column: str
    text: str
    message_vi: str

    def __str__(self) -> str:
        where = f"dòng {self.line}" if self.line else "tệp"
        if self.number is not None:
            where += f", STT {self.number}"
        if self.column:
            where += f", cột «{self.column}»"
        shown = f" «{self.text}»" if self.text and f"«{self.text}»" not in self.message_vi else ""
        return f"{where}:{shown} {self.message_vi}"


# ----------------------------------------------------------------------------- reading: shared

_LABELS: dict[str, tuple[str, ...]] = {
    "number": ("stt", "tt", "số tt", "số thứ tự"),
    "content": ("nội dung", "nhiệm vụ", "tên nhiệm vụ"),
    "lead": ("cơ quan chủ trì", "đơn vị chủ trì", "chủ trì"),
    "partners": ("cơ quan phối hợp", "đơn vị phối hợp", "phối hợp"),
    "product": ("sản phẩm", "kết quả"),
    "deadline": ("thời hạn", "thời gian hoàn thành", "thời gian"),
}
_LABEL_KEYS = {f: tuple(name_key(label) for label in labels) for f, labels in _LABELS.items()}
_NUMBER = re.compile(r"^(\d+)\.?$")
_ROMAN = re.compile(r"^[IVXL]+\.?$")


def _label_of(cell: str) -> str | None:
    key = name_key(cell)
    for f, options in _LABEL_KEYS.items():
        for option in options:
            exact = f == "number"  # "TT" must not match a cell that merely starts with "tt..."
            if key == option or (not exact and key[: len(option)] == option):
                return f
    return None


def _header_map(cells: Sequence[str]) -> dict[str, int] | None:
    """Column index of each field if ``cells`` is a header row (STT, content, lead and deadline found)."""
    found: dict[str, int] = {}
    for i, cell in enumerate(cells):
        label = _label_of(cell) if cell else None
        if label is not None and label not in found:
            found[label] = i
    return found if all(f in found for f in _REQUIRED_COLUMNS) else None


@dataclass
class _Draft:
    line: int
    number: int
    cells: dict[str, str] = field(default_factory=dict)


def _assemble(
    records: Iterable[tuple[int, Sequence[str]]], problems: list[AppendixProblem], what: str
) -> list[AppendixRow]:
    """Turn raw table lines into rows: find headers, skip repeats, merge continuation rows."""
    columns: dict[str, int] | None = None
    drafts: list[_Draft] = []
    for line, raw in records:
        cells = [clean_cell(c) for c in raw]
        if not any(cells):
            continue
        header = _header_map(cells)
        if header is not None:
            columns = header  # a repeated header after a page break may even reorder columns
            continue
        if columns is None:
            continue  # text above the table (titles, "Kèm theo Kế hoạch số ...")
        width = max(columns.values()) + 1
        extra = [c for c in cells[width:] if c]
        if extra:
            problems.append(AppendixProblem(
                line, None, "", extra[0], "dòng có nhiều ô hơn dòng tiêu đề; kiểm tra dấu tab giữa các cột."
            ))
        values = {f: (cells[i] if i < len(cells) else "") for f, i in columns.items()}
        stt = values.get("number", "")
        if not stt:
            if not drafts:
                problems.append(AppendixProblem(
                    line, None, COLUMN_VI["number"], "",
                    "dòng không có STT nhưng không có dòng nào trước nó để nối tiếp.",
                ))
                continue
            prev = drafts[-1]
            for f, v in values.items():
                if f != "number":
                    prev.cells[f] = join_continuation(prev.cells.get(f, ""), v)
            continue
        match = _NUMBER.match(stt)
        if match is None:
            if _ROMAN.match(stt) and not values.get("lead") and not values.get("deadline"):
                continue  # a section heading row ("I", "II" ...), not a task
            problems.append(AppendixProblem(
                line, None, COLUMN_VI["number"], stt, "STT phải là một số nguyên dương (1, 2, 3 ...)."
            ))
            continue
        drafts.append(_Draft(line, int(match.group(1)), {f: v for f, v in values.items() if f != "number"}))
    if columns is None:
        labels = ", ".join(COLUMN_VI[f] for f in FIELDS)
        problems.append(AppendixProblem(
            0, None, "", "",
            f"không tìm thấy dòng tiêu đề của bảng phân công nhiệm vụ {what} (cần các cột: {labels}).",
        ))
    elif not drafts and not problems:
        problems.append(AppendixProblem(0, None, "", "", "bảng phân công nhiệm vụ không có dòng nào."))
    return [
        AppendixRow(
            number=d.number, content=d.cells.get("content", ""), lead=d.cells.get("lead", ""),
            partners=d.cells.get("partners", ""), product=d.cells.get("product", ""),
            deadline=d.cells.get("deadline", ""), line=d.line,
        )
        for d in drafts
    ]


# ----------------------------------------------------------------------------- reading: text

_PIPE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _appendix_start(lines: Sequence[str]) -> int:
    """Index of the first line after the "PHỤ LỤC" heading (upper case, as printed), else 0.

    Upper case only: the plan's body mentions "(Có Phụ lục ... kèm theo)" in running text.
    """
    for i, line in enumerate(lines):
        if clean_cell(line).lstrip("#*_ ").startswith("PHỤ LỤC"):
            return i + 1
    return 0


def _split_line(line: str) -> list[str] | None:
    """Cells of a table line (tab-separated, or a markdown pipe row); None for any other line."""
    if "\t" in line:
        return line.rstrip("\r\n").split("\t")
    stripped = line.strip()
    if stripped.startswith("|"):
        if _PIPE_RULE.match(stripped):
            return None
        inner = stripped[1:-1] if stripped.endswith("|") and len(stripped) > 1 else stripped[1:]
        return inner.split("|")
    return None


def read_appendix_text(text: str, *, source: str = "") -> list[AppendixRow]:
    """Read a tab-separated (or markdown pipe) appendix table from a plan's text.

    Lines that are not table lines (titles, blank lines, page numbers) are skipped; a row without
    STT continues the previous row across a page break. Raises :class:`AppendixImportError` with
    every structural problem (no header, bad STT, orphan continuation).
    """
    lines = unicodedata.normalize("NFC", text.lstrip("\ufeff")).splitlines()
    start = _appendix_start(lines)
    records = []
    for i in range(start, len(lines)):
        cells = _split_line(lines[i])
        if cells is not None:
            records.append((i + 1, cells))
    problems: list[AppendixProblem] = []
    rows = _assemble(records, problems, "sau tiêu đề «PHỤ LỤC»" if start else "")
    if problems:
        raise AppendixImportError(problems, source=source)
    return rows


# ----------------------------------------------------------------------------- reading: XLSX


def _cell_text(value: Any) -> str:
    """A sheet cell as the text a person sees: 1.0 -> "1", a date -> "10/05/2026"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "x" if value else ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return f"{value.day:02d}/{value.month:02d}/{value.year}"
    return str(value)


def read_appendix_xlsx(data: bytes, *, source: str = "") -> list[AppendixRow]:
    """Read the appendix from the first sheet of a workbook; the header row is found by its labels,
    so columns may come in any order and titles may sit above the table."""
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        sheet = CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0)
        table = sheet.to_python(skip_empty_area=False)
    except (CalamineError, ValueError, OSError) as exc:
        problem = AppendixProblem(0, None, "", "", f"không đọc được tệp Excel ({type(exc).__name__}: {exc}).")
        raise AppendixImportError([problem], source=source) from None
    records = [(i + 1, [_cell_text(v) for v in row]) for i, row in enumerate(table)]
    problems: list[AppendixProblem] = []
    rows = _assemble(records, problems, "trong trang tính đầu tiên")
    if problems:
        raise AppendixImportError(problems, source=source)
    return rows


_TEXT_SUFFIXES = (".txt", ".tsv", ".md")


def read_appendix(path: Path) -> list[AppendixRow]:
    """Read an appendix file by its extension: .txt/.tsv/.md (UTF-8 text) or .xlsx."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _TEXT_SUFFIXES:
        return read_appendix_text(path.read_text(encoding="utf-8-sig"), source=str(path))
    if suffix == ".xlsx":
        return read_appendix_xlsx(path.read_bytes(), source=str(path))
    problem = AppendixProblem(
        0, None, "", path.name, "định dạng tệp không được hỗ trợ; hãy dùng .xlsx, .txt, .tsv hoặc .md."
    )
    raise AppendixImportError([problem], source=str(path))


# ----------------------------------------------------------------------------- resolving bodies


@dataclass(frozen=True)
class _Target:
    """What a known name stands for: units, an external body, or several units (ambiguous)."""

    codes: tuple[str, ...] = ()
    external: bool = False
    ambiguous: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Body:
    text: str
    target: _Target | None  # None: unknown


class _Names:
    """Known body names of one plan's subtree, matched greedily on folded tokens."""

    def __init__(self, rules: BodyRules, root: str, hierarchy: Hierarchy) -> None:
        from_units: dict[tuple[str, ...], set[str]] = {}
        for unit in hierarchy.walk(root):
            for name in (unit.name, *unit.aliases):
                key = name_key(name)
                if key:
                    from_units.setdefault(key, set()).add(unit.code)
        table: dict[tuple[str, ...], _Target] = {
            key: _Target(codes=tuple(codes)) if len(codes) == 1 else _Target(ambiguous=tuple(sorted(codes)))
            for key, codes in from_units.items()
        }
        # The plan's own rules win over the units' names: they are the office's word for this appendix.
        for name, code in rules.aliases.items():
            key = f"{rules.plan}.aliases.{name!r}"
            require_unit(code, hierarchy, rules.source, key)
            if code != root and not hierarchy.is_descendant(code, root):
                raise TaskBodiesError(rules.source, key, f"{code} is not under {root}")
            table[name_key(name)] = _Target(codes=(code,))
        for name in rules.groups:
            table[name_key(name)] = _Target(codes=rules.group_units(name, hierarchy))
        for name in rules.external:
            table[name_key(name)] = _Target(external=True)
        self.table = table
        self.longest = max((len(k) for k in table), default=0)

    def match(self, keys: Sequence[str], i: int) -> tuple[int, _Target] | None:
        """The longest known name starting at ``keys[i]`` that ends at a separator or the end of the cell.

        A parenthesised abbreviation right after a name ("Phòng Văn hóa - Xã hội (VHXH)") belongs to it.
        """
        for length in range(min(self.longest, len(keys) - i), 0, -1):
            target = self.table.get(tuple(keys[i:i + length]))
            if target is None:
                continue
            j = i + length
            if j < len(keys) and keys[j] == "(" and ")" in keys[j:]:
                j = keys.index(")", j) + 1
            if j == len(keys) or keys[j] in SEPARATORS:
                return j, target
        return None

    def split(self, text: str) -> list[_Body]:
        """Cut a cell into bodies: known names first (so "Các sở, ban, ngành" stays one), then the
        separators ";", "," and "và" between them; unknown text runs to the next ";" or known name."""
        text = clean_cell(text)
        tokens = name_tokens(text)
        keys = [t.key for t in tokens]
        bodies: list[_Body] = []
        i = 0
        while i < len(keys):
            if keys[i] in SEPARATORS:
                i += 1
                continue
            found = self.match(keys, i)
            if found is not None:
                j, target = found
                bodies.append(_Body(text[tokens[i].start:tokens[j - 1].end], target))
                i = j
                continue
            j = i + 1
            while j < len(keys) and keys[j] != ";":
                if keys[j] in SEPARATORS and j + 1 < len(keys) and self.match(keys, j + 1) is not None:
                    break
                j += 1
            bodies.append(_Body(text[tokens[i].start:tokens[j - 1].end], None))
            i = j
        return bodies


def _resolve_cell(
    names: _Names, row: AppendixRow, column: str, text: str, problems: list[AppendixProblem]
) -> tuple[list[str], list[str]]:
    codes: list[str] = []
    external: list[str] = []
    for body in names.split(text):
        target = body.target
        if target is None:
            problems.append(AppendixProblem(
                row.line, row.number, COLUMN_VI[column], body.text,
                "không xác định được cơ quan này; thêm tên vào bí danh (aliases) của đơn vị trong "
                "config/hierarchy.toml hoặc vào config/task_bodies.toml (groups, aliases, external).",
            ))
        elif target.ambiguous:
            problems.append(AppendixProblem(
                row.line, row.number, COLUMN_VI[column], body.text,
                f"tên này trùng với nhiều đơn vị ({', '.join(target.ambiguous)}); ghi rõ tên đơn vị.",
            ))
        elif target.external:
            external.append(body.text)
        else:
            codes.extend(target.codes)
    return list(dict.fromkeys(codes)), external


def _number_problems(rows: Sequence[AppendixRow]) -> list[AppendixProblem]:
    """Duplicate STT, and numbers missing from 1..max: a row lost in copying must not go unnoticed."""
    problems = []
    first_line: dict[int, int] = {}
    for row in rows:
        if row.number in first_line:
            problems.append(AppendixProblem(
                row.line, row.number, COLUMN_VI["number"], str(row.number),
                f"STT {row.number} bị trùng (đã có ở dòng {first_line[row.number]}).",
            ))
        else:
            first_line[row.number] = row.line
    if rows:
        highest = max(first_line)
        for n in range(1, highest + 1):
            if n not in first_line:
                after = [r.line for r in rows if r.number > n]
                problems.append(AppendixProblem(
                    min(after) if after else 0, n, COLUMN_VI["number"], "",
                    f"thiếu nhiệm vụ STT {n} (STT phải liên tục từ 1 đến {highest}).",
                ))
    return problems


def resolve_tasks(
    rows: list[AppendixRow], *, plan: str, root: str, hierarchy: Hierarchy, rules: BodyRules, year: int
) -> list[ImportedTask]:
    """Resolve every row's bodies to units of ``root``'s subtree and read its deadline and recurrence
    (:func:`~baocao.tasks.recurrence.read_task_due`: Thời hạn and Sản phẩm together, or the plan's override).

    All or nothing: every problem (unknown body, unreadable deadline, duplicate or missing STT,
    missing lead) is collected and raised together as :class:`AppendixImportError`; a task list is
    returned only when every row resolved. Rule files naming units that do not exist raise
    :class:`TaskBodiesError` instead: that is the configuration's fault, not the appendix's.
    """
    if root not in hierarchy:
        raise ValueError(f"root {root!r} is not a unit of the hierarchy")
    names = _Names(rules, root, hierarchy)
    problems = _number_problems(rows)
    tasks = []
    for row in rows:
        if not row.lead:
            problems.append(AppendixProblem(
                row.line, row.number, COLUMN_VI["lead"], "", "chưa ghi cơ quan chủ trì."
            ))
        lead_units, lead_external = _resolve_cell(names, row, "lead", row.lead, problems)
        partner_units, partner_external = _resolve_cell(names, row, "partners", row.partners, problems)
        try:
            due, basis = read_task_due(row.deadline, row.product, default_year=year,
                                       override=rules.deadlines.get(row.number))
        except DuePhraseError as exc:
            problems.append(AppendixProblem(
                row.line, row.number, COLUMN_VI["deadline"], row.deadline, exc.message_vi
            ))
            continue
        tasks.append(ImportedTask(
            plan=plan, number=row.number, content=row.content, lead_text=row.lead,
            partners_text=row.partners, product=row.product, deadline_text=row.deadline, due=due,
            lead_units=tuple(lead_units), partner_units=tuple(partner_units),
            external_bodies=tuple(dict.fromkeys(lead_external + partner_external)), due_basis=basis,
        ))
    if problems:
        problems.sort(key=lambda p: (p.line, p.number or 0))
        raise AppendixImportError(problems)
    return tasks
