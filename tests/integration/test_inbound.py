"""Browser -> Django: `message` and `rpc` frames on the stream `mizan:in`,
replies on `mizan:hub:{hub_id}` (SPEC 7, 8, 11). The test plays the worker."""

from __future__ import annotations

import json
import time

from hubtest import connect, hub_channel, now_ms, poll, run, send_to_conn

SENTINEL = {"channel": "sentinel", "params": {}, "type": "Hello", "data": {"n": 1}}


def _stream(r):
    return r.xrange("mizan:in", "-", "+")


def test_message_and_rpc_reach_stream_and_reply_reaches_only_sender(hub, r):
    async def main():
        a = await connect(hub)
        b = await connect(hub)
        t0 = now_ms()
        await a.send({"action": "message", "channel": "chat", "params": {"room": "lobby"},
                      "data": {"text": "hi"}})
        await a.send({"action": "rpc", "id": "7", "fn": "todos.add",
                      "args": {"title": "milk"}})
        await a.send({"action": "rpc", "id": 42, "fn": "f"})
        entries = await poll(lambda: (lambda e: e if len(e) >= 3 else None)(_stream(r)),
                             5, what="3 entries on mizan:in")
        t1 = now_ms()
        assert len(entries) == 3, entries
        bodies = [{"action": "message", "channel": "chat", "params": {"room": "lobby"},
                   "data": {"text": "hi"}},
                  {"action": "rpc", "id": "7", "fn": "todos.add", "args": {"title": "milk"}},
                  {"action": "rpc", "id": 42, "fn": "f", "args": {}}]
        for (eid, fields), kind, body in zip(entries, ["message", "rpc", "rpc"], bodies):
            assert set(fields) == {"v", "kind", "hub", "conn", "identity", "body", "ts",
                                   "addr"}, fields
            assert fields["addr"] == "127.0.0.1", fields  # the client's address (SPEC 11)
            assert fields["v"] == "1" and fields["kind"] == kind, fields
            assert fields["hub"] == a.hub_id and fields["conn"] == a.conn, fields
            assert json.loads(fields["identity"]) is None, fields
            assert json.loads(fields["body"]) == body, fields
            assert t0 - 1000 <= float(fields["ts"]) <= t1 + 1000, (t0, fields, t1)
        # A message gets no answer, a pending rpc none yet.
        assert await a.ping_barrier() == []

        conn = entries[1][1]["conn"]
        r.publish(hub_channel(entries[1][1]["hub"]), json.dumps(
            {"v": 1, "kind": "reply", "conn": conn,
             "frame": {"id": "7", "ok": True, "data": {"result": 1}}}))
        assert await a.recv() == {"id": "7", "ok": True, "data": {"result": 1}}
        r.publish(hub_channel(a.hub_id), json.dumps(
            {"v": 1, "kind": "reply", "conn": conn,
             "frame": {"id": 42, "ok": False,
                       "error": {"code": "NOT_FOUND", "message": "no such fn"}}}))
        assert await a.recv() == {"id": 42, "ok": False,
                                  "error": {"code": "NOT_FOUND", "message": "no such fn"}}
        # b got nothing: a `send` to b published after the replies is b's next frame.
        send_to_conn(r, b.hub_id, b.conn, SENTINEL)
        assert await b.recv() == SENTINEL
        assert await a.ping_barrier() == []
        await a.close()
        await b.close()

    run(main())


def test_rpc_without_reply_times_out(make_hub, redis_server, r):
    hub = make_hub(redis_server, rpc_timeout_ms=500)

    async def main():
        c = await connect(hub)
        t0 = time.monotonic()
        await c.send({"action": "rpc", "id": "t1", "fn": "slow.fn", "args": {}})
        frame = await c.recv(timeout=5)
        elapsed = time.monotonic() - t0
        assert set(frame) == {"id", "ok", "error"}, frame
        assert frame["id"] == "t1" and frame["ok"] is False, frame
        assert frame["error"]["code"] == "TIMEOUT", frame
        assert isinstance(frame["error"].get("message"), str), frame
        assert 0.45 <= elapsed <= 3.0, f"TIMEOUT after {elapsed:.3f} s, rpc_timeout is 0.5 s"
        # A late reply for the timed-out id is dropped (SPEC 11): the sentinel
        # published after it is the next frame.
        r.publish(hub_channel(c.hub_id), json.dumps(
            {"v": 1, "kind": "reply", "conn": c.conn, "frame": {"id": "t1", "ok": True,
                                                                 "data": 1}}))
        send_to_conn(r, c.hub_id, c.conn, SENTINEL)
        assert await c.recv() == SENTINEL
        await c.close()

    run(main())


def test_worker_send_and_close_reach_one_connection(hub, r):
    """`send` forwards a frame as is and `close` closes with its code and
    reason, each on exactly the connection named (SPEC 11)."""

    async def main():
        a = await connect(hub)
        b = await connect(hub)
        frame = {"channel": "chat", "params": {}, "type": "Hello", "data": {"x": [1, "é"]}}
        send_to_conn(r, a.hub_id, a.conn, frame)
        assert await a.recv() == frame
        r.publish(hub_channel(a.hub_id), json.dumps(
            {"v": 1, "kind": "close", "conn": a.conn, "code": 4005, "reason": "session ended"}))
        code, reason = await a.wait_closed(5)
        assert (code, reason) == (4005, "session ended")
        # An unknown connection id is ignored; b is untouched and still served.
        send_to_conn(r, b.hub_id, b.hub_id + ".999999", frame)
        send_to_conn(r, b.hub_id, b.conn, SENTINEL)
        assert await b.recv() == SENTINEL
        assert await b.ping_barrier() == []
        await b.close()

    run(main())
