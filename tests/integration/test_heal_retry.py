"""Heals whose version reads fail (SPEC 10 "Hub link gaps"; issue 12 item 4).

The hub's Redis user is refused the read commands with an ACL on the test's
own redis-server (`ACL SETUSER default -hgetall ...`: every read answers
`-NOPERM`, as `-LOADING` or `-BUSY` would), and the pub/sub link is cut so
the hub heals. The test itself works as an `admin` user the ACL leaves alone.
"""

from __future__ import annotations

import asyncio
import json
import time
import types

from hubtest import (SLOW, RedisServer, StallingProxy, bucket, canonical_key, connect,
                     free_port, poll, publish_invalidate, run)

READS = ("hgetall", "hmget", "xrange")
ROOM = canonical_key("room", {})


def _frame(seq: int) -> dict:
    return {"channel": "room", "params": {}, "type": "Msg", "data": {"n": seq}, "seq": seq,
            "epoch": "c1"}


def _text(seq: int) -> str:
    return json.dumps(_frame(seq), separators=(",", ":"))


def _admin(redis_server):
    """A connection as a user the test's ACL changes never touch."""
    r = redis_server.client()
    r.execute_command("ACL", "SETUSER", "admin", "on", ">adminpw", "~*", "&*", "+@all")
    r.close()
    return redis_server.client(username="admin", password="adminpw")


def _deny(admin, *commands: str) -> None:
    admin.execute_command("ACL", "SETUSER", "default", *("-" + c for c in commands))


def _allow(admin, *commands: str) -> None:
    admin.execute_command("ACL", "SETUSER", "default", *("+" + c for c in commands))


def _message(admin, seq: int) -> None:
    """The publisher script for channel room, message seq (c:K, history, publish)."""
    admin.hset(f"mizan:c:{ROOM}", "s", seq)
    admin.xadd(f"mizan:h:{ROOM}", {"f": _text(seq)}, id=f"{seq}-0")
    admin.publish("mizan:events", json.dumps(
        {"v": 1, "kind": "message", "channel": "room", "params": {}, "type": "Msg",
         "data": {"n": seq}, "seq": seq, "epoch": "c1"}, separators=(",", ":")))


def _seed(admin) -> None:
    admin.hset("mizan:v:doc", mapping={"e": "d1", "n": 1})
    admin.hset("mizan:v:quiet", mapping={"e": "q1", "n": 3})
    admin.hset(f"mizan:c:{ROOM}", mapping={"e": "c1", "s": 3})
    for seq in (1, 2, 3):
        admin.xadd(f"mizan:h:{ROOM}", {"f": _text(seq)}, id=f"{seq}-0")


async def _healing(hub) -> str:
    """Waits for /readyz 503 saying the hub is healing; returns the body."""
    status, body = await poll(
        lambda: (lambda s: s if s[0] == 503 and "healing" in s[1] else None)(hub.readyz()),
        5, what="/readyz 503 'healing' after the link came back")
    return body


def test_heal_that_cannot_read_invalidates_everything_within_the_bound(
        make_hub, redis_server):
    """Every read refused: the hub retries, /readyz says healing, and at
    heal_timeout_ms every context subscription gets a "gap" invalidation and
    the channel a `gap` frame, then the message held meanwhile; ready again."""
    timeout_ms = 1500
    hub = make_hub(redis_server, heal_timeout_ms=timeout_ms, redis_backoff_max_ms=200)
    admin = _admin(redis_server)
    _seed(admin)

    async def main():
        c = await connect(hub)
        assert (await c.subscribe(context="doc", params={"id": "9"}))["version"] == "d1:1"
        assert (await c.subscribe(context="quiet"))["version"] == "q1:3"
        ack = await c.subscribe(channel="room")
        assert (ack["epoch"], ack["seq"]) == ("c1", 3), ack

        _deny(admin, *READS)
        assert admin.client_kill_filter(_type="pubsub") >= 1
        cut = time.monotonic()
        await _healing(hub)
        # Healing: a live message is held until the channel is healed or given up.
        _message(admin, 4)
        await poll(lambda: hub.metric("mizan_hub_heal_retries_total") >= 1, 5,
                   what="a heal retry")
        assert hub.readyz()[0] == 503

        got = []
        deadline = cut + (timeout_ms / 1000 + 3) * SLOW
        while len(got) < 4 and time.monotonic() < deadline:
            got.append(await c.recv(timeout=max(0.05, (deadline - time.monotonic()) / SLOW)))
        got += await c.ping_barrier()
        assert len(got) == 4, f"within {deadline - cut:.1f} s of the cut: {got}"
        invs = sorted((f for f in got if "invalidate" in f), key=json.dumps)
        assert invs == sorted([
            {"invalidate": [{"context": "doc", "params": {"id": "9"}}], "reason": "gap"},
            {"invalidate": [{"context": "quiet", "params": {}}], "reason": "gap"},
        ], key=json.dumps), got
        chan = [f for f in got if "invalidate" not in f]
        assert chan == [
            {"gap": {"channel": "room", "params": {}, "from": 4, "to": 0, "recovered": False,
                     "reason": "hub_link_lost"}},
            _frame(4),
        ], got
        await asyncio.to_thread(hub.wait_ready, 5)
        m = hub.metrics()
        assert (m["mizan_hub_heals_total"], m["mizan_hub_heal_giveups_total"]) == (1, 1), m

        # Given up, the hub follows live events again.
        _allow(admin, *READS)
        _message(admin, 5)
        assert await c.recv() == _frame(5)
        publish_invalidate(admin, ["quiet"], {"quiet": "q1:4"})
        assert await c.recv() == {"invalidate": ["quiet"], "versions": {"quiet": "q1:4"},
                                  "spread_ms": 0}
        await c.close()

    try:
        run(main(), timeout=60)
    finally:
        admin.close()


