"""The inbound worker: messages, rpc, ctx, crashes, dead workers, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mizan_hub import stats
from mizan_hub.worker import Worker
from tests import hub_handlers

pytestmark = pytest.mark.django_db(transaction=True)

DJANGO_DIR = Path(__file__).resolve().parents[1]
STREAM = "mizan:in"
GROUP = "django"


def add_entry(r, kind, body, identity=None, hub="h1", conn="h1.1", ts=None, **extra):
    fields = {"v": "1", "kind": kind, "hub": hub, "conn": conn,
              "identity": json.dumps(identity),
              "body": body if isinstance(body, str) else json.dumps(body),
              "ts": repr(time.time() * 1000 if ts is None else ts), **extra}
    return r.xadd(STREAM, fields)


@pytest.fixture
def worker(r):
    w = Worker(consumer="test-worker")
    w.ensure_group()
    return w


@pytest.fixture
def replies(subscriber):
    return subscriber("mizan:hub:h1")


def pending(r):
    return r.xpending(STREAM, GROUP)["pending"]


ANN = {"sub": "5", "staff": False, "super": False}


def test_rpc_reply(r, worker, replies):
    add_entry(r, "rpc", {"action": "rpc", "id": "7", "fn": "test.add", "args": {"a": 2, "b": 3}},
              identity=ANN)
    add_entry(r, "rpc", {"action": "rpc", "id": 8, "fn": "test.add", "args": [1]})
    assert worker.step() == 2
    assert replies.envelopes() == [
        {"v": 1, "kind": "reply", "conn": "h1.1",
         "frame": {"id": "7", "ok": True, "data": {"sum": 5, "sub": "5"}}},
        {"v": 1, "kind": "reply", "conn": "h1.1",
         "frame": {"id": 8, "ok": True, "data": {"sum": 1, "sub": None}}}]
    assert pending(r) == 0


def test_rpc_errors(r, worker, replies):
    calls = [("test.crash", {}), ("test.forbidden", {}), ("test.add", {"c": 1}),
             ("no.such", {})]
    for i, (fn, args) in enumerate(calls):
        add_entry(r, "rpc", {"action": "rpc", "id": i, "fn": fn, "args": args})
    worker.step()
    frames = [env["frame"] for env in replies.envelopes()]
    assert [(f["id"], f["ok"], f["error"]["code"]) for f in frames] == [
        (0, False, "INTERNAL"), (1, False, "FORBIDDEN"), (2, False, "BAD_REQUEST"),
        (3, False, "NOT_FOUND")]
    assert "boom" not in frames[0]["error"]["message"]  # internals stay in the log
    assert stats.get("worker_handler_errors") == 1
    assert pending(r) == 0
    # the worker is still alive
    add_entry(r, "rpc", {"action": "rpc", "id": "ok", "fn": "test.add", "args": {"a": 1}})
    worker.step()
    assert replies.envelopes()[0]["frame"]["ok"] is True


def test_identity_becomes_the_user(r, worker, replies, django_user_model):
    user = django_user_model.objects.create_user("ann")
    add_entry(r, "rpc", {"action": "rpc", "id": 1, "fn": "test.whoami"},
              identity={"sub": str(user.pk), "staff": False, "super": False})
    add_entry(r, "rpc", {"action": "rpc", "id": 2, "fn": "test.whoami"})
    worker.step()
    assert [e["frame"]["data"] for e in replies.envelopes()] == [
        {"user": "ann", "authenticated": True}, {"user": "AnonymousUser", "authenticated": False}]


def test_channel_message(r, worker, replies, events):
    hub_handlers.seen_messages.clear()
    add_entry(r, "message", {"action": "message", "channel": "chat", "params": {"room": 1},
                             "data": {"text": "hi"}}, identity=ANN)
    add_entry(r, "message", {"action": "message", "channel": "chat", "params": {"room": 1},
                             "data": "crash"})
    add_entry(r, "message", {"action": "message", "channel": "nobody", "data": 1})
    worker.step()
    assert hub_handlers.seen_messages[0] == ("chat", {"room": "1"}, {"text": "hi"}, ANN)
    [echo] = events.envelopes()
    assert (echo["channel"], echo["type"], echo["data"]) == ("chat", "Echo", {"echo": {"text": "hi"}})
    sends = replies.envelopes()
    assert [(e["kind"], e["frame"]["error"]["code"]) for e in sends] == [
        ("send", "internal"), ("send", "not_found")]
    assert sends[0]["frame"]["channel"] == "chat" and sends[0]["frame"]["params"] == {"room": "1"}
    assert pending(r) == 0


def test_ctx(r, worker, replies):
    add_entry(r, "ctx", {"action": "ctx", "id": "c1", "context": "todos", "params": {"a": 1}})
    add_entry(r, "ctx", {"action": "ctx", "id": "c2", "context": "unknown"})
    worker.step()
    frames = [e["frame"] for e in replies.envelopes()]
    assert frames[0] == {"id": "c1", "ok": True, "data": {"items": [], "params": {"a": "1"}}}
    assert frames[1]["error"]["code"] == "NOT_FOUND"


def test_bad_and_stale_entries_are_acknowledged(r, worker, replies):
    add_entry(r, "rpc", "{not json")
    add_entry(r, "telemetry", {"action": "ping"})
    add_entry(r, "rpc", {"action": "message", "channel": "c"})
    r.xadd(STREAM, {"v": "2", "kind": "rpc"})
    add_entry(r, "rpc", {"action": "rpc", "id": 1, "fn": "test.add", "args": {"a": 1}},
              ts=time.time() * 1000 - 120_000)
    worker.step()
    assert replies.texts() == []
    assert stats.get("worker_bad_entries") == 4
    assert stats.get("worker_skipped_stale") == 1
    assert pending(r) == 0


def _spawn_worker(redis_url, consumer, hang, log):
    env = {**os.environ, "MIZAN_HUB_TEST_REDIS_URL": redis_url,
           "DJANGO_SETTINGS_MODULE": "tests.settings", "MIZAN_HUB_TEST_HANG": str(hang),
           "PYTHONPATH": str(DJANGO_DIR) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "django", "mizan_hub_worker",
                             "--consumer", consumer], cwd=DJANGO_DIR, env=env,
                            stdout=log, stderr=log)


def _wait_for(path, proc, log, timeout=20):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"worker did not start the entry:\n{Path(log.name).read_text()}")
        time.sleep(0.02)


def test_a_killed_workers_entry_is_claimed_by_another(r, redis_url, replies, tmp_path):
    Worker(consumer="setup").ensure_group()
    marker = tmp_path / "started"
    add_entry(r, "rpc", {"action": "rpc", "id": "slow", "fn": "test.slow",
                         "args": {"marker": str(marker)}})
    with open(tmp_path / "worker.log", "w") as log:
        doomed = _spawn_worker(redis_url, "doomed", 60, log)
        _wait_for(marker, doomed, log)
        doomed.kill()  # SIGKILL mid-handling: no reply, no XACK
        doomed.wait(10)
    assert replies.texts(timeout=0.1) == []
    detail = r.xpending_range(STREAM, GROUP, "-", "+", 10)
    assert [(d["consumer"], d["times_delivered"]) for d in detail] == [(b"doomed", 1)]

    marker.unlink()
    rescuer = Worker(consumer="rescuer")
    rescuer.claim_idle_ms = 100
    time.sleep(0.15)
    assert rescuer.step() == 1
    assert marker.exists()
    [env] = replies.envelopes()
    assert env["frame"] == {"id": "slow", "ok": True, "data": {"done": True}}
    assert pending(r) == 0
    assert stats.get("worker_claimed") == 1


def test_sigterm_finishes_the_entry_in_hand(r, redis_url, replies, tmp_path):
    Worker(consumer="setup").ensure_group()
    marker = tmp_path / "started"
    add_entry(r, "rpc", {"action": "rpc", "id": "s", "fn": "test.slow",
                         "args": {"marker": str(marker)}})
    with open(tmp_path / "worker.log", "w") as log:
        proc = _spawn_worker(redis_url, "graceful", 0.5, log)
        _wait_for(marker, proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, Path(log.name).read_text()
    [env] = replies.envelopes()
    assert env["frame"]["ok"] is True
    assert pending(r) == 0


# ---- issue 15: async handlers, a real HttpRequest, view decorators, concurrency ----

def _frames(replies):
    return [env["frame"] for env in replies.envelopes()]


def test_async_handlers_are_awaited(r, worker, replies, django_user_model):
    u = django_user_model.objects.create_user("asy", password="pw")
    add_entry(r, "rpc", {"action": "rpc", "id": 1, "fn": "test.async_add", "args": {"a": 2, "b": 5}})
    add_entry(r, "rpc", {"action": "rpc", "id": 2, "fn": "test.async_user", "args": {}},
              identity={"sub": str(u.pk), "staff": False, "super": False})
    add_entry(r, "message", {"action": "message", "channel": "test_async_chat", "params": {},
                             "data": "hi"})
    worker.step()
    frames = _frames(replies)
    assert frames == [{"id": 1, "ok": True, "data": {"sum": 7}},
                      {"id": 2, "ok": True, "data": {"authenticated": True}}]
    assert hub_handlers.async_messages[-1] == "hi"


def test_handlers_get_a_real_http_request_with_the_client_address(r, worker, replies):
    add_entry(r, "rpc", {"action": "rpc", "id": 1, "fn": "test.request", "args": {}},
              addr="203.0.113.7")
    worker.step()
    assert _frames(replies) == [{"id": 1, "ok": True, "data": {
        "is_http_request": True, "method": "POST", "addr": "203.0.113.7",
        "path": "/mizan-hub/rpc/test.request", "session_is_a_session": True}}]


def test_view_decorators_work_on_rpc_handlers(r, worker, replies, django_user_model):
    u = django_user_model.objects.create_user("dec", password="pw")
    ident = {"sub": str(u.pk), "staff": False, "super": False}
    add_entry(r, "rpc", {"action": "rpc", "id": 1, "fn": "test.needs_perm", "args": {}},
              identity=ident)
    add_entry(r, "rpc", {"action": "rpc", "id": 2, "fn": "test.needs_login", "args": {}})
    add_entry(r, "rpc", {"action": "rpc", "id": 3, "fn": "test.needs_login", "args": {}},
              identity=ident)
    worker.step()
    frames = _frames(replies)
    assert [(f["id"], f["ok"], f.get("error", {}).get("code")) for f in frames] == [
        (1, False, "FORBIDDEN"), (2, False, "UNAUTHORIZED"), (3, True, None)]
    assert frames[2]["data"] == {"user": "dec"}


def test_concurrency_handles_a_batch_at_once(r, replies):
    w = Worker(consumer="test-worker-c", concurrency=3)
    w.ensure_group()
    for i in range(3):
        add_entry(r, "rpc", {"action": "rpc", "id": i, "fn": "test.together", "args": {"i": i}})
    assert w.step() == 3  # one at a time, the barrier would time out (BrokenBarrierError)
    assert sorted(f["id"] for f in _frames(replies) if f["ok"]) == [0, 1, 2]
    assert pending(r) == 0
