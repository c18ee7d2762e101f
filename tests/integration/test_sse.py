"""Server-Sent Events (SPEC 6.1): GET /sse with the query's subscriptions,
the frames as `data:` events, Last-Event-ID resuming the query's
subscriptions, heartbeats, POSTs correlated to the stream by its secret, and
the refusals (bad token, wrong Origin, unknown stream, slow consumer)."""

from __future__ import annotations

import http.client
import json
import socket
import time
import types

import jwt
import pytest

from hubtest import (SLOW, SseStream, StallingProxy, envelope_message,
                     publish_invalidate, send_to_conn, sse_post)

SECRET = "sse-test-secret-of-at-least-32-bytes"
EP = "k2f9a"
TODOS = {"context": "todos", "params": {}}
NOTES = {"context": "notes", "params": {}}


def token(sub="5", exp_in=300) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + exp_in}, SECRET, algorithm="HS256",
                      headers={"kid": "v1"})


def test_stream_frames_are_events_in_order(hub, r):
    s = SseStream(hub.port, subscribe=[{"context": "todos", "ref": 1},
                                       {"channel": "chat", "params": {"room": "a b+c&d=é"}},
                                       "not json", [1]])
    assert s.status == 200
    assert s.headers["content-type"] == "text/event-stream"
    assert s.headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in s.headers  # no Origin, no CORS
    first = s.recv()
    assert set(first) == {"stream"} and s.conn and len(s.secret) == 32
    welcome = s.recv()
    assert welcome["welcome"]["conn"] == s.conn
    # the query's subscriptions, answered as frames would be (errors at once,
    # acks after their Redis read, in order)
    got = [s.recv() for _ in range(4)]
    assert [f["error"]["code"] for f in got if "error" in f] == ["bad_json", "bad_frame"]
    assert [f for f in got if "error" not in f] == [
        {"subscribed": True, "context": "todos", "params": {}, "version": "0:0", "ref": 1},
        {"subscribed": True, "channel": "chat", "params": {"room": "a b+c&d=é"}, "epoch": "0",
         "seq": 0}]
    publish_invalidate(r, ["todos"], {"todos": f"{EP}:1"})
    ev = s.next_event()
    assert ev["data"]["invalidate"] == ["todos"]
    assert ev["id"] == f"{EP}:1,0:0,-,-"  # every query subscription's point, in order
    r.publish("mizan:events", envelope_message("chat", {"room": "a b+c&d=é"}, {"t": "hi\nthere"},
                                               7, "e1"))
    ev = s.next_event()
    assert ev["data"]["data"] == {"t": "hi\nthere"} and ev["id"] == f"{EP}:1,e1:7,-,-"
    # a frame that moves no point carries no id
    send_to_conn(r, hub_id(s), s.conn, {"channel": "other", "params": {}, "type": "x",
                                        "data": None})
    assert s.next_event()["id"] is None
    s.close()


def hub_id(s: SseStream) -> str:
    return s.conn.split(".", 1)[0]


def test_with_origin_the_stream_allows_that_origin(hub):
    s = SseStream(hub.port, headers={"Origin": "https://app.test"})
    assert s.status == 200
    assert s.headers["access-control-allow-origin"] == "https://app.test"
    assert s.headers["access-control-allow-credentials"] == "true"
    s.close()


