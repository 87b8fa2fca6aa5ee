"""The corpus of bad files (tests/data/bad, made by tests/data/make_bad_files.py), plus huge ones
made here: each must give an error with a Vietnamese message naming the file, never an exception."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from baocao.intake.reader import read_submission
from baocao.intake.results import Problem
from baocao.intake.validation import token_problems, validate
from baocao.rules.config import Config
from tests.data import make_bad_files
from tests.data.make_bad_files import SECRET, VERSION, counts_part, filled, rezip

BAD = Path(__file__).resolve().parent / "data" / "bad"
EXPECTED: dict[str, dict[str, str]] = json.loads((BAD / "expected.json").read_text(encoding="utf-8"))
UNIT_CODE = re.compile(r"\b(?:BNV|[TX]\d{2,5}(?:-[A-Z]+)*)\b")  # as tests/test_addressing.py
PERIOD_CODE = re.compile(r"\b\d{4}-(?:Q1|H1|9M|Y)\b")
VIETNAMESE = re.compile(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹàáèéìíòóùúýãõĩũ]", re.I)


def check(data: bytes, name: str, cfg: Config, **kwargs: object) -> list[Problem]:
    """What the intake does with a file: read, validate each unit's answer, check its token."""
    subs, problems = read_submission(data, name, cfg.catalog, **kwargs)  # type: ignore[arg-type]
    for sub in subs:
        problems += validate(sub, cfg.catalog, filename=name)
        problems += token_problems(sub, SECRET, filename=name, form_version=VERSION, required=sub.fmt == "xlsx")
    return problems


def test_corpus_is_complete() -> None:
    files = {p.name for p in BAD.iterdir() if p.name != "expected.json"}
    assert files == set(EXPECTED)
    assert len(files) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_gives_the_expected_error_in_vietnamese(name: str, cfg: Config) -> None:
    problems = check((BAD / name).read_bytes(), name, cfg)
    errors = [p for p in problems if p.severity == "error"]
    assert errors, f"{name}: no error ({EXPECTED[name]['what']})"
    assert EXPECTED[name]["rule"] in {p.rule for p in errors}, [p.message_vi for p in errors]
    for p in problems:
        assert p.file == name
        assert p.message_vi.startswith(f"Tệp “{name}”"), p.message_vi
        assert VIETNAMESE.search(p.message_vi.split(":", 1)[1]), p.message_vi


def test_moved_columns_error_points_at_the_moved_cell(cfg: Config) -> None:
    name = "moved_columns_bad_value.xlsx"
    problems = check((BAD / name).read_bytes(), name, cfg)
    bad = [p for p in problems if p.rule == "non_negative_integer"]
    assert [(p.cell, p.value) for p in bad] == [("B4", "abc")]
    assert "“abc”" in bad[0].message_vi


def test_hostile_files_are_refused_as_a_whole(cfg: Config) -> None:
    hostile = ("zip_bomb_ratio.xlsx", "zip_bomb_declared.xlsx", "zip_bomb_underdeclared.xlsx", "entity_bomb.xlsx",
               "deeply_nested.xlsx", "absurd_dimension.xlsx", "macro_inside.xlsx", "external_link.xlsx",
               "password_protected.xlsx")
    for name in hostile:
        subs, problems = read_submission((BAD / name).read_bytes(), name, cfg.catalog)
        assert subs == [], name
        assert len([p for p in problems if p.severity == "error"]) == 1, name


def test_huge_sheet_made_at_test_time_is_refused_quickly(cfg: Config) -> None:
    """60,000 rows of values on Chỉ tiêu (2.4 MB of XML, well under the size limits)."""
    rows = b"".join(b'<row r="%d"><c r="D%d"><v>%d</v></c></row>' % (r, r, r) for r in range(100, 60_100))
    data = filled()
    data = rezip(data, transform={counts_part(data): lambda xml: xml.replace(b"</sheetData>", rows + b"</sheetData>")})
    problems = check(data, "huge.xlsx", cfg)
    assert [p.rule for p in problems if p.severity == "error"] == ["sheet_too_large"]
    assert "60.099" in problems[0].message_vi


def test_huge_file_is_refused_by_size_before_parsing(cfg: Config) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("xl/media/image1.png", b"\x89PNG" + bytes(3_000_000))
    problems = check(out.getvalue(), "anh.xlsx", cfg, max_bytes=2_000_000)
    assert [p.rule for p in problems] == ["file_too_large"]
    assert "2.000.000" in problems[0].message_vi


def test_generator_makes_the_same_corpus(tmp_path: Path) -> None:
    made = make_bad_files.main(tmp_path)
    assert made == EXPECTED
    assert {p.name for p in tmp_path.iterdir()} == {p.name for p in BAD.iterdir()}


def test_every_message_on_the_corpus_speaks_to_a_clerk(cfg: Config) -> None:
    """Issue 21 §2, §7: what `baocao validate` prints for each bad file (the same checks and words as the
    reply the unit gets): Vietnamese quotes, no orders ("Hãy", "CHƯA"), the unit and the period by their
    names; a code only as the clerk wrote it, in quotes, next to the cell it is in."""
    from typer.testing import CliRunner

    from flows.cli import app as cli

    files = sorted(str(p) for p in BAD.iterdir() if p.name != "expected.json")
    result = CliRunner().invoke(cli, ["validate", *files], env={"BAOCAO_TOKEN_SECRET": SECRET, "COLUMNS": "100000"})
    assert result.exit_code == 1, result.output
    messages = [line.strip().split(" ", 1)[1] for line in result.output.splitlines()
                if line.startswith(("  error ", "  warning "))]
    assert len(messages) >= len(files)
    codes = {i.code for i in cfg.catalog.indicators}
    for m in messages:
        assert not {"«", "»"} & set(m), m
        assert "Hãy " not in m and "hãy " not in m and "CHƯA" not in m, m
        said = re.sub(r"“[^”]*”", "“…”", m)  # what the clerk wrote may be quoted back; the rest is ours
        assert not UNIT_CODE.findall(said) and not PERIOD_CODE.findall(said), m
        assert not [w for w in re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", said) if w in codes], m
    unit = cfg.hierarchy[make_bad_files.UNIT].name
    by_file = {name: [m for m in messages if m.startswith(f"Tệp “{name}”")] for name in EXPECTED}
    for name in ("forged_token.xlsx", "other_unit_token.xlsx", "old_form_version.xlsx", "missing_token.xlsx"):
        (message,) = by_file[name]
        assert f"biểu mẫu của {unit} " in message or f"không đúng với {unit} và kỳ 6 tháng đầu năm 2026 " in message
