"""deploy/lb/haproxy.cfg and deploy/lb/nginx.conf, checked by the balancers
themselves and then run for real (rendered by deploy/lb/render.py with this
test's loopback ports) in front of two real hubs: every WebSocket gets its
welcome through the balancer, connections spread over both hubs, and a hub
that is not ready gets no new connections.

The balancers connect to the hubs from 127.0.0.9 (HAProxy `source`, nginx
`proxy_bind`), the address the hubs trust; the test's own scrapes come from
127.0.0.1 and the clients from 127.0.0.2-4.
"""

from __future__ import annotations

import asyncio
import http.client
import signal
import socket
import subprocess

import pytest
from websockets.exceptions import InvalidStatus

from conftest import DEPLOY, hub_has
from hubtest import RedisServer, SseStream, connect, free_port, poll, publish_invalidate, run
from render import Haproxy, Nginx, RenderError, render_haproxy, render_nginx

LB_SOURCE = "127.0.0.9"
PROXY_SETTINGS_OK = hub_has("trusted-proxies") and hub_has("proxy-protocol")
NO_PROXY_REASON = ("this mizan-hub's --help lists no --trusted-proxies / --proxy-protocol "
                   "(a hub older than issue 14 item 2): it cannot read a PROXY header or "
                   "trust X-Forwarded-For, so the client address cannot reach it")


def trust_settings(proxy_protocol: bool) -> dict:
    if not PROXY_SETTINGS_OK:
        return {}
    return {"trusted_proxies": LB_SOURCE, "proxy_protocol": "true" if proxy_protocol else "false"}


def lb_get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def gauge(hub, name: str = "mizan_hub_connections") -> int:
    return int(hub.metric(name))


async def open_clients(url: str, n: int, opened: list, **kw) -> list[str]:
    """Opens n clients one after the other (each waits for its welcome);
    returns the hub id of each welcome."""
    hubs = []
    for _ in range(n):
        c = await connect(url, **kw)
        opened.append(c)
        hubs.append(c.hub_id)
    return hubs


async def close_all(clients: list) -> None:
    await asyncio.gather(*(c.close() for c in clients))


# ---------------------------------------------------------------- static checks