def test_last_event_id_resumes_the_query_subscriptions(hub, r):
    r.hset("mizan:v:todos", mapping={"e": EP, "n": 3, "u": 3})
    r.hset("mizan:v:notes", mapping={"e": EP, "n": 2, "u": 2})
    query = [{"context": "todos"}, {"context": "notes", "since": f"{EP}:1"}]
    s = SseStream(hub.port, subscribe=query)
    got = s.until(lambda f: f.get("subscribed") and f["context"] == "notes")
    # notes' query since is older than its hash: the first stream is invalidated
    assert any(f.get("reason") == "resume" and f["invalidate"] == [NOTES] for f in got)
    assert s.last_id == f"{EP}:3,{EP}:2"
    r.hset("mizan:v:todos", mapping={"n": 4, "u": 4})
    publish_invalidate(r, ["todos"], {"todos": f"{EP}:4"})
    s.until(lambda f: "invalidate" in f)
    assert s.last_id == f"{EP}:4,{EP}:2"
    s.close()
    # while away: todos changed again, notes did not
    r.hset("mizan:v:todos", mapping={"n": 5, "u": 5})

    back = SseStream(hub.port, subscribe=query, last_event_id=f"{EP}:4,{EP}:2")
    got = back.until(lambda f: f.get("subscribed") and f["context"] == "notes")
    resumes = [f["invalidate"] for f in got if f.get("reason") == "resume"]
    assert resumes == [[TODOS]], got  # exactly what changed since the last id
    assert back.last_id == f"{EP}:5,{EP}:2"
    back.close()

    # a Last-Event-ID of another shape is ignored: the query's since applies
    other = SseStream(hub.port, subscribe=query, last_event_id=f"{EP}:5")
    got = other.until(lambda f: f.get("subscribed") and f["context"] == "notes")
    assert [f["invalidate"] for f in got if f.get("reason") == "resume"] == [[NOTES]], got
    other.close()


def test_heartbeats_keep_an_idle_stream_open(make_hub, redis_server, r):
    hub = make_hub(redis_server, ping_interval=1, pong_timeout=1)
    s = SseStream(hub.port, subscribe=[{"context": "todos"}])
    s.until(lambda f: f.get("subscribed"))
    time.sleep(3.5)  # past ping_interval + pong_timeout: a WebSocket would be dropped
    publish_invalidate(r, ["todos"], {"todos": f"{EP}:1"})
    assert s.recv()["invalidate"] == ["todos"]
    assert s.comments >= 2
    s.close()


def test_posts_are_frames_of_the_stream(hub, r):
    s = SseStream(hub.port)
    s.until(lambda f: "welcome" in f)
    assert s.post({"action": "subscribe", "context": "todos", "ref": "p"})[0] == 202
    assert s.recv() == {"subscribed": True, "context": "todos", "params": {},
                        "version": "0:0", "ref": "p"}
    assert s.post({"action": "ping", "ref": 9})[0] == 202
    assert s.recv() == {"pong": True, "ref": 9}
    assert s.post("{not json")[0] == 202
    assert s.recv()["error"]["code"] == "bad_json"
    # several frames in one POST, one per line, in order
    body = b'{"action":"ping","ref":1}\n\n{"action":"ping","ref":2}\n'
    assert s.post(None, body=body)[0] == 202
    assert [s.recv(), s.recv()] == [{"pong": True, "ref": 1}, {"pong": True, "ref": 2}]
    assert s.post({"action": "rpc", "id": "7", "fn": "todos.add", "args": {}})[0] == 202
    entries = r.xrange("mizan:in", "-", "+")
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields["conn"] == s.conn and json.loads(fields["body"])["fn"] == "todos.add"
    publish_invalidate(r, ["todos"], {"todos": f"{EP}:1"})
    assert s.recv()["invalidate"] == ["todos"]
    s.close()


def test_a_post_that_comes_in_pieces_is_read_to_its_length(hub):
    """The intake reads once per readiness event: a POST whose head comes
    alone and whose body (far over the first read's buffer) follows in
    pieces is read to its Content-Length over several events, then handed
    to the stream whole."""
    s = SseStream(hub.port)
    s.until(lambda f: "welcome" in f)
    body = ('{"action":"ping","ref":"big"' + " " * 50000 + "}").encode()
    head = (f"POST /sse/{s.conn}?secret={s.secret} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", hub.port), timeout=5 * SLOW) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sendall(head)
        time.sleep(0.1)  # not a wait for a condition: the pieces are to arrive apart
        for at in range(0, len(body), 7000):
            c.sendall(body[at:at + 7000])
            time.sleep(0.02)
        answer = b""
        while b"\r\n" not in answer:
            chunk = c.recv(4096)
            assert chunk, f"closed without an answer: {answer!r}"
            answer += chunk
    assert answer.split(b"\r\n", 1)[0].split()[1] == b"202", answer
    assert s.recv() == {"pong": True, "ref": "big"}
    s.close()


