"""Issue 14, item 3: with --workers N one scrape covers every worker (any
worker answers with all of them summed, complete on every scrape), counters
survive a worker's restart, and --admin-listen keeps /metrics off the public
port."""

from __future__ import annotations

import os
import signal
import socket
import time

from hubtest import SLOW, connect, free_port, run


def scrape(port: int) -> tuple[int, dict[str, float]]:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3 * SLOW)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode()
    finally:
        conn.close()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return resp.status, out


def status(port: int, path: str) -> int:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3 * SLOW)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def workers_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def test_one_scrape_covers_every_worker(make_hub, redis_server):
    admin = free_port()
    hub = make_hub(redis_server, allow_anonymous=True, workers=2,
                   admin_listen=f"127.0.0.1:{admin}", wait_ready=False)
    deadline = time.monotonic() + 10 * SLOW
    while time.monotonic() < deadline:
        try:
            if status(admin, "/readyz") == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)

    async def main():
        clients = [await connect(hub) for _ in range(8)]
        await_ok = time.monotonic() + 3 * SLOW
        while True:  # each worker shares its numbers every 100 ms
            code, m = scrape(admin)
            assert code == 200
            if m.get("mizan_hub_connections") == 8 or time.monotonic() > await_ok:
                break
            time.sleep(0.05)
        for _ in range(10):  # complete whichever worker answers
            code, m = scrape(admin)
            assert m["mizan_hub_connections"] == 8, m
            assert m["mizan_hub_workers"] == 2
            assert m['mizan_hub_worker_connections{worker="0"}'] + \
                m['mizan_hub_worker_connections{worker="1"}'] == 8
            assert m["mizan_hub_ready"] == 2
        before = m["mizan_hub_connections_total"]
        assert before >= 8
        # a worker dies; its successor continues its counters
        victim = workers_of(hub.pid)[0]
        os.kill(victim, signal.SIGKILL)
        for c in clients:
            await c.close()
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline:
            code, m = scrape(admin)
            if m.get("mizan_hub_ready") == 2 and len(workers_of(hub.pid)) == 2:
                break
            time.sleep(0.1)
        assert m["mizan_hub_ready"] == 2
        assert m["mizan_hub_connections_total"] >= before, (m["mizan_hub_connections_total"], before)
    run(main())
    # the public port does not expose /metrics; the admin one takes no WebSocket
    assert status(hub.port, "/metrics") == 404
    assert status(hub.port, "/healthz") == 200
    assert status(admin, "/healthz") == 200
    with socket.create_connection(("127.0.0.1", admin), timeout=5 * SLOW) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 404 ")
