"""Issue 15: the registry travels through Redis. A hub started with
--registry-from-redis refuses every subscription and is not ready until it
has read {prefix}registry; a `registry` envelope makes every hub read it
again; an invalid one is refused and the one in force stays; /readyz names
the version served."""

from __future__ import annotations

import hashlib
import json

from hubtest import EVENTS, connect, poll, run

REG_A = {"version": 1, "default": "deny",
         "contexts": {"todos": {"params": [], "guard": "public"}}, "channels": {}}
REG_B = {"version": 1, "default": "deny",
         "contexts": {"notes": {"params": [], "guard": "public"}}, "channels": {}}


def store(r, registry) -> str:
    text = registry if isinstance(registry, str) else json.dumps(registry)
    version = hashlib.sha256(text.encode()).hexdigest()[:16]
    r.set("mizan:registry", text)
    r.publish(EVENTS, json.dumps({"v": 1, "kind": "registry", "version": version}))
    return version


def test_the_registry_comes_from_redis(make_hub, redis_server):
    r = redis_server.client()
    hubs = [make_hub(redis_server, allow_anonymous=True, registry_from_redis=True,
                     wait_ready=False) for _ in range(2)]

    async def main():
        await poll(lambda: hubs[0].readyz()[1].startswith("no registry read from redis"), 5,
                   what="not ready for want of a registry (Redis itself is fine)")
        assert hubs[0].readyz()[0] == 503
        c = await connect(hubs[0])
        await c.send({"action": "subscribe", "context": "todos", "ref": 1})
        refused = await c.recv()
        assert refused["error"]["code"] == "unavailable", refused

        version = store(r, REG_A)
        for h in hubs:  # one command updates every hub
            await poll(lambda h=h: h.readyz() == (200, f"ready\nregistry {version}\n"), 5,
                       what="the registry in force")
        ack = await c.subscribe(context="todos")
        assert ack["subscribed"] is True

        # an invalid registry is refused; the one in force stays
        store(r, '{"version": 1, "default": "maybe"}')
        await poll(lambda: hubs[0].metric("mizan_hub_registry_refused_total") == 1, 5,
                   what="the refusal")
        assert hubs[0].readyz() == (200, f"ready\nregistry {version}\n")
        d = await connect(hubs[1])
        await d.subscribe(context="todos")

        # a new one replaces it
        v2 = store(r, REG_B)
        await poll(lambda: hubs[1].readyz() == (200, f"ready\nregistry {v2}\n"), 5,
                   what="the new registry")
        await d.send({"action": "subscribe", "context": "todos", "ref": 2})
        assert (await d.recv())["error"]["code"] == "not_found"
        await c.close()
        await d.close()
    run(main())


def test_a_hub_started_after_the_publish_reads_it(make_hub, redis_server):
    version = store(redis_server.client(), REG_A)
    hub = make_hub(redis_server, allow_anonymous=True, registry_from_redis=True)
    assert hub.readyz() == (200, f"ready\nregistry {version}\n")