def test_post_refusals(hub):
    s = SseStream(hub.port)
    s.until(lambda f: "welcome" in f)
    wrong = "0" * 32 if s.secret != "0" * 32 else "1" * 32
    assert s.post({"action": "ping"}, secret=wrong)[0] == 403
    assert s.post({"action": "ping"}, secret=s.secret[:-1])[0] == 403
    assert s.post({"action": "ping"}, secret="")[0] == 400
    assert sse_post(hub.port, s.conn, None, b'{"action":"ping"}')[0] == 400
    assert s.post({"action": "ping"}, conn=s.conn + "0")[0] == 404
    assert s.post(None, body=b"")[0] == 400
    assert s.post(None, body=b"x" * 70000)[0] == 413
    # nothing of those reached the stream: the next frame answers a good POST
    assert s.post({"action": "ping", "ref": "ok"})[0] == 202
    assert s.recv() == {"pong": True, "ref": "ok"}
    s.close()
    # once the stream is gone its id is unknown
    deadline = time.monotonic() + 5 * SLOW
    while s.post({"action": "ping"})[0] != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    m = hub.metrics()
    assert m['mizan_hub_rejections_total{stage="sse",reason="bad_secret"}'] == 2
    assert m['mizan_hub_rejections_total{stage="sse",reason="unknown_stream"}'] >= 2


def test_token_and_origin_refusals(make_hub, redis_server):
    hub = make_hub(redis_server, allow_anonymous="false", jwt_secret=SECRET,
                   allowed_origins="https://app.test")
    good = SseStream(hub.port, token=token("5"))
    assert good.status == 200
    good.recv()
    assert good.recv()["welcome"]["identity"]["sub"] == "5"
    good.close()
    bad = SseStream(hub.port, token=token("5", exp_in=-100))
    assert bad.status == 401 and "expired" in hub.stderr_text()
    forged = SseStream(hub.port, token=jwt.encode({"sub": "5", "exp": int(time.time()) + 60},
                                                  "other", algorithm="HS256",
                                                  headers={"kid": "v1"}))
    assert forged.status == 401
    # a session cookie from an origin not allowed: 403, as for an upgrade
    evil = SseStream(hub.port, headers={"Cookie": "sessionid=abcdefgh12345678",
                                        "Origin": "https://evil.test"})
    assert evil.status == 403, evil.body
    m = hub.metrics()
    assert m['mizan_hub_rejections_total{stage="upgrade",reason="origin"}'] == 1


def test_admin_listener_serves_no_stream(make_hub, redis_server):
    from hubtest import free_port
    port = free_port()
    hub = make_hub(redis_server, admin_listen=f"127.0.0.1:{port}")
    s = SseStream(port)
    assert s.status == 404
    ok = SseStream(hub.port)
    assert ok.status == 200
    ok.until(lambda f: "welcome" in f)
    assert ok.post({"action": "ping"}, port=port)[0] == 404  # nor its POSTs
    assert ok.post({"action": "ping", "ref": 1})[0] == 202
    assert ok.recv() == {"pong": True, "ref": 1}


GAUGES = ("connections", "sockets", "intake_sockets", "http_sockets", "subscriptions",
          "queued_bytes")
# what a scrape sees with nothing open but itself: its own socket, served by lws
IDLE = {"connections": 0, "sockets": 1, "intake_sockets": 0, "http_sockets": 1,
        "subscriptions": 0, "queued_bytes": 0}


def gauges(hub) -> dict:
    m = hub.metrics()
    return {g: m[f"mizan_hub_{g}"] for g in GAUGES}


def wait_gauges(hub, want: dict, what: str) -> None:
    deadline = time.monotonic() + 5 * SLOW
    while (got := gauges(hub)) != want:
        assert time.monotonic() < deadline, f"{what}: {got}"
        time.sleep(0.05)


def test_a_stream_is_the_hub_s_own_connection(hub, r):
    """A stream is an own connection like a WebSocket (the intake answers the
    200, mh_writer writes it): lws holds nothing for it while it is open, so
    the only request lws serves is the scrape itself."""
    s = SseStream(hub.port, subscribe=[{"context": "todos"}])
    s.until(lambda f: f.get("subscribed"))
    assert gauges(hub) == {"connections": 1, "sockets": 2, "intake_sockets": 0,
                           "http_sockets": 1, "subscriptions": 1, "queued_bytes": 0}
    publish_invalidate(r, ["todos"], {"todos": f"{EP}:1"})
    assert s.next_event()["id"] == f"{EP}:1"
    s.close()
    wait_gauges(hub, IDLE, "the client closed the stream")


