"""Client-side sharding over three real redis-servers (SPEC section 11.1):
the real hub with --redis-shards, the real Django publisher (djsite.py,
mizan_hub.publishing through its outbox) with MIZAN_HUB["REDIS_SHARDS"],
WebSocket clients.

- every invalidation and channel message reaches the browsers, and every
  key is on the shard the mapping names (and on no other);
- one shard's Redis killed and restarted empty: /readyz names that shard
  while it is down, the other shards' events keep arriving live, and the
  heal invalidates only the subscriptions that shard owns;
- a resume with `since` (context and channel) reads the owning shard;
- a browser's frames land in the inbound stream of its connection's shard;
- each shard URL has its own TLS and password.
"""

from __future__ import annotations

import asyncio

import pytest

import djsite
from hubtest import SLOW, RedisServer, connect, poll, publish_invalidate, run
from mizan_hub.protocol import canonical_key, shard
from test_redis_tls import TlsRedis, pki  # noqa: F401  (pki: a fixture)

N = 3
CHANNELS = {"room": {"history": 100}}


@pytest.fixture
def shards(tmp_path):
    servers = [RedisServer(tmp_path / f"redis-shard{i}") for i in range(N)]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.kill()


def names_per_shard(prefix: str, per_shard: int, key=lambda name: name) -> dict[int, list[str]]:
    """Names prefix0, prefix1, ... until each shard owns `per_shard` of them."""
    out: dict[int, list[str]] = {i: [] for i in range(N)}
    i = 0
    while min(len(v) for v in out.values()) < per_shard:
        name = f"{prefix}{i}"
        owner = shard(key(name), N)
        if len(out[owner]) < per_shard:
            out[owner].append(name)
        i += 1
    return out


def room_key(room: str) -> str:
    return canonical_key("room", {"id": room})


def sharded_hub(make_hub, servers, **settings):
    return make_hub(servers[0], redis_shards=",".join(s.url for s in servers),
                    redis_backoff_max_ms=300, **settings)


def run_in_site(servers, coro, timeout: float = 60) -> None:
    """Runs the test body with Django publishing to these shards; the
    site's database outlives the test, so its outbox is emptied after."""
    with djsite.site(servers[0].url, REDIS_SHARDS=[s.url for s in servers], CHANNELS=CHANNELS):
        from mizan_hub.models import OutboxEntry
        try:
            run(coro, timeout=timeout)
            assert OutboxEntry.objects.count() == 0, "everything was delivered"
        finally:
            OutboxEntry.objects.all().delete()


def _context(entry):
    return entry if isinstance(entry, str) else entry["context"]


async def read_until(client, done, timeout: float = 10) -> list[dict]:
    """Frames until done(frames) holds (a Timeout when it does not in time)."""
    frames: list[dict] = []
    deadline = asyncio.get_running_loop().time() + timeout * SLOW
    while not done(frames):
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"not done within {timeout * SLOW:.0f} s; frames {frames}"
        frames.append(await client.recv(left / SLOW))
    return frames


def is_message(frame) -> bool:
    """A channel message frame (not an ack, not a gap)."""
    return "channel" in frame and "type" in frame and "subscribed" not in frame


def live_contexts(frames) -> set[str]:
    return {_context(e) for f in frames if "invalidate" in f and "reason" not in f
            for e in f["invalidate"]}


