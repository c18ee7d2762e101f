"""Channel resumes cost a history read each (SPEC 10, 14; issue 12 item 7):
a connection over `resume_rate` gets `rate_limited` on that subscribe while
others are unaffected, and resumes of one channel from one point at the
same time share one XRANGE."""

from __future__ import annotations

import asyncio
import json

from hubtest import canonical_key, connect, run

KEY = canonical_key("feed", {})


def _frame(seq: int) -> dict:
    return {"channel": "feed", "params": {}, "type": "Msg", "data": {"n": seq}, "seq": seq,
            "epoch": "f1"}


def _seed(r, n: int) -> None:
    r.hset(f"mizan:c:{KEY}", mapping={"e": "f1", "s": n})
    for seq in range(1, n + 1):
        r.xadd(f"mizan:h:{KEY}", {"f": json.dumps(_frame(seq), separators=(",", ":"))},
               id=f"{seq}-0")


def _xrange_calls(r) -> int:
    return int(r.info("commandstats").get("cmdstat_xrange", {}).get("calls", 0))


async def _answer(c, ref: str) -> tuple[list[dict], dict]:
    """Frames up to the ack or error that carries `ref`: (replayed, answer)."""
    got = []
    while True:
        f = await c.recv()
        if f.get("ref") == ref:
            return got, f
        got.append(f)


def test_resume_rate_limits_one_connection_not_others(make_hub, redis_server, r):
    """With the default resume_rate (10/s, burst 256) and no frame limit, a
    connection resubscribing with since in a loop is refused with
    `rate_limited` (that subscribe only; the connection stays), and another
    connection's resume meanwhile is served in full."""
    hub = make_hub(redis_server, frame_rate=0)
    _seed(r, 3)
    loops = 400

    async def main():
        a = await connect(hub)
        b = await connect(hub)
        for i in range(loops):
            await a.send({"action": "subscribe", "channel": "feed", "params": {},
                          "since": "f1:0", "ref": f"a{i}"})
        await b.send({"action": "subscribe", "channel": "feed", "params": {}, "since": "f1:1",
                      "ref": "b"})
        replay, ack = await _answer(b, "b")
        assert replay == [_frame(2), _frame(3)] and ack.get("subscribed") is True, (replay, ack)

        # Resubscribing one key while its resume is in flight: replays and
        # acks of different refs interleave, so count them, not their order.
        refused = served = replayed = 0
        answered = set()
        while len(answered) < loops:
            f = await a.recv()
            if "ref" not in f:
                assert f in (_frame(1), _frame(2), _frame(3)), f
                replayed += 1
                continue
            answered.add(f["ref"])
            if f.get("subscribed"):
                served += 1
            else:
                assert f == {
                    "error": {"code": "rate_limited", "message": f["error"]["message"]},
                    "ref": f["ref"], "channel": "feed", "params": {}}, f
                assert "resume" in f["error"]["message"], f
                refused += 1
        assert replayed == 3 * served, (replayed, served)
        # 256 at once, then 10 a second for as long as the loop took.
        assert refused >= loops - 256 - 40 and served >= 256, (served, refused)
        assert await a.ping_barrier() == []  # still open, nothing else sent
        m = hub.metrics()
        assert m["mizan_hub_resumes_refused_total"] == refused, m
        assert m['mizan_hub_rejections_total{stage="limit",reason="resume_rate"}'] == refused
        assert m["mizan_hub_resumes_total"] == served + 1, m
        await a.close()
        await b.close()

    run(main(), timeout=60)


def test_resumes_from_one_point_share_one_history_read(make_hub, redis_server, r):
    """20 connections resume the same channel from the same seq at once
    (their position reads queued behind CLIENT PAUSE, so all are answered
    together): one XRANGE serves all of them, each gets the whole replay."""
    hub = make_hub(redis_server)
    _seed(r, 50)
    n = 20

    async def main():
        clients = [await connect(hub) for _ in range(n)]
        before = _xrange_calls(r)
        r.execute_command("CLIENT", "PAUSE", "1000", "ALL")
        await asyncio.gather(*(c.send({"action": "subscribe", "channel": "feed", "params": {},
                                       "since": "f1:0", "ref": "x"}) for c in clients))
        for c in clients:
            replay, ack = await _answer(c, "x")
            assert replay == [_frame(s) for s in range(1, 51)], replay[:3]
            assert ack == {"subscribed": True, "channel": "feed", "params": {}, "epoch": "f1",
                           "seq": 50, "ref": "x"}, ack
        assert _xrange_calls(r) - before == 1
        m = hub.metrics()
        assert (m["mizan_hub_replays_total"], m["mizan_hub_replays_shared_total"]) == (1, n - 1)
        # Later resumes read again: only reads in flight are shared.
        await clients[0].send({"action": "subscribe", "channel": "feed", "params": {},
                               "since": "f1:48", "ref": "y"})
        replay, ack = await _answer(clients[0], "y")
        assert replay == [_frame(49), _frame(50)] and ack["seq"] == 50, (replay, ack)
        assert _xrange_calls(r) - before == 2
        for c in clients:
            await c.close()

    run(main(), timeout=60)


def test_resume_burst_is_never_below_the_subscription_limit(make_hub, redis_server, r):
    """A reconnecting page resumes all its channels at once: with max_subs 20
    and resume_burst 5, 20 resumes at once are served, the rest refused."""
    hub = make_hub(redis_server, frame_rate=0, max_subs=20, resume_burst=5, resume_rate=1)
    _seed(r, 1)

    async def main():
        a = await connect(hub)
        for i in range(30):
            await a.send({"action": "subscribe", "channel": "feed", "params": {},
                          "since": "f1:0", "ref": f"a{i}"})
        answers = {}
        while len(answers) < 30:
            f = await a.recv()
            if "ref" in f:
                answers[f["ref"]] = "ok" if f.get("subscribed") else f["error"]["code"]
        served = sum(v == "ok" for v in answers.values())
        assert 20 <= served <= 22 and set(answers.values()) == {"ok", "rate_limited"}, answers
        await a.close()

    run(main(), timeout=30)
