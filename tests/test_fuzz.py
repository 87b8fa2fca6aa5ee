"""Hostile input, fuzzed: the XLSX and CSV readers and the deadline phrase parser never crash, never hang,
stay within a fixed memory bound, and an attachment over the configured size is refused and recorded.

The corpus of tests/data/bad (test_bad_files.py) holds one file per known trick; here hypothesis
builds thousands more around them, from a real filled form:

* XLSX: the form's zip members are mutated (bytes flipped, cut, spliced, swapped, dropped, renamed,
  XML and hostile cells injected, numbers replaced by extreme ones) and zipped again, stored or deflated;
* the pre-check that keeps calamine from allocating a dense range of billions of cells is checked
  against calamine itself: for every sheet it lets through, calamine's range is within its bound;
* CSV: text with BOMs, separators, quotes, line ends, encodings, and values people (or attackers) type;
* deadline phrases: Vietnamese-ish phrases from the plans' grammar, mangled, and checked against an
  oracle where the phrase is well formed.

Budgets are fixed: 200 examples per property by default, 5,000 with BAOCAO_SOAK=1 (and a random seed
instead of the derandomised one CI uses). Hangs are caught by pytest-timeout on each test, not by
timing calls; memory is measured in a child process (peak RSS growth), never in this one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import unicodedata
import zipfile
from calendar import monthrange
from datetime import date
from functools import cache
from pathlib import Path

import pytest
import python_calamine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from baocao.intake.pipeline import Incoming, take_in
from baocao.intake.reader import read_submission
from baocao.intake.results import LIMITS, Problem, Submitted, location_vi
from baocao.intake.safety import _sheet_bounds
from baocao.opening.forms import SHEET_COUNTS
from baocao.opening.tokens import make_token
from baocao.rules.config import Config, load_config
from baocao.rules.formatting import number_vi
from baocao.rules.periods import Period
from baocao.store.db import AuditEvent, Database, OutboxMessage, ReceivedFile, Submission
from baocao.tasks.duephrases import RECURRENCES, Due, DuePhraseError, parse_due_phrase
from tests.data.make_bad_files import CATALOG, PERIOD, SECRET, UNIT, VERSION, counts_part, filled, with_macro
from tests.data.make_bad_files import external_link as add_external_link

SOAK = os.environ.get("BAOCAO_SOAK") == "1"
EXAMPLES = 5_000 if SOAK else 200
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=not SOAK, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture],
)
# `make soak` selects -m soak: the marker is added only with BAOCAO_SOAK=1 (see tests/test_crash.py).
pytestmark = [pytest.mark.soak] if SOAK else []


# Generous per-test bounds (a hang fails the test, a slow machine does not): pytest-timeout, not a clock.
TIMEOUT = 1_800 if SOAK else 240

VIETNAMESE = re.compile(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹàáèéìíòóùúýãõĩũ]", re.I)
TRIED: dict[str, int] = {}
"""How many inputs each property was run on (printed at the end of the module, checked by the last test)."""


def _tried(name: str) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1


# ----------------------------------------------------------------------------------------- the property
class _Unexpected(logging.Handler):
    """Collects what read_submission's last-resort handler logs: an exception it did not expect."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def unexpected() -> _Unexpected:
    handler = _Unexpected()
    logger = logging.getLogger("baocao.reader")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _calamine_failure(record: logging.LogRecord) -> bool:
    """A panic or error raised inside calamine (Rust) is an unreadable file; a Python exception of
    our own code reaching the last-resort handler is a bug the fuzz must report."""
    if record.exc_info is None or record.exc_info[1] is None:
        return False
    exc = record.exc_info[1]
    module = type(exc).__module__ or ""
    return module.startswith(("python_calamine", "pyo3_runtime")) or isinstance(exc, python_calamine.CalamineError)


def check_read(data: bytes, name: str, unexpected: _Unexpected, *, max_bytes: int = 10_000_000) -> \
        tuple[list[Submitted], list[Problem]]:
    """read_submission on hostile bytes: Problems only, each located and said in Vietnamese."""
    before = len(unexpected.records)
    subs, problems = read_submission(data, name, CATALOG, max_bytes=max_bytes)
    assert isinstance(subs, list) and all(isinstance(s, Submitted) for s in subs)
    assert isinstance(problems, list) and all(isinstance(p, Problem) for p in problems)
    assert subs or any(p.severity == "error" for p in problems), "nothing read and no error said why"
    assert len(problems) <= LIMITS.max_problems + 1
    for p in problems:
        assert p.file == name and p.message_vi.startswith(f"Tệp “{name}”"), p.message_vi
        detail = p.message_vi[len(location_vi(p.file, p.sheet, p.cell, p.code)) + 2:]
        assert VIETNAMESE.search(detail), p.message_vi  # what is wrong is said in Vietnamese, after where
        assert p.severity in ("error", "warning")
    for s in subs:
        assert all(v is None or (type(v) is int and v >= 0) for v in s.values.values()), s.values
        if s.period is not None:
            assert Period.parse(s.period).code == s.period
    bugs = [r for r in unexpected.records[before:] if not _calamine_failure(r)]
    assert not bugs, [f"{r.getMessage()}: {r.exc_info[1]!r}" if r.exc_info else r.getMessage() for r in bugs]
    return subs, problems


# ----------------------------------------------------------------------------------------- XLSX
@cache
def good_form() -> bytes:
    return filled()


@cache
def good_members() -> tuple[tuple[str, bytes], ...]:
    with zipfile.ZipFile(io.BytesIO(good_form())) as zf:
        return tuple((info.filename, zf.read(info.filename)) for info in zf.infolist())


@cache
def counts_member() -> str:
    """The zip member of the Chỉ tiêu sheet (found once: openpyxl opens the workbook to say)."""
    return counts_part(good_form())