def test_a_stream_that_sends_anything_is_closed(hub):
    """SPEC 6.1: a stream's client sends nothing after its request; bytes that
    come anyway end the stream (no close event: nobody reads it)."""
    s = SseStream(hub.port, subscribe=[{"context": "todos"}])
    s.until(lambda f: f.get("subscribed"))
    s.sock.sendall(b"GET /sse HTTP/1.1\r\n\r\n")
    assert s.next_event() is None
    wait_gauges(hub, IDLE, "the stream that sent bytes")
    # and bytes sent with the request head: refused before the stream opens
    with socket.create_connection(("127.0.0.1", hub.port), timeout=5 * SLOW) as sock:
        sock.sendall(b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\nmore")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")
    wait_gauges(hub, IDLE, "the refused stream")
    assert hub.metrics()['mizan_hub_rejections_total{stage="upgrade",reason="body_framing"}'] == 1


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_events_larger_than_a_write_batch_arrive_whole(make_hub, redis_server, r, tls):
    """The writer frames a stream's events into 64 KiB batches, each event
    whole (its id is fixed when it is framed): one larger than a batch gets a
    batch of its own, and a socket that takes it in pieces gets the rest at
    its next EPOLLOUT, in order (over TLS through SSL_write's partial writes)."""
    ctx = None
    if tls:
        import ssl
        from pathlib import Path
        data = Path(__file__).parent / "data"
        hub = make_hub(redis_server, wait_ready=False, tls_cert=str(data / "test-cert.pem"),
                       tls_key=str(data / "test-key.pem"))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the test certificate is self-signed
        hub.wait_ready()
    else:
        hub = make_hub(redis_server)
    s = SseStream(hub.port, subscribe=[{"channel": "feed"}], rcvbuf=4096, tls=ctx)
    s.until(lambda f: f.get("subscribed"))
    sizes = [100, 200_000, 10, 70_000, 5]
    for seq, n in enumerate(sizes, 1):
        r.publish("mizan:events", envelope_message("feed", {}, {"pad": "y" * n}, seq, "e1"))
    got = [s.next_event(timeout=10) for _ in sizes]
    assert [len(ev["data"]["data"]["pad"]) for ev in got] == sizes
    assert [ev["id"] for ev in got] == [f"e1:{seq}" for seq in range(1, len(sizes) + 1)]
    s.close()
    wait_gauges(hub, IDLE, "after the large events")


def test_redis_loss_ends_a_stream_with_1013_and_frees_it(make_hub, redis_server):
    """The hub's Redis going away ends its streams with the close event 1013
    (SPEC 6.1); the stream's socket, subscription and queue go with it."""
    hub = make_hub(redis_server)
    s = SseStream(hub.port, subscribe=[{"context": "todos"}])
    s.until(lambda f: f.get("subscribed"))
    redis_server.kill()
    assert s.until(lambda f: "close" in f, timeout=10)[-1] == {
        "close": {"code": 1013, "reason": "hub lost its Redis link"}}
    assert s.next_event() is None
    wait_gauges(hub, IDLE, "the stream closed with 1013")


def test_slow_consumer_gets_closed(make_hub, redis_server, r):
    hub = make_hub(redis_server, queue_max_msgs=64, queue_max_bytes=65536)
    s = SseStream(hub.port, subscribe=[{"channel": "feed"}], rcvbuf=4096)
    s.until(lambda f: f.get("subscribed"))
    pad = "x" * 4000
    deadline = time.monotonic() + 20 * SLOW
    seq = 0
    while hub.metric("mizan_hub_slow_consumer_closes_total") < 1:
        assert time.monotonic() < deadline, "the stream was never closed"
        pipe = r.pipeline(transaction=False)
        for _ in range(50):
            seq += 1
            pipe.publish("mizan:events", envelope_message("feed", {}, {"pad": pad}, seq, "e1"))
        pipe.execute()
        time.sleep(0.05)
    # reading again: what was in flight, maybe the close event, then the end
    last = None
    while (ev := s.next_event(timeout=5)) is not None:
        last = ev["data"]
    assert last is None or "seq" in last or last == {
        "close": {"code": 4008, "reason": "slow consumer"}}, last
    s.close()
    wait_gauges(hub, IDLE, "the slow consumer")


