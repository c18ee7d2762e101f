"""Client-side sharding (SPEC section 11.1): the mapping against the shared
vectors, and the publisher over three real redis-servers -- invalidations
split per shard (one script run, one envelope per shard), channel messages
on their instance's shard, versions read where they live, the inbound
worker on every shard, the settings and the hub's config line.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis
from django.core.management import call_command
from django.test import override_settings

from mizan_hub import connection, protocol, publishing
from mizan_hub.checks import check_settings
from mizan_hub.versions import aread_versions, read_versions
from tests.conftest import HUB, Subscriber, free_port, redis_server, running_hub

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "shard" / "shards.json"
CASES = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_mapping_matches_the_shared_vectors(case):
    assert protocol.slot(case["input"]) == case["expect"]["slot"]
    got = [protocol.shard(case["input"], n) for n in range(1, len(case["expect"]["shards"]) + 1)]
    assert got == case["expect"]["shards"]


def test_slots_are_split_in_even_ranges():
    # shard i owns [i*16384/N, (i+1)*16384/N): each boundary slot's owner
    for n in range(1, 9):
        owners = [s * n // protocol.SLOTS for s in range(protocol.SLOTS)]
        counts = [owners.count(i) for i in range(n)]
        assert max(counts) - min(counts) <= 1
    with pytest.raises(ValueError):
        protocol.shard("x", 0)


# ---------------------------------------------------------------- three shards


@pytest.fixture(scope="module")
def three_urls(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("shard0")) as a, \
            redis_server(tmp_path_factory.mktemp("shard1")) as b, \
            redis_server(tmp_path_factory.mktemp("shard2")) as c:
        yield [a, b, c]


@pytest.fixture
def shards(three_urls, transactional_db):
    """MIZAN_HUB["REDIS_SHARDS"] = three servers, emptied; their clients."""
    from django.conf import settings
    clients = [redis.Redis.from_url(url) for url in three_urls]
    for client in clients:
        client.flushall()
    with override_settings(MIZAN_HUB={**settings.MIZAN_HUB, "REDIS_SHARDS": three_urls}):
        yield clients
    for client in clients:
        client.close()


def contexts_by_shard(n: int = 3) -> dict[int, list[str]]:
    """Context names ctx0, ctx1, ... grouped by their shard of n."""
    out: dict[int, list[str]] = {i: [] for i in range(n)}
    i = 0
    while min(len(v) for v in out.values()) < 3:
        name = f"ctx{i}"
        out[protocol.shard(name, n)].append(name)
        i += 1
    return out


def test_an_invalidation_is_split_per_shard_each_run_on_its_shard(shards):
    by_shard = contexts_by_shard()
    subs = [Subscriber(client, "mizan:events") for client in shards]
    try:
        names = [by_shard[s][k] for k in range(2) for s in range(3)]  # interleaved
        publishing.invalidate(*names[:-1], (names[-1], {"id": 7}))
        for s, client in enumerate(shards):
            envelopes = subs[s].envelopes()
            assert len(envelopes) == 1, (s, envelopes)
            env = envelopes[0]
            listed = [e if isinstance(e, str) else e["context"] for e in env["invalidate"]]
            assert sorted(listed) == sorted(by_shard[s][:2]), "only this shard's contexts"
            assert set(env["versions"]) == set(by_shard[s][:2])
            for name in by_shard[s][:2]:
                assert client.hget(f"mizan:v:{name}", "n") == b"1"
            for other in range(3):
                if other != s:
                    for name in by_shard[other]:
                        assert not client.exists(f"mizan:v:{name}"), (name, s)
        # the scoped entry bumped its bucket on its own shard
        last = names[-1]
        bucket = protocol.bucket(protocol.canonical_key(last, {"id": 7}))
        assert shards[protocol.shard(last, 3)].hget(f"mizan:v:{last}", str(bucket)) == b"1"
    finally:
        for sub in subs:
            sub.close()


def test_a_channel_message_goes_to_its_instance_shard(shards):
    subs = [Subscriber(client, "mizan:events") for client in shards]
    try:
        rooms = [f"room-{i}" for i in range(12)]
        for room in rooms:
            publishing.publish("chat", {"room": room}, {"text": room})
        for room in rooms:
            key = protocol.canonical_key("chat", {"room": room})
            owner = protocol.shard(key, 3)
            for s, client in enumerate(shards):
                assert client.exists(f"mizan:c:{key}") == (s == owner), (room, s)
        seen = {s: [e["params"]["room"] for e in sub.envelopes()] for s, sub in enumerate(subs)}
        for room in rooms:
            owner = protocol.shard(protocol.canonical_key("chat", {"room": room}), 3)
            assert room in seen[owner]
        assert sum(len(v) for v in seen.values()) == len(rooms)
    finally:
        for sub in subs:
            sub.close()


def test_versions_are_read_on_the_shard_that_holds_them(shards):
    by_shard = contexts_by_shard()
    names = [by_shard[s][0] for s in range(3)]
    publishing.invalidate(names[1])
    publishing.invalidate(names[1], names[2])
    versions = read_versions(names)
    assert versions[names[0]] == "0:0"
    assert versions[names[1]].endswith(":2") and versions[names[2]].endswith(":1")
    assert list(versions) == names, "in the order asked"
    assert asyncio.run(_aread(names)) == versions


async def _aread(names):
    try:
        return await aread_versions(names)
    finally:
        await connection.aclose_async_redis()


def test_async_publishing_splits_the_same_way(shards):
    by_shard = contexts_by_shard()

    async def go():
        try:
            await publishing.ainvalidate(by_shard[0][0], by_shard[2][0])
            await publishing.apublish("chat", {"room": "async"}, {"x": 1})
        finally:
            await connection.aclose_async_redis()
    asyncio.run(go())
    assert shards[0].hget(f"mizan:v:{by_shard[0][0]}", "n") == b"1"
    assert shards[2].hget(f"mizan:v:{by_shard[2][0]}", "n") == b"1"
    assert not shards[1].keys("mizan:v:*")
    key = protocol.canonical_key("chat", {"room": "async"})
    assert shards[protocol.shard(key, 3)].hget(f"mizan:c:{key}", "s") == b"1"


def test_one_shard_down_keeps_the_event_queued_and_the_relay_delivers_it(shards, three_urls):
    """A shard that refuses the connection is an outage like any other: the
    row stays in the outbox; the relay publishes it (to every shard again:
    at least once) when the shard is back."""
    from django.conf import settings

    from mizan_hub import outbox
    by_shard = contexts_by_shard()
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    urls = [three_urls[0], dead, three_urls[2]]
    with override_settings(MIZAN_HUB={**settings.MIZAN_HUB, "REDIS_SHARDS": urls,
                                      "REDIS_TIMEOUT": 0.2}):
        publishing.invalidate(by_shard[0][0], by_shard[1][0])
        assert outbox.lag()["pending"] == 1
        assert shards[0].hget(f"mizan:v:{by_shard[0][0]}", "n") == b"1", "shard 0 went first"
    outbox.relay()
    assert outbox.lag()["pending"] == 0
    assert shards[1].hget(f"mizan:v:{by_shard[1][0]}", "n") == b"1"
    assert shards[0].hget(f"mizan:v:{by_shard[0][0]}", "n") == b"2", "published again"


def test_the_worker_reads_every_shard_and_answers_on_it(shards):
    from mizan_hub.worker import Worker
    worker = Worker(consumer="sharded")
    assert [r.shard for r in worker._readers] == [1, 2]
    for s, reader in enumerate([worker, *worker._readers]):
        reader.ensure_group()
        sub = Subscriber(shards[s], "mizan:hub:h1")
        try:
            shards[s].xadd("mizan:in", {
                "v": "1", "kind": "message", "hub": "h1", "conn": f"h1.{s}",
                "identity": "null", "ts": "0",
                "body": json.dumps({"action": "message", "channel": "nowhere", "params": {},
                                    "type": "Ping", "data": {}})})
            assert reader.step() == 1
            envelopes = sub.envelopes()
            assert [e["conn"] for e in envelopes] == [f"h1.{s}"], "answered on its shard"
            assert not shards[s].xpending("mizan:in", "django")["pending"]
        finally:
            sub.close()
    worker.stop()


def test_settings_are_checked(shards):
    from django.conf import settings
    for bad, words in [(["http://x"], "is not a redis://"), ("redis://x", "list of 1-16"),
                       ([], "list of 1-16"),
                       (["redis://127.0.0.1/0", "redis://127.0.0.1/0"], "twice")]:
        with override_settings(MIZAN_HUB={**settings.MIZAN_HUB, "REDIS_SHARDS": bad}):
            errors = [e for e in check_settings(None) if e.id == "mizan_hub.E002"]
            assert errors and words in errors[0].msg, (bad, errors)


def test_mizan_hub_config_writes_the_shards_in_order(shards, three_urls, tmp_path):
    call_command("mizan_hub_config", "-o", str(tmp_path / "hub.conf"))
    lines = dict(line.split(" = ", 1) for line in (tmp_path / "hub.conf").read_text().splitlines()
                 if line and not line.startswith("#"))
    assert lines["redis_shards"] == ",".join(three_urls)


def test_send_to_connection_goes_to_the_connections_shard(shards):
    from mizan_hub.direct import send_to_connection
    conns = {}
    i = 0
    while len(conns) < 3:
        conns.setdefault(protocol.shard(f"h1.{i}", 3), f"h1.{i}")
        i += 1
    subs = [Subscriber(client, "mizan:hub:h1") for client in shards]
    try:
        for s, conn in conns.items():
            send_to_connection("h1", conn, {"hello": s})
        for s, sub in enumerate(subs):
            assert [e["conn"] for e in sub.envelopes()] == [conns[s]], s
    finally:
        for sub in subs:
            sub.close()


@pytest.mark.skipif(not HUB.is_file(), reason=f"no hub binary at {HUB}")
def test_rpcs_of_every_shard_are_answered_by_one_worker_through_the_real_hub(
        shards, three_urls, tmp_path):
    """browser -> hub -> `in` on the connection's shard -> the worker's reader
    of that shard -> reply on that shard -> hub -> browser, for a connection
    on each of the three shards at once."""
    import threading

    websocket = pytest.importorskip("websocket")
    from mizan_hub.worker import Worker
    from tests import hub_handlers  # noqa: F401  (rpc handlers)

    port = free_port()
    args = ["--listen", f"127.0.0.1:{port}", "--redis-shards", ",".join(three_urls),
            "--allow-anonymous", "--hub-id", "sharded", "--log-level", "warn",
            "--drain-window", "0", "--canary-interval-ms", "50"]
    with running_hub(args, port, tmp_path / "hub.log") as url:
        clients = {}
        while len(clients) < 3:
            ws = websocket.create_connection(url, timeout=5)
            conn = json.loads(ws.recv())["welcome"]["conn"]
            if protocol.shard(conn, 3) in clients:
                ws.close()
                continue
            clients[protocol.shard(conn, 3)] = ws
        worker = Worker(consumer="sharded")
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            for s, ws in clients.items():
                ws.send(json.dumps({"action": "rpc", "id": s, "fn": "test.add",
                                    "args": {"a": s, "b": 10}}))
            for s, ws in clients.items():
                assert json.loads(ws.recv()) == {"id": s, "ok": True,
                                                 "data": {"sum": s + 10, "sub": None}}
            for s, client in enumerate(shards):
                assert client.xlen("mizan:in") == 1, s
        finally:
            worker.stop()
            thread.join(10)
            for ws in clients.values():
                ws.close()
