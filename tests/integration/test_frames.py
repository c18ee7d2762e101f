"""Malformed and oversized browser frames (SPEC 6, 7, 9, 14)."""

from __future__ import annotations

import asyncio
import json
import time

from hubtest import ROOT, SLOW, RawWS, connect, run

FRAME_VECTORS = json.loads((ROOT / "protocol" / "vectors" / "frame_decode.json")
                           .read_text("utf-8"))


def _is_error(frame: dict, code: str) -> bool:
    err = frame.get("error")
    return isinstance(err, dict) and err.get("code") == code and \
        isinstance(err.get("message"), str) and err["message"] != ""


def test_malformed_frames_get_error_frames_and_connection_stays(hub):
    seventeen = {f"k{i:02}": str(i) for i in range(17)}
    cases = [
        ("hello", "bad_json", None),
        ('{"action":"ping"', "bad_json", None),
        ('{"action":"ping","ref":"\\ud800"}', "bad_json", None),
        ("[1,2]", "bad_frame", None),
        ('{"context":"a","ref":1}', "bad_frame", 1),
        ('{"action":"subscribe","context":"a","channel":"b","ref":2}', "bad_frame", 2),
        ('{"action":"rpc","fn":"f","ref":"r3"}', "bad_frame", "r3"),
        ('{"action":"publish","channel":"c","ref":4}', "unknown_action", 4),
        ('{"action":"subscribe","context":"a","params":{"k":{"x":1}},"ref":5}', "bad_param", 5),
        ('{"action":"subscribe","context":"a","params":{"k":"' + "v" * 257 + '"},"ref":6}',
         "bad_param", 6),
        ('{"action":"subscribe","context":"","ref":7}', "bad_name", 7),
        ('{"action":"subscribe","context":"' + "n" * 129 + '","ref":8}', "bad_name", 8),
        ('{"action":"rpc","id":"1","fn":"","ref":9}', "bad_name", 9),
        (json.dumps({"action": "subscribe", "context": "a", "params": seventeen, "ref": 10}),
         "too_large", 10),
        ('{"action":"message","channel":"c","data":' + "[" * 64 + "]" * 64 + ',"ref":11}',
         "too_large", 11),
    ]

    async def main():
        c = await connect(hub)
        problems = []
        for text, code, ref in cases:
            await c.send(text)
            f = await c.recv()
            if not _is_error(f, code) or (ref is not None and f.get("ref") != ref):
                problems.append(f"sent {text[:80]!r}: expected error {code} (ref {ref!r}), "
                                f"got {f}")
        # A binary frame: bad_frame, still connected.
        await c.send(b'{"action":"ping"}')
        f = await c.recv()
        if not _is_error(f, "bad_frame"):
            problems.append(f"sent a binary frame: expected error bad_frame, got {f}")
        # Alive: a ping gets its pong, and nothing else is pending.
        await c.send({"action": "ping", "ref": 99})
        assert await c.recv() == {"pong": True, "ref": 99}
        assert not problems, "\n".join(problems)
        await c.close()

    run(main())


def test_frame_decode_error_vectors_end_to_end(hub):
    """Every error case of protocol/vectors/frame_decode.json sent to the hub:
    an error frame with the vector's code, then the connection still answers."""
    cases = [c for c in FRAME_VECTORS["cases"] if "error" in c]
    assert len(cases) > 40

    async def main():
        c = await connect(hub)
        problems = []
        for case in cases:
            await c.send(case["input"])
            f = await c.recv()
            if not _is_error(f, case["error"]["code"]):
                problems.append(f"{case['name']}: sent {case['input'][:60]!r}, expected "
                                f"{case['error']['code']}, got {f}")
        assert await c.ping_barrier() == []
        assert not problems, "\n".join(problems)
        await c.close()

    run(main())


def test_oversized_frame_closes_with_1009(make_hub, redis_server):
    hub = make_hub(redis_server, max_frame=1024)

    async def main():
        c = await connect(hub)
        assert c.welcome["welcome"]["max_frame"] == 1024
        # Exactly max_frame bytes is allowed.
        exact = '{"action":"ping","ref":1,"pad":"' + "p" * 990 + '"}'
        assert len(exact) == 1024
        await c.send(exact)
        assert await c.recv() == {"pong": True, "ref": 1}
        await c.send('{"action":"ping","pad":"' + "x" * 2000 + '"}')
        code, reason = await c.wait_closed(5)
        assert code == 1009, f"closed with {code} {reason!r}, expected 1009"

        # The limit is on the message, not the fragment: 2 x 1000 bytes also closes.
        d = await connect(hub)
        text = '{"action":"ping","pad":"' + "y" * 1975 + '"}'
        await d.ws.send(iter([text[:1000], text[1000:]]))
        code, reason = await d.wait_closed(5)
        assert code == 1009, f"fragmented: closed with {code} {reason!r}, expected 1009"

    run(main())


def test_subscription_limit(make_hub, redis_server):
    hub = make_hub(redis_server, max_subs=2)

    async def main():
        c = await connect(hub)
        await c.subscribe(context="a")
        await c.subscribe(channel="b")
        await c.send({"action": "subscribe", "context": "c", "ref": 3})
        f = await c.recv()
        assert _is_error(f, "too_many_subscriptions") and f.get("ref") == 3, f
        # Resubscribing to a held one is no new subscription; freeing one makes room.
        await c.subscribe(context="a")
        await c.send({"action": "unsubscribe", "context": "a", "ref": 4})
        assert (await c.recv()).get("unsubscribed") is True
        await c.subscribe(context="c")
        await c.close()

    run(main())


def test_silent_peer_is_dropped_and_answering_peer_kept(make_hub, redis_server):
    """--ping-interval 1 --pong-timeout 1: a peer that never answers pings is
    closed; one that answers (websockets does) stays (SPEC 6)."""
    hub = make_hub(redis_server, ping_interval=1, pong_timeout=1)

    async def main():
        silent = RawWS(hub.port)
        assert "welcome" in silent.recv_json()
        alive = await connect(hub)
        t0 = time.monotonic()
        silent.sock.settimeout(8 * SLOW)
        pings = 0
        while True:
            frame = await asyncio.to_thread(silent.recv_frame)
            if frame is None or frame[0] == 8:
                break
            pings += frame[0] == 9
        elapsed = time.monotonic() - t0
        silent.close()
        assert pings >= 1, "the hub never pinged the silent peer"
        assert elapsed <= 5 * SLOW, f"silent peer dropped only after {elapsed:.1f} s"
        await asyncio.sleep(max(0.0, 3.5 - elapsed))
        assert await alive.ping_barrier() == []
        await alive.close()

    run(main())


def test_invalid_utf8_text_frame_closes_with_1007(hub):
    async def main():
        raw = RawWS(hub.port)
        assert "welcome" in raw.recv_json()
        raw.send_text(b'{"action":"ping","ref":"\xff\xfe"}')
        raw.sock.settimeout(5 * SLOW)
        codes = []
        while True:
            frame = await asyncio.to_thread(raw.recv_frame)
            if frame is None:
                break
            if frame[0] == 8:
                codes.append(int.from_bytes(frame[1][:2], "big") if len(frame[1]) >= 2 else None)
                break
            codes.append(("unexpected frame", frame))
        raw.close()
        assert codes == [1007], f"expected a close frame with 1007 (SPEC 9), got {codes}"

    run(main())