def test_drain_sends_a_close_event(make_hub, redis_server):
    hub = make_hub(redis_server)
    s = SseStream(hub.port)
    s.until(lambda f: "welcome" in f)
    hub.signal(15)
    assert s.recv() == {"close": {"code": 1012, "reason": "server restarting"}}
    assert s.next_event() is None
    # the drain ends when the last connection is gone: the hub stops, and
    # (under ASan) with nothing of the stream left behind
    assert hub.wait(10 * SLOW) == 0
    assert hub.sanitizer_report() is None


def test_a_post_that_reaches_another_hub_process_is_handed_on(make_hub, redis_server, r):
    """Behind a balancer (or with --workers) a POST may reach a process that
    does not hold the stream: it goes on {prefix}hub:{hub id} to the one
    that does, which checks the secret (SPEC 6.1)."""
    a = make_hub(redis_server)
    b = make_hub(redis_server)
    s = SseStream(a.port)
    s.until(lambda f: "welcome" in f)
    assert s.post({"action": "ping", "ref": "via b"}, port=b.port)[0] == 202
    assert s.recv() == {"pong": True, "ref": "via b"}
    assert b.metric("mizan_hub_sse_posts_forwarded_total") == 1
    # a wrong secret is handed on too (b cannot tell), and refused where the stream is
    wrong = "0" * 32 if s.secret != "0" * 32 else "1" * 32
    assert s.post({"action": "ping", "ref": "bad"}, secret=wrong, port=b.port)[0] == 202
    assert s.post({"action": "ping", "ref": "after"}, port=b.port)[0] == 202
    assert s.recv() == {"pong": True, "ref": "after"}
    assert a.metrics()['mizan_hub_rejections_total{stage="sse",reason="bad_secret"}'] == 1
    # a secret that is not one is refused before it travels
    assert s.post({"action": "ping"}, secret="x" * 32, port=b.port)[0] == 404
    # a stream of this very process that is gone is not handed on
    s.close()
    deadline = time.monotonic() + 5 * SLOW
    while s.post({"action": "ping"})[0] != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert a.metric("mizan_hub_sse_posts_forwarded_total") == 0


def test_with_workers_every_post_reaches_its_stream(make_hub, redis_server):
    """--workers 2 on one SO_REUSEPORT port: streams and POSTs land on either
    worker; each POST's frames still reach their stream, in order."""
    hub = make_hub(redis_server, workers=2)
    streams = [SseStream(hub.port) for _ in range(6)]
    for s in streams:
        s.until(lambda f: "welcome" in f)
    for i in range(5):
        for s in streams:
            assert s.post({"action": "ping", "ref": i}, n=i + 1)[0] == 202
    for s in streams:
        assert [s.recv()["ref"] for _ in range(5)] == list(range(5))
        s.close()
    # with 6 streams and 30 POSTs over 2 workers, some were handed on
    assert hub.metric("mizan_hub_sse_posts_forwarded_total") > 0


def test_numbered_posts_are_handled_in_order(hub):
    """SPEC 6.1: POSTs numbered n are handled in that order whichever way
    they came; repeats are dropped; one that cannot be kept ends the stream."""
    s = SseStream(hub.port)
    s.until(lambda f: "welcome" in f)
    ping = lambda ref: {"action": "ping", "ref": ref}  # noqa: E731
    assert s.post(ping(2), n=2)[0] == 202   # before 1: kept
    assert s.post(ping(3), n=3)[0] == 202
    assert s.post(ping(1), n=1)[0] == 202   # 1, then the kept 2 and 3
    assert s.post(ping(2), n=2)[0] == 202   # a repeat: dropped
    assert s.post(ping(4), n=4)[0] == 202
    assert [s.recv()["ref"] for _ in range(4)] == [1, 2, 3, 4]
    for bad in ("0", "x", "", "01", "9007199254740992"):
        assert s.post(ping(0), n=bad)[0] == 400, bad
    assert s.post(ping(9), n=5 + 40)[0] == 202  # far ahead: cannot be kept
    assert s.recv() == {"close": {"code": 1011, "reason": "POSTs out of order"}}
    assert s.next_event() is None


