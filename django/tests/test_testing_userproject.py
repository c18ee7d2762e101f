"""A user-style project (tests/userproject: test settings without Redis)
under Django's test runner and under pytest-django: its model saves are
recorded with test mode left on auto, rollbacks drop them, the helpers pass
and fail with clear messages, and no Redis client is ever made (the guard
logs any; the control run with test mode off shows that it would)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DJANGO = Path(__file__).resolve().parents[1]


def run(args: list[str], tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / "redis.log"
    environ = {k: v for k, v in os.environ.items()
               if k not in ("DJANGO_SETTINGS_MODULE", "MIZAN_HUB_TEST_REDIS_URL")}
    environ.update(USERPROJECT_REDIS_LOG=str(log), **env)
    proc = subprocess.run([sys.executable, *args], cwd=DJANGO, env=environ,
                          capture_output=True, text=True, timeout=120)
    return proc, log.read_text() if log.exists() else ""


def test_under_djangos_runner(tmp_path):
    proc, redis_log = run(["-m", "django", "test", "-v", "2", "--settings",
                           "tests.userproject.settings", "tests.userproject.cases_unittest"],
                          tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Ran 6 tests" in proc.stderr and "OK" in proc.stderr
    assert redis_log == ""


def test_under_pytest_django(tmp_path):
    # --noconftest: not this suite's conftest (it starts a redis-server)
    proc, redis_log = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--noconftest",
                           "--ds", "tests.userproject.settings",
                           "tests/userproject/cases_pytest.py"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "4 passed" in proc.stdout
    assert redis_log == ""


def test_the_control_run_with_test_mode_off_reaches_for_redis(tmp_path):
    """The same project with MIZAN_HUB["TEST_MODE"] False: the saves go to
    the outbox and its relay makes a Redis client (the guard logs it), and
    the helpers say that test mode is off."""
    proc, redis_log = run(["-m", "django", "test", "--settings", "tests.userproject.settings",
                           "tests.userproject.cases_unittest.TodoTests"], tmp_path,
                          USERPROJECT_TEST_MODE="off")
    assert proc.returncode == 1
    assert "mizan-hub's test mode is off" in proc.stderr
    assert "redis.client.Redis made at" in redis_log