def zip_members(members: list[tuple[str, bytes]], *, stored: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as zf:
        for name, content in members:
            zf.writestr(zipfile.ZipInfo(name, (2026, 6, 1, 8, 0, 0)), content)
    return out.getvalue()


# Cells that must never make calamine build a huge range, written the ways calamine accepts.
HUGE_CELLS = [
    b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>',
    b'<row r="9"><c r="xfd1048576"><v>1</v></c></row>',  # lower case
    b'<row r="9"><c x="a>b" r="XFD1048576"><v>1</v></c></row>',  # ">" in an earlier attribute value
    b'<row r="9"><c r="A9" r="XFD1048576"><v>1</v></c></row>',  # calamine takes the last r
    b'<row r="9"><c\tr="XFD1048576"><v>1</v></c></row>',
    b'<row r="9"><c r = \'XFD1048576\'><v>1</v></c></row>',
    b'<row><c r="XFC1048576"/><c><v>1</v></c></row>',  # a self-closing cell places the next one
    b'<row r="9"><c r="A0000000000000001048576"><v>1</v></c></row>',
]
SNIPPETS = [
    *HUGE_CELLS,
    b'<!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa">]>',
    b"<x>" * 150, b"<c " * 300, b'<c r="A1' * 300, b'<c r="D2">' * 120 + b"</x>",
    b'<c r="D2" t="s"><v>4294967296</v></c>', b'<c r="D2" t="s"><v>-1</v></c>',
    b'<c r="D2" t="e"><v>#DIV/0!</v></c>', b'<c r="D2" t="b"><v>7</v></c>', '<c r="D2" t="d"><v>hôm qua</v></c>'.encode(),
    b'<c r="D2"><v>1e400</v></c>', b'<c r="D2"><v>NaN</v></c>', b'<c r="D2"><v>-0</v></c>',
    b'<c r="D2"><f>HYPERLINK("http://evil.example")</f></c>', b'<c r="D2" t="str"><f>1/0</f><v>#DIV/0!</v></c>',
    b'<c r="D2" t="inlineStr"><is><t>' + "Tứ Kỳ ".encode() * 2_000 + b"</t></is></c>",
    b"<![CDATA[<c r=\"XFD1048576\"><v>1</v></c>]]>", b'<!-- <c r="XFD1048576"> -->', b"&#0;", b"&undefined;",
    b'<?xml version="1.0" encoding="UTF-16"?>', b"\xff\xfe\x00", b"</sheetData></worksheet><worksheet>",
    b'<sheet name="Ch\xe1\xbb\x89 ti\xc3\xaau" sheetId="9" r:id="rId1"/>',
    b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    b'externalLink" Target="file:///C:/x.xlsx" TargetMode="External"/>',
    b'<Override PartName="/xl/vbaProject.bin" ContentType="application/vnd.ms-office.vbaProject"/>',
]
CELL_TEXTS = [
    "12", "1.234", "12,5", "-3", "abc", "", " ", "=1+1", "#REF!", "2025-H1", "2026-Q1", "2026-H2", "X11074", "X99999",
    "KHONG_CO", "HN_TONG", "TIN_BAI", "Mã", "Giá trị", "Chỉ tiêu", "Thông tin", "Mã đơn vị", "Mã kỳ báo cáo",
    "Phiên bản biểu mẫu", "Mã xác thực", "Đã hoàn thành", "Hoàn thành", "STT", "Trạng thái", "v1-" + "a" * 26,
    "v2-" + "a" * 26, "9" * 4_400, "<script>alert(1)</script>", "Tứ Kỳ " * 500,
]
EXTREME_NUMBERS = [b"0", b"-1", b"1048576", b"1048577", b"16384", b"2147483648", b"18446744073709551616",
                   b"9" * 30, b"1e308", b"0.5", b""]


@st.composite
def mutated_xlsx(draw: st.DrawFn) -> tuple[bytes, str]:
    members = list(good_members())
    steps = draw(st.integers(1, 3))
    described = []
    sheets = [i for i, (n, _) in enumerate(members) if n.startswith("xl/worksheets/")]
    counts = next(i for i, (n, _) in enumerate(members) if n == counts_member())
    for _ in range(steps):
        # Mostly the sheets (the figures above all), mostly changes that keep the XML readable: so that the
        # fuzz gets past the zip checks into what the reader does with cells (see the sanity test below).
        i = draw(st.sampled_from([counts, counts, *sheets, None]))
        i = draw(st.integers(0, len(members) - 1)) if i is None else i
        name, content = members[i]
        kind = draw(st.sampled_from(["cell"] * 8 + ["numbers", "numbers", "inject", "inject", "flip", "truncate",
                                                    "splice", "swap", "drop", "rename", "replace"]))
        described.append(f"{kind}:{name}")
        if kind == "cell":  # what a person types over a cell: text, a number, a date, TRUE, an error
            cells = list(re.finditer(rb'<c r="([A-Z]+[0-9]+)"[^>]*>.*?</c>', content))
            if cells:
                for m in sorted(draw(st.lists(st.sampled_from(cells), min_size=1, max_size=5,
                                              unique_by=lambda m: m.start())), key=lambda m: m.start(), reverse=True):
                    ref = m.group(1)
                    typed = draw(st.sampled_from(["text", "text", "number", "bool", "error", "empty"]))
                    if typed == "text":
                        text = draw(st.sampled_from(CELL_TEXTS) | st.text(max_size=40))
                        escaped = text.replace("&", "&amp;").replace("<", "&lt;").encode("utf-8", "replace")
                        escaped = re.sub(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]", b"", escaped)
                        cell = b'<c r="%s" t="inlineStr"><is><t>%s</t></is></c>' % (ref, escaped)
                    elif typed == "number":
                        number = draw(st.sampled_from(EXTREME_NUMBERS[:-1] + [b"12.5", b"-3", b"1e3", b"20.0"]))
                        cell = b'<c r="%s"><v>%s</v></c>' % (ref, number)
                    elif typed == "bool":
                        cell = b'<c r="%s" t="b"><v>1</v></c>' % ref
                    elif typed == "error":
                        cell = b'<c r="%s" t="e"><f>1/0</f><v>#DIV/0!</v></c>' % ref
                    else:
                        cell = b'<c r="%s"/>' % ref
                    content = content[: m.start()] + cell + content[m.end():]
                members[i] = (name, content)
        elif kind == "flip" and content:
            buf = bytearray(content)
            for pos, byte in draw(st.lists(st.tuples(st.integers(0, len(buf) - 1), st.integers(0, 255)),
                                           min_size=1, max_size=16)):
                buf[pos] = byte
            members[i] = (name, bytes(buf))
        elif kind == "truncate":
            members[i] = (name, content[: draw(st.integers(0, len(content)))])
        elif kind == "splice" and content:
            a = draw(st.integers(0, len(content)))
            b = draw(st.integers(0, len(content)))
            members[i] = (name, content[:a] + content[b: b + draw(st.integers(1, 400))] + content[a:])
        elif kind == "inject":
            tags = [m.start() for m in re.finditer(rb"<", content)] or [0]
            at = draw(st.sampled_from(tags))
            snippet = draw(st.one_of(st.sampled_from(SNIPPETS), st.binary(min_size=1, max_size=64)))
            members[i] = (name, content[:at] + snippet + content[at:])
        elif kind == "numbers":
            numbers = list(re.finditer(rb"[0-9]+", content))
            if numbers:
                chosen = draw(st.lists(st.sampled_from(numbers), min_size=1, max_size=4, unique_by=lambda m: m.start()))
                buf = content
                for m in sorted(chosen, key=lambda m: m.start(), reverse=True):
                    buf = buf[: m.start()] + draw(st.sampled_from(EXTREME_NUMBERS)) + buf[m.end():]
                members[i] = (name, buf)
        elif kind == "swap":
            j = draw(st.integers(0, len(members) - 1))
            members[i], members[j] = (name, members[j][1]), (members[j][0], content)
        elif kind == "drop" and len(members) > 1:
            members.pop(i)
        elif kind == "rename":
            new = draw(st.sampled_from([name.upper(), "../" + name, name + "/", "xl/vbaProject.bin",
                                        "xl/externalLinks/externalLink1.xml", "mimetype", name.replace("xl/", "")]))
            if new.lower() not in {n.lower() for n, _ in members}:
                members[i] = (new, content)
        elif kind == "replace":
            members[i] = (name, draw(st.sampled_from([b"", b"<", b"\x00" * 100, good_members()[0][1],
                                                      b'<?xml version="1.0"?>'])))
    return zip_members(members, stored=draw(st.booleans())), " ".join(described)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
@FUZZ
@given(case=mutated_xlsx(), suffix=st.sampled_from([".xlsx", ".XLSX", ".xlsm", ".csv", ""]))
def test_mutated_forms_give_problems_never_exceptions(case: tuple[bytes, str], suffix: str,
                                                      unexpected: _Unexpected) -> None:
    data, _how = case
    _tried("xlsx")
    check_read(data, f"BaoCao_{PERIOD}_{UNIT}{suffix}", unexpected)


@pytest.mark.timeout(TIMEOUT)
@FUZZ
@given(data=st.binary(min_size=0, max_size=4_000).map(lambda b: b"PK\x03\x04" + b))
def test_random_zip_like_bytes_give_problems(data: bytes, unexpected: _Unexpected) -> None:
    _tried("zip-bytes")
    check_read(data, "hong.xlsx", unexpected)


def test_the_mutation_strategy_reaches_deep_into_the_reader(unexpected: _Unexpected) -> None:
    """Sanity for the fuzz above: a good form is read without errors, and mutated forms are refused
    for many different reasons, so the mutations reach past the zip checks into the sheets."""
    subs, problems = check_read(good_form(), "tot.xlsx", unexpected)
    assert len(subs) == 1 and not [p for p in problems if p.severity == "error"]
    rules: set[str] = set()

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=mutated_xlsx())
    def collect(case: tuple[bytes, str]) -> None:
        _, found = check_read(case[0], "f.xlsx", unexpected)
        rules.update(p.rule for p in found)

    collect()
    TRIED["fixed:deep"] = 150
    # Rules only met once the cells are read: the figures, the codes, the header, the Thông tin sheet.
    deep = {"non_negative_integer", "required", "unknown_code", "missing_row", "duplicate_code", "missing_header",
            "missing_field", "bad_period", "bad_form_version", "value_without_code", "formula_without_value",
            "bad_status", "bad_task_number", "sheet_too_large"}
    assert len(rules & deep) >= 8, rules


