"""Issue 14, item 4: Redis behind Sentinel. The hub asks a Sentinel for the
master, follows a failover (+switch-master) to the promoted replica, is not
ready while it has no master, and heals the gap by versions: a client
subscribed through it is invalidated by an event published on the new
master. Two redis-servers (master, replica) and one Sentinel, all on free
loopback ports."""

from __future__ import annotations

import asyncio
import time

import pytest

from hubtest import SLOW, Sentinel, connect, poll, publish_invalidate, run, sentinel_cluster


@pytest.fixture
def cluster(tmp_path):
    master, replica, sentinel = sentinel_cluster(tmp_path)
    yield master, replica, sentinel
    sentinel.stop()
    replica.kill()
    master.kill()


def test_the_hub_follows_a_sentinel_failover(make_hub, cluster):
    master, replica, sentinel = cluster
    hub = make_hub(master, allow_anonymous=True, redis_sentinels=f"127.0.0.1:{sentinel.port}",
                   redis_master_name="mymaster")
    assert "master of 'mymaster' is 127.0.0.1:%d" % master.port in hub.stderr_text()

    async def main():
        c = await connect(hub)
        await c.subscribe(context="todos")
        publish_invalidate(master.client(), ["todos"], {"todos": "e1:1"})
        assert (await c.recv())["invalidate"] == ["todos"]
        sentinel.client.execute_command("SENTINEL", "FAILOVER", "mymaster")
        await poll(lambda: int(sentinel.master()[1]) == replica.port, 15, what="the promotion")
        await poll(lambda: f"is 127.0.0.1:{replica.port} now (failover)" in hub.stderr_text(), 10,
                   what="the hub following +switch-master")
        await poll(lambda: hub.readyz()[0] == 200, 15, what="ready on the new master")
        # the link loss was a gap: the subscription is healed (or told nothing
        # changed), and live events come from the new master
        new = replica.client()
        new.hset("mizan:v:todos", mapping={"e": "e1", "n": "2", "u": "2"})
        publish_invalidate(new, ["todos"], {"todos": "e1:2"})
        frames = []
        while not any(f.get("invalidate") == ["todos"] and f.get("versions") == {"todos": "e1:2"}
                      for f in frames):
            frames.append(await c.recv(10))
        await c.close()
    run(main(), timeout=60)
    assert hub.metric("mizan_hub_redis_failovers_total") == 1


def test_no_master_means_not_ready(make_hub, redis_server, tmp_path):
    # a Sentinel that knows no master of that name
    sentinel = Sentinel(tmp_path / "s", redis_server.port)
    try:
        hub = make_hub(redis_server, allow_anonymous=True,
                       redis_sentinels=f"127.0.0.1:{sentinel.port}", redis_master_name="other",
                       wait_ready=False)
        time.sleep(1.0 * SLOW)
        status, body = hub.readyz()
        assert status == 503 and "no redis master known" in body, body
        assert "no master named 'other'" in hub.stderr_text()
    finally:
        sentinel.stop()


def test_django_publishes_to_the_master_the_sentinels_name_after_a_failover(make_hub, cluster):
    """MIZAN_HUB["REDIS_SENTINELS"]: the Django publisher (and its outbox
    relay) ask the Sentinel for the master. After SENTINEL FAILOVER the old
    master is a read-only replica; the next publish must land on the
    promoted one -- its counters move and the hub, following the same
    Sentinel, delivers the event live. REDIS_URL names a server that does
    not exist: with Sentinels only its database (and user, password) count."""
    import djsite
    djsite.setup()
    from django.core.management import call_command

    import mizan_hub
    from mizan_hub.models import OutboxEntry

    master, replica, sentinel = cluster
    hub = make_hub(master, allow_anonymous=True, redis_sentinels=sentinel.addr,
                   redis_master_name="mymaster")

    async def main():
        c = await connect(hub)
        await c.subscribe(context="todos")
        mizan_hub.invalidate("todos")
        first = await c.recv()
        assert first["invalidate"] == ["todos"] and first["versions"]["todos"].endswith(":1")
        assert master.client().hget("mizan:v:todos", "n") == "1"

        sentinel.client.execute_command("SENTINEL", "FAILOVER", "mymaster")
        await poll(lambda: int(sentinel.master()[1]) == replica.port, 15, what="the promotion")
        await poll(lambda: master.client().info("replication")["role"] == "slave", 15,
                   what="the old master demoted")
        await poll(lambda: hub.readyz()[0] == 200 and
                   f"is 127.0.0.1:{replica.port} now (failover)" in hub.stderr_text(), 15,
                   what="the hub on the new master")
        frames = await c.ping_barrier()  # the hub's heal (nothing changed: maybe nothing)

        # Django's pooled connection still goes to the demoted server: that
        # publish fails (READONLY) and stays in the outbox; the relay then
        # asks the Sentinel again and reaches the promoted one.
        mizan_hub.invalidate("todos")
        for _ in range(20):
            if not OutboxEntry.objects.exists():
                break
            await asyncio.to_thread(call_command, "mizan_hub_relay", "--once")
            await asyncio.sleep(0.1)
        assert not OutboxEntry.objects.exists(), "the relay never reached the new master"
        assert replica.client().hget("mizan:v:todos", "n") == "2"
        while not any(f.get("invalidate") == ["todos"] and "reason" not in f and
                      f["versions"]["todos"].endswith(":2") for f in frames):
            frames.append(await c.recv(10))
        # the asyncio client (ainvalidate) asks the Sentinel too
        await mizan_hub.ainvalidate("todos")
        assert replica.client().hget("mizan:v:todos", "n") == "3"
        assert (await c.recv())["versions"]["todos"].endswith(":3")
        await c.close()

    with djsite.site("redis://127.0.0.1:1/0", REDIS_SENTINELS=[sentinel.addr],
                     REDIS_MASTER_NAME="mymaster"):
        try:
            run(main(), timeout=90)
        finally:
            OutboxEntry.objects.all().delete()