def test_a_lost_post_ends_the_stream(make_hub, redis_server):
    hub = make_hub(redis_server)
    s = SseStream(hub.port)
    s.until(lambda f: "welcome" in f)
    assert s.post({"action": "ping"}, n=2)[0] == 202  # 1 never comes
    assert s.recv(timeout=10) == {"close": {"code": 1011, "reason": "a POST never arrived"}}


def test_a_stream_ends_when_its_hub_loses_redis(make_hub, redis_server):
    """A POST handed on to a hub process whose Redis link is down (or stalled
    before it noticed) is lost in pub/sub, yet answered 202 where it was
    POSTed: a subscribe lost so would leave its subscription silently
    inactive, with no later POST to notice the hole. So a process that loses
    its link ends its streams with 1013, and the client's reconnect
    resubscribes everything (the fault suite found the lost POSTs: SPEC 6.1)."""
    proxy = StallingProxy(redis_server.port)
    try:
        through_proxy = types.SimpleNamespace(url=f"redis://127.0.0.1:{proxy.port}/0")
        a = make_hub(through_proxy, hub_id="hub-a")
        b = make_hub(redis_server, hub_id="hub-b")
        s = SseStream(a.port, subscribe=[{"context": "todos"}])
        s.until(lambda f: f.get("subscribed"))
        direct = SseStream(b.port)  # on a hub that keeps its link: stays open
        direct.until(lambda f: "welcome" in f)
        proxy.stall()  # half-open: hub-a notices by its canaries
        assert s.recv(timeout=10) == {"close": {"code": 1013,
                                                "reason": "hub lost its Redis link"}}
        assert s.next_event() is None
        assert direct.post({"action": "ping", "ref": 1}, n=1)[0] == 202
        assert direct.recv() == {"pong": True, "ref": 1}
        direct.close()
    finally:
        proxy.close()


def test_a_post_handed_on_into_a_dead_link_is_sent_again(make_hub, redis_server):
    """hub-a hands a POST on while its link to Redis is dead but not yet
    found so: the PUBLISH goes into the link and is lost with it. Redis never
    answered it, so hub-a publishes it again once its link is back; the
    stream's hub drops a repeat by the POST's number (SPEC 6.1)."""
    proxy = StallingProxy(redis_server.port)
    try:
        through_proxy = types.SimpleNamespace(url=f"redis://127.0.0.1:{proxy.port}/0")
        a = make_hub(through_proxy, hub_id="hub-a")
        b = make_hub(redis_server, hub_id="hub-b")
        s = SseStream(b.port)
        s.until(lambda f: "welcome" in f)
        proxy.stall()
        assert s.post({"action": "ping", "ref": 1}, port=a.port, n=1)[0] == 202
        deadline = time.monotonic() + 10 * SLOW
        while a.readyz()[0] == 200:
            assert time.monotonic() < deadline, "hub-a did not notice its dead link"
            time.sleep(0.05)
        proxy.resume(lose=True)
        assert s.recv(timeout=10) == {"pong": True, "ref": 1}
        assert s.post({"action": "ping", "ref": 2}, port=a.port, n=2)[0] == 202
        assert s.recv() == {"pong": True, "ref": 2}
        s.close()
    finally:
        proxy.close()


