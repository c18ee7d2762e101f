"""What a relay sends for queued events, built but not sent.

A relay pass (:mod:`mizan_hub.outbox`) groups the rows it read --
consecutive invalidations merged and sent collapsed, a transaction's
identical messages once (:func:`_groups`) -- and publishes each group with
runs of the publish script whose shard, keys and arguments are built here
(:func:`invalidation_calls`, :func:`message_call`). :mod:`mizan_hub.publishing`
writes the rows' text (:class:`_Message`), and test mode
(:mod:`mizan_hub.testing`) groups the calls it records exactly as the relay
would. Those three import this module and it imports none of them: it
touches no database and no Redis client.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import conf, protocol
from .connection import events_channel, key, shard_count, shard_of

# The grouping is the relay's: what it logs goes where the relay's lines go.
logger = logging.getLogger("mizan_hub.outbox")


def _json(value: Any) -> str:
    """Compact JSON with non-ASCII raw: the bytes the hub will be sent."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _ts() -> str:
    """Now, in Unix milliseconds, as JSON number text (a fraction allowed)."""
    return repr(round(time.time() * 1000, 3))


# --------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------

def _identity(entry: protocol.Entry) -> tuple[str, str]:
    """What makes two entries the same: the context for whole-context
    entries (unscoped or ``{}``), the canonical key for scoped ones."""
    if isinstance(entry, str):
        return ("*", entry)
    if not entry["params"]:
        return ("*", entry["context"])
    return ("=", protocol.canonical_key(entry["context"], entry["params"]))


def collapse(entries: Iterable[protocol.Entry]) -> list[protocol.Entry]:
    """Drop duplicates, and scoped entries a whole-context entry covers.

    A whole-context entry (unscoped, or scoped with ``{}``) matches every
    subscription of its context and bumps the context's ``u`` version, which
    the resume rule checks first, so the scoped entries beside it add
    nothing but traffic. Order is kept (first occurrence wins).
    """
    entries = list(entries)
    whole = {_entry_context(e) for e in entries if _identity(e)[0] == "*"}
    seen: set[tuple[str, str]] = set()
    out = []
    for entry in entries:
        ident = _identity(entry)
        if ident in seen or (ident[0] == "=" and entry["context"] in whole):
            continue
        seen.add(ident)
        out.append(entry)
    return out


def _entry_context(entry: protocol.Entry) -> str:
    return entry if isinstance(entry, str) else entry["context"]


# --------------------------------------------------------------------------
# Rows and their groups
# --------------------------------------------------------------------------

class _Row(NamedTuple):
    pk: int
    txn: str
    kind: str
    body: str


@dataclass
class _Message:
    channel: str
    params: dict
    type: str
    data_json: str

    @property
    def identity(self) -> tuple:
        return (protocol.canonical_key(self.channel, self.params), self.type, self.data_json)

    def body(self) -> str:
        """The outbox row's text; ``data`` stays the exact JSON to send."""
        return _json({"channel": self.channel, "params": self.params, "type": self.type,
                      "data": self.data_json})


def message_from_body(body: str) -> _Message:
    value = json.loads(body)
    if not (isinstance(value, dict) and isinstance(value.get("channel"), str)
            and isinstance(value.get("params"), dict) and isinstance(value.get("type"), str)
            and isinstance(value.get("data"), str)):
        raise ValueError("a message row is {channel, params, type, data (JSON text)}")
    return _Message(value["channel"], value["params"], value["type"], value["data"])


@dataclass
class _Group:
    kind: str
    rows: list = field(default_factory=list)
    entries: list = field(default_factory=list)
    message: Any = None


