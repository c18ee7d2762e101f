"""Every ```python sample of django/README.md runs (tests/readme_samples.py,
one fresh interpreter each), and its doctest-style claims hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme_samples import samples

DJANGO = Path(__file__).resolve().parents[1]


def first_line(code: str) -> str:
    return next(line for line in code.splitlines() if line.strip())[:60]


@pytest.mark.parametrize("index", range(len(samples())), ids=lambda i: f"sample{i}")
def test_the_readme_sample_runs(index, redis_url, r):
    code = samples()[index]
    args = [sys.executable, "-m", "tests.readme_samples", str(index)]
    if "MIZAN_HUB = {" in code and "CONTEXTS" in code:
        args.append("--check-settings")  # the adoption sample: settings that pass the checks
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "MIZAN_HUB_TEST_REDIS_URL": redis_url}
    proc = subprocess.run(args, cwd=DJANGO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{first_line(code)}\n{proc.stderr[-3000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["statements"] > 0


def test_the_samples_are_found_and_claims_are_checked():
    all_samples = samples()
    assert len(all_samples) >= 7
    transports = next(s for s in all_samples if "invalidation_header(" in s)
    from tests.readme_samples import claim
    assert sum(claim(line) is not None for line in transports.splitlines()) == 3