# Sheets built to make a backtracking regex quadratic: 16,000 unclosed '<c r="A1' took 6 s in the size
# pre-check before it was made linear; these hold 20 to 60 times as many, so a quadratic scan would take
# hours and the timeout below fails the test.
PATHOLOGICAL = {
    "unclosed_cells": b"<c " * 1_000_000,
    "unclosed_addresses": b'<c r="A1' * 300_000,
    "unclosed_rows": b"<row " * 600_000,
    "prefixed_cells": b"<x:c " * 600_000,
    "quotes": b'<c x="' * 500_000,
    "commented_cells": b'<!-- <c r="Z9"> -->' * 200_000,  # parsed fine by calamine: the empty-cell scan runs
    "unclosed_values": b'<c r="Z9"></x>' * 200_000,
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_sheets_are_scanned_in_linear_time(name: str, unexpected: _Unexpected) -> None:
    part = counts_member()
    first_value = re.compile(rb'(<c r="D2"[^>]*>)<v>[^<]*</v>')  # left empty: the reader looks for why

    def edit(content: bytes) -> bytes:
        content = first_value.sub(rb"\1", content, count=1)
        return content.replace(b"</sheetData>", PATHOLOGICAL[name] + b"</sheetData>")

    data = zip_members([(n, edit(c) if n == part else c) for n, c in good_members()], stored=True)
    assert len(data) <= 10_000_000
    _tried("fixed:pathological")
    check_read(data, f"{name}.xlsx", unexpected)


def _sheet_variant(content: bytes, how: str) -> bytes:
    tag = re.compile(rb"<(c|row)( [^<>]*?)(/?)>")
    if how == "namespaces":  # what Excel writes on every sheet
        return content.replace(b"<worksheet ", b'<worksheet xmlns:r="http://schemas.openxmlformats.org/officeDocument/'
                               b'2006/relationships" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/'
                               b'2006" xmlns:x14ac="http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac" ', 1)
    if how == "r_last":  # attribute order is free
        def move(m: re.Match[bytes]) -> bytes:
            attrs = re.findall(rb'\s+\S+?="[^"]*"', m.group(2))
            attrs.sort(key=lambda a: a.strip().startswith(b"r="))
            return b"<" + m.group(1) + b"".join(attrs) + m.group(3) + b">"
        return tag.sub(move, content)
    if how == "single_quotes":
        return tag.sub(lambda m: m.group(0).replace(b'"', b"'"), content)
    if how == "whitespace":
        return tag.sub(lambda m: m.group(0).replace(b" ", b"\n\t"), content)
    if how == "formatted_empty_cells":  # a unit put borders around a block: cells with a style, no value
        rows = b"".join(b'<row r="%d">' % r + b"".join(b'<c r="%s%d" s="1"/>' % (col, r) for col in (b"H", b"I", b"J"))
                        + b"</row>" for r in range(40, 48))
        return content.replace(b"</sheetData>", rows + b"</sheetData>")
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["namespaces", "r_last", "single_quotes", "whitespace", "formatted_empty_cells"])
def test_forms_written_differently_are_read_the_same(how: str, unexpected: _Unexpected) -> None:
    """The pre-checks refuse what could blow up, not what another program writes: every sheet of the form,
    written the other ways a valid workbook may be, reads the same figures without an error."""
    expected, _ = check_read(good_form(), "f.xlsx", unexpected)
    data = zip_members([(n, _sheet_variant(c, how) if n.startswith("xl/worksheets/") else c)
                        for n, c in good_members()])
    assert data != good_form()
    subs, problems = check_read(data, "f.xlsx", unexpected)
    assert [p.message_vi for p in problems if p.severity == "error"] == []
    assert subs[0].values == expected[0].values and subs[0].token == expected[0].token
    assert subs[0].texts == expected[0].texts


