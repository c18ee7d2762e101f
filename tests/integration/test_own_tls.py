"""TLS terminated by the hub itself (--tls-cert; server/src/core/mh_tls,
net/mh_tlspipe): wss:// WebSockets are read with SSL_read and written by the
hub's own writer (mh_writer: the queued shared frames framed into one buffer
per SSL_write, `mizan_hub_writer_tls_writes_total`), everything else on the
port (the HTTP endpoints, streams) is relayed to libwebsockets decrypted.
The same rules as on a plain socket: the close handshake, slow consumers,
fragments and pings, --header-timeout (for the handshake too), and every way
out returns the gauges to zero."""
from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
import time
from pathlib import Path

import jwt

from hubtest import (SLOW, RawWS, connect, envelope_message, insecure_tls, poll,
                     publish_invalidate, run)
from test_wsock import close_code, frame

DATA = Path(__file__).parent / "data"
SECRET = "0123456789abcdef0123456789abcdef-hub-test"
TLS = dict(tls_cert=str(DATA / "test-cert.pem"), tls_key=str(DATA / "test-key.pem"))


def tls_hub(make_hub, redis_server, **settings):
    return make_hub(redis_server, **TLS, **settings)


def opened(hub, rcvbuf: int = 65536) -> RawWS:
    raw = RawWS(hub.port, rcvbuf=rcvbuf, tls=insecure_tls())
    assert "welcome" in raw.recv_json()
    return raw


def rejections(hub, stage: str, reason: str) -> float:
    _, _, body = hub.http("/metrics")
    want = f'mizan_hub_rejections_total{{stage="{stage}",reason="{reason}"}} '
    for line in body.splitlines():
        if line.startswith(want):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def settled(hub) -> dict:
    """The gauges once every closed socket is gone (the scrape's own is the one left)."""
    keys = ("connections", "sockets", "intake_sockets", "queued_bytes", "subscriptions")
    deadline = time.monotonic() + 10 * SLOW
    while True:
        m = hub.metrics()
        g = {k: m.get(f"mizan_hub_{k}") for k in keys}
        if (g["connections"], g["sockets"], g["intake_sockets"]) == (0, 1, 0) or \
                time.monotonic() > deadline:
            return g
        time.sleep(0.05)


def test_wss_auth_subscribe_and_an_invalidation_through_the_hub_s_writer(make_hub, redis_server,
                                                                          r):
    hub = tls_hub(make_hub, redis_server, allow_anonymous="false", jwt_secret=SECRET,
                  jwt_audience="mizan")
    now = int(time.time())
    tok = jwt.encode({"sub": "5", "iat": now, "exp": now + 300, "aud": "mizan"}, SECRET,
                     algorithm="HS256", headers={"kid": "v1"})

    async def main():
        c = await connect(hub)  # wss:// (hubtest: the hub's TLS)
        assert c.welcome["welcome"]["identity"] is None
        await c.send({"action": "auth", "token": tok, "ref": "a"})
        assert (await c.recv())["authed"]["identity"]["sub"] == "5"
        await c.subscribe(context="user", params={"user_id": 5})
        publish_invalidate(r, [{"context": "user", "params": {"user_id": 5}}], {"user": "e1:1"})
        f = await c.recv()
        assert f["invalidate"] == [{"context": "user", "params": {"user_id": "5"}}], f
        await c.close()

    run(main())
    # the frames went through the hub's own writer, not libwebsockets
    assert hub.metric("mizan_hub_writer_tls_writes_total") >= 3
    assert settled(hub)["connections"] == 0