def test_haproxy_committed_file_is_valid():
    r = subprocess.run(["haproxy", "-c", "-f", str(DEPLOY / "lb" / "haproxy.cfg")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_nginx_committed_file_is_valid():
    r = subprocess.run(["nginx", "-t", "-c", str(DEPLOY / "lb" / "nginx.conf")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def directives(path) -> str:
    """The file without comments (what the balancer reads)."""
    return "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())


def test_committed_files_say_what_the_docs_promise():
    h = directives(DEPLOY / "lb" / "haproxy.cfg")
    for needle in ("balance leastconn", "timeout tunnel", "send-proxy-v2",
                   "http-check send meth GET uri /readyz", "http-check expect status 200",
                   "check inter"):
        assert needle in h, f"haproxy.cfg lost {needle!r}"
    for sticky in ("cookie ", "stick-table", "stick on", "balance source"):
        assert sticky not in h, f"haproxy.cfg is sticky: {sticky!r}"
    n = directives(DEPLOY / "lb" / "nginx.conf")
    for needle in ("least_conn", "proxy_set_header Upgrade $http_upgrade",
                   "proxy_set_header X-Forwarded-For", "proxy_set_header X-Forwarded-Proto",
                   "proxy_read_timeout 1h", "proxy_next_upstream error timeout http_502 http_503"):
        assert needle in n, f"nginx.conf lost {needle!r}"
    for sticky in ("ip_hash", "hash ", "sticky"):
        assert sticky not in n, f"nginx.conf is sticky: {sticky!r}"


def test_render_refuses_a_file_it_does_not_know():
    text = (DEPLOY / "lb" / "haproxy.cfg").read_text().replace("    bind :80\n", "")
    with pytest.raises(RenderError, match="frontend bind"):
        render_haproxy(text, listen="127.0.0.1:1", hubs=["127.0.0.1:2"])
    text = (DEPLOY / "lb" / "nginx.conf").read_text()
    with pytest.raises(RenderError, match="HOST:PORT"):
        render_nginx(text, listen="127.0.0.1:1", hubs=["nowhere"])


# ---------------------------------------------------------------- HAProxy, running


def start_haproxy(tmp_path, procs, hubs, proxy_protocol: bool) -> Haproxy:
    lb = Haproxy(tmp_path / "haproxy", free_port(), [f"127.0.0.1:{h.port}" for h in hubs],
                 proxy_protocol=proxy_protocol, source=LB_SOURCE)
    r = lb.check()
    assert r.returncode == 0, r.stdout + r.stderr
    procs.append(lb)
    lb.start()
    # Every hub passed a /readyz check (L7OK), not just the initial state.
    run(poll(lambda: all(s["check_status"] == "L7OK" and s["status"] == "UP"
                         for s in lb.server_states().values()) and
             len(lb.server_states()) == len(hubs),
             10, what="every hub UP by its /readyz check"), 15)
    return lb


def test_haproxy_spreads_skips_an_unready_hub_and_takes_it_back(tmp_path, procs, make_hub,
                                                             redis_server):
    # hub-b has a Redis of its own, so its link can be cut without touching hub-a's.
    redis_b = RedisServer(tmp_path / "redis-b")
    redis_b.start()
    procs.append(redis_b)
    # --ops-public: the operator page is on the hubs' public port; the balancer hides it
    a = make_hub(redis_server, hub_id="hub-a", ops_public=True, **trust_settings(True))
    b = make_hub(redis_b, hub_id="hub-b", ops_public=True, **trust_settings(True))
    lb = start_haproxy(tmp_path, procs, [a, b], proxy_protocol=PROXY_SETTINGS_OK)

    # Through the balancer: /readyz answers, /metrics and /ops/ do not.
    assert lb_get(lb.port, "/readyz") == 200
    assert lb_get(lb.port, "/metrics") == 404
    assert lb_get(lb.port, "/ops/") == 404 and lb_get(lb.port, "/ops/api/hubs") == 404

    async def body():
        clients = []
        try:
            first = await open_clients(lb.url, 10, clients)
            assert all(h.startswith(("hub-a", "hub-b")) for h in first), first
            na, nb = gauge(a), gauge(b)
            assert na == sum(h.startswith("hub-a") for h in first), (na, first)
            assert na + nb == 10, (na, nb)
            # leastconn with connections opened one after the other: 5 and 5
            assert min(na, nb) >= 4, f"not spread: hub-a {na}, hub-b {nb}"

            redis_b.kill()  # hub-b alive (/healthz 200) but not ready
            await poll(lambda: b.readyz()[0] == 503, 10, what="hub-b /readyz 503")
            assert b.http("/healthz")[0] == 200
            await poll(lambda: lb.server_states()["hub2"]["status"] == "DOWN", 10,
                       what="HAProxy marks hub-b DOWN")
            later = await open_clients(lb.url, 6, clients)
            assert all(h.startswith("hub-a") for h in later), later
            assert gauge(a) == na + 6 and gauge(b) == nb, (gauge(a), gauge(b))
            # hub-b itself still accepts: only the balancer's check keeps clients away.
            direct = await connect(b)
            clients.append(direct)
            assert direct.hub_id.startswith("hub-b")

            redis_b.start(port=redis_b.port)  # Redis back: hub-b ready, HAProxy takes it back
            await poll(lambda: b.readyz()[0] == 200, 15, what="hub-b ready again")
            await poll(lambda: lb.server_states()["hub2"]["status"] == "UP", 10,
                       what="HAProxy marks hub-b UP")
            back = await open_clients(lb.url, 2, clients)  # leastconn: hub-b has fewer
            assert all(h.startswith("hub-b") for h in back), back
        finally:
            await close_all(clients)

    run(body(), 60)


def test_haproxy_retries_a_draining_hub_elsewhere(tmp_path, procs, make_hub, redis_server):
    a = make_hub(redis_server, hub_id="hub-a", **trust_settings(True))
    b = make_hub(redis_server, hub_id="hub-b", drain_window=30, **trust_settings(True))
    lb = start_haproxy(tmp_path, procs, [a, b], proxy_protocol=PROXY_SETTINGS_OK)

    async def body():
        clients = []
        try:
            await open_clients(lb.url, 4, clients)
            assert gauge(b) >= 1
            b.signal(signal.SIGTERM)
            await poll(lambda: refused(b.port), 10, what="hub-b's listener closed")
            # At once, before the health check has noticed: nobody fails.
            later = await open_clients(lb.url, 6, clients)
            assert all(h.startswith("hub-a") for h in later), later
        finally:
            await close_all(clients)

    run(body(), 60)


@pytest.mark.skipif(not PROXY_SETTINGS_OK, reason=NO_PROXY_REASON)
def test_haproxy_gives_the_hub_the_client_address(tmp_path, procs, make_hub, redis_server):
    a = make_hub(redis_server, hub_id="hub-a", max_connections_per_ip=1, **trust_settings(True))
    lb = start_haproxy(tmp_path, procs, [a], proxy_protocol=True)

    async def body():
        clients = []
        try:
            for i in (2, 3, 4):  # three addresses: one connection each is allowed
                clients.append(await connect(lb.url, local_addr=(f"127.0.0.{i}", 0)))
            assert gauge(a, "mizan_hub_peer_addresses") >= 3
            with pytest.raises(InvalidStatus) as e:  # a second one from 127.0.0.2 is not
                clients.append(await connect(lb.url, local_addr=("127.0.0.2", 0)))
            assert e.value.response.status_code == 429
        finally:
            await close_all(clients)

    run(body(), 30)


def test_haproxy_streams_sse_and_passes_its_posts_to_any_hub(tmp_path, procs, make_hub,
                                                             redis_server):
    # SPEC 6.1 through the committed file: the stream's events arrive as the
    # hub writes them (nothing buffers a response without a length), and the
    # browser's POSTs, each on a connection of its own, reach whichever hub
    # leastconn picks -- the one without the stream hands them on.
    a = make_hub(redis_server, hub_id="hub-a", **trust_settings(True))
    b = make_hub(redis_server, hub_id="hub-b", **trust_settings(True))
    lb = start_haproxy(tmp_path, procs, [a, b], proxy_protocol=PROXY_SETTINGS_OK)
    # as a browser asks for it (a balancer that compressed it would chunk it)
    s = SseStream(lb.port, subscribe=[{"context": "todos"}],
                  headers={"Accept-Encoding": "gzip, deflate, br"})
    try:
        assert s.status == 200 and s.headers["content-type"] == "text/event-stream", s.headers
        assert "content-length" not in s.headers and "transfer-encoding" not in s.headers
        s.until(lambda f: f.get("subscribed"))
        for n in range(1, 5):
            assert s.post({"action": "ping", "ref": n}, n=n)[0] == 202, n
            assert s.until(lambda f: "pong" in f) == [{"pong": True, "ref": n}]
        assert gauge(a) + gauge(b) == 1  # the stream; the POSTs came and went
        # leastconn sent POSTs to the hub without the stream, which handed them on
        forwarded = gauge(a, "mizan_hub_sse_posts_forwarded_total") + \
            gauge(b, "mizan_hub_sse_posts_forwarded_total")
        assert forwarded >= 1, forwarded
        r = redis_server.client()
        publish_invalidate(r, ["todos"], {"todos": "e1:1"})
        assert s.recv(2)["invalidate"] == ["todos"]
    finally:
        s.close()


# ---------------------------------------------------------------- nginx, running


def start_nginx(tmp_path, procs, hubs) -> Nginx:
    lb = Nginx(tmp_path / "nginx", free_port(), [f"127.0.0.1:{h.port}" for h in hubs],
               source=LB_SOURCE)
    r = lb.check()
    assert r.returncode == 0, r.stdout + r.stderr
    procs.append(lb)
    return lb.start()


def test_nginx_spreads_and_passes_over_a_draining_hub(tmp_path, procs, make_hub, redis_server):
    a = make_hub(redis_server, hub_id="hub-a", ops_public=True, **trust_settings(False))
    # hub-b drains slowly, so it is still there (answering 503) while we connect.
    b = make_hub(redis_server, hub_id="hub-b", drain_window=30, ops_public=True,
                 **trust_settings(False))
    lb = start_nginx(tmp_path, procs, [a, b])
    assert lb_get(lb.port, "/metrics") == 404
    assert lb_get(lb.port, "/ops/") == 404 and lb_get(lb.port, "/ops/api/hubs") == 404

    async def body():
        clients = []
        try:
            first = await open_clients(lb.url, 10, clients)
            na, nb = gauge(a), gauge(b)
            assert na + nb == 10, (na, nb, first)
            assert min(na, nb) >= 4, f"not spread: hub-a {na}, hub-b {nb}"

            b.signal(signal.SIGTERM)  # hub-b closes its listener and drains
            await poll(lambda: refused(b.port), 10, what="hub-b's listener closed")
            assert b.running()
            later = await open_clients(lb.url, 6, clients)
            assert all(h.startswith("hub-a") for h in later), later
            assert gauge(a) == na + 6, (gauge(a), na)
        finally:
            await close_all(clients)

    run(body(), 60)


@pytest.mark.skipif(not PROXY_SETTINGS_OK, reason=NO_PROXY_REASON)
def test_nginx_gives_the_hub_the_client_address(tmp_path, procs, make_hub, redis_server):
    a = make_hub(redis_server, hub_id="hub-a", max_connections_per_ip=1, **trust_settings(False))
    lb = start_nginx(tmp_path, procs, [a])

    async def body():
        clients = []
        try:
            for i in (2, 3, 4):
                clients.append(await connect(lb.url, local_addr=(f"127.0.0.{i}", 0)))
            with pytest.raises(InvalidStatus) as e:
                clients.append(await connect(lb.url, local_addr=("127.0.0.2", 0)))
            assert e.value.response.status_code == 429
        finally:
            await close_all(clients)

    run(body(), 30)