# ----------------------------------------------------------------------------------------- the pre-check vs calamine
ADDRESS_STYLES = ["plain", "lower", "mixed", "spaces", "single", "after_gt", "after_lt", "duplicate", "tab",
                  "prefixed", "none", "self_closing", "leading_zeros"]


def _column(n: int) -> str:
    letters = ""
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


@st.composite
def odd_sheet(draw: st.DrawFn) -> bytes:
    """A worksheet whose cells are addressed the ways calamine accepts, within a few thousand rows and a
    few hundred columns (so that calamine can always be run on it safely, to compare)."""
    rows = []
    for _ in range(draw(st.integers(1, 8))):
        r = draw(st.integers(1, 3_000))
        row_attr = draw(st.sampled_from([f' r="{r}"', "", f" r='{r}'", f' spans="1:3" r="{r}"']))
        cells = []
        for _ in range(draw(st.integers(1, 5))):
            c = draw(st.integers(1, 260))
            ref = f"{_column(c)}{draw(st.sampled_from([r, draw(st.integers(1, 3_000))]))}"
            style = draw(st.sampled_from(ADDRESS_STYLES))
            value = "<v>1</v>"
            attr = {
                "plain": f' r="{ref}"', "lower": f' r="{ref.lower()}"', "mixed": f' r="{ref[:1].lower()}{ref[1:]}"',
                "spaces": f' r = "{ref}"', "single": f" r='{ref}'", "after_gt": f' x="a>b" r="{ref}"',
                "after_lt": f' x="a<b" r="{ref}"', "duplicate": f' r="A1" r="{ref}"', "tab": f'\tr="{ref}"',
                "prefixed": f' r="{ref}"', "none": "", "self_closing": f' r="{ref}"',
                "leading_zeros": f' r="{_column(c)}000{ref[len(_column(c)):]}"',
            }[style]
            if style == "prefixed":
                cells.append(f"<x:c{attr}><x:v>1</x:v></x:c>")
            elif style == "self_closing":
                cells.append(f"<c{attr}/>")
            else:
                cells.append(f"<c{attr}>{value}</c>")
        rows.append(f"<row{row_attr}>{''.join(cells)}</row>")
    ns = ('xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
          'xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"')
    return f'<worksheet {ns}><sheetData>{"".join(rows)}</sheetData></worksheet>'.encode()


@pytest.mark.timeout(TIMEOUT)
@FUZZ
@given(sheet=odd_sheet())
def test_the_size_precheck_bounds_what_calamine_allocates(sheet: bytes) -> None:
    """The reader refuses a sheet before calamine opens it when its bound is over the limits, because
    calamine allocates rows x columns at once (XFD1048576: 17 billion cells). The bound is only safe if
    it is never below what calamine really allocates, however the cells are written: checked here
    against calamine on sheets small enough for calamine to open."""
    _tried("precheck")
    part = counts_member()
    data = zip_members([(n, sheet if n == part else c) for n, c in good_members()])
    rows, cols = _sheet_bounds(sheet, LIMITS.max_rows, LIMITS.max_cols)
    book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    try:
        end = book.get_sheet_by_name(SHEET_COUNTS).end
    except python_calamine.CalamineError:
        return  # calamine refuses the sheet: nothing allocated
    if end is not None:
        assert end[0] + 1 <= rows and end[1] + 1 <= cols, (end, (rows, cols))


