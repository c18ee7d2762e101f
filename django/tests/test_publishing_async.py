"""ainvalidate() and apublish() (issue 15 "Async all the way"): redis.asyncio,
the same outbox, and transaction.on_commit honoured like the sync calls."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.test import override_settings

import mizan_hub
from mizan_hub import connection, outbox, stats
from mizan_hub.models import OutboxEntry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_sync_redis(monkeypatch):
    """The sync client refuses to be used: what gets published went through
    redis.asyncio."""
    def refuse():
        raise AssertionError("the sync Redis client was used")
    monkeypatch.setattr(connection, "get_redis", refuse)


def run(coro):
    """asyncio.run, closing the loop's Redis client before the loop ends."""
    async def main():
        try:
            return await coro
        finally:
            await connection.aclose_async_redis()
    return asyncio.run(main())


def test_outside_a_transaction_it_publishes_at_once_on_asyncio(r, events, no_sync_redis):
    async def main():
        await mizan_hub.ainvalidate("notifications", ("user", {"user_id": 5}))
        await mizan_hub.apublish("chat", {"room": "lobby"}, {"text": "hi"}, type="ChatMessage")
    run(main())
    envs = events.envelopes()
    assert [e["kind"] for e in envs] == ["invalidate", "message"]
    assert envs[0]["invalidate"] == ["notifications",
                                     {"context": "user", "params": {"user_id": "5"}}]
    assert envs[0]["versions"]["user"].endswith(":1")
    assert (envs[1]["seq"], envs[1]["data"]) == (1, {"text": "hi"})
    assert OutboxEntry.objects.count() == 0
    assert stats.get("outbox_relayed") == 2


def test_in_a_transaction_it_waits_for_the_commit_and_a_rollback_drops_it(r, events):
    """Sync code in a transaction awaiting ainvalidate (async_to_sync): the
    row joins that transaction and is published after its commit."""
    with transaction.atomic():
        async_to_sync(mizan_hub.ainvalidate)("todos")
        async_to_sync(mizan_hub.apublish)("ticker", {}, 1)
        assert events.texts(timeout=0.1) == []
        assert OutboxEntry.objects.count() == 2
    assert [e["kind"] for e in events.envelopes()] == ["invalidate", "message"]
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            async_to_sync(mizan_hub.ainvalidate)("rolled-back")
            raise RuntimeError
    assert events.texts() == []
    assert OutboxEntry.objects.count() == 0


def test_redis_down_keeps_it_queued_and_strict_raises(r, events):
    down = {**mizan_hub.conf.user_settings(), "REDIS_URL": "redis://127.0.0.1:9/0"}
    with override_settings(MIZAN_HUB=down):
        run(mizan_hub.ainvalidate("a"))
        assert stats.get("publish_failures") == 1
    with override_settings(MIZAN_HUB={**down, "STRICT": True}):
        with pytest.raises(mizan_hub.PublishError):
            run(mizan_hub.apublish("ticker", {}, 2))
    assert outbox.lag()["pending"] == 2
    assert outbox.relay().published == 2
    assert [e["kind"] for e in events.envelopes()] == ["invalidate", "message"]


def test_a_backlog_goes_first_in_order(r, events):
    with override_settings(MIZAN_HUB={**mizan_hub.conf.user_settings(),
                                      "REDIS_URL": "redis://127.0.0.1:9/0"}):
        for i in range(3):
            mizan_hub.publish("chat", {"room": "a"}, i)

    run(mizan_hub.apublish("chat", {"room": "a"}, 3))
    assert [(e["seq"], e["data"]) for e in events.envelopes()] == [(i + 1, i) for i in range(4)]
