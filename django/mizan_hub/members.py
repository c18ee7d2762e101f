"""Who is in a presence channel instance (SPEC section 11.2).

The hubs keep the members of every channel whose registry entry says
``presence: true`` in Redis: ``{prefix}p:{canonical key}`` maps each member's
connection id to its member JSON, and a member counts only while its hub
process (the prefix of its connection ids, up to and including the last
``-``) is in ``{prefix}procs`` and its heartbeat ``{prefix}phb:{process}``
exists. This module reads them as the hub's own query does: the hash and
``procs`` in one round trip, then the heartbeat of each process the hash
names, pipelined.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import protocol
from .connection import get_async_redis, get_redis, key

__all__ = ["presence", "apresence"]

_PROCESS = re.compile(rb"^(.*-)[0-9]+$", re.S)


def _first_round(pipe: Any, channel: str, params: dict) -> None:
    pipe.hgetall(key("p:", protocol.canonical_key(channel, params)))
    pipe.smembers(key("procs"))


def _processes(members: dict, known: set) -> list[bytes]:
    """The processes the hash names that are in ``procs``, each once."""
    found = {m.group(1) for m in map(_PROCESS.match, members) if m}
    return sorted(found & set(known))


def _second_round(pipe: Any, processes: list[bytes]) -> None:
    for process in processes:
        pipe.exists(key("phb:").encode("utf-8") + process)


def _live(members: dict, processes: list[bytes], beats: list) -> list[dict[str, Any]]:
    alive = {p for p, beat in zip(processes, beats) if beat}
    return [json.loads(value) for field, value in members.items()
            if (m := _PROCESS.match(field)) and m.group(1) in alive]


def _recording() -> bool:
    from . import testing
    return testing.active()


def presence(channel: str, /, **params: Any) -> list[dict[str, Any]]:
    """The members of the instance ``channel`` with ``params``, in no
    particular order: ``[{"conn": ..., "sub": "5" or None, "info": ...}]``
    (``info`` only where the member's connection token carried one).

    ``params`` are compared in their string forms (SPEC section 1), as the
    hub does: ``presence("chat", room=5)`` is the instance ``room="5"``.
    Raises ``redis.RedisError`` when Redis cannot be read. In test mode
    (:mod:`mizan_hub.testing`) nobody is connected: ``[]``, without Redis.
    """
    if _recording():
        return []
    pipe = get_redis().pipeline(transaction=False)
    _first_round(pipe, channel, params)
    members, known = pipe.execute()
    processes = _processes(members, known)
    beats: list = []
    if processes:
        pipe = get_redis().pipeline(transaction=False)
        _second_round(pipe, processes)
        beats = pipe.execute()
    return _live(members, processes, beats)


async def apresence(channel: str, /, **params: Any) -> list[dict[str, Any]]:
    """:func:`presence` on ``redis.asyncio`` (for async views)."""
    if _recording():
        return []
    pipe = get_async_redis().pipeline(transaction=False)
    _first_round(pipe, channel, params)
    members, known = await pipe.execute()
    processes = _processes(members, known)
    beats: list = []
    if processes:
        pipe = get_async_redis().pipeline(transaction=False)
        _second_round(pipe, processes)
        beats = await pipe.execute()
    return _live(members, processes, beats)
