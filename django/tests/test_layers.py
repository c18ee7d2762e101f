"""No two modules of ``mizan_hub`` import each other in a circle.

The Django part's counterpart of ``server/layers.py --objects`` (the hub's
C modules) and ``client-js/test/layers.test.ts`` (the browser runtime's):
every import of the package is read with :mod:`ast`, those inside
functions and under ``TYPE_CHECKING`` too. An import moved into a function
only hides a circle from the interpreter; the two modules still need each
other. What a module loads by a computed name (``importlib.import_module``
with anything but a string constant) is not followed.

``python django/tests/test_layers.py`` prints the circles of the package.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mizan_hub"

#: (importing module, imported module) -> [(line, name taken), ...]
Edges = dict[tuple[str, str], list[tuple[int, str]]]


def modules(root: Path) -> dict[str, Path]:
    """The dotted name of every module of the package at ``root``
    (``__init__.py`` is the package itself)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _target(name: str, known: dict[str, Path]) -> str | None:
    """The module of the package that ``import name`` loads last (its
    longest known prefix), or None when it is not one of the package's."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return None


def imports(name: str, path: Path, known: dict[str, Path]) -> Edges:
    """The package's modules that module ``name`` imports, anywhere in it."""
    edges: Edges = defaultdict(list)
    package = name if _is_package(path) else name.rpartition(".")[0]

    def add(target: str | None, line: int, what: str) -> None:
        if target is not None and target != name:
            edges[(name, target)].append((line, what))

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(_target(alias.name, known), node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                # `from . import conf` loads the submodule; `from .x import f`
                # (or `from . import __version__`) the module that defines f
                sub = f"{source}.{alias.name}"
                add(sub if sub in known else _target(source, known), node.lineno, alias.name)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name)
                       and node.func.id in ("import_module", "__import__")))):
            add(_target(node.args[0].value, known), node.lineno, node.args[0].value)
    return edges


def graph(root: Path) -> Edges:
    known = modules(root)
    edges: Edges = {}
    for name, path in known.items():
        edges.update(imports(name, path, known))
    return edges


def circles(edges: Edges) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's,
    iterative), each sorted, in sorted order."""
    succ: dict[str, list[str]] = defaultdict(list)
    for a, b in sorted(edges):
        succ[a].append(b)
    nodes = sorted({n for edge in edges for n in edge})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        work = [(root, iter(succ[root]))]
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(succ[w])))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def describe(edges: Edges, circle: list[str]) -> str:
    """A circle and what ties it: each import between its modules."""
    members = set(circle)
    lines = [f"circle: {' '.join(circle)}"]
    for (a, b), uses in sorted(edges.items()):
        if a in members and b in members:
            taken = ", ".join(f"{what} (line {line})" for line, what in sorted(uses))
            lines.append(f"  {a} -> {b}: {taken}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------

def test_the_package_imports_in_no_circle():
    edges = graph(PACKAGE)
    assert len({a for a, _ in edges}) > 20, "the package's imports were not read"
    found = circles(edges)
    assert not found, ("modules of mizan_hub import each other in a circle; give what "
                       "they share one home in a module below both:\n"
                       + "\n".join(describe(edges, c) for c in found))


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_a_circle_through_a_function_level_import_is_found(tmp_path):
    root = _package(tmp_path, {
        "low.py": "from . import high\n",
        "high.py": "def f():\n    from .low import g\n    return g\n",
        "alone.py": "from .low import x\n",
    })
    edges = graph(root)
    assert circles(edges) == [["pkg.high", "pkg.low"]]
    assert "pkg.high -> pkg.low: g (line 2)" in describe(edges, ["pkg.high", "pkg.low"])


def test_type_checking_absolute_and_subpackage_imports_count(tmp_path):
    root = _package(tmp_path, {
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
        "b.py": "import pkg.sub.c\n",
        "sub/__init__.py": "",
        "sub/c.py": "from ..a import A\n",
    })
    assert circles(graph(root)) == [["pkg.a", "pkg.b", "pkg.sub.c"]]


def test_the_package_and_import_module_count(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "import importlib\nimportlib.import_module('pkg.m')\n",
        "m.py": "from . import __version__\n",
    })
    assert circles(graph(root)) == [["pkg", "pkg.m"]]


def test_imports_that_only_go_down_are_no_circle(tmp_path):
    root = _package(tmp_path, {
        "top.py": "from . import mid, low\nimport json\nfrom django.db import models\n",
        "mid.py": "def f():\n    from .low import g\n",
        "low.py": "import os\n",
    })
    edges = graph(root)
    assert set(edges) == {("pkg.top", "pkg.mid"), ("pkg.top", "pkg.low"), ("pkg.mid", "pkg.low")}
    assert circles(edges) == []


if __name__ == "__main__":
    edges = graph(PACKAGE)
    found = circles(edges)
    for circle in found:
        print(describe(edges, circle))
    sys.exit(1 if found else 0)
