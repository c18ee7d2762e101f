"""Channel continuity (SPEC 10): seq/epoch, history replay, gap frames. The
test plays the publisher script: `mizan:c:{K}` (e, s) and the capped history
stream `mizan:h:{K}` with ids `<seq>-0` and the frame text in field `f`."""

from __future__ import annotations

import json

from hubtest import canonical_key, connect, envelope_message, run

ROOM = {"room": "lobby"}


def _frame(seq: int, epoch: str = "m1x") -> dict:
    return {"channel": "chat", "params": ROOM, "type": "ChatMessage",
            "data": {"text": f"m{seq}"}, "seq": seq, "epoch": epoch}


def _text(frame: dict) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def test_channel_history_replay_and_gaps(hub, r):
    key = canonical_key("chat", ROOM)
    assert key == '["chat",{"room":"lobby"}]'
    r.hset(f"mizan:c:{key}", mapping={"e": "m1x", "s": 5})
    for seq in range(1, 6):
        r.xadd(f"mizan:h:{key}", {"f": _text(_frame(seq))}, id=f"{seq}-0")
    # A channel with a position but no history stream at all.
    quiet = canonical_key("quiet", {})
    r.hset(f"mizan:c:{quiet}", mapping={"e": "q1", "s": 5})

    def ack(ref, epoch="m1x", seq=5, channel="chat", params=ROOM):
        return {"subscribed": True, "channel": channel, "params": params, "epoch": epoch,
                "seq": seq, "ref": ref}

    async def subscribe(c, since, ref, channel="chat", params=ROOM):
        frame = {"action": "subscribe", "channel": channel, "params": params, "ref": ref}
        if since is not None:
            frame["since"] = since
        await c.send(frame)
        got = []
        while True:  # every frame up to and including the ack
            f = await c.recv()
            got.append(f)
            if f.get("subscribed"):
                return got

    async def main():
        # Resume from 2: 3, 4, 5 replayed (the stored frame text), then the ack.
        a = await connect(hub)
        assert await subscribe(a, "m1x:2", "a") == [_frame(3), _frame(4), _frame(5), ack("a")]
        # Up to date: the ack only. No since: the ack only.
        b = await connect(hub)
        assert await subscribe(b, "m1x:5", "b") == [ack("b")]
        c = await connect(hub)
        assert await subscribe(c, None, "c") == [ack("c")]

        # History trimmed: 3 is gone -> gap (history_trimmed) then the ack.
        r.xtrim(f"mizan:h:{key}", maxlen=2, approximate=False)
        assert [e[0] for e in r.xrange(f"mizan:h:{key}")] == ["4-0", "5-0"]
        d = await connect(hub)
        assert await subscribe(d, "m1x:2", "d") == [
            {"gap": {"channel": "chat", "params": ROOM, "from": 3, "to": 5,
                     "recovered": False, "reason": "history_trimmed"}},
            ack("d")]

        # Another epoch -> gap (epoch_changed) then the ack with the current one.
        e = await connect(hub)
        got = await subscribe(e, "old1:2", "e")
        assert len(got) == 2 and got[1] == ack("e"), got
        gap = got[0].get("gap")
        assert gap is not None and set(gap) == {"channel", "params", "from", "to", "recovered",
                                                "reason"}, got
        assert (gap["channel"], gap["params"], gap["recovered"], gap["reason"]) == \
            ("chat", ROOM, False, "epoch_changed"), got
        # from..to in the current epoch: all of m1x's 1..5 were missed, not
        # just those above old1's 2 (the fault suite lost m1x:1-2 so)
        assert (gap["from"], gap["to"]) == (1, 5), got

        # No history stream for the channel -> gap (no_history).
        f = await connect(hub)
        assert await subscribe(f, "q1:3", "f", channel="quiet", params={}) == [
            {"gap": {"channel": "quiet", "params": {}, "from": 4, "to": 5,
                     "recovered": False, "reason": "no_history"}},
            ack("f", epoch="q1", channel="quiet", params={})]

        # Live delivery continues the sequence, with ts (the publisher script's
        # three steps: s, the history entry, the PUBLISH).
        r.hset(f"mizan:c:{key}", "s", 6)
        r.xadd(f"mizan:h:{key}", {"f": _text(_frame(6))}, id="6-0")
        r.publish("mizan:events", envelope_message("chat", ROOM, {"text": "m6"}, 6, "m1x",
                                                   type_="ChatMessage", ts=1764000000123.5))
        for x in (a, b, c, d, e):
            assert await x.recv() == dict(_frame(6), ts=1764000000123.5)

        for x in (a, b, c, d, e, f):
            assert await x.ping_barrier() == []
            await x.close()

    run(main())