# ----------------------------------------------------------------------------------------- CSV
HEADER_NAMES = ["ma_don_vi", "ky_bao_cao", "ma_chi_tieu", "gia_tri", "cung_ky_nam_truoc", "ghi_chu", "ma_xac_thuc",
                "Mã đơn vị", "KY", "chi tieu", "token", "don vi", "Giá trị", "\ufeffma_don_vi", "", "x", "gia-tri"]
UNITS = [UNIT, "X11074", "x10714", " X10714 ", "", "X99999", "=cmd|' /C calc'!A0", "X10714\x00", "<script>"]
PERIODS = [PERIOD, "2026-Q1", "2026-h1", " 2026-H1", "2026-H2", "0000-Q1", "99999-Y", "2026", "", "٢٠٢٦-H1"]
VALUES = ["12", "1.234", "1 234", "1,234", "12,5", "12.0", "-3", "−3", "１２", "٣", "1e5", "0x10", "abc", "", " ",
          "9" * 4_400, "0" * 50 + "7", "12 345 678", "1.2.3", "=1+1", "NaN", "inf", "#DIV/0!", "\u00a012\u00a0"]


def _csv_field(text: str, quote: str) -> str:
    if quote == "always" or (quote == "needed" and any(ch in text for ch in ',;\t"\r\n')):
        return '"' + text.replace('"', '""') + '"'
    if quote == "broken":
        return '"' + text
    return text


@st.composite
def csv_file(draw: st.DrawFn) -> bytes:
    sep = draw(st.sampled_from([",", ";", "\t", "|", ", "]))
    quote = draw(st.sampled_from(["needed", "always", "never", "broken"]))
    eol = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    header = draw(st.one_of(
        st.just(["ma_don_vi", "ky_bao_cao", "ma_chi_tieu", "gia_tri", "cung_ky_nam_truoc", "ghi_chu", "ma_xac_thuc"]),
        st.lists(st.sampled_from(HEADER_NAMES), min_size=0, max_size=9),
        st.permutations(["ma_don_vi", "ky_bao_cao", "ma_chi_tieu", "gia_tri"]),
    ))
    codes = [i.code for i in CATALOG.indicators] + ["KHONG_CO", "", "hn_tong"]
    token = make_token(SECRET, UNIT, PERIOD, VERSION)
    cell = st.one_of(
        st.sampled_from(UNITS), st.sampled_from(PERIODS), st.sampled_from(codes), st.sampled_from(VALUES),
        st.sampled_from([token, token.upper(), token[:-1], "v9-" + token[3:]]),
        st.text(max_size=30), st.text(alphabet='",;\t\r\n\x00 \ufeff', max_size=6),
    )
    lines = [header]
    for _ in range(draw(st.integers(0, 40))):
        if draw(st.booleans()):  # a plausible row with some fields changed
            row = [draw(st.sampled_from(UNITS)), draw(st.sampled_from(PERIODS)), draw(st.sampled_from(codes)),
                   draw(st.sampled_from(VALUES)), draw(st.sampled_from(VALUES)), draw(st.text(max_size=20)), token]
            row = row[: len(header)] + [draw(cell) for _ in range(max(0, len(header) - len(row)))]
        else:
            row = draw(st.lists(cell, max_size=10))
        lines.append(row)
    text = eol.join(sep.join(_csv_field(f, quote) for f in line) for line in lines)
    if draw(st.booleans()):
        text += eol
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "cp1258", "latin-1"]))
    data = text.encode(encoding, errors="replace")
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\xef\xbb\xbf\xef\xbb\xbf", b"\xff\xfe", b"\x00"])) + data


@pytest.mark.timeout(TIMEOUT)
@FUZZ
@given(data=csv_file(), name=st.sampled_from(["so_lieu.csv", "SO LIEU.CSV", "so_lieu.txt"]))
def test_csv_text_gives_problems_never_exceptions(data: bytes, name: str, unexpected: _Unexpected) -> None:
    _tried("csv")
    subs, problems = check_read(data, name, unexpected)
    for s in subs:
        assert s.fmt == "csv" and s.unit_code
        if s.period is None:
            # A unit whose every row hid its period still gets an answer: its own errors say why.
            assert any(p.unit == s.unit_code and p.severity == "error" for p in problems), (s, problems)


def test_a_4400_digit_value_is_refused_in_vietnamese(unexpected: _Unexpected) -> None:
    data = f"ma_don_vi,ky_bao_cao,ma_chi_tieu,gia_tri\n{UNIT},{PERIOD},TIN_BAI,{'9' * 4_400}\n".encode()
    _, problems = check_read(data, "so_lieu.csv", unexpected)
    (problem,) = [p for p in problems if p.rule == "non_negative_integer"]
    assert "Exceeds the limit" not in problem.message_vi, problem.message_vi
    assert "quá lớn" in problem.message_vi and VIETNAMESE.search(problem.message_vi), problem.message_vi
    assert len(problem.message_vi) < 400  # the value is shortened, not pasted whole


@pytest.mark.parametrize("value", ["1e300", 1e300, "1.000.000.000.000.000", 10**15])
def test_a_count_beyond_the_largest_is_refused(value: object) -> None:
    from baocao.rules.formatting import MAX_COUNT, parse_vi_int

    assert parse_vi_int(MAX_COUNT) == MAX_COUNT
    if isinstance(value, str) and "e" in value:
        with pytest.raises(ValueError):
            parse_vi_int(value)
        return
    with pytest.raises(ValueError, match="quá lớn"):
        parse_vi_int(value)


# ----------------------------------------------------------------------------------------- deadline phrases
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}
PREFIX_DATE = ["", "Trước ", "trước ngày ", "Đến ", "Chậm nhất là ", "Hạn chót ", "Hoàn thành trước ", "Ngày "]
PREFIX_SPAN = ["", "Trong ", "Đến cuối ", "Hết ", "Chậm nhất cuối ", "Tới hết ", "Cuối "]


