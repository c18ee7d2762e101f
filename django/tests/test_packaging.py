"""django-mizan-hub as it would be published: the wheel and sdist that
``pip install ./django`` / ``python -m build`` make (built here offline,
with the venv's setuptools), their metadata, their files, and exports that
type checkers see although ``mizan_hub`` loads them lazily."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

DJANGO = Path(__file__).resolve().parents[1]
ROOT = DJANGO.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The wheel and the sdist, built from a copy of the tree (the build
    writes build/ and *.egg-info beside the sources), with LICENSE a link to
    the repository's one file as in the repository."""
    tmp = tmp_path_factory.mktemp("pkg")
    shutil.copy(ROOT / "LICENSE", tmp / "LICENSE")
    src = tmp / "django"
    shutil.copytree(DJANGO, src, symlinks=True,
                    ignore=shutil.ignore_patterns("tests", "example", "__pycache__", "*.egg-info", "build"))
    assert (src / "LICENSE").is_symlink()
    out = tmp / "dist"
    # The backend prints its progress on stdout (the names go to a file) and
    # rewrites sys.argv (read it first).
    code = ("import sys; d = sys.argv[1]; from setuptools import build_meta as b; "
            "names = [b.build_wheel(d), b.build_sdist(d)]; "
            "open(d + '/names', 'w').write(' '.join(names))")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheel, sdist = (out / "names").read_text().split()
    return out / wheel, out / sdist


def wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(z.read(name).decode()), z.namelist()


def test_wheel_metadata_is_ready_to_publish(built):
    meta, _ = wheel_metadata(built[0])
    assert meta["Name"] == "django-mizan-hub"
    import mizan_hub
    assert meta["Version"] == mizan_hub.__version__
    assert meta["License-Expression"] == "Elastic-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert set(urls) >= {"Homepage", "Source", "Issues", "Documentation"}
    assert all(u.startswith("https://") for u in urls.values())
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["Summary"] and meta["Description-Content-Type"] == "text/markdown"
    assert "mizan_hub_config" in meta.get_payload(), "the long description is the README"
    requires = meta.get_all("Requires-Dist")
    assert any(r.startswith("Django>=4.2") for r in requires)


def test_classifiers_are_pypis(built):
    from trove_classifiers import classifiers as known
    meta, _ = wheel_metadata(built[0])
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    assert [c for c in classifiers if c not in known] == [], "PyPI refuses unknown classifiers"
    assert not [c for c in classifiers if c.startswith("License ::")], \
        "a license classifier beside License-Expression is refused (PEP 639)"


def test_wheel_files(built):
    _, names = wheel_metadata(built[0])
    licenses = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert licenses
    with zipfile.ZipFile(built[0]) as z:
        assert z.read(licenses[0]) == (ROOT / "LICENSE").read_bytes()
    for needed in ("mizan_hub/py.typed", "mizan_hub/__init__.py", "mizan_hub/protocol.py",
                   "mizan_hub/management/commands/mizan_hub_config.py",
                   "mizan_hub/management/commands/mizan_hub_registry.py"):
        assert needed in names, needed
    lua = {p.name for p in (DJANGO / "mizan_hub" / "lua").glob("*.lua")}
    assert lua and {n.rsplit("/", 1)[1] for n in names if n.endswith(".lua")} == lua
    assert not [n for n in names if n.startswith(("tests/", "example/"))]


def test_sdist_has_the_license_text(built):
    with tarfile.open(built[1]) as t:
        member = next(m for m in t.getmembers() if m.name.endswith("/LICENSE"))
        assert member.isfile(), "a link in the sdist would point outside it"
        assert t.extractfile(member).read() == (ROOT / "LICENSE").read_bytes()
        assert any(m.name.endswith("/mizan_hub/py.typed") for m in t.getmembers())


def type_checking_imports() -> dict[str, str]:
    tree = ast.parse((DJANGO / "mizan_hub" / "__init__.py").read_text())
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.level == 1
                for alias in imp.names:
                    assert alias.asname == alias.name, "explicit re-export: `import x as x`"
                    found[alias.name] = imp.module
    return found


def test_every_lazy_export_is_visible_to_type_checkers():
    import mizan_hub
    assert type_checking_imports() == mizan_hub._EXPORTS


def test_importing_the_package_stays_light():
    code = ("import sys, mizan_hub; "
            "print(sorted(m for m in sys.modules if m.startswith(('mizan_hub.', 'django', 'redis'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=DJANGO,
                          env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_mypy_sees_the_exports(tmp_path):
    """mypy resolves ``mizan_hub.invalidate`` & co. to their real signatures:
    a right call passes, a wrong one is an error naming the function."""
    pytest.importorskip("mypy")
    (tmp_path / "use.py").write_text(
        "import mizan_hub\n"
        "mizan_hub.invalidate('todos', ('user', {'user_id': 5}))\n"
        "token, expires = mizan_hub.connection_token(None)\n"
        "header: str = mizan_hub.invalidation_header('todos')\n"
        "mizan_hub.invalidation_header(1, 2, nope=3)\n")
    env = {**os.environ, "MYPYPATH": str(DJANGO)}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
         "--follow-imports=silent", "--ignore-missing-imports", "--no-error-summary",
         str(tmp_path / "use.py")], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if "use.py" in line and ": error:" in line]
    assert len(lines) == 1 and ":5:" in lines[0] and "invalidation_header" in lines[0], proc.stdout
