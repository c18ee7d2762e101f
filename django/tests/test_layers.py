"""No two modules of ``mizan_hub`` import each other in a circle.

The Django part's counterpart of ``server/layers.py --objects`` (the hub's
C modules) and ``client-js/test/layers.test.ts`` (the browser runtime's):
every import of the package is read with :mod:`ast`, those inside
functions and under ``TYPE_CHECKING`` too. An import moved into a function
only hides a circle from the interpreter; the two modules still need each
other. What a module loads by a computed name (``importlib.import_module``
with anything but a string constant) is not followed.

``python django/tests/test_layers.py`` prints a circle of the package, if any.
"""

from __future__ import annotations

import ast
import graphlib
import sys
from collections import defaultdict
from pathlib import Path

import pytest

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


def circle(edges: Edges) -> list[str]:
    """One circle of imports, in import order with its first module again at
    the end (``[a, b, a]``: a imports b, b imports a); [] when there is none."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for importer, imported in sorted(edges):
        sorter.add(importer, imported)  # the imported module comes first
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        # each module of the reported cycle precedes (is imported by) the next
        return list(reversed(exc.args[1]))
    return []


def describe(edges: Edges, found: list[str]) -> str:
    """A circle and what ties it: the imports from each of its modules to the next."""
    lines = [f"circle: {' -> '.join(found)}"]
    for a, b in zip(found, found[1:]):
        taken = ", ".join(f"{what} (line {line})" for line, what in sorted(edges[(a, b)]))
        lines.append(f"  {a} -> {b}: {taken}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------

def test_the_package_imports_in_no_circle():
    edges = graph(PACKAGE)
    assert len({a for a, _ in edges}) > 20, "the package's imports were not read"
    found = circle(edges)
    assert not found, ("modules of mizan_hub import each other in a circle; give what "
                       "they share one home in a module below both:\n" + describe(edges, found))


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize("files, members, tie", [
    pytest.param({"low.py": "from . import high\n",
                  "high.py": "def f():\n    from .low import g\n    return g\n",
                  "alone.py": "from .low import x\n"},
                 {"pkg.high", "pkg.low"}, "pkg.high -> pkg.low: g (line 2)",
                 id="function-level"),
    pytest.param({"a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                          "    from pkg.b import B\n",
                  "b.py": "import pkg.sub.c\n",
                  "sub/__init__.py": "",
                  "sub/c.py": "from ..a import A\n"},
                 {"pkg.a", "pkg.b", "pkg.sub.c"}, "pkg.sub.c -> pkg.a: A (line 1)",
                 id="type-checking-absolute-subpackage"),
    pytest.param({"__init__.py": "import importlib\nimportlib.import_module('pkg.m')\n",
                  "m.py": "from . import __version__\n"},
                 {"pkg", "pkg.m"}, "pkg -> pkg.m: pkg.m (line 2)",
                 id="package-and-import-module"),
])
def test_a_made_circle_is_found(tmp_path, files, members, tie):
    edges = graph(_package(tmp_path, files))
    found = circle(edges)
    assert found[0] == found[-1] and set(found) == members and len(found) == len(members) + 1
    assert tie in describe(edges, found)


def test_imports_that_only_go_down_are_no_circle(tmp_path):
    edges = graph(_package(tmp_path, {
        "top.py": "from . import mid, low\nimport json\nfrom django.db import models\n",
        "mid.py": "def f():\n    from .low import g\n",
        "low.py": "import os\n",
    }))
    assert set(edges) == {("pkg.top", "pkg.mid"), ("pkg.top", "pkg.low"), ("pkg.mid", "pkg.low")}
    assert circle(edges) == []


if __name__ == "__main__":
    edges = graph(PACKAGE)
    found = circle(edges)
    if found:
        print(describe(edges, found))
    sys.exit(1 if found else 0)
