"""The operator page's HTTP side (issue 16, item 3; SPEC 11, 13): where
/ops/ is served, every hub sharing a Redis listed by any of them, traces of
a context or channel across hubs with each hub's receiver count, and nothing
written to the trace stream while nothing is traced."""

from __future__ import annotations

import asyncio
import json
import urllib.parse

from hubtest import PREFIX, connect, envelope_message, free_port, now_ms, poll, \
    publish_invalidate, run, EVENTS


def get(port: int, path: str) -> tuple[int, str, str]:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type") or "", resp.read().decode()
    finally:
        conn.close()


def get_json(port: int, path: str):
    status, ctype, body = get(port, path)
    assert status == 200 and ctype.startswith("application/json"), (status, ctype, body)
    return json.loads(body)


def admin_hub(make_hub, redis_server, hub_id: str, **kw):
    port = free_port()
    hub = make_hub(redis_server, hub_id=hub_id, admin_listen=f"127.0.0.1:{port}", **kw)
    hub.admin = port
    return hub


def hubs_seen(port: int) -> dict:
    return {s["hub"]: s for s in get_json(port, "/ops/api/hubs")["hubs"]}


def written_after(r, hub_id: str, invalidations: int) -> bool:
    """True once hub_id's snapshot in Redis counts `invalidations`: a record
    it appended for them came before that SET on its one command link."""
    snap = r.get(f"{PREFIX}ops:hub:{hub_id}")
    return bool(snap) and json.loads(snap)["invalidations"] >= invalidations


def trace_start(port: int, **args) -> tuple[int, dict]:
    status, _, body = get(port, "/ops/api/trace/start?" + urllib.parse.urlencode(args))
    return status, json.loads(body)


def test_ops_is_on_the_admin_listener_and_off_on_the_public_port(make_hub, redis_server):
    hub = admin_hub(make_hub, redis_server, "opsa")
    for path in ("/ops/", "/ops/api/hubs", "/ops/api/trace", "/ops/api/trace/start?context=x"):
        assert get(hub.port, path)[0] == 404, path
    status, ctype, body = get(hub.admin, "/ops/")
    assert status == 200 and ctype.startswith("text/html"), (status, ctype)
    assert "<canvas" in body and "mizan-hub" in body
    assert get(hub.admin, "/ops")[0] == 200
    assert get(hub.admin, "/ops/api/nothing")[0] == 404
    assert get_json(hub.admin, "/ops/api/hubs")["self"] == "opsa"
    assert get_json(hub.admin, "/ops/api/self")["hub"] == "opsa"


def test_ops_without_admin_listener_needs_ops_public(make_hub, redis_server):
    plain = make_hub(redis_server)
    assert get(plain.port, "/ops/")[0] == 404
    assert get(plain.port, "/ops/api/hubs")[0] == 404
    public = make_hub(redis_server, ops_public=True, hub_id="pub1")
    assert get(public.port, "/ops/")[0] == 200
    assert get_json(public.port, "/ops/api/hubs")["self"] == "pub1"


def test_every_hub_on_the_redis_is_listed_with_its_numbers(make_hub, redis_server, r):
    a = admin_hub(make_hub, redis_server, "hub-a")
    b = admin_hub(make_hub, redis_server, "hub-b")

    async def main():
        clients = [await connect(b) for _ in range(3)]
        for i, c in enumerate(clients):
            await c.subscribe(context="feed", params={"user": str(i)})
        await clients[0].subscribe(channel="chat", params={"room": "lobby"})
        await clients[1].subscribe(channel="chat", params={"room": "attic"})
        publish_invalidate(r, ["feed"], {"feed": "f1:1"}, ts=now_ms())
        for c in clients:
            assert (await c.recv())["invalidate"] == ["feed"]

        def b_as_a_sees_it():
            seen = hubs_seen(a.admin)
            hb = seen.get("hub-b")
            return ("hub-a" in seen and hb and hb["connections"] == 3 and hb["deliveries"] == 3
                    and hb["latency"]["n"] >= 3 and hb) or None

        hb = await poll(b_as_a_sees_it, 5, what="hub-b's snapshot with 3 connections on hub-a")
        assert hb["subscriptions"] == 5 and hb["invalidations"] == 1, hb
        assert hb["contexts"] == [{"name": "feed", "subs": 3, "keys": 3}], hb["contexts"]
        assert hb["channels"] == [{"name": "chat", "subs": 2, "instances": 2}], hb["channels"]
        assert hb["redis"]["subscribed"] is True and hb["ready"] is True
        assert hb["latency"]["p50"] is not None and hb["latency"]["p50"] <= hb["latency"]["p99"]
        assert hubs_seen(a.admin)["hub-a"]["connections"] == 0
        assert set(hubs_seen(b.admin)) == {"hub-a", "hub-b"}
        for c in clients:
            await c.close()

    run(main())
    # a hub that stops is gone from the list once its snapshot expires
    b.stop()
    run(poll(lambda: set(hubs_seen(a.admin)) == {"hub-a"}, 10, what="hub-b dropped"))


