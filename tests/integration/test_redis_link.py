"""The hub's Redis link: readiness, reconnect, resubscribe, gap healing
(SPEC 10 "Hub link gaps", 13; issue 4 item 6)."""

from __future__ import annotations

import asyncio
import json
import time
import types

from hubtest import (SLOW, RedisServer, bucket, canonical_key, connect, poll,
                     publish_invalidate, run)


def _frame(seq: int) -> dict:
    return {"channel": "room", "params": {}, "type": "Msg", "data": {"n": seq}, "seq": seq,
            "epoch": "c1"}


def test_redis_restart_not_ready_then_ready_and_gap_healed(make_hub, aof_redis, tmp_path):
    """Redis SIGKILLed and restarted on the same port with the same data: /readyz
    503 then 200, events flow again, and what changed while the hub was away is
    healed: `{"invalidate":[entry],"reason":"gap"}` for the subscription whose
    scope moved, nothing for contexts that did not change. The change is made
    while the hub cannot see Redis: by a second redis-server on another port
    over the same append-only files, before the first one is restarted."""
    hub = make_hub(aof_redis, redis_backoff_max_ms=500)
    r = aof_redis.client()
    moved = {"k": "1"}
    r.hset("mizan:v:gctx", mapping={"e": "g1", "n": 5})
    r.hset("mizan:v:quiet", mapping={"e": "q1", "n": 3})
    ckey = canonical_key("room", {})
    r.hset(f"mizan:c:{ckey}", mapping={"e": "c1", "s": 5})
    for seq in range(1, 6):
        r.xadd(f"mizan:h:{ckey}", {"f": json.dumps(_frame(seq), separators=(",", ":"))},
               id=f"{seq}-0")

    async def main():
        c = await connect(hub)
        assert (await c.subscribe(context="gctx", params=moved))["version"] == "g1:5"
        assert (await c.subscribe(context="quiet"))["version"] == "q1:3"
        assert (await c.subscribe(context="live"))["version"] == "0:0"
        ack = await c.subscribe(channel="room")
        assert (ack["epoch"], ack["seq"]) == ("c1", 5), ack
        reconnects = hub.metric("mizan_hub_redis_reconnects_total")

        port = aof_redis.port
        aof_redis.kill()
        status, body = await poll(lambda: (lambda s: s if s[0] == 503 else None)(hub.readyz()),
                                  5, what="/readyz 503 after Redis died")
        assert body.strip(), "503 without a reason"

        # While the hub is cut off: the publisher moves gctx {k:1} (n 5 -> 6, its
        # bucket to 6) and the channel (s 5 -> 7, history 6 and 7).
        other = RedisServer(aof_redis.dir, aof=True)
        other.start()
        try:
            o = other.client()
            assert o.hget("mizan:v:gctx", "n") == "5", "the AOF did not keep the data"
            o.hincrby("mizan:v:gctx", "n", 1)
            o.hset("mizan:v:gctx", str(bucket(canonical_key("gctx", moved))), 6)
            o.hset(f"mizan:c:{ckey}", "s", 7)
            for seq in (6, 7):
                o.xadd(f"mizan:h:{ckey}", {"f": json.dumps(_frame(seq), separators=(",", ":"))},
                       id=f"{seq}-0")
            o.close()
        finally:
            other.stop()
        assert hub.readyz()[0] == 503

        aof_redis.start(port=port)
        r2 = aof_redis.client()
        assert r2.hget("mizan:v:gctx", "n") == "6"
        await asyncio.to_thread(hub.wait_ready, 15)
        assert hub.metric("mizan_hub_redis_reconnects_total") > reconnects

        # The heal: gctx invalidated with reason gap; the channel's missed
        # messages replayed (or a gap frame for them); quiet and live untouched.
        got = []
        deadline = time.monotonic() + 5 * SLOW
        while time.monotonic() < deadline and len(got) < 3:
            try:
                got.append(await c.recv(timeout=max(0.05, (deadline - time.monotonic()) / SLOW)))
            except AssertionError:
                break
        await asyncio.sleep(0.3)
        got += await c.ping_barrier()
        problems = []
        invs = [f for f in got if "invalidate" in f]
        heal = [f for f in invs if f["invalidate"] == [{"context": "gctx", "params": moved}]]
        if not (len(heal) == 1 and heal[0].get("reason") == "gap" and
                heal[0].get("versions", {"gctx": "g1:6"}) == {"gctx": "g1:6"}):
            problems.append(f"expected one gap invalidation of gctx {moved} (g1:6), got {got}")
        # SPEC 10: the rule with the version the hub last saw in place of since:
        # quiet is still q1:3 and live still has no hash (0:0): neither qualifies.
        unqualified = [f for f in invs if f not in heal]
        if unqualified:
            problems.append(
                "gap invalidations for subscriptions that do not qualify under SPEC 10 "
                f"(quiet: q1:3 before and after; live: 0:0, no hash before or after): "
                f"{unqualified}")
        chan = [f for f in got if "invalidate" not in f]
        gaps = [f for f in chan if "gap" in f]
        if gaps:
            if not (len(chan) == 1 and gaps[0]["gap"]["channel"] == "room" and
                    gaps[0]["gap"]["recovered"] is False):
                problems.append(f"channel heal: {chan}")
        elif chan != [_frame(6), _frame(7)]:
            problems.append(f"channel messages 6 and 7 were neither replayed nor reported "
                            f"as a gap: {got}")

        # Resubscribed: live events flow again.
        publish_invalidate(r2, ["live"], {"live": "l1:1"})
        f = await c.recv()
        if f != {"invalidate": ["live"], "versions": {"live": "l1:1"}, "spread_ms": 0}:
            problems.append(f"after the reconnect, a live event gave {f}")
        assert not problems, "\n".join(problems)
        await c.close()
        r2.close()

    run(main(), timeout=60)


