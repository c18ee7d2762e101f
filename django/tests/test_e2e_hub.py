"""End to end with the real C hub (server/, built into build/bin/mizan-hub):
a Django mutation reaches a WebSocket client, a rollback does not, resume
agrees with the version counters Django writes, and an rpc goes browser ->
hub -> stream -> worker -> hub -> browser.

Skipped when the hub binary is not built (MIZAN_HUB_BIN names another one).
"""

from __future__ import annotations

import json
import time

import pytest
from django.db import transaction

import mizan_hub
from mizan_hub.worker import Worker
from tests import hub_handlers  # noqa: F401  (rpc handlers)
from tests.conftest import HUB, free_port, running_hub
from tests.testapp.models import Todo

websocket = pytest.importorskip("websocket")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not HUB.is_file(), reason=f"no hub binary at {HUB}"),
]


@pytest.fixture
def hub(redis_url, r, tmp_path):
    port = free_port()
    with running_hub(["--listen", f"127.0.0.1:{port}", "--redis", redis_url, "--allow-anonymous",
                      "--hub-id", "e2e", "--log-level", "warn", "--drain-window", "0",
                      "--canary-interval-ms", "50"], port, tmp_path / "hub.log") as url:
        yield url


class Client:
    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=3)
        self.welcome = self.recv()["welcome"]

    def send(self, frame):
        self.ws.send(json.dumps(frame))

    def recv(self, timeout=3):
        self.ws.settimeout(timeout)
        return json.loads(self.ws.recv())

    def nothing(self, timeout=0.3):
        try:
            frame = self.recv(timeout)
        except websocket.WebSocketTimeoutException:
            return True
        pytest.fail(f"unexpected frame {frame}")

    def subscribe(self, **frame):
        self.send({"action": "subscribe", **frame})
        ack = self.recv()
        assert ack.get("subscribed") is True, ack
        return ack


def test_a_committed_save_reaches_the_browser_and_a_rollback_does_not(hub):
    client = Client(hub)
    assert client.subscribe(context="todos")["version"] == "0:0"
    client.subscribe(context="todo", params={"id": 999})
    with transaction.atomic():
        todo = Todo.objects.create(title="milk")
    frame = client.recv()
    assert frame["invalidate"] == ["todos"]
    assert frame["versions"]["todos"].endswith(":1") and frame["ts"] > 0
    client.nothing()  # todo 999 was not touched, list 1 nobody watches
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            todo.title = "eggs"
            todo.save()
            raise RuntimeError
    client.nothing()


def test_resume_agrees_with_djangos_version_counters(hub):
    client = Client(hub)
    ack = client.subscribe(context="user", params={"user_id": 5})
    mizan_hub.invalidate(("user", {"user_id": 5}))
    seen = client.recv()["versions"]["user"]
    client.ws.close()

    # nothing happened: resuming from the last version sends only the ack
    client = Client(hub)
    assert client.subscribe(context="user", params={"user_id": 5}, since=seen)
    client.nothing()
    client.ws.close()

    # another user's change while away: no invalidation for user 5 ...
    mizan_hub.invalidate(("user", {"user_id": 6}))
    client = Client(hub)
    client.send({"action": "subscribe", "context": "user", "params": {"user_id": 5}, "since": seen})
    first = client.recv()
    # ... unless buckets collide, which over-invalidates (never under)
    from mizan_hub.protocol import bucket, canonical_key
    if bucket(canonical_key("user", {"user_id": "5"})) != bucket(canonical_key("user", {"user_id": "6"})):
        assert first.get("subscribed") is True, first
    client.ws.close()

    # this user's change while away: the resume invalidates, before the ack
    mizan_hub.invalidate(("user", {"user_id": 5}))
    client = Client(hub)
    client.send({"action": "subscribe", "context": "user", "params": {"user_id": 5}, "since": seen})
    frame = client.recv()
    assert frame.get("reason") == "resume", frame
    assert frame["invalidate"] == [{"context": "user", "params": {"user_id": "5"}}]
    assert client.recv()["subscribed"] is True
    assert ack["version"] == "0:0"


def test_channel_messages_carry_seq_and_epoch(hub):
    client = Client(hub)
    client.subscribe(channel="chat", params={"room": "lobby"})
    mizan_hub.publish("chat", {"room": "lobby"}, {"text": "hi"}, type="ChatMessage")
    frame = client.recv()
    assert {k: frame[k] for k in ("channel", "params", "type", "data", "seq")} == {
        "channel": "chat", "params": {"room": "lobby"}, "type": "ChatMessage",
        "data": {"text": "hi"}, "seq": 1}


def test_rpc_round_trip_through_the_worker(hub):
    client = Client(hub)
    client.send({"action": "rpc", "id": "r1", "fn": "test.add", "args": {"a": 1, "b": 2}})
    client.send({"action": "rpc", "id": 2, "fn": "test.crash"})
    worker = Worker(consumer="e2e")
    worker.ensure_group()
    deadline = time.monotonic() + 5
    handled = 0
    while handled < 2 and time.monotonic() < deadline:
        handled += worker.step()
    replies = sorted([client.recv(), client.recv()], key=lambda f: str(f["id"]))
    assert replies[0] == {"id": 2, "ok": False, "error": {"code": "INTERNAL",
                                                          "message": "internal error"}}
    assert replies[1] == {"id": "r1", "ok": True, "data": {"sum": 3, "sub": None}}