def test_the_publisher_reaches_every_browser_and_every_key_is_on_its_shard(make_hub, shards):
    hub = sharded_hub(make_hub, shards)
    contexts = names_per_shard("ctx", 3)
    rooms = names_per_shard("r", 2, room_key)
    all_contexts = [c for s in range(N) for c in contexts[s]]
    all_rooms = [r for s in range(N) for r in rooms[s]]
    djsite.setup()
    from django.db import transaction

    import mizan_hub

    async def main():
        a = await connect(hub)
        b = await connect(hub)
        for c in all_contexts:
            assert (await a.subscribe(context=c))["version"] == "0:0"
        for c in contexts[1]:
            await b.subscribe(context=c, params={"id": 1})
        for r in all_rooms:
            await a.subscribe(channel="room", params={"id": r})

        # one invalidate() naming contexts of every shard: split per shard
        await asyncio.to_thread(mizan_hub.invalidate, *all_contexts)
        # a transaction of scoped entries and messages
        def batch():
            with transaction.atomic():
                mizan_hub.invalidate(*[(c, {"id": 1}) for c in contexts[1]])
                for n in range(3):
                    for r in all_rooms:
                        mizan_hub.publish("room", {"id": r}, {"n": n})
        await asyncio.to_thread(batch)

        want_messages = {(r, n) for r in all_rooms for n in range(3)}

        def a_done(frames):
            got = {(f["params"]["id"], f["data"]["n"]) for f in frames if is_message(f)}
            return set(all_contexts) <= live_contexts(frames) and want_messages <= got
        frames = await read_until(a, a_done)
        frames += await a.ping_barrier()
        # messages of each room in order, seq 1..3, once each
        for r in all_rooms:
            seqs = [f["seq"] for f in frames if is_message(f) and f["params"]["id"] == r]
            assert seqs == [1, 2, 3], (r, seqs)
        # every invalidate frame names contexts of one shard only: one envelope per shard
        for f in frames:
            if "invalidate" in f:
                owners = {shard(_context(e), N) for e in f["invalidate"]}
                assert len(owners) == 1, f

        b_frames = await read_until(b, lambda fr: set(contexts[1]) <= live_contexts(fr))
        assert all(_context(e) in contexts[1] for f in b_frames for e in f["invalidate"])
        await a.close()
        await b.close()

    run_in_site(shards, main())

    clients = [s.client() for s in shards]
    for c in all_contexts:
        owner = shard(c, N)
        for i, client in enumerate(clients):
            assert bool(client.exists(f"mizan:v:{c}")) == (i == owner), (c, i)
        assert clients[owner].hget(f"mizan:v:{c}", "n") == ("2" if c in contexts[1] else "1")
    for r in all_rooms:
        key = room_key(r)
        owner = shard(key, N)
        for i, client in enumerate(clients):
            assert bool(client.exists(f"mizan:c:{key}")) == (i == owner), (r, i)
            assert bool(client.exists(f"mizan:h:{key}")) == (i == owner), (r, i)
        assert clients[owner].xlen(f"mizan:h:{key}") == 3
    for client in clients:
        client.close()


def test_a_shard_that_restarts_empty_heals_only_what_it_owns(make_hub, shards):
    hub = sharded_hub(make_hub, shards, heal_timeout_ms=5000)
    contexts = names_per_shard("ctx", 2)
    rooms = names_per_shard("r", 1, room_key)
    down = 1
    djsite.setup()

    import mizan_hub

    async def main():
        a = await connect(hub)
        await asyncio.to_thread(mizan_hub.invalidate, *[c for s in range(N) for c in contexts[s]])
        for s in range(N):
            for c in contexts[s]:
                ack = await a.subscribe(context=c)
                assert ack["version"].endswith(":1"), ack
            await a.subscribe(channel="room", params={"id": rooms[s][0]})
        assert await a.ping_barrier() == []

        port = shards[down].port
        shards[down].kill()
        status = await poll(lambda: (s := hub.readyz())[0] == 503 and s, 5,
                            what="/readyz 503 after a shard died")
        assert f"redis shard {down} (127.0.0.1:{port})" in status[1], status

        # the other shards are not disturbed: their events arrive live
        others = [c for s in range(N) if s != down for c in contexts[s]]
        await asyncio.to_thread(mizan_hub.invalidate, *others)
        frames = await read_until(a, lambda fr: set(others) <= live_contexts(fr))
        assert not any(_context(e) in contexts[down] for f in frames
                       for e in f.get("invalidate", [])), frames

        # the shard comes back empty: every version it owned is lost
        shards[down].start(port=port)
        await asyncio.to_thread(hub.wait_ready, 15)
        healed = await read_until(a, lambda fr: set(contexts[down]) <= {
            _context(e) for f in fr if f.get("reason") == "gap" for e in f["invalidate"]})
        healed += await a.ping_barrier()
        gap_contexts = [_context(e) for f in healed if f.get("reason") == "gap"
                        for e in f["invalidate"]]
        assert sorted(gap_contexts) == sorted(contexts[down]), healed
        # no channel gap: the other shards lost nothing, and the restarted
        # one has no channel state left (its next message starts a new epoch)
        assert not [f for f in healed if "gap" in f], healed

        # per-shard metrics: one heal, on that shard
        metrics = hub.metrics()
        for s in range(N):
            assert metrics[f'mizan_hub_redis_shard_heals_total{{shard="{s}"}}'] == \
                (1 if s == down else 0), s
            assert metrics[f'mizan_hub_redis_shard_up{{shard="{s}"}}'] == 1
        assert metrics[f'mizan_hub_redis_shard_reconnects_total{{shard="{down}"}}'] >= 1
        await a.close()

    run_in_site(shards, main())