def test_subscriber_link_dropped_loses_no_invalidation(make_hub, redis_server, r):
    """CLIENT KILL TYPE pubsub cuts the hub's subscription; an event published
    right then (with the publisher script's version bump) reaches the client
    either live or as a `gap` heal: never silence (SPEC 10)."""
    hub = make_hub(redis_server, redis_backoff_max_ms=200)
    r.hset("mizan:v:doc", mapping={"e": "d1", "n": 1})

    async def main():
        c = await connect(hub)
        assert (await c.subscribe(context="doc", params={"id": "9"}))["version"] == "d1:1"
        for round_ in range(3):
            killed = r.client_kill_filter(_type="pubsub")
            assert killed >= 1
            pipe = r.pipeline(transaction=True)
            pipe.hincrby("mizan:v:doc", "n", 1)
            pipe.hset("mizan:v:doc", "u", round_ + 2)
            pipe.publish("mizan:events", json.dumps(
                {"v": 1, "kind": "invalidate", "invalidate": ["doc"],
                 "versions": {"doc": f"d1:{round_ + 2}"}}))
            pipe.execute()
            f = await c.recv(timeout=10)
            assert f.get("invalidate") in (["doc"], [{"context": "doc", "params": {"id": "9"}}]) \
                and f.get("reason") in (None, "gap"), f
            await asyncio.to_thread(hub.wait_ready, 10)
            # At most one more (a heal after a live delivery is over-invalidation, allowed).
            extra = await c.ping_barrier()
            assert all("invalidate" in x for x in extra) and len(extra) <= 1, extra
        await c.close()

    run(main(), timeout=60)


def test_hub_authenticates_as_a_redis_acl_user(make_hub, redis_server):
    """redis://USER:PASSWORD@... authenticates as that ACL user (AUTH user
    password), with the default user switched off: the hub gets ready and
    delivers (before, the user was dropped and AUTH sent the password alone)."""
    r = redis_server.client()
    r.execute_command("ACL", "SETUSER", "admin", "on", ">adminpw", "~*", "&*", "+@all")
    r.execute_command("ACL", "SETUSER", "hubuser", "on", ">hubpw", "~mizan:*", "&mizan:*",
                      "+@all")
    r.close()
    admin = redis_server.client(username="admin", password="adminpw")
    admin.execute_command("ACL", "SETUSER", "default", "off")
    admin.hset("mizan:v:doc", mapping={"e": "d1", "n": 1})
    url = types.SimpleNamespace(url=f"redis://hubuser:hubpw@127.0.0.1:{redis_server.port}/0")
    hub = make_hub(url)

    async def main():
        c = await connect(hub)
        assert (await c.subscribe(context="doc"))["version"] == "d1:1"
        publish_invalidate(admin, ["doc"], {"doc": "d1:2"})
        assert await c.recv() == {"invalidate": ["doc"], "versions": {"doc": "d1:2"},
                                  "spread_ms": 0}
        await c.close()

    try:
        run(main(), timeout=30)
    finally:
        admin.close()
