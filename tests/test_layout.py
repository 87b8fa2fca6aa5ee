"""The layout the architecture rests on: the library (`baocao/`) never imports Prefect nor the flows
(`flows/` is the Prefect layer over it), and no module or package of ours stands in for a standard-library
one (a deployed run can put a package directory on `sys.path`: `flows/calendar.py` once shadowed
`calendar` and every render process died at start)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "baocao"
PACKAGES = (ROOT / "flows", LIBRARY)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, imports inside functions included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _library_imports_of(top: str) -> dict[str, list[str]]:
    found = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        hits = sorted(m for m in _imports(path) if m.split(".")[0] == top)
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    return found


def test_the_library_never_imports_prefect() -> None:
    assert _library_imports_of("prefect") == {}


def test_the_library_does_not_import_the_flows() -> None:
    assert _library_imports_of("flows") == {}


def test_importing_every_library_module_loads_neither_prefect_nor_the_flows() -> None:
    """The AST scan above misses what a third-party import pulls in; importing every module does not."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import baocao\n"
        "names = [m.name for m in pkgutil.walk_packages(baocao.__path__, 'baocao.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'flows'))))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    count, loaded = (run.stdout.splitlines() + ["", ""])[:2]
    assert int(count) == len(list(LIBRARY.rglob("*.py"))) - 1  # every module but baocao/__init__.py itself
    assert loaded.split() == []


def test_no_module_or_package_has_a_standard_library_name() -> None:
    ours = {p.name for p in PACKAGES}
    for package in PACKAGES:
        ours |= {p.stem for p in package.rglob("*.py") if p.stem not in ("__init__", "__main__")}
        ours |= {p.parent.name for p in package.rglob("__init__.py")}
    assert ours & set(sys.stdlib_module_names) == set()


def test_every_message_kind_belongs_to_one_step() -> None:
    """A kind in no step would be enqueued and never sent; a kind in two would go out from either."""
    from collections import Counter

    from baocao.mail.kinds import STEP_KINDS, Kind

    counts = Counter(kind for kinds in STEP_KINDS.values() for kind in kinds)
    assert {kind: counts[kind] for kind in Kind} == dict.fromkeys(Kind, 1)


def _spelled_out_kinds(path: Path) -> list[str]:
    """`kinds=[...]`, `kind="report"`, `{"kind": "report"}` and `x.kind == "report"` with the literal text."""
    from baocao.mail.kinds import Kind

    values = {k.value for k in Kind}

    def literal(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and node.value in values

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.keyword) and node.arg == "kinds" and isinstance(node.value, ast.List | ast.Tuple):
            found.append(f"{path.relative_to(ROOT)}:{node.value.lineno} kinds=[...]")
        elif isinstance(node, ast.keyword) and node.arg == "kind" and literal(node.value):
            found.append(f"{path.relative_to(ROOT)}:{node.value.lineno} kind={node.value.value!r}")
        elif isinstance(node, ast.Dict):
            found += [f"{path.relative_to(ROOT)}:{k.lineno} 'kind': {v.value!r}" for k, v in zip(node.keys, node.values, strict=True)
                      if isinstance(k, ast.Constant) and k.value == "kind" and literal(v)]
        elif (isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "kind"
              and any(literal(c) for c in node.comparators)):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} .kind compared with a literal")
    return found


def test_message_kinds_are_named_not_spelled_out() -> None:
    """The kinds are written once, in baocao/mail/kinds.py: the flows, the library, the crash harness and
    the benchmark name `Kind` or call a step's send function (the harness once sent every report in one
    call where the flow sends a level at a time)."""
    places = [ROOT / "flows", LIBRARY, ROOT / "tests" / "crash", ROOT / "benchmarks"]
    found = [hit for place in places for path in sorted(place.rglob("*.py")) for hit in _spelled_out_kinds(path)]
    assert found == []


def _state_literals(path: Path) -> list[str]:
    """Tuples, lists and sets written out of two or more request-state strings (`("accepted", "late")`)."""
    from baocao.store.states import RequestState

    values = {s.value for s in RequestState}
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) >= 2 and all(
                isinstance(e, ast.Constant) and e.value in values for e in node.elts):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_state_tuple_literals_in_the_library() -> None:
    """The groupings of request states (DONE, ANSWERED, AWAITING, TO_REDO) are written once, in
    baocao/store/states.py; a tuple spelled out elsewhere drifts from them (or is misspelt and matches nothing)."""
    found = [hit for place in PACKAGES for path in sorted(place.rglob("*.py")) for hit in _state_literals(path)]
    assert found == []


def _exception_classes() -> list[type[BaseException]]:
    import importlib
    import inspect
    import pkgutil

    import baocao

    found = []
    for info in pkgutil.walk_packages(baocao.__path__, "baocao."):
        module = importlib.import_module(info.name)
        found += [obj for name, obj in vars(module).items() if inspect.isclass(obj) and issubclass(obj, BaseException)
                  and obj.__module__ == module.__name__ and not name.startswith("_")]
    return found


def test_every_exception_subclasses_BaocaoError() -> None:  # noqa: N802 - names the class
    """One hierarchy (baocao/errors.py): a caller can catch whatever baocao refuses, and each class keeps
    its builtin base so the `except ValueError` written before still catches it. Private control-flow
    exceptions (`_Refused`) never leave their module and are not counted."""
    from baocao.errors import BaocaoError, ConfigError, StaleState, TaskBodiesError, UnitsFailed

    classes = _exception_classes()
    assert len(classes) >= 14
    assert [c.__qualname__ for c in classes if not issubclass(c, BaocaoError)] == []
    assert issubclass(ConfigError, ValueError) and issubclass(TaskBodiesError, ConfigError)
    assert issubclass(StaleState, RuntimeError) and issubclass(UnitsFailed, RuntimeError)


def test_an_old_pickled_UnitsFailed_still_loads() -> None:  # noqa: N802 - names the class
    """A persisted task result written before baocao/ existed names `flows.failures.UnitsFailed`
    (bytes captured from such a result); it must still load, whole."""
    import pickle

    from baocao.errors import UnitsFailed

    old = (b"\x80\x04\x95R\x00\x00\x00\x00\x00\x00\x00\x8c\x0eflows.failures\x94\x8c\x0bUnitsFailed\x94\x93\x94}"
           b"\x94\x8c\x02X1\x94\x8c\x0b550 refused\x94s\x8c\x13prepare requests X1\x94\x86\x94R\x94.")
    error = pickle.loads(old)  # noqa: S301 - our own bytes
    assert isinstance(error, UnitsFailed)
    assert (error.failed, error.where) == ({"X1": "550 refused"}, "prepare requests X1")
    assert "X1: 550 refused" in str(error)
