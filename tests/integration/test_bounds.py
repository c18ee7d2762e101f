"""Issue 12 item 9: SPEC's own bounds, exactly, end to end.

An rpc `id` is a string of 1-64 bytes or an integer (SPEC 7, 14): every
such id must make the round trip browser -> `mizan:in` -> reply -> browser,
however long its escaped JSON is, and so must the TIMEOUT the hub answers
itself. A `close` envelope's reason is 0-123 bytes of UTF-8 (SPEC 11, 14):
the browser must get it whole, in a valid close frame with the code Django
sent; one byte more is `bad_envelope` (counted, the connection stays).
The test plays the Django worker."""

from __future__ import annotations

import json

import pytest

from hubtest import connect, hub_channel, poll, run, send_to_conn

SENTINEL = {"channel": "sentinel", "params": {}, "type": "Hello", "data": {"n": 1}}

# Each is at the SPEC's maximum (64 bytes of UTF-8, or the largest integer)
# and escapes to more JSON than the 72 bytes the hub used to keep.
MAX_IDS = [
    ("quotes", '"' * 64),                      # 130 bytes as JSON
    ("backslashes", "\\" * 64),                # 130
    ("control_characters", "\x01" * 64),       # 386: the longest escaped form
    ("mixed", ("a\"\\\n\x1f" * 13)[:64]),
    ("two_byte_utf8", "é" * 32),               # 64 bytes, written raw
    ("emoji", "😀" * 16),
    ("ascii", "r" * 64),
    ("max_integer", 2 ** 53 - 1),
    ("min_integer", -(2 ** 53 - 1)),
]


def _byte_len(v) -> int:
    return len(v.encode()) if isinstance(v, str) else 0


def _entries(r):
    return r.xrange("mizan:in", "-", "+")


@pytest.mark.parametrize("case", MAX_IDS, ids=[c[0] for c in MAX_IDS])
def test_rpc_id_at_the_spec_maximum_round_trips(make_hub, redis_server, case):
    _, rpc_id = case
    assert _byte_len(rpc_id) in (0, 64)
    hub = make_hub(redis_server, rpc_timeout_ms=1500)
    r = redis_server.client()

    async def main():
        c = await connect(hub)
        await c.send({"action": "rpc", "id": rpc_id, "fn": "f", "args": {}})
        entries = await poll(lambda: _entries(r), 5, what="the rpc on mizan:in")
        fields = entries[0][1]
        body = json.loads(fields["body"])
        assert body["id"] == rpc_id, body
        # Django echoes the id it read; the reply reaches the caller.
        r.publish(hub_channel(fields["hub"]), json.dumps(
            {"v": 1, "kind": "reply", "conn": fields["conn"],
             "frame": {"id": body["id"], "ok": True, "data": {"n": 1}}}, ensure_ascii=False))
        assert await c.recv() == {"id": rpc_id, "ok": True, "data": {"n": 1}}
        # An unanswered call with the same id gets the hub's own TIMEOUT.
        await c.send({"action": "rpc", "id": rpc_id, "fn": "f", "args": {}})
        f = await c.recv(timeout=5)
        assert f["id"] == rpc_id and f["ok"] is False and f["error"]["code"] == "TIMEOUT", f
        await c.close()
    run(main())


def test_rpc_id_over_the_bound_is_bad_frame(hub, r):
    async def main():
        c = await connect(hub)
        await c.send({"action": "rpc", "id": "x" * 65, "fn": "f", "args": {}, "ref": 1})
        f = await c.recv()
        assert f["error"]["code"] == "bad_frame" and f["ref"] == 1, f
        assert _entries(r) == []
        await c.close()
    run(main())


# 123 bytes: the most a close frame carries (125 minus the 2-byte code).
REASONS = [
    ("ascii", "r" * 123),
    ("two_byte_utf8", "é" * 61 + "!"),        # the old 64-byte copy cut inside an "é"
    ("three_byte_utf8", "€" * 41),
    ("emoji", "😀" * 30 + "abc"),
]


@pytest.mark.parametrize("case", REASONS, ids=[c[0] for c in REASONS])
def test_close_reason_at_the_bound_arrives_whole(hub, r, case):
    _, reason = case
    assert len(reason.encode()) == 123

    async def main():
        a = await connect(hub)
        b = await connect(hub)
        r.publish(hub_channel(a.hub_id), json.dumps(
            {"v": 1, "kind": "close", "conn": a.conn, "code": 4005, "reason": reason},
            ensure_ascii=False))
        assert await a.wait_closed(5) == (4005, reason)
        # only the connection named was closed
        await b.send({"action": "ping"})
        assert await b.recv() == {"pong": True}
        await b.close()
    run(main())


def test_disconnect_reason_at_the_bound_arrives_whole(make_hub, redis_server):
    import jwt
    secret = "s" * 40
    hub = make_hub(redis_server, jwt_secret=secret)
    r = redis_server.client()
    reason = "ü" * 61 + "."
    token = jwt.encode({"sub": "5", "exp": 2 ** 31}, secret, algorithm="HS256",
                       headers={"kid": "v1"})

    async def main():
        c = await connect(hub, additional_headers={"Authorization": "Bearer " + token})
        r.publish("mizan:events", json.dumps(
            {"v": 1, "kind": "disconnect", "sub": "5", "reason": reason}, ensure_ascii=False))
        assert await c.wait_closed(5) == (4005, reason)
    run(main())


def test_close_reason_over_the_bound_is_bad_envelope_and_the_connection_stays(hub, r):
    async def main():
        c = await connect(hub)
        bad_before = hub.metric("mizan_hub_envelopes_bad_total")
        r.publish(hub_channel(c.hub_id), json.dumps(
            {"v": 1, "kind": "close", "conn": c.conn, "code": 4005, "reason": "é" * 62},
            ensure_ascii=False))
        send_to_conn(r, c.hub_id, c.conn, SENTINEL)
        assert await c.recv() == SENTINEL  # still open: the envelope was dropped
        assert hub.metric("mizan_hub_envelopes_bad_total") == bad_before + 1
        r.publish(hub_channel(c.hub_id), json.dumps(
            {"v": 1, "kind": "close", "conn": c.conn, "code": 4010, "reason": "é" * 61}))
        assert await c.wait_closed(5) == (4010, "é" * 61)
    run(main())
