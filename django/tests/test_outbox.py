"""The publishing outbox (issue 12, SPEC section 10 "What a publisher
guarantees"): nothing committed is lost while Redis is away or when the
process dies between the commit and the publish; order per context and
channel; refused rows do not block the queue; the relay's lag is exported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings

import mizan_hub
from mizan_hub import outbox, stats
from mizan_hub.models import OutboxEntry
from mizan_hub.worker import Worker
from tests.testapp.models import Todo

pytestmark = pytest.mark.django_db(transaction=True)

DJANGO_DIR = Path(__file__).resolve().parents[1]


def redis_down():
    """Settings whose Redis refuses connections: an outage as the app sees it."""
    return override_settings(MIZAN_HUB={**mizan_hub.conf.user_settings(),
                                        "REDIS_URL": "redis://127.0.0.1:9/0"})


def version(r, context):
    e, n = r.hget(f"mizan:v:{context}", "e"), r.hget(f"mizan:v:{context}", "n")
    return None if e is None else f"{e.decode()}:{n.decode()}"


def entries_of(envs):
    out = []
    for env in envs:
        if env["kind"] == "invalidate":
            out += env["invalidate"]
    return out


def test_changes_committed_while_redis_is_down_reach_it_when_it_is_back(r, events):
    """Redis away for N commits, back with its data: the version counters move
    and every affected entry is published after its last change, including a
    context never published before (its subscribers acked at 0:0)."""
    Todo.objects.create(title="before", list_id=1)
    before = version(r, "todos")
    assert before.endswith(":1")
    events.envelopes()
    published = stats.get("invalidations_published")

    with redis_down():
        todos = []
        for i in range(5):
            with transaction.atomic():
                todos.append(Todo.objects.create(title=f"t{i}", list_id=2))
                mizan_hub.invalidate(("fresh", {"k": i}))
        with transaction.atomic():
            todos[0].title = "renamed"
            todos[0].save()
        assert OutboxEntry.objects.count() == 6 * 2 - 1  # the last commit has one row
        assert stats.get("invalidations_published") == published
    # Redis is back with its data: nothing has moved yet ...
    assert version(r, "todos") == before
    assert version(r, "fresh") is None
    assert events.texts(timeout=0.1) == []

    call_command("mizan_hub_relay", "--once")

    envs = events.envelopes()
    got = entries_of(envs)
    assert "todos" in got
    for todo in todos:
        assert {"context": "todo", "params": {"id": str(todo.pk)}} in got
    assert {"context": "list", "params": {"list_id": "2"}} in got
    for i in range(5):
        assert {"context": "fresh", "params": {"k": str(i)}} in got
    epoch, n = version(r, "todos").split(":")
    assert epoch == before.split(":")[0] and int(n) > 1
    assert version(r, "fresh") is not None  # a 0:0 resume now sees it changed
    assert OutboxEntry.objects.count() == 0
    # the versions the envelopes carry are the ones in Redis (the hub's view)
    assert envs[-1]["versions"]["todos"] == version(r, "todos")


def _env(redis_url: str, db: Path) -> dict:
    """A Django process of the test project on a database file."""
    return {**os.environ, "MIZAN_HUB_TEST_REDIS_URL": redis_url,
            "MIZAN_HUB_TEST_DB": str(db), "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONPATH": str(DJANGO_DIR) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _django(code: str, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import django\ndjango.setup()\n"
                             "from django.core.management import call_command\n"
                             "call_command('migrate', run_syncdb=True, verbosity=0)\n" + code],
                            cwd=DJANGO_DIR, env=env, text=True, **kw)


def test_a_process_killed_between_commit_and_publish_is_delivered_by_the_relay(
        r, events, redis_url, tmp_path):
    """A Django process SIGKILLed after its commit, before its publish: the
    event waits in the outbox; manage.py mizan_hub_relay --once sends it."""
    env = _env(redis_url, tmp_path / "db.sqlite3")
    # The first on_commit callback runs before the publish's (registered by
    # the save): it reports the commit and waits to be killed.
    child = _django("""
import time
from django.db import transaction
from tests.testapp.models import Todo
with transaction.atomic():
    transaction.on_commit(lambda: (print("committed", flush=True), time.sleep(60)))
    todo = Todo.objects.create(title="milk", list_id=7)