def test_resume_with_since_reads_the_owning_shard(make_hub, shards):
    hub = sharded_hub(make_hub, shards)
    # a context and a room on a shard other than the first (the --redis one)
    context = names_per_shard("ctx", 1)[2][0]
    room = names_per_shard("r", 1, room_key)[2][0]
    djsite.setup()

    import mizan_hub

    async def main():
        await asyncio.to_thread(mizan_hub.invalidate, context)
        for n in range(2):
            await asyncio.to_thread(mizan_hub.publish, "room", {"id": room}, {"n": n})
        a = await connect(hub)
        version = (await a.subscribe(context=context))["version"]
        assert version != "0:0" and version.endswith(":1")
        ack = await a.subscribe(channel="room", params={"id": room})
        assert ack["seq"] == 2, ack
        epoch = ack["epoch"]
        await a.close()

        # nothing changed: the resume finds the version on shard 2 and is quiet
        b = await connect(hub)
        ack = await b.subscribe(context=context, since=version)
        assert ack["version"] == version
        assert await b.ping_barrier() == []
        await b.close()

        await asyncio.to_thread(mizan_hub.invalidate, context)
        for n in range(2, 4):
            await asyncio.to_thread(mizan_hub.publish, "room", {"id": room}, {"n": n})

        c = await connect(hub)
        await c.send({"action": "subscribe", "context": context, "since": version, "ref": "x"})
        heal = await c.recv()
        assert heal.get("reason") == "resume" and \
            [_context(e) for e in heal["invalidate"]] == [context], heal
        assert (await c.recv())["version"].endswith(":2")
        await c.send({"action": "subscribe", "channel": "room", "params": {"id": room},
                      "since": f"{epoch}:2", "ref": "y"})
        frames = await read_until(c, lambda fr: any(f.get("subscribed") for f in fr))
        replay = [(f["seq"], f["data"]["n"]) for f in frames if is_message(f)]
        assert replay == [(3, 2), (4, 3)], frames
        assert frames[-1]["seq"] == 4
        await c.close()

    run_in_site(shards, main())


def test_a_browsers_frames_go_to_its_connections_shard(make_hub, shards):
    hub = sharded_hub(make_hub, shards)

    async def main():
        clients = []
        while len({shard(c.conn, N) for c in clients}) < N:  # a connection on every shard
            assert len(clients) < 64
            clients.append(await connect(hub))
        for i, c in enumerate(clients):
            await c.send({"action": "message", "channel": "chat", "params": {}, "type": "Hi",
                          "data": {"i": i}})
        want = [0] * N
        for c in clients:
            want[shard(c.conn, N)] += 1
        redis_clients = [s.client() for s in shards]
        await poll(lambda: [r.xlen("mizan:in") if r.exists("mizan:in") else 0
                            for r in redis_clients] == want, 5, what=f"inbound lengths {want}")
        for r in redis_clients:
            if r.exists("mizan:in"):
                for _id, fields in r.xrange("mizan:in"):
                    assert shard(fields["conn"], N) == redis_clients.index(r)
            r.close()
        for c in clients:
            await c.close()

    run(main(), timeout=30)


class PasswordRedis(RedisServer):
    def extra_args(self) -> list[str]:
        return ["--requirepass", "shard-secret"]

    def client(self, **kw):
        return super().client(password="shard-secret", **kw)

    @property
    def url(self) -> str:
        return f"redis://:shard-secret@127.0.0.1:{self.port}/0"


def test_each_shard_url_has_its_own_tls_and_password(make_hub, tmp_path, pki):  # noqa: F811
    servers = [RedisServer(tmp_path / "plain"), TlsRedis(tmp_path / "tls", pki),
               PasswordRedis(tmp_path / "password")]
    try:
        for server in servers:
            server.start()
        hub = sharded_hub(make_hub, servers, redis_tls_ca=str(pki / "ca.crt"))
        contexts = names_per_shard("ctx", 1)

        async def main():
            c = await connect(hub)
            for s in range(N):
                assert (await c.subscribe(context=contexts[s][0]))["version"] == "0:0"
            for s, server in enumerate(servers):
                client = server.client()
                assert publish_invalidate(client, contexts[s], {contexts[s][0]: "t1:1"}) == 1
                client.close()
                frame = await c.recv()
                assert frame["invalidate"] == contexts[s], (s, frame)
            await c.close()

        run(main(), timeout=30)
        assert "redis subscriber link (shard 1) connected" in hub.stderr_text()
    finally:
        for server in servers:
            server.kill()
