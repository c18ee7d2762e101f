"""Subscribe, publish, match, unsubscribe: SPEC sections 4, 7, 8, 10, 11."""

from __future__ import annotations

import json
import re

from hubtest import ROOT, connect, publish_invalidate, run
from mizan_hub.protocol import decode_invalidation

MATCH = json.loads((ROOT / "protocol" / "vectors" / "match.json").read_text("utf-8"))


def test_welcome_ack_and_invalidate_frames(make_hub, redis_server, r):
    """The welcome frame's shape; `subscribed` acks with version 0:0 (no hash)
    and E:N (hash present); one published envelope -> exactly one invalidate
    frame per matching entry, with versions, spread_ms and ts (SPEC 8)."""
    hub = make_hub(redis_server, hub_id="t1hub", max_frame=65536)

    async def main():
        c = await connect(hub)
        w = c.welcome
        assert set(w) == {"welcome"}, w
        body = w["welcome"]
        assert body["protocol"] == 1 and body["hub"] == "t1hub", w
        assert re.fullmatch(r"t1hub\.[0-9a-f]{8}-[1-9][0-9]*", body["conn"]), w
        assert body["identity"] is None and body["expires"] is None, w
        assert isinstance(body["spread_ms"], int) and body["spread_ms"] >= 0, w
        assert body["max_frame"] == 65536, w

        # No version hash for `notifications` -> 0:0.
        await c.send({"action": "subscribe", "context": "notifications", "ref": 1})
        assert await c.recv() == {"subscribed": True, "context": "notifications", "params": {},
                                  "version": "0:0", "ref": 1}
        # A version hash for `user` -> its E:N; params normalized to strings.
        r.hset("mizan:v:user", mapping={"e": "k2f9a", "n": 42})
        await c.send({"action": "subscribe", "context": "user", "params": {"user_id": 5},
                      "ref": "s2"})
        assert await c.recv() == {"subscribed": True, "context": "user",
                                  "params": {"user_id": "5"}, "version": "k2f9a:42",
                                  "ref": "s2"}

        other = await connect(hub)  # subscribed to nothing: gets nothing
        assert other.conn != c.conn and other.welcome["welcome"]["hub"] == "t1hub"

        # One scoped entry, with a fractional ts.
        assert publish_invalidate(r, [{"context": "user", "params": {"user_id": "5"}}],
                                  {"user": "k2f9a:43"}, ts=1764000000123.5) >= 1
        assert await c.recv() == {"invalidate": [{"context": "user",
                                                  "params": {"user_id": "5"}}],
                                  "versions": {"user": "k2f9a:43"}, "spread_ms": 0,
                                  "ts": 1764000000123.5}
        # Two entries in one envelope -> two frames, in list order, each with
        # its own context's version; no ts in the envelope -> none in the frame.
        publish_invalidate(r, ["notifications", {"context": "user", "params": {"user_id": "5"}}],
                           {"notifications": "k2f9b:8", "user": "k2f9a:44"})
        assert await c.recv() == {"invalidate": ["notifications"],
                                  "versions": {"notifications": "k2f9b:8"}, "spread_ms": 0}
        assert await c.recv() == {"invalidate": [{"context": "user",
                                                  "params": {"user_id": "5"}}],
                                  "versions": {"user": "k2f9a:44"}, "spread_ms": 0}
        # `{}` params keeps its shape on the wire (SPEC 2) and matches (SPEC 4).
        publish_invalidate(r, [{"context": "user", "params": {}}], {"user": "k2f9a:45"},
                           ts=1764000000200)
        assert await c.recv() == {"invalidate": [{"context": "user", "params": {}}],
                                  "versions": {"user": "k2f9a:45"}, "spread_ms": 0,
                                  "ts": 1764000000200}
        assert await c.ping_barrier() == []
        assert await other.ping_barrier() == []
        await c.close()
        await other.close()

    run(main())


def _prefixed(case_no: int, case: dict) -> tuple[object, str, dict]:
    """The case with its context names prefixed per case, so the cases can
    share one hub without matching each other's subscriptions. The prefix
    keeps every equality and inequality of the original names."""
    p = f"m{case_no}."
    entry = case["input"]["entry"]
    if isinstance(entry, str):
        entry = p + entry
    else:
        entry = dict(entry, context=p + entry["context"])
    sub = case["input"]["subscription"]
    return entry, p + sub["context"], sub.get("params", {})  # absent is {}


