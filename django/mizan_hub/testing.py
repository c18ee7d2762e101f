"""Test mode: publishing recorded in :data:`published` instead of sent.

In the spirit of ``django.core.mail.outbox``: under Django's test runner
(``setup_test_environment()``, which ``manage.py test`` and pytest-django
both call) ``invalidate()``, ``publish()``, their async forms and
``disconnect()`` append envelopes to :data:`published` and nothing reaches
Redis: no outbox row, no Redis client, and the session registry is not
written. ``MIZAN_HUB["TEST_MODE"]`` decides: ``None`` (the default) is on
under the test runner only, ``True`` always, ``False`` never (tests that
need the real path, against a real Redis).

Transactions are honoured as real publishing honours them: a call made in a
transaction is recorded when it commits (``transaction.on_commit``) and
dropped when it or its savepoint rolls back; outside a transaction it is
recorded at once. A commit's calls are recorded as the relay would send
them: consecutive invalidations merged and collapsed (duplicates, and scoped
entries a whole-context entry covers, dropped; 256 entries an envelope),
identical messages once. Django's ``TestCase`` runs each test in a
transaction that never commits: wrap the code in
``self.captureOnCommitCallbacks(execute=True)`` (pytest-django:
``django_capture_on_commit_callbacks``), or use ``TransactionTestCase``.

The envelopes are what the hub would receive, less what Redis adds
(``versions``, ``seq``, ``epoch``) and ``v``/``ts``::

    {"kind": "invalidate", "invalidate": ["todos", {"context": "todo", "params": {"id": "5"}}]}
    {"kind": "message", "channel": "chat", "params": {"room": "lobby"}, "type": "ChatMessage",
     "data": {"text": "hi"}}
    {"kind": "disconnect", "sub": "5", "reason": "password changed"}

Assertions: :func:`assert_invalidated`, :func:`assert_not_invalidated`,
:func:`assert_published` (also methods of :data:`published`, and
``assertInvalidated``... on :class:`MizanHubTestMixin`); the pytest plugin
(:mod:`mizan_hub.pytest_plugin`) clears the list before every test and
provides the ``mizan_hub_published`` fixture.
"""

from __future__ import annotations

import functools
import json
import secrets
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["published", "active", "clear", "assert_invalidated", "assert_not_invalidated",
           "assert_published", "MizanHubTestMixin", "Published"]


_lock = threading.RLock()
_local = threading.local()


def active() -> bool:
    """Whether publishing records instead of sending (see the module doc)."""
    from . import conf

    mode = conf.get("TEST_MODE")
    if mode is None:
        return under_test_runner()
    return bool(mode)


def under_test_runner() -> bool:
    """Between Django's ``setup_test_environment()`` and
    ``teardown_test_environment()``: when ``mail.outbox`` replaces sending
    mail. (Not ``hasattr(mail, "outbox")``: the locmem mail backend creates
    that list outside tests too.) django.test is only looked at once
    imported: a process that never imported it is not running tests."""
    utils = sys.modules.get("django.test.utils")
    state = getattr(utils, "_TestState", None)
    return state is not None and hasattr(state, "saved_data")


# --------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------

@dataclass
class _Txn:
    """The calls this thread made in the open transaction of one database."""

    token: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class _Call:
    alias: str
    token: str
    kind: str
    body: str


@dataclass
class _Commit:
    """One commit's calls as they are recorded (see :func:`_committed`)."""

    alias: str
    token: str
    calls: list = field(default_factory=list)
    envelopes: list = field(default_factory=list)


#: Calls made in a transaction that has not committed (for the hint of a
#: failing assertion); a rolled-back one stays until the next clear().
_waiting: list[_Call] = []


def record(kind: str, body: str, using: str | None = None) -> None:
    """Test mode's :func:`mizan_hub.outbox.write`: ``body`` is the row the
    outbox would have held."""
    from django.db import DEFAULT_DB_ALIAS, transaction

    alias = using or DEFAULT_DB_ALIAS
    if not transaction.get_connection(alias).in_atomic_block:
        # Autocommit: the real call relays at once, in an envelope of its own.
        # (Manual transaction management, set_autocommit(False), is recorded
        # at once too: the real row waits for commit() and a relay.)
        _committed(None, _Call(alias, secrets.token_hex(8), kind, body))
        return
    txns = _local.__dict__.setdefault("txns", {})
    state = txns.get(alias)
    if state is None:
        state = txns[alias] = _Txn()
    call = _Call(alias, state.token, kind, body)
    with _lock:
        _waiting.append(call)
    # One callback per call, as the outbox registers them: a savepoint
    # rolled back discards its own calls and no others.
    transaction.on_commit(functools.partial(_committed, state, call), using=alias)


