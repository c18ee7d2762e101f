"""The suite under the other Django and Python versions (django/test-matrix):
one test per entry of the script's ENTRIES, so the versions pyproject.toml's
classifiers name are the versions CI runs. Each entry runs the whole suite
in its own venv (about 15 s once the venv exists).

Runs when MIZAN_HUB_MATRIX is set (django/ci-test sets it; a plain
``pytest`` run skips these), never inside a matrix run itself. An entry
whose Python is not on the machine is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "test-matrix"


def entries() -> list[str]:
    text = SCRIPT.read_text()
    found = re.search(r"^ENTRIES=\(([^)]*)\)", text, re.M)
    assert found, "test-matrix has no ENTRIES=(...) line"
    return found.group(1).split()


def test_the_classifiers_name_the_tested_versions():
    """Django and Python versions in the classifiers = this run's (the main
    suite's) plus the matrix entries'."""
    if os.environ.get("MIZAN_HUB_MATRIX_INNER"):
        pytest.skip("inside a matrix run: the main run checks this")
    import platform
    from importlib.metadata import metadata

    import django
    classifiers = metadata("django-mizan-hub").get_all("Classifier")
    named = {c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Framework :: Django :: ")}
    tested = {e.split(":")[0] for e in entries()} | {"%d.%d" % django.VERSION[:2]}
    assert named == tested
    named = {c.rsplit(" :: ", 1)[1] for c in classifiers
             if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    tested = {e.split(":")[1] for e in entries()} | {"%s.%s" % platform.python_version_tuple()[:2]}
    assert named == tested


@pytest.mark.parametrize("entry", entries())
def test_suite_under(entry):
    if os.environ.get("MIZAN_HUB_MATRIX_INNER"):
        pytest.skip("inside a matrix run")
    if not os.environ.get("MIZAN_HUB_MATRIX"):
        pytest.skip("set MIZAN_HUB_MATRIX=1 (django/ci-test does) to run the matrix")
    proc = subprocess.run([str(SCRIPT), entry], capture_output=True, text=True, timeout=900)
    summary = proc.stdout.strip()
    if proc.returncode == 3:
        pytest.skip(summary)
    assert proc.returncode == 0, f"{summary}\n{proc.stderr[-4000:]}"
    assert re.search(r": \d+ passed", summary) and "failed" not in summary, summary
    print(summary)