""", env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = child.stdout.readline()
        assert line.strip() == "committed", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert events.texts(timeout=0.2) == []
    assert version(r, "todos") is None

    relay = subprocess.run([sys.executable, "-m", "django", "mizan_hub_relay", "--once"],
                           cwd=DJANGO_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert relay.returncode == 0, relay.stderr
    [env_] = events.envelopes()
    assert env_["invalidate"] == ["todos", {"context": "todo", "params": {"id": "1"}},
                                  {"context": "list", "params": {"list_id": "7"}}]
    assert version(r, "todos").endswith(":1")
    assert "1 published" in relay.stderr


def test_the_relay_loop_delivers_what_another_process_could_not_and_stops_on_sigterm(
        r, events, redis_url, tmp_path):
    """A process commits while its Redis is unreachable and exits; the relay
    command, running as a loop, publishes the event, and SIGTERM stops it."""
    db = tmp_path / "db.sqlite3"
    writer = _django("import mizan_hub\nmizan_hub.invalidate('written-while-down')\n",
                     _env("redis://127.0.0.1:9/0", db), stderr=subprocess.PIPE)
    assert writer.wait(60) == 0, writer.stderr.read()
    assert events.texts(timeout=0.2) == []
    loop = subprocess.Popen([sys.executable, "-m", "django", "mizan_hub_relay",
                             "--interval", "0.1"], cwd=DJANGO_DIR, env=_env(redis_url, db),
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        envs = []
        while not envs and time.monotonic() < deadline:
            envs = events.envelopes(timeout=0.2)
        assert [e["invalidate"] for e in envs] == [["written-while-down"]]
        loop.send_signal(signal.SIGTERM)
        assert loop.wait(10) == 0
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()


def test_processes_publishing_and_relaying_at_once_lose_nothing_and_keep_order(
        r, events, redis_url, tmp_path):
    """Three processes publish 30 messages each (each to its own room) while
    two relay loops run on the same SQLite file: every message arrives, and
    per room the first arrival of each is in publish order (SQLite has no
    row locks, so a relay may repeat a row: at least once)."""
    env = _env(redis_url, tmp_path / "db.sqlite3")
    subprocess.run([sys.executable, "-m", "django", "migrate", "--run-syncdb", "-v", "0"],
                   cwd=DJANGO_DIR, env=env, check=True, timeout=60)
    relays = [subprocess.Popen([sys.executable, "-m", "django", "mizan_hub_relay",
                                "--interval", "0.05"], cwd=DJANGO_DIR, env=env,
                               stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        writers = [_django(f"""
import mizan_hub
from django.db import transaction
for i in range(30):
    with transaction.atomic():
        mizan_hub.publish("chat", {{"room": "w{w}"}}, i)