def test_no_stream_while_the_hub_s_redis_link_is_down(make_hub, redis_server):
    """A stream opened on a process whose Redis link is down would get none
    of the POSTs other processes hand on (a dead link may even still count
    as a subscriber, so they are lost without a trace): it is refused with
    503 until the link is back (SPEC 6.1). WebSockets are not refused."""
    proxy = StallingProxy(redis_server.port)
    try:
        through_proxy = types.SimpleNamespace(url=f"redis://127.0.0.1:{proxy.port}/0")
        a = make_hub(through_proxy, hub_id="hub-a")
        proxy.stall()
        deadline = time.monotonic() + 10 * SLOW
        # not ready when a canary is late; then the link is dropped
        while "subscription is down" not in a.readyz()[1]:
            assert time.monotonic() < deadline, f"hub-a's link still up: {a.readyz()}"
            time.sleep(0.05)
        s = SseStream(a.port)
        assert s.status == 503 and "redis" in s.body.lower(), (s.status, s.body)
        assert a.metrics()['mizan_hub_rejections_total{stage="sse",reason="unavailable"}'] == 1
        proxy.resume()
        a.wait_ready(10)
        s = SseStream(a.port)
        assert s.status == 200
        s.until(lambda f: "welcome" in f)
        s.close()
    finally:
        proxy.close()


def test_streams_over_the_hub_s_own_tls(make_hub, redis_server, r):
    """SPEC 6.1: a stream works on the TLS listener (the hub terminates TLS,
    the intake reads the head, the stream is written through the hub's own
    TLS), and so do its POSTs (read and answered by the intake)."""
    import ssl
    from pathlib import Path
    data = Path(__file__).parent / "data"
    hub = make_hub(redis_server, wait_ready=False, tls_cert=str(data / "test-cert.pem"),
                   tls_key=str(data / "test-key.pem"), ping_interval=1)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test certificate is self-signed
    hub.wait_ready()  # over https (hubtest)
    s = SseStream(hub.port, subscribe=[{"context": "todos"}], tls=ctx)
    assert s.status == 200
    s.until(lambda f: f.get("subscribed"))
    publish_invalidate(r, ["todos"], {"todos": f"{EP}:1"})
    ev = s.next_event()
    assert ev["data"]["invalidate"] == ["todos"] and ev["id"] == f"{EP}:1"
    c = http.client.HTTPSConnection("127.0.0.1", hub.port, timeout=5 * SLOW, context=ctx)
    c.request("POST", f"/sse/{s.conn}?secret={s.secret}&n=1", body=b'{"action":"ping","ref":"tls"}')
    assert c.getresponse().status == 202
    c.close()
    assert s.recv() == {"pong": True, "ref": "tls"}
    assert gauges(hub)["http_sockets"] == 1  # the scrape only: the stream is the hub's own
    s.close()
    wait_gauges(hub, IDLE, "the stream over TLS after its client closed")


def test_a_post_handed_on_with_shards_goes_on_the_connection_s_shard(make_hub, tmp_path):
    """SPEC 11.1: a `post` is published where Django's envelopes for that
    connection go, the owner of the connection id; the stream's hub hears it."""
    from hubtest import RedisServer
    from mizan_hub.protocol import shard
    servers = [RedisServer(tmp_path / f"shard{i}") for i in range(2)]
    for srv in servers:
        srv.start()
    try:
        urls = ",".join(srv.url for srv in servers)
        a = make_hub(servers[0], redis_shards=urls)
        b = make_hub(servers[0], redis_shards=urls)
        opened = []
        while True:  # a stream owned by shard 1: shard 0 is where other things go
            s = SseStream(a.port)
            s.until(lambda f: "welcome" in f)
            opened.append(s)
            if shard(s.conn, 2) == 1:
                break
            assert len(opened) < 64
        owner = servers[shard(s.conn, 2)].client()
        other = servers[1 - shard(s.conn, 2)].client()
        seen = {}
        for name, cl in (("owner", owner), ("other", other)):
            ps = cl.pubsub()
            ps.psubscribe("mizan:hub:*")
            ps.get_message(timeout=1)  # the psubscribe confirmation
            seen[name] = ps
        assert s.post({"action": "ping", "ref": "sharded"}, port=b.port, n=1)[0] == 202
        assert s.recv() == {"pong": True, "ref": "sharded"}
        got = {name: ps.get_message(timeout=0.5) for name, ps in seen.items()}
        assert got["owner"] and json.loads(got["owner"]["data"])["kind"] == "post"
        assert got["other"] is None
        for ps in seen.values():
            ps.close()
        for x in opened:
            x.close()
    finally:
        for srv in servers:
            srv.kill()
