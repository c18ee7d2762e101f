"""invalidate() and publish(): on commit, collapsed, and exactly SPEC's
envelope and version counters (sections 10 and 11)."""

from __future__ import annotations

import json
import logging
import re

import pytest
from django.db import transaction
from django.test import override_settings

import mizan_hub
from mizan_hub import outbox, protocol, script, stats
from mizan_hub.batching import collapse
from mizan_hub.publishing import normalize_entries

pytestmark = pytest.mark.django_db(transaction=True)

VERSION = re.compile(r"[0-9a-z]{1,32}:(0|[1-9][0-9]{0,15})")


def hget(r, key, field):
    value = r.hget(key, field)
    return None if value is None else value.decode()


def test_outside_a_transaction_it_publishes_at_once(r, events):
    mizan_hub.invalidate("notifications", ("user", {"user_id": 5}))
    [env] = events.envelopes()
    assert env["kind"] == "invalidate"
    assert env["invalidate"] == ["notifications", {"context": "user", "params": {"user_id": "5"}}]
    assert set(env["versions"]) == {"notifications", "user"}
    assert all(VERSION.fullmatch(v) for v in env["versions"].values())
    assert isinstance(env["ts"], (int, float)) and env["ts"] > 1.7e12


def test_versions_and_buckets_in_redis(r, events):
    mizan_hub.invalidate("notifications", ("user", {"user_id": 5}), {"context": "feed", "params": {}})
    [env] = events.envelopes()
    for context in ("notifications", "user", "feed"):
        epoch, n = env["versions"][context].split(":")
        assert hget(r, f"mizan:v:{context}", "e") == epoch
        assert hget(r, f"mizan:v:{context}", "n") == n == "1"
    # unscoped and {}-scoped entries set u; a scoped one its bucket
    assert hget(r, "mizan:v:notifications", "u") == "1"
    assert hget(r, "mizan:v:feed", "u") == "1"
    bucket = protocol.bucket(protocol.canonical_key("user", {"user_id": "5"}))
    assert hget(r, "mizan:v:user", str(bucket)) == "1"
    assert hget(r, "mizan:v:user", "u") is None
    assert sorted(r.hkeys("mizan:v:user")) == sorted([b"e", b"n", str(bucket).encode()])

    mizan_hub.invalidate(("user", {"user_id": 6}))
    [env2] = events.envelopes()
    assert env2["versions"] == {"user": env["versions"]["user"].split(":")[0] + ":2"}
    bucket6 = protocol.bucket(protocol.canonical_key("user", {"user_id": "6"}))
    assert hget(r, "mizan:v:user", str(bucket6)) == "2"
    assert hget(r, "mizan:v:user", str(bucket)) == "1"


def test_epoch_is_redis_time_in_base36(r, events):
    seconds, micros = r.time()
    mizan_hub.invalidate("a")
    epoch = events.envelopes()[0]["versions"]["a"].split(":")[0]
    assert re.fullmatch(r"[0-9a-z]{1,32}", epoch)
    assert abs(int(epoch[:-4], 36) - seconds) <= 2
    assert 0 <= int(epoch[-4:], 36) < 10**6


def test_envelope_bytes_are_what_python_encodes(r, events):
    """Built by concatenation in Lua: {} stays {}, / stays /, non-ASCII raw,
    big numbers exact -- what cjson would each get wrong."""
    mizan_hub.invalidate({"context": "feed", "params": {}},
                         ("path", {"p": "/a/b", "n": 12345678901234567, "é": "😀"}))
    [text] = events.texts()
    env = json.loads(text)
    assert text.startswith('{"v":1,"kind":"invalidate","ts":')
    assert ('"invalidate":[{"context":"feed","params":{}},{"context":"path","params":'
            '{"p":"/a/b","n":"12345678901234568","é":"😀"}}]') in text
    assert env["invalidate"] == protocol.decode_envelope(text)["invalidate"]


def test_commit_publishes_rollback_does_not(r, events):
    with transaction.atomic():
        mizan_hub.invalidate("todos")
        assert events.texts(timeout=0.1) == []  # not before the commit
    assert [e["invalidate"] for e in events.envelopes()] == [["todos"]]

    with pytest.raises(ZeroDivisionError):
        with transaction.atomic():
            mizan_hub.invalidate("todos")
            mizan_hub.publish("ticker", {}, 1)
            1 / 0
    assert events.texts() == []
    assert r.hget("mizan:v:todos", "n") == b"1"
    assert not r.exists("mizan:c:" + protocol.canonical_key("ticker", {}))