def test_heal_retry_that_succeeds_heals_exactly(make_hub, redis_server):
    """Reads refused for a while, then allowed: a retry heals as a first read
    would have. Only the subscription whose bucket moved is invalidated (with
    the version read), the missed messages are replayed before the one held,
    and nothing is given up."""
    hub = make_hub(redis_server, heal_timeout_ms=60000, redis_backoff_max_ms=200)
    admin = _admin(redis_server)
    _seed(admin)
    moved, still = {"id": "9"}, None
    for n in range(10, 1000):  # a doc subscription in another bucket: not invalidated
        if bucket(canonical_key("doc", {"id": str(n)})) != bucket(canonical_key("doc", moved)):
            still = {"id": str(n)}
            break

    async def main():
        c = await connect(hub)
        assert (await c.subscribe(context="doc", params=moved))["version"] == "d1:1"
        assert (await c.subscribe(context="doc", params=still))["version"] == "d1:1"
        assert (await c.subscribe(context="quiet"))["version"] == "q1:3"
        assert (await c.subscribe(channel="room"))["seq"] == 3

        _deny(admin, *READS)
        assert admin.client_kill_filter(_type="pubsub") >= 1
        await _healing(hub)
        # What the hub missed (never published on pub/sub): doc {id: 9} moved
        # (n 1 -> 2, its bucket to 2), channel messages 4 and 5; then 6 live.
        admin.hset("mizan:v:doc", mapping={"n": 2, str(bucket(canonical_key("doc", moved))): 2})
        admin.hset(f"mizan:c:{ROOM}", "s", 5)
        for seq in (4, 5):
            admin.xadd(f"mizan:h:{ROOM}", {"f": _text(seq)}, id=f"{seq}-0")
        _message(admin, 6)
        await poll(lambda: hub.metric("mizan_hub_heal_retries_total") >= 2, 10,
                   what="two heal retries")
        assert await c.ping_barrier() == [], "sent something before the heal could read"
        assert hub.readyz()[0] == 503

        _allow(admin, *READS)
        got = []
        deadline = time.monotonic() + 5 * SLOW
        while len(got) < 4 and time.monotonic() < deadline:
            got.append(await c.recv(timeout=max(0.05, (deadline - time.monotonic()) / SLOW)))
        await asyncio.sleep(0.2)
        got += await c.ping_barrier()
        invs = [f for f in got if "invalidate" in f]
        assert invs == [{"invalidate": [{"context": "doc", "params": moved}],
                         "versions": {"doc": "d1:2"}, "reason": "gap"}], got
        assert [f for f in got if "invalidate" not in f] == [_frame(4), _frame(5), _frame(6)], got
        await asyncio.to_thread(hub.wait_ready, 5)
        assert hub.metric("mizan_hub_heal_giveups_total") == 0
        _message(admin, 7)
        assert await c.recv() == _frame(7)
        await c.close()

    try:
        run(main(), timeout=60)
    finally:
        admin.close()


