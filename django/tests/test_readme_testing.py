"""The samples of django/README.md's "Testing your own app" run as tests:
the TestCase one under Django's runner, the pytest one under pytest-django,
both in the user-style project without Redis (tests/userproject), with
``Todo`` the README's model, as tests/readme_samples.py provides it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DJANGO = Path(__file__).resolve().parents[1]
PRELUDE = "from tests.testapp.models import Todo\n\n"


def section_samples() -> list[str]:
    text = (DJANGO / "README.md").read_text()
    section = text.split("\n## Testing your own app\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)


def run(tmp_path: Path, code: str, module: str, args: list[str]) -> tuple[str, str]:
    (tmp_path / f"{module}.py").write_text(PRELUDE + code)
    log = tmp_path / "redis.log"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DJANGO_SETTINGS_MODULE", "MIZAN_HUB_TEST_REDIS_URL")}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), str(DJANGO)]),
               USERPROJECT_REDIS_LOG=str(log))
    proc = subprocess.run([sys.executable, *args], cwd=DJANGO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not log.exists(), log.read_text()  # no Redis client made
    return proc.stdout, proc.stderr


def test_the_section_has_both_samples():
    samples = section_samples()
    assert len(samples) == 2
    assert "MizanHubTestMixin, TestCase" in samples[0]
    assert "mizan_hub_published" in samples[1]


def test_the_testcase_sample_passes_under_djangos_runner(tmp_path):
    _, err = run(tmp_path, section_samples()[0], "readme_testcase",
                 ["-m", "django", "test", "--settings", "tests.userproject.settings",
                  "readme_testcase"])
    assert re.search(r"Ran 2 tests .*\n\nOK", err, re.S), err


def test_the_pytest_sample_passes_under_pytest_django(tmp_path):
    out, _ = run(tmp_path, section_samples()[1], "readme_pytest",
                 ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--noconftest",
                  "--rootdir", str(tmp_path), "--ds", "tests.userproject.settings",
                  str(tmp_path / "readme_pytest.py")])
    assert "1 passed" in out, out
