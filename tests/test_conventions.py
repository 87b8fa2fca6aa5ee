"""Repository conventions that no single module owns: the README's command table against the CLI,
documents the code cites, and test modules that share helpers only through tests/support/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]


def _cli_commands(command: object, prefix: str = "") -> set[str]:
    """Leaf command paths ("config check"), and a group that runs by itself too (`baocao report --unit …`);
    typer's own click copy is duck-typed, not imported."""
    if hasattr(command, "commands"):
        out: set[str] = {prefix} if prefix and getattr(command, "invoke_without_command", False) else set()
        for name, sub in command.commands.items():
            if not sub.hidden:
                out |= _cli_commands(sub, f"{prefix} {name}".strip())
        return out
    return {prefix}


def _readme_commands() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Commands", 1)[1].split("\n## ", 1)[0]
    out = set()
    for line in section.splitlines():
        if not line.startswith("| `baocao"):
            continue
        first_cell = re.split(r"(?<!\\)\|", line)[1]
        for usage in re.findall(r"`baocao ([^`]*)`", first_cell):
            words = []
            for word in usage.split():
                if word[0] in "-[" or word[0].isupper():
                    break
                words.append(word)
            out.add(" ".join(words))
    return out


def test_readme_command_table_matches_the_cli() -> None:
    """Every command has a row in README §Commands, and every row is a command (`--help` is not enough
    for an operator reading the README first)."""
    from flows.cli import app

    cli = _cli_commands(typer.main.get_command(app))
    readme = _readme_commands()
    assert len(cli) >= 20
    assert cli - readme == set(), "commands without a row in README §Commands"
    assert readme - cli == set(), "rows in README §Commands that are not commands"


_MD_NAME = re.compile(r"[\w./-]*[\w-]\.md\b")


def _tracked_sources() -> list[Path]:
    """The code and configuration (tests name scratch files such as ``phu-luc.md``: not citations)."""
    dirs = ("baocao", "flows", "config", "benchmarks", "migrations", "templates")
    return [ROOT / "pyproject.toml"] + [p for d in dirs for ext in ("*.py", "*.toml") for p in (ROOT / d).rglob(ext)]


def test_every_markdown_file_named_in_code_exists() -> None:
    """A docstring or comment that says "see X.md" points at a file of this repository."""
    missing = []
    for path in _tracked_sources():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in _MD_NAME.findall(line):
                if "://" in line:
                    continue
                candidates = [ROOT / name, path.parent / name, ROOT / "docs" / Path(name).name]
                if not any(c.is_file() for c in candidates):
                    missing.append(f"{path.relative_to(ROOT)}:{n}: {name}")
    assert missing == []


def test_test_modules_do_not_import_each_other() -> None:
    """Shared fixtures and helpers live in tests/support/ (and fixtures in conftest), not in a test module."""
    offenders = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if re.match(r"tests\.(test_\w+|conftest)\b", name):
                    offenders.append(f"{path.name}:{node.lineno}: {name}")
    assert offenders == []
