"""mizan_hub.testing in this process (pytest-django's test environment):
recorded at commit, dropped on rollback, grouped as the relay sends, the
assertion helpers and their messages, and no Redis client at all.
tests/test_testing_userproject.py runs a user-style project under both
test runners."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis
import redis.asyncio
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.db import transaction
from django.test import AsyncClient, override_settings

import mizan_hub
from mizan_hub import stats, testing
from mizan_hub.models import OutboxEntry
from tests.testapp.models import Todo


def hub(**extra):
    return override_settings(MIZAN_HUB={**settings.MIZAN_HUB, **extra})


@pytest.fixture
def no_redis(monkeypatch):
    """Every Redis client refuses to be made; what was tried is listed."""
    tried = []

    def refuse(self, *args, **kwargs):
        tried.append(type(self).__module__)
        raise AssertionError("a Redis client was made in test mode")

    monkeypatch.setattr(redis.Redis, "__init__", refuse)
    monkeypatch.setattr(redis.asyncio.Redis, "__init__", refuse)
    return tried


@pytest.fixture
def test_mode(no_redis):
    """TEST_MODE None (auto), as a user's settings leave it."""
    with hub(TEST_MODE=None):
        stats.reset()
        yield testing.published
    assert no_redis == []


def test_auto_is_on_under_the_test_runner_and_the_setting_decides():
    assert testing.under_test_runner()
    with hub(TEST_MODE=None):
        assert testing.active()
    with hub(TEST_MODE=False):
        assert not testing.active()
    with hub(TEST_MODE=True):
        assert testing.active()


def test_a_bad_setting_is_e004():
    with hub(TEST_MODE="yes"):
        ids = [m.id for m in run_checks()]
    assert "mizan_hub.E004" in ids


@pytest.mark.django_db(transaction=True)
def test_saves_are_recorded_at_commit_and_rollbacks_drop_them(test_mode):
    published = test_mode
    with transaction.atomic():
        todo = Todo.objects.create(title="a", list_id=1)
        assert published == []
    assert published == [{"kind": "invalidate", "invalidate": [
        "todos", {"context": "todo", "params": {"id": str(todo.pk)}},
        {"context": "list", "params": {"list_id": "1"}}]}]
    published.clear()
    with contextlib.suppress(RuntimeError), transaction.atomic():
        Todo.objects.create(title="b", list_id=2)
        raise RuntimeError
    assert published == []
    with transaction.atomic():
        mizan_hub.publish("chat", {"room": "kept"}, {"n": 1})
        with contextlib.suppress(RuntimeError), transaction.atomic():
            mizan_hub.publish("chat", {"room": "dropped"}, {"n": 2})
            raise RuntimeError
    assert published == [{"kind": "message", "channel": "chat", "params": {"room": "kept"},
                          "type": "message", "data": {"n": 1}}]
    assert OutboxEntry.objects.count() == 0 and stats.get("publish_failures") == 0


@pytest.mark.django_db(transaction=True)
def test_a_commit_is_recorded_as_the_relay_sends_it(test_mode):
    published = test_mode
    with transaction.atomic():
        mizan_hub.invalidate(("todo", {"id": 1}), ("todo", {"id": "1"}))
        mizan_hub.invalidate("todos", ("todo", {"id": 2}))
        mizan_hub.publish("ticker", {}, 1)
        mizan_hub.publish("ticker", {}, 1)  # identical: once
        mizan_hub.invalidate("todo")  # swallows the scoped todo entries after it
        mizan_hub.invalidate(("todo", {"id": 3}))
    assert published == [
        {"kind": "invalidate", "invalidate": [
            {"context": "todo", "params": {"id": "1"}}, "todos",
            {"context": "todo", "params": {"id": "2"}}]},
        {"kind": "message", "channel": "ticker", "params": {}, "type": "message", "data": 1},
        {"kind": "invalidate", "invalidate": ["todo"]}]
    published.clear()
    with transaction.atomic():
        for i in range(300):
            mizan_hub.invalidate(("todo", {"id": i}))
    assert [len(e["invalidate"]) for e in published] == [256, 44]
    published.clear()
    mizan_hub.invalidate("todos")  # autocommit: each call its own envelope
    mizan_hub.invalidate("todos")
    assert len(published) == 2


@pytest.mark.django_db(transaction=True)
def test_it_matches_what_the_real_relay_publishes(r, events):
    """The same calls, through Redis and through test mode: the same
    envelopes, less what Redis adds."""
    def calls():
        with transaction.atomic():
            Todo.objects.create(title="a", list_id=1)
            mizan_hub.publish("chat", {"room": "x"}, {"t": "2"}, type="T")
            mizan_hub.publish("chat", {"room": "x"}, {"t": "2"}, type="T")
            mizan_hub.invalidate(("list", {"list_id": 1}), "todos", ("user", {"user_id": 4}))
        mizan_hub.disconnect(5, "bye")

    calls()
    real = [{k: v for k, v in e.items() if k not in ("v", "ts", "versions", "seq", "epoch")}
            for e in events.envelopes()]
    Todo.objects.all().delete()
    with hub(TEST_MODE=True):
        testing.clear()
        calls()
        recorded = list(testing.published)
    # the ids differ (a new row): compare the shapes with the pk masked
    for env in real + recorded:
        for entry in env.get("invalidate", []):
            if isinstance(entry, dict) and entry["context"] == "todo":
                entry["params"] = {"id": "?"}
    assert recorded == real and len(real) == 4