def test_trace_shows_each_matching_event_with_receivers_per_hub(make_hub, redis_server, r):
    a = admin_hub(make_hub, redis_server, "hub-a")
    b = admin_hub(make_hub, redis_server, "hub-b")

    async def main():
        a1, a2, b1, b2 = [await connect(h) for h in (a, a, b, b)]
        for c in (a1, a2, b1):
            await c.subscribe(context="todo", params={"list": "1"})
        await b2.subscribe(context="todo", params={"list": "2"})
        await a1.subscribe(channel="chat", params={"room": "lobby"})
        await b1.subscribe(channel="chat", params={"room": "lobby"})
        await b2.subscribe(channel="chat", params={"room": "lobby"})

        # nothing traced: fan-out writes no trace record
        publish_invalidate(r, [{"context": "todo", "params": {"list": 1}}], {"todo": "e1:1"})
        for c in (a1, a2, b1):
            await c.recv()
        await poll(lambda: written_after(r, "hub-a", 1) and written_after(r, "hub-b", 1), 5,
                   what="both hubs past the first event")
        assert not r.exists(PREFIX + "ops:trace")

        status, started = trace_start(a.admin, context="todo", params='{"list": 1}')
        assert status == 200, started
        scope = started["scope"]
        assert json.loads(scope) == {"context": "todo", "params": {"list": "1"}}
        status, ch = trace_start(b.admin, channel="chat", params='{"room":"lobby"}')
        assert status == 200, ch
        await poll(lambda: all(s["tracing"] == 2 for s in hubs_seen(a.admin).values())
                   and len(hubs_seen(a.admin)) == 2, 5, what="both hubs tracing both scopes")

        publish_invalidate(r, [{"context": "todo", "params": {"list": "1"}}], {"todo": "e1:2"})
        publish_invalidate(r, [{"context": "todo", "params": {"list": "2"}}], {"todo": "e1:3"})
        publish_invalidate(r, ["todo"], {"todo": "e1:4"})
        r.publish(EVENTS, envelope_message("chat", {"room": "lobby"}, {"t": "hi"}, 7, "m1"))
        r.publish(EVENTS, envelope_message("chat", {"room": "attic"}, {"t": "no"}, 1, "m1"))
        for c, n in ((a1, 3), (a2, 2), (b1, 3), (b2, 3)):
            for _ in range(n):
                await c.recv()

        def records(port, sc):
            q = "/ops/api/trace?" + urllib.parse.urlencode({"scope": sc})
            return get_json(port, q)["records"]

        def by_version(port, sc, want):
            got = {}
            for rec in records(port, sc):
                got.setdefault(rec["version"], {})[rec["hub"]] = rec["receivers"]
            return got if len(got) >= want and all(len(v) == 2 for v in got.values()) else None

        # seen from hub-b: records come from Redis, whichever hub wrote them
        todo = await poll(lambda: by_version(b.admin, scope, 2), 5, what="todo trace records")
        assert todo == {"e1:2": {"hub-a": 2, "hub-b": 1}, "e1:4": {"hub-a": 2, "hub-b": 2}}, todo
        rec = next(x for x in records(b.admin, scope) if x["version"] == "e1:4")
        assert rec["entry"] == "todo" and rec["kind"] == "invalidate"
        chat = await poll(lambda: by_version(a.admin, ch["scope"], 1), 5, what="chat records")
        assert chat == {"m1:7": {"hub-a": 1, "hub-b": 2}}, chat
        scopes = get_json(a.admin, "/ops/api/trace")["scopes"]
        assert {json.dumps(s, separators=(",", ":")) for s in scopes} == {scope, ch["scope"]}
        for c in (a1, a2, b1, b2):
            await c.close()

    run(main())