def test_subscribe_time_read_errors_are_gaps_not_never_published(make_hub, redis_server):
    """A resume whose history read (XRANGE) or position read (HMGET) answers
    an error gets a `hub_link_lost` gap: not `no_history`, not a new epoch."""
    hub = make_hub(redis_server)
    admin = _admin(redis_server)
    _seed(admin)

    async def resume(since: str) -> list[dict]:
        c = await connect(hub)
        await c.send({"action": "subscribe", "channel": "room", "params": {}, "since": since,
                      "ref": "x"})
        got = []
        while not (got and got[-1].get("subscribed")):
            got.append(await c.recv())
        await c.close()
        return got

    async def main():
        assert await resume("c1:1") == [_frame(2), _frame(3), {
            "subscribed": True, "channel": "room", "params": {}, "epoch": "c1", "seq": 3,
            "ref": "x"}]
        _deny(admin, "xrange")
        got = await resume("c1:1")
        assert got[0] == {"gap": {"channel": "room", "params": {}, "from": 2, "to": 3,
                                  "recovered": False, "reason": "hub_link_lost"}}, got
        assert len(got) == 2 and got[1]["seq"] == 3, got
        _deny(admin, "hmget")
        got = await resume("c1:1")
        assert len(got) == 2 and got[0].get("gap", {}).get("reason") == "hub_link_lost" and \
            got[0]["gap"]["from"] == 2, got

    try:
        run(main(), timeout=30)
    finally:
        admin.close()


def test_heal_on_a_half_open_command_link_is_given_up_within_the_bound(make_hub, redis_server):
    """The command link takes the heal's reads and never answers (no error,
    no close): at heal_timeout_ms the hub invalidates everything it could not
    read anyway, and when the late replies finally come they change nothing."""
    timeout_ms = 1500
    proxy = StallingProxy(redis_server.port, links=("cmd",))
    through_proxy = types.SimpleNamespace(url=f"redis://127.0.0.1:{proxy.port}/0")
    hub = make_hub(through_proxy, heal_timeout_ms=timeout_ms, redis_backoff_max_ms=200,
                   canary_window=30)
    admin = redis_server.client()
    _seed(admin)

    async def main():
        c = await connect(hub)
        assert (await c.subscribe(context="doc", params={"id": "9"}))["version"] == "d1:1"
        assert (await c.subscribe(channel="room"))["seq"] == 3
        proxy.stall()
        assert admin.client_kill_filter(_type="pubsub") >= 1
        cut = time.monotonic()
        got = []
        deadline = cut + (timeout_ms / 1000 + 3) * SLOW
        while len(got) < 2 and time.monotonic() < deadline:
            got.append(await c.recv(timeout=max(0.05, (deadline - time.monotonic()) / SLOW)))
        assert sorted(got, key=json.dumps) == sorted([
            {"invalidate": [{"context": "doc", "params": {"id": "9"}}], "reason": "gap"},
            {"gap": {"channel": "room", "params": {}, "from": 4, "to": 0, "recovered": False,
                     "reason": "hub_link_lost"}},
        ], key=json.dumps), got
        assert hub.metric("mizan_hub_heal_giveups_total") == 1
        proxy.resume()  # the late replies come: stale, nothing more is sent
        await asyncio.to_thread(hub.wait_ready, 10)
        assert await c.ping_barrier() == []
        _message(admin, 4)
        assert await c.recv() == _frame(4)
        await c.close()

    try:
        run(main(), timeout=60)
    finally:
        admin.close()
        proxy.close()


def test_channel_subscribed_before_redis_first_came_up_is_not_held_forever(make_hub, tmp_path):
    """A hub started before Redis: a channel subscribed meanwhile is in gap,
    and the first subscription heals it like any other (no heal ran before:
    its live messages were held until the hold overflowed)."""
    redis_server = RedisServer(tmp_path / "late-redis")
    redis_server.port = free_port()
    hub = make_hub(redis_server, wait_ready=False, redis_backoff_max_ms=200)

    async def main():
        c = await connect(hub)
        ack = await c.subscribe(channel="room")
        assert (ack["epoch"], ack["seq"]) == ("0", 0), ack
        redis_server.start(port=redis_server.port)
        admin = redis_server.client()
        try:
            await asyncio.to_thread(hub.wait_ready, 15)
            admin.hset(f"mizan:c:{ROOM}", "e", "c1")
            _message(admin, 1)
            assert await c.recv() == _frame(1)
        finally:
            admin.close()
        await c.close()

    try:
        run(main(), timeout=60)
    finally:
        redis_server.kill()