def test_savepoint_rollback_drops_only_its_calls(r, events):
    with transaction.atomic():
        mizan_hub.invalidate("kept")
        try:
            with transaction.atomic():
                mizan_hub.invalidate("dropped")
                raise ValueError
        except ValueError:
            pass
        mizan_hub.invalidate("also_kept")
    contexts = [c for env in events.envelopes() for c in env["invalidate"]]
    assert contexts == ["kept", "also_kept"]


def test_duplicates_collapse_into_one_envelope(r, events):
    with transaction.atomic():
        mizan_hub.invalidate(("user", {"user_id": 5}))
        mizan_hub.invalidate(("user", {"user_id": "5"}), "notifications")
        mizan_hub.invalidate("notifications", ("todo", {"id": 1}))
        mizan_hub.invalidate("todo")  # covers todo;id=1
        mizan_hub.publish("ticker", {}, {"p": 1})
        mizan_hub.publish("ticker", {}, {"p": 1})
    envs = events.envelopes()
    assert [e["kind"] for e in envs] == ["invalidate", "message"]
    assert envs[0]["invalidate"] == [{"context": "user", "params": {"user_id": "5"}},
                                     "notifications", "todo"]
    assert envs[0]["versions"]["user"].endswith(":1")


def test_collapse_rules():
    entries = normalize_entries(["a", ("a", {"x": 1}), ("b", {"x": 1}), ("b", {"x": "1"}),
                                 ("c", {}), "c", ("d", {"k": 1}), ("d", {"k": 2})])
    assert collapse(entries) == ["a", {"context": "b", "params": {"x": "1"}},
                                 {"context": "c", "params": {}},
                                 {"context": "d", "params": {"k": "1"}},
                                 {"context": "d", "params": {"k": "2"}}]


def test_more_than_256_entries_are_split(r, events):
    mizan_hub.invalidate(*[("item", {"id": i}) for i in range(300)])
    envs = events.envelopes()
    assert [len(e["invalidate"]) for e in envs] == [256, 44]
    assert [e["versions"]["item"].split(":")[1] for e in envs] == ["1", "2"]


def test_bad_entries_raise_at_the_call(r):
    for bad in [("user", {"user_id": {"nested": 1}}), 5, ("", {}), ("a", {"k": 1}, 3)]:
        with pytest.raises(protocol.ProtocolError):
            mizan_hub.invalidate(bad)
    with pytest.raises(protocol.ProtocolError):
        mizan_hub.publish("chat", {"room": [1]}, "x")
    with pytest.raises(protocol.ProtocolError):
        mizan_hub.publish("chat", {}, "x", type="")
    with pytest.raises(TypeError):
        mizan_hub.publish("chat", {}, object())


def test_channel_seq_epoch_and_history(r, events):
    key = protocol.canonical_key("chat", {"room": "lobby"})
    with transaction.atomic():
        mizan_hub.publish("chat", {"room": "lobby"}, {"text": "hi"}, type="ChatMessage")
    mizan_hub.publish("chat", {"room": "lobby"}, {"text": "again"}, type="ChatMessage")
    envs = events.envelopes()
    assert [e["seq"] for e in envs] == [1, 2]
    assert envs[0]["epoch"] == envs[1]["epoch"] == hget(r, f"mizan:c:{key}", "e")
    assert envs[0] == {"v": 1, "kind": "message", "ts": envs[0]["ts"], "channel": "chat",
                       "params": {"room": "lobby"}, "type": "ChatMessage",
                       "data": {"text": "hi"}, "seq": 1, "epoch": envs[0]["epoch"]}
    assert hget(r, f"mizan:c:{key}", "s") == "2"
    history = r.xrange(f"mizan:h:{key}")
    assert [entry_id for entry_id, _ in history] == [b"1-0", b"2-0"]
    frame = json.loads(history[0][1][b"f"])
    assert frame == {"channel": "chat", "params": {"room": "lobby"}, "type": "ChatMessage",
                     "data": {"text": "hi"}, "seq": 1, "epoch": envs[0]["epoch"],
                     "ts": envs[0]["ts"]}
    # the channel's keys expire (CHANNEL_TTL, 7 days by default)
    assert 0 < r.pttl(f"mizan:c:{key}") <= 7 * 24 * 3600 * 1000
    assert 0 < r.pttl(f"mizan:h:{key}") <= 7 * 24 * 3600 * 1000