def test_trace_start_refuses_a_bad_scope(make_hub, redis_server):
    hub = admin_hub(make_hub, redis_server, "opsbad")
    for args, why in (({"context": "todo", "params": "{"}, "not JSON"),
                      ({"context": "todo", "params": '{"a": [1]}'}, "params"),
                      ({"context": "x" * 300}, "bad name"),
                      ({"params": "{}"}, "name the channel")):
        status, body = trace_start(hub.admin, **args)
        assert status == 400 and why in body["error"], (args, status, body)
    assert get_json(hub.admin, "/ops/api/trace")["scopes"] == []
    # a query too long for the request head is refused whole (the intake's
    # 431), never cut short to one without params (which traces every params)
    query = urllib.parse.urlencode({"context": "todo", "params": '{"a":"' + "x" * 9000 + '"}'})
    assert get(hub.admin, "/ops/api/trace/start?" + query)[0] == 431
    assert get_json(hub.admin, "/ops/api/trace")["scopes"] == []


def test_traces_are_bounded(make_hub, redis_server):
    hub = admin_hub(make_hub, redis_server, "opsmany")
    for i in range(64):
        status, body = trace_start(hub.admin, context=f"c{i}")
        assert status == 200, (i, body)
    assert trace_start(hub.admin, context="c0")[0] == 200  # renewing one in force
    status, body = trace_start(hub.admin, context="c64")
    assert status == 429 and "64 scopes" in body["error"], (status, body)
    assert len(get_json(hub.admin, "/ops/api/trace")["scopes"]) == 64


def test_trace_stop_ends_it_on_every_hub(make_hub, redis_server, r):
    a = admin_hub(make_hub, redis_server, "hub-a")
    b = admin_hub(make_hub, redis_server, "hub-b")
    status, started = trace_start(a.admin, context="todo")
    assert status == 200 and started["scope"] == '{"context":"todo"}', started

    def tracing():
        return {h: s["tracing"] for h, s in hubs_seen(a.admin).items()}

    run(poll(lambda: tracing() == {"hub-a": 1, "hub-b": 1}, 5, what="both hubs tracing"))
    q = urllib.parse.urlencode({"scope": started["scope"]})
    assert get_json(b.admin, "/ops/api/trace/stop?" + q) == {"stopped": True}
    assert get(b.admin, "/ops/api/trace/stop")[0] == 400
    run(poll(lambda: tracing() == {"hub-a": 0, "hub-b": 0}, 5, what="both hubs stopped"))
    publish_invalidate(r, ["todo"], {"todo": "e1:1"})
    run(poll(lambda: written_after(r, "hub-a", 1) and written_after(r, "hub-b", 1), 5,
             what="both hubs past the event"))
    assert not r.exists(PREFIX + "ops:trace")


def test_each_worker_is_a_hub(make_hub, redis_server):
    admin = free_port()
    hub = make_hub(redis_server, hub_id="wk", workers=2, admin_listen=f"127.0.0.1:{admin}",
                   wait_ready=False)
    hub.admin = admin

    def both():
        try:
            return set(hubs_seen(admin)) == {"wk-0", "wk-1"}
        except (OSError, AssertionError):
            return False

    run(poll(both, 10, what="both workers listed"))


def test_latency_is_publisher_ts_to_socket_write(make_hub, redis_server, r):
    """An envelope stamped 300 ms in the past is written about 300 ms after
    it: p50 and p99 fall in the histogram's 200-500 ms bucket."""
    hub = admin_hub(make_hub, redis_server, "lat")

    async def main():
        c = await connect(hub)
        await c.subscribe(context="feed")
        for i in range(5):
            publish_invalidate(r, ["feed"], {"feed": f"f1:{i + 1}"}, ts=now_ms() - 300)
            await c.recv()
        lat = get_json(hub.admin, "/ops/api/self")["latency"]
        assert lat["n"] == 5 and 200 <= lat["p50"] <= lat["p99"] <= 500, lat
        await c.close()

    run(main())


