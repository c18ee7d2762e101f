"""Fixtures of the deploy suite: the integration suite's real redis-server
and hub (tests/integration/hubtest.py), started on free loopback ports and
always stopped, and what the hub binary says about itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "deploy" / "lb"))

from hubtest import HUB_BIN, Hub, RedisServer, run_cli  # noqa: E402

DEPLOY = ROOT / "deploy"


def hub_help() -> str:
    return run_cli("--help").stdout


def hub_has(setting: str) -> bool:
    """True when `mizan-hub --help` lists --<setting>."""
    return f"--{setting} " in hub_help() or f"--{setting}\n" in hub_help()


def pytest_report_header(config):
    return f"mizan-hub binary: {HUB_BIN}"


@pytest.fixture
def procs(tmp_path):
    """A list to append started things (Hub, RedisServer, Balancer) to; each
    is stopped at the end, hubs first."""
    started = []
    yield started
    for p in sorted(started, key=lambda p: 0 if isinstance(p, Hub) else 1):
        try:
            p.stop() if not isinstance(p, RedisServer) else p.kill()
        except Exception:
            pass


@pytest.fixture
def redis_server(tmp_path, procs):
    r = RedisServer(tmp_path / "redis")
    r.start()
    procs.append(r)
    return r


@pytest.fixture
def make_hub(tmp_path, procs):
    def make(redis: RedisServer, wait_ready: bool = True, **settings) -> Hub:
        h = Hub(tmp_path / f"hub{sum(isinstance(p, Hub) for p in procs)}", redis.url, **settings)
        procs.append(h)
        return h.start(wait_ready=wait_ready)
    return make


def parse_exposition(text: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Prometheus text -> ({family: type}, {series name: label names seen})."""
    families: dict[str, str] = {}
    series: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            families[name] = kind
        elif line and not line.startswith("#"):
            head = line.rsplit(" ", 1)[0]
            name, _, labels = head.partition("{")
            names = {part.split("=", 1)[0] for part in labels.rstrip("}").split(",") if part}
            series.setdefault(name, set()).update(names)
    return families, series


@pytest.fixture(scope="session")
def hub_series(tmp_path_factory):
    """What a real hub exports on /metrics: ({family: type}, {series: labels}).
    Two workers, so the per-worker series are there too, and a refused
    upgrade first, so the labelled rejection counter has a sample (the
    workers publish their numbers every 100 ms: polled until it shows)."""
    import socket

    d = tmp_path_factory.mktemp("series")
    r = RedisServer(d / "redis")
    r.start()
    hub = Hub(d / "hub", r.url, workers=2)
    try:
        hub.start()
        with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 12\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 4"), "the bad upgrade was not refused"
        deadline = time.monotonic() + 10
        while True:
            status, _, body = hub.http("/metrics")
            assert status == 200, status
            families, series = parse_exposition(body)
            if "mizan_hub_rejections_total" in series and "mizan_hub_worker_ready" in series:
                return families, series
            assert time.monotonic() < deadline, body
            time.sleep(0.05)
    finally:
        hub.stop()
        r.kill()


# ---------------------------------------------------------------- podman (opt-in)

CACHE = Path(os.environ.get("MIZAN_DEPLOY_CACHE", "/var/tmp/mizan-deploy"))
BASE_IMAGE = "localhost/mizan-deploy/bookworm:base"


def podman_skip_reason() -> str | None:
    """Why the tests that run containers cannot run here, or None."""
    if os.environ.get("MIZAN_DEPLOY_CONTAINER") != "1":
        return ("opt-in: MIZAN_DEPLOY_CONTAINER=1 deploy/ci-test runs containers on a "
                "mmdebstrap'd Debian 12 base (100 s from nothing, over the suite's one-minute "
                "budget); without it only the checks that need no container engine run")
    for tool in ("podman", "mmdebstrap", "runc"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install podman buildah runc mmdebstrap)"
    return None


def sh(*cmd, timeout=600, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        raise AssertionError(f"{' '.join(cmd)} -> {r.returncode}\n{r.stdout[-3000:]}\n"
                             f"{r.stderr[-3000:]}")
    return r


def ensure_base() -> None:
    """A Debian 12 base image without a registry: mmdebstrap + podman import,
    the tarball cached in CACHE."""
    if sh("podman", "image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    tar = CACHE / "bookworm.tar"
    if not tar.exists():
        sh("mmdebstrap", "--variant=minbase", "bookworm", str(tar) + ".part.tar",
           "http://deb.debian.org/debian")
        os.rename(str(tar) + ".part.tar", tar)
    sh("podman", "import", str(tar), BASE_IMAGE)