def _groups(rows: list, refused: dict) -> list[_Group]:
    """Consecutive invalidation rows become one group (sent collapsed); each
    message is its own group, its duplicates in the same transaction join it."""
    groups: list[_Group] = []
    messages: dict[tuple, _Group] = {}
    for row in rows:
        try:
            if row.kind == "invalidate":
                entries = json.loads(row.body)
                if not isinstance(entries, list):
                    raise ValueError("the body is not a list of entries")
                if groups and groups[-1].kind == "invalidate":
                    groups[-1].rows.append(row)
                    groups[-1].entries.extend(entries)
                else:
                    groups.append(_Group("invalidate", [row], list(entries)))
            elif row.kind == "message":
                message = message_from_body(row.body)
                ident = (row.txn, message.identity)
                if ident in messages:
                    messages[ident].rows.append(row)
                else:
                    group = messages[ident] = _Group("message", [row], message=message)
                    groups.append(group)
            else:
                raise ValueError(f"unknown kind {row.kind!r}")
        except (ValueError, TypeError, KeyError) as exc:
            refused[row.pk] = f"undecodable row: {exc}"
            logger.error("mizan-hub: outbox row %s cannot be decoded (%s); taken out of "
                         "the queue", row.pk, exc)
    return groups


# --------------------------------------------------------------------------
# Publish-script runs
# --------------------------------------------------------------------------

# The relay (mizan_hub.outbox) sends through these: each builds the shard,
# keys and arguments of one publish-script run, so the sync and the asyncio
# relay share everything but the client that runs it.

#: One run of the publish script: (shard, keys, args).
Call = tuple[int, list[str], list[str]]


def invalidation_calls(entries: list) -> list[Call]:
    """The script runs that publish these invalidations: collapsed, split
    per Redis shard (SPEC 11.1: a context's versions live on the shard of
    its name, and its envelope is published there), in as few envelopes per
    shard as the 256-entry limit allows. Each run is atomic on its shard;
    runs on different shards are not atomic together."""
    entries = collapse(entries)
    shards = shard_count()
    by_shard: dict[int, list] = {}
    for entry in entries:
        by_shard.setdefault(protocol.shard(_entry_context(entry), shards), []).append(entry)
    return [(shard, *_invalidation_call(part[start:start + protocol.MAX_ENTRIES]))
            for shard, part in sorted(by_shard.items())
            for start in range(0, len(part), protocol.MAX_ENTRIES)]


def _invalidation_call(entries: list) -> tuple[list[str], list[str]]:
    """One script run: the version fields each entry bumps, then the envelope."""
    fields: dict[str, list[str]] = {}
    for entry in entries:
        context = _entry_context(entry)
        slot = fields.setdefault(context, [])
        if isinstance(entry, str) or not entry["params"]:
            name = "u"
        else:
            name = str(protocol.bucket(protocol.canonical_key(context, entry["params"])))
        if name not in slot:
            slot.append(name)
    keys = [key("v:", context) for context in fields]
    head = ('{"v":1,"kind":"invalidate","ts":' + _ts() + ',"invalidate":' + _json(entries))
    args: list[str] = ["invalidate", events_channel(), head]
    for context, names in fields.items():
        args += [_json(context), str(len(names)), *names]
    return keys, args


def message_call(message: _Message) -> Call:
    """The script run that publishes one channel message, on the shard of
    its channel instance's canonical key (SPEC 11.1)."""
    canonical = protocol.canonical_key(message.channel, message.params)
    config = channel_config(message.channel)
    ttl_ms = int(config["ttl"] * 1000)
    body = ('"channel":' + _json(message.channel) + ',"params":' + _json(message.params)
            + ',"type":' + _json(message.type) + ',"data":' + message.data_json)
    return (shard_of(canonical), [key("c:", canonical), key("h:", canonical)],
            ["message", events_channel(), _ts(), body, str(config["history"]), str(ttl_ms)])


def channel_config(name: str) -> dict:
    """History size and key expiry of a channel, from ``CHANNELS``."""
    spec = conf.get("CHANNELS").get(name) or {}
    history = spec.get("history", 0)
    if isinstance(history, Mapping):  # the registry's own {"size": N} spelling
        history = history.get("size", 0)
    return {"history": int(history or 0),
            "ttl": spec.get("ttl", conf.get("CHANNEL_TTL")) or 0}