def _mangle(draw: st.DrawFn, phrase: str) -> str:
    """What a plan's table cell does to a phrase without changing its meaning."""
    if draw(st.booleans()):
        phrase = draw(st.sampled_from([str.upper, str.lower, str.title, str]))(phrase)
    if draw(st.booleans()):
        phrase = unicodedata.normalize("NFD", phrase)
    pad = st.sampled_from(["", " ", "  ", "\u00a0", "\t", "\n"])
    phrase = draw(pad) + phrase.replace(" ", draw(st.sampled_from([" ", "  ", "\u00a0"]))) + draw(pad)
    return phrase + draw(st.sampled_from(["", ".", ";", " .", "**"]))


@st.composite
def well_formed_phrase(draw: st.DrawFn) -> tuple[str, date | None, str | None]:
    """(phrase, the date it must give or None if it names no real date, recurrence)."""
    year = draw(st.integers(0, 9999) | st.just(0))
    y = f"{year:04d}"

    def last_day(month: int) -> date | None:
        return date(year, month, monthrange(year, month)[1]) if year and 1 <= month <= 12 else None

    kind = draw(st.sampled_from(["date", "date_words", "quarter", "month", "year", "half", "nine", "continuous",
                                 "yearly", "event"]))
    if kind in ("date", "date_words"):
        day, month = draw(st.integers(0, 35)), draw(st.integers(0, 14))
        try:
            expected: date | None = date(year, month, day)
        except ValueError:
            expected = None
        if kind == "date":
            sep = draw(st.sampled_from(["/", ".", "-"]))
            core = f"{day:0{draw(st.integers(1, 2))}d}{sep}{month}{sep}{y}"
        else:
            core = f"{day} tháng {month} năm {y}"
        return _mangle(draw, draw(st.sampled_from(PREFIX_DATE)) + core), expected, None
    if kind == "quarter":
        q = draw(st.integers(0, 6))
        name = draw(st.sampled_from([ROMAN.get(q, str(q)), str(q)])) if q in ROMAN else str(q)
        word = draw(st.sampled_from(["Quý", "quý", "Quí"]))
        last = last_day(q * 3) if 1 <= q <= 4 else None
        return _mangle(draw, f"{draw(st.sampled_from(PREFIX_SPAN))}{word} {name}/{y}"), last, None
    if kind == "month":
        m = draw(st.integers(0, 15))
        last = last_day(m)
        return _mangle(draw, f"{draw(st.sampled_from(PREFIX_SPAN))}Tháng {m}/{y}"), last, None
    if kind == "year":
        return _mangle(draw, f"{draw(st.sampled_from(PREFIX_SPAN))}Năm {y}"), last_day(12), None
    if kind == "half":
        which, end = draw(st.sampled_from([("đầu", 6), ("cuối", 12)]))
        return _mangle(draw, f"6 tháng {which} năm {y}"), last_day(end), None
    if kind == "nine":
        return _mangle(draw, f"9 tháng đầu năm {y}"), last_day(9), None
    if kind == "continuous":
        return _mangle(draw, draw(st.sampled_from(["Thường xuyên", "Liên tục", f"Thường xuyên, từ năm {y}"]))), \
            None, "continuous"
    if kind == "yearly":
        return _mangle(draw, draw(st.sampled_from(["Hằng năm", "Hàng năm", f"Hằng năm, bắt đầu từ {y}",
                                                   f"Định kỳ hằng năm, từ năm {y}"]))), None, "yearly"
    return _mangle(draw, "Sau khi có hướng dẫn của " + draw(st.sampled_from(["Bộ Nội vụ", "UBND tỉnh"]))), \
        None, "on_event"


def _check_due(due: Due, phrase: str) -> None:
    assert isinstance(due, Due)
    assert due.recurrence is None or due.recurrence in RECURRENCES
    assert (due.due_date is None) == (due.recurrence is not None)
    assert due.due_date is None or isinstance(due.due_date, date)
    assert due.text == re.sub(r"\s+", " ", unicodedata.normalize("NFC", phrase)).strip()


@pytest.mark.timeout(TIMEOUT)
@FUZZ
@given(case=well_formed_phrase(), default_year=st.none() | st.integers(1000, 9999))
def test_well_formed_deadline_phrases_give_the_right_date_or_a_vietnamese_error(
        case: tuple[str, date | None, str | None], default_year: int | None) -> None:
    phrase, expected, recurrence = case
    _tried("phrase-oracle")
    if expected is None and recurrence is None:
        with pytest.raises(DuePhraseError) as err:
            parse_due_phrase(phrase, default_year=default_year)
        assert err.value.message_vi.startswith("Không đọc được thời hạn «") and VIETNAMESE.search(err.value.message_vi)
        return
    due = parse_due_phrase(phrase, default_year=default_year)
    _check_due(due, phrase)
    assert (due.due_date, due.recurrence) == (expected, recurrence), phrase


VI_WORDS = ["trước", "ngày", "tháng", "năm", "quý", "đến", "hết", "cuối", "từ", "thường xuyên", "hằng", "hàng",
            "sau khi", "và", "đầu", "6", "9", "sáu", "chín", "I", "IV", "V", "/", "-", ".", ",", "2026", "0000",
            "31", "32", "13", "00", "٢٠٢٦", "２０２６", "\u200b", "\u0301", "**", "•"]


@pytest.mark.timeout(TIMEOUT)
@FUZZ
@given(phrase=st.one_of(
    st.lists(st.sampled_from(VI_WORDS), max_size=8).map(" ".join),
    st.lists(st.sampled_from(VI_WORDS), max_size=8).map("".join),
    st.text(max_size=60),
    st.text(alphabet="0123456789/.-– ", max_size=20),
), default_year=st.none() | st.integers(1000, 9999))
def test_any_deadline_phrase_gives_a_due_or_a_due_phrase_error(phrase: str, default_year: int | None) -> None:
    _tried("phrase-any")
    try:
        due = parse_due_phrase(phrase, default_year=default_year)
    except DuePhraseError as exc:
        assert exc.message_vi.startswith("Không đọc được thời hạn «")
        return
    _check_due(due, phrase)


