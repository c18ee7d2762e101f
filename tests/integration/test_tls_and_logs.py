"""TLS on the hub's one port (wss:// and https://) and machine-readable logs
(issue 4 items 2 and 11)."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.request
from pathlib import Path

import websockets

DATA = Path(__file__).parent / "data"


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test certificate is self-signed
    return ctx


def test_tls_serves_https_and_wss(make_hub, redis_server):
    hub = make_hub(redis_server, wait_ready=False, tls_cert=str(DATA / "test-cert.pem"),
                   tls_key=str(DATA / "test-key.pem"))
    url = f"https://127.0.0.1:{hub.port}/readyz"
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, context=_insecure(), timeout=2) as resp:
                status, headers = resp.status, resp.headers
                break
        except Exception:
            time.sleep(0.1)
    assert status == 200, "no https /readyz within 10 s"
    assert headers.get("Cache-Control") == "no-store"

    async def wss():
        async with websockets.connect(f"wss://127.0.0.1:{hub.port}/", ssl=_insecure(),
                                      open_timeout=5) as ws:
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert welcome["welcome"]["protocol"] == 1
            await ws.send(json.dumps({"action": "ping", "ref": "tls"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"pong": True, "ref": "tls"}

    asyncio.run(wss())

    async def plain_ws_refused():
        try:
            async with websockets.connect(f"ws://127.0.0.1:{hub.port}/", open_timeout=3):
                return False
        except Exception:
            return True

    assert asyncio.run(plain_ws_refused()), "a plain ws:// handshake succeeded on the TLS port"
    assert hub.sanitizer_report() is None


def test_json_log_lines(make_hub, redis_server):
    hub = make_hub(redis_server, log_format="json")
    hub.stop(timeout=10)
    lines = [l for l in hub.stderr_text().splitlines() if l.strip()]
    assert lines, "the hub logged nothing"
    for line in lines:
        if line.startswith(("==", "    #", "SUMMARY")):
            continue  # a sanitizer's own output is checked elsewhere
        rec = json.loads(line)
        assert set(rec) == {"ts", "level", "proc", "msg"}, rec
        assert rec["level"] in {"debug", "info", "warn", "error"}
    assert any("listening on" in json.loads(l)["msg"] for l in lines if l.startswith("{"))
