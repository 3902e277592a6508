"""Data moves one way: knowrl's rooms (subpackages and top-level modules) import only the layers below them.

The import graph is read from the source with `ast` -- imports at module level,
inside functions (the lazy ones) and module names written into
`importlib.import_module(...)` -- so a lazy import that reaches back up a layer, or a
circle between two rooms, fails here rather than surfacing as an import-order
bug. docs/architecture.md shows the same layers.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: list[tuple[str, ...]] = [
    ("_errors", "_io"),  # the one error root; atomic writes
    ("spec", "grading", "generation", "tracking"),  # the spec models; answers and rewards; engines; trackers
    ("data", "_rundir"),  # datasets and record formats; the run-directory files jobs write and the registry reads
    ("kp", "registry"),  # knowledge points; the DuckDB registry, ingesting run directories
    ("eval", "backends"),  # suites x hint modes; compiling jobs (and whole plans) for nemo_rl, verl, local
    ("plan",),  # spec -> job DAG, asking each backend what it can run and which files its jobs make
    ("runtime",),  # run directories filled: embedded Ray or a cluster's Jobs API, resume, ingest, tracking
    ("cli", "knowrl"),  # the command, one thin module per group; the package's top-level names
]
"""Bottom first. A room imports only rooms of lower layers; rooms of one layer import none of each other."""


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at `package`."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module `name` is (or the nearest package holding it, for `from pkg import function`); None outside."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(package: Path) -> dict[str, list[tuple[str, int]]]:
    """Module -> [(module it imports, line)], every import of the package's own modules wherever it is written."""
    known = modules(package)
    edges: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for name, path in known.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*pkg, *([node.module] if node.module else [])])
                # `from pkg import sub` imports the module pkg.sub when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                targets = [str(node.args[0].value)]
            for t in targets:
                module = _resolve(t, known)
                if module and module != name and (module, node.lineno) not in edges[name]:
                    edges[name].append((module, node.lineno))
    return edges


def room(module: str) -> str:
    """`pkg.spec._load` -> `spec`; `pkg._errors` -> `_errors`; the package itself -> its own name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def room_edges(package: Path) -> dict[tuple[str, str], list[str]]:
    """(room, room it imports) -> the imports that make the edge, as `module:line -> module`."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, targets in imports(package).items():
        for target, line in targets:
            if room(source) != room(target):
                out[room(source), room(target)].append(f"{source}:{line} -> {target}")
    return out


def cycles(edges) -> list[list[str]]:
    """Every circle among the rooms, each once (as found from its smallest room)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    found = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                found.append([*path, start])
            elif nxt > start and nxt not in path:
                walk(start, nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return found


def layer_violations(edges, layers) -> list[str]:
    """Imports of a room from its own layer or one above it, with the lines that make them."""
    level = {r: i for i, rooms in enumerate(layers) for r in rooms}
    bad = []
    for (a, b), why in sorted(edges.items()):
        if level[b] >= level[a]:
            where = "its own layer" if level[b] == level[a] else "a layer above"
            bad.append(f"{a} imports {b} ({where}): {'; '.join(why[:3])}")
    return bad


def check(package: Path, layers) -> list[str]:
    edges = room_edges(package)
    rooms = {r for e in edges for r in e} | {room(m) for m in modules(package)}
    placed = {r for rooms_ in layers for r in rooms_}
    problems = [f"room {r} is in no layer: add it to LAYERS (and docs/architecture.md)" for r in sorted(rooms - placed)]
    if problems:
        return problems
    problems += [
        "import circle " + " -> ".join(c) + ": " + "; ".join(edges[a, b][0] for a, b in zip(c, c[1:], strict=False))
        for c in cycles(edges)
    ]
    return problems + layer_violations(edges, layers)


def test_knowrl_has_no_import_circle_and_no_upward_import():
    problems = check(ROOT / "knowrl", LAYERS)
    assert not problems, "\n".join(problems)


def test_docs_show_the_same_layers():
    line = " < ".join(", ".join(rooms) for rooms in LAYERS)
    assert line in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"), line


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in {"__init__.py": "", **files}.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "pkg"


TOY_LAYERS = [("low",), ("high", "side"), ("pkg",)]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (  # a lazy, relative import reaching up a layer, and the module-level import back down: a circle
            {"low/__init__.py": "def f():\n    from ..high import x\n", "high/__init__.py": "from pkg.low import f\n"},
            ["import circle high -> low -> high", "low imports high (a layer above): pkg.low:2 -> pkg.high"],
        ),
        (  # two rooms of one layer
            {"high/a.py": "import pkg.side.b\n", "side/b.py": ""},
            ["high imports side (its own layer): pkg.high.a:1 -> pkg.side.b"],
        ),
        (  # a module imported by name through importlib
            {"low/m.py": "import importlib\nimportlib.import_module('pkg.high.m')\n", "high/m.py": ""},
            ["low imports high (a layer above): pkg.low.m:2 -> pkg.high.m"],
        ),
        (  # a room no layer holds
            {"new/__init__.py": ""},
            ["room new is in no layer"],
        ),
    ],
)
def test_the_check_finds_circles_upward_imports_and_unplaced_rooms(tmp_path, files, expected):
    problems = check(_package(tmp_path, files), TOY_LAYERS)
    for want in expected:
        assert any(want in p for p in problems), (want, problems)


def test_the_check_passes_a_package_that_imports_downward(tmp_path):
    files = {
        "low/a.py": "",
        "high/b.py": "import pkg.low.a\nfrom pkg.low import a\n",
        "side/c.py": "from ..low import a\n",
    }
    assert check(_package(tmp_path, files), TOY_LAYERS) == []