def test_channel_without_history_keeps_none(r, events):
    mizan_hub.publish("ticker", None, 42)
    [env] = events.envelopes()
    assert (env["seq"], env["type"], env["data"], env["params"]) == (1, "message", 42, {})
    assert not r.exists("mizan:h:" + protocol.canonical_key("ticker", {}))


def test_lost_channel_hash_starts_a_new_epoch_and_history(r, events):
    key = protocol.canonical_key("chat", {"room": "x"})
    for _ in range(3):
        mizan_hub.publish("chat", {"room": "x"}, 1)
    first = events.envelopes()[-1]["epoch"]
    r.delete(f"mizan:c:{key}")  # evicted or expired; the stream survived
    mizan_hub.publish("chat", {"room": "x"}, 2)
    [env] = events.envelopes()
    assert env["seq"] == 1 and env["epoch"] != first
    assert [i for i, _ in r.xrange(f"mizan:h:{key}")] == [b"1-0"]


def test_history_is_capped(r, events):
    with override_settings(MIZAN_HUB={**mizan_hub.conf.user_settings(),
                                      "CHANNELS": {"chat": {"history": 3, "ttl": 5}}}):
        for i in range(400):
            mizan_hub.publish("chat", {"room": "big"}, i)
        key = protocol.canonical_key("chat", {"room": "big"})
        length = r.xlen(f"mizan:h:{key}")
        assert 3 <= length < 400  # MAXLEN ~ trims whole nodes
        assert 0 < r.pttl(f"mizan:h:{key}") <= 5000


def test_noscript_falls_back_to_eval(r, events):
    r.script_flush()
    mizan_hub.invalidate("a")
    assert len(events.envelopes()) == 1
    assert r.script_exists(script.SHA1) == [True]


def test_redis_down_is_queued_logged_and_counted(r, events, caplog):
    """Redis away: nothing raises, the events stay in the outbox (they used to
    be dropped), the failure is logged and counted; the next after-commit
    relay of this process waits (outbox_deferred) instead of paying the
    Redis timeout again; once Redis answers, a relay sends them in order."""
    down = {**mizan_hub.conf.user_settings(), "REDIS_URL": "redis://127.0.0.1:9/0"}
    with override_settings(MIZAN_HUB=down), caplog.at_level(logging.WARNING, "mizan_hub"):
        with transaction.atomic():
            mizan_hub.invalidate("todos")
            mizan_hub.publish("ticker", {}, 1)
        mizan_hub.invalidate("other")
        assert stats.get("publish_failures") == 1
        assert stats.get("outbox_deferred") == 1
        assert stats.get("invalidations_published") == 0
        assert stats.metrics()["outbox_pending"] == 3
        assert "stay in the outbox" in caplog.text
    assert events.texts() == []
    assert outbox.relay().published == 3
    envs = events.envelopes()
    assert [(e["kind"], e.get("invalidate"), e.get("data")) for e in envs] == [
        ("invalidate", ["todos"], None), ("message", None, 1), ("invalidate", ["other"], None)]
    assert stats.metrics()["outbox_pending"] == 0


def test_redis_down_raises_when_strict(r):
    """STRICT: the call (autocommit) or the commit raises PublishError; the
    change and its queued event are committed all the same."""
    down = {**mizan_hub.conf.user_settings(), "REDIS_URL": "redis://127.0.0.1:9/0",
            "STRICT": True}
    with override_settings(MIZAN_HUB=down):
        with pytest.raises(mizan_hub.PublishError, match="kept in the outbox"):
            mizan_hub.invalidate("todos")
        with pytest.raises(mizan_hub.PublishError):
            with transaction.atomic():
                mizan_hub.publish("ticker", {}, 1)
    assert stats.get("publish_failures") == 2
    assert outbox.lag()["pending"] == 2


def test_disconnect_envelope(r, events):
    mizan_hub.disconnect(5, "password changed")
    assert events.envelopes() == [{"v": 1, "kind": "disconnect", "sub": "5",
                                   "reason": "password changed"}]
