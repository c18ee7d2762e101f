"""Frames to one connection, through the hub that holds it (SPEC section 11).

Every hub listens on a channel of its own, ``{prefix}hub:{hub id}``; an
envelope published there reaches one of its connections: ``send`` (a frame
pushed to it, :func:`send_to_connection`, what
:meth:`~mizan_hub.handlers.HubRequest.send` does) and the worker's
``reply`` to an rpc or ctx frame. Below the worker and the handlers, which
both send this way.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from django.core.serializers.json import DjangoJSONEncoder

from . import protocol
from .connection import get_redis, key, shard_of


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON values (dates, decimals, UUIDs by Django's
    encoder); raises TypeError/ValueError for what JSON cannot carry."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False))


def hub_channel(hub: str) -> str:
    return key("hub:", hub)


def send_to_connection(hub: str, conn: str, frame: dict, client: redis.Redis | None = None) -> None:
    """Forward ``frame`` to one connection (a ``send`` envelope)."""
    text = protocol.encode_envelope({"kind": "send", "conn": conn, "frame": _jsonable(frame)})
    # the connection's shard (SPEC 11.1), where replies to it go too: in order
    (client or get_redis(shard_of(conn))).publish(hub_channel(hub), text.encode("utf-8"))