def test_a_large_burst_to_a_slow_reader_arrives_whole_and_in_order(make_hub, redis_server, r):
    """4 MB to a client with a 4 KiB receive buffer that reads only after the
    burst: SSL_write takes part of a batch, then the socket is full
    (WANT_WRITE) many times over; what was framed is offered again, nothing
    is lost, duplicated or reordered."""
    n, pad = 400, "y" * 10000
    hub = tls_hub(make_hub, redis_server, queue_max_msgs=1000, queue_max_bytes=16 << 20,
                  queue_soft_bytes=16 << 20)
    raw = opened(hub, rcvbuf=4096)
    raw.send_text(json.dumps({"action": "subscribe", "channel": "feed", "ref": 1}))
    assert raw.recv_json().get("subscribed") is True
    writes0 = hub.metric("mizan_hub_writer_tls_writes_total")
    pipe = r.pipeline(transaction=False)
    for seq in range(1, n + 1):
        pipe.publish("mizan:events", envelope_message("feed", {}, {"i": seq, "pad": pad}, seq,
                                                      "e1", type_="Tick"))
    pipe.execute()
    # the hub is stuck on this socket (or done): let it fill before reading
    time.sleep(0.5 * SLOW)
    for seq in range(1, n + 1):
        f = raw.recv_json()
        assert f.get("seq") == seq and f["data"]["i"] == seq and f["data"]["pad"] == pad, \
            (seq, {k: v for k, v in f.items() if k != "data"})
    raw.send_text(json.dumps({"action": "ping", "ref": "end"}))
    assert raw.recv_json() == {"pong": True, "ref": "end"}
    # partial writes: more SSL_write calls than 64 KiB batches of 4 MB
    assert hub.metric("mizan_hub_writer_tls_writes_total") - writes0 > n * 10000 / 65536
    raw.close()
    assert settled(hub)["connections"] == 0


def test_the_slow_consumer_close_over_tls(make_hub, redis_server, r):
    hub = tls_hub(make_hub, redis_server, queue_max_msgs=64, queue_max_bytes=131072)
    slow = opened(hub, rcvbuf=4096)
    slow.send_text(json.dumps({"action": "subscribe", "channel": "feed", "ref": 1}))
    assert slow.recv_json().get("subscribed") is True
    pipe = r.pipeline(transaction=False)
    for seq in range(1, 801):
        pipe.publish("mizan:events", envelope_message("feed", {}, {"i": seq, "pad": "z" * 5000},
                                                      seq, "e1", type_="Tick"))
    pipe.execute()
    run(poll(lambda: hub.metric("mizan_hub_slow_consumer_closes_total") >= 1, 10,
             what="mizan_hub_slow_consumer_closes_total >= 1"))
    got, seqs = None, []
    while True:
        f = slow.recv_frame()
        if f is None:
            break
        if f[0] == 8:
            got = int.from_bytes(f[1][:2], "big")
            break
        seqs.append(json.loads(f[1])["seq"])
    slow.close()
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) < 800, len(seqs)
    assert got in (4008, None), got  # the close frame, when the kernel still took it
    assert settled(hub)["connections"] == 0


def test_fragments_pings_and_the_close_handshake_over_tls(make_hub, redis_server):
    hub = tls_hub(make_hub, redis_server)
    raw = opened(hub)
    raw.sock.sendall(frame(b"are you there", opcode=9))
    assert raw.recv_frame() == (10, b"are you there")
    msg = b'{"action":"ping","ref":"frag"}'
    raw.sock.sendall(frame(msg[:5], fin=False) + frame(b"x", opcode=9) +
                     frame(msg[5:12], opcode=0, fin=False) + frame(msg[12:], opcode=0))
    assert raw.recv_frame() == (10, b"x")
    assert raw.recv_json() == {"pong": True, "ref": "frag"}
    raw.sock.sendall(frame(b"{", fin=False) + frame(b"}"))  # a new message inside one
    assert close_code(raw) == 1002
    raw.close()
    raw = opened(hub)
    raw.sock.sendall(frame(struct.pack("!H", 4321) + b"bye", opcode=8))
    f = raw.recv_frame()
    assert f is not None and f[0] == 8 and f[1][:2] == struct.pack("!H", 4321)
    assert raw.recv_frame() is None  # close_notify / EOF after the echo
    raw.close()
    assert settled(hub)["connections"] == 0


def test_a_stalled_handshake_is_dropped_after_the_header_timeout(make_hub, redis_server):
    hub = tls_hub(make_hub, redis_server, header_timeout=1)
    # the first bytes of a TLS record header (a ClientHello that never finishes)
    s = socket.create_connection(("127.0.0.1", hub.port))
    s.sendall(b"\x16\x03\x01\x02\x00\x01")
    s.settimeout(5 * SLOW)
    t0 = time.monotonic()
    try:
        data = s.recv(4096)
    except ConnectionResetError:
        data = b""
    waited = time.monotonic() - t0
    s.close()
    assert data == b"" and 0.7 < waited < 3 * SLOW, (data, waited)
    assert rejections(hub, "tls", "handshake_timeout") == 1
    # one that sends nothing at all is dropped the same way
    s = socket.create_connection(("127.0.0.1", hub.port))
    s.settimeout(5 * SLOW)
    assert s.recv(1) == b""
    s.close()
    assert rejections(hub, "tls", "handshake_timeout") == 2
    assert settled(hub)["intake_sockets"] == 0


