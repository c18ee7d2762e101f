"""MizanHubMiddleware is sync and async capable (no sync_to_async adapter
around it under ASGI, Redis reached off the event loop), and parses a JSON
body only when it can carry invalidations: not for GET/HEAD, not when the
bytes never say "invalidate"."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.http import HttpResponse
from django.test import AsyncClient, override_settings

from mizan_hub import middleware, transports
from mizan_hub.middleware import MizanHubMiddleware

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.urls_middleware")]



def count_middleware_parses(monkeypatch) -> list:
    """Counts the JSON bodies the middleware parses (through transports'
    own json: the outbox parses its queued rows with the same module)."""
    parsed = []
    real = transports.json

    class CountingJson:
        def __getattr__(self, name):
            return getattr(real, name)

        def loads(self, s, *a, **k):
            parsed.append(1)
            return real.loads(s, *a, **k)

    monkeypatch.setattr(transports, "json", CountingJson())
    return parsed

def test_it_declares_both_modes_and_follows_the_stack():
    assert MizanHubMiddleware.sync_capable and MizanHubMiddleware.async_capable

    async def async_view(request):
        return HttpResponse()

    assert iscoroutinefunction(MizanHubMiddleware(async_view))
    assert not iscoroutinefunction(MizanHubMiddleware(lambda request: HttpResponse()))


def test_under_asgi_it_publishes_with_ainvalidate_on_asyncio(r, events, monkeypatch):
    """The async path awaits ainvalidate(): the outbox row is written off
    the event loop (sync_to_async), the publish script runs on
    redis.asyncio (the sync client refuses to be used here)."""
    from mizan_hub import connection, outbox

    awaited, insert_threads = [], []
    real_ainvalidate, real_insert = middleware.ainvalidate, outbox._insert

    async def spy(*entries):
        awaited.append(entries)
        await real_ainvalidate(*entries)

    def insert(*args, **kwargs):
        insert_threads.append(threading.current_thread())
        return real_insert(*args, **kwargs)

    def refuse():
        raise AssertionError("the sync Redis client was used")

    monkeypatch.setattr(middleware, "ainvalidate", spy)
    monkeypatch.setattr(outbox, "_insert", insert)
    monkeypatch.setattr(connection, "get_redis", refuse)
    loop_threads = []

    async def go():
        loop_threads.append(threading.current_thread())
        client = AsyncClient()
        try:
            assert (await client.post("/async-mutation/")).status_code == 200
            assert (await client.post("/mutation/")).status_code == 200
        finally:
            await connection.aclose_async_redis()

    async_to_sync(go)()
    assert [e["invalidate"] for e in events.envelopes()] == [
        ["todos"], ["todos", {"context": "todo", "params": {"id": "5"}}]]
    assert len(awaited) == 2
    assert len(insert_threads) == 2 and loop_threads[0] not in insert_threads


def test_under_asgi_inside_a_transaction_it_publishes_after_the_commit(r, events):
    """An async request made from sync code that holds a transaction: the
    row joins it (thread-sensitive), and a rollback drops it."""
    from django.db import transaction

    from mizan_hub.models import OutboxEntry

    client = AsyncClient()
    with transaction.atomic():
        assert async_to_sync(client.post)("/async-mutation/").status_code == 200
        assert OutboxEntry.objects.count() == 1 and events.texts(timeout=0.1) == []
    assert [e["invalidate"] for e in events.envelopes()] == [["todos"]]
    with pytest.raises(RuntimeError), transaction.atomic():
        async_to_sync(client.post)("/async-mutation/")
        raise RuntimeError
    assert events.texts() == [] and OutboxEntry.objects.count() == 0


def test_the_async_path_is_not_wrapped_by_django(settings):
    """Django adapts a middleware that is not async capable with
    sync_to_async: check the loaded chain holds ours as a coroutine function."""
    from django.core.handlers.asgi import ASGIHandler
    handler = ASGIHandler()
    handler.load_middleware(is_async=True)
    chain, found = handler._middleware_chain, None
    for _ in range(20):  # walk get_response links to our instance
        if isinstance(chain, MizanHubMiddleware):
            found = chain
            break
        # convert_exception_to_response's wrapper names the instance __wrapped__
        chain = getattr(chain, "__wrapped__", None) or getattr(chain, "get_response", None)
        if chain is None:
            break
    assert found is not None and found.async_mode


def test_a_get_body_is_not_parsed_but_its_header_is_read(client, r, events, monkeypatch):
    parsed = count_middleware_parses(monkeypatch)
    client.get("/rows/")
    client.head("/rows/")
    assert parsed == [] and events.texts() == []
    client.get("/rows-header/")
    assert [e["invalidate"] for e in events.envelopes()] == [["todos"]]


def test_a_body_without_the_word_is_not_parsed(client, r, events, monkeypatch):
    parsed = count_middleware_parses(monkeypatch)
    assert client.post("/big/").status_code == 200
    assert parsed == []
    client.post("/mutation/")
    assert parsed == [1]
    assert [e["invalidate"] for e in events.envelopes()] == [
        ["todos", {"context": "todo", "params": {"id": "5"}}]]


@pytest.mark.urls("tests.urls")
def test_under_asgi_a_rotated_session_key_moves_the_entry(r, events):
    """The session registry's rotation check on the async path (the view
    rotates the key with update_session_auth_hash)."""
    import hashlib
    import json

    from asgiref.sync import sync_to_async
    from django.contrib.auth.models import User

    def sha(text):
        return hashlib.sha256(text.encode()).hexdigest()

    user = User.objects.create_user("ann", password="pw")

    async def go():
        client = AsyncClient()
        await sync_to_async(client.force_login)(user)
        old = client.cookies["sessionid"].value
        response = await client.post("/change-password/")
        assert response.content == b"changed"
        return old, client.cookies["sessionid"].value

    old, new = async_to_sync(go)()
    assert new != old
    assert not r.exists(f"mizan:sess:{sha(old)}")
    assert json.loads(r.get(f"mizan:sess:{sha(new)}"))["sub"] == str(user.pk)
    assert events.envelopes() == [{"v": 1, "kind": "logout", "session": sha(old)}]