def test_non_text_deadline_is_a_due_phrase_error() -> None:
    for value in (None, 2026, b"Quy IV/2026", ["Năm 2026"]):
        with pytest.raises(DuePhraseError):
            parse_due_phrase(value)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- memory, in a child process
MEMORY_BOUND_MB = 300
_CHILD = r"""
import json, os, resource, sys
from pathlib import Path
from baocao.rules.config import load_config
from baocao.intake.reader import read_submission

catalog = load_config(env={}).catalog

def peak_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False

warm = Path(sys.argv[1]).read_bytes()
read_submission(warm, "warm.xlsx", catalog)
out = {}
for path in sys.argv[2:]:
    p = Path(path)
    data = p.read_bytes()
    exact = reset_peak()
    base = peak_kb()
    if p.name == "control":
        blob = b"\x01" * (int(data) * 1024 * 1024)
        rules = [str(len(blob))]
        del blob
    else:
        subs, problems = read_submission(data, p.name, catalog)
        rules = [x.rule for x in problems if x.severity == "error"] + (["read"] if subs else [])
    out[p.name] = {"growth_kb": peak_kb() - base, "rules": rules, "exact": exact}
    del data
print(json.dumps(out))
"""


def _stream_rows(path: Path, rows: int) -> None:
    """A form whose Chỉ tiêu sheet has ``rows`` rows, written as a streamed zip member (cheap to make)."""
    part = counts_member()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, content in good_members():
            if name != part:
                zf.writestr(name, content)
                continue
            head, tail = content.split(b"</sheetData>")
            with zf.open(part, "w", force_zip64=True) as member:
                member.write(head)
                chunk = []
                for r in range(21, rows + 1):
                    chunk.append(b'<row r="%d"><c r="D%d"><v>%d</v></c></row>' % (r, r, r % 97))
                    if len(chunk) == 50_000:
                        member.write(b"".join(chunk))
                        chunk = []
                member.write(b"".join(chunk) + b"</sheetData>" + tail)


def _hostile_files(tmp: Path) -> dict[str, str]:
    """name -> what it is; written to ``tmp``."""
    part = counts_member()
    members = good_members()

    def with_sheet(edit) -> bytes:  # noqa: ANN001
        return zip_members([(n, edit(c) if n == part else c) for n, c in members], stored=True)

    made: dict[str, tuple[bytes, str]] = {
        "one_cell_at_row_1048576.xlsx": (
            with_sheet(lambda c: c.replace(b"</sheetData>", b'<row r="1048576"><c r="D1048576"><v>1</v></c></row>'
                                           b"</sheetData>")), "a single cell at D1048576"),
    }
    for i, cell in enumerate(HUGE_CELLS):
        made[f"hidden_huge_cell_{i}.xlsx"] = (
            with_sheet(lambda c, cell=cell: c.replace(b"</sheetData>", cell + b"</sheetData>")),
            f"a cell at XFD1048576 written as {cell[:60]!r}")
    made["nested_1m.xlsx"] = (with_sheet(lambda c: c.replace(b"</sheetData>", b"</sheetData>" + b"<x>" * 1_000_000
                                                               + b"</x>" * 1_000_000)), "XML nested 1,000,000 deep")
    laughs = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY a "' + b"lol" * 10 + b'">' + b"".join(
        b'<!ENTITY a%d "%s">' % (i, (b"&a%d;" % (i - 1) if i > 1 else b"&a;") * 10) for i in range(1, 10)) + b"]>"
    made["billion_laughs.xlsx"] = (with_sheet(lambda c: laughs + c.split(b"?>", 1)[-1].replace(
        b"</sheetData>", b'<row r="99"><c r="A99" t="inlineStr"><is><t>&a9;</t></is></c></row></sheetData>')),
        "a billion laughs entity bomb")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for n, c in members:
            zf.writestr(n, c.replace(b"</worksheet>", b" " * 95_000_000 + b"</worksheet>") if n == part else c)
    made["zip_bomb_95mb.xlsx"] = (bomb.getvalue(), "95 MB of XML deflated to ~100 kB")
    made["external_link.xlsx"] = (add_external_link(good_form()), "an external workbook link")
    made["macro.xlsm"] = (with_macro(good_form()), "a macro-enabled workbook")
    rows = ["ma_don_vi,ky_bao_cao,ma_chi_tieu,gia_tri"] + [f"X{i % 9999:05d},{PERIOD},TIN_BAI,{i}"
                                                           for i in range(330_000)]
    made["csv_330k_rows.csv"] = ("\n".join(rows).encode(), "a 9.9 MB CSV of 330,000 rows")
    made["csv_one_wide_row.csv"] = (b"ma_don_vi,ky_bao_cao,ma_chi_tieu,gia_tri\n" + b"," * 9_900_000,
                                    "a CSV row of 9.9 million empty fields")
    made["csv_huge_field.csv"] = (b'ma_don_vi,ky_bao_cao,ma_chi_tieu,gia_tri\nX10714,2026-H1,TIN_BAI,"'
                                  + b"9" * 9_000_000 + b'"\n', "a CSV field of 9 MB")
    out = {}
    for name, (data, what) in made.items():
        (tmp / name).write_bytes(data)
        out[name] = what
    _stream_rows(tmp / "rows_1048576.xlsx", 1_048_576)
    out["rows_1048576.xlsx"] = "1,048,576 rows on Chỉ tiêu (a streamed zip member)"
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_hostile_files_stay_under_the_memory_bound(tmp_path: Path) -> None:
    """Peak RSS growth while reading each hostile file, measured in a child process, stays under
    MEMORY_BOUND_MB; a control allocation in the same child proves the measurement sees memory."""
    files = _hostile_files(tmp_path)
    (tmp_path / "warm.xlsx").write_bytes(good_form())
    (tmp_path / "control").write_text(str(MEMORY_BOUND_MB + 50))
    sizes = {name: (tmp_path / name).stat().st_size for name in files}
    assert max(sizes.values()) <= 10_000_000, sizes  # all within the default attachment limit: the reader sees them
    args = [str(tmp_path / "warm.xlsx"), *(str(tmp_path / n) for n in files), str(tmp_path / "control")]
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["control"]["growth_kb"] >= MEMORY_BOUND_MB * 1024, result["control"]
    over = {n: r for n, r in result.items() if n != "control" and r["growth_kb"] > MEMORY_BOUND_MB * 1024}
    assert not over, over
    TRIED["fixed:memory"] = len(files)
    for name in files:
        assert set(result[name]["rules"]) - {"read"}, (name, files[name], result[name])  # an error said why
        if not name.endswith(".csv"):
            assert "read" not in result[name]["rules"], (name, files[name], result[name])  # refused as a whole
    assert set(result["rows_1048576.xlsx"]["rules"]) <= {"too_large", "zip_bomb", "sheet_too_large"}
    for i in range(len(HUGE_CELLS)):
        assert result[f"hidden_huge_cell_{i}.xlsx"]["rules"] == ["sheet_too_large"], HUGE_CELLS[i]