async def arecord(kind: str, body: str, using: str | None = None) -> None:
    """:func:`record` from async code: run by the thread that runs this
    request's sync code, so inside its transaction it waits for the commit."""
    from asgiref.sync import sync_to_async

    await sync_to_async(record)(kind, body, using)


def record_disconnect(envelope: dict) -> None:
    """``disconnect()`` is sent at once, not on commit."""
    with _lock:
        _local.commit = None
        published.append(envelope)


def _committed(state: _Txn | None, call: _Call) -> None:
    """Record a committed call. A commit runs its callbacks one after the
    other: the calls of the same transaction (token) seen so far are
    grouped again as the relay groups a pass's rows, and their envelopes
    replace the ones recorded for the earlier calls of this commit."""
    from .batching import _Row

    txns = _local.__dict__.get("txns", {})
    if state is not None and txns.get(call.alias) is state:
        del txns[call.alias]  # the next transaction gets a new token
    with _lock:
        if call in _waiting:
            _waiting.remove(call)
        commit = getattr(_local, "commit", None)
        if commit is None or (commit.alias, commit.token) != (call.alias, call.token):
            commit = _local.commit = _Commit(call.alias, call.token)
        commit.calls.append(call)
        rows = [_Row(i, c.token, c.kind, c.body) for i, c in enumerate(commit.calls)]
        envelopes = _envelopes(rows)
        at = next((i for i, env in enumerate(published) if commit.envelopes
                   and env is commit.envelopes[0]), len(published))
        del published[at:at + len(commit.envelopes)]
        published[at:at] = envelopes
        commit.envelopes = envelopes


def _envelopes(rows: list) -> list[dict]:
    """What the relay sends for these rows (its grouping, :mod:`batching`)."""
    from . import protocol
    from .batching import _groups, collapse

    out: list[dict] = []
    for group in _groups(rows, {}):
        if group.kind == "invalidate":
            entries = collapse(group.entries)
            for start in range(0, len(entries), protocol.MAX_ENTRIES):
                out.append({"kind": "invalidate",
                            "invalidate": entries[start:start + protocol.MAX_ENTRIES]})
        else:
            message = group.message
            out.append({"kind": "message", "channel": message.channel,
                        "params": message.params, "type": message.type,
                        "data": json.loads(message.data_json)})
    return out


def clear() -> None:
    """Empty :data:`published` (in place) and forget calls still waiting
    for a commit."""
    with _lock:
        del published[:]
        del _waiting[:]
        _local.commit = None


# --------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------

def _describe_entry(entry: Any) -> str:
    if isinstance(entry, str):
        return entry
    params = ", ".join(f"{k}={v!r}" for k, v in entry["params"].items())
    return f"{entry['context']}({params})"


def _scope(name: str, params: dict) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


def _recorded() -> str:
    if not published:
        return "nothing was recorded"
    lines = []
    for env in published:
        if env["kind"] == "invalidate":
            lines.append("invalidate " + ", ".join(_describe_entry(e) for e in env["invalidate"]))
        elif env["kind"] == "message":
            lines.append(f"message {_scope(env['channel'], env['params'])} "
                         f"type={env['type']!r} data={env['data']!r}")
        else:
            lines.append(f"disconnect sub={env['sub']!r}")
    return "recorded:\n  " + "\n  ".join(lines)


def _hints() -> str:
    from django.db import transaction

    hints = []
    if not active():
        hints.append("mizan-hub's test mode is off (MIZAN_HUB['TEST_MODE'] is False, or None "
                     "outside Django's test runner): nothing is recorded")
    with _lock:
        waiting = [c for c in _waiting
                   if transaction.get_connection(c.alias).in_atomic_block]
    if waiting:
        hints.append(f"{len(waiting)} invalidate()/publish() call(s) wait for the commit of a "
                     "transaction still open (or were rolled back with a savepoint): Django's "
                     "TestCase never commits, so run the code under "
                     "`with self.captureOnCommitCallbacks(execute=True):` (pytest-django: the "
                     "django_capture_on_commit_callbacks fixture), or use TransactionTestCase")
    return "".join(f"\n({h})" for h in hints)