""", env, stderr=subprocess.PIPE) for w in range(3)]
        for writer in writers:
            assert writer.wait(60) == 0, writer.stderr.read()
        envs, deadline = [], time.monotonic() + 20
        while time.monotonic() < deadline:
            envs += events.envelopes(timeout=0.3)
            if {(e["params"]["room"], e["data"]) for e in envs} >= \
                    {(f"w{w}", i) for w in range(3) for i in range(30)}:
                break
    finally:
        for relay in relays:
            relay.send_signal(signal.SIGTERM)
        for relay in relays:
            try:
                relay.wait(10)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait()
    for w in range(3):
        firsts = list(dict.fromkeys(e["data"] for e in envs if e["params"]["room"] == f"w{w}"))
        assert firsts == list(range(30)), (w, firsts)


def test_a_backlog_is_published_before_new_events_in_order(r, events):
    """Messages queued while Redis was away go out before the first event
    committed after it is back, in commit order: seq follows the calls."""
    with redis_down():
        for i in range(1, 6):
            with transaction.atomic():
                mizan_hub.publish("chat", {"room": "lobby"}, i)
    with transaction.atomic():
        mizan_hub.publish("chat", {"room": "lobby"}, 6)
    envs = events.envelopes()
    assert [(e["seq"], e["data"]) for e in envs] == [(i, i) for i in range(1, 7)]
    assert OutboxEntry.objects.count() == 0


def test_a_row_redis_refuses_does_not_block_the_queue(r, events, caplog):
    """WRONGTYPE on a version key someone overwrote: that row leaves the queue
    (refused, logged, counted), the others -- even of the same transaction --
    go through; --requeue-refused sends it once the key is fixed."""
    r.set("mizan:v:broken", "not a hash")
    with transaction.atomic():
        mizan_hub.invalidate("broken")
        mizan_hub.invalidate("fine")
    mizan_hub.invalidate("later")
    assert [e["invalidate"] for e in events.envelopes()] == [["fine"], ["later"]]
    [row] = OutboxEntry.objects.all()
    assert row.refused is not None and "WRONGTYPE" in row.error
    assert stats.get("outbox_refused") == 1
    assert outbox.lag() == {"pending": 0, "oldest_age_seconds": 0.0, "refused": 1}
    assert "refused outbox row" in caplog.text

    r.delete("mizan:v:broken")
    call_command("mizan_hub_relay", "--requeue-refused", "--once")
    assert [e["invalidate"] for e in events.envelopes()] == [["broken"]]
    assert OutboxEntry.objects.count() == 0


def test_an_undecodable_row_is_refused_not_retried_forever(r, events):
    OutboxEntry.objects.create(txn="x", kind="invalidate", body="{not json")
    OutboxEntry.objects.create(txn="x", kind="message", body='{"channel": 1}')
    mizan_hub.invalidate("after")
    assert [e["invalidate"] for e in events.envelopes()] == [["after"]]
    assert OutboxEntry.objects.filter(refused__isnull=False).count() == 2


def test_an_outage_counts_attempts_and_keeps_the_reason(r):
    with redis_down():
        mizan_hub.invalidate("a")
        outbox.reset()  # no backoff: try again at once
        mizan_hub.invalidate("b")
    rows = list(OutboxEntry.objects.all())
    assert [row.attempts for row in rows] == [2, 1]
    assert all(row.error and row.refused is None for row in rows)


def test_concurrent_relays_publish_each_row_once_and_in_order(r, events):
    with redis_down():
        for i in range(300):
            mizan_hub.publish("chat", {"room": "busy"}, i)
    results = []

    def relay():
        results.append(outbox.relay(block=False))

    threads = [threading.Thread(target=relay) for _ in range(4)]
    for t in threads:
        t.start()
    relay()
    for t in threads:
        t.join(30)
    envs = events.envelopes()
    # every row exactly once, in order (or the left-overs by the one relay that
    # went on; a relay that found the queue held returned at once)
    leftover = outbox.relay()
    envs += events.envelopes()
    assert [e["data"] for e in envs] == list(range(300))
    assert [e["seq"] for e in envs] == list(range(1, 301))
    assert sum(x.published for x in results) + leftover.published == 300


def test_the_relays_lag_is_exported(r):
    with redis_down():
        mizan_hub.invalidate("a")
        mizan_hub.invalidate("b")
        time.sleep(0.05)
        lag = outbox.lag()
        assert lag["pending"] == 2 and lag["oldest_age_seconds"] >= 0.05
        metrics = stats.metrics()
        assert metrics["outbox_pending"] == 2 and metrics["outbox_oldest_age_seconds"] >= 0.05
        text = stats.prometheus()
    assert 'mizan_hub_django_outbox_pending{database="default"} 2\n' in text
    assert '# TYPE mizan_hub_django_outbox_oldest_age_seconds gauge' in text
    assert 'mizan_hub_django_publish_failures_total 1\n' in text


def test_the_metrics_option_prints_prometheus_text(r, capsys):
    call_command("mizan_hub_relay", "--metrics")
    out = capsys.readouterr().out
    assert 'mizan_hub_django_outbox_pending{database="default"} 0' in out
    assert "mizan_hub_django_outbox_oldest_age_seconds" in out
    assert "_total" not in out  # a fresh process's counters say nothing


def test_the_worker_relays_what_is_left_a_bounded_part_per_turn(r, events, monkeypatch):
    """A backlog is relayed RELAY_MAX_ROWS at a time, the next part due at
    once (the inbound stream is read in between); once a turn emptied the
    queue the next is due only after RELAY_EVERY. run() relays too."""
    from mizan_hub import worker as worker_module
    monkeypatch.setattr(worker_module, "RELAY_MAX_ROWS", 5)
    with redis_down():
        for i in range(12):
            mizan_hub.publish("ticker", {}, i)
    worker = Worker(consumer="relay-test")
    assert [worker.relay_outbox() for _ in range(4)] == [5, 5, 2, 0]
    assert [e["data"] for e in events.envelopes()] == list(range(12))

    with redis_down():
        mizan_hub.invalidate("left")
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        envs = []
        while not envs and time.monotonic() < deadline:
            envs = events.envelopes(timeout=0.2)
    finally:
        worker.stop()
        thread.join(10)
    assert [e["invalidate"] for e in envs] == [["left"]]
    assert OutboxEntry.objects.count() == 0


def test_rollbacks_leave_no_row_and_commits_leave_none_behind(r, events):
    with transaction.atomic():
        mizan_hub.invalidate("kept")
        try:
            with transaction.atomic():
                mizan_hub.invalidate("dropped")
                assert OutboxEntry.objects.count() == 2
                raise ValueError
        except ValueError:
            pass
        assert OutboxEntry.objects.count() == 1
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            mizan_hub.publish("ticker", {}, 1)
            raise RuntimeError
    assert [e["invalidate"] for e in events.envelopes()] == [["kept"]]
    assert OutboxEntry.objects.count() == 0
    assert stats.get("outbox_written") == 3 and stats.get("outbox_relayed") == 1


def test_strict_with_redis_up_publishes_and_returns(r, events):
    with override_settings(MIZAN_HUB={**mizan_hub.conf.user_settings(), "STRICT": True}):
        with transaction.atomic():
            mizan_hub.invalidate(("user", {"user_id": 1}))
        mizan_hub.publish("ticker", {}, 2)
    assert [e["kind"] for e in events.envelopes()] == ["invalidate", "message"]
    assert OutboxEntry.objects.count() == 0


def test_relay_once_exits_1_while_redis_is_away(r):
    with redis_down():
        mizan_hub.invalidate("a")
        with pytest.raises(Exception, match="1 row"):
            call_command("mizan_hub_relay", "--once")
