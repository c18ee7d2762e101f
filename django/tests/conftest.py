"""Fixtures: a private redis-server for the session, a clean database of
Redis keys and counters per test, and a subscriber on the events channel."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
#: The real hub (server/, built into build/bin/mizan-hub), or $MIZAN_HUB_BIN.
HUB = Path(os.environ.get("MIZAN_HUB_BIN", Path(__file__).resolve().parents[2] / "build" / "bin" / "mizan-hub"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; reaped either way."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def redis_server(workdir: Path):
    """A redis-server on a free loopback port (its files in ``workdir``):
    yields its URL once it answers; stopped on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.exit(f"redis-server did not start on port {port}", returncode=3)
            time.sleep(0.02)
    client.close()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc, 5)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """Starts redis-server on a free loopback port; stops it at the end."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@contextlib.contextmanager
def running_hub(args: list[str], port: int, log_path: Path, env: dict | None = None):
    """The real hub started with ``args`` (which make it listen on ``port``):
    yields its WebSocket URL once /readyz answers (a test failure with its
    log when it does not within 10 s); SIGTERM, then SIGKILL, on exit."""
    log = open(log_path, "w")
    proc = subprocess.Popen([str(HUB), *args], stdout=log, stderr=log, env=env)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the hub did not become ready:\n" + log_path.read_text())
                time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        stop(proc, 10)
        log.close()


@pytest.fixture(scope="session", autouse=True)
def _hub_settings(redis_url, django_db_blocker):
    """Points MIZAN_HUB at the private server for the whole session."""
    from django.conf import settings
    from django.test import override_settings
    override = override_settings(MIZAN_HUB={**settings.MIZAN_HUB, "REDIS_URL": redis_url})
    override.enable()
    yield
    override.disable()


@pytest.fixture
def r(redis_url):
    """A client of the test server, emptied before the test; counters zeroed."""
    from mizan_hub import stats
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    stats.reset()
    yield client
    client.close()


class Subscriber:
    def __init__(self, client: redis.Redis, channel: str):
        self.pubsub = client.pubsub()
        self.pubsub.subscribe(channel)
        assert self.pubsub.get_message(timeout=2)["type"] == "subscribe"

    def texts(self, timeout: float = 0.3) -> list[str]:
        """Everything published so far (waits ``timeout`` for the first)."""
        out = []
        while True:
            message = self.pubsub.get_message(timeout=timeout)
            if message is None:
                return out
            if message["type"] == "message":
                out.append(message["data"].decode("utf-8"))
            timeout = 0.05

    def envelopes(self, timeout: float = 0.3) -> list[dict]:
        from mizan_hub import protocol
        out = []
        for text in self.texts(timeout):
            env = protocol.decode_envelope(text)  # every envelope must pass the hub's rules
            assert json.loads(text)["v"] == 1
            out.append(env)
        return out

    def close(self):
        self.pubsub.close()


@pytest.fixture
def events(r):
    sub = Subscriber(r, "mizan:events")
    yield sub
    sub.close()


@pytest.fixture
def subscriber(r):
    subs = []

    def make(channel):
        sub = Subscriber(r, channel)
        subs.append(sub)
        return sub
    yield make
    for sub in subs:
        sub.close()