# ----------------------------------------------------------------------------------------- attachment size limit
@pytest.fixture
def intake_db(sqlite_url: str) -> Database:
    from baocao.store.migrate import upgrade
    from baocao.store.queries import sync_units

    upgrade(sqlite_url)
    database = Database(sqlite_url)
    sync_units(database, load_config(env={}).hierarchy)
    yield database
    database.dispose()


def _config_with_limit(monkeypatch: pytest.MonkeyPatch, limit: int) -> Config:
    monkeypatch.setenv("BAOCAO_MAX_ATTACHMENT_BYTES", str(limit))
    return load_config()


def test_an_attachment_over_the_limit_is_refused_and_recorded_without_its_content(
        intake_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    data = good_form()
    size, digest = len(data), hashlib.sha256(data).hexdigest()
    sender = "daumoi.x10714@haiphong.example"
    cfg = _config_with_limit(monkeypatch, size - 1)
    assert cfg.settings.max_attachment_bytes == size - 1

    outcome = take_in(intake_db, cfg, Incoming(data, "BaoCao_lon.xlsx", "email", sender))

    (unit,) = outcome.units
    assert unit.status == "rejected" and [p.rule for p in unit.problems] == ["file_too_large"]
    message = unit.problems[0].message_vi
    assert f"{number_vi(size)} byte" in message and f"{number_vi(size - 1)} byte" in message, message
    assert "vượt giới hạn" in message and "BaoCao_lon.xlsx" in message
    with intake_db.session() as s:
        (row,) = s.scalars(select(ReceivedFile)).all()
        assert (row.filename, row.size, row.sha256, row.content) == ("BaoCao_lon.xlsx", size, digest, b"")
        assert (row.channel, row.sender) == ("email", sender)
        assert s.scalars(select(Submission)).all() == []  # nothing was read from it
        (reply,) = s.scalars(select(OutboxMessage)).all()
        assert reply.recipients == [sender] and reply.kind == "problems"
        assert "BaoCao_lon.xlsx" in reply.subject and f"{number_vi(size)} byte" in reply.body_text

    # One byte more allowed: the very same file is read (and, here, refused for having no open request).
    cfg = _config_with_limit(monkeypatch, size)
    outcome = take_in(intake_db, cfg, Incoming(data, "BaoCao_lon.xlsx", "email", sender))
    (unit,) = outcome.units
    assert [p.rule for p in unit.problems] == ["request"], [p.message_vi for p in unit.problems]
    with intake_db.session() as s:
        (row,) = s.scalars(select(ReceivedFile)).all()
        assert row.content == data and row.times_seen == 2  # the file is kept whole now that it is taken in
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "refused")).all()
        assert event.detail["reasons"] == ["request"]


def test_the_reader_refuses_by_the_same_setting(monkeypatch: pytest.MonkeyPatch, unexpected: _Unexpected) -> None:
    data = good_form()
    for limit, refused in ((len(data) - 1, True), (len(data), False)):
        cfg = _config_with_limit(monkeypatch, limit)
        subs, problems = check_read(data, "f.xlsx", unexpected, max_bytes=cfg.settings.max_attachment_bytes)
        assert ([p.rule for p in problems] == ["file_too_large"]) is refused and bool(subs) is not refused


def test_an_oversize_file_gets_one_rule_and_one_message_on_every_path(
        intake_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from baocao.intake.pipeline import take_in_batch

    data = good_form()
    cfg = _config_with_limit(monkeypatch, len(data) - 1)
    _, read = read_submission(data, "lon.xlsx", cfg.catalog, max_bytes=cfg.settings.max_attachment_bytes)
    (single,) = take_in(intake_db, cfg, Incoming(data, "lon.xlsx", "email", "a@b.example")).units
    cfg = _config_with_limit(monkeypatch, len(data) - 2)  # the batch gets other bytes (not a duplicate)
    _, read_shorter = read_submission(data[:-1], "lon.xlsx", cfg.catalog, max_bytes=cfg.settings.max_attachment_bytes)
    (batch,) = take_in_batch(intake_db, cfg, [Incoming(data[:-1], "lon.xlsx", "folder")])[0].units
    assert [p.rule for p in read] == ["file_too_large"]
    for got, expected in ((single.problems, read), (batch.problems, read_shorter)):
        assert [(p.rule, p.message_vi) for p in got] == [(p.rule, p.message_vi) for p in expected]


def test_zz_every_fuzz_property_ran_its_budget() -> None:
    """Runs last in this module (pytest keeps file order): the budgets were really spent."""
    if not TRIED:
        pytest.skip("the fuzz tests were not selected in this run")
    print(f"hostile inputs tried: {sum(TRIED.values())} {TRIED}")
    for name, count in TRIED.items():
        if not name.startswith("fixed:"):
            assert count >= EXAMPLES * 0.9, (name, count)