def _entry_matches(entry: Any, context: str, params: dict) -> bool:
    from . import protocol

    if not params:  # any invalidation of the context
        return (entry if isinstance(entry, str) else entry["context"]) == context
    return protocol.matches(entry, context, params)


def assert_invalidated(context: str, /, **params: Any) -> list:
    """Some recorded invalidation reaches the subscription ``context(**params)``
    (SPEC section 4: the entry's params are among the subscription's, or it
    is a whole-context entry); without params, any invalidation of
    ``context``. Returns the matching entries."""
    found = [e for e in published.invalidations() if _entry_matches(e, context, params)]
    if not found:
        what = _scope(context, params) if params else f"context {context!r}"
        raise AssertionError(f"no invalidation of {what} was published; {_recorded()}{_hints()}")
    return found


def assert_not_invalidated(context: str | None = None, /, **params: Any) -> None:
    """No recorded invalidation reaches ``context(**params)``; without params,
    none of ``context`` at all; without a context, no invalidation at all."""
    if context is None:
        if params:
            raise TypeError("params need a context")
        found = published.invalidations()
        what = "no invalidation"
    else:
        found = [e for e in published.invalidations() if _entry_matches(e, context, params)]
        what = f"no invalidation of {_scope(context, params) if params else repr(context)}"
    if found:
        raise AssertionError(f"expected {what}, but {', '.join(map(_describe_entry, found))} "
                             f"was published; {_recorded()}")


def assert_published(channel: str, /, type: str | None = None, **params: Any) -> list[dict]:
    """Some recorded message went to ``channel`` (with exactly these params
    when given, compared in their string form: ``5`` is ``"5"``; of this
    ``type`` when given). Returns the matching envelopes, for their data."""
    from . import protocol

    want = protocol.canonical_key(channel, params) if params else None
    found = [env for env in published.messages(channel)
             if (want is None or protocol.canonical_key(channel, env["params"]) == want)
             and (type is None or env["type"] == type)]
    if not found:
        what = _scope(channel, params) if params else f"channel {channel!r}"
        if type is not None:
            what += f" of type {type!r}"
        raise AssertionError(f"no message to {what} was published; {_recorded()}{_hints()}")
    return found


class Published(list):
    """The recorded envelopes (a list), with the assertion helpers."""

    def invalidations(self) -> list:
        """Every recorded invalidation entry, in order."""
        return [entry for env in self if env["kind"] == "invalidate"
                for entry in env["invalidate"]]

    def messages(self, channel: str | None = None) -> list[dict]:
        """The recorded channel messages (of ``channel`` when given)."""
        return [env for env in self if env["kind"] == "message"
                and (channel is None or env["channel"] == channel)]

    assert_invalidated = staticmethod(assert_invalidated)
    assert_not_invalidated = staticmethod(assert_not_invalidated)
    assert_published = staticmethod(assert_published)
    clear = staticmethod(clear)  # type: ignore[assignment]


#: The envelopes recorded in test mode (cleared between tests by the mixin
#: and the pytest plugin; always the same list object).
published = Published()


class MizanHubTestMixin:
    """For ``django.test.TestCase`` (and ``SimpleTestCase``,
    ``TransactionTestCase``): :data:`published` is cleared before every
    test, and the assertions are methods::

        class TodoTests(MizanHubTestMixin, TestCase):
            def test_save(self):
                with self.captureOnCommitCallbacks(execute=True):
                    Todo.objects.create(title="x", list_id=1)
                self.assertInvalidated("list", list_id=1)
    """

    # unittest's public entry points (Django's own _pre_setup changed from
    # an instance method to a classmethod between 4.2 and 5.x).
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        clear()
        return super().__call__(*args, **kwargs)  # type: ignore[misc]

    def debug(self) -> None:
        clear()
        super().debug()  # type: ignore[misc]

    @property
    def published(self) -> Published:
        return published

    assertInvalidated = staticmethod(assert_invalidated)
    assertNotInvalidated = staticmethod(assert_not_invalidated)
    assertPublished = staticmethod(assert_published)
