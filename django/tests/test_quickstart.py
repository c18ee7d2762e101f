"""django/QUICKSTART.md, followed literally from a fresh ``startproject``:
every ```sh line and every file block, in order, then two clients that see
each other's change through the real hub.

What differs from a person at a terminal, and why:
- the install lines (``pip install``, ``cmake``, ``npm``) are not run: this
  suite runs in a venv that has the package (editable), the hub binary is
  built (the test is skipped without it), and the client bundle is
  client-js's own build (copied when it exists, else that ``cp`` is skipped
  and the page's script is not served);
- the ports: the suite's own redis-server, and free ports for the hub and
  runserver instead of 6379, 8765 and 8000 (set at the end of settings.py,
  before ``mizan_hub_config`` reads them, and in the page's hub URL);
- the "tabs" are two WebSocket clients subscribed like the page's script,
  and HTTP requests do what its form does; with ``MIZAN_QUICKSTART_TABS``
  (a command, given the site's URL: tests/e2e/ci-test sets it to its
  ``quickstart-tabs.mjs``) the page itself then runs in two Chromium tabs,
  its hub URL pointed at the test's hub port.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import HUB, free_port, running_hub

websocket = pytest.importorskip("websocket")

DJANGO = Path(__file__).resolve().parents[1]
ROOT = DJANGO.parent
QUICKSTART = DJANGO / "QUICKSTART.md"

pytestmark = pytest.mark.skipif(not HUB.is_file(), reason=f"no hub binary at {HUB}")


def blocks() -> list[tuple[str, str]]:
    """(info string, body) of every fenced block, in order."""
    return re.findall(r"^```([^\n]*)\n(.*?)^```", QUICKSTART.read_text(), re.S | re.M)


class Terminal:
    """Runs the quickstart's lines the way a shell in its directory would."""

    def __init__(self, home: Path):
        self.cwd = home
        bin_dir = str(Path(sys.executable).parent)  # python, django-admin
        self.env = {k: v for k, v in os.environ.items()
                    if k != "DJANGO_SETTINGS_MODULE" and not k.startswith("MIZAN_HUB_")}
        self.env["PATH"] = bin_dir + os.pathsep + self.env.get("PATH", "")
        self.env["PWD"] = str(home)
        self.skipped: list[str] = []

    def run(self, line: str) -> None:
        words = shlex.split(line, comments=True)
        if not words:
            return
        if words[0] == "export" and words[1].startswith("MIZAN="):
            self.env["MIZAN"] = str(ROOT)
        elif words[0] == "cd":
            self.cwd = self.cwd / words[1]
        elif words[0] in ("pip", "cmake") or line.startswith("(cd \"$MIZAN/client-js\""):
            self.skipped.append(line)
        elif words[0] == "cp" and not Path(os.path.expandvars(words[1].replace("$MIZAN", str(ROOT)))).exists():
            self.skipped.append(line)
        else:
            proc = subprocess.run(line, shell=True, cwd=self.cwd, env=self.env,
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, f"$ {line}\n{proc.stdout}\n{proc.stderr}"


def wait_http(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{url} did not answer:\n{log.read_text()}")
            time.sleep(0.1)


class Tab:
    """What the page's script does: subscribe to `notes`, load, post."""

    def __init__(self, hub_url: str, site: str):
        self.site = site
        self.ws = websocket.create_connection(hub_url, timeout=5)
        assert "welcome" in json.loads(self.ws.recv())
        self.ws.send(json.dumps({"action": "subscribe", "context": "notes", "params": {}}))
        assert json.loads(self.ws.recv()).get("subscribed") is True
        jar = http.cookiejar.CookieJar()
        self.http = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = self.http.open(site + "/").read().decode()
        assert "connect({ url:" in page and "hub.subscribe('notes'" in page
        self.csrf = next(c.value for c in jar if c.name == "csrftoken")

    def notes(self) -> list[str]:
        return json.loads(self.http.open(self.site + "/notes/").read())["notes"]

    def add(self, text: str) -> None:
        request = urllib.request.Request(
            self.site + "/notes/", data=urllib.parse.urlencode({"text": text}).encode(),
            headers={"X-CSRFToken": self.csrf}, method="POST")
        assert self.http.open(request).status == 200

    def pushed(self) -> dict:
        return json.loads(self.ws.recv())


def test_the_quickstart_from_startproject_to_two_tabs(tmp_path, redis_url, r):
    started = time.monotonic()
    term = Terminal(tmp_path)
    hub_port, web_port = free_port(), free_port()
    run_lines: list[str] = []
    for info, body in blocks():
        words = info.split()
        if not words:
            continue
        target = next((w[5:] for w in words if w.startswith("file=")), None)
        if target:
            path = term.cwd / target
            path.parent.mkdir(parents=True, exist_ok=True)
            if "append" in words:
                with open(path, "a") as f:
                    f.write("\n" + body)
            else:
                path.write_text(body)
            if target == "mysite/settings.py":
                with open(path, "a") as f:
                    f.write("\n# tests/test_quickstart.py: the suite's Redis and free ports\n"
                            f"MIZAN_HUB['REDIS_URL'] = {redis_url!r}\n"
                            f"MIZAN_HUB['HUB']['listen'] = '127.0.0.1:{hub_port}'\n"
                            f"CSRF_TRUSTED_ORIGINS = ['http://127.0.0.1:{web_port}']\n")
        elif words[0] == "sh":
            lines = [line for line in body.splitlines() if line.strip()]
            if any(re.match(r"(redis-server|\S*mizan-hub\S* --config)", line) for line in lines):
                run_lines = lines  # the "Run" block: started below
                continue
            for line in lines:
                term.run(line)
    assert term.cwd.name == "mysite" and (term.cwd / "hub.conf").is_file()
    page = term.cwd / "notes/templates/notes/index.html"
    assert "ws://127.0.0.1:8765/" in page.read_text()
    page.write_text(page.read_text().replace("ws://127.0.0.1:8765/", f"ws://127.0.0.1:{hub_port}/"))
    assert [line.split()[0] for line in run_lines] == ["redis-server", '"$MIZAN/build/bin/mizan-hub"',
                                                       "python"]
    # the hub, with the command line the quickstart gives
    hub_args = shlex.split(run_lines[1])[1:]
    assert hub_args == ["--config", "hub.conf"]
    with running_hub(["--config", str(term.cwd / "hub.conf")], hub_port, tmp_path / "hub.log",
                     env=term.env) as hub_url:
        assert shlex.split(run_lines[2]) == ["python", "manage.py", "runserver"]
        log = tmp_path / "runserver.log"
        with open(log, "w") as out:
            web = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload",
                                    f"127.0.0.1:{web_port}"], cwd=term.cwd, env=term.env,
                                   stdout=out, stderr=out)
        try:
            site = f"http://127.0.0.1:{web_port}"
            wait_http(site + "/notes/", web, log)
            a, b = Tab(hub_url, site), Tab(hub_url, site)
            for tab in (a, b):
                assert tab.notes() == []
            a.add("milk")
            assert b.pushed()["invalidate"] == ["notes"]
            assert a.pushed()["invalidate"] == ["notes"]
            assert b.notes() == ["milk"]
            b.add("eggs")
            assert a.pushed()["invalidate"] == ["notes"]
            assert a.notes() == ["milk", "eggs"]
            if not any(line.startswith("cp ") for line in term.skipped):
                script = urllib.request.urlopen(site + "/static/notes/hub-client.js").read()
                assert b"WebSocket" in script
            tabs = os.environ.get("MIZAN_QUICKSTART_TABS")
            if tabs:
                assert not any(line.startswith("cp ") for line in term.skipped), \
                    "the page's client bundle was not built (client-js/dist-bundle)"
                proc = subprocess.run([*shlex.split(tabs), site], capture_output=True, text=True,
                                      timeout=90)
                assert proc.returncode == 0, f"two tabs in Chromium:\n{proc.stdout}\n{proc.stderr}"
                print(proc.stdout)
        finally:
            web.terminate()
            web.wait(10)
    print(f"quickstart followed in {time.monotonic() - started:.1f} s; "
          f"not run here: {term.skipped}")
