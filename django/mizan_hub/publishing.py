"""Publishing: ``invalidate()`` and ``publish()``.

Both are durable and wait for the surrounding transaction to commit: each
call is written to the outbox table in the caller's transaction and
published right after the commit (:mod:`mizan_hub.outbox`); a browser told
to refetch before the commit would read the old rows and keep them. A
rollback (of the transaction or of the savepoint the call was made in)
drops the row with the change. Outside a transaction the row is written and
published at once. Invalidations of one transaction are sent collapsed into
as few envelopes as the 256-entry limit allows, its identical messages once.

Sending is one run of the publish script per envelope (:mod:`mizan_hub.script`),
which bumps the version counters of SPEC section 10 and publishes on
``{prefix}events``. With ``REDIS_SHARDS`` (SPEC section 11.1) each run goes
to the shard that owns what it touches: an invalidation naming contexts of
several shards is one run (one envelope) per shard. When Redis is unavailable the event stays in the outbox
and a relay (the next commit's, ``manage.py mizan_hub_relay`` or the inbound
worker) publishes it once Redis is back: at least once, in order. The
failure is logged and counted (``stats.get("publish_failures")``) and the
request goes on; with ``MIZAN_HUB["STRICT"]`` the commit (or the call, in
autocommit) raises :class:`PublishError` instead -- the change and the
queued event are committed all the same.

In test mode (:mod:`mizan_hub.testing`: under Django's test runner, or
``MIZAN_HUB["TEST_MODE"]``) the calls are recorded in
``mizan_hub.testing.published`` at commit instead, and Redis is not used.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import redis
from django.core.serializers.json import DjangoJSONEncoder

from . import conf, outbox, protocol, stats, testing
from .batching import _entry_context, _identity, _json, _Message
from .connection import events_channel, get_redis
from .outbox import PublishError

logger = logging.getLogger("mizan_hub.publish")

__all__ = ["invalidate", "publish", "ainvalidate", "apublish", "PublishError",
           "normalize_entries"]


# --------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------

def _as_entry(entry: Any) -> Any:
    """The JSON form of one argument: ``"ctx"``, ``("ctx", {...})`` or
    ``{"context": "ctx", "params": {...}}``."""
    if isinstance(entry, tuple):
        if len(entry) != 2:
            raise protocol.ProtocolError(
                "bad_invalidation", "a tuple entry is (context, params)", path="")
        return {"context": entry[0], "params": {} if entry[1] is None else entry[1]}
    return entry


def normalize_entries(entries: Iterable[Any]) -> list[protocol.Entry]:
    """The normalized invalidation list (SPEC section 2) of Python arguments.

    Raises :class:`~mizan_hub.protocol.ProtocolError` for a bad name or param:
    that is a bug in the caller, not an outage, so it is never swallowed.
    """
    entries = [_as_entry(e) for e in entries]
    # The 256-entry limit is per envelope; batches are split when sent.
    out: list[protocol.Entry] = []
    for start in range(0, len(entries), protocol.MAX_ENTRIES):
        out.extend(protocol.decode_invalidation(entries[start:start + protocol.MAX_ENTRIES]))
    return out


# --------------------------------------------------------------------------
# The current request
# --------------------------------------------------------------------------

# Entries declared during the current request (see the middleware), so that
# a response declaring what the view already published is not sent twice.
_request_entries: contextvars.ContextVar[set | None] = contextvars.ContextVar(
    "mizan_hub_request_entries", default=None)


def begin_request() -> contextvars.Token:
    return _request_entries.set(set())


def end_request(token: contextvars.Token) -> None:
    _request_entries.reset(token)


def not_yet_declared(entries: list[protocol.Entry]) -> list[protocol.Entry]:
    """``entries`` less those already passed to :func:`invalidate` in this
    request (whole-context ones cover the scoped ones of their context)."""
    seen = _request_entries.get()
    if not seen:
        return entries
    return [e for e in entries
            if _identity(e) not in seen and ("*", _entry_context(e)) not in seen]


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

def invalidate(*entries: Any, using: str | None = None) -> None:
    """Tell every subscribed browser that these contexts changed.

    ``invalidate("notifications", ("user", {"user_id": 5}))`` -- entries are
    context names (the whole context), ``(context, params)`` tuples or
    ``{"context", "params"}`` dicts, exactly like a mutation response's
    ``invalidate`` list. Sent after the transaction on ``using`` commits;
    nothing is sent if it rolls back.
    """
    body = _invalidation_body(entries)
    if body is not None:
        _write("invalidate", body, using)


async def ainvalidate(*entries: Any, using: str | None = None) -> None:
    """:func:`invalidate` for async code, published with ``redis.asyncio``.

    The row is written through ``sync_to_async`` (thread-sensitive), so
    called from a transaction -- sync code that awaits this through
    ``async_to_sync`` -- it joins that transaction and is published after
    its commit like the sync call; from plain async code (autocommit) it is
    written, then published at once on the running loop.
    """
    body = _invalidation_body(entries)
    if body is not None:
        await _awrite("invalidate", body, using)


def _invalidation_body(entries: tuple) -> str | None:
    normalized = normalize_entries(entries)
    if not normalized:
        return None
    seen = _request_entries.get()
    if seen is not None:
        seen.update(_identity(e) for e in normalized)
    return _json(normalized)


def publish(channel: str, params: Mapping[str, Any] | None = None, data: Any = None, *,
            type: str = "message", using: str | None = None) -> None:
    """Send a message to every subscriber of a channel instance.

    ``publish("chat", {"room": "lobby"}, {"text": "hi"}, type="ChatMessage")``.
    The browser receives Mizan's channel frame plus ``seq`` and ``epoch``;
    channels with ``history`` in ``MIZAN_HUB["CHANNELS"]`` also keep it for
    clients that resume. ``data`` is encoded with Django's JSON encoder
    (dates, decimals, UUIDs). Sent after the transaction commits.
    """
    _write("message", _message(channel, params, data, type).body(), using)


async def apublish(channel: str, params: Mapping[str, Any] | None = None, data: Any = None,
                   *, type: str = "message", using: str | None = None) -> None:
    """:func:`publish` for async code (see :func:`ainvalidate`)."""
    await _awrite("message", _message(channel, params, data, type).body(), using)


def _write(kind: str, body: str, using: str | None) -> None:
    # Test mode (mizan_hub.testing): recorded at commit, never sent.
    if testing.active():
        testing.record(kind, body, using)
    else:
        outbox.write(kind, body, using)


async def _awrite(kind: str, body: str, using: str | None) -> None:
    if testing.active():
        await testing.arecord(kind, body, using)
    else:
        await outbox.awrite(kind, body, using)


def _message(channel: str, params: Mapping[str, Any] | None, data: Any, type: str) -> _Message:
    if not isinstance(type, str):
        raise TypeError("type must be a string")
    data_json = json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False,
                           separators=(",", ":"), allow_nan=False)
    # Checked now, as every hub will check it, so a bad call fails in the
    # code that made it rather than as a dropped envelope later.
    checked = protocol.decode_envelope(protocol.encode_envelope({
        "kind": "message", "channel": channel, "params": params or {}, "type": type,
        "data": json.loads(data_json), "seq": 1, "epoch": "0"}))
    return _Message(checked["channel"], checked["params"], type, data_json)


def disconnect(user_or_sub: Any, reason: str = "") -> None:
    """Close every hub connection of a user (``disconnect`` envelope), e.g.
    after a password change. Sent at once, not on commit."""
    sub = str(getattr(user_or_sub, "pk", user_or_sub))
    envelope = {"kind": "disconnect", "sub": sub, "reason": reason}
    text = protocol.encode_envelope(envelope)
    if testing.active():
        testing.record_disconnect(envelope)
        return
    _guarded("disconnect", lambda: get_redis().publish(events_channel(), text.encode()))


# --------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------

def _guarded(what: str, call) -> Any:
    try:
        return call()
    except redis.RedisError as exc:
        stats.incr("publish_failures")
        logger.error("mizan-hub: %s not published, Redis failed: %s", what, exc,
                     exc_info=logger.isEnabledFor(logging.DEBUG))
        if conf.get("STRICT"):
            raise PublishError(f"{what} not published: {exc}") from exc
        return None