@pytest.mark.django_db
def test_in_a_testcase_transaction_the_failure_says_how_to_commit(
        test_mode, django_capture_on_commit_callbacks):
    Todo.objects.create(title="a", list_id=7)
    with pytest.raises(AssertionError) as failed:
        testing.assert_invalidated("list", list_id=7)
    message = str(failed.value)
    assert "no invalidation of list(list_id=7) was published; nothing was recorded" in message
    assert "1 invalidate()/publish() call(s) wait for the commit" in message
    assert "captureOnCommitCallbacks(execute=True)" in message
    with django_capture_on_commit_callbacks(execute=True):
        Todo.objects.create(title="b", list_id=8)
    testing.assert_invalidated("list", list_id=8)
    testing.assert_not_invalidated("list", list_id=7)


@pytest.mark.django_db(transaction=True)
def test_the_helpers_pass_and_fail_with_clear_messages(test_mode):
    mizan_hub.invalidate(("list", {"list_id": 1}), ("notes", {"owner": 2}))
    mizan_hub.publish("chat", {"room": "lobby"}, {"text": "hi"}, type="ChatMessage")
    assert testing.assert_invalidated("list", list_id="1") == [
        {"context": "list", "params": {"list_id": "1"}}]
    testing.assert_invalidated("list")  # any invalidation of the context
    testing.assert_invalidated("list", list_id=1, page=3)  # the subscription it reaches
    testing.assert_not_invalidated("list", list_id=2)
    testing.assert_not_invalidated("todos")
    [env] = testing.assert_published("chat", type="ChatMessage", room="lobby")
    assert env["data"] == {"text": "hi"}
    testing.published.assert_published("chat")

    with pytest.raises(AssertionError) as failed:
        testing.assert_invalidated("list", list_id=2)
    assert str(failed.value) == (
        "no invalidation of list(list_id=2) was published; recorded:\n"
        "  invalidate list(list_id='1'), notes(owner='2')\n"
        "  message chat(room='lobby') type='ChatMessage' data={'text': 'hi'}")
    with pytest.raises(AssertionError, match=r"^expected no invalidation of 'list', but "
                                             r"list\(list_id='1'\) was published"):
        testing.assert_not_invalidated("list")
    with pytest.raises(AssertionError, match=r"^expected no invalidation, but"):
        testing.assert_not_invalidated()
    with pytest.raises(AssertionError, match=r"^no message to chat\(room='hall'\) was published"):
        testing.assert_published("chat", room="hall")
    with pytest.raises(AssertionError, match=r"^no message to channel 'chat' of type 'Other'"):
        testing.assert_published("chat", type="Other")
    testing.clear()
    assert testing.published == []
    with pytest.raises(AssertionError, match="nothing was recorded"):
        testing.assert_published("chat")


@pytest.mark.django_db(transaction=True)
def test_when_test_mode_is_off_the_failure_says_so():
    with hub(TEST_MODE=False, REDIS_URL="redis://127.0.0.1:9/0"):
        with pytest.raises(AssertionError, match=r"test mode is off \(MIZAN_HUB\['TEST_MODE'\]"):
            testing.assert_invalidated("todos")


@pytest.mark.django_db(transaction=True)
def test_views_logins_and_async_calls_reach_no_redis(test_mode, client):
    """The middleware, the session registry, disconnect() and the async
    calls: recorded (or skipped), and no Redis client is ever made."""
    user = User.objects.create_user("ann", password="pw")
    assert client.login(username="ann", password="pw")
    client.post("/json/")
    mizan_hub.disconnect(user, "password changed")

    async def go():
        await mizan_hub.ainvalidate(("user", {"user_id": 9}))
        await mizan_hub.apublish("ticker", {}, 2)
        return (await AsyncClient().post("/json/")).status_code

    assert asyncio.run(go()) == 200
    client.logout()
    kinds = [(e["kind"], e.get("invalidate") or e.get("channel") or e.get("sub"))
             for e in test_mode]
    assert kinds == [
        ("invalidate", ["todos", {"context": "todo", "params": {"id": "5"}}]),
        ("disconnect", str(user.pk)),
        ("invalidate", [{"context": "user", "params": {"user_id": "9"}}]),
        ("message", "ticker"),
        ("invalidate", ["todos", {"context": "todo", "params": {"id": "5"}}])]
    assert stats.get("session_failures") == 0 and stats.get("publish_failures") == 0


@pytest.mark.django_db(transaction=True)
def test_async_code_in_a_transaction_waits_for_its_commit(test_mode):
    with transaction.atomic():
        async_to_sync(mizan_hub.ainvalidate)("todos")
        assert test_mode == []
    assert test_mode == [{"kind": "invalidate", "invalidate": ["todos"]}]
    with contextlib.suppress(RuntimeError), transaction.atomic():
        async_to_sync(mizan_hub.apublish)("ticker", {}, 1)
        raise RuntimeError
    assert len(test_mode) == 1


def test_the_plugin_fixture_starts_empty(mizan_hub_published):
    assert mizan_hub_published is testing.published and mizan_hub_published == []
    testing.published.append({"kind": "disconnect", "sub": "1", "reason": ""})


def test_and_the_list_is_cleared_before_every_test():
    assert testing.published == []
