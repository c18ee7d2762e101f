"""The publisher's side of "no lost invalidations" (issue 12, SPEC 10 "What a
publisher guarantees"), end to end: real Django (djsite.py) publishing
through its outbox, a real redis-server that is killed and restarted with
its data (AOF), the real hub, subscribed WebSocket clients."""

from __future__ import annotations

import asyncio

import djsite
from hubtest import SLOW, connect, poll, run


def _frames_until_quiet(client, frames, want, timeout):
    """Reads frames into `frames` until every context in `want` was seen in a
    live invalidate frame, or the deadline passes."""
    async def read():
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout * SLOW
        while not want <= _live_contexts(frames):
            left = deadline - loop.time()
            if left <= 0:
                return
            try:
                frames.append(await client.recv(timeout=left / SLOW))
            except AssertionError:
                return
    return read()


def _context(entry):
    return entry if isinstance(entry, str) else entry["context"]


def _live_contexts(frames):
    return {_context(e) for f in frames if "invalidate" in f and "reason" not in f
            for e in f["invalidate"]}


def test_invalidations_committed_while_redis_is_down_reach_subscribers_after_it_is_back(
        make_hub, aof_redis):
    """Redis SIGKILLed; five transactions commit changes and invalidate
    (each call returns normally); Redis restarts with its data, so the hub's
    gap check finds the version counters where they were. The outbox relay
    (manage.py mizan_hub_relay --once) then publishes: the connected client
    is invalidated for every affected subscription, with the counters Redis
    now holds, and not for the untouched one; a client that was away resumes
    and is invalidated too -- also for a context never published before,
    which it had acked at 0:0."""
    hub = make_hub(aof_redis, redis_backoff_max_ms=300)
    djsite.setup()
    from django.core.management import call_command
    from django.db import transaction

    import mizan_hub
    from mizan_hub.models import OutboxEntry

    user5 = {"context": "user", "params": {"user_id": "5"}}

    async def main():
        r = aof_redis.client()
        live = await connect(hub)
        await live.subscribe(context="todos")
        await live.subscribe(context="user", params={"user_id": 5})
        await live.subscribe(context="user", params={"user_id": 6})
        assert (await live.subscribe(context="fresh"))["version"] == "0:0"

        mizan_hub.invalidate("todos", ("user", {"user_id": 5}))
        first = []
        await _frames_until_quiet(live, first, {"todos", "user"}, 5)
        assert [e for f in first for e in f["invalidate"]] == ["todos", user5], first
        seen = {c: v for f in first for c, v in f["versions"].items()}

        away = await connect(hub)
        away_todos = (await away.subscribe(context="todos"))["version"]
        assert away_todos == seen["todos"]
        assert (await away.subscribe(context="fresh"))["version"] == "0:0"
        await away.close()

        port = aof_redis.port
        aof_redis.kill()
        await poll(lambda: hub.readyz()[0] == 503, 5, what="/readyz 503 after Redis died")

        for i in range(5):
            with transaction.atomic():
                mizan_hub.invalidate("todos")
                mizan_hub.invalidate(("user", {"user_id": 5}), "fresh", ("todo", {"id": i}))
        assert OutboxEntry.objects.count() == 10

        aof_redis.start(port=port)
        r = aof_redis.client()
        assert r.hget("mizan:v:todos", "n") == seen["todos"].split(":")[1], \
            "Redis came back without its data"
        assert not r.exists("mizan:v:fresh")
        await asyncio.to_thread(hub.wait_ready, 15)

        await asyncio.to_thread(call_command, "mizan_hub_relay", "--once")
        assert OutboxEntry.objects.count() == 0

        frames = []
        await _frames_until_quiet(live, frames, {"todos", "user", "fresh"}, 5)
        frames += await live.ping_barrier()
        live_frames = [f for f in frames if "invalidate" in f and "reason" not in f]
        assert {"todos", "user", "fresh"} <= _live_contexts(frames), frames
        got = [e for f in live_frames for e in f["invalidate"]]
        assert user5 in got and {"context": "user", "params": {"user_id": "6"}} not in got
        # the last frame of each context carries the counter Redis holds now
        for context in ("todos", "user", "fresh"):
            last = [f for f in live_frames if context in f["versions"]][-1]
            assert last["versions"][context] == \
                f'{r.hget(f"mizan:v:{context}", "e")}:{r.hget(f"mizan:v:{context}", "n")}'
        assert int(r.hget("mizan:v:todos", "n")) > int(seen["todos"].split(":")[1])

        # the client that was away resumes: invalidated for both, 0:0 included
        back = await connect(hub)
        await back.send({"action": "subscribe", "context": "todos", "since": away_todos,
                         "ref": "t"})
        heal = await back.recv()
        assert heal.get("reason") == "resume", heal
        assert [_context(e) for e in heal["invalidate"]] == ["todos"], heal
        assert (await back.recv()).get("subscribed") is True
        await back.send({"action": "subscribe", "context": "fresh", "since": "0:0",
                         "ref": "f"})
        heal = await back.recv()
        assert heal.get("reason") == "resume", heal
        assert [_context(e) for e in heal["invalidate"]] == ["fresh"], heal
        assert (await back.recv()).get("subscribed") is True
        await back.close()
        await live.close()
        r.close()

    with djsite.site(aof_redis.url):
        try:
            run(main(), timeout=90)
        finally:
            OutboxEntry.objects.all().delete()  # the site's database outlives the test
