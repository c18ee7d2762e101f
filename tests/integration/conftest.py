"""Fixtures: a fresh redis-server and hub per test, on free loopback ports.

After each test body the hubs it started are stopped (SIGTERM, then SIGKILL
at a deadline) and, under a sanitizer build (MH_HUB_BIN), their stderr is
checked for AddressSanitizer/LeakSanitizer/UBSan reports: a report fails the
test in its call phase, so it shows as `not ok` in TAP.
"""

from __future__ import annotations

import os

import pytest

from hubtest import HUB_BIN, Hub, RedisServer


def pytest_report_header(config):
    return f"mizan-hub binary: {HUB_BIN}"


def pytest_collection_modifyitems(config, items):
    if not os.access(HUB_BIN, os.X_OK):
        raise pytest.UsageError(f"no hub binary at {HUB_BIN}: build it first")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    failed = None
    try:
        result = yield
    except BaseException as e:  # the test failed: still stop and check the hubs
        failed = e
        result = None
    problems = []
    for hub in getattr(item, "_mh_hubs", []):
        hub.stop()
        report = hub.sanitizer_report()
        if report:
            problems.append(f"sanitizer report in hub stderr ({hub.stderr_path}):\n{report}")
        if failed is not None:
            item.add_report_section("call", "stderr",
                                    f"--- hub {hub.argv()}\n{hub.stderr_text()[-6000:]}")
    if failed is not None:
        if problems:
            raise AssertionError("\n\n".join(problems)) from failed
        raise failed
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
    return result


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def aof_redis(tmp_path):
    """A redis-server that fsyncs every write, so SIGKILL + restart keeps data."""
    server = RedisServer(tmp_path / "redis-aof", aof=True)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def make_hub(request, tmp_path):
    """make_hub(redis, wait_ready=True, **settings) -> a started Hub."""
    hubs = []
    request.node._mh_hubs = hubs

    def make(redis: RedisServer, wait_ready: bool = True, **settings) -> Hub:
        hub = Hub(tmp_path / f"hub{len(hubs)}", redis.url, **settings)
        hubs.append(hub)
        return hub.start(wait_ready=wait_ready)

    yield make
    for hub in hubs:
        hub.kill()


@pytest.fixture
def hub(make_hub, redis_server):
    return make_hub(redis_server)


@pytest.fixture
def r(redis_server):
    client = redis_server.client()
    yield client
    client.close()