def test_garbage_instead_of_a_client_hello_is_closed(make_hub, redis_server):
    hub = tls_hub(make_hub, redis_server)
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256)) * 4):
        s = socket.create_connection(("127.0.0.1", hub.port))
        s.settimeout(5 * SLOW)
        s.sendall(junk)
        try:
            while s.recv(4096):  # at most an alert, then the end
                pass
        except ConnectionResetError:
            pass
        s.close()
    assert rejections(hub, "tls", "handshake") == 2
    assert hub.http("/healthz")[0] == 200
    assert settled(hub)["sockets"] == 1


def test_https_endpoints_over_tls(make_hub, redis_server):
    hub = tls_hub(make_hub, redis_server, ops_public=True)
    status, headers, body = hub.http("/healthz")  # https (hubtest)
    assert (status, body) == (200, "ok\n") and headers.get("cache-control") == "no-store"
    status, _, body = hub.http("/metrics")
    assert status == 200 and "mizan_hub_writer_tls_writes_total" in body
    # a large answer relayed whole (the relay's buffers are 16 KiB)
    status, _, body = hub.http("/ops/")
    assert status == 200 and len(body) > 16384 and body.rstrip().endswith("</html>"), len(body)
    status, _, _ = hub.http("/nothing-here")
    assert status == 404
    assert settled(hub)["sockets"] == 1


def test_tls_files_that_cannot_be_read_stop_the_hub_with_a_reason(tmp_path):
    from hubtest import run_cli
    p = run_cli("--allow-anonymous", "--listen", "127.0.0.1:1", "--redis", "redis://127.0.0.1:1/0",
                "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(DATA / "test-key.pem"))
    assert p.returncode != 0
    assert "cannot load the TLS certificate" in p.stderr and "missing.pem" in p.stderr, p.stderr[-800:]


def test_every_way_out_over_tls_returns_the_gauges_to_zero(make_hub, redis_server):
    hub = tls_hub(make_hub, redis_server, ping_interval=1, pong_timeout=1)
    raws = [opened(hub) for _ in range(5)]
    assert hub.metric("mizan_hub_connections") == 5
    raws[0].sock.sendall(frame(struct.pack("!H", 1000), opcode=8))  # the close handshake
    assert raws[0].recv_frame() == (8, struct.pack("!H", 1000))
    raws[1].sock.close()  # FIN without close_notify or a close frame
    raw2 = raws[2].sock
    raw2.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw2.close()  # RST
    socket.socket.shutdown(raws[3].sock, socket.SHUT_WR)  # half-closed under TLS: EOF
    # raws[4] answers no ping: dropped after ping_interval + pong_timeout
    g = settled(hub)
    assert (g["connections"], g["sockets"], g["intake_sockets"], g["queued_bytes"]) == (0, 1, 0, 0), g
    for raw in raws:
        raw.close()


def test_keepalive_pings_and_the_drain_over_tls(make_hub, redis_server):
    import signal
    hub = tls_hub(make_hub, redis_server, ping_interval=1, pong_timeout=5)
    raw = opened(hub)
    assert raw.recv_frame() == (9, b"mh")  # the hub's ping, after ping_interval of silence
    raw.sock.sendall(frame(b"mh", opcode=10))
    hub.signal(signal.SIGTERM)  # drain_window 0: closed with 1012 at once
    assert close_code(raw) == 1012
    raw.close()
    assert hub.wait(10 * SLOW) == 0


def test_the_per_address_limit_over_tls_is_a_429_after_the_handshake(make_hub, redis_server):
    """--max-connections-per-ip on the TLS listener: the intake answers it,
    decrypted, once the handshake is done (over TLS the address's limit
    cannot be spoken before it)."""
    hub = tls_hub(make_hub, redis_server, allow_anonymous="true", max_connections_per_ip="2")
    held = [opened(hub), opened(hub)]
    ctx = insecure_tls()
    with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"\r\n")
            status = t.recv(4096).split(b"\r\n", 1)[0].decode()
    assert status.split()[1] == "429", status
    for raw in held:  # the scrape below is a connection from the address too
        raw.close()
    deadline = time.monotonic() + 5 * SLOW
    while hub.http("/metrics")[0] != 200:  # until the hub has seen them go
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert rejections(hub, "limit", "ip_limit") >= 1  # (a refused scrape counts too)