def test_match_vectors_end_to_end(hub, r):
    """protocol/vectors/match.json through the real hub: a client per case
    subscribes to the case's subscription, one publish per case; delivery iff
    `expect`. A sentinel event published last, to which every client is
    subscribed, marks the end: the hub delivers in order, so a frame that did
    not come before the sentinel was not delivered."""
    # The error cases check the match API's argument errors: nothing to deliver.
    cases = [c for c in MATCH["cases"] if "expect" in c]
    assert MATCH["kind"] == "match" and len(cases) >= 20

    async def main():
        clients = []
        for i, case in enumerate(cases):
            entry, ctx, params = _prefixed(i, case)
            c = await connect(hub)
            await c.subscribe(context=ctx, params=params)
            await c.subscribe(context="sentinel")
            clients.append((c, entry, ctx))
        for i, (c, entry, ctx) in enumerate(clients):
            econtext = entry if isinstance(entry, str) else entry["context"]
            publish_invalidate(r, [entry], {econtext: f"v{i}:1"})
        publish_invalidate(r, ["sentinel"], {"sentinel": "s:1"})
        problems = []
        for i, ((c, entry, ctx), case) in enumerate(zip(clients, cases)):
            frames = []
            while True:
                f = await c.recv()
                if f.get("invalidate") == ["sentinel"]:
                    break
                frames.append(f)
            econtext = entry if isinstance(entry, str) else entry["context"]
            if case["expect"]:
                normalized = decode_invalidation([entry])[0]
                want = [{"invalidate": [normalized], "versions": {econtext: f"v{i}:1"},
                         "spread_ms": 0},
                        {"invalidate": [entry], "versions": {econtext: f"v{i}:1"},
                         "spread_ms": 0}]
                if len(frames) != 1 or frames[0] not in want:
                    problems.append(f"{case['name']}: expected one frame {want[0]}, "
                                    f"got {frames}")
            elif frames:
                problems.append(f"{case['name']}: expected no delivery, got {frames}")
        assert not problems, "\n".join(problems)
        for c, _, _ in clients:
            await c.close()

    run(main(), timeout=60)


def test_unsubscribe_stops_delivery(hub, r):
    """`unsubscribed` acks (also when not subscribed), and no delivery after."""

    async def main():
        c = await connect(hub)
        await c.subscribe(context="sentinel")
        ack = await c.subscribe(context="user", params={"user_id": 5}, ref=1)
        assert ack == {"subscribed": True, "context": "user", "params": {"user_id": "5"},
                       "version": "0:0", "ref": 1}
        # No channel hash yet: epoch "0", seq 0 (SPEC 10).
        ack = await c.subscribe(channel="chat", params={"room": "lobby"}, ref=2)
        assert ack == {"subscribed": True, "channel": "chat", "params": {"room": "lobby"},
                       "epoch": "0", "seq": 0, "ref": 2}

        publish_invalidate(r, ["user"], {"user": "a:1"})
        assert await c.recv() == {"invalidate": ["user"], "versions": {"user": "a:1"},
                                  "spread_ms": 0}

        await c.send({"action": "unsubscribe", "context": "user", "params": {"user_id": "5"},
                      "ref": 3})
        assert await c.recv() == {"unsubscribed": True, "context": "user",
                                  "params": {"user_id": "5"}, "ref": 3}
        await c.send({"action": "unsubscribe", "channel": "chat", "params": {"room": "lobby"},
                      "ref": 4})
        assert await c.recv() == {"unsubscribed": True, "channel": "chat",
                                  "params": {"room": "lobby"}, "ref": 4}
        # Not subscribed: still an ack (SPEC 7).
        await c.send({"action": "unsubscribe", "context": "never", "ref": 5})
        assert await c.recv() == {"unsubscribed": True, "context": "never", "params": {},
                                  "ref": 5}

        publish_invalidate(r, ["user", {"context": "user", "params": {"user_id": "5"}}],
                           {"user": "a:2"})
        r.publish("mizan:events", json.dumps(
            {"v": 1, "kind": "message", "channel": "chat", "params": {"room": "lobby"},
             "type": "ChatMessage", "data": {"text": "hi"}, "seq": 1, "epoch": "m1x"}))
        publish_invalidate(r, ["sentinel"], {"sentinel": "s:1"})
        assert await c.recv() == {"invalidate": ["sentinel"], "versions": {"sentinel": "s:1"},
                                  "spread_ms": 0}
        await c.close()

    run(main())
