"""The demo project, started by example/run as the repository's run command
will start it: page, JSON list, a mutation that reaches Redis once."""

from __future__ import annotations

import http.cookiejar
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

EXAMPLE = Path(__file__).resolve().parents[1] / "example"


@pytest.fixture
def demo(redis_url, tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHON": sys.executable, "MIZAN_HUB_REDIS_URL": redis_url,
           "MIZAN_DEMO_DB": str(tmp_path / "db.sqlite3"),
           "MIZAN_HUB_REGISTRY": str(tmp_path / "registry.json"),
           "MIZAN_HUB_URL": "ws://127.0.0.1:9999/"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = open(tmp_path / "demo.log", "w")
    proc = subprocess.Popen([str(EXAMPLE / "run"), str(port)], env=env, stdout=log, stderr=log,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/api/todos/", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail((tmp_path / "demo.log").read_text())
            time.sleep(0.1)
    yield base, tmp_path
    os.killpg(proc.pid, 15)
    proc.wait(10)
    log.close()


def test_demo_serves_the_page_and_publishes_mutations(demo, r, events):
    base, tmp_path = demo
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/").read().decode()
    assert "ws://127.0.0.1:9999/" in page and "todos/app.js" in page
    # the page's client is @mizan/hub-client's core bundle, which run builds
    assert b"as connect" in opener.open(base + "/static/todos/hub-client.js").read()
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    request = urllib.request.Request(base + "/api/todos/add/", data=b'{"title": "milk"}',
                                     headers={"Content-Type": "application/json",
                                              "X-CSRFToken": csrf, "Referer": base + "/"})
    body = json.loads(opener.open(request).read())
    assert body["invalidate"] == ["todos"] and body["result"]["title"] == "milk"
    # one envelope: the model map published (the list and the board's panels,
    # which count todos), the middleware saw it was done
    [env] = events.envelopes(timeout=2)
    assert env["invalidate"] == ["todos", *(f"board{i}" for i in range(20))]
    response = opener.open(base + "/api/todos/")
    # read before the data: the version of the publish that came after the add
    assert response.headers["X-Mizan-Version"] == f"todos;v={env['versions']['todos']}"
    todos = json.loads(response.read())["todos"]
    assert [t["title"] for t in todos] == ["milk"]
    registry = json.loads((tmp_path / "registry.json").read_text())
    assert registry["contexts"]["todos"] == {"endpoints": ["/api/todos/"], "params": [],
                                             "guard": "public"}
    # the board page's 20 contexts (versions in responses, SPEC 10.1)
    assert sorted(registry["contexts"]) == sorted(["todos", *(f"board{i}" for i in range(20))])
