"""Who is in a presence channel instance (SPEC section 11.1).

The hubs keep the members of every channel whose registry entry says
``presence: true`` in Redis: ``{prefix}p:{canonical key}`` maps each member's
connection id to its member JSON, and a member counts only while its hub
process's heartbeat ``{prefix}phb:{process}`` exists (a process is the
prefix of its connection ids, up to and including the last ``-``) is in
``{prefix}procs``. This module reads them as the hub's own query does: the
hash and ``procs`` in one round trip, then the heartbeat of each process
the hash names, pipelined.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import protocol
from .connection import get_redis, key

__all__ = ["presence"]

_PROCESS = re.compile(r"^(.*-)[0-9]+$", re.S)


def presence(channel: str, /, **params: Any) -> list[dict[str, Any]]:
    """The members of the instance ``channel`` with ``params``, in no
    particular order: ``[{"conn": ..., "sub": "5" or None, "info": ...}]``
    (``info`` only where the member's connection token carried one).

    ``params`` are compared in their string forms (SPEC section 1), as the
    hub does: ``presence("chat", room=5)`` is the instance ``room="5"``.
    Raises ``redis.RedisError`` when Redis cannot be read. In test mode
    (:mod:`mizan_hub.testing`) nobody is connected: ``[]``, without Redis.
    """
    from . import testing

    if testing.active():
        return []
    pipe = get_redis().pipeline(transaction=False)
    pipe.hgetall(key("p:", protocol.canonical_key(channel, params)))
    pipe.smembers(key("procs"))
    members, known = pipe.execute()
    processes: dict[bytes, bool] = {}
    for field in members:
        match = _PROCESS.match(field.decode("utf-8", "replace"))
        if match and match.group(1).encode("utf-8") in known:
            processes.setdefault(match.group(1).encode("utf-8"), False)
    if processes:
        pipe = get_redis().pipeline(transaction=False)
        for process in processes:
            pipe.exists(key("phb:").encode("utf-8") + process)
        for process, alive in zip(processes, pipe.execute()):
            processes[process] = bool(alive)
    out = []
    for field, value in members.items():
        match = _PROCESS.match(field.decode("utf-8", "replace"))
        if match and processes.get(match.group(1).encode("utf-8")):
            out.append(json.loads(value))
    return out