def test_link_loss_and_heal_are_events(make_hub, redis_server, r):
    hub = admin_hub(make_hub, redis_server, "ev")

    async def main():
        c = await connect(hub)
        await c.subscribe(context="feed")
        await poll(lambda: get_json(hub.admin, "/ops/api/self")["events"], 5, what="first event")
        port = redis_server.port

        def texts():
            return [e["text"] for e in get_json(hub.admin, "/ops/api/self")["events"]]

        redis_server.kill()
        await poll(lambda: "redis subscription lost" in texts(), 5, what="the loss as an event")
        redis_server.start(port=port)
        got = await poll(lambda: (lambda t: "redis subscription up" in t and
                                  any(x.startswith("gap heal started") for x in t) and t)(texts()),
                         10, what="the link back and the heal as events")
        assert got[0] == "hub started", got
        assert got.index("redis subscription lost") < got.index("redis subscription up"), got
        await c.close()

    run(main())


def test_a_redis_that_refuses_ops_commands_costs_one_warning(make_hub, redis_server, r):
    """An ACL without ZADD: the hub says so once and leaves ops:* alone for a
    minute (no warning a second); it serves and /ops/ shows this hub."""
    r.execute_command("ACL", "SETUSER", "default", "-zadd")
    hub = admin_hub(make_hub, redis_server, "acl")

    def ticks():
        return len(get_json(hub.admin, "/ops/api/self")["series"]["t"])

    run(poll(lambda: "ops: Redis refused" in hub.stderr_text(), 5, what="the refusal logged"))
    first = ticks()
    run(poll(lambda: ticks() >= first + 3, 10, what="three more ticks"))
    assert hub.stderr_text().count("ops: Redis refused") == 1, hub.stderr_text()[-2000:]
    assert hub.stderr_text().count("redis command error: NOPERM") == 1, hub.stderr_text()[-2000:]
    body = get_json(hub.admin, "/ops/api/hubs")
    assert body["redis"] is False and [s["hub"] for s in body["hubs"]] == ["acl"]
    assert hub.readyz()[0] == 200


def test_the_registry_version_in_force_is_shown(make_hub, redis_server, r):
    from test_registry_redis import REG_A, store
    hub = admin_hub(make_hub, redis_server, "reg", registry_from_redis=True, wait_ready=False)

    def registry():
        return get_json(hub.admin, "/ops/api/self")["registry"]

    run(poll(lambda: registry() == {"source": "redis", "version": None}, 5, what="none yet"))
    run(poll(lambda: (lambda s: s["ready"] is False and
                      s["why"].startswith("no registry read from redis"))(
        get_json(hub.admin, "/ops/api/self")), 5, what="not ready for want of a registry"))
    version = store(r, REG_A)
    run(poll(lambda: registry() == {"source": "redis", "version": version}, 5,
             what="the registry in force"))
    run(poll(lambda: f"registry {version} in force" in
             [e["text"] for e in get_json(hub.admin, "/ops/api/self")["events"]], 5,
             what="the registry as an event"))


def test_what_is_not_a_snapshot_or_record_is_left_out(make_hub, redis_server, r):
    """ops:* keys are Redis's: a stray value must not break the page's JSON."""
    hub = admin_hub(make_hub, redis_server, "strict")
    now = now_ms()
    for name, value in (("bad1", "{not json"), ("bad2", '{"hub":"bad2"} trailing'),
                        ("bad3", "[1]")):
        r.zadd(PREFIX + "ops:hubs", {name: now + 60000})
        r.set(PREFIX + "ops:hub:" + name, value)
    r.zadd(PREFIX + "ops:hubs", {"ok2": now + 60000})
    r.set(PREFIX + "ops:hub:ok2", '{"hub":"ok2","t":1}')
    run(poll(lambda: set(hubs_seen(hub.admin)) == {"strict", "ok2"}, 5, what="ok2 listed"))
    assert trace_start(hub.admin, context="x")[0] == 200
    r.xadd(PREFIX + "ops:trace", {"s": '{"context":"x"}', "r": "{broken"})
    r.xadd(PREFIX + "ops:trace", {"s": '{"context":"x"}', "r": '{"hub":"h","version":"e:1"}'})
    run(poll(lambda: get_json(hub.admin, "/ops/api/trace")["records"] ==
             [{"hub": "h", "version": "e:1"}], 5, what="the one good record"))
